"""Every task's programs lowered for CUDA on this machine (no GPU needed, nothing compiled): init,
a chunk and finish at tiny sizes, under each plan and precision, built with the convolution the
engine picks on a GPU (``lax.conv``), on one device and shard_mapped over two simulated ones.

    python -m experiments.gpu_check                          # every task; the table; exit 1 on a finding
    python -m experiments.gpu_check --tasks mnist-cnn,cifar-resnet20 --plans vmap,map --json gpu_check.json

A row fails when a program does not lower or the chunk calls back to the host (a callback inside
the training loop is one Python round trip per step). Grouped convolutions are reported, not
failed: under vmap a conv net's members become one grouped convolution (``feature_group_count`` =
members per device), XLA:GPU's slow path, which is why auto times ``map`` and ``hybrid:K`` for
such a group (``jaxlabs.engine.auto.candidates``). The two-device rows need
``--xla_force_host_platform_device_count`` in ``XLA_FLAGS`` before JAX starts: this command sets it
when it is not there.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from jaxlabs import atomic
from jaxlabs.cli import ArgumentParser, fail, int_at_least

PROG = "python -m experiments.gpu_check"
# members per group: under vmap on one device the conv nets' group count is this; 4 keeps hybrid:2
# two blocks and gives each of two devices two members
MEMBERS = 4
CHUNK = 2  # epochs in the lowered chunk (a scan: its length does not change the module's size)
PRECISIONS = ("fp32", "bf16")
DEVICES = 2  # the shard_mapped rows' simulated devices
# task -> tiny static options: the shapes of the real programs, small enough to trace in seconds
TINY = {
    "fit-log2cos": dict(n=120, width=16, depth=2, epochs=4),
    "fit-poly": dict(n=120, width=16, depth=2, epochs=4),
    "boston": dict(width=16, epochs=4),
    "mnist-cnn": dict(synthetic=40, subset=1.0, depth=2, channels=4, hidden=8, batch_size=8, epochs=4,
                      batch_norm=True, augment=True),
    "fashion-mlp": dict(synthetic=48, hidden=8, batch_size=16, epochs=4),
    "cifar-resnet20": dict(synthetic=24, blocks=1, width=4, batch_size=8, epochs=4, drop_epoch=1),
    "mnist-scratch": dict(val_size=40, batch_size=8, width=16, epochs=4),  # data_dir: tiny IDX files
    "csv": dict(target="y", width=8, depth=1, batch_size=8, epochs=4),  # data: a tiny table
    "image-folder": dict(model="cnn", depth=1, channels=4, hidden=8, batch_norm=True, batch_size=8, epochs=4,
                         crop=1, flip=True),  # data_dir: a tiny image folder
}
HEADERS = ("task", "plan", "precision", "devices", "lowered", "kB init/chunk/finish (+ begin/slice/end)",
           "matmul precision", "chunk convs", "grouped", "largest group", "chunk callbacks in loop")


def parse_args(argv=None):
    from jaxlabs.engine.plans import parse_forced_plan
    from jaxlabs.tasks import TASKS

    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])

    def comma_list(flag: str, parse):
        def check(text: str) -> list:
            items = [t.strip() for t in text.split(",")]
            if not text.strip() or not all(items):
                raise argparse.ArgumentTypeError(f"{text!r} is empty or has an empty item")
            return [parse(t) for t in items]
        check.__name__ = f"{flag} list"
        return check

    def one_of(allowed):
        def parse(t: str) -> str:
            if t not in allowed:
                raise argparse.ArgumentTypeError(f"{t!r} is not one of {', '.join(allowed)}")
            return t
        return parse

    def plan(t: str):
        try:
            return parse_forced_plan(t)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    p.add_argument("--tasks", type=comma_list("--tasks", one_of(tuple(TASKS))), default=list(TASKS),
                   help=f"comma list of tasks (default: every task: {','.join(TASKS)})")
    p.add_argument("--plans", type=comma_list("--plans", plan), default="vmap,map,hybrid:2",
                   help="comma list of vmap, map, hybrid:K (default: %(default)s)")
    p.add_argument("--precisions", type=comma_list("--precisions", one_of(PRECISIONS)), default=list(PRECISIONS),
                   help="comma list of fp32, bf16 (default: both)")
    p.add_argument("--members", type=int_at_least(1), default=MEMBERS,
                   help="members per device (default: %(default)s)")
    p.add_argument("--devices", type=int_at_least(0), default=DEVICES,
                   help="simulated devices of the shard_mapped rows (each plan, fp32); 0 or 1: none "
                        "(default: %(default)s)")
    p.add_argument("--platform", choices=("cuda", "rocm", "tpu", "cpu"), default="cuda",
                   help="the platform to lower for (default: %(default)s)")
    p.add_argument("--json", default=None, help="also write every program's findings to this JSON file")
    return p.parse_args(argv)


def write_idx_mnist(folder: Path, n_train: int = 200, n_test: int = 50, size: int = 8) -> Path:
    """Four tiny uncompressed IDX files (random 8x8 digits) in ``folder``: mnist-scratch's data."""
    rng = np.random.default_rng(0)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, size, size), dtype=np.uint8),
              "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, size, size), dtype=np.uint8),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8)}
    for name, a in arrays.items():  # two zero bytes, uint8 (0x08), the dims, big-endian
        header = bytes([0, 0, 0x08, a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
        atomic.write_bytes(folder / name, header + a.tobytes())
    return folder


def write_table(path: Path, rows: int = 60) -> Path:
    """A tiny CSV table (two numbers, a category, a number target): the csv task's data."""
    rng = np.random.default_rng(0)
    colour = rng.choice(["red", "green", "blue"], rows)
    lines = ["x1,x2,colour,y"] + [f"{a:.4f},{b:.4f},{c},{a - b + (c == 'red'):.4f}"
                                  for a, b, c in zip(rng.normal(size=rows), rng.normal(size=rows), colour)]
    atomic.write_text(path, "\n".join(lines) + "\n")
    return path


def write_image_folder(root: Path, per_class: int = 12, size: int = 8) -> Path:
    """``root/{train,test}/{a,b,c}/*.png``, random colour images: the image-folder task's data."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("test", per_class // 3)):
        for name in ("a", "b", "c"):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(image).save(root / split / name / f"{i}.png")
    return root


def check_row(task_name: str, static: dict | None, plan, precision: str, devices: list, members: int,
              platform: str) -> dict:
    """One table row: the task's programs lowered for ``platform`` (``static``: its tiny options;
    None: it has none here, a failure)."""
    from jaxlabs.engine.lowering import check_programs
    from jaxlabs.engine.placement import Placement
    from jaxlabs.tasks import TASKS

    row = {"task": task_name, "plan": str(plan), "precision": precision, "devices": len(devices), "programs": []}
    try:
        if static is None:
            raise LookupError("no tiny configuration in experiments.gpu_check.TINY")
        task = TASKS[task_name](backend=platform)  # the models this platform gets (lax.conv off the CPU)
        trainer, data = task.build(task.resolve_static(**static))
    except Exception as e:  # a task that cannot be built here is a finding too
        failed = [f"build: {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"]
        return {**row, "ok": False, "failures": failed,
                "row": (task_name, str(plan), precision, str(len(devices)), "NO", *["-"] * 6)}
    checks = check_programs(trainer, data, plan, task.hparams(), members, precision, Placement(devices),
                            platform, CHUNK)
    by = {c.program: c for c in checks}
    failed = [f"{c.program}: {c.error}" for c in checks if not c.lowered]
    for name in ("chunk", "slice", "end"):  # the programs the training loop calls
        if name in by and by[name].callbacks:
            failed.append(f"{name}: {by[name].callbacks} host callback(s)")
    return {**row, "ok": not failed, "failures": failed, "programs": [c.to_json() for c in checks],
            "row": (task_name, str(plan), precision, str(len(devices)), "yes" if not failed else "NO",
                    "/".join(f"{c.size / 1000:.0f}" if c.lowered else "-" for c in checks[:3]) +
                    (" + sliced " + "/".join(f"{c.size / 1000:.0f}" if c.lowered else "-" for c in checks[3:])
                     if len(checks) > 3 else ""),
                    ",".join(by["chunk"].precisions) or "-",
                    str(by["chunk"].convolutions), str(by["chunk"].grouped),
                    str(by["chunk"].largest_group), str(by["chunk"].callbacks_in_loop))}


def main(argv=None) -> int:
    args = parse_args(argv)
    flag = f"--xla_force_host_platform_device_count={max(args.devices, 1)}"
    if args.devices > 1 and "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()  # before JAX starts
    import jax

    from jaxlabs.results import check_writable, format_table

    if args.json:
        try:
            check_writable(os.path.dirname(os.path.abspath(args.json)))
        except OSError as e:
            fail(PROG, f"--json {args.json}: {e}")

    cpus = jax.devices("cpu")  # lowering for another platform: the arrays' home does not matter
    if len(cpus) < args.devices:
        fail(PROG, f"--devices {args.devices}: JAX started with {len(cpus)} CPU "
             f"device(s); run with XLA_FLAGS={flag} or --devices {len(cpus)}")
    cases = [(t, p, q, cpus[:1]) for t in args.tasks for p in args.plans for q in args.precisions]
    if args.devices > 1:
        cases += [(t, p, "fp32", cpus[:args.devices]) for t in args.tasks for p in args.plans]
    rows, t0 = [], time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="jaxlabs-gpu-check-") as tmp:
        tiny = {t: TINY.get(t) for t in args.tasks}
        if "mnist-scratch" in tiny:
            tiny["mnist-scratch"] = dict(TINY["mnist-scratch"], data_dir=str(write_idx_mnist(Path(tmp))))
        if "csv" in tiny:
            tiny["csv"] = dict(TINY["csv"], data=str(write_table(Path(tmp) / "table.csv")))
        if "image-folder" in tiny:
            tiny["image-folder"] = dict(TINY["image-folder"], data_dir=str(write_image_folder(Path(tmp) / "images")))
        for task, plan, precision, devices in cases:
            members = args.members * len(devices)  # the same members per device on one device and two
            rows.append(check_row(task, tiny[task], plan, precision, devices, members, args.platform))
            print(" ".join(rows[-1]["row"][:5]), flush=True)
    print(f"\nlowered for {args.platform} on {jax.default_backend()} (jax {jax.__version__}) in "
          f"{time.perf_counter() - t0:.0f} s; {args.members} members per device; nothing compiled\n")
    print(format_table(HEADERS, [r["row"] for r in rows]))
    bad = [r for r in rows if not r["ok"]]
    for r in bad:
        print(f"FAILED {r['task']} {r['plan']} {r['precision']} x{r['devices']}: {'; '.join(r['failures'])}")
    if args.json:
        atomic.write_json(args.json, {"platform": args.platform, "jax": jax.__version__,
                                      "members_per_device": args.members,
                                      "rows": [{k: v for k, v in r.items() if k != "row"} for r in rows]})
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
