"""auto against every forced plan: the default sweep on an empty plan cache and cached, and one group where plans differ.

    python -m experiments.benchmark auto                          # 2 rounds, then the Lab A group of 32
    python -m experiments.benchmark auto --rounds 3 --json runs/bench-auto.json
    python -m experiments.benchmark auto --rounds 0                     # the group alone
    python -m experiments.benchmark auto --epochs 500 --group-members 0  # a quick look at the sweep

The default sweep is ``python -m experiments.lr_sweep`` as shipped (fit-log2cos at its defaults,
lr 0.001/0.01/0.1 x 3 seeds, auto with compaction, checkpoints every 5 minutes), run through the
same library call (:func:`jaxlabs.reproduce.run_study`) as: auto on an empty plan cache (a fresh
``JAXLABS_CACHE_DIR``: a user's first run), auto again on the cache that run filled (every later
run), and each forced plan with compaction (``--plan vmap`` ...). The variants take turns within a
round, so a change in the machine's load falls on all of them; each run's training wall time
(compiles and auto's probe included, report and figures excluded) is read from the
``results.json`` it wrote. Each run is set against the fastest forced plan of its own round; the
table gives the median of those ratios. Targets: auto's first run within 10% of the fastest forced
plan, later runs within 5%.

The group: Lab A with many members, one learning rate, no stopping (every member trains every
epoch, so only the plan changes the work), where ``map`` and ``vmap`` differ by 20% or more on
a CPU: auto on an empty cache should pick the faster one.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from experiments.bench import forced_plans, load, machine, plan_cache, save, timed
from jaxlabs.cli import int_at_least
from jaxlabs.engine.options import EngineOptions
from jaxlabs.tasks import get_task

TASK = "fit-log2cos"  # lr_sweep's default task
SEEDS = [0, 1, 2]  # lr_sweep's --seeds 3
CHECKPOINT_EVERY = 300.0  # lr_sweep's --checkpoint-every 5m


def add_arguments(p) -> None:
    p.add_argument("--rounds", type=int_at_least(0), default=2,
                   help="rounds of every variant of the default sweep; 0: only the group (default: %(default)s)")
    p.add_argument("--plans", type=forced_plans, default=forced_plans("vmap,map,hybrid:4"),
                   help="forced plans to time beside auto (default: vmap,map,hybrid:4)")
    p.add_argument("--epochs", type=int_at_least(1), default=None,
                   help="the sweep's epochs (default: the task's, as lr_sweep)")
    p.add_argument("--group-members", dest="group_members", type=int_at_least(0), default=32,
                   help="members of the group where plans differ; 0: no group (default: %(default)s)")
    # 8 chunks of 250: auto probes a group only where 15% of its time left exceeds a compile and a
    # chunk, which a 4-chunk group of this size does not pass (BENCHMARKS.md, "auto against every plan")
    p.add_argument("--group-epochs", dest="group_epochs", type=int_at_least(1), default=2000,
                   help="epochs of that group (default: %(default)s)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")


def sweep_run(engine: EngineOptions, out: Path, epochs) -> dict:
    """The default sweep once, as lr_sweep runs it; its figures from the results.json it wrote."""
    import json

    from jaxlabs.reproduce import run_study, sweep_study

    task = get_task(TASK)
    static = task.resolve_static(epochs=epochs)
    study = sweep_study(task, static, list(task.lr_grid), task.hparams())
    _, wall = timed(run_study, study, SEEDS, out, progress=False, engine=engine, checkpoint_every=CHECKPOINT_EVERY,
                    command="python -m experiments.benchmark auto")
    meta = json.loads((out / "results.json").read_text())
    g = meta["timing"][0]
    return {"train_s": meta["wall_s"], "wall_s": round(wall, 2), "plan": g["plan"], "source": g["plan_source"],
            "probe": g["probe_s"], "compile_s": g["compile_s"]}


def group_run(engine: EngineOptions, members: int, epochs: int) -> dict:
    """The group once: Lab A, ``members`` seeds at lr 0.01, tolerance 0 (no member stops)."""
    from jaxlabs.sweep import run_sweep

    task = get_task(TASK)
    r, wall = timed(run_sweep, task, [{"epochs": epochs}], list(range(members)), {"lr": [0.01], "tolerance": [0.0]},
                    engine=engine, progress=False)
    g = r.groups[0]
    return {"train_s": round(wall, 2), "plan": g.plan, "source": g.plan_source, "probe": g.probe,
            "compile_s": round(g.compile_s, 2)}


def variants(plans: list) -> list:
    """(label, engine options, whether auto's cache starts empty) of each run of a round."""
    auto = EngineOptions(plan=None, compaction=True)
    return [("auto, first run", auto, True), ("auto, cached", auto, False),
            *((str(p), EngineOptions(plan=p, compaction=True), False) for p in plans)]


def ratio_table(rows: list[dict], labels: list[str], forced: list[str]) -> tuple[str, dict]:
    """Markdown: per variant and round, the training seconds, the plan and the ratio to that
    round's fastest forced plan (rounds on a shared machine can differ 2x in load: a ratio within
    a round compares runs minutes apart); then the median of those ratios."""
    rounds = sorted({r["round"] for r in rows})
    cell = {(r["variant"], r["round"]): r for r in rows}
    best = {k: min((cell[v, k] for v in forced), key=lambda r: r["train_s"]) for k in rounds}
    ratio = {v: [cell[v, k]["train_s"] / best[k]["train_s"] for k in rounds] for v in labels}
    head = "| variant | " + " | ".join(f"round {k + 1}" for k in rounds) + " | median ratio |"
    lines = [head, "|" + "---|" * (len(rounds) + 2)]
    for v in labels:
        cells = [f"{cell[v, k]['train_s']:.1f} s, {cell[v, k]['plan']}, {q:.2f}" for k, q in zip(rounds, ratio[v])]
        lines.append(f"| {v} | " + " | ".join(cells) + f" | **{np.median(ratio[v]):.2f}** |")
    fastest = [best[k]["variant"] for k in rounds]
    return "\n".join(lines), {"fastest_forced": max(set(fastest), key=fastest.count), "fastest_per_round": fastest,
                              "ratio": {v: round(float(np.median(q)), 3) for v, q in ratio.items()},
                              "ratios": {v: [round(x, 3) for x in q] for v, q in ratio.items()}}


def run(args) -> int:
    scratch = Path(tempfile.mkdtemp(prefix="jaxlabs-bench-auto-"))
    doc = {"machine": machine(), "command": "python -m experiments.benchmark auto", "sweep": [], "group": []}
    epochs = args.epochs or get_task(TASK).static_defaults["epochs"]
    try:
        if args.rounds:
            print(f"default sweep: {TASK}, lr 0.001/0.01/0.1 x {len(SEEDS)} seeds, {epochs} epochs; "
                  f"{args.rounds} rounds; {load()}", flush=True)
        labels = [v[0] for v in variants(args.plans)]
        for k in range(args.rounds):
            for label, engine, empty in variants(args.plans):
                cache = scratch / f"cache-{k}"  # auto's first run of a round fills it, the cached run reads it
                if empty:
                    shutil.rmtree(cache, ignore_errors=True)
                cache.mkdir(exist_ok=True)
                with plan_cache(cache):
                    r = sweep_run(engine, scratch / f"sweep-{k}-{label.replace(' ', '').replace(',', '-')}",
                                  args.epochs)
                doc["sweep"].append({"round": k, "variant": label, **r, "load": load()})
                print(f"  round {k + 1} {label:16} train {r['train_s']:7.1f} s (compile {r['compile_s']:.1f}), "
                      f"plan {r['plan']} ({r['source']}); {load()}", flush=True)
        if args.rounds:
            table, summary = ratio_table(doc["sweep"], labels, [str(p) for p in args.plans])
            doc["sweep_summary"] = summary
            print("\n" + table)
            print(f"\nauto's first run / the round's fastest forced plan, median over rounds: "
                  f"{summary['ratio']['auto, first run']:.2f} (target <= 1.10); cached: "
                  f"{summary['ratio']['auto, cached']:.2f} (target <= 1.05)")
        if args.group_members:
            n, e = args.group_members, args.group_epochs
            print(f"\ngroup: {TASK}, {n} members at lr 0.01, tolerance 0, {e} epochs; {load()}", flush=True)
            glabels = ["auto, first run", *(str(p) for p in args.plans)]
            for label, engine in zip(glabels, [EngineOptions(plan=None), *(EngineOptions(plan=p) for p in args.plans)]):
                cache = scratch / "cache-group"
                shutil.rmtree(cache, ignore_errors=True)
                cache.mkdir()
                with plan_cache(cache):
                    r = group_run(engine, n, e)
                doc["group"].append({"round": 0, "variant": label, **r, "load": load()})
                probe = ", ".join(f"{p} {t:.2f} s" for p, t in r["probe"].items())
                print(f"  {label:16} {r['train_s']:7.1f} s (compile {r['compile_s']:.1f}), plan {r['plan']} "
                      f"({r['source']}{': chunk ' + probe if probe else ''}); {load()}", flush=True)
            table, summary = ratio_table(doc["group"], glabels, [str(p) for p in args.plans])
            spread = max(summary["ratio"][str(p)] for p in args.plans)
            chose = doc["group"][0]["plan"]
            summary.update(spread=round(spread, 3), auto_chose=chose, auto_chose_fastest=chose == summary["fastest_forced"])
            doc["group_summary"] = summary
            print("\n" + table)
            print(f"\nslowest / fastest forced plan: {spread:.2f}; auto chose {chose}, the fastest forced plan is "
                  f"{summary['fastest_forced']}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    save(args.json, doc)
    return 0
