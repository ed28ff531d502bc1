"""The run's state between two chunks, as values: :class:`Unit` (one program's members: a wave of a
static group), :class:`GroupLog` (what a group did: auto's choice, waves, repacks, compiles,
seconds) and :class:`RunState` (every unit, the decision point they train towards, the groups'
logs, the policy's record); and the host copies of a wave (:func:`to_host`, :func:`to_devices`),
for a wave parked between decision points and for the store."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

import jax
import numpy as np

from jaxlabs.engine.auto import Decision
from jaxlabs.engine.placement import Placement
from jaxlabs.engine.wave import WaveState


@dataclass(frozen=True)
class Unit:
    """One program's members (a wave of a group): running (``ws``), or finished (``curves``, ``final``)."""

    ws: Optional[WaveState]  # the running wave (on the devices; host arrays while parked); None when not running
    hp: dict  # name -> (slots,) float32: the numbers of its program slots (padding included), on the host
    curves: Optional[dict] = None  # once finished: name -> (members, epochs run)
    final: Optional[dict] = None  # once finished: name -> (members, ...), with "status" and "stop_epoch"
    group: int = field(default=0, metadata=dict(static=True))
    members: tuple = field(default=(), metadata=dict(static=True))  # the group's members it holds, in order
    slots: tuple = field(default=(), metadata=dict(static=True))  # program slot -> position in ``members`` (padded)

    @property
    def done(self) -> bool:
        return self.final is not None


@dataclass
class GroupLog:
    """What a group did, on the host: auto's decision, its waves, repacks, compiles and seconds (the
    loop adds to it as it goes; the store saves it with the units)."""

    decision: Decision
    waves: list  # members per wave
    repacks: list = field(default_factory=list)  # (epoch, wave, members of the next program in its order)
    program_epochs: int = 0  # member-epochs its programs ran (frozen and padded members included)
    compile_s: float = 0.0
    probe_s: float = 0.0
    busy_s: float = 0.0  # seconds spent on its units (compile and probe included)
    compiled: list = field(default_factory=list)  # (plan, program, epochs, members) of every compile
    data: str = ""  # what the data is (Trainer.data_name)
    programs: dict = field(default_factory=dict)  # its compiles: {"loaded" (from the cache), "compiled", "xla_s"}

    def to_json(self) -> dict:
        return {**{k: getattr(self, k) for k in ("waves", "repacks", "program_epochs", "compile_s", "probe_s",
                                                 "busy_s", "compiled", "data", "programs")}, "decision": self.decision.to_json()}

    @classmethod
    def from_json(cls, d: dict) -> "GroupLog":
        return cls(**{**d, "decision": Decision.from_json(d["decision"]),
                      "repacks": [tuple(r) if len(r) != 3 else (r[0], r[1], list(r[2])) for r in d["repacks"]],
                      "compiled": [tuple(c) for c in d["compiled"]]})


@dataclass(frozen=True)
class RunState:
    """A whole run between two chunks: every unit, the decision point they train towards
    (``stop``), each group's log, and the policy's record (None for a sweep)."""

    units: tuple  # (Unit, ...) in run order: group by group, wave by wave
    stop: int = field(default=0, metadata=dict(static=True))
    logs: tuple = field(default=(), metadata=dict(static=True))  # (GroupLog, ...) per group, None before it starts
    record: Any = field(default=None, metadata=dict(static=True))

    def replace_unit(self, u: int, unit: Unit) -> "RunState":
        return dataclasses.replace(self, units=self.units[:u] + (unit,) + self.units[u + 1:])


jax.tree_util.register_dataclass(Unit)
jax.tree_util.register_dataclass(RunState)



def held(ws: WaveState, length: int) -> WaveState:
    """``length`` epochs of a program none of whose members runs: their last values, held."""
    for v in ws.logs.values():
        v[:, ws.epoch:ws.epoch + length] = v[:, ws.epoch - 1:ws.epoch]
    return dataclasses.replace(ws, epoch=ws.epoch + length)


def on_host(tree) -> bool:
    return not any(isinstance(x, jax.Array) for x in jax.tree.leaves(tree))


def _local(x):
    """A device array's rows on this process (all of them on one process; typed keys as key data)."""
    if _is_key(x):
        x = jax.random.key_data(x)
    if not isinstance(x, jax.Array):
        return np.asarray(x)
    if x.is_fully_addressable:
        return np.asarray(x)
    shards = sorted(x.addressable_shards, key=lambda s: s.index[0].start or 0)
    return np.concatenate([np.asarray(s.data) for s in shards])


def to_host(ws: WaveState) -> WaveState:
    """The wave with its device arrays as host arrays: this process's members' rows (all of them
    on one process), typed keys as their key data."""
    return dataclasses.replace(ws, state=jax.tree.map(_local, ws.state),
                               full=None if ws.full is None else jax.tree.map(_local, ws.full))


def to_devices(ws: WaveState, placement: Placement) -> WaveState:
    """A wave of host arrays (:func:`to_host`'s) back on the devices, its keys typed again."""
    def put(tree):
        placed = placement.from_local(tree)
        return placed._replace(key=jax.random.wrap_key_data(placed.key))

    return dataclasses.replace(ws, state=put(ws.state), full=None if ws.full is None else put(ws.full))


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
