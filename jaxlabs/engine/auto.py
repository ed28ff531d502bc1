"""auto: which plan trains a group, chosen by what the rest of the run costs under each, and the
plan cache that lets later runs skip the choosing.

The first chunk runs vmapped (it is training, not a probe). ``map`` then runs the same chunk from
the same state when what it might save (``probe_gain`` of the time left in this run and in one
later run) exceeds what timing it costs (a compile and a chunk). ``hybrid:K`` interpolates between
the two, so it is timed only when vmap and map differ by more than noise (``probe_close``), each K
again only while what every candidate timed so far cost and its own cost fit that one budget. Of the plans timed, those within noise of the fastest chunk are
tied, and the one quickest to compile wins (every later run pays its compile); the winner's chunk
is kept, so the run goes on from it and computes what a run that finds the choice cached computes.
The choice, its timings and compiles are cached per (task, static configuration, member count,
precision, backend, device kind and count, compile options) in :func:`cache_path`. In a
multi-process run, process 0's cache and timings decide for every process.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import jax

from jaxlabs import atomic
from jaxlabs.engine.options import EngineOptions
from jaxlabs.engine.placement import members_of, process0
from jaxlabs.engine.plans import VMAP, Plan, parse_plan
from jaxlabs.engine.programs import PlanPrograms, Programs, compiler_options
from jaxlabs.train import Trainer


@dataclass(frozen=True)
class Decision:
    """How a group trains: ``plan`` (None while auto has not chosen), ``source`` (forced, probed,
    cached, or why auto kept vmap), ``probe`` (plan -> seconds of one chunk, as timed) and
    ``compile`` (plan -> seconds of its chunk program's compile)."""

    plan: Optional[Plan]
    source: str = ""
    probe: dict = field(default_factory=dict)
    compile: dict = field(default_factory=dict)

    @classmethod
    def start(cls, plan: Optional[Plan]) -> "Decision":
        return cls(plan, "forced" if plan is not None else "")

    def to_json(self) -> dict:
        return {"plan": None if self.plan is None else str(self.plan), "source": self.source,
                "probe": dict(self.probe), "compile": dict(self.compile)}

    @classmethod
    def from_json(cls, d: dict) -> "Decision":
        return cls(d["plan"] and parse_plan(d["plan"]), d["source"], dict(d["probe"]), dict(d.get("compile", {})))


# ---------------------------------------------------------------------------------- the choice
def candidates(members: int) -> list[Plan]:
    """The plans auto may time for a group of ``members`` per device, in order: vmap, map, and
    hybrid:K for K up to half the members (a larger K is one vmapped batch and a remainder). On a
    GPU a conv net needs the last two: vmapped, its convolutions become grouped ones of
    ``members`` groups (K under hybrid:K, none under map; ``experiments.gpu_check``), XLA:GPU's slow path."""
    return [VMAP, Plan("map")] + [Plan("hybrid", k) for k in (4, 16, 64) if 2 * k <= members]


def worth_timing(plan: Plan, times: dict[str, float], seconds_left: float, cost: float,
                 options: EngineOptions, spent: float = 0.0) -> bool:
    """Whether to time ``plan`` next, given the chunk ``times`` so far (vmap's at least): what
    probing has ``spent`` so far plus its estimated ``cost`` (a compile and a chunk) must stay below
    what a better plan might save, ``probe_gain`` of ``seconds_left`` (one budget for every
    candidate); a hybrid, which batches between vmap and map, only where those two differ by more
    than noise."""
    if plan.kind == "hybrid":
        if "map" not in times or _close(times["vmap"], times["map"], options.probe_close):
            return False
    return options.probe_gain * seconds_left > spent + cost


def choose(times: dict[str, float], compiles: dict[str, float], close: float) -> str:
    """The plan to train with: of those whose chunk is within ``close`` of the fastest (noise),
    the quickest to compile (then the fastest)."""
    fastest = min(times.values())
    tied = [p for p, t in times.items() if t <= (1 + close) * fastest]
    return min(tied, key=lambda p: (compiles.get(p, 0.0), times[p]))


def _close(a: float, b: float, close: float) -> bool:
    return max(a, b) <= (1 + close) * min(a, b)


# ---------------------------------------------------------------------------------- the probe
class Auto:
    """auto for one group: ``decide`` before the first chunk (or after a first vmapped chunk, for a
    trainer with a cheaper version to time on). ``chunks``: chunks the group runs in all."""

    def __init__(self, trainer: Trainer, programs_for: PlanPrograms, options: EngineOptions,
                 plan_key: Optional[str], chunk: int, chunks: int):
        self.trainer, self.programs_for, self.options = trainer, programs_for, options
        self.plan_key, self.chunk, self.chunks = plan_key, chunk, chunks

    def cached(self) -> Optional[Decision]:
        """The cached choice for this group (process 0's), or None."""
        entry = _agreed(cached_plan(self.plan_key) if self.plan_key else None)
        if entry is None:
            return None
        return Decision(parse_plan(entry["plan"]), "cached", entry.get("probe", {}), entry.get("compile", {}))

    def decide(self, key_data, hp, state, start: int, chunk_s: Optional[float]):
        """(the Decision, seconds spent probing, and the next chunk when the probe ran it: (state,
        logs, seconds) or None). ``key_data``, ``hp``, ``state``: the wave's placed members."""
        found = self.cached()
        if found is not None:
            return found, 0.0, None
        programs_for, t0, compiled, first = self.programs_for, time.perf_counter(), self.programs_for.compile_s, None
        vmap = programs_for(VMAP)
        if chunk_s is None:  # vmap's run of the chunk: training, and the yardstick
            out, chunk_s = vmap.timed_chunk(state, hp, start, self.chunk)
            first = (*out, chunk_s)
        left = chunk_s * (max(self.chunks - 1, 0) + self.chunks)  # this run's rest and one later run
        per_device = members_of(hp) // programs_for.placement.count
        if per_device < 2:
            return Decision(VMAP, "one member per device: vmap"), 0.0, first
        vmap_compile = float(process0([vmap.compile_s])[0])
        if self.trainer.probe is not None:  # time every candidate on the cheaper version
            times, compiles = self._cheap_times(key_data, hp, left, vmap_compile)
        else:
            times, compiles = {"vmap": chunk_s}, {"vmap": vmap_compile}
            runs = {"vmap": first}
            spent = 0.0  # the compiles and chunks of the candidates timed so far
            for plan in candidates(per_device)[1:]:
                cost = vmap_compile * (2 if plan.kind == "hybrid" else 1) + chunk_s
                if not worth_timing(plan, times, left, cost, self.options, spent):
                    continue
                programs = programs_for(plan)
                out, times[str(plan)] = programs.timed_chunk(state, hp, start, self.chunk)
                compiles[str(plan)] = float(process0([programs.compile_s])[0])
                runs[str(plan)] = (*out, times[str(plan)])
                spent += compiles[str(plan)] + times[str(plan)]
        if len(times) == 1:
            why = f"about {left / 2:.0f} s of training left: timing another plan would cost more than it might save"
            return Decision(VMAP, f"short group ({why}): vmap"), 0.0, first
        best = choose(times, compiles, self.options.probe_close)
        decision = Decision(parse_plan(best), "probed", times, compiles)
        if self.plan_key:
            remember_plan(self.plan_key, {"plan": best, "probe": times, "compile": compiles})
        spent = time.perf_counter() - t0 - (programs_for.compile_s - compiled)
        if self.trainer.probe is not None:
            return decision, spent, None
        kept = runs[best]
        return decision, spent - kept[2], kept

    def _cheap_times(self, key_data, hp, left: float, vmap_compile: float) -> tuple[dict, dict]:
        """Seconds of one epoch of the trainer's cheaper version under each candidate worth timing,
        from a fresh start (nothing it computes is kept), and each one's compile seconds."""
        trainer, data = self.trainer.probe()
        placement = self.programs_for.placement
        make = lambda plan: Programs(trainer, data, plan, self.programs_for.precision, placement,  # noqa: E731
                                     self.programs_for.options)
        first = make(VMAP)
        state = first.init(key_data, hp)
        times, compiles, spent = {}, {}, 0.0
        for plan in candidates(members_of(hp) // placement.count):
            programs = first if plan == VMAP else make(plan)
            cost = vmap_compile * (2 if plan.kind == "hybrid" else 1) + times.get("vmap", 0.0)
            if plan != VMAP and not worth_timing(plan, times, left, cost, self.options, spent):
                continue
            times[str(plan)] = programs.timed_chunk(state, hp, 0, 1)[1]
            compiles[str(plan)] = float(process0([programs.compile_s])[0])
            spent += compiles[str(plan)] + times[str(plan)]
        return times, compiles


# ---------------------------------------------------------------------------------- the cache
def cache_path() -> Path:
    """``$JAXLABS_CACHE_DIR/plans.json`` (default ``~/.cache/jaxlabs``)."""
    root = os.environ.get("JAXLABS_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "jaxlabs")
    return Path(root) / "plans.json"


def cache_key(task: str, static: dict, members: int, precision: str, devices: int = 1,
              options: Optional[dict] = None) -> str:
    """auto's cache key of a group: its task, static configuration and member count, the
    precision, the devices its members are split over (their kind and count) and the compile
    options (``options``; None: the engine's own: a choice timed with other kernels is not reused)."""
    device = jax.devices()[0]
    return json.dumps({"task": task, "static": static, "members": members, "precision": precision,
                       "backend": jax.default_backend(), "device": device.device_kind, "devices": devices,
                       "compile_options": compiler_options() if options is None else options}, sort_keys=True)


def cached_plan(key: str) -> Optional[dict]:
    """The cache's entry for ``key`` (``{"plan", "probe", "compile"}``), or None."""
    try:
        entry = json.loads(cache_path().read_text()).get(key)
        parse_plan(entry["plan"])
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return None
    return entry


def remember_plan(key: str, entry: dict) -> None:
    """Add a decision to the cache (a cache that cannot be written is only a cache: the run goes on)."""
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


_KINDS = ("vmap", "map", "hybrid")


def _agreed(entry: Optional[dict]) -> Optional[dict]:
    """``entry`` as process 0 has it (its plan; the timings where they agree), on every process."""
    if jax.process_count() == 1:
        return entry
    mine = parse_plan(entry["plan"]) if entry is not None else None
    kind, batch = process0([_KINDS.index(mine.kind), mine.batch] if mine is not None else [-1, 0]).astype(int)
    if kind < 0:
        return None
    plan = Plan(_KINDS[int(kind)], int(batch))
    return entry if plan == mine else {"plan": str(plan), "probe": {}}
