"""Ctrl-C as a request: the running chunk ends, a checkpoint is written, then the run stops."""
from __future__ import annotations

import contextlib
import signal
import sys


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, taken at a chunk boundary once the checkpoint is written; the message says where."""


_interrupt = {"requested": False}


def requested() -> bool:
    """Ctrl-C was pressed while :func:`stop_at_checkpoint` is active: stop at the next chunk boundary."""
    return _interrupt["requested"]


@contextlib.contextmanager
def stop_at_checkpoint():
    """Ctrl-C (SIGINT) while this is active: the running chunk ends, a checkpoint is written and
    :class:`Interrupted` is raised (the engine checks between chunks; after the training, at the
    end of the block, once the results are written); a second Ctrl-C stops at once."""

    def handler(signum, frame):
        if _interrupt["requested"]:
            raise KeyboardInterrupt
        _interrupt["requested"] = True
        print("\nCtrl-C: writing a checkpoint after this chunk (Ctrl-C again to stop at once)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
        if _interrupt["requested"]:
            raise Interrupted("stopped once the results were written; run the same command again to go on")
    finally:
        signal.signal(signal.SIGINT, previous)
        _interrupt["requested"] = False
