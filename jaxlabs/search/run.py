"""A search inside the program: the population trained by the engine, every static configuration's
members as one program, advanced in lockstep a chunk at a time, with the search's decisions
between chunks.

- Successive halving: at each rung (``min_epochs * eta**k`` epochs) every member still in the
  race, of every static configuration, is ranked together on the task's validation metric; the
  best 1/eta go on, the others still running stop with the status ``pruned`` (frozen at the rung:
  their curves and final metrics are those at the rung) and are repacked out of the program
  (:func:`jaxlabs.engine.wave.stopped`, :func:`~jaxlabs.engine.wave.shrunk_order`), so the
  program shrinks, to the power-of-two sizes compaction uses.
- Population-based training: every ``pbt_every`` epochs, within each static configuration, the
  bottom quantile copy the whole state of one of the top quantile (:func:`jaxlabs.engine.wave.copied`)
  and explore its numbers (x0.8 / x1.25, or resampled), drawn from each member's own key.

Decisions read the host copy of the logs every chunk already brings back and are process 0's in
a multi-process run. A :class:`SearchCheckpoint` saves the populations and the search's record
between chunks; the same call resumes to the same numbers.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

import jax
import numpy as np
from tqdm.auto import tqdm

from jaxlabs.engine.group import within_epoch
from jaxlabs.engine.options import EngineOptions
from jaxlabs.engine.placement import members_of, process0
from jaxlabs.engine.run import Hooks, Policy, Run, on_host, to_devices, to_host
from jaxlabs.engine.wave import copied, repacked, shrunk_order, stopped
from jaxlabs.search import decide
from jaxlabs.search.space import Dimension
from jaxlabs.sweep import Member, group_specs, static_groups
from jaxlabs.train import PRUNED, RUNNING, STATUS_NAMES, with_rng_policy

METHODS = ("halving", "pbt")
PBT_STREAM = 2  # a member's key's child for its PBT draws (EPOCH_STREAM = 1 orders its data)
# validation metrics a search ranks on, in order of preference; (name, larger is better)
VALIDATION = (("val_acc", True), ("val_r2", True), ("val_loss", False), ("val_mse", False))


class SearchError(ValueError):
    """A search that cannot run as asked; one line naming the flag (``option``) and the fix."""

    def __init__(self, option: str, message: str):
        super().__init__(message)
        self.option = option


@dataclass(frozen=True)
class SearchOptions:
    """How the search decides. halving: ``eta`` (each rung keeps 1/eta), the first rung at
    ``min_epochs`` (None: the budget / eta**3), ``rungs`` (None: as many as the budget allows).
    pbt: every ``pbt_every`` epochs (None: a tenth of the budget) the bottom ``quantile`` copy the
    top ``quantile``, and each copied number is resampled with probability ``resample``."""

    method: str = "halving"
    eta: int = 3
    min_epochs: Optional[int] = None
    rungs: Optional[int] = None
    pbt_every: Optional[int] = None
    quantile: float = 0.25
    resample: float = 0.25

    def check(self, epochs: int, members: int) -> "SearchOptions":
        """These options for a budget of ``epochs`` and a population of ``members``, defaults filled
        in; SearchError otherwise."""
        if self.method not in METHODS:
            raise SearchError("method", f"unknown search method {self.method!r}; choose {' or '.join(METHODS)}")
        if self.method == "halving":
            if self.eta < 2:
                raise SearchError("eta", f"eta must be a whole number >= 2 (each rung keeps 1/eta); got {self.eta}")
            low = self.min_epochs or max(1, epochs // self.eta ** (self.rungs or useful_rungs(members, self.eta)))
            try:
                decide.rungs(low, self.eta, epochs, self.rungs)
            except ValueError as e:
                flag = "rungs" if self.rungs is not None and low < epochs else "min_epochs"
                raise SearchError(flag, str(e)) from None
            return dataclasses.replace(self, min_epochs=low)
        if not 0 < self.quantile <= 0.5:
            raise SearchError("quantile", f"the PBT quantile must be in (0, 0.5]; got {self.quantile:g}")
        if not 0 <= self.resample <= 1:
            raise SearchError("resample", f"the resample probability must be in [0, 1]; got {self.resample:g}")
        every = self.pbt_every or max(1, epochs // 10)
        if every >= epochs:
            raise SearchError("pbt_every", f"pbt-every {every} leaves no exploit step before the budget of {epochs} "
                                           f"epochs; give --pbt-every below {epochs}")
        return dataclasses.replace(self, pbt_every=every)

    def decisions(self, epochs: int, members: int) -> list[int]:
        """The epochs after which the search decides: halving's rungs while more than one member is
        in the race (a rung of one decides nothing), PBT's exploit steps."""
        if self.method == "halving":
            out, n = [], members
            for r in decide.rungs(self.min_epochs, self.eta, epochs, self.rungs):
                if n <= 1:
                    break
                out.append(r)
                n = max(1, n // self.eta)
            return out
        return list(range(self.pbt_every, epochs, self.pbt_every))


def useful_rungs(members: int, eta: int) -> int:
    """Rungs until one member is left: floor(log_eta(members)), at least one."""
    k, n = 0, members
    while n >= eta:
        n //= eta
        k += 1
    return max(k, 1)


def validation_metric(task, logs: Sequence[str]) -> tuple[str, bool]:
    """The metric a search ranks members on: a validation log of the task's (never the test split)."""
    for name, higher in VALIDATION:
        if name in logs:
            return name, higher
    fix = "".join(f", e.g. --{k.replace('_', '-')} {v}" for k, v in getattr(task, "search_defaults", {}).items())
    raise SearchError("task", f"{task.name} logs no validation metric ({', '.join(sorted(logs))}), and a search "
                              f"never ranks on the test split; give it a validation split{fix}")


@dataclass
class SearchResult:
    """A finished search: per member (in sampled order) its first numbers, last numbers, status,
    rungs passed, curves and final metrics; the decisions; the cost."""

    task: str
    method: str
    options: SearchOptions
    space: list[Dimension]
    metric: str  # the validation metric ranked on
    higher: bool
    members: list[Member]
    numbers: dict[str, np.ndarray]  # name -> (members,) the last numbers (PBT changes them), float32
    curves: dict[str, np.ndarray]  # name -> (members, epochs run)
    final: dict[str, np.ndarray]  # name -> (members, ...), with "status" and "stop_epoch"
    reached: np.ndarray  # (members,) rungs passed (halving); decisions lived through (pbt)
    decisions: list[dict]  # one per decision: epoch, members ranked, kept / copied
    lineage: list[dict]  # PBT: epoch, member, parent, old and new numbers
    history: list[tuple[int, dict]]  # (epoch, name -> (members,) numbers from that epoch on)
    best: int  # the member whose setting the search found
    epochs: int  # the budget
    wall_s: float
    compile_s: float
    program_epochs: int  # member-epochs the programs ran (frozen and padded members included)
    groups: list[dict] = field(default_factory=list)  # per static configuration: static, members, repacks
    data: str = ""

    @property
    def status(self) -> list[str]:
        return [STATUS_NAMES[int(s)] for s in self.final["status"]]

    @property
    def decide_s(self) -> float:
        """Seconds spent deciding, in all (every decision's ranking, draws, pruning, repacking, copying)."""
        return float(sum(d.get("seconds", 0.0) for d in self.decisions))

    @property
    def member_epochs(self) -> int:
        """Epochs trained, summed over the members (a pruned member's stop at its rung)."""
        return int(np.sum(self.final["stop_epoch"]))

    @property
    def full_epochs(self) -> int:
        """What training every member to the budget would have cost, in member-epochs."""
        return len(self.members) * self.epochs


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

    def __init__(self, options: SearchOptions, stops: list[int], chunk: int, unit: int, index: list[np.ndarray],
                 metric: str, higher: bool, searched: list, worth_s: float):
        self.options, self.plan, self.chunk, self.unit = options, stops, chunk, unit
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
        if self.options.method == "halving":
            state, made, record = self._halve(state, run, score, record)
        else:
            state, made, record = self._exploit(state, run, score, record)
            record = dataclasses.replace(record, history=record.history + ((state.stop, self.numbers(state, run)),))
        # the decision's own cost: ranking, draws, pruning, repacking or copying (compiles included)
        made["seconds"] = round(time.perf_counter() - t0, 4)
        return dataclasses.replace(state, record=dataclasses.replace(record, decisions=record.decisions + (made,)))

    def _halve(self, state, run, score, record):
        """A rung: the best 1/eta of the members in the race go on, the others still running are pruned."""
        alive = np.asarray(record.alive, bool)
        keep = process0(decide.survivors(score, alive, self.options.eta, self.higher).astype(np.float32)) > 0.5
        out = alive & ~keep
        reached = np.asarray(record.reached, int) + keep
        budget = run.budget()
        for u, unit in enumerate(state.units):
            state = state.replace_unit(u, self._prune(run, u, unit, np.flatnonzero(out[self.rows(unit)]),
                                                      budget - state.stop, state.logs[unit.group]))
        made = {"epoch": state.stop, "entered": int(alive.sum()), "kept": [int(i) for i in np.flatnonzero(keep)],
                "sizes": [members_of(u.ws.state) for u in state.units]}
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


class SearchBar:
    """A search's display: one bar for the whole population, in whole epochs (the slowest unit
    still training), with how many members run and the best validation metric; the TensorBoard
    observer told of every chunk and every finished group."""

    def __init__(self, policy: SearchPolicy, total: int, progress: bool, desc: str, observer=None):
        self.policy, self.observer = policy, observer
        self.bar = tqdm(total=total, unit="epoch", dynamic_ncols=True, disable=not progress, desc=desc)
        self.state = None
        self.into = 0.0

    def hooks(self, run, save) -> Hooks:
        def chunk(u, state, first, done, seconds):
            self.state, self.into = state, 0.0
            epochs = [x.ws.epoch for x in state.units if x.ws is not None and (x.ws.status == RUNNING).any()]
            self.bar.n = min(min(epochs) if epochs else max(x.ws.epoch for x in state.units if x.ws is not None),
                             self.bar.total)
            running = sum(int((x.ws.status[:len(x.members)] == RUNNING).sum()) for x in state.units if x.ws is not None)
            score = self.policy.scores(state, run)
            top = decide.ranking(score, self.policy.higher)[0]
            self.bar.set_postfix_str(f"{running}/{self.policy.n} running | best {self.policy.metric} {score[top]:.4g}",
                                     refresh=False)
            self.bar.refresh()
            unit = state.units[u]
            if self.observer is not None:
                self.observer.chunk(unit.group, np.asarray(unit.members, int), first,
                                    {k: v[:, first:first + done] for k, v in unit.ws.logs.items()},
                                    unit.ws.status[:len(unit.members)])

        def sliced(u, share, seconds):  # within a long epoch: where it is, the count stays whole
            self.into += share
            line = (getattr(self.bar, "postfix", None) or "").split(" | epoch ")[0]
            whole = max(math.ceil(self.into - 1e-9), 1)  # the epoch the pieces are in, past the bar's count
            self.bar.set_postfix_str(within_epoch(line, min(int(self.bar.n) + whole, self.bar.total), self.bar.total,
                                                  self.into - (whole - 1)), refresh=True)

        def group_done(g, result):
            if self.observer is not None:
                self.observer.group_done(g, result)

        return Hooks(chunk=chunk, sliced=sliced, group_done=group_done, save=save)


def run_search(task, members: Sequence[Member], space: Sequence[Dimension], options: SearchOptions, *,
               engine: EngineOptions = EngineOptions(), store=None, progress: bool = True,
               name: str = "", observer=None) -> SearchResult:
    """Train ``members`` (:func:`jaxlabs.search.space.population`) as a search: see the module.
    ``store``: a :class:`jaxlabs.store.RunStore` (resume from it, save to it between chunks);
    ``observer``: a TensorBoard log (:class:`jaxlabs.tensorboard.TensorBoardLog`), as a sweep's."""
    t0 = time.perf_counter()
    groups = static_groups(members)
    where = {id(m): i for i, m in enumerate(members)}
    index = [np.asarray([where[id(m)] for m in g], int) for g in groups]
    specs = group_specs(task, members, name=name, engine=engine)
    for spec in specs:
        spec.plan_key = None if engine.plan is not None else spec.plan_key
    run = Run(specs, Policy())
    budgets = {run.group(g).trainer.max_epochs for g in range(len(specs))}
    if len(budgets) > 1:
        raise SearchError("epochs", f"every member of a search trains for the same budget; got {sorted(budgets)} "
                                    "epochs: give --epochs one value")
    epochs = budgets.pop()
    options = options.check(epochs, len(members))
    plan = options.decisions(epochs, len(members))
    chunk = engine.chunk or task.chunk
    unit = math.gcd(chunk, epochs, *plan)
    metric, higher = validation_metric(task, run.group(0).log_names())
    searched = [d for d in space if d.varies and d.option.traced]
    policy = SearchPolicy(options, plan, chunk, unit, index, metric, higher, searched,
                          engine.compact_worth_s if engine.compaction else float("inf"))
    run.policy = policy
    for b in run.built.values():  # built before the policy was known: its chunk lengths are the policy's
        b.chunk, b.n_chunks = policy.first_chunk(b.trainer, engine), policy.chunks(b.trainer, engine)
        b.auto.chunk, b.auto.chunks = b.chunk, b.n_chunks
    n = len(members)
    bar = SearchBar(policy, epochs, progress, f"{name or task.name} {options.method} ({n} members)", observer)
    run.hooks = bar.hooks(run, (lambda state, force=False: store.save(state, run, force)) if store is not None
                          else (lambda state, force=False: None))
    with bar.bar:
        state = store.restore(run) if store is not None and store.saved is not None else None
        if state is None:
            state = run.initial(SearchRecord(tuple([True] * n), tuple([0] * n)))
            state = dataclasses.replace(state, record=dataclasses.replace(
                state.record, history=((0, policy.numbers(state, run)),)))
        if options.method == "pbt" and any(run.shares_group(state, u) for u in range(len(state.units))):
            raise SearchError("members", f"PBT copies states within one program, and {n} members of one static "
                                         "configuration do not fit one in the device's memory; give fewer --members")
        bar.bar.n = min(x.ws.epoch for x in state.units) if all(x.ws is not None for x in state.units) else 0
        state = run.go(state)
        bar.bar.n = max(u.curves[metric].shape[1] for u in state.units)
        bar.bar.refresh()
    record = state.record
    order = np.argsort(np.concatenate([policy.rows(u) for u in state.units]))
    final = {k: np.concatenate([u.final[k] for u in state.units])[order] for k in state.units[0].final}
    ran = max(u.curves[metric].shape[1] for u in state.units)
    curves = {k: np.concatenate([np.pad(u.curves[k], ((0, 0), (0, ran - u.curves[k].shape[1])), mode="edge")
                                 for u in state.units])[order] for k in state.units[0].curves}
    numbers = policy.numbers(state, run)
    alive = np.asarray(record.alive, bool)
    scored = final[metric] if metric in final else curves[metric][:, -1]
    finalists = np.flatnonzero(alive) if options.method == "halving" else np.arange(n)
    best = decide.best(scored, finalists, higher)
    return SearchResult(
        task=task.name, method=options.method, options=options, space=list(space), metric=metric, higher=higher,
        members=list(members), numbers=numbers, curves=curves, final=final, reached=np.asarray(record.reached, int),
        decisions=list(record.decisions), lineage=list(record.lineage), history=list(record.history), best=best,
        epochs=epochs, wall_s=time.perf_counter() - t0, compile_s=sum(log.compile_s for log in state.logs),
        program_epochs=sum(log.program_epochs for log in state.logs),
        groups=[{"static": g[0].static, "members": len(g), "repacks": [tuple(r) for r in log.repacks],
                 "compiled": [list(c[1:]) for c in log.compiled]} for g, log in zip(groups, state.logs)],
        data=state.logs[0].data)


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
