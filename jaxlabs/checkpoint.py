"""What a run's checkpoint must match to resume, and the folder's housekeeping.

A checkpoint (:mod:`jaxlabs.store`, in ``OUT/.checkpoint/``) resumes a run only with the
configuration it was written for: every member's numbers, the engine options, and the code that
computes (:func:`code_version`); :func:`_difference` names the first place two configurations
differ. ``--checkpoint-every`` takes :data:`EVERY_FORMS` (:func:`parse_every`). Folders are
deleted atomically (:func:`remove`), and a command clears a finished run's checkpoint (:func:`clear`).
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Optional

import jax

from jaxlabs import atomic

CHECKPOINT_DIR = ".checkpoint"
EVERY_FORMS = "seconds with an optional unit: 30s, 5m, 1h; 0 turns checkpoints off"
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}


def parse_every(text: str) -> float:
    """``--checkpoint-every`` text -> seconds (0: off); ValueError (one line) otherwise."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", text.lower())
    if not m:
        raise ValueError(f"{text!r} is not a time; give {EVERY_FORMS}")
    return float(m.group(1)) * _UNITS[m.group(2)]


@functools.lru_cache(maxsize=None)
def code_version() -> str:
    """What else decides the numbers: jaxlabs' own sources, the libraries that compute, the backend."""
    h = hashlib.sha256()
    root = Path(__file__).parent
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    for lib in ("jax", "jaxlib", "flax", "optax", "numpy"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            h.update(f"{lib}={importlib.metadata.version(lib)}".encode())
    h.update(f"{jax.default_backend()}:{jax.devices()[0].device_kind}".encode())
    return h.hexdigest()[:12]


class CheckpointMismatch(ValueError):
    """The output folder holds the checkpoint of a run with another configuration."""


class CheckpointDamaged(ValueError):
    """The output folder's checkpoint cannot be read back (and no earlier one can either)."""


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, sort_keys=True, default=str))


def _difference(there: Any, here: Any, path: str = "") -> Optional[str]:
    """The first place two configurations differ, as ``path: A there, B here``."""
    if isinstance(there, dict) and isinstance(here, dict):
        if set(there) != set(here):
            return f"{path or 'keys'}: {_short(sorted(there))} there, {_short(sorted(here))} here"
        for k in there:
            d = _difference(there[k], here[k], f"{path}.{k}" if path else k)
            if d:
                return d
        return None
    return None if there == here else f"{path}: {_short(there)} there, {_short(here)} here"


def _short(x: Any) -> str:
    text = json.dumps(x)
    return text if len(text) <= 60 else text[:57] + "..."


def remove(path: Path) -> None:
    """Delete a folder atomically: renamed aside first, so a kill while deleting never leaves half
    a checkpoint that looks whole (what is left aside is removed by the next :meth:`jaxlabs.store.RunStore.open`)."""
    path = Path(path)
    trash = path.with_name(f"{path.name}.deleting-{os.getpid()}")
    try:
        os.replace(path, trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def _write_json(path: Path, obj: Any) -> None:
    atomic.write_json(path, obj, sort_keys=True)


def clear(out: Path) -> None:
    """Remove a finished study's checkpoint (the command's studies are all done)."""
    folder = Path(out) / CHECKPOINT_DIR
    if (folder / "finished").is_file():
        remove(folder)


