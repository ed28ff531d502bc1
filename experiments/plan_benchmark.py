"""How fast each plan trains a group, side by side in one run: member-epochs/s for Lab A, images/s
for the Lab D CNN and ResNet20 (synthetic data of the real shapes), at several member counts,
under vmap, map, hybrid:K and auto; and the gain of compaction on a Lab A learning-rate study
whose members stop at different epochs.

    python -m experiments.benchmark --plans                 # this machine's table (CPU sizes)
    python -m experiments.benchmark --plans --json plans.json
    python -m experiments.benchmark --suite device          # the accelerator table (H200 sizes)

Compile time is excluded from every rate; auto's rate includes its probe (the probe is forced
even where auto would skip it as not worth it, so the table shows what it chooses).
"""
from __future__ import annotations

import json
import os
import platform
import time

import jax
import numpy as np

from jaxlabs import sweep
from jaxlabs.plans import Plan
from jaxlabs.sweep import EngineOptions, Member, run_group
from jaxlabs.tasks import get_task

# name -> (task, static options, traced numbers, unit); the image labs train on synthetic data of
# the real image shape, so the rate is the model's, not the dataset's
# the image labs train on synthetic data of the real image shape, so the rate is the model's, not
# the dataset's. Each group runs at least two chunks: auto decides after its first.
WORKLOADS = {  # name -> (task, static options, traced numbers, epochs per chunk, unit)
    "Lab A": ("fit-log2cos", {"epochs": 100}, {"lr": 0.01, "tolerance": 0.0}, 25, "member-epochs/s"),
    "Lab D CNN": ("mnist-cnn", {"synthetic": 640, "subset": 1.0, "epochs": 2}, {"lr": 0.001}, 1, "images/s"),
    "ResNet20": ("cifar-resnet20", {"synthetic": 512, "epochs": 2, "augment": False}, {"lr": 0.1}, 1, "images/s"),
}
SUITES = {
    # 2-core CPU: the conv labs at the member counts this machine trains in minutes
    "cpu": {"Lab A": (1, 8, 64, 256), "Lab D CNN": (1, 8), "ResNet20": (1, 4)},
    # one accelerator, within 8 minutes
    "device": {"Lab A": (1, 8, 64, 256, 1024), "Lab D CNN": (1, 8, 64, 256), "ResNet20": (1, 8, 64)},
}
DEVICE_RESNET = {"synthetic": 10_000, "epochs": 10, "augment": True}  # the 64 x 10-epoch target
COMPACTION = {"task": "fit-log2cos", "static": {"n": 200, "epochs": 20_000},
              "lrs": (0.001, 0.01, 0.1), "seeds": 6, "tolerance": 1e-4}  # A-lr at N=200


def plans_for(members: int) -> list:
    return [Plan("vmap"), Plan("map")] + [Plan("hybrid", k) for k in (4, 16) if k < members] + [None]


def time_group(trainer, data, traced: dict, chunk: int, members: int, plan, devices) -> dict:
    hp = {k: [v] * members for k, v in traced.items()}
    t0 = time.perf_counter()
    g = run_group(trainer, data, list(range(members)), hp, progress=False,
                  plan_key=None, options=EngineOptions(chunk=chunk, plan=plan, devices=len(devices)))
    train_s = time.perf_counter() - t0 - g.compile_s  # auto: its probe included
    return {"train_s": train_s, "plan": g.plan, "compile_s": g.compile_s, "epochs": g.epochs_run,
            "images": int(len(data["x_train"])) if "x_train" in data else None}


def plan_table(suite: str, devices) -> list[dict]:
    rows = []
    old = sweep.PROBE_SHARE
    sweep.PROBE_SHARE = float("inf")  # auto probes every group here, so its choice is shown
    try:
        for name, counts in SUITES[suite].items():
            task_name, static, traced, chunk, unit = WORKLOADS[name]
            if suite == "device" and name == "ResNet20":
                static = {**static, **DEVICE_RESNET}
            task = get_task(task_name)
            trainer, data = task.build(task.resolve_static(**static))  # once: every plan trains the same
            for members in counts:
                for plan in plans_for(members):
                    r = time_group(trainer, data, task.hparams(**traced), chunk, members, plan, devices)
                    work = members * r["epochs"] * (r["images"] if unit == "images/s" else 1)
                    rows.append({"workload": name, "members": members, "plan": "auto" if plan is None else str(plan),
                                 "chose": r["plan"], "rate": work / r["train_s"], "unit": unit,
                                 "train_s": round(r["train_s"], 3), "compile_s": round(r["compile_s"], 2)})
                    print(f"  {name:10} {members:5} members  {rows[-1]['plan']:10} {rows[-1]['rate']:12.1f} {unit}"
                          f"  ({r['train_s']:.2f} s{'; chose ' + r['plan'] if plan is None else ''})", flush=True)
    finally:
        sweep.PROBE_SHARE = old
    return rows


def compaction_gain(devices) -> dict:
    """A-lr at N=200 (lr 0.001 / 0.01 / 0.1 x seeds): vmap without compaction against auto with it,
    auto as on a user's first run (an empty plan cache: it probes)."""
    import tempfile
    from unittest import mock

    with mock.patch.dict(os.environ, JAXLABS_CACHE_DIR=tempfile.mkdtemp(prefix="jaxlabs-bench-cache-")):
        return _compaction_gain(devices)


def _compaction_gain(devices) -> dict:
    c = COMPACTION
    task = get_task(c["task"])
    static = task.resolve_static(**c["static"])
    members = [Member(f"lr={lr:g}", static, task.hparams(lr=lr, tolerance=c["tolerance"]), seed)
               for lr in c["lrs"] for seed in range(c["seeds"])]
    out = {}
    for label, engine in (("vmap, no compaction", EngineOptions(devices=len(devices))),
                          ("auto + compaction", EngineOptions(plan=None, compaction=True, devices=len(devices)))):
        t0 = time.perf_counter()
        r = sweep.run_grid(task, members, progress=False, engine=engine)
        g = r.groups[0]
        out[label] = {"wall_s": round(time.perf_counter() - t0, 2), "compile_s": round(g.compile_s, 2),
                      "plan": g.plan, "stop_epochs": sorted(g.final["stop_epoch"].tolist())}
        print(f"  {label:22} {out[label]['wall_s']:8.1f} s wall (compile {g.compile_s:.1f} s, plan {g.plan})", flush=True)
    out["gain"] = round(out["vmap, no compaction"]["wall_s"] / out["auto + compaction"]["wall_s"], 2)
    return out


def chunk_spread(rounds: int) -> dict:
    """One chunk of the default sweep's grid (Lab A, 9 members, no stopping) under each plan auto
    would probe, ``rounds`` times in rotation, each plan carrying on from its own state: the spread
    of one chunk's time, which a one-chunk probe has to see through."""
    task = get_task("fit-log2cos")
    trainer, data = task.build(task.resolve_static())
    seeds, lrs = list(range(3)) * 3, np.repeat(np.float32(task.lr_grid), 3)
    hp = {k: np.full(len(seeds), v, np.float32) for k, v in task.traced_defaults.items()}
    hp.update(lr=lrs, tolerance=np.zeros(len(seeds), np.float32))
    key_data = np.asarray(sweep.member_keys(seeds))
    plans = sweep.probe_candidates(len(seeds))
    programs = {str(p): sweep.Programs(trainer, data, p) for p in plans}
    start = programs["vmap"].init(key_data, hp)
    states = dict.fromkeys(programs, start)
    times: dict[str, list[float]] = {p: [] for p in programs}
    for r in range(rounds):
        for p, prog in programs.items():  # timed as auto's probe times a candidate (compile off the clock)
            (states[p], _), took = sweep._timed_chunk(prog, states[p], hp, r * task.chunk, task.chunk)
            times[p].append(took)
    print(f"one {task.chunk}-epoch chunk of the default grid ({len(seeds)} members), {rounds} rounds in rotation:")
    out = {}
    for p, t in times.items():
        out[p] = {"min": min(t), "median": float(np.median(t)), "max": max(t), "times": t}
        print(f"  {p:10} min {min(t):.2f} s  median {np.median(t):.2f} s  max {max(t):.2f} s")
    return out


def markdown(rows: list[dict]) -> str:
    lines = ["| workload | members | " + " | ".join(p for p in ("vmap", "map", "hybrid:4", "hybrid:16", "auto")) +
             " | auto chose | unit |", "|---|---|---|---|---|---|---|---|---|"]
    keys = dict.fromkeys((r["workload"], r["members"]) for r in rows)
    for name, members in keys:
        cells = {r["plan"]: r for r in rows if r["workload"] == name and r["members"] == members}
        rate = [f"{cells[p]['rate']:.0f}" if p in cells else "-" for p in ("vmap", "map", "hybrid:4", "hybrid:16", "auto")]
        lines.append(f"| {name} | {members} | " + " | ".join(rate) + f" | {cells['auto']['chose']} | "
                     f"{cells['auto']['unit']} |")
    return "\n".join(lines)


def run(suite: str, json_path: str | None = None, devices_all: bool = False) -> dict:
    devices = jax.devices() if devices_all or suite == "device" else jax.devices()[:1]  # device: every GPU
    machine = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "jax": jax.__version__,
               "backend": jax.default_backend(), "device": devices[0].device_kind, "devices": len(devices)}
    print(f"plans on {machine['backend']} ({machine['device']} x {len(devices)}, {machine['cpu_count']} CPUs), "
          f"suite {suite}; compile excluded, auto's probe included")
    rows = plan_table(suite, devices)
    print("\n" + markdown(rows))
    print("\ncompaction on a Lab A learning-rate study (N=200, lr 0.001/0.01/0.1, "
          f"{COMPACTION['seeds']} seeds, tolerance 1e-4, up to 20000 epochs):")
    gain = compaction_gain(devices)
    print(f"  auto + compaction is {gain['gain']:.2f}x as fast as vmap without compaction")
    result = {"machine": machine, "suite": suite, "plans": rows, "compaction": gain}
    if json_path:
        with open(json_path, "w") as f:
            json.dump(result, f, indent=1, default=lambda o: o.item() if isinstance(o, np.generic) else str(o))
        print(f"wrote {json_path}")
    return result


def default_sweep_vs_vmap(out_root: str = "runs/benchmark-sweep") -> dict:
    """``python -m experiments.lr_sweep`` as shipped (auto plan, compaction) against the same grid
    with ``--plan vmap``, one after the other: the default twice, first with an empty plan cache
    (auto probes: a user's first run) and then with the choice cached (every later run)."""
    import subprocess
    import sys
    import tempfile

    out = {}
    env = dict(os.environ, JAXLABS_CACHE_DIR=tempfile.mkdtemp(prefix="jaxlabs-bench-cache-"))
    runs = (("default, first run (probes)", "default", []), ("default, plan cached", "default-cached", []),
            ("--plan vmap", "vmap", ["--plan", "vmap"]))
    for label, folder, extra in runs:
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "experiments.lr_sweep", "--no-progress", "--out",
                            os.path.join(out_root, folder), *extra], env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        plan = [line for line in p.stdout.splitlines() if line.startswith("compile ")]
        out[label] = {"wall_s": round(wall, 1), "summary": plan[0] if plan else p.stderr[-300:]}
        print(f"  {label:30} {wall:7.1f} s  {out[label]['summary']}", flush=True)
    vmap = out["--plan vmap"]["wall_s"]
    out["speedup_first"] = round(vmap / out["default, first run (probes)"]["wall_s"], 2)
    out["speedup_cached"] = round(vmap / out["default, plan cached"]["wall_s"], 2)
    print(f"  the default is {out['speedup_first']:.2f}x as fast as --plan vmap on its first run, "
          f"{out['speedup_cached']:.2f}x once its plan is cached")
    return out


def devices_overhead(count: int = 4) -> dict:
    """The default sweep split over ``count`` simulated CPU devices against one device: on one CPU
    they share the same cores, so this is the overhead of splitting, not a speed-up."""
    import subprocess
    import sys

    out = {}
    for label, devices in ((f"{count} simulated devices", "all"), ("1 device", "1")):
        env = dict(os.environ)
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={count}".strip()
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "experiments.lr_sweep", "--no-progress", "--plan", "vmap",
                            "--devices", devices, "--out", f"runs/benchmark-devices-{devices}"],
                           env=env, capture_output=True, text=True)
        out[label] = {"wall_s": round(time.perf_counter() - t0, 1),
                      "summary": next((line for line in p.stdout.splitlines() if line.startswith("compile ")),
                                      p.stderr[-300:])}
        print(f"  {label:22} {out[label]['wall_s']:7.1f} s  {out[label]['summary']}", flush=True)
    out["overhead"] = round(out[f"{count} simulated devices"]["wall_s"] / out["1 device"]["wall_s"] - 1, 3)
    print(f"  splitting over {count} devices costs {out['overhead']:+.1%} of the one-device wall time")
    return out
