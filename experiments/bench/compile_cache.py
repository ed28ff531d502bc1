"""A second identical run against the first: what the compilation cache saves, in fresh processes.

    python -m experiments.benchmark compile-cache
    python -m experiments.benchmark compile-cache --runs search-boston --json runs/bench-compile-cache.json

Each command runs three times in a fresh process on one empty ``JAXLABS_CACHE_DIR``: first (nothing
cached: it compiles everything), again (its programs loaded from ``$JAXLABS_CACHE_DIR/xla``; auto's
plan cache warm as well), and again with ``--no-compile-cache`` (the plan cache alone, to tell the
two apart). Per run: the process's wall time, the command's own (``results.json``), its compile
seconds (tracing and lowering included), XLA's share of them (the compiles or loads), the programs
loaded and compiled, and whether ``curves.npz`` and ``results.csv`` (timing columns dropped) are
byte-identical to the first run's.
"""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from experiments.bench import load, machine, save

RUNS = {  # name -> the command's arguments, as a user types them (--out and --no-progress added)
    "sweep-default": ["-m", "experiments.lr_sweep", "--no-tensorboard"],
    "search-boston": ["-m", "experiments.search", "--task", "boston"],
    "reproduce-C": ["-m", "experiments.reproduce", "C", "--quick", "--no-tensorboard"],
}


def add_arguments(p) -> None:
    p.add_argument("--runs", default=",".join(RUNS), help=f"which, comma-separated (default: all: {', '.join(RUNS)})")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")


def _numbers(out: Path) -> dict[str, bytes]:
    """Every curves.npz and results.csv under ``out`` (timing columns, ``*_s``, dropped), by path."""
    files = {}
    for f in sorted(out.rglob("curves.npz")):
        files[str(f.relative_to(out))] = f.read_bytes()
    for f in sorted(out.rglob("results.csv")):
        rows = list(csv.reader(io.StringIO(f.read_text())))
        keep = [i for i, c in enumerate(rows[0]) if not c.endswith("_s")]
        files[str(f.relative_to(out))] = repr([[r[i] for i in keep] for r in rows]).encode()
    return files


def _timing(out: Path) -> dict:
    """The runs' compile seconds and programs, summed over every results.json under ``out``."""
    total = {"wall_s": 0.0, "compile_s": 0.0, "xla_s": 0.0, "loaded": 0, "compiled": 0}
    for f in out.rglob("results.json"):
        meta = json.loads(f.read_text())
        groups = meta.get("timing") or [meta["cost"]]  # a sweep's groups, or a search's cost
        total["wall_s"] += meta.get("wall_s", meta.get("cost", {}).get("wall_s", 0.0))
        for g in groups:
            total["compile_s"] += g["compile_s"]
            for k in ("xla_s", "loaded", "compiled"):
                total[k] += g["programs"][k]
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in total.items()}


def one(args: list[str], out: Path, env: dict) -> dict:
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, *args, "--no-progress", "--out", str(out)], env=env,
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({p.returncode}): {p.stderr[-2000:]}")
    return {"process_s": round(time.perf_counter() - t0, 2), **_timing(out)}


def measure(name: str, root: Path) -> dict:
    env = dict(os.environ, JAXLABS_CACHE_DIR=str(root / "cache"))
    args = RUNS[name]
    runs = {"first": one(args, root / "first", env), "again": one(args, root / "again", env),
            "again, --no-compile-cache": one([*args, "--no-compile-cache"], root / "off", env)}
    first = _numbers(root / "first")
    for label, out in (("again", "again"), ("again, --no-compile-cache", "off")):
        runs[label]["identical"] = _numbers(root / out) == first
    return runs


def run(args) -> int:
    names = [n.strip() for n in args.runs.split(",") if n.strip()]
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        print(f"unknown --runs {', '.join(unknown)}: choose from {', '.join(RUNS)}", file=sys.stderr)
        return 2
    print(f"{machine()['processor']}, {os.cpu_count()} cores, jax {machine()['jax']}; {load()}")
    doc = {"machine": machine(), "runs": {}}
    for name in names:
        with tempfile.TemporaryDirectory(prefix="jaxlabs-bench-cache-") as root:
            runs = measure(name, Path(root))
        doc["runs"][name] = runs
        first = runs["first"]
        print(f"\n{name}: python {' '.join(RUNS[name])}")
        print(f"  {'run':26} {'process s':>9} {'command s':>9} {'compile s':>9} {'XLA s':>7} {'loaded':>6} "
              f"{'compiled':>8}  identical")
        for label, r in runs.items():
            print(f"  {label:26} {r['process_s']:9.2f} {r['wall_s']:9.2f} {r['compile_s']:9.2f} {r['xla_s']:7.2f} "
                  f"{r['loaded']:6d} {r['compiled']:8d}  {r.get('identical', '-')}")
        again = runs["again"]
        print(f"  again / first: compile {again['compile_s'] / max(first['compile_s'], 1e-9):.0%}, XLA "
              f"{again['xla_s'] / max(first['xla_s'], 1e-9):.0%}, command {again['wall_s'] / first['wall_s']:.0%}, "
              f"process {again['process_s'] / first['process_s']:.0%}")
    save(args.json, doc)
    return 0
