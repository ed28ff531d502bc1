"""How fast jaxlabs trains, one question per sub-command, each with its own ``--help``.

    python -m experiments.benchmark lab-a --epochs 300 --torch-threads 1   # vmapped grid / one at a time / PyTorch
    python -m experiments.benchmark plans            # every plan and auto on Lab A, the CNN, ResNet20
    python -m experiments.benchmark compaction       # auto + compaction against vmap on a stopping study
    python -m experiments.benchmark chunk-spread 8   # how much one chunk's time varies, per plan
    python -m experiments.benchmark sweep-default    # lr_sweep as shipped against --plan vmap
    python -m experiments.benchmark auto             # auto (empty cache, cached) against every forced plan
    python -m experiments.benchmark conv             # the conv labs against the report-style PyTorch loop
    python -m experiments.benchmark devices-overhead # the default sweep on 4 simulated devices against 1
    python -m experiments.benchmark slices           # a classifier's epoch in pieces: their cost, how often the bar moves
    python -m experiments.benchmark search           # halving and PBT against the exhaustive grid
    python -m experiments.benchmark compile-cache    # a second identical run against the first (the XLA cache)
    python -m experiments.benchmark device           # the accelerator suite (experiments.device_suite)

The modules are in ``experiments/bench/``; figures are in BENCHMARKS.md with their commands.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from jaxlabs.cli import ArgumentParser, fail

PROG = "python -m experiments.benchmark"
COMMANDS = {  # sub-command -> module of experiments.bench
    "lab-a": "lab_a", "plans": "plans", "compaction": "compaction", "chunk-spread": "chunk_spread",
    "sweep-default": "sweep_default", "auto": "auto", "conv": "conv", "devices-overhead": "devices_overhead",
    "slices": "slices", "search": "search", "compile-cache": "compile_cache",
}
DEVICE_SUITE = "experiments.device_suite"  # the accelerator suite, its own module and flags


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n")[1])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        m = importlib.import_module(f"experiments.bench.{module}")
        summary = m.__doc__.split("\n\n")[0]
        c = sub.add_parser(name, help=summary, description=m.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        m.add_arguments(c)
        c.set_defaults(run=m.run)
    # listed for --help; main() hands everything after `device` to the suite before parsing
    sub.add_parser("device", help=f"the accelerator suite: {DEVICE_SUITE}, with its own flags after `device`")
    return p


def device(argv: list[str]) -> int:
    """The accelerator suite lives in its own module; the arguments after ``device`` are its own."""
    try:
        suite = importlib.import_module(DEVICE_SUITE)
    except ModuleNotFoundError as e:
        if e.name != DEVICE_SUITE:
            raise
        fail(PROG, f"device: {DEVICE_SUITE} is not in this checkout; run `{PROG} plans` for this machine's table")
    return int(suite.main(argv) or 0)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["--suite", "device"]:  # the earlier spelling
        argv = ["device", *argv[2:]]
    elif argv[:2] == ["--suite", "cpu"]:
        argv = ["plans", *argv[2:]]
    if argv[:1] == ["device"]:
        return device(argv[1:])
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
