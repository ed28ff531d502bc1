"""The gain of compaction: a Lab A learning-rate study whose members stop at different epochs, vmap without compaction against auto with it.

    python -m experiments.benchmark compaction
    python -m experiments.benchmark compaction --epochs 5000 --json runs/compaction.json

A-lr at N=200: lr 0.001 / 0.01 / 0.1 x 6 seeds, tolerance 1e-4, up to 20,000 epochs. auto runs
as on a user's first run (an empty plan cache, so it probes). Wall times include compiles.
"""
from __future__ import annotations

import tempfile
import time

from experiments.bench import load, plan_cache, save
from jaxlabs.cli import int_at_least
from jaxlabs.sweep import EngineOptions, Member, run_grid
from jaxlabs.tasks import get_task

STUDY = {"task": "fit-log2cos", "n": 200, "lrs": (0.001, 0.01, 0.1), "tolerance": 1e-4}  # A-lr at N=200


def add_arguments(p) -> None:
    p.add_argument("--seeds", type=int_at_least(1), default=6, help="seeds per learning rate (default: %(default)s)")
    p.add_argument("--epochs", type=int_at_least(1), default=20_000, help="epochs at most (default: %(default)s)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")


def run(args) -> int:
    task = get_task(STUDY["task"])
    static = task.resolve_static(n=STUDY["n"], epochs=args.epochs)
    members = [Member(f"lr={lr:g}", static, task.hparams(lr=lr, tolerance=STUDY["tolerance"]), seed)
               for lr in STUDY["lrs"] for seed in range(args.seeds)]
    print(f"compaction on Lab A (N={STUDY['n']}, lr 0.001/0.01/0.1 x {args.seeds} seeds, tolerance 1e-4, up to "
          f"{args.epochs} epochs); {load()}")
    out = {}
    for label, engine in (("vmap, no compaction", EngineOptions()),
                          ("auto + compaction", EngineOptions(plan=None, compaction=True))):
        with tempfile.TemporaryDirectory(prefix="jaxlabs-bench-cache-") as cache, plan_cache(cache):
            t0 = time.perf_counter()
            g = run_grid(task, members, progress=False, engine=engine).groups[0]
        out[label] = {"wall_s": round(time.perf_counter() - t0, 2), "compile_s": round(g.compile_s, 2),
                      "plan": g.plan, "stop_epochs": sorted(g.final["stop_epoch"].tolist()), "load": load()}
        print(f"  {label:22} {out[label]['wall_s']:8.1f} s wall (compile {g.compile_s:.1f} s, plan {g.plan}); "
              f"{load()}", flush=True)
    out["gain"] = round(out["vmap, no compaction"]["wall_s"] / out["auto + compaction"]["wall_s"], 2)
    print(f"  auto + compaction is {out['gain']:.2f}x as fast as vmap without compaction")
    save(args.json, out)
    return 0
