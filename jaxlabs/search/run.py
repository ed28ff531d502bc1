"""A search inside the program: the population trained by the run loop (:mod:`jaxlabs.engine.run`),
every static configuration's members as one program (or as waves, when they do not fit one), each
trained to the next decision point, with the search's policy (:mod:`jaxlabs.search.policies`)
deciding there.

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
a multi-process run. A :class:`jaxlabs.store.RunStore` saves the run's state (its record included)
between chunks; the same call resumes to the same numbers.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
from tqdm.auto import tqdm

from jaxlabs.engine.group import group_result
from jaxlabs.engine.options import EngineOptions
from jaxlabs.engine.plans import VMAP
from jaxlabs.engine.run import Hooks, Policy, Run
from jaxlabs.progress import within_epoch, without_epoch
from jaxlabs.search import decide
from jaxlabs.search.policies import SearchPolicy, SearchRecord  # noqa: F401 (SearchRecord: the store's, reached from here)
from jaxlabs.search.space import Dimension
from jaxlabs.sweep import Member, GridObserver, group_specs, static_groups
from jaxlabs.train import PRUNED, RUNNING, STATUS_NAMES

METHODS = ("hyperband", "halving", "pbt")
HYPERBAND_RUNGS = 3  # hyperband's default: brackets s = 3 .. 0 (27, 12, 6 and 4 members at eta 3)
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
    hyperband: brackets s = s_max .. 0 over halving's rungs (:func:`decide.brackets`; None for both
    ``min_epochs`` and ``rungs``: three rungs from the budget / eta**3), its population their sizes.
    pbt: every ``pbt_every`` epochs (None: a tenth of the budget) the bottom ``quantile`` copy the
    top ``quantile``, and each copied number is resampled with probability ``resample``."""

    method: str = "hyperband"
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
        if self.prunes:
            if self.eta < 2:
                raise SearchError("eta", f"eta must be a whole number >= 2 (each rung keeps 1/eta); got {self.eta}")
            if self.method == "hyperband" and self.min_epochs is None and self.rungs is None:
                self = dataclasses.replace(self, rungs=min(HYPERBAND_RUNGS, useful_rungs(epochs, self.eta)))
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
            return decide.bracket_rungs(members, decide.rungs(self.min_epochs, self.eta, epochs, self.rungs), self.eta)
        if self.method == "hyperband":  # the union of every bracket's
            return sorted({r for _, n, ladder in self.brackets(epochs) for r in decide.bracket_rungs(n, ladder, self.eta)})
        return list(range(self.pbt_every, epochs, self.pbt_every))

    @property
    def prunes(self) -> bool:
        """Whether members leave the race at rungs (halving, hyperband) rather than copy (PBT)."""
        return self.method in ("halving", "hyperband")

    def brackets(self, epochs: int) -> list[tuple[int, int, list[int]]]:
        """Hyperband's brackets, (s, members, rungs) for s = s_max .. 0 (options checked)."""
        return decide.brackets(self.min_epochs, self.eta, epochs, self.rungs)

    def population_size(self, epochs: int, members: int) -> int:
        """How many members the search samples: hyperband's bracket sizes summed, else ``members``."""
        return sum(n for _, n, _ in self.brackets(epochs)) if self.method == "hyperband" else members

    def bracket_of(self, epochs: int) -> np.ndarray:
        """(members,) hyperband: each member's bracket s, in sampled order (bracket s_max first)."""
        return np.concatenate([np.full(n, s, int) for s, n, _ in self.brackets(epochs)])


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
    bracket: Optional[np.ndarray] = None  # hyperband: (members,) each member's bracket s

    def brackets(self) -> list[dict]:
        """Hyperband: per bracket its members, rungs (those that decided), member-epochs and best."""
        out = []
        for s, n, ladder in self.options.brackets(self.epochs):
            mine = np.flatnonzero(self.bracket == s)
            live = [int(i) for i in mine if self.final["status"][i] != PRUNED]
            scored = self.final[self.metric] if self.metric in self.final else self.curves[self.metric][:, -1]
            out.append({"bracket": int(s), "members": [int(i) for i in mine],
                        "rungs": decide.bracket_rungs(n, ladder, self.options.eta),
                        "member_epochs": int(np.sum(self.final["stop_epoch"][mine])),
                        "best": decide.best(scored, live or mine, self.higher)})
        return out

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
            line = without_epoch(getattr(self.bar, "postfix", None) or "")
            self.bar.set_postfix_str(within_epoch(line, int(self.bar.n), self.into, self.bar.total), refresh=True)

        def group_done(g, state):
            if self.observer is not None:  # pruned members: their rung in the HParams table
                result = group_result(run, state, g)
                result.final["pruned"] = (result.final["status"] == PRUNED).astype(np.float32)
                if self.policy.options.prunes:
                    result.final["rungs_passed"] = np.asarray(state.record.reached, np.float32)[self.policy.index[g]]
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
    bracket = None
    if options.method == "hyperband":
        bracket = options.bracket_of(epochs)
        if len(bracket) != len(members):
            raise SearchError("members", f"hyperband's brackets ({', '.join(f's={s}: {n}' for s, n, _ in options.brackets(epochs))}) "
                                         f"take {len(bracket)} members, not {len(members)}; sample "
                                         "SearchOptions.population_size(epochs, members) of them")
    plan = options.decisions(epochs, len(members))
    chunk = engine.chunk or task.chunk
    unit = math.gcd(chunk, epochs, *plan)
    metric, higher = validation_metric(task, run.group(0).log_names())
    searched = [d for d in space if d.varies and d.option.traced]
    policy = SearchPolicy(options, plan, chunk, unit, index, metric, higher, searched,
                          engine.compact_worth_s if engine.compaction else float("inf"), bracket)
    run.policy = policy  # before anything asks a group for its chunk lengths
    n = len(members)
    bar = SearchBar(policy, epochs, progress, f"{name or f'{task.name} {options.method}'} ({n} members)",
                    None if observer is None else GridObserver(observer, groups))
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
    finalists = np.flatnonzero(alive) if options.prunes else np.arange(n)  # hyperband: across brackets
    best = decide.best(scored, finalists, higher)
    return SearchResult(
        task=task.name, method=options.method, options=options, space=list(space), metric=metric, higher=higher,
        members=list(members), numbers=numbers, curves=curves, final=final, reached=np.asarray(record.reached, int),
        decisions=list(record.decisions), lineage=list(record.lineage), history=list(record.history), best=best,
        epochs=epochs, wall_s=time.perf_counter() - t0, compile_s=sum(log.compile_s for log in state.logs),
        program_epochs=sum(log.program_epochs for log in state.logs),
        groups=[{"static": g[0].static, "members": len(g), "repacks": [tuple(r) for r in log.repacks],
                 "compiled": [list(c[1:]) for c in log.compiled], "waves": list(log.waves),
                 "plan": str(log.decision.plan or VMAP), "plan_source": log.decision.source or "forced",
                 "programs": dict(log.programs)}
                for g, log in zip(groups, state.logs)],
        data=state.logs[0].data, bracket=bracket)
