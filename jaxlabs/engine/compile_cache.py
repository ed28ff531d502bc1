"""Every program the engine compiles, kept on disk across runs: JAX's persistent compilation cache
in ``$JAXLABS_CACHE_DIR/xla`` (default ``~/.cache/jaxlabs/xla``), on unless ``--no-compile-cache``
or ``JAXLABS_COMPILE_CACHE=0``; and whether each compile was loaded from it or compiled.

A program's entry is keyed by JAX on its StableHLO, the devices, jax/jaxlib's versions, the
compile options (the engine's ``compiler_options`` included) and ``XLA_FLAGS``: a changed program,
option or flag compiles afresh. Tracing and lowering still run (the key is the lowered program);
only XLA's compile is saved. With several processes only process 0 writes entries (JAX's rule):
processes that share the folder (one machine, a shared home) load them on a later run; a process
whose folder is its own compiles every time."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Optional

import jax
from jax import monitoring

ENV = "JAXLABS_COMPILE_CACHE"  # 0, off, false or no: off (as --no-compile-cache)
OFF = ("0", "off", "false", "no")
# JAX keeps only programs that took >= 1 s to compile by default; the engine's small-task programs
# compile in 0.3-1.2 s on a 2-core CPU (a Boston search's four: 0.34-1.22 s) and load in 0.02-0.1 s
# (BENCHMARKS.md, "The compilation cache"), so every program is kept: none is too quick to be worth it
MIN_COMPILE_S = 0.0
# the least recently used entries go past this size (an engine program's entry: 20 KB for Lab C's on
# a CPU, a few MB for a ResNet's); JAX's eviction takes a lock on the folder (the filelock package)
MAX_BYTES = 2 * 1024 ** 3

_HITS = "/jax/compilation_cache/cache_hits"
_lock = threading.Lock()
_hits = [0]
_ours: list[Optional[str]] = [None]  # the folder this module pointed JAX at (None: not ours)
_choice: list[Optional[bool]] = [None]  # a command's or caller's explicit on/off, for the process


def _count(event: str, **_: Any) -> None:
    if event == _HITS:
        with _lock:
            _hits[0] += 1


monitoring.register_event_listener(_count)


def folder() -> Path:
    """``$JAXLABS_CACHE_DIR/xla`` (default ``~/.cache/jaxlabs/xla``)."""
    root = os.environ.get("JAXLABS_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "jaxlabs")
    return Path(root) / "xla"


def wanted() -> bool:
    """Whether the environment leaves the cache on (``JAXLABS_COMPILE_CACHE`` not 0/off/false/no)."""
    return os.environ.get(ENV, "1").strip().lower() not in OFF


def _reset() -> None:
    from jax.experimental.compilation_cache import compilation_cache

    compilation_cache.reset_cache()  # JAX opens its cache once; a new folder or off needs a reopen


def configure(on: Optional[bool] = None) -> Optional[Path]:
    """Point JAX's persistent cache at :func:`folder` (``on``; None: as :func:`wanted` says) or turn
    it off; the folder in use, or None. A folder a user set in JAX's own config
    (``jax_compilation_cache_dir``) stands. Cheap to call again: only a change reopens the cache."""
    if on is not None:
        _choice[0] = on
    return _apply(wanted() if on is None else on)


def _apply(on: bool) -> Optional[Path]:
    current = jax.config.jax_compilation_cache_dir
    if on and current and current != _ours[0]:  # the user's own cache
        if not jax.config.jax_enable_compilation_cache:
            jax.config.update("jax_enable_compilation_cache", True)
            _reset()
        return Path(current)
    if not on:
        if _ours[0] is not None or jax.config.jax_enable_compilation_cache:
            jax.config.update("jax_enable_compilation_cache", False)
            if _ours[0] is not None:
                jax.config.update("jax_compilation_cache_dir", None)
                _ours[0] = None
            _reset()
        return None
    path = str(folder())
    if current != path or not jax.config.jax_enable_compilation_cache:
        jax.config.update("jax_enable_compilation_cache", True)
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_S)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
        _ours[0] = path
        _reset()
    return Path(path)


def ensure() -> Optional[Path]:
    """On, unless the environment says off or the last explicit :func:`configure` did (a command's
    ``--no-compile-cache`` holds for the rest of its process): what the engine calls before it
    compiles, so the library has the cache on by default too."""
    return _apply(wanted() and _choice[0] is not False)


def compile(lowered) -> tuple[Any, bool, float]:
    """``lowered.compile()``, whether it came from the persistent cache (a hit JAX reported while it
    ran) and its seconds (XLA's compile, or the load; tracing and lowering came before)."""
    with _lock:
        before = _hits[0]
    t0 = time.perf_counter()
    executable = lowered.compile()
    seconds = time.perf_counter() - t0
    with _lock:
        return executable, _hits[0] > before, seconds


def tally(parts) -> dict:
    """``{"loaded", "compiled", "xla_s"}`` over ``parts`` (the engine's Programs and Placements:
    each keeps ``compiles``, ``loaded`` and ``xla_s``): how many of their compiles came from the
    cache, how many were compiled, and the seconds XLA took for both (of their ``compile_s``)."""
    loaded = sum(p.loaded for p in parts)
    return {"loaded": loaded, "compiled": sum(len(p.compiles) for p in parts) - loaded,
            "xla_s": round(sum(p.xla_s for p in parts), 3)}


def programs_line(loaded: int, compiled: int) -> str:
    """``12 programs loaded from the cache, 1 compiled``, as the timing lines say it."""
    return f"{loaded} program{'s' if loaded != 1 else ''} loaded from the cache, {compiled} compiled"
