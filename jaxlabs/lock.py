"""One run at a time writes to an output folder: the folder's lock."""
from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path


class OutputInUse(RuntimeError):
    """Another run is writing to the same output folder."""


LOCK = ".jaxlabs.lock"


@contextlib.contextmanager
def lock_output(out: Path):
    """Hold ``out``'s lock while a run writes there: a second run into the same folder stops at once
    with :class:`OutputInUse` naming the first (the lock goes with the process, also on kill -9)."""
    import fcntl
    import socket

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    f = open(out / LOCK, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        who = f.read().strip() or "another process"
        f.close()
        raise OutputInUse(f"{out} is in use by another run ({who}); wait for it to finish, stop it, or choose "
                          "another --out") from None
    try:
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        f.flush()
        yield
    finally:
        (out / LOCK).unlink(missing_ok=True)
        f.close()  # closing releases the lock
