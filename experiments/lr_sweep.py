"""Learning-rate sweep: every (learning rate, seed) member of a task, trained together by the engine.

    python -m experiments.lr_sweep                       # Lab A, N=2000, lr 0.001/0.01/0.1, 3 seeds
    python -m experiments.lr_sweep --lr 0.003,0.01 --seeds 8 --epochs 20000 --out runs/lr
    python -m experiments.lr_sweep --task fit-poly --target "(x+1)**2 + sin(x**2+1) - log(x**2+1)" --x-range -3,3
    python -m experiments.lr_sweep --task boston --help  # Boston's own options

A sweep is a small study (one setting per learning rate) and runs through the same runner, tables,
figures and report as ``experiments.reproduce``. The task flags come from the task's declared
options; options left out take the task's defaults; a flag of another task is an error.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from jaxlabs.cli import (ArgumentParser, add_durability_flags, add_engine_flags, add_tensorboard_flag, durable,
                         engine_options, fail, output_lock, int_at_least, is_writer, one_line_errors,
                         parse_task_args, plan_line, positive_float_list, programs_note, start_processes, task_parser)
from jaxlabs.options import OptionError

PROG = "python -m experiments.lr_sweep"
LR_EXAMPLE = "0.001,0.01,0.1"
DEFAULT_TASK = "fit-log2cos"


def _option_type(option):
    def parse(text: str):
        try:
            return option.parse(text)
        except OptionError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parse.__name__ = option.type.__name__
    return parse


def build_parser(task) -> ArgumentParser:
    p = task_parser(
        PROG, "Train a grid of learning rates x seeds together (one compiled program per static configuration, "
        "members batched or looped on the device as the plan says); print a table per learning rate and save "
        "results.json, results.csv, curves.npz, report.md and plots.", DEFAULT_TASK,
        "which lab to run (default: %(default)s, Lab A)")
    p.add_argument("--lr", type=positive_float_list("--lr", LR_EXAMPLE), default=None,
                   help="comma list of learning rates, each > 0 (default: the task's; "
                        f"{task.name}: {','.join(f'{v:g}' for v in task.lr_grid)})")
    # 3 seeds x 3 learning rates x 5000 epochs: about 190 CPU-seconds, under 3 minutes on 2 cores
    p.add_argument("--seeds", type=int_at_least(1), default=3,
                   help="seeds per learning rate, 0..K-1, each its own initialisation and data order "
                        "(default: %(default)s)")
    p.add_argument("--out", default=None, help="output folder (default: runs/<task>-lr-sweep)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_tensorboard_flag(p)
    add_engine_flags(p)
    add_durability_flags(p)
    g = p.add_argument_group(f"options of {task.name} ({task.description})")
    for o in task.options:
        if o.name == "lr":
            continue
        kind = "traced: per member" if o.traced else "static"
        text = f"{o.help}; {o.range_text()}, {kind} (default: {o.default})"
        if o.type is bool:
            g.add_argument(o.flag, dest=o.name, action=argparse.BooleanOptionalAction, default=None,
                           help=text.replace("%", "%%"))
        else:
            g.add_argument(o.flag, dest=o.name, type=_option_type(o), default=None,
                           metavar=o.name.upper(), help=text.replace("%", "%%"))
    return p


def parse_args(argv=None):
    return parse_task_args(PROG, argv, DEFAULT_TASK, build_parser)


def main(argv=None) -> int:
    task, args = parse_args(argv)
    start_processes(PROG, args)  # before anything touches JAX
    from jaxlabs.reproduce import run_study, sweep_study  # after parsing: --help answers at once
    from jaxlabs import checkpoint
    from jaxlabs.results import check_writable

    given = {o.name: getattr(args, o.name) for o in task.options if o.name != "lr"}
    given = {k: v for k, v in given.items() if v is not None}
    try:
        static = task.resolve_static(**{k: v for k, v in given.items() if k in task.static_defaults})
        task.check(static)
        traced = task.hparams(**{k: v for k, v in given.items() if k in task.traced_defaults})
        engine = engine_options(PROG, args)
    except ValueError as e:
        fail(PROG, str(e))
    out = args.out or f"runs/{task.name}-lr-sweep"
    try:
        out = check_writable(out) if is_writer() else Path(out)
    except OSError as e:
        fail(PROG, f"argument --out: cannot write to {out!r} ({e.strerror or e}); choose a writable folder")
    with output_lock(PROG, out):  # one run at a time writes to --out
        lrs = args.lr or list(task.lr_grid)
        study = sweep_study(task, static, lrs, traced)
        seeds = list(range(args.seeds))
        print(f"{task.description}\n{' '.join(f'{k}={v}' for k, v in static.items())}\n{len(lrs)} learning rates x "
              f"{len(seeds)} seeds = {len(lrs) * len(seeds)} members; up to {static['epochs']} epochs")
        t0 = time.perf_counter()
        with one_line_errors(PROG, out), durable(args):
            r = run_study(study, seeds, out, progress=not args.no_progress, engine=engine,
                          command=" ".join([PROG, *map(shlex.quote, sys.argv[1:] if argv is None else argv)]),
                          checkpoint_every=args.checkpoint_every, fresh=args.fresh,
                          tensorboard=Path(out) / "tensorboard" if args.tensorboard else None)
        checkpoint.clear(out)
        if not is_writer():
            plans = "; ".join(plan_line(g) + programs_note(g) for g in r.timing)
            print(f"process {args.process_id}: trained its share of the members ({plans}); process 0 wrote {out}")
            return 0
        print("\n" + r.table)
        for g in r.timing:
            print(f"compile {g['compile_s']:.1f} s{programs_note(g)}, train {g['run_s']:.1f} s for {g['members']} members "
                  f"x {g['epochs_run']} epochs; {plan_line(g)}")
        print(f"\n{time.perf_counter() - t0:.1f} s in all; wrote {out}/report.md, report.html, results.json, "
              f"results.csv, curves.npz, {', '.join(f for f in r.figures if f.endswith('.png'))}"
              + (f"; TensorBoard: tensorboard --logdir {out}/tensorboard" if args.tensorboard else ""))
        return 0


if __name__ == "__main__":
    sys.exit(main())
