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
from typing import Any, Optional, Sequence

import jax
import numpy as np
from tqdm.auto import tqdm

from jaxlabs.engine.group import member_keys
from jaxlabs.engine.memory import check_data_fits, padded, rows, wave_size
from jaxlabs.engine.options import EngineOptions
from jaxlabs.engine.placement import Placement, members_of, process0
from jaxlabs.engine.plans import VMAP
from jaxlabs.engine.programs import Programs
from jaxlabs.engine.wave import after_chunk, copied, fresh, merged, repacked, run_chunk, shrunk_order, stopped
from jaxlabs.search import decide
from jaxlabs.search.space import Dimension
from jaxlabs.sweep import Member, static_groups
from jaxlabs.train import PRUNED, RUNNING, STATUS_NAMES, Trainer, with_rng_policy

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


class Population:
    """One static configuration's members in a search: one program on the devices (its
    :class:`~jaxlabs.engine.wave.WaveState`), their numbers on the host, and the programs."""

    def __init__(self, trainer: Trainer, data: Any, members: Sequence[Member], options: EngineOptions,
                 first_chunk: int = 1):
        placement = Placement(options.device_list())
        local = next(d for d in placement.devices if d.process_index == jax.process_index())
        check_data_fits(data, options.memory_limit, local, trainer.data_name)
        self.trainer, self.placement = trainer, placement
        self.programs = Programs(trainer, placement.shared(data), options.plan or VMAP, options.precision,
                                 placement, options.compile_options)
        self.programs.slice_steps = options.slice_steps
        real = len(members)
        self.source = padded(np.arange(real), placement.count)  # program slot -> member (padding: copies of the first)
        self.keys = np.asarray(member_keys([m.seed for m in members]))[self.source]
        self.hp = {k: np.asarray([m.hparams[k] for m in members], np.float32)[self.source] for k in members[0].hparams}
        fits = wave_size(self.programs, self.keys, self.hp, first_chunk, options.memory_limit)
        if fits < len(self.source):
            raise SearchError("members", f"{real} members of one static configuration do not fit one program in the "
                                         f"device's memory (at most {fits} do); give --members {fits} or fewer")
        state = self.programs.init(placement.members(self.keys), placement.members(self.hp))
        self.ws = fresh(state, real, trainer.max_epochs, state.last_logs.keys())
        self.repacks: list[tuple[int, int]] = []  # (epoch, members of the next program)
        self.program_epochs = 0  # member-epochs the programs ran, frozen and padded members included
        self.epoch_s = 0.0  # seconds an epoch of the running program took, at the last chunk
        self._hp_on_device = None

    @property
    def real(self) -> int:
        return self.ws.logs[self.trainer.monitor].shape[0]

    @property
    def running(self) -> bool:
        return bool((self.ws.status == RUNNING).any())

    def resume(self, ws, hp: dict) -> None:
        """The population as a checkpoint saved it: its wave and its members' numbers."""
        self.ws, self.hp, self._hp_on_device = ws, hp, None

    def _hp(self):
        if self._hp_on_device is None:
            self._hp_on_device = self.placement.members(rows(self.hp, self.ws.active))
        return self._hp_on_device

    def advance(self, length: int, sliced) -> float:
        """The next ``length`` epochs of the running program; its seconds (compile excluded)."""
        compiled, t0 = self.programs.compile_s, time.perf_counter()
        state, logs = run_chunk(self.programs, self.ws, self._hp(), length, sliced)
        logs, status = self.placement.fetch((logs, state.status))
        self.program_epochs += members_of(state) * length
        self.ws = after_chunk(self.ws, state, logs, np.asarray(status), length)
        seconds = time.perf_counter() - t0 - (self.programs.compile_s - compiled)
        self.epoch_s = seconds / length
        return seconds

    def hold(self, length: int) -> None:
        """``length`` epochs of a program none of whose members runs: their last values, held."""
        ws = self.ws
        for v in ws.logs.values():
            v[:, ws.epoch:ws.epoch + length] = v[:, ws.epoch - 1:ws.epoch]
        self.ws = dataclasses.replace(ws, epoch=ws.epoch + length)

    def slots(self, members: Sequence[int]) -> np.ndarray:
        """Program slots of ``members`` (member indices), their padding copies included."""
        return np.flatnonzero(np.isin(self.source, np.asarray(members, int)))

    def prune(self, members: Sequence[int], epochs_left: int, worth_s: float) -> None:
        """``members`` (still running) stop now as pruned. The program shrinks to a smaller size
        that fits the running ones when the ``epochs_left`` are worth a compile: at the last
        chunk's speed they would take more than ``worth_s`` seconds (process 0's estimate; 0:
        always), as compaction decides (:class:`EngineOptions.compact_worth_s`)."""
        slots = [s for s in self.slots(members) if self.ws.status[s] == RUNNING]
        self.ws = stopped(self.ws, np.asarray(slots, int), PRUNED, self.placement)
        order = shrunk_order(self.ws, self.placement.count)
        if order is not None and worth_s > 0 and process0([self.epoch_s * epochs_left])[0] <= worth_s:
            order = None  # the rest is cheaper than compiling a smaller program: the pruned stay, frozen
        if order is not None:
            self.ws = repacked(self.ws, order, self.placement)
            self.repacks.append((self.ws.epoch, len(order)))
            self._hp_on_device = None

    def exploit(self, parents: dict[int, int], numbers: dict[int, dict[str, float]]) -> None:
        """Each child (key) takes its parent's state and the new ``numbers``."""
        if not parents:
            return
        children = self.slots(list(parents))
        self.ws = copied(self.ws, children, np.asarray([parents[int(self.source[c])] for c in children]),
                         self.placement)
        for c in children:
            for k, v in numbers[int(self.source[c])].items():
                self.hp[k][c] = np.float32(v)
        self._hp_on_device = None

    def finish(self) -> dict:
        final = self.placement.fetch(self.programs.finish(merged(self.ws, self.placement),
                                                          self.placement.members(self.hp)))
        return {k: np.asarray(v)[:self.real] for k, v in final.items()}

    def scores(self, metric: str, higher: bool) -> np.ndarray:
        """Each member's standing now: the metric's best value so far where the task keeps its best
        epoch by it (that epoch's parameters are what the member would be tested with), else its
        last value."""
        logs = self.ws.logs[metric][:, :self.ws.epoch]
        ckpt = self.trainer.checkpoint
        if ckpt is not None and ckpt.metric == metric:
            with np.errstate(all="ignore"):
                clean = np.where(np.isfinite(logs), logs, -np.inf if higher else np.inf)
                out = clean.max(axis=1) if higher else clean.min(axis=1)
            return np.where(np.isfinite(out), out, np.nan)
        return logs[:, -1] if logs.shape[1] else np.full(self.real, np.nan, np.float32)


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


def run_search(task, members: Sequence[Member], space: Sequence[Dimension], options: SearchOptions, *,
               engine: EngineOptions = EngineOptions(), checkpoint=None, progress: bool = True,
               name: str = "") -> SearchResult:
    """Train ``members`` (:func:`jaxlabs.search.space.population`) as a search: see the module.
    ``checkpoint``: a :class:`SearchCheckpoint` (resume from it, save to it between chunks)."""
    t0 = time.perf_counter()
    groups = static_groups(members)
    where = {id(m): i for i, m in enumerate(members)}
    index = [np.asarray([where[id(m)] for m in g], int) for g in groups]
    built = [task.build(g[0].static) for g in groups]
    budgets = {t.max_epochs for t, _ in built}
    if len(budgets) > 1:
        raise SearchError("epochs", f"every member of a search trains for the same budget; got {sorted(budgets)} "
                                    "epochs: give --epochs one value")
    epochs = budgets.pop()
    options = options.check(epochs, len(members))
    plan = options.decisions(epochs, len(members))
    chunk = engine.chunk or task.chunk
    unit = math.gcd(chunk, epochs, *plan)
    first = _segments(0, (plan or [epochs])[0], chunk, unit)[0]  # the memory check compiles the first chunk's program
    pops = [Population(t, d, g, engine, first) for (t, d), g in zip(built, groups)]
    metric, higher = validation_metric(task, list(pops[0].ws.logs))
    searched = [d for d in space if d.varies and d.option.traced]
    n = len(members)
    alive = np.ones(n, bool)  # halving: still in the race
    reached = np.zeros(n, int)
    decisions_made: list[dict] = []
    lineage: list[dict] = []
    order = np.argsort(np.concatenate(index))  # the populations' members, concatenated -> sampled order

    def in_order(per_pop) -> dict:
        """name -> (members,) in sampled order, from each population's name -> (its members,) values."""
        parts = list(per_pop)
        return {k: np.concatenate([part[k] for part in parts])[order] for k in parts[0]}

    def numbers_now() -> dict:
        return in_order({k: v[:p.real] for k, v in p.hp.items()} for p in pops)

    history = [(0, numbers_now())]
    if checkpoint is not None and checkpoint.position is not None:
        saved = checkpoint.restore(pops)
        alive, reached = np.asarray(saved["alive"], bool), np.asarray(saved["reached"], int)
        decisions_made, lineage = saved["decisions"], saved["lineage"]
        history = [(e, {k: np.asarray(v, np.float32) for k, v in h.items()}) for e, h in saved["history"]]
        for p, r, pe in zip(pops, saved["repacks"], saved["program_epochs"]):
            p.repacks, p.program_epochs = [tuple(x) for x in r], pe
    epoch = pops[0].ws.epoch
    bar = tqdm(total=epochs, initial=epoch, unit="epoch", dynamic_ncols=True, disable=not progress,
               desc=f"{name or task.name} {options.method} ({n} members)")

    def sliced(share, seconds):
        bar.update(share / max(1, sum(p.running for p in pops)))

    def scores_now() -> np.ndarray:
        out = np.full(n, np.nan)
        for p, idx in zip(pops, index):
            out[idx] = p.scores(metric, higher)
        return out

    with bar:
        for stop in [d for d in plan if d > epoch] + [epochs]:
            for length in _segments(epoch, stop, chunk, unit):
                for p in pops:
                    if p.running:
                        p.advance(length, sliced)
                    else:  # nothing left to train: its members hold their values
                        p.hold(length)
                epoch += length
                bar.n = epoch
                running = sum(int((p.ws.status[:p.real] == RUNNING).sum()) for p in pops)
                score = scores_now()
                top = decide.ranking(score, higher)[0]
                bar.set_postfix_str(f"{running}/{n} running | best {metric} {score[top]:.4g}", refresh=False)
                bar.refresh()
                if epoch == stop and stop < epochs:
                    t_decide = time.perf_counter()
                    if options.method == "halving":
                        made = _halve(pops, index, score, alive, reached, options.eta, higher, epoch, epochs - epoch,
                                      engine.compact_worth_s if engine.compaction else float("inf"))
                    else:
                        made = _exploit(pops, index, score, higher, options, searched, epoch, lineage, reached)
                        history.append((epoch, numbers_now()))
                    # the decision's own cost: ranking, draws, pruning, repacking or copying (compiles included)
                    made["seconds"] = round(time.perf_counter() - t_decide, 4)
                    decisions_made.append(made)
                if checkpoint is not None and epoch < epochs:
                    checkpoint.save(pops, {"alive": alive.tolist(), "reached": reached.tolist(),
                                           "decisions": decisions_made, "lineage": lineage,
                                           "history": [(e, {k: v.tolist() for k, v in h.items()}) for e, h in history],
                                           "repacks": [p.repacks for p in pops],
                                           "program_epochs": [p.program_epochs for p in pops]}, epoch)
                if not any(p.running for p in pops):
                    break
            if not any(p.running for p in pops):
                break
    final = in_order(p.finish() for p in pops)
    ran = max(p.ws.epoch for p in pops)
    curves = in_order({k: np.pad(v[:, :p.ws.epoch], ((0, 0), (0, ran - p.ws.epoch)), mode="edge")
                       for k, v in p.ws.logs.items()} for p in pops)
    numbers = numbers_now()
    scored = final[metric] if metric in final else curves[metric][:, -1]
    if options.method == "halving":
        finalists = np.flatnonzero(alive)
    else:
        finalists = np.arange(n)
    best = decide.best(scored, finalists, higher)
    return SearchResult(
        task=task.name, method=options.method, options=options, space=list(space), metric=metric, higher=higher,
        members=list(members), numbers=numbers, curves=curves, final=final, reached=reached,
        decisions=decisions_made, lineage=lineage, history=history, best=best, epochs=epochs,
        wall_s=time.perf_counter() - t0, compile_s=sum(p.programs.compile_s for p in pops),
        program_epochs=sum(p.program_epochs for p in pops),
        groups=[{"static": g[0].static, "members": len(g), "repacks": p.repacks,
                 "compiled": [list(c) for c in p.programs.compiles], "programs": p.programs.tally()}
                for g, p in zip(groups, pops)],
        data=built[0][0].data_name)


def _halve(pops, index, score, alive, reached, eta, higher, epoch, epochs_left, worth_s) -> dict:
    """A rung: the best 1/eta of the members in the race go on, the others still running are pruned."""
    keep = process0(decide.survivors(score, alive, eta, higher).astype(np.float32)) > 0.5
    out = alive & ~keep
    reached[keep] += 1
    for p, idx in zip(pops, index):
        p.prune(np.flatnonzero(out[idx]), epochs_left, worth_s)
    entered = int(alive.sum())
    alive &= keep
    return {"epoch": epoch, "entered": entered, "kept": [int(i) for i in np.flatnonzero(keep)],
            "sizes": [members_of(p.ws.state) for p in pops]}


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


def _exploit(pops, index, score, higher, options: SearchOptions, searched, epoch, lineage, reached) -> dict:
    """PBT within each static configuration: the bottom quantile copy the top, then explore."""
    copies = []
    reached += 1
    for p, idx in zip(pops, index):
        draws = _draws(p.keys[:p.real], epoch, 1 + 3 * len(searched))
        local = process0(draws)
        parents = decide.pbt_parents(score[idx], higher, options.quantile, local[:, 0])
        numbers = {}
        for c, par in parents.items():
            old = {d.name: float(p.hp[d.name][c]) for d in searched}
            inherited = {d.name: float(p.hp[d.name][par]) for d in searched}
            new = {}
            for j, d in enumerate(searched):
                u = local[c, 1 + 3 * j:4 + 3 * j]
                new[d.name] = float(np.float32(decide.explore(float(p.hp[d.name][par]), d, u[0] < options.resample,
                                                              u[1] < 0.5, u[2])))
            numbers[c] = new
            lineage.append({"epoch": epoch, "member": int(idx[c]), "parent": int(idx[par]), "old": old,
                            "parent_numbers": inherited, "new": new,
                            "score": float(score[idx[c]]), "parent_score": float(score[idx[par]])})
            copies.append([int(idx[c]), int(idx[par])])
        p.exploit(parents, numbers)
    return {"epoch": epoch, "copies": copies}
