"""A search's decisions as a policy of the run loop (:class:`SearchPolicy`): every unit trains to
the next decision point, then successive halving prunes (and the programs shrink) or PBT copies
and explores, ranking the members of every unit together; :class:`SearchRecord` is what the
search remembers between decisions (the run's state carries it; the store saves it)."""
from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass

import jax
import numpy as np

from jaxlabs.engine.placement import members_of, process0
from jaxlabs.engine.policy import Policy
from jaxlabs.engine.state import on_host, to_devices, to_host
from jaxlabs.engine.wave import copied, repacked, shrunk_order, stopped
from jaxlabs.search import decide
from jaxlabs.train import PRUNED, RUNNING, with_rng_policy

PBT_STREAM = 2  # a member's key's child for its PBT draws (EPOCH_STREAM = 1 orders its data)


def _segments(start: int, stop: int, chunk: int, unit: int) -> list[int]:
    """Chunk lengths from ``start`` to ``stop``: as many of ``chunk`` as fit, the rest in ``unit``s
    (a length that divides every decision epoch, the budget and ``chunk``): two lengths in all,
    whatever the decisions, so a program size compiles at most two chunk programs."""
    whole, rest = divmod(stop - start, chunk)
    return [chunk] * whole + [unit] * (rest // unit)


@dataclass(frozen=True)
class SearchRecord:
    """The search's record, on the host: who is still in the race, the rungs each member passed (or
    the exploit steps it lived through), every decision, PBT's copies and the numbers' history."""

    alive: tuple  # (members,) bools: halving's race
    reached: tuple  # (members,) ints
    decisions: tuple = ()  # dicts: epoch, members ranked, kept / copied, sizes, seconds
    lineage: tuple = ()  # dicts: PBT's epoch, member, parent, old / parent's / new numbers, scores
    history: tuple = ()  # (epoch, name -> (members,) numbers from that epoch on)
    decided: int = -1  # the last decision point decided

    def to_json(self) -> dict:
        return {"alive": list(map(bool, self.alive)), "reached": list(map(int, self.reached)),
                "decisions": list(self.decisions), "lineage": list(self.lineage), "decided": self.decided,
                "history": [(e, {k: np.asarray(v).tolist() for k, v in h.items()}) for e, h in self.history]}

    @classmethod
    def from_json(cls, d: dict) -> "SearchRecord":
        return cls(tuple(d["alive"]), tuple(d["reached"]), tuple(d["decisions"]), tuple(d["lineage"]),
                   tuple((e, {k: np.asarray(v, np.float32) for k, v in h.items()}) for e, h in d["history"]),
                   d["decided"])


class SearchPolicy(Policy):
    """Successive halving or PBT between chunks (see the module): every unit trains to the next
    decision point in chunks of two lengths at most (:func:`_segments`), then the members of every
    unit are ranked together; a unit whose members all stopped holds its values."""

    holds, compacts = True, False

    def __init__(self, options, stops: list[int], chunk: int, unit: int, index: list[np.ndarray],
                 metric: str, higher: bool, searched: list, worth_s: float, bracket=None):
        self.options, self.plan, self.chunk, self.unit = options, stops, chunk, unit
        self.bracket = bracket  # hyperband: (members,) each member's bracket s; None: one race
        self.index, self.metric, self.higher, self.searched, self.worth_s = index, metric, higher, searched, worth_s
        self.n = sum(len(i) for i in index)

    def first_chunk(self, trainer, options) -> int:
        return _segments(0, (self.plan or [trainer.max_epochs])[0], self.chunk, self.unit)[0]

    def chunks(self, trainer, options) -> int:
        return -(-trainer.max_epochs // self.chunk)

    def stops(self, budget: int) -> list[int]:
        return list(self.plan)

    def lengths(self, built, epoch: int, stop: int) -> list[int]:
        return _segments(epoch, stop, self.chunk, self.unit)

    def rows(self, unit) -> np.ndarray:
        """The unit's members as indices of the sampled population."""
        return self.index[unit.group][np.asarray(unit.members, int)]

    def scores(self, state, run) -> np.ndarray:
        out = np.full(self.n, np.nan)
        for unit in state.units:
            if unit.ws is None:
                continue  # not started yet in this run
            out[self.rows(unit)] = unit_scores(unit, run.group(unit.group).trainer, self.metric, self.higher)
        return out

    def numbers(self, state, run) -> dict:
        """name -> (members,) each member's numbers now, in sampled order."""
        out = {}
        for unit in state.units:
            hp = unit.hp or {k: v[np.asarray(unit.members, int)] for k, v in run.group(unit.group).hp.items()}
            for k, v in hp.items():
                out.setdefault(k, np.zeros(self.n, np.float32))[self.rows(unit)] = v[:len(unit.members)]
        return out

    def decide(self, state, run):
        t0 = time.perf_counter()
        score, record = self.scores(state, run), state.record
        if self.options.prunes:
            state, made, record = self._halve(state, run, score, record)
        else:
            state, made, record = self._exploit(state, run, score, record)
            record = dataclasses.replace(record, history=record.history + ((state.stop, self.numbers(state, run)),))
        # the decision's own cost: ranking, draws, pruning, repacking or copying (compiles included)
        made["seconds"] = round(time.perf_counter() - t0, 4)
        return dataclasses.replace(state, record=dataclasses.replace(record, decisions=record.decisions + (made,)))

    def _races(self, epoch: int, alive: np.ndarray, budget: int) -> list[tuple[int, np.ndarray]]:
        """The races ranked at ``epoch``: (bracket s, mask of its members in the race); halving's
        one race (s = -1) of every member."""
        if self.bracket is None:
            return [(-1, alive)]
        out = []
        for s, n, ladder in self.options.brackets(budget):
            if epoch in decide.bracket_rungs(n, ladder, self.options.eta):
                out.append((s, alive & (self.bracket == s)))
        return out

    def _halve(self, state, run, score, record):
        """A rung: in each race ranked here (every member's in halving, a bracket's own in
        hyperband), the best 1/eta go on, the others still running are pruned."""
        alive = np.asarray(record.alive, bool)
        budget = run.budget()
        races = self._races(state.stop, alive, budget)
        keep, ranked = alive.copy(), np.zeros_like(alive)
        for _, race in races:
            keep = (keep & ~race) | decide.survivors(score, race, self.options.eta, self.higher)
            ranked |= race
        keep = process0(keep.astype(np.float32)) > 0.5
        out = alive & ~keep
        reached = np.asarray(record.reached, int) + (keep & ranked)
        for u, unit in enumerate(state.units):
            state = state.replace_unit(u, self._prune(run, u, unit, np.flatnonzero(out[self.rows(unit)]),
                                                      budget - state.stop, state.logs[unit.group]))
        made = {"epoch": state.stop, "entered": int(ranked.sum()),
                "kept": [int(i) for i in np.flatnonzero(keep & ranked)],
                "sizes": [members_of(u.ws.state) for u in state.units]}
        if self.bracket is not None:
            made["brackets"] = [{"bracket": int(s), "entered": int(race.sum()),
                                 "kept": [int(i) for i in np.flatnonzero(keep & race)]} for s, race in races]
        return state, made, dataclasses.replace(record, alive=tuple(alive & keep), reached=tuple(reached))

    def _prune(self, run, u: int, unit, members: np.ndarray, epochs_left: int, log):
        """``members`` (positions in the unit, still running) stop now as pruned. The program shrinks
        to a smaller size that fits the running ones when the ``epochs_left`` are worth a compile:
        at the last chunk's speed they would take more than ``worth_s`` seconds (process 0's
        estimate; 0: always), as compaction decides (:class:`EngineOptions.compact_worth_s`)."""
        placement = run.group(unit.group).placement
        parked = on_host(unit.ws.state)  # another wave of its group trains next: it goes back to the host
        ws = to_devices(unit.ws, placement) if parked else unit.ws
        slots = [s for s in np.flatnonzero(np.isin(np.asarray(unit.slots), members)) if ws.status[s] == RUNNING]
        ws = stopped(ws, np.asarray(slots, int), PRUNED, placement)
        order = shrunk_order(ws, placement.count)
        if order is not None and self.worth_s > 0 and \
                process0([run.epoch_s.get(u, 0.0) * epochs_left])[0] <= self.worth_s:
            order = None  # the rest is cheaper than compiling a smaller program: the pruned stay, frozen
        if order is not None:
            ws = repacked(ws, order, placement)
            log.repacks.append((ws.epoch, len(order)))
        return dataclasses.replace(unit, ws=to_host(ws) if parked else ws)

    def _exploit(self, state, run, score, record):
        """PBT within each static configuration: the bottom quantile copy the top, then explore."""
        copies, lineage = [], list(record.lineage)
        for u, unit in enumerate(state.units):
            b, idx = run.group(unit.group), self.rows(unit)
            keys = b.key_data[np.asarray(unit.members, int)]
            local = process0(_draws(keys, state.stop, 1 + 3 * len(self.searched)))
            parents = decide.pbt_parents(score[idx], self.higher, self.options.quantile, local[:, 0])
            hp = {k: np.array(v) for k, v in unit.hp.items()}
            numbers = {}
            for c, par in parents.items():
                old = {d.name: float(hp[d.name][c]) for d in self.searched}
                inherited = {d.name: float(hp[d.name][par]) for d in self.searched}
                new = {}
                for j, d in enumerate(self.searched):
                    x = local[c, 1 + 3 * j:4 + 3 * j]
                    new[d.name] = float(np.float32(decide.explore(float(hp[d.name][par]), d, x[0] < self.options.resample,
                                                                  x[1] < 0.5, x[2])))
                numbers[c] = new
                lineage.append({"epoch": state.stop, "member": int(idx[c]), "parent": int(idx[par]), "old": old,
                                "parent_numbers": inherited, "new": new,
                                "score": float(score[idx[c]]), "parent_score": float(score[idx[par]])})
                copies.append([int(idx[c]), int(idx[par])])
            if parents:
                source = np.asarray(unit.slots, int)  # program slot -> position in the unit
                children = np.flatnonzero(np.isin(source, list(parents)))
                ws = copied(unit.ws, children, np.asarray([parents[int(source[c])] for c in children]), b.placement)
                for c in children:
                    for k, v in numbers[int(source[c])].items():
                        hp[k][c] = np.float32(v)
                state = state.replace_unit(u, dataclasses.replace(unit, ws=ws, hp=hp))
        reached = tuple(int(r) + 1 for r in record.reached)
        return state, {"epoch": state.stop, "copies": copies}, dataclasses.replace(record, lineage=tuple(lineage),
                                                                                    reached=reached)


def unit_scores(unit, trainer, metric: str, higher: bool) -> np.ndarray:
    """Each member's standing now: the metric's best value so far where the task keeps its best
    epoch by it (that epoch's parameters are what the member would be tested with), else its last value."""
    ws = unit.ws
    logs = ws.logs[metric][:, :ws.epoch]
    ckpt = trainer.checkpoint
    if ckpt is not None and ckpt.metric == metric:
        with np.errstate(all="ignore"):
            clean = np.where(np.isfinite(logs), logs, -np.inf if higher else np.inf)
            out = clean.max(axis=1) if higher else clean.min(axis=1)
        return np.where(np.isfinite(out), out, np.nan)
    return logs[:, -1] if logs.shape[1] else np.full(len(unit.members), np.nan, np.float32)


def _draws(keys: np.ndarray, epoch: int, count: int) -> np.ndarray:
    """(members, count) uniform numbers in [0, 1) from each member's own key and the epoch."""
    return np.asarray(_draws_program(keys, np.int32(epoch), count), np.float64)


@functools.partial(jax.jit, static_argnums=2)
@with_rng_policy  # the engine's one random-number policy, as every member's own draws
def _draws_program(keys, epoch, count: int):
    def one(k):
        key = jax.random.fold_in(jax.random.fold_in(jax.random.wrap_key_data(k), PBT_STREAM), epoch)
        return jax.random.uniform(key, (count,))

    return jax.vmap(one)(keys)
