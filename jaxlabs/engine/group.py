"""Static groups through the run loop: each group's members (seeds x traced numbers) trained as the
fewest waves that fit, under the group's plan, with a progress bar per wave (:func:`run_groups`);
:func:`run_group` is one group alone, and :class:`GroupResult` what a group returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
from tqdm.auto import tqdm

from jaxlabs.engine.options import EngineOptions
from jaxlabs.engine.plans import VMAP
from jaxlabs.engine.run import GroupSpec, Hooks, Policy, Run, SweepPolicy, member_keys  # noqa: F401 (member_keys: its home)
from jaxlabs.progress import converging, with_rate, within_epoch, without_epoch
from jaxlabs.progress import tick as tick_bar
from jaxlabs.train import Trainer


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
    compiled: list = field(default_factory=list)  # (plan, program, epochs, members) of every compile, in order
    programs: dict = field(default_factory=dict)  # compile_s's compiles: {"loaded" (cached), "compiled", "xla_s"}
    repacks: list = field(default_factory=list)  # (epoch, wave, members of the next program in its order)

    @property
    def members(self) -> int:
        return len(self.seeds)


class WaveBars:
    """A sweep's display: one progress bar per wave (the group's name, its wave, its devices), the
    observer told of every chunk (``observer.chunk(group, rows, first_epoch, logs, status)`` with the
    wave's member rows and host values) and of every finished group."""

    def __init__(self, run: Run, progress: bool, observer=None):
        self.run, self.progress, self.observer = run, progress, observer
        self.bars: dict[int, Any] = {}
        self.units: dict[int, Any] = {}  # unit -> its state at its last chunk
        self.into: dict[int, float] = {}  # unit -> epochs its pieces covered since its last chunk

    def hooks(self, save=lambda state, force=False: None) -> Hooks:
        return Hooks(start=self.start, chunk=self.chunk, sliced=self.sliced, unit_done=self.unit_done,
                     group_done=self.group_done, save=save)

    def start(self, u: int, state) -> None:
        unit = state.units[u]
        spec, b, log = self.run.specs[unit.group], self.run.group(unit.group), state.logs[unit.group]
        self.units[u] = unit
        name = spec.desc or f"{spec.members} members"
        on = f" on {b.placement.count} devices" if b.placement.count > 1 else ""
        wave = self.run.wave_of(state, u)
        bar = tqdm(total=b.trainer.max_epochs, unit="epoch", dynamic_ncols=True, leave=True, disable=not self.progress,
                   desc=(name if len(log.waves) == 1 else f"{name} wave {wave + 1}/{len(log.waves)}") + on)
        bar.update(min(unit.ws.epoch, b.trainer.max_epochs))
        self.bars[u] = bar

    def chunk(self, u: int, state, first: int, done: int, seconds: float) -> None:
        unit = self.units[u] = state.units[u]
        b = self.run.group(unit.group)
        self.into.pop(u, None)
        tick_bar(self.bars[u], b.trainer, unit.ws, first, done, seconds, converging(b.hp))
        if self.observer is not None:
            self.observer.chunk(unit.group, np.asarray(unit.members, int),
                                first, {k: v[:, first:first + done] for k, v in unit.ws.logs.items()},
                                unit.ws.status[:len(unit.members)])

    def sliced(self, u: int, share: float, seconds: float) -> None:
        """A piece of a long epoch: the bar says how far into the epoch it is (its count stays whole)."""
        bar, unit = self.bars[u], self.units[u]
        if bar.disable:
            return
        b = self.run.group(unit.group)
        into = self.into[u] = self.into.get(u, 0.0) + share
        line = without_epoch(getattr(bar, "postfix", None) or "")
        if b.trainer.items_per_epoch and seconds > 0:  # the wave's members' images
            line = with_rate(line, share * b.trainer.items_per_epoch * len(unit.members) / seconds)
        bar.set_postfix_str(within_epoch(line, int(bar.n), into, b.trainer.max_epochs), refresh=True)

    def unit_done(self, u: int, state) -> None:
        bar = self.bars.pop(u, None)
        if bar is not None:
            bar.close()
        self.into.pop(u, None)

    def group_done(self, g: int, state) -> None:
        if self.observer is not None:
            self.observer.group_done(g, group_result(self.run, state, g))

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()


def group_result(run: Run, state, g: int) -> GroupResult:
    """Group ``g``'s results (every unit finished) in its members' order."""
    spec, log = run.specs[g], state.logs[g]
    units = [x for x in state.units if x.group == g]
    epochs_run = max(x.curves[next(iter(x.curves))].shape[1] for x in units)
    # a wave that stopped early holds its members' last values, as one program would have
    curves = {k: np.concatenate([np.pad(x.curves[k], ((0, 0), (0, epochs_run - x.curves[k].shape[1])), mode="edge")
                                 for x in units]) for k in units[0].curves}
    order = np.argsort(np.concatenate([x.members for x in units]))
    curves = {k: v[order] for k, v in curves.items()}
    final = {k: np.concatenate([x.final[k] for x in units])[order] for k in units[0].final}
    decision = log.decision
    return GroupResult(
        static=dict(spec.static), labels=list(spec.labels), seeds=np.asarray(spec.seeds), curves=curves,
        hparams={k: np.asarray(v, np.float64) for k, v in spec.hparams.items()}, final=final,
        epochs_run=epochs_run, compile_s=log.compile_s, run_s=max(log.busy_s - log.compile_s - log.probe_s, 0.0),
        plan=str(decision.plan or VMAP), plan_source=decision.source or "short group: vmap", probe=decision.probe,
        waves=list(log.waves), devices=len(spec.options.device_list()),
        data=log.data, compiled=list(log.compiled), repacks=list(log.repacks), programs=dict(log.programs))


def run_groups(specs: Sequence[GroupSpec], *, progress: bool = True, observer=None, store=None,
               policy: Optional[Policy] = None) -> list[GroupResult]:
    """Every group of ``specs`` through the run loop, one after another (a sweep), wave by wave;
    ``store``: a :class:`jaxlabs.store.RunStore` to resume from and save to between chunks."""
    run = Run(specs, policy or SweepPolicy())
    display = WaveBars(run, progress, observer)
    run.hooks = display.hooks(save=(lambda state, force=False: store.save(state, run, force)) if store is not None
                              else (lambda state, force=False: None))
    try:
        state = store.restore(run) if store is not None and store.saved is not None else None
        state = run.initial() if state is None else state
        state = run.go(state)
    finally:
        display.close()
    return [group_result(run, state, g) for g in range(len(specs))]


def run_group(trainer: Trainer, data: Any, seeds: Sequence[int], hparams: dict[str, Sequence[float]],
              *, options: EngineOptions = EngineOptions(), static: dict | None = None,
              labels: Sequence[str] | None = None, progress: bool = True, desc: str = "",
              plan_key: str | None = None, store=None, observer=None) -> GroupResult:
    """Train ``len(seeds)`` members (member i: seed ``seeds[i]``, hyperparameters
    ``hparams[name][i]``, setting ``labels[i]``) of one static configuration, as ``options`` say
    (:class:`EngineOptions`: plan or auto, memory, compaction, precision, devices, chunk length).

    A group that does not fit the memory runs as the fewest waves that do. Every member's results
    are its own whatever the plan, waves, compaction and devices, to float32 rounding (bit for bit
    under ``map``: see the README's Determinism). ``plan_key``: auto's cache key. ``store``: a
    :class:`jaxlabs.store.RunStore` (resume from it, save to it between chunks). ``observer``:
    ``observer.chunk(group, rows, first_epoch, logs, status)`` after every chunk."""
    members = len(seeds)
    if any(len(v) != members for v in hparams.values()):
        raise ValueError("every hyperparameter needs one value per member")
    spec = GroupSpec(dict(static or {}), list(labels or [""] * members), np.asarray(seeds),
                     {k: np.asarray(v, np.float64) for k, v in hparams.items()}, lambda: (trainer, data), desc,
                     plan_key, options)
    return run_groups([spec], progress=progress, observer=observer, store=store)[0]
