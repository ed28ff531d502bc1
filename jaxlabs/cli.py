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
