"""Epochs in pieces: what running a classifier's epoch as several device calls costs on a short epoch, and how often the bar moves on a long one.

    python -m experiments.benchmark slices
    python -m experiments.benchmark slices --data-dir DIR --rounds 3 --json runs/slices.json

Short epoch: the Lab D CNN on 5% of MNIST (DIR holds the IDX files; synthetic images of the same
size without it), 4 members x 2 epochs under map, whole epochs (``--slice-steps 0``) against the
default pieces (16 steps shared by the 4 members: 4 steps a call), interleaved over ``--rounds``;
training seconds, compile excluded. Long epoch: one ResNet20 epoch of one member (synthetic
images, batch 128) in pieces of 16 steps: the seconds between two moves of the bar, against the
whole epoch's.
"""
from __future__ import annotations

import time

import numpy as np

from experiments.bench import load, save
from jaxlabs.cli import int_at_least
from jaxlabs.engine.placement import Placement
from jaxlabs.engine.plans import Plan
from jaxlabs.engine.programs import Programs
from jaxlabs.sweep import EngineOptions, member_keys, run_group
from jaxlabs.tasks import get_task

STEPS = 16  # the engine's default --slice-steps


def add_arguments(p) -> None:
    p.add_argument("--data-dir", default=None, help="MNIST's IDX files for the short epoch (default: synthetic)")
    p.add_argument("--rounds", type=int_at_least(1), default=3, help="interleaved rounds (default: %(default)s)")
    p.add_argument("--resnet-images", type=int_at_least(128), default=4096,
                   help="synthetic training images of the long epoch (default: %(default)s: 32 steps)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")


def short_epoch(args) -> dict:
    task = get_task("mnist-cnn")
    static = task.resolve_static(subset=0.05, epochs=2, data_dir=args.data_dir,
                                 **({} if args.data_dir else {"synthetic": 2057}))
    trainer, data = task.build(static)
    hp = {"lr": [0.001] * 4}
    pieces_label = f"pieces (--slice-steps {STEPS})"
    times = {"whole epochs": [], pieces_label: []}
    for r in range(args.rounds):
        for label, steps in (("whole epochs", None), (pieces_label, STEPS)):
            g = run_group(trainer, data, [0, 1, 2, 3], hp, progress=False,
                          options=EngineOptions(plan=Plan("map"), chunk=1, slice_steps=steps))
            times[label].append(round(g.run_s, 3))
            print(f"  round {r + 1}: {label:26} {g.run_s:6.2f} s training ({trainer.slices.steps} steps an epoch); "
                  f"{load()}", flush=True)
    whole, pieces = (np.median(v) for v in times.values())
    print(f"  short epoch: pieces cost {pieces / whole - 1:+.1%} of training (medians {pieces:.2f} s against "
          f"{whole:.2f} s)")
    return {"steps_per_epoch": trainer.slices.steps, "train_s": times, "ratio": round(pieces / whole, 3)}


def long_epoch(args) -> dict:
    task = get_task("cifar-resnet20")
    trainer, data = task.build(task.resolve_static(synthetic=args.resnet_images, epochs=1))
    programs = Programs(trainer, data, Plan("map"), placement=Placement())
    programs.slice_steps = STEPS
    hp = {k: np.full(1, v, np.float32) for k, v in task.traced_defaults.items()}
    state = programs.init(np.asarray(member_keys([0])), hp)
    stamps = []
    steps = programs.piece_steps(1)  # one member: all of --slice-steps a piece
    programs.sliced_chunk(state, hp, 0, 1, steps, lambda share: stamps.append(time.perf_counter()))  # compiles
    state = programs.init(np.asarray(member_keys([0])), hp)
    t0, stamps = time.perf_counter(), []
    programs.sliced_chunk(state, hp, 0, 1, steps, lambda share: stamps.append(time.perf_counter()))
    gaps = np.diff([t0, *stamps])
    print(f"  long epoch (ResNet20, {trainer.slices.steps} steps of 128 images): the bar moved every "
          f"{np.median(gaps):.1f} s (max {gaps.max():.1f} s); whole epoch {time.perf_counter() - t0:.1f} s; {load()}")
    return {"steps_per_epoch": trainer.slices.steps, "gaps_s": [round(float(g), 3) for g in gaps]}


def run(args) -> int:
    print(f"epochs in pieces; {load()}")
    out = {"short": short_epoch(args), "long": long_epoch(args)}
    save(args.json, out)
    return 0
