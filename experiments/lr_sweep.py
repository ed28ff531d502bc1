"""Learning-rate sweep: every (learning rate, seed) member trained in one vmapped program.

    python -m experiments.lr_sweep                       # Lab A, N=2000, lr 0.001/0.01/0.1, 3 seeds
    python -m experiments.lr_sweep --lr 0.003,0.01 --seeds 8 --epochs 20000 --out runs/lr
    python -m experiments.lr_sweep --task fit-poly --target "(x+1)**2 + sin(x**2+1) - log(x**2+1)" --x-range -3,3

Flags left out take the task's defaults; a flag the task has no use for is an error.
"""
from __future__ import annotations

import sys
import time

from jaxlabs.cli import (ArgumentParser, checked, fail, float_in, int_at_least, positive_float,
                         positive_float_list)
from jaxlabs.expr import parse_range, parse_target
from jaxlabs.models import ACTIVATIONS, INIT_SCHEMES
from jaxlabs.tasks import TASKS, get_task

PROG = "python -m experiments.lr_sweep"
LR_EXAMPLE = "0.001,0.01,0.1"
# flag dest -> the task option it sets; static options shape the program, traced ones are vmapped
STATIC_FLAGS = ("n", "epochs", "width", "hidden", "depth", "activation", "target", "x_range", "batch_size",
                "kernel", "batch_norm", "subset", "variant", "data_dir", "optimizer", "augment", "synthetic",
                "path", "channels", "blocks", "drop_epoch", "val_split", "initializer")
DUAL_FLAGS = ("dropout", "patience")  # static in some tasks (a model shape), traced in others
TRACED_FLAGS = ("tolerance", "momentum", "weight_decay", "l2", "lr_decay")


def parse_args(argv=None):
    p = ArgumentParser(prog=PROG, description="Train a grid of learning rates x seeds as one vmapped "
                       "program; print a table per learning rate and save results.json, results.csv, "
                       "curves.npz and plots. Options left out take the task's defaults.")
    p.add_argument("--task", default="fit-log2cos", choices=sorted(TASKS),
                   help="which lab to run (default: %(default)s, Lab A)")
    p.add_argument("--lr", type=positive_float_list("--lr", LR_EXAMPLE), default=None,
                   help=f"comma list of learning rates, each > 0 (default: the task's; Lab A: {LR_EXAMPLE})")
    # 3 seeds x 3 learning rates x 5000 epochs: about 190 CPU-seconds, under 3 minutes on 2 cores
    p.add_argument("--seeds", type=int_at_least(1), default=3,
                   help="seeds per learning rate, 0..K-1, each its own initialisation and data order "
                        "(default: %(default)s)")
    p.add_argument("--out", default=None, help="output folder (default: runs/<task>-lr-sweep)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = p.add_argument_group("task options (default: the task's own)")
    g.add_argument("--n", type=int_at_least(10), help="samples, split 8:1:1 (Lab A: 2000)")
    g.add_argument("--epochs", type=int_at_least(1),
                   help="maximum epochs per member (Lab A: 5000; the report used 20000-30000)")
    g.add_argument("--tolerance", type=positive_float,
                   help="Lab A/B: a member converges when its train MSE is at or below this (Lab A: 1e-4)")
    g.add_argument("--width", type=int_at_least(1), help="hidden units per layer (Lab A: 64)")
    g.add_argument("--depth", type=int_at_least(1), help="hidden layers, or conv blocks for mnist-cnn (Lab A: 4)")
    g.add_argument("--activation", choices=sorted(ACTIVATIONS), help="hidden activation (Lab A: silu)")
    g.add_argument("--optimizer", help="optimizer where the task offers a choice (Lab A: adam or sgd)")
    g.add_argument("--target", type=checked(parse_target),
                   help='fit tasks: the function of x to fit, e.g. "x**2 + sin(x)" (numbers, x, pi, e, '
                        '+ - * / **, sin cos tan exp log log2 log10 sqrt abs tanh ...)')
    g.add_argument("--x-range", dest="x_range", type=checked(parse_range), help="fit tasks: LOW,HIGH of x, e.g. -3,3")
    g.add_argument("--hidden", type=int_at_least(1), help="fashion-mlp: hidden units")
    g.add_argument("--batch-size", dest="batch_size", type=int_at_least(1), help="mini-batch size")
    g.add_argument("--kernel", type=int_at_least(1), help="mnist-cnn: conv kernel size")
    g.add_argument("--batch-norm", dest="batch_norm", action="store_const", const=True,
                   help="mnist-cnn: BatchNorm after each conv")
    g.add_argument("--dropout", type=float_in(0.0, 1.0, "--dropout"), help="dropout rate in [0, 1)")
    g.add_argument("--subset", type=float_in(0.0, 1.0, "--subset", include_high=True),
                   help="fraction of the dataset to use, e.g. 0.05")
    g.add_argument("--augment", action="store_const", const=True, help="mnist-cnn: on-device augmentation")
    g.add_argument("--variant", help="fashion-mlp: base, tanh, multimargin, xavier or adam")
    g.add_argument("--momentum", type=float_in(0.0, 1.0, "--momentum"), help="SGD momentum")
    g.add_argument("--weight-decay", dest="weight_decay", type=float_in(0.0, 1.0, "--weight-decay"),
                   help="coupled L2 weight decay (PyTorch SGD's)")
    g.add_argument("--l2", type=float_in(0.0, 1.0, "--l2"), help="mnist-scratch: L2 coefficient")
    g.add_argument("--lr-decay", dest="lr_decay", type=float_in(0.0, 1.0, "--lr-decay", include_high=True),
                   help="mnist-scratch: StepLR factor every 500 steps (1 = constant)")
    g.add_argument("--patience", type=int_at_least(0), help="boston: ReduceLROnPlateau patience; "
                   "mnist-scratch: early-stopping patience in epochs (0 = off)")
    g.add_argument("--channels", type=int_at_least(1), help="mnist-cnn: channels of the first conv block")
    g.add_argument("--blocks", type=int_at_least(1), help="cifar-resnet20: basic blocks per stage (3 = ResNet20)")
    g.add_argument("--drop-epoch", dest="drop_epoch", type=int_at_least(1),
                   help="cifar-resnet20: the epoch from which the lr is divided by 10")
    g.add_argument("--val-split", dest="val_split", type=float_in(0.0, 1.0, "--val-split"),
                   help="fashion-mlp: fraction of the training set held out for validation")
    g.add_argument("--initializer", choices=sorted(INIT_SCHEMES), help="weight initialisation (default: PyTorch's)")
    g.add_argument("--path", choices=("scratch", "library"), help="mnist-scratch: the jax.numpy-only "
                   "framework or the same network with Flax + Optax")
    g.add_argument("--synthetic", type=int_at_least(1), help="random data of the dataset's shape with this "
                   "many training images instead of the real data (benchmarks; not a result)")
    g.add_argument("--data-dir", dest="data_dir", help="folder with the dataset files (or set JAXLABS_DATA_DIR)")
    return p.parse_args(_join_negative_range(sys.argv[1:] if argv is None else list(argv)))


def _join_negative_range(argv: list[str]) -> list[str]:
    """``--x-range -3,3``: argparse would take ``-3,3`` for a flag; bind it to --x-range."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] == "--x-range" and i + 1 < len(argv):
            out.append(f"--x-range={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def main(argv=None) -> int:
    args = parse_args(argv)
    from jaxlabs import report  # after parsing, so --help and bad flags answer at once

    task = get_task(args.task)
    static_over = {k: getattr(args, k) for k in STATIC_FLAGS if getattr(args, k) is not None}
    traced_over = {k: getattr(args, k) for k in TRACED_FLAGS if getattr(args, k) is not None}
    for k in DUAL_FLAGS:
        if getattr(args, k) is not None:
            (traced_over if k in task.traced_defaults else static_over)[k] = getattr(args, k)
    for k in static_over:
        if k not in task.static_defaults:
            fail(PROG, f"argument {_flag(k)}: task {task.name} has no such option; see --help")
    for k in traced_over:
        if k not in task.traced_defaults:
            fail(PROG, f"argument {_flag(k)}: task {task.name} has no such option; see --help")
    try:
        static = task.resolve_static(**static_over)
        task.check(static)
    except (ValueError, FileNotFoundError) as e:
        fail(PROG, str(e))
    out = args.out or f"runs/{args.task}-lr-sweep"
    try:
        out = report.check_writable(out)
    except OSError as e:
        fail(PROG, f"argument --out: cannot write to {out!r} ({e.strerror or e}); choose a writable folder")
    lrs = args.lr or list(task.lr_grid)
    axes = {"lr": lrs, **{k: [traced_over.get(k, v)] for k, v in task.traced_defaults.items() if k != "lr"}}
    seeds = list(range(args.seeds))
    print(f"{task.description}\n{report.static_label(static)}\n{len(lrs)} learning rates x {len(seeds)} "
          f"seeds = {len(lrs) * len(seeds)} members in one vmapped program; up to {static['epochs']} epochs")
    t0 = time.perf_counter()
    try:
        result = report.run_and_save(task, static, seeds, axes, out, progress=not args.no_progress,
                                     command=" ".join([PROG, *(sys.argv[1:] if argv is None else argv)]))
    except (ValueError, FileNotFoundError) as e:  # e.g. a dataset that is not on this machine
        fail(PROG, str(e))
    print(report.lr_tables(task, result))
    print(f"\n{time.perf_counter() - t0:.1f} s in all; wrote {out}/results.json, results.csv, "
          f"curves.npz, {', '.join(result.plots)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
