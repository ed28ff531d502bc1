"""Search a task's options for the best setting, inside one compiled program per static configuration.

    python -m experiments.search                                   # Lab A: lr 1e-4..0.1, Hyperband, 49 members
    python -m experiments.search --rounds 3 --sampler tpe --storage sqlite:///runs/laba.db   # an Optuna study
    python -m experiments.search --task boston --lr 1e-3..0.3 --weight-decay 1e-5..1e-2 --members 81
    python -m experiments.search --task fashion-mlp --lr 0.01..1 --hidden 256,512 --method pbt --epochs 10
    python -m experiments.search --task boston --help              # Boston's options

Every option of the task is a flag that takes one value, a list ``A,B,C``, or, for a traced
number, a range ``LOW..HIGH`` (log-uniform for options declared log-scale: learning rates, weight
decay; uniform otherwise). ``--members`` points are sampled quasi-randomly (scrambled Halton) from
``--seed``; each member trains from its own seed. ``--method hyperband`` (the default) runs
brackets of successive halving, from aggressive to none, in the same programs, each bracket ranking
its own members at its own rungs; ``--method halving`` ranks every member on the
task's validation metric at rungs ``--min-epochs x eta^k`` and prunes all but the best 1/eta, which
leave the program; ``--method pbt`` lets the worst copy the best every ``--pbt-every`` epochs and
perturb their numbers. ``--rounds K`` runs K populations, each proposed by ``--sampler`` (Halton,
or one of Optuna's told the earlier rounds); ``--storage`` records every member as an Optuna trial.
Writes report.md/.html, results.json/.csv, curves.npz and figures to --out.
"""
from __future__ import annotations

import dataclasses
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

from jaxlabs.cli import (ArgumentParser, add_durability_flags, add_engine_flags, add_tensorboard_flag, durable,
                         engine_options, fail, int_at_least, is_writer, number, one_line_errors, output_lock,
                         parse_task_args, start_processes, task_parser)

PROG = "python -m experiments.search"
DEFAULT_TASK = "fit-log2cos"
# what the search tries when a flag leaves it out: the learning rate over three decades
DEFAULT_RANGES = {"lr": "1e-4..1e-1"}
SEARCH_FLAGS = {"method": "--method", "eta": "--eta", "min_epochs": "--min-epochs", "rungs": "--rungs",
                "pbt_every": "--pbt-every", "quantile": "--quantile", "resample": "--resample",
                "members": "--members", "task": "--task", "rounds": "--rounds", "sampler": "--sampler",
                "storage": "--storage", "study_name": "--study-name", "out": "--out"}


def build_parser(task) -> ArgumentParser:
    p = task_parser(
        PROG, "Search a task's options for the best setting: a sampled population trained as one compiled program "
        "per static configuration, with successive halving or population-based training deciding between chunks "
        "of epochs. Writes report.md, report.html, results.json, results.csv, curves.npz and figures.",
        DEFAULT_TASK, "which lab (default: %(default)s)")
    p.add_argument("--method", default="hyperband", choices=("hyperband", "halving", "pbt"),
                   help="hyperband: brackets of successive halving from aggressive to none, in one program; "
                        "halving: successive halving; pbt: population-based training (default: %(default)s)")
    p.add_argument("--members", type=int_at_least(1), default=None,
                   help="population size of halving and PBT (default: 27); hyperband's is its brackets' sizes")
    p.add_argument("--seed", type=int_at_least(0), default=0,
                   help="seed of the sampled points and of the members' own seeds (default: %(default)s)")
    h = p.add_argument_group("successive halving and hyperband")
    h.add_argument("--eta", type=int_at_least(2), default=3, help="each rung keeps the best 1/eta (default: 3)")
    h.add_argument("--min-epochs", dest="min_epochs", type=int_at_least(1), default=None,
                   help="epochs before the first rung (default: the budget / eta^k, k rungs leaving one member)")
    h.add_argument("--rungs", type=int_at_least(1), default=None,
                   help="how many rungs (default: every min-epochs x eta^k below the budget; hyperband: 3, its "
                        "brackets s = rungs .. 0)")
    b = p.add_argument_group("population-based training")
    b.add_argument("--pbt-every", dest="pbt_every", type=int_at_least(1), default=None,
                   help="epochs between exploit steps (default: a tenth of the budget)")
    b.add_argument("--quantile", type=number, default=0.25,
                   help="the bottom quantile copies the top quantile, in (0, 0.5] (default: %(default)s)")
    b.add_argument("--resample", type=number, default=0.25,
                   help="probability that a copied number is drawn afresh instead of x0.8 / x1.25 "
                        "(default: %(default)s)")
    r = p.add_argument_group("rounds, samplers and Optuna studies")
    r.add_argument("--rounds", type=int, default=1,
                   help="populations one after another, each proposed from the earlier ones' results (default: 1)")
    r.add_argument("--sampler", default="halton", choices=("halton", "random", "tpe", "gp", "cmaes"),
                   help="what proposes a round's members: halton (scrambled Halton, continued round after round) or "
                        "one of Optuna's samplers, told every earlier member; a first round is Halton's "
                        "(default: %(default)s; Optuna's need pip install 'jaxlabs[search]')")
    r.add_argument("--storage", default=None,
                   help="an Optuna storage URL (e.g. sqlite:///study.db): every member a trial of --study-name; "
                        "a later run with more --rounds continues the study")
    r.add_argument("--study-name", dest="study_name", default=None,
                   help="the study in --storage (default: <task>-search-<method>)")
    p.add_argument("--out", default=None, help="output folder (default: runs/<task>-search-<method>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_engine_flags(p, plan_help="how a program's members share the device: vmap, map, hybrid:K or auto (timed on "
                                  "each program's first chunk, before any member is pruned) (default: vmap)")
    p.set_defaults(plan="vmap")
    add_durability_flags(p)
    add_tensorboard_flag(p)
    g = p.add_argument_group(f"options of {task.name} ({task.description}): a value, a list A,B,C, or for a "
                             "traced number a range LOW..HIGH")
    for o in task.options:
        kind = "traced: a range LOW..HIGH" + (" (log-uniform)" if o.log else " (uniform)") + ", a list or a value" \
            if o.traced and o.type in (int, float) else "static: a list (one program each) or a value"
        default = DEFAULT_RANGES.get(o.name, o.default)
        g.add_argument(o.flag, dest=o.name, default=None, metavar="VALUES",
                       help=f"{o.help}; {o.range_text()}; {kind} (default: {default})".replace("%", "%%"))
    return p


def parse_args(argv=None):
    return parse_task_args(PROG, argv, DEFAULT_TASK, build_parser)


def space_from(task, args):
    """The search space from the task flags (with the defaults a search needs); a one-line error
    naming the flag for anything it cannot take."""
    from jaxlabs.options import OptionError
    from jaxlabs.search import parse_dimension, search_space

    given, notes = {}, []
    for o in task.options:
        text = getattr(args, o.name)
        if text is None and o.name in DEFAULT_RANGES:
            text = DEFAULT_RANGES[o.name]
        if text is None and o.name in getattr(task, "search_defaults", {}):
            text = str(task.search_defaults[o.name])
            notes.append(f"{o.name}={text} (a search ranks on a validation split)")
        if text is None:
            continue
        try:
            given[o.name] = parse_dimension(o, text)
        except OptionError as e:
            fail(PROG, f"argument {o.flag}: {e}")
    if "epochs" in given and len(given["epochs"].values) > 1:
        fail(PROG, "argument --epochs: a search has one budget; give one value (the rungs divide it)")
    return search_space(task.options, given), notes


def main(argv=None) -> int:
    task, args = parse_args(argv)
    start_processes(PROG, args)
    from jaxlabs.results import check_writable
    from jaxlabs.search import SearchError, SearchOptions, population

    space, notes = space_from(task, args)
    epochs_dim = next((d for d in space if d.name == "epochs"), None)
    options = SearchOptions(args.method, args.eta, args.min_epochs, args.rungs, args.pbt_every, args.quantile,
                            args.resample)
    if args.method == "hyperband" and args.members is not None:
        fail(PROG, "argument --members: hyperband's population is its brackets' sizes (set by --eta, --min-epochs "
                   "and --rungs); leave --members out, or choose --method halving")
    try:
        epochs = int(epochs_dim.values[0])
        options = options.check(epochs, args.members or 27)
        args.members = options.population_size(epochs, args.members or 27)
        engine = engine_options(PROG, args)
        members = population(task, space, args.members, args.seed)
        if rounds_asked(args):
            from jaxlabs.search.rounds import check_rounds, open_storage

            check_rounds(options, args.rounds, args.sampler, args.storage, args.num_processes or 1)
            args.study_name = args.study_name or f"{task.name}-search-{args.method}"
            args.study = open_storage(args.storage, args.study_name, space)
    except SearchError as e:
        fail(PROG, f"argument {SEARCH_FLAGS.get(e.option, '--' + e.option.replace('_', '-'))}: {e}")
    except ValueError as e:
        fail(PROG, str(e))
    out = args.out or f"runs/{task.name}-search-{args.method}"
    created = not Path(out).exists()
    try:
        out = check_writable(out) if is_writer() else Path(out)
    except OSError as e:
        fail(PROG, f"argument --out: cannot write to {out!r} ({e.strerror or e}); choose a writable folder")
    try:
        return _run(task, args, argv, space, notes, options, engine, members, out)
    except SystemExit:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # a search refused before anything was written leaves no folder behind
        raise


def rounds_asked(args) -> bool:
    """Whether the search runs rounds (:mod:`jaxlabs.search.rounds`) rather than one population."""
    return args.rounds != 1 or args.sampler != "halton" or args.storage is not None


def _run(task, args, argv, space, notes, options, engine, members, out: Path) -> int:
    import jax

    from jaxlabs import checkpoint as ckpt
    from jaxlabs.reproduce import publish
    from jaxlabs.search import run_search
    from jaxlabs.search.report import cost_line, summary, write_results
    from jaxlabs.search.run import SearchRecord
    from jaxlabs.store import RunStore

    command = " ".join([PROG, *map(shlex.quote, sys.argv[1:] if argv is None else argv)])
    searched = [d for d in space if d.varies]
    label = f"{task.name} {args.method} search"
    with output_lock(PROG, out):
        if args.fresh:
            ckpt.remove(out / ckpt.CHECKPOINT_DIR)
            (out / "rounds.json").unlink(missing_ok=True)
        if rounds_asked(args):
            return _rounds(task, args, command, space, notes, options, engine, out, label)
        checkpoint = None
        if args.checkpoint_every > 0:  # on several processes, each keeps its own members' shards
            config = {"task": task.name, "options": dataclasses.asdict(options), "members": args.members,
                      "seed": args.seed, "space": [d.to_json() for d in space],
                      "engine": {**dataclasses.asdict(engine), "plan": str(engine.plan)}, "code": ckpt.code_version()}
            checkpoint = RunStore(out / ckpt.CHECKPOINT_DIR, config, args.checkpoint_every, label, SearchRecord)
            try:
                note = checkpoint.open()
            except ValueError as e:
                fail(PROG, str(e))
            if note and is_writer():
                print(note)
            if checkpoint.finished:
                return 0
        print(f"{task.description}\n{args.members} members from "
              f"{'; '.join(f'{d.name} {d.text()}' for d in searched) or 'one point'}; {args.method}"
              + (f"; {', '.join(notes)}" if notes else ""))
        t0 = time.perf_counter()
        observer = None
        if args.tensorboard and is_writer():  # one run per member, as a sweep's
            from jaxlabs.tensorboard import TensorBoardLog

            logs = out / "tensorboard" / f"{task.name}-search-{args.method}"
            if checkpoint is None or checkpoint.saved is None:  # not resuming: an earlier run's logs go
                shutil.rmtree(logs, ignore_errors=True)
            observer = TensorBoardLog(logs, task.higher_is_better)
        try:
            with one_line_errors(PROG, out, SEARCH_FLAGS), durable(args):
                result = run_search(task, members, space, options, engine=engine, store=checkpoint,
                                    progress=not args.no_progress, name=label, observer=observer)
        finally:
            if checkpoint is not None:
                checkpoint.close()
            if observer is not None:
                observer.close()
        if not is_writer():
            print(f"process {jax.process_index()}: trained its share of the members; process 0 wrote {out}")
            return 0
        staging = Path(tempfile.mkdtemp(prefix=".writing-", dir=out))
        try:
            with one_line_errors(PROG, out):
                figures = write_results(result, task, staging, command)
        except SystemExit:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        publish(staging, out)
        if checkpoint is not None:
            checkpoint.finish()
            ckpt.clear(out)
        best = summary(result, task.primary_metric)
        setting = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best["setting"].items())
        fmt = lambda v: "NaN" if v is None else f"{v:.4g}"  # noqa: E731
        if best.get("schedule"):  # PBT: the winner's state trained under its copies' numbers, not its own first
            setting = "trained under " + "; ".join(f"{name} " + ", ".join(f"{v:.4g} from epoch {e}" for e, v in track)
                                                   for name, track in best["schedule"].items()) + \
                f" (through its copies; its own first sample: {setting})"
        print(f"\nbest: member {best['member']}: {setting}: {result.metric} {fmt(best[result.metric])}, "
              f"{task.primary_metric} {fmt(best[task.primary_metric])}")
        print(f"cost: {cost_line(result)}")
        print(f"\n{time.perf_counter() - t0:.1f} s in all; wrote {out}/report.md, report.html, results.json, "
              f"results.csv, curves.npz, {', '.join(figures)}"
              + (f"; TensorBoard: tensorboard --logdir {out}/tensorboard" if args.tensorboard else ""))
        return 0


def _rounds(task, args, command, space, notes, options, engine, out: Path, label: str) -> int:
    """``--rounds``, ``--sampler``, ``--storage``: rounds one after another (jaxlabs.search.rounds)."""
    from jaxlabs import checkpoint as ckpt
    from jaxlabs.reproduce import publish
    from jaxlabs.search import SearchError
    from jaxlabs.search.report import cost_line, write_results
    from jaxlabs.search.rounds import search_rounds, summaries
    from jaxlabs.search.run import SearchRecord
    from jaxlabs.store import RunStore

    config = {"task": task.name, "options": dataclasses.asdict(options), "members": args.members, "seed": args.seed,
              "space": [d.to_json() for d in space], "sampler": args.sampler, "storage": args.storage,
              "study": args.study_name, "engine": {**dataclasses.asdict(engine), "plan": str(engine.plan)},
              "code": ckpt.code_version()}

    def store_for(r, members):  # a round's own checkpoint, of its own points
        if args.checkpoint_every <= 0:
            return None
        return RunStore(out / ckpt.CHECKPOINT_DIR / f"round-{r}", {**config, "round": r,
                        "points": [m.label for m in members]}, args.checkpoint_every, f"{label} round {r + 1}",
                        SearchRecord)

    searched = [d for d in space if d.varies]
    print(f"{task.description}\n{args.rounds} rounds of {args.members} members from "
          f"{'; '.join(f'{d.name} {d.text()}' for d in searched) or 'one point'}; {args.method}, sampler "
          f"{args.sampler}" + (f"; study {args.study_name} in {args.storage}" if args.storage else "")
          + (f"; {', '.join(notes)}" if notes else ""))
    t0 = time.perf_counter()
    try:
        with one_line_errors(PROG, out, SEARCH_FLAGS), durable(args):
            result, history, storage_s = search_rounds(
                task, space, options, size=args.members, seed=args.seed, rounds=args.rounds, sampler=args.sampler,
                out=out, config=config, storage=args.storage, study_name=args.study_name, study=args.study,
                store_for=store_for, engine=engine, progress=not args.no_progress, label=label, writer=is_writer())
    except (SearchError, ValueError) as e:
        fail(PROG, f"argument {SEARCH_FLAGS.get(getattr(e, 'option', 'out'), '--out')}: {e}")
    if result is None:
        print(f"{label}: all {args.rounds} rounds finished earlier, results in {out}")
        return 0
    if not is_writer():
        return 0
    rounds = summaries(history, task.primary_metric)
    staging = Path(tempfile.mkdtemp(prefix=".writing-", dir=out))
    try:
        with one_line_errors(PROG, out):
            figures = write_results(result, task, staging, command, rounds=rounds, storage_s=storage_s)
    except SystemExit:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    publish(staging, out)
    ckpt.remove(out / ckpt.CHECKPOINT_DIR)
    for r in rounds:
        b = r["best"] or {}
        print(f"round {r['round'] + 1}: {r['members']} members, {r['member_epochs']:,} member-epochs; best "
              + (", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in b["params"].items())
                 + f": {result.metric} {b['value']:.4g}" if b else "none complete"))
    print(f"last round's cost: {cost_line(result)}" + (f"; {storage_s:.2f} s writing to the storage" if args.storage
                                                       else ""))
    print(f"\n{time.perf_counter() - t0:.1f} s in all; wrote {out}/report.md, report.html, results.json, "
          f"results.csv, curves.npz, rounds.json, {', '.join(figures)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
