"""How many members one program may hold: memory of devices and programs, waves, padding and the
member counts a compacted program may have."""
from __future__ import annotations

import os
import re
from typing import Optional

import jax
import numpy as np
from jax.experimental import multihost_utils

MEMORY_FORMS = "bytes with an optional unit: 2GB, 512MiB, 1.5e9"
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


class MemberTooLarge(MemoryError):
    """One member alone needs more device memory than a program may use (``need``, ``limit``: bytes)."""

    option = "memory_limit"  # the EngineOptions field a command maps to its flag

    def __init__(self, need: int, limit: int):
        self.need, self.limit = need, limit
        super().__init__(f"one member of this group needs {fmt_bytes(need)} of device memory, but {fmt_bytes(limit)} "
                         "is available; raise the memory limit or shrink the model or data")


def parse_memory(text: str) -> int:
    """``--memory-limit`` text -> bytes; ValueError (one line) otherwise."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z]*)\s*", text.lower())
    if not m or m.group(2) not in _UNITS:
        raise ValueError(f"{text!r} is not an amount of memory; give {MEMORY_FORMS}")
    value = float(m.group(1)) * _UNITS[m.group(2)]
    if value < 1:
        raise ValueError(f"{text!r} is not a positive amount of memory; give {MEMORY_FORMS}")
    return int(value)


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




class DataTooLarge(MemoryError):
    """The data every member shares does not fit one device's memory (``need``, ``limit``: bytes)."""

    option = "memory_limit"

    def __init__(self, need: int, limit: int, name: str = ""):
        self.need, self.limit = need, limit
        what = f"the data ({name})" if name else "the data"
        super().__init__(f"{what} takes {fmt_bytes(need)} on each device, but {fmt_bytes(limit)} is available; "
                         "use less or smaller data (images: --resize), raise the memory limit, or a device with more "
                         "memory")


def check_data_fits(data, memory_limit: Optional[int], device, name: str = "") -> None:
    """Raise :class:`DataTooLarge` before anything is placed or compiled when the shared data
    (replicated on every device) exceeds ``memory_limit`` or the device's free memory."""
    need = sum(int(np.asarray(x).nbytes) for x in jax.tree.leaves(data))
    limit = memory_limit if memory_limit is not None else free_device_memory(device)
    if limit is not None and need > limit:
        raise DataTooLarge(need, limit, name)


def wave_size(programs, key_data: np.ndarray, hp: dict, length: int, memory_limit: Optional[int],
              max_wave: Optional[int] = None) -> int:
    """The most members one program may hold: all of them (at most ``max_wave``) when the group's
    program fits the memory of each device (``memory_limit`` or the device's free memory), else as
    many as fit, from the memory XLA assigns to the program for all members and for one device's
    worth (:meth:`jaxlabs.engine.programs.Programs.chunk_bytes`)."""
    devices = programs.placement.count
    n = len(key_data) if max_wave is None else min(len(key_data), max(max_wave, devices))
    local = [d for d in programs.placement.devices if d.process_index == jax.process_index()]
    limit = memory_limit if memory_limit is not None else free_device_memory(local[0])
    if memory_limit is None and jax.process_count() > 1:  # every process sizes the same waves: by the
        # least free memory of any (None where one cannot tell)
        got = np.asarray(multihost_utils.process_allgather(np.float32([-1 if limit is None else limit])))
        limit = None if (got < 0).any() else int(got.min() * (1 - 1e-6))
    if limit is None:
        return n
    place = programs.placement.members
    full = padded(np.arange(n), devices)
    need = programs.chunk_bytes(place(key_data[full]), place(rows(hp, full)), length)
    if need is None or need <= limit:
        return n
    one = np.zeros(devices, int)  # one member per device
    one_need = programs.chunk_bytes(place(key_data[one]), place(rows(hp, one)), length)
    per_member = max((need - one_need) / max(len(full) // devices - 1, 1), 1.0)  # per device
    fits = int((limit - (one_need - per_member)) // per_member)
    if fits < 1:
        raise MemberTooLarge(one_need, limit)
    return min(fits * devices, n)


def rows(hp: dict, idx) -> dict:
    """The members ``idx`` of a dict of member arrays."""
    return {k: v[idx] for k, v in hp.items()}


def padded(idx: np.ndarray, devices: int) -> np.ndarray:
    """``idx`` repeated at its first member up to a multiple of ``devices``: the copies are masked
    members (the same key and numbers as the first, so they stop when it does) never reported."""
    pad = -len(idx) % devices
    return np.concatenate([idx, np.repeat(idx[:1], pad)]) if pad else idx


def waves(n: int, size: int) -> list[np.ndarray]:
    """``n`` members as the fewest waves of at most ``size``, balanced (sizes differ by at most one)."""
    k = -(-n // size)
    return [a for a in np.array_split(np.arange(n), k)]


def bucket(running: int, devices: int = 1) -> int:
    """Member counts a compacted program may have: powers of two (few compiles), a multiple of the
    devices."""
    size = 1 << max(running - 1, 0).bit_length()
    return -(-size // devices) * devices
