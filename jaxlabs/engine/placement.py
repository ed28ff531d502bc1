"""Where a group's members live: one device, or split along the ``members`` axis of a mesh over
several devices and processes; and how member-stacked trees move (placed, gathered, picked).

Members never communicate, so a program is ``shard_map``-ped: each device runs its own block of
members under the plan, with no collective inside a step (XLA never gathers a grouped convolution
onto every device). Member-stacked arrays (keys, numbers, states, logs) are split on their leading
axis; the data is replicated, once per device.
"""
from __future__ import annotations

import time
from typing import Callable, Optional, Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, SingleDeviceSharding
from jax.sharding import PartitionSpec as P

from jaxlabs.engine import compile_cache


def members_of(tree) -> int:
    """The member count of a member-stacked tree (its leading axis)."""
    return int(jax.tree.leaves(tree)[0].shape[0])


def process0(values) -> np.ndarray:
    """``values`` (numbers) as process 0 has them, on every process. The processes of a
    jax.distributed run execute the same programs in step, so whatever picks a program (auto's
    cache, its timings, whether to probe or repack) must be one process's view, not each its own."""
    values = np.asarray(values, np.float32)
    return values if jax.process_count() == 1 else np.asarray(multihost_utils.broadcast_one_to_all(values))


def _shapes(tree) -> tuple:
    return (jax.tree.structure(tree), tuple((x.shape, str(x.dtype)) for x in jax.tree.leaves(tree)))


class Placement:
    """The devices a group's members are split over (default: the first device), with the mesh
    that splits them. Moving members between programs (:meth:`take`, :meth:`put_back`) is compiled
    once per shape; ``compile_s`` counts those compiles, ``compiles`` names them, ``loaded``
    says how many came from the persistent compilation cache and ``xla_s`` XLA's share of it."""

    def __init__(self, devices: Optional[Sequence] = None):
        self.devices = list(devices) if devices else [jax.devices()[0]]
        self.mesh = Mesh(np.array(self.devices), ("members",)) if len(self.devices) > 1 else None
        self.compile_s = 0.0
        self.compiles: list[str] = []
        self.loaded, self.xla_s = 0, 0.0
        self._compiled: dict = {}

    @property
    def count(self) -> int:
        return len(self.devices)

    def sharding(self, split: bool):
        """Members split over the devices (``split``) or replicated on each."""
        if self.mesh is None:
            return SingleDeviceSharding(self.devices[0])
        return NamedSharding(self.mesh, P("members") if split else P())

    def _put(self, tree, split: bool):
        sharding = self.sharding(split)
        if jax.process_count() == 1:
            return jax.device_put(tree, sharding)  # no copy for arrays already placed so
        placed = lambda x: isinstance(x, jax.Array) and x.sharding == sharding  # noqa: E731
        # several processes: each builds the global array from the same host values (every
        # process computes the same grid)
        return jax.tree.map(lambda x: x if placed(x) else jax.make_array_from_callback(
            np.shape(x), sharding, lambda index: np.asarray(x)[index]), tree)

    def members(self, tree):
        """A member-stacked tree, split over the devices."""
        return self._put(tree, True)

    def from_local(self, tree):
        """A member-stacked tree from this process's rows of it (all rows on one process), split
        over the devices as :meth:`members` splits a whole one."""
        if jax.process_count() == 1:
            return self.members(tree)
        sharding = self.sharding(True)
        local = [i for i, d in enumerate(self.devices) if d.process_index == jax.process_index()]

        def build(x):
            x = np.asarray(x)
            per = x.shape[0] // len(local)  # rows per device
            start = {d: k * per for k, d in enumerate(local)}  # device position -> its first local row
            shape = (per * self.count, *x.shape[1:])

            def block(index):
                first = index[0].start or 0
                return x[start[first // per]:start[first // per] + per][(slice(None), *index[1:])]

            return jax.make_array_from_callback(shape, sharding, block)

        return jax.tree.map(build, tree)

    def shared(self, tree):
        """A tree every member sees (the data, the epoch), on every device."""
        return self._put(tree, False)

    def over_devices(self, fn: Callable, shared_args: int) -> Callable:
        """``fn(members_a, members_b, *shared)`` -> the same with members split over the mesh."""
        if self.mesh is None:
            return fn
        return jax.shard_map(fn, mesh=self.mesh, in_specs=(P("members"), P("members"), *[P()] * shared_args),
                             out_specs=P("members"), check_vma=False)

    def fetch(self, tree):
        """Every member's values on this host (a gather across processes when there are several)."""
        if jax.process_count() == 1:
            return jax.device_get(tree)
        return multihost_utils.process_allgather(tree, tiled=True)

    def _program(self, name: str, fn: Callable, *args):
        """``fn`` compiled for these arguments' shapes, once (the compile counted in ``compile_s``)."""
        key = (name, *(_shapes(a) for a in args))
        if key not in self._compiled:
            t0 = time.perf_counter()
            self._compiled[key], loaded, xla_s = compile_cache.compile(
                jax.jit(fn, out_shardings=self.sharding(True)).lower(*args))
            self.compile_s += time.perf_counter() - t0
            self.compiles.append(name)
            self.loaded, self.xla_s = self.loaded + loaded, self.xla_s + xla_s
        return self._compiled[key]

    def take(self, tree, idx: np.ndarray):
        """The members ``idx`` of a member-stacked tree, split over the mesh again."""
        idx = self.shared(np.asarray(idx, np.int32))
        return self._program("take", _take, tree, idx)(tree, idx)

    def put_back(self, tree, idx: np.ndarray, sub):
        """``tree`` with the members ``idx`` replaced by ``sub``."""
        idx = self.shared(np.asarray(idx, np.int32))
        return self._program("put_back", _put_back, tree, idx, sub)(tree, idx, sub)

    def set_where(self, x, mask: np.ndarray, value):
        """The member array ``x`` with ``value`` where ``mask`` (a member mask) holds: compiled once
        per program size, whichever members are set."""
        mask = self.members(np.asarray(mask, bool))
        value = self.shared(np.asarray(value, x.dtype))
        return self._program("where", _where, x, mask, value)(x, mask, value)

    def copy(self, tree, to: np.ndarray, frm: np.ndarray):
        """``tree`` with the members ``to`` replaced by copies of the members ``frm`` (in one program:
        any number of them, whatever the device count)."""
        to, frm = self.shared(np.asarray(to, np.int32)), self.shared(np.asarray(frm, np.int32))
        return self._program("copy", _copy, tree, to, frm)(tree, to, frm)


def _where(x, mask, value):
    return jax.numpy.where(mask, value, x)


def _copy(tree, to, frm):
    return jax.tree.map(lambda x: x.at[to].set(x[frm]), tree)


def _take(tree, idx):
    return jax.tree.map(lambda x: x[idx], tree)


def _put_back(tree, idx, sub):
    return jax.tree.map(lambda x, y: x.at[idx].set(y), tree, sub)
