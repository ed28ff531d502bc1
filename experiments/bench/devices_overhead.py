"""The cost of splitting members over devices: the default sweep on simulated CPU devices against one device.

    python -m experiments.benchmark devices-overhead
    python -m experiments.benchmark devices-overhead --count 2 --epochs 1000

On one CPU the simulated devices share the same cores, so this is the overhead of splitting, not
a speed-up. The device count is fixed when JAX starts, so each side is its own process:
``python -m experiments.lr_sweep --plan vmap --devices N`` with
``--xla_force_host_platform_device_count``; the figures are read from the ``results.json`` each
run writes.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from experiments.bench import load, save
from jaxlabs.cli import int_at_least


def add_arguments(p) -> None:
    p.add_argument("--count", type=int_at_least(2), default=4, help="simulated devices (default: %(default)s)")
    p.add_argument("--epochs", type=int_at_least(1), default=None, help="the sweep's epochs (default: the task's)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")


def sweep(devices: str, count: int, epochs, out: Path) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={count}".strip()
    command = [sys.executable, "-m", "experiments.lr_sweep", "--no-progress", "--plan", "vmap", "--devices", devices,
               "--out", str(out), *(["--epochs", str(epochs)] if epochs else [])]
    t0 = time.perf_counter()
    p = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(command[1:])} failed (exit {p.returncode}): {p.stderr.strip()[-300:]}")
    meta = json.loads((out / "results.json").read_text())
    g = meta["timing"][0]
    return {"wall_s": round(wall, 1), "train_s": meta["wall_s"], "compile_s": g["compile_s"], "run_s": g["run_s"],
            "devices": g["devices"], "load": load()}


def run(args) -> int:
    out = {}
    with tempfile.TemporaryDirectory(prefix="jaxlabs-bench-devices-") as scratch:
        for label, devices in ((f"{args.count} simulated devices", "all"), ("1 device", "1")):
            out[label] = sweep(devices, args.count, args.epochs, Path(scratch) / devices)
            r = out[label]
            print(f"  {label:22} train {r['train_s']:7.1f} s (compile {r['compile_s']:.1f}, members split over "
                  f"{r['devices']}); {r['load']}", flush=True)
    many, one = out[f"{args.count} simulated devices"], out["1 device"]
    out["overhead"] = round(many["train_s"] / one["train_s"] - 1, 3)
    print(f"  splitting over {args.count} devices costs {out['overhead']:+.1%} of the one-device training time")
    save(args.json, out)
    return 0
