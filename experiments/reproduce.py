"""Regenerate a lab report's study: every setting over many seeds, beside the original numbers.

    python -m experiments.reproduce --list
    python -m experiments.reproduce A-lr                 # one study
    python -m experiments.reproduce A --seeds 8          # every study of Lab A
    python -m experiments.reproduce all --quick          # tiny versions of everything (minutes)
    python -m experiments.reproduce A --report-only      # rewrite A's reports from saved results
    python -m experiments.reproduce F-schedule --setting "0.1 then 0.01"   # one setting of a study

Each study writes report.md, results.csv and its figures to OUT/<study>/; several studies also get
OUT/index.md with a one-line verdict each.
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

from jaxlabs.cli import (ArgumentParser, add_durability_flags, add_engine_flags, add_tensorboard_flag, durable,
                         engine_options, fail, output_lock, int_at_least, is_writer, one_line_errors, plan_line,
                         start_processes)
from jaxlabs.report import compile_note

PROG = "python -m experiments.reproduce"


def parse_args(argv=None):
    p = ArgumentParser(prog=PROG, description="Regenerate the lab reports' studies with the spread "
                       "over seeds and the original numbers beside them.")
    p.add_argument("study", nargs="?", help="a study (e.g. A-lr), a lab letter (A) or all; see --list")
    p.add_argument("--list", action="store_true", help="list every study with its grid and exit")
    p.add_argument("--seeds", type=int_at_least(1), default=None,
                   help="seeds per setting (default: 5; 2 with --quick)")
    p.add_argument("--quick", action="store_true",
                   help="a tiny version of each study (few seeds' worth of epochs, small data): for tests")
    p.add_argument("--out", default="runs/reproduce", help="output folder (default: %(default)s)")
    p.add_argument("--data-dir", dest="data_dir", help="folder with MNIST / Fashion-MNIST / CIFAR-10 files "
                   "(or set JAXLABS_DATA_DIR)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_tensorboard_flag(p)
    p.add_argument("--report-only", action="store_true",
                   help="rewrite each study's report.md from the results.json already in OUT/<study>, "
                        "without training (after a change to how reports judge); --seeds, --quick and "
                        "--data-dir are not used")
    p.add_argument("--setting", action="append", metavar="LABEL",
                   help="train only this setting of the study (repeat for several; labels as in the study's "
                        "report). The report judges what ran and says what did not; not used with --report-only, which "
                        "reports what ran (default: every setting)")
    add_engine_flags(p)
    add_durability_flags(p)
    args = p.parse_args(argv)
    if not args.list and not args.study:
        p.error("give a study, a lab letter or all (see --list)")
    return args


def list_studies() -> str:
    from jaxlabs.catalogue import resolve

    from jaxlabs.report import ran_line

    lines = []
    for s in resolve("all"):
        data = f"; needs {s.dataset}" if s.dataset else ""
        lines.append(f"{s.key:16} Lab {s.lab}  {ran_line(s, [x.label for x in s.settings])} x seeds; vmapped: "
                     f"{', '.join(s.vmapped_axes())}; static: {', '.join(s.static_axes()) or '-'}{data}\n"
                     f"{'':16} {s.title}")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not (args.list or args.report_only):
        start_processes(PROG, args)  # before anything touches JAX
    from jaxlabs import checkpoint
    from jaxlabs.checkpoint import CheckpointDamaged, CheckpointMismatch
    from jaxlabs.data import DatasetNotFoundError
    from jaxlabs.report import ran_line
    from jaxlabs.reproduce import chosen_settings, rewrite_report, run_study, write_index
    from jaxlabs.results import check_writable
    from jaxlabs.catalogue import resolve

    if args.list:
        print(list_studies())
        return 0
    try:
        studies = resolve(args.study)
    except ValueError as e:
        fail(PROG, f"argument study: {e}")
    if args.setting and not args.report_only:
        if len(studies) != 1:
            fail(PROG, f"argument --setting: {args.study!r} is {len(studies)} studies; give one (e.g. "
                 f"{studies[0].key}) with --setting")
        try:
            chosen_settings(studies[0], args.setting)
        except ValueError as e:
            fail(PROG, f"argument --setting: {e}")
    try:
        engine = engine_options(PROG, args)
    except ValueError as e:
        fail(PROG, str(e))
    try:
        out = check_writable(args.out) if is_writer() else Path(args.out)
    except OSError as e:
        fail(PROG, f"argument --out: cannot write to {args.out!r} ({e.strerror or e}); choose a writable folder")
    seeds = list(range(args.seeds if args.seeds is not None else 2 if args.quick else 5))
    with output_lock(PROG, out):  # one run at a time writes to --out
        command = " ".join([PROG, *map(shlex.quote, sys.argv[1:] if argv is None else argv)])
        results, skipped = [], []
        if args.report_only:
            rewritten = 0
            for study in studies:
                try:
                    r = rewrite_report(study, out / study.key)
                except (OSError, ValueError) as e:
                    if len(studies) == 1:
                        fail(PROG, str(e))
                    print(f"   {study.key}: skipped: {e}")
                    continue
                rewritten += 1
                print(f"{study.key}: {r.verdict} -> {r.out}/report.md")
            if not rewritten:
                fail(PROG, f"no study of {args.study!r} has saved results in {out}: run it first (without --report-only)")
            write_index([], [], Path(out))  # every folder is an earlier run: listed with its command
            print(f"\nindex: {out}/index.md ({rewritten} report{'' if rewritten == 1 else 's'} rewritten)")
            return 0
        with one_line_errors(PROG, out):  # Ctrl-C between two studies too: one line, exit 130
            for study in studies:
                ran = ran_line(study, {s.label for s in chosen_settings(study, args.setting, args.quick)})
                print(f"\n== {study.key}: {study.title} ({ran} x {len(seeds)} seeds)")
                try:
                    with durable(args):
                        r = run_study(study, seeds, out / study.key, quick=args.quick, data_dir=args.data_dir,
                                      progress=not args.no_progress, command=command, engine=engine,
                                      checkpoint_every=args.checkpoint_every, fresh=args.fresh,
                                      settings=args.setting,
                                      tensorboard=out / "tensorboard" if args.tensorboard else None)
                except (CheckpointMismatch, CheckpointDamaged):  # never skipped, never mixed
                    raise
                except (DatasetNotFoundError, ValueError) as e:  # data missing or broken: skipped among several
                    if len(studies) == 1:
                        raise
                    skipped.append((study.key, str(e)))
                    print(f"   skipped: {e}")
                    continue
                except MemoryError as e:  # one member does not fit: nothing of this study can run
                    e.args = (f"{study.key}: {e}",)
                    raise
                results.append(r)
                if not is_writer():
                    continue
                print(r.table)
                print("\n".join(f"   {', '.join(g['settings'])}: {plan_line(g)}" for g in r.timing))
                print(f"   verdict: {r.verdict} ({r.wall_s:.0f} s{compile_note(r.timing)}) -> {r.out}/report.md")
            if is_writer():
                write_index(results, skipped, Path(out))  # with the studies run into this folder before
            for study in studies:  # all done: a later run of this command starts afresh
                checkpoint.clear(out / study.key)
        print(f"\nindex: {out}/index.md, index.html ({len(results)} studies run, {len(skipped)} skipped)"
          + (f"; TensorBoard: tensorboard --logdir {out}/tensorboard" if args.tensorboard else ""))
        return 0


if __name__ == "__main__":
    sys.exit(main())
