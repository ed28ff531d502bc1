"""How much one chunk's time varies per plan: one chunk of the default grid under each plan auto would time, several rounds in rotation.

    python -m experiments.benchmark chunk-spread 8     # 8 rounds
    python -m experiments.benchmark chunk-spread 4 --json runs/spread.json

The default sweep's grid (Lab A, lr 0.001/0.01/0.1 x 3 seeds, no stopping), each plan carrying
on from its own state and timed as auto's probe times a candidate
(:meth:`jaxlabs.engine.programs.Programs.timed_chunk`, compile off the clock): the spread a
one-chunk probe has to see through on this machine.
"""
from __future__ import annotations

import numpy as np

from experiments.bench import load, save
from jaxlabs.cli import int_at_least
from jaxlabs.engine.auto import candidates
from jaxlabs.engine.group import member_keys
from jaxlabs.engine.plans import VMAP
from jaxlabs.engine.programs import Programs
from jaxlabs.sweep import grid_members
from jaxlabs.tasks import get_task


def add_arguments(p) -> None:
    p.add_argument("rounds", type=int_at_least(1), help="rounds of every plan")
    p.add_argument("--chunk", type=int_at_least(1), default=None, help="epochs of the chunk (default: the task's)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")


def run(args) -> int:
    task = get_task("fit-log2cos")
    trainer, data = task.build(task.resolve_static())
    seeds, axes = grid_members(range(3), lr=task.lr_grid, tolerance=[0.0])
    hp = {**{k: np.full(len(seeds), v, np.float32) for k, v in task.hparams().items()},
          **{k: np.asarray(v, np.float32) for k, v in axes.items()}}
    programs = {str(p): Programs(trainer, data, p) for p in candidates(len(seeds))}
    start = programs[str(VMAP)].init(np.asarray(member_keys(seeds)), hp)
    states = dict.fromkeys(programs, start)
    times: dict[str, list[float]] = {p: [] for p in programs}
    chunk = args.chunk or task.chunk
    print(f"one {chunk}-epoch chunk of the default grid ({len(seeds)} members), {args.rounds} rounds in "
          f"rotation; {load()}")
    for r in range(args.rounds):
        for p, prog in programs.items():
            (states[p], _), took = prog.timed_chunk(states[p], hp, r * chunk, chunk)
            times[p].append(took)
    out = {}
    for p, t in times.items():
        out[p] = {"min": min(t), "median": float(np.median(t)), "max": max(t), "times": t}
        print(f"  {p:10} min {min(t):.2f} s  median {np.median(t):.2f} s  max {max(t):.2f} s")
    print(load())
    save(args.json, out)
    return 0
