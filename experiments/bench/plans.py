"""How fast each plan trains a group: Lab A, the Lab D CNN and ResNet20 at several member counts, under every plan auto may choose and auto itself.

    python -m experiments.benchmark plans                   # this machine's table (CPU sizes)
    python -m experiments.benchmark plans --json plans.json
    python -m experiments.benchmark plans --sizes device    # an accelerator's sizes, every device

Member-epochs/s for Lab A, images/s for the image labs (synthetic data of the real shapes, so the
rate is the model's, not the dataset's). Compile time is excluded from every rate; auto's rate
includes its probe, which is forced here on every group (``EngineOptions(probe_gain=inf)``: every
candidate is worth timing) so the table shows what it would choose. Candidates are auto's own
(:func:`jaxlabs.engine.auto.candidates`). ``compaction`` measures the gain of compaction.
"""
from __future__ import annotations

import argparse
import time

import jax

from experiments.bench import load, machine, save
from jaxlabs.cli import int_at_least
from jaxlabs.engine.auto import candidates
from jaxlabs.sweep import EngineOptions, run_group
from jaxlabs.tasks import get_task

# name -> (task, static options, traced numbers, epochs per chunk, unit). Each group runs at least
# two chunks, so auto has a group to decide for
WORKLOADS = {
    "lab-a": ("fit-log2cos", {"epochs": 100}, {"lr": 0.01, "tolerance": 0.0}, 25, "member-epochs/s"),
    "cnn": ("mnist-cnn", {"synthetic": 640, "subset": 1.0, "epochs": 2}, {"lr": 0.001}, 1, "images/s"),
    "resnet20": ("cifar-resnet20", {"synthetic": 512, "epochs": 2, "augment": False}, {"lr": 0.1}, 1, "images/s"),
}
SIZES = {
    "cpu": {"lab-a": (1, 8, 64, 256), "cnn": (1, 8), "resnet20": (1, 4)},  # minutes on 2 cores
    "device": {"lab-a": (1, 8, 64, 256, 1024), "cnn": (1, 8, 64, 256), "resnet20": (1, 8, 64)},
}
DEVICE_RESNET = {"synthetic": 10_000, "epochs": 10, "augment": True}  # the 64 x 10-epoch target


def workloads(text: str) -> list[str]:
    names = [w.strip() for w in text.split(",")]
    bad = [w for w in names if w not in WORKLOADS]
    if bad:
        raise argparse.ArgumentTypeError(f"{bad[0]!r} is not a workload; choose from {', '.join(WORKLOADS)}")
    return names


def add_arguments(p) -> None:
    p.add_argument("--sizes", choices=sorted(SIZES), default="cpu",
                   help="member counts: cpu (this machine's minutes) or device (one accelerator's; every device)")
    p.add_argument("--workloads", type=workloads, default=list(WORKLOADS),
                   help=f"of {','.join(WORKLOADS)} (default: all)")
    p.add_argument("--members", type=lambda t: [int_at_least(1)(v) for v in t.split(",")], default=None,
                   help="member counts for every workload, e.g. 1,8 (default: --sizes')")
    p.add_argument("--all-devices", dest="all_devices", action="store_true",
                   help="split members over every device present (default: one device; --sizes device: all)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")


def time_group(trainer, data, traced: dict, chunk: int, members: int, plan, devices: int) -> dict:
    """One group under ``plan`` (None: auto, probing every candidate); training seconds without compiles."""
    hp = {k: [v] * members for k, v in traced.items()}
    t0 = time.perf_counter()
    g = run_group(trainer, data, list(range(members)), hp, progress=False, plan_key=None,
                  options=EngineOptions(chunk=chunk, plan=plan, devices=devices, probe_gain=float("inf")))
    return {"train_s": time.perf_counter() - t0 - g.compile_s, "plan": g.plan, "compile_s": g.compile_s,
            "epochs": g.epochs_run, "images": int(len(data["x_train"])) if "x_train" in data else None}


def plan_table(sizes: str, devices: int, names: list[str], counts=None) -> list[dict]:
    rows = []
    for name in names:
        member_counts = counts or SIZES[sizes][name]
        task_name, static, traced, chunk, unit = WORKLOADS[name]
        if sizes == "device" and name == "resnet20":
            static = {**static, **DEVICE_RESNET}
        task = get_task(task_name)
        trainer, data = task.build(task.resolve_static(**static))  # once: every plan trains the same
        for members in member_counts:
            for plan in [*candidates(max(members // devices, 1)), None]:
                r = time_group(trainer, data, task.hparams(**traced), chunk, members, plan, devices)
                work = members * r["epochs"] * (r["images"] if unit == "images/s" else 1)
                rows.append({"workload": name, "members": members, "plan": "auto" if plan is None else str(plan),
                             "chose": r["plan"], "rate": work / r["train_s"], "unit": unit,
                             "train_s": round(r["train_s"], 3), "compile_s": round(r["compile_s"], 2)})
                print(f"  {name:10} {members:5} members  {rows[-1]['plan']:10} {rows[-1]['rate']:12.1f} {unit}"
                      f"  ({r['train_s']:.2f} s{'; chose ' + r['plan'] if plan is None else ''})", flush=True)
    return rows


def markdown(rows: list[dict]) -> str:
    plans = list(dict.fromkeys(r["plan"] for r in rows if r["plan"] != "auto")) + ["auto"]
    lines = ["| workload | members | " + " | ".join(plans) + " | auto chose | unit |", "|---" * (len(plans) + 4) + "|"]
    for name, members in dict.fromkeys((r["workload"], r["members"]) for r in rows):
        cells = {r["plan"]: r for r in rows if r["workload"] == name and r["members"] == members}
        rate = [f"{cells[p]['rate']:.0f}" if p in cells else "-" for p in plans]
        lines.append(f"| {name} | {members} | " + " | ".join(rate) + f" | {cells['auto']['chose']} | "
                     f"{cells['auto']['unit']} |")
    return "\n".join(lines)


def run(args) -> int:
    devices = jax.devices() if args.all_devices or args.sizes == "device" else jax.devices()[:1]
    info = machine(devices)
    print(f"plans on {info['backend']} ({info['device']} x {len(devices)}, {info['cpu_count']} CPUs), sizes "
          f"{args.sizes}; compile excluded, auto's probe included; {load()}")
    rows = plan_table(args.sizes, len(devices), args.workloads, args.members)
    print("\n" + markdown(rows))
    save(args.json, {"machine": info, "sizes": args.sizes, "plans": rows})
    return 0
