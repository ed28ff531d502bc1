"""The one way jaxlabs writes a file: aside, then renamed into place.

A crash, a full disk or Ctrl-C while writing never leaves half a file where the earlier one was,
and never leaves the half-written copy beside it: :func:`write` writes ``.<name>.<pid>.tmp`` in
the same folder (so the rename is atomic), flushes it and renames it over ``path``; on any failure
the copy is removed and the error goes on. Every writer below is a thin form of it.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Callable, IO

import numpy as np


def write(path: str | os.PathLike, fill: Callable[[IO[bytes]], None]) -> Path:
    """``fill(file)`` writes the content to an open binary file; it lands at ``path`` whole or not at all."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk, an interrupt: the earlier file stays, and no half copy beside it
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return write(path, lambda f: f.write(data))


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def _json_default(o: Any):
    if isinstance(o, (np.floating, np.integer, np.bool_)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _nan_to_none(x: Any) -> Any:
    """NaN and inf as JSON null (strict JSON has no NaN), in dicts and lists too."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_nan_to_none(v) for v in x]
    return x


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 1, sort_keys: bool = False) -> Path:
    """``obj`` as strict JSON: NumPy scalars and arrays as numbers and lists, NaN and inf as null."""
    plain = json.loads(json.dumps(obj, default=_json_default))  # NumPy -> Python (NaN survives as float)
    return write_text(path, json.dumps(_nan_to_none(plain), indent=indent, sort_keys=sort_keys, allow_nan=False))


def write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray], *, compressed: bool = False) -> Path:
    """A NumPy ``.npz`` archive of ``arrays`` (name -> array)."""
    save = np.savez_compressed if compressed else np.savez
    return write(path, lambda f: save(f, **arrays))


def write_figure(path: str | os.PathLike, fig, **savefig) -> Path:
    """A matplotlib figure, in the format ``path``'s suffix names; the figure is closed either way."""
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        return write(path, lambda f: fig.savefig(f, format=path.suffix.lstrip(".") or "png", **savefig))
    finally:
        plt.close(fig)
