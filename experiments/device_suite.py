"""One prepared accelerator run: how fast each plan trains Lab A, the Lab D CNN and ResNet20 on one
device, within a time budget that includes every compile, its JSON rewritten after every row so a
run cut off keeps what it measured.

    python -m experiments.device_suite --json device_suite.json            # 480 s budget, one GPU
    python -m experiments.device_suite --tiny --budget-s 120 --json t.json  # the same rows, CPU-sized

Parts, in order, each with a share of the budget (time a part leaves unused goes to the next):
Lab A at 1, 64 and 1,024 members (vmap; auto at 1,024); the Lab D CNN and ResNet20 on synthetic
images of the real shapes (not a result about MNIST or CIFAR-10) under vmap, map, hybrid:K and
auto. A row starts only when the part and the whole run have time left for it: as long as the
part's longest row so far, or the workload's prior guess before its first. auto probes every
candidate worth timing (``probe_gain`` infinite: the table shows what it chooses), with no plan
cache. Rates exclude compiles and auto's probe (its seconds, compiles of a cheaper probe program
included, are ``probe_s``); ``wall_s`` is everything.
"""
from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import dataclass

from jaxlabs import atomic
from jaxlabs.cli import ArgumentParser, fail

PROG = "python -m experiments.device_suite"


@dataclass(frozen=True)
class Part:
    """A workload timed under several (members, plan) rows; ``unit``: member-epochs/s or images/s."""

    name: str
    task: str
    static: dict
    traced: dict
    chunk: int  # epochs per device call (auto decides after the first)
    rows: tuple  # (members, plan text) in the order they run
    share: float  # of the budget
    prior_s: float  # a guess of one row's seconds, compiles included, before one has run
    unit: str


# one H100 / H200, about 8 minutes (480 s) with every compile: Lab A is milliseconds an epoch and
# mostly compile; the conv nets' XLA:GPU compiles (tens of seconds each) dominate their parts
DEVICE = (
    Part("Lab A", "fit-log2cos", {"epochs": 1000}, {"lr": 0.01, "tolerance": 0.0}, 250,
         ((1, "vmap"), (64, "vmap"), (1024, "vmap"), (1024, "auto")), 0.2, 20.0, "member-epochs/s"),
    Part("Lab D CNN", "mnist-cnn", {"synthetic": 6000, "subset": 1.0, "epochs": 3}, {"lr": 0.001}, 1,
         ((32, "vmap"), (32, "map"), (32, "hybrid:8"), (32, "auto")), 0.35, 45.0, "images/s"),
    Part("ResNet20", "cifar-resnet20", {"synthetic": 2560, "epochs": 3, "drop_epoch": 2}, {"lr": 0.1}, 1,
         ((16, "vmap"), (16, "map"), (16, "hybrid:4"), (16, "auto")), 0.45, 75.0, "images/s"),
)
# the same rows at CPU sizes (tests, a dry run anywhere)
TINY = (
    Part("Lab A", "fit-log2cos", {"n": 120, "width": 8, "depth": 2, "epochs": 20},
         {"lr": 0.01, "tolerance": 0.0}, 10, ((1, "vmap"), (4, "vmap"), (16, "vmap"), (16, "auto")), 0.2, 2.0,
         "member-epochs/s"),
    Part("Lab D CNN", "mnist-cnn", {"synthetic": 30, "subset": 1.0, "depth": 1, "channels": 2, "hidden": 8,
                                    "batch_size": 8, "epochs": 2}, {"lr": 0.001}, 1,
         ((4, "vmap"), (4, "map"), (4, "hybrid:2"), (4, "auto")), 0.35, 4.0, "images/s"),
    Part("ResNet20", "cifar-resnet20", {"synthetic": 16, "blocks": 1, "width": 4, "batch_size": 8, "epochs": 2,
                                        "drop_epoch": 1}, {"lr": 0.1}, 1,
         ((4, "vmap"), (4, "map"), (4, "hybrid:2"), (4, "auto")), 0.45, 8.0, "images/s"),
)


def part_deadline(now: float, deadline: float, parts_left: tuple) -> float:
    """When the first of ``parts_left`` must stop starting rows: its share of the time left, among
    the shares of the parts still to run."""
    shares = sum(p.share for p in parts_left)
    return now + max(deadline - now, 0.0) * parts_left[0].share / shares


def fits(now: float, part_end: float, estimate: float) -> bool:
    """Whether a row estimated to take ``estimate`` seconds can start before ``part_end`` (which
    is never past the run's deadline)."""
    return now + estimate <= part_end


def time_row(part: Part, trainer, data, task, members: int, plan_text: str) -> dict:
    """One group of ``members`` (seeds 0..; the part's numbers) trained under ``plan_text``."""
    from jaxlabs.engine.options import EngineOptions
    from jaxlabs.engine.plans import parse_plan
    from jaxlabs.sweep import run_group

    plan = parse_plan(plan_text)
    forced = {} if plan is not None else {"probe_gain": float("inf")}  # auto: time every candidate
    options = EngineOptions(plan=plan, chunk=part.chunk, devices=1, **forced)
    hp = {k: [v] * members for k, v in task.hparams(**part.traced).items()}
    t0 = time.perf_counter()
    g = run_group(trainer, data, list(range(members)), hp, options=options, progress=False)
    wall = time.perf_counter() - t0
    work = members * g.epochs_run * (len(data["x_train"]) if part.unit == "images/s" else 1)
    # auto's probe: the timed candidates' chunks and the compiles of a cheaper trainer's programs
    probe_s = max(wall - g.compile_s - g.run_s, 0.0) if plan is None else 0.0
    return {"part": part.name, "members": members, "plan": plan_text, "chose": g.plan, "source": g.plan_source,
            "probe": g.probe, "epochs": g.epochs_run, "rate": round(work / g.run_s, 1), "unit": part.unit,
            "train_s": round(g.run_s, 3), "compile_s": round(g.compile_s, 2), "probe_s": round(probe_s, 2),
            "wall_s": round(wall, 2)}


def run_suite(parts: tuple, budget_s: float, json_path: str | None, clock=time.monotonic) -> dict:
    """Every part's rows that fit ``budget_s`` seconds (from now), the result rewritten to
    ``json_path`` after each row; rows that did not fit are listed as skipped, with why."""
    import jax

    from jaxlabs.tasks import get_task

    start = clock()
    deadline = start + budget_s
    device = jax.devices()[0]
    result = {"machine": {"backend": jax.default_backend(), "device": device.device_kind,
                          "devices_present": len(jax.devices()), "jax": jax.__version__,
                          "platform": platform.platform(), "cpu_count": os.cpu_count()},
              "budget_s": budget_s, "rows": [], "skipped": [], "done": False}

    def save():
        result["elapsed_s"] = round(clock() - start, 1)
        if json_path:
            atomic.write_json(json_path, result)

    save()
    for i, part in enumerate(parts):
        part_end, longest = part_deadline(clock(), deadline, parts[i:]), 0.0
        built = None
        for members, plan_text in part.rows:
            estimate = longest or part.prior_s
            if not fits(clock(), part_end, estimate):
                result["skipped"].append({"part": part.name, "members": members, "plan": plan_text,
                                          "why": f"about {estimate:.0f} s needed, {max(part_end - clock(), 0):.0f} s "
                                                 f"left of the part's time"})
                print(f"  {part.name:9} {members:5} {plan_text:9} skipped: budget", flush=True)
                save()
                continue
            t0 = clock()
            if built is None:  # once a part: every plan trains the same data
                task = get_task(part.task)
                built = (task, *task.build(task.resolve_static(**part.static)))
            task, trainer, data = built
            row = time_row(part, trainer, data, task, members, plan_text)
            longest = max(longest, clock() - t0)
            result["rows"].append(row)
            save()
            chose = f"; chose {row['chose']} ({row['source']})" if plan_text == "auto" else ""
            print(f"  {part.name:9} {members:5} {plan_text:9} {row['rate']:12.1f} {part.unit}  train {row['train_s']:.2f} s"
                  f"  compile {row['compile_s']:.1f} s  wall {row['wall_s']:.1f} s{chose}", flush=True)
    result["done"] = True
    save()
    return result


def markdown(result: dict) -> str:
    """The rows as a Markdown table."""
    lines = ["| part | members | plan | rate | unit | train s | compile s | probe s | wall s | auto chose |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        chose = f"{r['chose']} ({r['source']})" if r["plan"] == "auto" else ""
        lines.append(f"| {r['part']} | {r['members']} | {r['plan']} | {r['rate']:.0f} | {r['unit']} | {r['train_s']} | "
                     f"{r['compile_s']} | {r['probe_s']} | {r['wall_s']} | {chose} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--budget-s", dest="budget_s", type=float, default=480.0,
                   help="seconds for the whole suite, compiles included (default: %(default)s: 8 minutes)")
    p.add_argument("--tiny", action="store_true", help="CPU-sized rows (tests, a dry run on any machine)")
    p.add_argument("--json", default=None, help="write the rows here, after every row")
    args = p.parse_args(argv)
    if not args.budget_s > 0:
        p.error(f"argument --budget-s: {args.budget_s:g} must be > 0")
    if args.json:
        try:
            from jaxlabs.results import check_writable

            check_writable(os.path.dirname(os.path.abspath(args.json)))
        except (OSError, ValueError) as e:
            fail(PROG, f"--json {args.json}: {e}")
    import jax

    if jax.default_backend() == "cpu" and not args.tiny:
        fail(PROG, "JAX sees no accelerator here (jax.devices() lists CPUs only): install jax with CUDA "
                   "(pip install -e \".[cuda12]\"), or give --tiny for the CPU-sized rows")
    print(f"device suite on {jax.default_backend()} ({jax.devices()[0].device_kind}), budget {args.budget_s:.0f} s"
          f"{' (tiny sizes)' if args.tiny else ''}; rates exclude compiles and auto's probe", flush=True)
    result = run_suite(TINY if args.tiny else DEVICE, args.budget_s, args.json)
    print("\n" + markdown(result))
    print(f"\n{len(result['rows'])} rows in {result['elapsed_s']:.0f} s, {len(result['skipped'])} skipped for the budget"
          + (f"; wrote {args.json}" if args.json else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
