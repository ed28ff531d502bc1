"""The default sweep as shipped against --plan vmap: auto on an empty plan cache, auto cached, vmap (``auto`` with fewer variants).

    python -m experiments.benchmark sweep-default
    python -m experiments.benchmark sweep-default --json runs/bench-sweep-default.json

One round of ``python -m experiments.benchmark auto --plans vmap --group-members 0``: see there.
"""
from __future__ import annotations

import argparse

from experiments.bench import auto, forced_plans


def add_arguments(p) -> None:
    p.add_argument("--epochs", type=int, default=None, help="the sweep's epochs (default: the task's, as lr_sweep)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")


def run(args) -> int:
    return auto.run(argparse.Namespace(rounds=1, plans=forced_plans("vmap"), epochs=args.epochs, group_members=0,
                                       group_epochs=1, json=args.json))
