"""Argument parsing shared by the experiment commands: every bad input is one line, exit 2."""
from __future__ import annotations

import argparse
import sys


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but an error is a single line naming the flag (argparse prints the usage too)."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        self.exit(2, f"{self.prog}: error: {message}\n")


def fail(prog: str, message: str, code: int = 2):
    """A one-line error for problems found after parsing (unwritable output, missing data, ...)."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def _number(text: str, flag: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def positive_float_list(flag: str, example: str):
    """A comma list of numbers > 0, e.g. ``--lr 0.001,0.01,0.1``."""

    def parse(text: str) -> list[float]:
        items = [t.strip() for t in text.split(",")]
        if not text.strip() or any(not t for t in items):
            raise argparse.ArgumentTypeError(f"{text!r} is empty or has an empty item; give a comma list such as {example}")
        values = [_number(t, flag) for t in items]
        bad = [v for v in values if not (v > 0 and v != float("inf"))]
        if bad:
            raise argparse.ArgumentTypeError(f"{bad[0]:g} is not > 0; every value must be a positive number, e.g. {example}")
        return values

    return parse


def int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"{v} must be >= {low}")
        return v

    parse.__name__ = f"integer >= {low}"
    return parse


def _checked(parse, name: str):
    """An argparse type from a parser that raises ValueError (its message: argparse's one line)."""

    def check(text: str):
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    check.__name__ = name
    return check


def add_engine_flags(p: argparse.ArgumentParser) -> None:
    """How the engine runs each group: the flags both commands share."""
    from jaxlabs.plans import MEMORY_FORMS, PLAN_FORMS, PRECISIONS, parse_memory, parse_plan, parse_precision

    g = p.add_argument_group("engine")
    g.add_argument("--plan", type=_checked(lambda t: (t, parse_plan(t))[0], "plan"), default="auto",
                   help=f"how a group's members share the device: {PLAN_FORMS}. auto times the candidates "
                        "on a short probe when the group is long enough and caches the choice (default: auto)")
    g.add_argument("--memory-limit", dest="memory_limit", type=_checked(parse_memory, "memory"), default=None,
                   help=f"memory one program may use ({MEMORY_FORMS}); a larger group runs in waves "
                        "(default: the device's free memory)")
    g.add_argument("--precision", type=_checked(parse_precision, "precision"), default="fp32",
                   help=f"matmul and convolution precision: {', '.join(PRECISIONS)}; parameters and optimizer "
                        "state stay float32 (default: fp32)")
    g.add_argument("--compaction", action=argparse.BooleanOptionalAction, default=True,
                   help="repack the running members into a smaller program once half have stopped (default: on)")


def add_durability_flags(p: argparse.ArgumentParser) -> None:
    """Checkpoints and resume: the same command with the same --out continues where a run stopped."""
    from jaxlabs.checkpoint import EVERY_FORMS, parse_every

    g = p.add_argument_group("checkpoints (run the same command again to resume)")
    g.add_argument("--checkpoint-every", dest="checkpoint_every", type=_checked(parse_every, "time"),
                   default=parse_every("5m"), metavar="TIME",
                   help=f"checkpoint the training in OUT/.checkpoint this often ({EVERY_FORMS}; default: 5m)")
    g.add_argument("--fresh", action="store_true",
                   help="discard a checkpoint in --out (another run's, or this one's) and start over")


def durable(args):
    """While the command trains: Ctrl-C writes a checkpoint and stops (with checkpoints on)."""
    import contextlib

    from jaxlabs.checkpoint import stop_at_checkpoint

    return stop_at_checkpoint() if args.checkpoint_every > 0 else contextlib.nullcontext()


def interrupted(prog: str, e: KeyboardInterrupt) -> int:
    """Ctrl-C: one line on how to go on; exit 130, as a shell reports SIGINT."""
    from jaxlabs.checkpoint import Interrupted

    how = str(e) if isinstance(e, Interrupted) else \
        "stopped at once; run the same command again to resume from the last checkpoint, if one was written"
    print(f"{prog}: interrupted: {how}", file=sys.stderr)
    return 130


def engine_options(args):
    from jaxlabs.plans import parse_plan
    from jaxlabs.sweep import EngineOptions

    return EngineOptions(plan=parse_plan(args.plan), memory_limit=args.memory_limit,
                         compaction=args.compaction, precision=args.precision)


def plan_line(g: dict) -> str:
    """How a group ran: its plan and why (auto's probe timings), and its waves."""
    probe = ", ".join(f"{p} {t:.2f} s" for p, t in g["probe_s"].items())
    waves = f"; {len(g['waves'])} waves of {'/'.join(map(str, g['waves']))} members" if len(g["waves"]) > 1 else ""
    return f"plan {g['plan']} ({g['plan_source']}{': probe ' + probe if probe else ''}){waves}"
