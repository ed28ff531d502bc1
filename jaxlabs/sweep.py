"""Run a grid of members as one compiled program per static configuration.

A grid is a list of :class:`Member`: a setting's label, its static configuration (model shape,
data size, ...: each distinct one compiles its own program), its traced numbers (learning rate,
tolerance, ...) and a seed. :func:`run_grid` groups the members by static configuration
(:func:`static_groups`), builds each group's trainer and data once, and runs all its members
under ``jit(vmap(...))``: the data is put on the device once and shared (vmap ``in_axes=None``),
each member has its own key and numbers. The host loop runs one chunk of epochs per call, ticks
the progress bar, and stops early once no member is running.
"""
from __future__ import annotations

import functools
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, SingleDeviceSharding
from jax.sharding import PartitionSpec as P
from tqdm.auto import tqdm

from jaxlabs.models.conv import compiler_options
from jaxlabs.plans import (PRECISIONS, VMAP, Plan, cache_key, cached_plan, fmt_bytes, free_device_memory,
                           parse_plan, program_bytes, remember_plan)
from jaxlabs.train import (CONVERGED, DIVERGED, RUNNING, STATUS_NAMES, Trainer, finalize, hold_epochs,
                           init_member, run_epochs)


@dataclass(frozen=True)
class Member:
    """One member of a grid: the setting it belongs to, its static configuration (every static
    option), its traced numbers (every traced option) and its seed."""

    label: str
    static: dict
    hparams: dict
    seed: int


@dataclass
class GroupResult:
    """Everything one static configuration's program returned, as NumPy arrays per member."""

    static: dict
    labels: list[str]  # (members,): the setting of each member
    seeds: np.ndarray  # (members,)
    hparams: dict[str, np.ndarray]  # name -> (members,), as given (the program saw them as float32)
    curves: dict[str, np.ndarray]  # name -> (members, epochs_run)
    final: dict[str, np.ndarray]  # name -> (members, ...), with "status" and "stop_epoch"
    epochs_run: int
    compile_s: float
    run_s: float  # training, compile and probe excluded
    plan: str = "vmap"  # the plan that trained the group (after auto's first chunk)
    plan_source: str = "forced"  # forced, probed, cached, or why auto kept vmap
    probe: dict = field(default_factory=dict)  # plan -> probe seconds, when auto probed
    waves: list = field(default_factory=list)  # members per wave
    devices: int = 1  # devices the members were split over
    data: str = ""  # what the data is (Trainer.data_name), "" for a task's one fixed source

    @property
    def members(self) -> int:
        return len(self.seeds)


@dataclass
class SweepResult:
    task: str
    groups: list[GroupResult] = field(default_factory=list)

    def records(self) -> list[dict]:
        """One plain row per member: static config, hyperparameters, seed, status, metrics."""
        rows = []
        for g in self.groups:
            for i in range(g.members):
                status = STATUS_NAMES[int(g.final["status"][i])]
                row: dict[str, Any] = {"task": self.task, "setting": g.labels[i], **g.static,
                                       **({"data": g.data} if g.data else {}), "seed": int(g.seeds[i])}
                row.update({k: float(v[i]) for k, v in g.hparams.items()})
                row["status"] = status
                stop = int(g.final["stop_epoch"][i])
                row["converged_epoch"] = stop if status == "converged" else None
                row["epochs_trained"] = stop
                for k, v in g.final.items():
                    if k in ("status", "stop_epoch") or np.ndim(v[i]) != 0:
                        continue
                    row[k] = float(v[i])
                rows.append(row)
        return rows


def member_keys(seeds: Sequence[int]) -> jax.Array:
    """One key per member from its seed alone: members with the same seed and different learning
    rates start from the same initialisation (common random numbers make the comparison sharper)."""
    return jnp.stack([jax.random.key_data(jax.random.key(int(s))) for s in seeds])


def _fmt(x: float) -> str:
    return "nan" if not np.isfinite(x) else f"{x:.3g}"


def _members(tree) -> int:
    return int(jax.tree.leaves(tree)[0].shape[0])


# auto probes only when the probe's estimated cost (a compile and a chunk for each other
# candidate) is at most this share of the group's estimated remaining training; else it keeps vmap.
# The cost is paid once: the choice is cached for every later run of the same group
PROBE_SHARE = 0.2
# the two fastest candidates, when within this share of each other, are timed again: on a busy or
# virtual machine one chunk's time varies by 10-15%
PROBE_CLOSE = 0.15
# compaction repacks only when the program's remaining chunks are estimated to take longer than
# this: a smaller program is a compile of a few seconds
COMPACT_WORTH_S = 10.0


@dataclass(frozen=True)
class EngineOptions:
    """How the engine runs a group: ``plan`` (a Plan, or None for auto), ``memory_limit`` (bytes
    per program; None: the device's free memory), ``compaction`` and ``precision`` (fp32, tf32,
    bf16: the precision of matmuls and convolutions; parameters stay float32). The library's
    default is one vmapped program, as before; the commands default to auto with compaction."""

    plan: Optional[Plan] = VMAP
    memory_limit: Optional[int] = None
    compaction: bool = False
    precision: str = "fp32"
    devices: Optional[int] = None  # split members over this many devices; None: every device

    def device_list(self) -> list:
        """The devices members are split over: the first ``devices`` of every process's (all of
        them by default); a one-line ValueError when there are fewer."""
        there = jax.devices()
        if self.devices is None:
            return there
        if self.devices > len(there):
            kinds = ", ".join(sorted({d.device_kind for d in there}))
            raise ValueError(f"argument --devices: {self.devices} asked for, but {len(there)} device"
                             f"{'s are' if len(there) > 1 else ' is'} here ({kinds}); use --devices all or "
                             f"at most {len(there)}")
        return there[:self.devices]


class Placement:
    """Where a group's members live: one device, or split along the ``members`` axis of a mesh
    over several devices (every local device, or every device of every process after
    ``jax.distributed.initialize``). Member-stacked arrays (keys, numbers, states, logs) are split
    on their leading axis; the data is replicated, once per device. Members never communicate, so
    a program is ``shard_map``-ped: each device runs its own block of members under the plan, with
    no collective inside a step (XLA never gathers a grouped convolution onto every device)."""

    def __init__(self, devices: Optional[Sequence] = None):
        self.devices = list(devices) if devices else [jax.devices()[0]]
        self.mesh = Mesh(np.array(self.devices), ("members",)) if len(self.devices) > 1 else None

    @property
    def count(self) -> int:
        return len(self.devices)

    def _sharding(self, spec):
        return NamedSharding(self.mesh, spec) if self.mesh is not None else SingleDeviceSharding(self.devices[0])

    def _put(self, tree, spec):
        sharding = self._sharding(spec)
        if jax.process_count() == 1:
            return jax.device_put(tree, sharding)  # no copy for arrays already placed so
        placed = lambda x: isinstance(x, jax.Array) and x.sharding == sharding  # noqa: E731
        # several processes: each builds the global array from the same host values (every
        # process computes the same grid)
        return jax.tree.map(lambda x: x if placed(x) else jax.make_array_from_callback(
            np.shape(x), sharding, lambda index: np.asarray(x)[index]), tree)

    def members(self, tree):
        return self._put(tree, P("members"))

    def shared(self, tree):
        return self._put(tree, P())

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

    def take(self, tree, idx: np.ndarray):
        """The members ``idx`` of a member-stacked tree, split over the mesh again."""
        idx = np.asarray(idx)
        return jax.jit(lambda t: jax.tree.map(lambda x: x[idx], t), out_shardings=self._sharding(P("members")))(tree)

    def put_back(self, tree, idx: np.ndarray, sub):
        """``tree`` with the members ``idx`` replaced by ``sub``."""
        idx = np.asarray(idx)
        return jax.jit(lambda t, s: jax.tree.map(lambda x, y: x.at[idx].set(y), t, s),
                       out_shardings=self._sharding(P("members")))(tree, sub)


class Programs:
    """One group's compiled programs under one plan: init, a chunk of ``length`` epochs and finish,
    each compiled once per member count (waves and compaction change the count)."""

    def __init__(self, trainer: Trainer, data: Any, plan: Plan, precision: str = "fp32",
                 placement: Optional[Placement] = None):
        self.trainer, self.plan, self.precision = trainer, plan, precision
        self.placement = placement or Placement()
        self.data = self.placement.shared(data)
        self._compiled: dict[tuple, Any] = {}
        self.compile_s = 0.0

    def _one(self, name: str, length: int) -> Callable:
        trainer = self.trainer
        return {"init": lambda k, h, d: init_member(trainer, jax.random.wrap_key_data(k), h, d),
                "chunk": lambda s, h, d, start: run_epochs(trainer, s, h, d, start, length,
                                                            skip_stopped=self.plan.kind == "map"),
                "finish": lambda s, h, d: finalize(trainer, s, h, d)}[name]

    def _program(self, name: str, length: int, args: tuple):
        key = (name, length, _members(args[1]))
        if key not in self._compiled:
            shared = 2 if name == "chunk" else 1
            idle = (lambda s: s.status != RUNNING, lambda s, h, d, start: hold_epochs(s, length))  # noqa: E731
            fn = self.placement.over_devices(
                self.plan.over_members(self._one(name, length), idle if name == "chunk" else None), shared)
            t0 = time.perf_counter()
            with jax.default_matmul_precision(PRECISIONS[self.precision]):
                jitted = jax.jit(fn, donate_argnums=(0,) if name == "chunk" else (),
                                 compiler_options=compiler_options())
                self._compiled[key] = jitted.lower(*args).compile()
            self.compile_s += time.perf_counter() - t0
        return self._compiled[key]

    def init(self, key_data, hp):
        """States of the members with these keys (raw key data, (members, 2) uint32) and numbers."""
        return self._program("init", 0, (key_data, hp, self.data))(key_data, hp, self.data)

    def chunk(self, state, hp, start: int, length: int, donate: bool = True):
        start = self.placement.shared(np.int32(start))
        program = self._program("chunk", length, (state, hp, self.data, start))
        if not donate:
            state = jax.tree.map(jnp.copy, state)
        return program(state, hp, self.data, start)

    def finish(self, state, hp):
        return self._program("finish", 0, (state, hp, self.data))(state, hp, self.data)

    def chunk_bytes(self, key_data, hp, length: int) -> Optional[int]:
        """Device memory of the chunk program for ``len(key_data)`` members (compiled, not run),
        per device."""
        state = jax.eval_shape(self.plan.over_members(self._one("init", 0)), key_data, hp, self.data)
        state = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=self.placement._sharding(
            P("members"))), state)
        start = self.placement.shared(np.int32(0))
        return program_bytes(self._program("chunk", length, (state, hp, self.data, start)))


class _PlanPrograms:
    """A group's :class:`Programs` per plan, built once each (the data is placed once)."""

    def __init__(self, trainer: Trainer, data: Any, precision: str, placement: "Placement"):
        self.trainer, self.data, self.precision, self.placement = trainer, data, precision, placement
        self._by_plan: dict[str, Programs] = {}

    def __call__(self, plan: Plan) -> "Programs":
        if str(plan) not in self._by_plan:
            self._by_plan[str(plan)] = Programs(self.trainer, self.data, plan, self.precision, self.placement)
        return self._by_plan[str(plan)]

    def built(self) -> list["Programs"]:
        return list(self._by_plan.values())


def wave_size(programs: Programs, key_data: np.ndarray, hp: dict, length: int, memory_limit: Optional[int]) -> int:
    """The most members one program may hold: all of them when the group's program fits the
    memory of each device (``memory_limit`` or the device's free memory), else as many as fit,
    from the memory XLA assigns to the program for all members and for one device's worth."""
    n, devices = len(key_data), programs.placement.count
    local = [d for d in programs.placement.devices if d.process_index == jax.process_index()]
    limit = memory_limit if memory_limit is not None else free_device_memory(local[0])
    if memory_limit is None and jax.process_count() > 1:  # every process sizes the same waves: by the
        # least free memory of any (None where one cannot tell)
        got = np.asarray(multihost_utils.process_allgather(np.float32([-1 if limit is None else limit])))
        limit = None if (got < 0).any() else int(got.min() * (1 - 1e-6))
    if limit is None:
        return n
    place = programs.placement.members
    full = _padded(np.arange(n), devices)
    need = programs.chunk_bytes(place(key_data[full]), place(_rows(hp, full)), length)
    if need is None or need <= limit:
        return n
    one = np.zeros(devices, int)  # one member per device
    one_need = programs.chunk_bytes(place(key_data[one]), place(_rows(hp, one)), length)
    per_member = max((need - one_need) / max(len(full) // devices - 1, 1), 1.0)  # per device
    fits = int((limit - (one_need - per_member)) // per_member)
    if fits < 1:
        raise MemoryError(f"one member of this group needs {fmt_bytes(one_need)} of device memory, but "
                          f"{fmt_bytes(limit)} is available; raise --memory-limit or shrink the model or data")
    return min(fits * devices, n)


def _rows(hp: dict, idx) -> dict:
    return {k: v[idx] for k, v in hp.items()}


def _padded(idx: np.ndarray, devices: int) -> np.ndarray:
    """``idx`` repeated at its first member up to a multiple of ``devices``: the copies are masked
    members (the same key and numbers as the first, so they stop when it does) never reported."""
    pad = -len(idx) % devices
    return np.concatenate([idx, np.repeat(idx[:1], pad)]) if pad else idx


def _waves(n: int, size: int) -> list[np.ndarray]:
    """``n`` members as the fewest waves of at most ``size``, balanced (sizes differ by at most one)."""
    k = -(-n // size)
    return [a for a in np.array_split(np.arange(n), k)]


def _bucket(running: int, devices: int = 1) -> int:
    """Member counts a compacted program may have: powers of two (few compiles), a multiple of the
    devices."""
    size = 1 << max(running - 1, 0).bit_length()
    return -(-size // devices) * devices


def probe_candidates(members: int) -> list[Plan]:
    """The plans auto times for a group of ``members`` per device: vmap, map, and hybrid:K for K up
    to half the members (a larger K is one vmapped batch and a remainder: vmap's cost)."""
    return [VMAP, Plan("map")] + [Plan("hybrid", k) for k in (4, 16, 64) if 2 * k <= members]


def probe_plans(trainer: Trainer, key_data, hp, precision: str,
                placement: Optional[Placement] = None) -> dict[str, float]:
    """Seconds per probe for each candidate plan, compile excluded: one epoch of the trainer's
    cheaper version (``trainer.probe``: a few steps per epoch) from a fresh start under each plan;
    nothing it computes is kept. ``key_data`` and ``hp`` are placed member arrays."""
    candidates = probe_candidates(_members(hp) // (placement.count if placement else 1))  # per device
    trainer, data = trainer.probe()
    state = Programs(trainer, data, VMAP, precision, placement).init(key_data, hp)
    return {str(plan): _timed_chunk(Programs(trainer, data, plan, precision, placement), state, hp, 0, 1)[1]
            for plan in candidates}


def _timed_chunk(programs: Programs, state, hp, start: int, length: int) -> tuple[tuple, float]:
    """A chunk from a copy of ``state`` (compiled first, off the clock): (its (state, logs),
    seconds: process 0's, on every process)."""
    programs._program("chunk", length, (state, hp, programs.data, programs.placement.shared(np.int32(start))))
    t0 = time.perf_counter()
    out = jax.block_until_ready(programs.chunk(state, hp, start, length, donate=False))
    return out, round(float(_process0([time.perf_counter() - t0])[0]), 4)


def _process0(values) -> np.ndarray:
    """``values`` (numbers) as process 0 has them, on every process. The processes of a
    jax.distributed run execute the same programs in step, so whatever picks a program (auto's
    cache, its timings, whether to probe) must be one process's view, not each its own."""
    values = np.asarray(values, np.float32)
    return values if jax.process_count() == 1 else np.asarray(multihost_utils.broadcast_one_to_all(values))


_KINDS = ("vmap", "map", "hybrid")


def _take_cached(decision: dict, plan_key: Optional[str]) -> bool:
    """Put auto's cached choice for ``plan_key`` (process 0's) into ``decision``; False when none."""
    cached = _cached(plan_key)
    if cached is not None:
        decision.update(plan=parse_plan(cached["plan"]), source="cached", probe=cached.get("probe", {}))
    return cached is not None


def _cached(plan_key: Optional[str]) -> Optional[dict]:
    """auto's cached choice for ``plan_key`` (``{"plan", "probe"}``) as process 0's cache has it, or None."""
    entry = cached_plan(plan_key) if plan_key else None
    if jax.process_count() == 1:
        return entry
    mine = parse_plan(entry["plan"]) if entry is not None else None
    kind, batch = _process0([_KINDS.index(mine.kind), mine.batch] if mine is not None else [-1, 0]).astype(int)
    if kind < 0:
        return None
    plan = Plan(_KINDS[kind], int(batch))
    return entry if plan == mine else {"plan": str(plan), "probe": {}}


def run_group(trainer: Trainer, data: Any, seeds: Sequence[int], hparams: dict[str, Sequence[float]],
              *, static: dict | None = None, labels: Sequence[str] | None = None, chunk: int = 100,
              progress: bool = True, desc: str = "", plan: Plan | str | None = VMAP,
              memory_limit: int | None = None, compaction: bool = False, precision: str = "fp32",
              plan_key: str | None = None, devices: Optional[Sequence] = None, checkpoint=None) -> GroupResult:
    """Train ``len(seeds)`` members (member i: seed ``seeds[i]``, hyperparameters
    ``hparams[name][i]``, setting ``labels[i]``) of one static configuration.

    ``plan``: how members share a device (:mod:`jaxlabs.plans`; a Plan, its text, or None /
    "auto": the first chunk runs vmapped and, if the group is long enough to be worth it, under
    each other candidate too; the fastest one's chunk is kept and it trains the rest; the choice
    is cached under ``plan_key``, and a later run trains under it from the start: see
    :func:`_decide`). ``memory_limit``: bytes one program may use per device
    (default: the device's free memory); a group that does not fit runs as the fewest waves that
    do. ``compaction``: once at most half of a program's members still run, the running ones are
    repacked into a smaller program (power-of-two member counts). ``devices``: split the members
    over these devices (:class:`Placement`; default: one device). Every member's results are its
    own whatever the plan, waves, compaction and devices, to float32 rounding. ``checkpoint``: a
    :class:`jaxlabs.checkpoint.GroupCheckpoint`: the group starts from where an earlier run saved it
    (its waves, auto's decision, the running wave's state) and is checkpointed between chunks."""
    members = len(seeds)
    if any(len(v) != members for v in hparams.values()):
        raise ValueError("every hyperparameter needs one value per member")
    plan = parse_plan(plan) if isinstance(plan, str) else plan
    # equal chunks that cover max_epochs with the least overshoot: epochs past the budget in the
    # last chunk are computed (masked) too, so 300 epochs in chunks of 250 would cost 500
    n_chunks = -(-trainer.max_epochs // max(1, chunk))
    chunk = -(-trainer.max_epochs // n_chunks)
    key_data = np.asarray(member_keys(seeds))  # (members, 2) uint32, on the host
    hp = {k: np.asarray(v, np.float32) for k, v in hparams.items()}
    placement = Placement(devices)
    data = placement.shared(data)  # once, for every plan's programs

    programs_for = _PlanPrograms(trainer, data, precision, placement)

    t0 = time.perf_counter()
    decision = {"plan": plan, "source": "forced" if plan is not None else None, "probe": {}}
    saved = checkpoint.position if checkpoint is not None else None  # where an earlier run stopped
    if saved is None and plan is None and plan_key and trainer.probe is None:
        _take_cached(decision, plan_key)  # auto, decided by an earlier run: sized and run under it
    if saved is None:
        size = wave_size(programs_for(decision["plan"] or VMAP), key_data, hp, chunk, memory_limit)
        waves = _waves(members, size)
        pieces, finals, epochs_run = [], [], 0
    else:  # its waves and auto's decision: the rest runs as it would have
        waves = [np.asarray(i, int) for i in saved["waves"]]
        decision.update(saved["decision"], plan=saved["decision"]["plan"] and parse_plan(saved["decision"]["plan"]))
        pieces, finals, epochs_run = checkpoint.earlier_waves()
    probe_s = 0.0
    for w, idx in enumerate(waves):
        if w < len(pieces):
            continue  # finished before the checkpoint
        name = desc or f"{members} members"
        on = f" on {placement.count} devices" if placement.count > 1 else ""
        bar = tqdm(total=trainer.max_epochs, unit="epoch", dynamic_ncols=True, leave=True, disable=not progress,
                   desc=(name if len(waves) == 1 else f"{name} wave {w + 1}/{len(waves)}") + on)
        with bar:
            curves, final, run, spent = _train_wave(
                trainer, programs_for, placement, key_data[idx], _rows(hp, idx), chunk, bar, compaction, decision,
                lambda t1, wave_keys, wave_hp, state, start: _decide(
                    trainer, programs_for, wave_keys, wave_hp, state, start, chunk, precision, plan_key, decision,
                    t1, n_chunks * len(waves)),
                resume=checkpoint.restore_wave if saved is not None and w == saved["wave"] else None,
                save=None if checkpoint is None else functools.partial(checkpoint.save, w, waves, decision,
                                                                       (pieces, finals, epochs_run)))
        pieces.append(curves)
        finals.append(final)
        epochs_run = max(epochs_run, run)
        probe_s += spent
    compile_s = sum(p.compile_s for p in programs_for.built())
    run_s = time.perf_counter() - t0 - compile_s - probe_s
    # a wave that stopped early holds its members' last values, as one program would have
    curves = {k: np.concatenate([np.pad(c[k], ((0, 0), (0, epochs_run - c[k].shape[1])), mode="edge")
                                 for c in pieces]) for k in pieces[0]}
    final = {k: np.concatenate([f[k] for f in finals]) for k in finals[0]}
    return GroupResult(
        static=dict(static or {}), labels=list(labels or [""] * members), seeds=np.asarray(seeds), curves=curves,
        hparams={k: np.asarray(v, np.float64) for k, v in hparams.items()},  # as given, for records
        final=final, epochs_run=epochs_run, compile_s=compile_s, run_s=run_s,
        plan=str(decision["plan"] or VMAP), plan_source=decision["source"] or "short group: vmap",
        probe=decision["probe"], waves=[len(i) for i in waves], devices=placement.count, data=trainer.data_name)


def _decide(trainer, programs_for, key_data, hp, state, start: int, chunk: int, precision: str, plan_key,
            decision: dict, chunk_s: Optional[float], chunks: int) -> tuple[Plan, float, Optional[tuple]]:
    """auto for a wave (these placed keys, numbers and ``state``; the next chunk starts at epoch
    ``start``; the group runs about ``chunks`` chunks in all): (the plan, the seconds spent probing,
    and the next chunk when the probe ran it: (state, logs, seconds)).

    A cached choice is taken as it is. Otherwise each candidate runs the next real chunk from
    ``state`` (on a copy), vmap first, and the fastest one's chunk is kept: the only waste is the
    slower candidates' chunks, and a run that finds the choice cached computes the same numbers.
    A group too short to win back a compile and a chunk per other candidate keeps vmap (its chunk
    is kept). When the two fastest are within ``PROBE_CLOSE`` of each other, both are timed once
    more and keep their quicker time (one chunk's time varies that much on a busy machine), if two
    chunks cost at most ``PROBE_SHARE`` of the group's remaining time.

    Called before the first chunk (``chunk_s`` None), except for a trainer with a cheaper version
    (``trainer.probe``: an epoch of many steps, which under a slow plan would cost much): that one
    is called after a first vmapped chunk of ``chunk_s`` seconds and timed on the cheaper version."""
    placement = programs_for(VMAP).placement
    candidates = probe_candidates(_members(hp) // placement.count)
    if _take_cached(decision, plan_key):
        return decision["plan"], 0.0, None
    t0, compiled, first = time.perf_counter(), sum(p.compile_s for p in programs_for.built()), None
    if chunk_s is None:  # vmap's run of the chunk tells how long the group is
        out, chunk_s = _timed_chunk(programs_for(VMAP), state, hp, start, chunk)
        first = (*out, chunk_s)
    # left after the first chunk; a compile and a chunk (about as long as vmap's) per other candidate
    remaining_s, cost = _process0([chunk_s * max(chunks - 1, 0),
                                   (len(candidates) - 1) * (programs_for(VMAP).compile_s + chunk_s)]).tolist()
    if _members(hp) < 2 * placement.count or cost > PROBE_SHARE * remaining_s:
        decision.update(plan=VMAP, source=f"short group (about {remaining_s:.0f} s left; probing would cost "
                                          f"about {cost:.0f} s): vmap")
        return VMAP, 0.0, first
    if trainer.probe is not None:
        _settle(decision, probe_plans(trainer, key_data, hp, precision, placement), plan_key)
        return decision["plan"], _off_clock(t0, compiled, programs_for), None
    runs = {"vmap": first} if first is not None else {}
    times = {"vmap": [chunk_s]} if first is not None else {}
    for plan in candidates:
        if str(plan) not in runs:
            out, took = _timed_chunk(programs_for(plan), state, hp, start, chunk)
            runs[str(plan)], times[str(plan)] = (*out, took), [took]
    # the two fastest, if close, once more each (the choice is kept for every later run; a wrong one
    # costs every chunk of them): the same chunk from the same state, the same numbers
    top = sorted(times, key=lambda p: min(times[p]))[:2]
    if (len(top) == 2 and min(times[top[1]]) <= (1 + PROBE_CLOSE) * min(times[top[0]])
            and min(times[top[0]]) + min(times[top[1]]) <= PROBE_SHARE * remaining_s):
        for p in top:
            times[p].append(_timed_chunk(programs_for(parse_plan(p)), state, hp, start, chunk)[1])
    _settle(decision, {p: min(t) for p, t in times.items()}, plan_key)
    kept = runs[str(decision["plan"])]
    return decision["plan"], _off_clock(t0, compiled, programs_for) - kept[2], kept


def _off_clock(t0: float, compiled: float, programs_for) -> float:
    """Seconds since ``t0``, less the compiles since then (``compiled``: the compile seconds at
    ``t0``)."""
    return time.perf_counter() - t0 - (sum(p.compile_s for p in programs_for.built()) - compiled)


def _settle(decision: dict, times: dict, plan_key: Optional[str]) -> None:
    best = min(times, key=times.get)
    decision.update(plan=parse_plan(best), source="probed", probe=dict(times))
    if plan_key:
        remember_plan(plan_key, {"plan": best, "probe": dict(times)})


def _train_wave(trainer, programs_for, placement, key_data, hp, chunk, bar, compaction, decision, decide,
                resume=None, save=None):
    """One wave's members from init to finish, padded to a multiple of the devices. Returns
    (curves (members, epochs run), final, epochs run, seconds spent probing). ``decide(seconds,
    keys, numbers, state, start)``: auto (see :func:`_decide`), before the first chunk (``seconds``
    None) or after a first chunk of ``seconds``.
    ``resume(fresh_state, take)``: the wave as a checkpoint saved it (the fresh state gives its
    structure); ``save(**wave)``: called between chunks, to checkpoint the wave."""
    real = len(key_data)
    rows = _padded(np.arange(real), placement.count)
    n = len(rows)
    key_data, hp = placement.members(key_data[rows]), placement.members(_rows(hp, rows))
    current = decision["plan"] or VMAP
    state = programs_for(current).init(key_data, hp)
    active = np.arange(n)  # members (wave indices) in the running program, in order
    full = None  # every member's state, kept once compaction has taken some out
    held: dict = {}  # logs of the members taken out: their last values, held
    status = np.full(n, RUNNING)
    pieces, start, probe_s = [], 0, 0.0
    if resume is not None:
        state, full, held, active, status, pieces, start = resume(state, placement.take)
        bar.update(min(start, trainer.max_epochs))
    sub_hp = hp if full is None else placement.take(hp, active)
    pending = None  # the next chunk, already run by auto's probe under the plan it chose
    if decision["plan"] is None and resume is None and trainer.probe is None:
        # auto before the first chunk: a run that finds the choice cached trains under it from
        # the start, as the probing run does (the probe keeps the chosen plan's first chunk)
        current, probe_s, pending = decide(None, key_data, hp, state, 0)
    while start < trainer.max_epochs:
        if pending is not None:
            (state, logs, t1), pending = pending, None
            logs, sub_status = placement.fetch((logs, state.status))
        else:
            compiling, t0 = programs_for(current).compile_s, time.perf_counter()
            state, logs = programs_for(current).chunk(state, sub_hp, start, chunk)
            logs, sub_status = placement.fetch((logs, state.status))  # the one host round trip per chunk
            t1 = time.perf_counter() - t0 - (programs_for(current).compile_s - compiling)
        status[active] = np.asarray(sub_status)
        if full is not None:  # repacked or reordered: back to the wave's order
            logs = {k: _fill(held[k], v, active) for k, v in logs.items()}
        pieces.append({k: np.asarray(v)[:real] for k, v in logs.items()})
        done = min(chunk, trainer.max_epochs - start)
        start += chunk
        _tick(bar, trainer, pieces[-1], status[:real], done)
        if not (status == RUNNING).any():
            break
        if decision["plan"] is None:  # auto for a trainer with a cheaper version: after a first chunk
            current, spent, pending = decide(t1, key_data, hp, state, start)
            probe_s += spent
        elif str(decision["plan"]) != str(current):
            current = decision["plan"]
        running = np.flatnonzero(status[active] == RUNNING)
        remaining = t1 * -(-(trainer.max_epochs - start) // chunk)
        bucket = _bucket(len(running), placement.count)
        # map: a stopped member skips its chunks on its own. hybrid: stopped members are moved
        # together into blocks it skips (the same program). vmap: the running ones are repacked into
        # a smaller program once at most half still run (a compile, so only when worth it)
        # (not while a chunk the probe ran is pending: its members are checked after it; every process
        # repacks or none: process 0's estimate decides)
        order = None
        if compaction and pending is None and current.kind == "hybrid":
            order = _hybrid_order(status[active] == RUNNING, current.batch, placement.count)
        elif (compaction and pending is None and current.kind == "vmap" and bucket < len(active)
                and len(running) <= len(active) // 2 and _process0([remaining])[0] > COMPACT_WORTH_S):
            keep = active[running]
            fillers = np.setdiff1d(np.arange(n), keep)[:bucket - len(keep)]  # stopped members, frozen
            at = {int(a): i for i, a in enumerate(active)}
            order = np.asarray([at[int(a)] for a in np.sort(np.concatenate([keep, fillers]))], int)
        if order is not None:
            full = state if full is None else placement.put_back(full, active, state)
            held = placement.fetch(full.last_logs)
            active = active[order]
            state, sub_hp = placement.take(full, active), placement.take(hp, active)
        if save is not None:
            save(state=state, full=full, held=held, active=active, status=status, pieces=pieces, start=start)
    if full is not None:
        state = placement.put_back(full, active, state)
    final = placement.fetch(programs_for(current).finish(state, hp))
    epochs_run = min(start, trainer.max_epochs)
    curves = {k: np.concatenate([p[k] for p in pieces], axis=1)[:, :epochs_run] for k in pieces[0]}
    return curves, {k: np.asarray(v)[:real] for k, v in final.items()}, epochs_run, probe_s


def _hybrid_order(running: np.ndarray, k: int, devices: int) -> Optional[np.ndarray]:
    """A reordering of a hybrid:``k`` program's members (``running``: a mask in its order) that
    leaves more blocks of ``k`` with no running member (blocks hybrid skips), or None. Each device
    holds a contiguous share; the running members are dealt evenly over the devices, first in each."""
    n = len(running)
    m = n // devices  # members per device

    def idle_blocks(mask: np.ndarray) -> int:
        size = min(k, m)
        return sum(not mask[d * m + b:d * m + min(b + size, m)].any()
                   for d in range(devices) for b in range(0, m, size))

    go, stopped = np.flatnonzero(running), np.flatnonzero(~running)
    order, used = [], 0
    for d in range(devices):
        mine = list(go[d::devices])
        order += mine + list(stopped[used:used + m - len(mine)])
        used += m - len(mine)
    order = np.asarray(order, int)
    return order if idle_blocks(running[order]) > idle_blocks(running) else None


def _fill(held: np.ndarray, logs: np.ndarray, active: np.ndarray) -> np.ndarray:
    """A chunk's logs for every member of the wave: the running program's rows where it has them,
    the held last value elsewhere."""
    out = np.repeat(np.asarray(held)[:, None], logs.shape[1], axis=1).astype(logs.dtype)
    out[active] = logs
    return out


def _tick(bar, trainer: Trainer, logs: dict, status: np.ndarray, done: int) -> None:
    last = np.asarray(logs[trainer.monitor])[:, done - 1]
    finite = last[np.isfinite(last)]
    bar.update(done)
    bar.set_postfix_str(
        f"run {int((status == RUNNING).sum())} conv {int((status == CONVERGED).sum())} "
        f"div {int((status == DIVERGED).sum())} | {trainer.monitor} best "
        f"{_fmt(finite.min() if finite.size else np.nan)} median "
        f"{_fmt(np.median(finite) if finite.size else np.nan)}", refresh=False)


def grid_members(seeds: Iterable[int], **axes: Sequence[float]) -> tuple[list[int], dict[str, list[float]]]:
    """The product of traced axes and seeds, flattened to members (axes vary slowest, seeds fastest)."""
    names = list(axes)
    seeds = list(seeds)
    out_seeds: list[int] = []
    out = {n: [] for n in names}
    for values in itertools.product(*(axes[n] for n in names)):
        for s in seeds:
            out_seeds.append(s)
            for n, v in zip(names, values):
                out[n].append(float(v))
    return out_seeds, out


def static_groups(members: Sequence[Member]) -> list[list[Member]]:
    """Members grouped by static configuration (one program each), in order of first appearance."""
    groups: dict[str, list[Member]] = {}
    for m in members:
        groups.setdefault(json.dumps(m.static, sort_keys=True), []).append(m)
    return list(groups.values())


def run_grid(task, members: Sequence[Member], *, chunk: int | None = None, progress: bool = True,
             name: str = "", engine: EngineOptions = EngineOptions(), checkpoint=None) -> SweepResult:
    """Every member of the grid, one compiled program per static configuration (or several: waves,
    compaction; see :func:`run_group`). Members keep their order within a group; groups come in
    order of their first member. ``checkpoint``: a :class:`jaxlabs.checkpoint.StudyCheckpoint`:
    groups an earlier run finished are taken from it, the others resume and are checkpointed."""
    result = SweepResult(task.name)
    groups = static_groups(members)
    for g, group in enumerate(groups):
        static = group[0].static
        saved = checkpoint.finished_group(g, static) if checkpoint is not None else None
        if saved is not None:
            result.groups.append(saved)
            continue
        trainer, data = task.build(static)
        settings = ", ".join(dict.fromkeys(m.label for m in group))
        hparams = {k: [m.hparams[k] for m in group] for k in group[0].hparams}
        result.groups.append(run_group(
            trainer, data, [m.seed for m in group], hparams, static=static, labels=[m.label for m in group],
            chunk=chunk or task.chunk, progress=progress,
            desc=f"{name or task.name} [{settings}] ({len(group)} members)", plan=engine.plan,
            memory_limit=engine.memory_limit, compaction=engine.compaction, precision=engine.precision,
            plan_key=cache_key(task.name, static, len(group), engine.precision, len(engine.device_list())),
            devices=engine.device_list(),
            checkpoint=checkpoint.group(g, settings) if checkpoint is not None else None))
        if checkpoint is not None:
            checkpoint.group_done(g, result.groups[-1], last=g == len(groups) - 1)
    return result


def run_sweep(task, statics: Sequence[dict], seeds: Sequence[int], axes: dict[str, Sequence[float]],
              *, chunk: int | None = None, progress: bool = True) -> SweepResult:
    """Every static configuration x the traced axes x the seeds (library shorthand for
    :func:`run_grid`; traced numbers not in ``axes`` take the task's defaults)."""
    members = []
    for static in statics:
        static = task.resolve_static(**static)
        member_seeds, hp = grid_members(seeds, **axes)
        for i, seed in enumerate(member_seeds):
            numbers = task.hparams(**{k: v[i] for k, v in hp.items()})
            label = " ".join(f"{k}={numbers[k]:g}" for k in axes) or "default"
            members.append(Member(label, static, numbers, seed))
    return run_grid(task, members, chunk=chunk, progress=progress)
