"""The one run loop, for sweeps and searches alike.

A run is every static group's members, each group split into units (a wave: the members one
program holds). The whole run between two chunks is one value, :class:`RunState`: every unit's
:class:`~jaxlabs.engine.wave.WaveState` and numbers (or, once it finished, its curves and final
metrics), the decision point the units train towards, each group's log (auto's choice, repacks,
compiles) and the policy's record. The driver alternates

    state = advance(state, unit, stop)     # the unit's chunks up to the next decision point
    state = policy.decide(state, scores)   # between decision points, on the host

A :class:`Policy` says where the decision points are, how long each chunk is, whether stopped
members are compacted between chunks and what happens at a decision point: a sweep's policy has
no decision point but the budget and compacts (:class:`SweepPolicy`); the search's policies
(successive halving, PBT; :mod:`jaxlabs.search.policies`) prune, repack and copy members. Units run
one at a time, each to the next decision point, in order: a sweep (no decision point) trains
group after group, wave after wave, exactly as a group loop would; a search advances every unit
to a rung, then decides on all of them together. A unit that shares its group with other waves
is parked on the host between decision points, so one wave at a time is on the devices.

The store (:mod:`jaxlabs.store`) saves a RunState between chunks and gives one back.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxlabs.engine.auto import Auto, Decision
from jaxlabs.engine.memory import check_data_fits, padded, rows, wave_size, waves
from jaxlabs.engine.options import EngineOptions
from jaxlabs.engine.placement import Placement, members_of
from jaxlabs.engine.plans import VMAP
from jaxlabs.engine.programs import PlanPrograms
from jaxlabs.engine.policy import Policy, SweepPolicy  # noqa: F401 (SweepPolicy: a sweep's, reached from here)
from jaxlabs.engine.state import GroupLog, RunState, Unit, held, on_host, to_devices, to_host
from jaxlabs.engine.wave import WaveState, after_chunk, compaction_order, fresh, merged, repacked, run_chunk
from jaxlabs.train import RUNNING, Trainer


def member_keys(seeds: Sequence[int]) -> jax.Array:
    """One key per member from its seed alone: members with the same seed and different learning
    rates start from the same initialisation (common random numbers make the comparison sharper)."""
    return jnp.stack([jax.random.key_data(jax.random.key(int(s))) for s in seeds])


# ---------------------------------------------------------------------------------- the groups
@dataclass
class GroupSpec:
    """One static configuration's members, as the caller gives them (rebuilt on every run, never saved)."""

    static: dict
    labels: list[str]
    seeds: np.ndarray  # (members,)
    hparams: dict  # name -> (members,) as given (float64; the programs see float32)
    build: Callable[[], tuple[Trainer, Any]]  # the trainer and its data
    desc: str = ""
    plan_key: Optional[str] = None
    options: EngineOptions = EngineOptions()

    @property
    def members(self) -> int:
        return len(self.seeds)


class Built:
    """A group's trainer, programs and auto, built when its first unit starts (and again on resume).
    Its chunk lengths and auto are the run's policy's, asked when first needed (a search reads
    its trainers' budgets and logs before it knows its policy)."""

    def __init__(self, spec: GroupSpec, run: "Run"):
        self.spec, self.run = spec, run
        self.trainer, data = spec.build()
        options = spec.options
        self.placement = Placement(options.device_list())
        local = next(d for d in self.placement.devices if d.process_index == jax.process_index())
        check_data_fits(data, options.memory_limit, local, self.trainer.data_name)
        self.programs_for = PlanPrograms(self.trainer, self.placement.shared(data), options.precision,
                                         self.placement, options.compile_options)  # the data placed once
        self.programs_for.slice_steps = options.slice_steps
        self.key_data = np.asarray(member_keys(spec.seeds))  # (members, 2) uint32, on the host
        self.hp = {k: np.asarray(v, np.float32) for k, v in spec.hparams.items()}

    @functools.cached_property
    def chunk(self) -> int:
        """The chunk length auto probes with and the memory check sizes."""
        return self.run.policy.first_chunk(self.trainer, self.spec.options)

    @functools.cached_property
    def auto(self) -> Auto:
        chunks = self.run.policy.chunks(self.trainer, self.spec.options)
        return Auto(self.trainer, self.programs_for, self.spec.options, self.spec.plan_key, self.chunk, chunks)

    def programs(self, decision: Decision):
        return self.programs_for(decision.plan or VMAP)

    def log_names(self) -> list[str]:
        """The names of the curves the trainer logs (traced, nothing run)."""
        one = np.zeros(self.placement.count, int)
        shapes = self.programs_for(VMAP).state_shapes(self.placement.members(self.key_data[one]),
                                                      self.placement.members(rows(self.hp, one)))
        return list(shapes.last_logs)


# ---------------------------------------------------------------------------------- the loop
@dataclass
class Hooks:
    """What the caller sees of a run (``u``: a unit's index in ``state.units``): ``start(u, state)``
    when a unit starts or goes on training; ``chunk(u, state, first epoch, epochs done, seconds)``
    after every chunk; ``sliced(u, share of an epoch, seconds)`` after a piece of an epoch;
    ``unit_done(u, state)``; ``group_done(g, state)`` (every unit of group g finished); ``save(state, force)`` between chunks (force: whether due or not)."""

    start: Callable = lambda u, state: None
    chunk: Callable = lambda u, state, first, done, seconds: None
    sliced: Callable = lambda u, share, seconds: None
    unit_done: Callable = lambda u, state: None
    group_done: Callable = lambda g, result: None
    save: Callable = lambda state, force=False: None


class Run:
    """The driver of one run: its groups (specs), policy and hooks; :meth:`go` runs it to the end."""

    def __init__(self, specs: Sequence[GroupSpec], policy: Policy, hooks: Hooks = Hooks()):
        self.specs, self.policy, self.hooks = list(specs), policy, hooks
        self.built: dict[int, Built] = {}
        self.pending: dict[int, tuple] = {}  # unit -> the next chunk when auto's probe ran it
        self.epoch_s: dict[int, float] = {}  # unit -> seconds an epoch of its program took, at its last chunk

    # ------------------------------------------------------------------ building
    def group(self, g: int) -> Built:
        if g not in self.built:
            self.built[g] = Built(self.specs[g], self)
        return self.built[g]

    def layout(self, g: int) -> tuple[list[np.ndarray], Decision]:
        """Group ``g``'s waves (member indices) and the decision it starts under."""
        b, spec = self.group(g), self.specs[g]
        options = spec.options
        decision = Decision.start(options.plan)
        if options.plan is None and spec.plan_key and b.trainer.probe is None:
            decision = b.auto.cached() or decision  # decided by an earlier run: sized and run under it
        size = wave_size(b.programs(decision), b.key_data, b.hp, b.chunk, options.memory_limit, options.max_wave)
        return waves(spec.members, size), decision

    def initial(self, record: Any = None) -> RunState:
        """A run before its first chunk: every group's units laid out (the first group's only, for a
        sweep, whose later groups are laid out as they start: their data is built then)."""
        units, logs = [], []
        for g in range(len(self.specs)):
            if g and not self.policy.holds:
                units.append(Unit(None, {}, group=g))  # a placeholder (no members): laid out when its group starts
                logs.append(None)
                continue
            split, decision = self.layout(g)
            logs.append(GroupLog(decision, [len(i) for i in split]))
            units += [self._unit(g, idx) for idx in split]
        return RunState(tuple(units), 0, tuple(logs), record)

    def _unit(self, g: int, idx: np.ndarray) -> Unit:
        count = self.group(g).placement.count
        return Unit(None, {}, group=g, members=tuple(int(i) for i in idx),
                    slots=tuple(int(i) for i in padded(np.arange(len(idx)), count)))

    def lay_out(self, state: RunState, u: int) -> RunState:
        """A placeholder unit (a sweep's later group) laid out as its group's waves."""
        g = state.units[u].group
        split, decision = self.layout(g)
        logs = state.logs[:g] + (GroupLog(decision, [len(i) for i in split]),) + state.logs[g + 1:]
        units = state.units[:u] + tuple(self._unit(g, idx) for idx in split) + state.units[u + 1:]
        return dataclasses.replace(state, units=units, logs=logs)

    def start_unit(self, state: RunState, u: int) -> Unit:
        """The unit's wave before its first chunk: its members' states initialised on the devices."""
        unit = state.units[u]
        b, log = self.group(unit.group), state.logs[unit.group]
        idx = np.asarray(unit.members, int)[np.asarray(unit.slots, int)]
        hp = rows(b.hp, idx)
        # under auto every run initialises under vmap, as the run that probes does before it chooses:
        # a later run that finds the choice cached then loads that same init program
        init = b.programs_for(VMAP) if self.specs[unit.group].options.plan is None else b.programs(log.decision)
        state0 = init.init(b.placement.members(b.key_data[idx]), b.placement.members(hp))
        capacity = -(-b.trainer.max_epochs // b.chunk) * b.chunk
        return dataclasses.replace(unit, ws=fresh(state0, len(unit.members), capacity, state0.last_logs.keys()),
                                   hp=hp)

    # ------------------------------------------------------------------ training
    def advance(self, state: RunState, u: int, stop: int) -> RunState:
        """Unit ``u``'s chunks up to epoch ``stop`` (or until none of its members runs), the save hook
        called between chunks; the state after."""
        unit = state.units[u]
        g = unit.group
        b, log = self.group(g), state.logs[g]
        trainer, placement, options = b.trainer, b.placement, self.specs[g].options
        t_unit, compile0 = time.perf_counter(), b.programs_for.compile_s + placement.compile_s
        ws = unit.ws
        hp_placed = placement.members(unit.hp)
        sub_hp = hp_placed if ws.full is None else placement.take(hp_placed, ws.active)
        keys = lambda: placement.members(b.key_data[_slot_members(unit)])  # noqa: E731
        for length in self.policy.lengths(b, ws.epoch, min(stop, trainer.max_epochs)):
            if not (ws.status == RUNNING).any():
                break  # nothing left to train (a search holds its values: :func:`held`)
            pending = self.pending.pop(u, None)  # the chunk auto's probe ran under its choice
            if pending is None and log.decision.plan is None and ws.epoch == 0 and trainer.probe is None:
                # auto before the first chunk: a run that finds the choice cached trains under it from
                # the start, as the probing run does (the probe keeps the chosen plan's first chunk)
                log.decision, spent, pending = b.auto.decide(keys(), hp_placed, ws.state, 0, None)
                log.probe_s += spent
            if pending is not None:
                new, logs, chunk_s = pending
            else:
                compiled, t0 = b.programs_for.compile_s, time.perf_counter()
                new, logs = run_chunk(b.programs(log.decision), ws, sub_hp, length,
                                      lambda share, seconds: self.hooks.sliced(u, share, seconds))
            logs, status = placement.fetch((logs, new.status))  # the one host round trip per chunk
            if pending is None:
                chunk_s = time.perf_counter() - t0 - (b.programs_for.compile_s - compiled)
            self.epoch_s[u] = chunk_s / length
            log.program_epochs += members_of(new) * length
            first = ws.epoch
            ws = after_chunk(ws, new, logs, np.asarray(status), length)
            state = state.replace_unit(u, dataclasses.replace(unit, ws=ws))
            self.hooks.chunk(u, state, first, min(length, trainer.max_epochs - first), chunk_s)
            if not (ws.status == RUNNING).any():
                break
            probed = None
            if log.decision.plan is None:  # auto for a trainer with a cheaper version: after a first chunk
                log.decision, spent, probed = b.auto.decide(keys(), hp_placed, ws.state, ws.epoch, chunk_s)
                log.probe_s += spent
                if probed is not None:
                    self.pending[u] = probed
            if probed is None and self.policy.compacts:
                chunks_left = -(-(trainer.max_epochs - ws.epoch) // b.chunk)
                order = compaction_order(ws, log.decision.plan or VMAP, placement.count, chunk_s, chunks_left,
                                         options)
                if order is not None:
                    ws = repacked(ws, order, placement)
                    log.repacks.append((ws.epoch, self.wave_of(state, u), [int(i) for i in ws.active]))
                    sub_hp = placement.take(hp_placed, ws.active)
                    state = state.replace_unit(u, dataclasses.replace(unit, ws=ws))
            self._account(log, b, compile0, t_unit)
            t_unit, compile0 = time.perf_counter(), b.programs_for.compile_s + placement.compile_s
            self.hooks.save(state)
        self._account(log, b, compile0, t_unit)
        return state.replace_unit(u, dataclasses.replace(unit, ws=ws))

    def _account(self, log: GroupLog, b: Built, compile0: float, t0: float) -> None:
        log.busy_s += time.perf_counter() - t0
        log.compile_s += b.programs_for.compile_s + b.placement.compile_s - compile0

    def wave_of(self, state: RunState, u: int) -> int:
        g = state.units[u].group
        return sum(1 for x in state.units[:u] if x.group == g)

    def finish(self, state: RunState, u: int) -> RunState:
        """The unit's final metrics and curves; its wave leaves the devices."""
        unit = state.units[u]
        b, log = self.group(unit.group), state.logs[unit.group]
        t0, compile0 = time.perf_counter(), b.programs_for.compile_s + b.placement.compile_s
        ws = unit.ws
        final = b.placement.fetch(b.programs(log.decision).finish(merged(ws, b.placement),
                                                                  b.placement.members(unit.hp)))
        real = len(unit.members)
        epochs_run = min(ws.epoch, b.trainer.max_epochs)
        curves = {k: v[:, :epochs_run] for k, v in ws.logs.items()}
        self._account(log, b, compile0, t0)
        done = dataclasses.replace(unit, ws=None, curves=curves, final={k: np.asarray(v)[:real] for k, v in final.items()})
        return state.replace_unit(u, done)

    # ------------------------------------------------------------------ parking
    def park(self, state: RunState, u: int) -> RunState:
        """The unit's wave on the host (another wave of its group trains next)."""
        unit = state.units[u]
        return state.replace_unit(u, dataclasses.replace(unit, ws=to_host(unit.ws)))

    def unpark(self, state: RunState, u: int) -> RunState:
        unit = state.units[u]
        if unit.ws is None or not on_host(unit.ws.state):
            return state
        placement = self.group(unit.group).placement
        return state.replace_unit(u, dataclasses.replace(unit, ws=to_devices(unit.ws, placement)))

    def shares_group(self, state: RunState, u: int) -> bool:
        g = state.units[u].group
        return sum(1 for x in state.units if x.group == g) > 1

    # ------------------------------------------------------------------ the run
    def go(self, state: RunState) -> RunState:
        """The run from ``state`` to its end: every unit finished. The last pass's stop is
        :data:`FINAL`: each group's own budget (a sweep's groups may differ in epochs; a search's may not)."""
        stops = [s for s in self.policy.stops(self.budget()) if s > state.stop
                 or (s == state.stop and not _decided(state))] if self.policy.holds else []
        for stop in [*stops, FINAL]:
            state = dataclasses.replace(state, stop=stop)
            u = 0
            while u < len(state.units):  # a sweep's later group is laid out as its waves when it comes
                if not state.units[u].members:
                    state = self.lay_out(state, u)
                state = self._train(state, u, stop)
                u += 1
            if self.policy.holds:  # a search: every unit at the same epoch before it decides or ends
                state, everyone_stopped = self._held_to(state, stop)
                if stop != FINAL and not everyone_stopped:
                    state = self.policy.decide(state, self)
                    state = dataclasses.replace(state, record=_mark_decided(state.record, stop))
                    self.hooks.save(state)
                    continue
                for u in range(len(state.units)):
                    if not state.units[u].done:
                        state = self._finish_unit(self.unpark(state, u), u)
                break
        return state

    def _train(self, state: RunState, u: int, stop: int) -> RunState:
        """Unit ``u`` trained to ``stop`` (FINAL: its budget); finished when nothing can change it
        any more (a sweep's unit at its end), else parked when another wave of its group comes next."""
        unit = state.units[u]
        if unit.done:
            return state
        if unit.ws is None:
            state = state.replace_unit(u, self.start_unit(state, u))
            self.hooks.start(u, state)
        else:
            state = self.unpark(state, u)
            self.hooks.start(u, state)
        state = self.advance(state, u, stop)
        if not self.policy.holds:  # a sweep's unit is over: no decision can change it
            return self._finish_unit(state, u)
        if self.shares_group(state, u):
            state = self.park(state, u)
        self.hooks.save(state)
        return state

    def _finish_unit(self, state: RunState, u: int) -> RunState:
        state = self.finish(state, u)
        self.hooks.unit_done(u, state)
        g = state.units[u].group
        if all(x.done for x in state.units if x.group == g):
            b = self.built.get(g)
            if b is not None:
                state.logs[g].data = b.trainer.data_name
                state.logs[g].programs = b.programs_for.tally()
                state.logs[g].compiled = [(str(p.plan), *c) for p in b.programs_for.built() for c in p.compiles]
            self.hooks.group_done(g, state)
            if not self.policy.holds:
                self.built.pop(g, None)  # its data and programs are no longer needed
                # a finished group is kept at once (not the last: the results are published next)
                self.hooks.save(state, g < len(self.specs) - 1)
                return state
        self.hooks.save(state)
        return state

    def _held_to(self, state: RunState, stop: int) -> tuple[RunState, bool]:
        """Units whose members all stopped, held at their last values up to the epoch the furthest
        unit reached (``stop`` unless every member of every unit stopped before it: the run then
        ends there, as a lockstep loop would); and whether that happened."""
        reached = max(x.ws.epoch for x in state.units if x.ws is not None)
        for u, x in enumerate(state.units):
            if x.ws is not None and x.ws.epoch < reached:
                state = state.replace_unit(u, dataclasses.replace(x, ws=held(x.ws, reached - x.ws.epoch)))
        target = self.budget() if stop == FINAL else stop
        return state, reached < target

    def budget(self) -> int:
        """The run's budget: every group's (a search checks they agree)."""
        return max(self.group(g).trainer.max_epochs for g in range(len(self.specs)))

FINAL = 1 << 62  # the last pass's stop: every unit to its budget


def _slot_members(unit: Unit) -> np.ndarray:
    return np.asarray(unit.members, int)[np.asarray(unit.slots, int)]


def _decided(state: RunState) -> bool:
    return state.record is not None and getattr(state.record, "decided", -1) >= state.stop


def _mark_decided(record, stop: int):
    if record is None or not hasattr(record, "decided"):
        return record
    return dataclasses.replace(record, decided=stop)


def host_like(run: Run, unit: Unit, log: GroupLog, layout: dict) -> WaveState:
    """A wave of placeholder host arrays with the structure of one saved with ``layout`` (what a
    restore fills in by name)."""
    b = run.group(unit.group)
    idx = _slot_members(unit)
    shapes = b.programs(log.decision).state_shapes(b.placement.members(b.key_data[idx]),
                                                   b.placement.members(rows(b.hp, idx)))
    names = list(shapes.last_logs)
    state = jax.tree.map(lambda s: np.zeros(0, np.float32), shapes)
    n = len(unit.slots)
    return WaveState(state, state if layout["compacted"] else None, np.zeros(n, int), np.zeros(n, np.int32),
                     {k: np.zeros(n, np.float32) for k in names} if layout["compacted"] else {},
                     {k: np.zeros((len(unit.members), 0), np.float32) for k in names}, 0)
