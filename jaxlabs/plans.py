"""How the members of a static group share a device: the plans, memory sizes and the plan cache.

- ``vmap``: every member in one batched program (``jax.vmap``): wins on accelerators for
  matmul-heavy models;
- ``map``: one member's program looped over the members on the device (``jax.lax.map``): wins
  where a vmapped op lowers badly (a vmapped convolution is a grouped convolution) or on a CPU that
  one member already saturates;
- ``hybrid:K``: K members vmapped at a time, looped (``lax.map(..., batch_size=K)``).

Every plan computes each member's own trajectory; they differ only in how XLA batches the work
(float32 rounding, as between a vmapped member and the member alone). ``auto`` (see
:func:`jaxlabs.sweep.run_group`) times the candidates on a short probe and caches the choice per
(task, static configuration, member count, backend, device kind and count) in :func:`cache_path`.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import jax
import jax.numpy as jnp

from jaxlabs import atomic
from jaxlabs.models.conv import compiler_options

PLAN_FORMS = "auto, vmap, map or hybrid:K (K >= 1 members vmapped at a time)"
PRECISIONS = {"fp32": "float32", "tf32": "tensorfloat32", "bf16": "bfloat16"}  # jax.default_matmul_precision
MEMORY_FORMS = "bytes with an optional unit: 2GB, 512MiB, 1.5e9"
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


@dataclass(frozen=True)
class Plan:
    kind: str  # "vmap" | "map" | "hybrid"
    batch: int = 0  # hybrid's K

    def __str__(self) -> str:
        return f"hybrid:{self.batch}" if self.kind == "hybrid" else self.kind

    def over_members(self, fn: Callable, idle: Optional[tuple[Callable, Callable]] = None) -> Callable:
        """``fn(a, b, *shared)`` of one member -> the same over members stacked on the leading
        axis of ``a`` and ``b`` (``shared``: the data and numbers every member sees).

        ``idle = (is_idle, held)``: ``is_idle(a)`` says a member has nothing to do and ``held(a, b,
        *shared)`` gives its output without computing; hybrid then skips every block of K idle
        members (vmap computes them all; under map ``fn`` skips on its own)."""
        one = lambda a, b, *shared: jax.vmap(lambda x, y: fn(x, y, *shared))(a, b)  # noqa: E731
        if self.kind == "vmap":
            return one
        if self.kind == "map":
            return lambda a, b, *shared: jax.lax.map(lambda xy: fn(xy[0], xy[1], *shared), (a, b))
        if idle is None:
            return lambda a, b, *shared: jax.lax.map(lambda xy: fn(xy[0], xy[1], *shared), (a, b),
                                                     batch_size=self.batch)
        is_idle, held = idle
        stay = lambda a, b, *shared: jax.vmap(lambda x, y: held(x, y, *shared))(a, b)  # noqa: E731

        def hybrid(a, b, *shared):
            def block(xy):
                x, y = xy
                return jax.lax.cond(jnp.all(jax.vmap(is_idle)(x)), lambda: stay(x, y, *shared),
                                    lambda: one(x, y, *shared))

            n = jax.tree.leaves(a)[0].shape[0]
            k = min(self.batch, n)
            full = n - n % k
            blocks = jax.tree.map(lambda t: t[:full].reshape(full // k, k, *t.shape[1:]), (a, b))
            out = jax.tree.map(lambda t: t.reshape(full, *t.shape[2:]), jax.lax.map(block, blocks))
            if full == n:
                return out
            rest = block(jax.tree.map(lambda t: t[full:], (a, b)))
            return jax.tree.map(lambda u, v: jnp.concatenate([u, v]), out, rest)

        return hybrid


VMAP = Plan("vmap")


def parse_plan(text: str) -> Optional[Plan]:
    """``--plan`` text -> a Plan, or None for ``auto``; ValueError (one line) otherwise."""
    t = text.strip().lower()
    if t == "auto":
        return None
    if t in ("vmap", "map"):
        return Plan(t)
    m = re.fullmatch(r"hybrid:(\d+)", t)
    if m and int(m.group(1)) >= 1:
        return Plan("hybrid", int(m.group(1)))
    raise ValueError(f"{text!r} is not a plan; use {PLAN_FORMS}")


def parse_memory(text: str) -> int:
    """``--memory-limit`` text -> bytes; ValueError (one line) otherwise."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z]*)\s*", text.lower())
    if not m or m.group(2) not in _UNITS:
        raise ValueError(f"{text!r} is not an amount of memory; give {MEMORY_FORMS}")
    value = float(m.group(1)) * _UNITS[m.group(2)]
    if value < 1:
        raise ValueError(f"{text!r} is not a positive amount of memory; give {MEMORY_FORMS}")
    return int(value)


def parse_precision(text: str) -> str:
    if text not in PRECISIONS:
        raise ValueError(f"{text!r} is not a precision; use {', '.join(PRECISIONS)}")
    return text


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def program_bytes(compiled) -> Optional[int]:
    """Device memory a compiled program needs: its arguments, outputs and temporaries (donated
    arguments counted once), from XLA's own buffer assignment; None where the backend gives none."""
    try:
        m = compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - some backends do not implement it
        return None
    if m is None:
        return None
    total = m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes
    return max(int(total), int(getattr(m, "peak_memory_in_bytes", 0) or 0))


def free_device_memory(device=None) -> Optional[int]:
    """Free memory of ``device``: the allocator's limit less what is in use (accelerators), or
    the host's available memory (the CPU backend keeps arrays in host memory)."""
    device = device or jax.devices()[0]
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def cache_path() -> Path:
    """``$JAXLABS_CACHE_DIR/plans.json`` (default ``~/.cache/jaxlabs``)."""
    root = os.environ.get("JAXLABS_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "jaxlabs")
    return Path(root) / "plans.json"


def cache_key(task: str, static: dict, members: int, precision: str, devices: int = 1) -> str:
    """auto's cache key of a group: its task, static configuration and member count, the
    precision, the devices its members are split over (their kind and count) and the compile
    options (a choice timed with other kernels is not reused)."""
    device = jax.devices()[0]
    return json.dumps({"task": task, "static": static, "members": members, "precision": precision,
                       "backend": jax.default_backend(), "device": device.device_kind, "devices": devices,
                       "compile_options": compiler_options()}, sort_keys=True)


def cached_plan(key: str) -> Optional[dict]:
    try:
        entry = json.loads(cache_path().read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(entry, dict):
        return None
    try:
        parse_plan(entry["plan"])
    except (KeyError, ValueError, AttributeError):
        return None
    return entry


def remember_plan(key: str, entry: dict) -> None:
    """Add a decision to the cache (written aside and renamed; a cache that cannot be written is
    only a cache: the run goes on)."""
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            table = json.loads(path.read_text())
            table = table if isinstance(table, dict) else {}
        except (OSError, ValueError):
            table = {}
        table[key] = entry
        atomic.write_json(path, table, sort_keys=True)
    except OSError:
        pass
