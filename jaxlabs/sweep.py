"""A grid of members, run as one compiled program per static configuration.

A grid is a list of :class:`Member`: a setting's label, its static configuration (model shape,
data size, ...: each distinct one compiles its own program), its traced numbers (learning rate,
tolerance, ...) and a seed. :func:`run_grid` groups the members by static configuration
(:func:`static_groups`), builds each group's trainer and data once, and hands each group to the
run loop (:mod:`jaxlabs.engine.run`: plans, waves, devices, compaction, checkpoints).
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from jaxlabs.engine.auto import cache_key
from jaxlabs.engine.group import GroupResult, member_keys, run_group, run_groups
from jaxlabs.engine.run import GroupSpec
from jaxlabs.engine.options import EngineOptions
from jaxlabs.train import STATUS_NAMES

__all__ = ["EngineOptions", "GroupResult", "Member", "SweepResult", "grid_members", "member_keys", "run_grid",
           "group_specs", "run_group", "run_sweep", "static_groups"]


@dataclass(frozen=True)
class Member:
    """One member of a grid: the setting it belongs to, its static configuration (every static
    option), its traced numbers (every traced option) and its seed."""

    label: str
    static: dict
    hparams: dict
    seed: int


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


class GridObserver:
    """A grid observer seen from the run loop: ``chunk`` and ``group_done`` with the group's members."""

    def __init__(self, observer, groups: Sequence[Sequence[Member]]):
        self.observer, self.groups = observer, groups

    def chunk(self, g: int, rows: np.ndarray, first_epoch: int, logs: dict, status: np.ndarray) -> None:
        self.observer.chunk(g, self.groups[g], rows, first_epoch, logs, status)

    def group_done(self, g: int, result) -> None:
        self.observer.group_done(g, self.groups[g], result)


def group_specs(task, members: Sequence[Member], *, name: str = "", engine: EngineOptions = EngineOptions()
                ) -> list[GroupSpec]:
    """The grid's static groups as the run loop takes them: each one's members, numbers, how to
    build its trainer and data, its bar's name and auto's cache key."""
    devices = len(engine.device_list())
    options = engine if engine.chunk else dataclasses.replace(engine, chunk=task.chunk)
    specs = []
    for group in static_groups(members):
        static = group[0].static
        settings = ", ".join(dict.fromkeys(m.label for m in group))
        specs.append(GroupSpec(
            static, [m.label for m in group], np.asarray([m.seed for m in group]),
            {k: np.asarray([m.hparams[k] for m in group], np.float64) for k in group[0].hparams},
            functools.partial(task.build, static), f"{name or task.name} [{settings}] ({len(group)} members)",
            cache_key(task.name, static, len(group), engine.precision, devices, engine.compile_options), options))
    return specs


def run_grid(task, members: Sequence[Member], *, progress: bool = True, name: str = "",
             engine: EngineOptions = EngineOptions(), store=None, observer=None) -> SweepResult:
    """Every member of the grid, one compiled program per static configuration (or several: waves,
    compaction; see :func:`run_group`). Members keep their order within a group; groups come in
    order of their first member. ``store``: a :class:`jaxlabs.store.RunStore`: the run resumes
    from where it saved (finished groups are not trained again) and is saved between chunks.
    ``observer``: ``observer.chunk(group, members, rows, first_epoch, logs, status)`` after every
    chunk (``rows``: the wave's members, indices into ``members``; ``logs``: name -> (rows, epochs
    of the chunk) host values) and ``observer.group_done(group, members, result)``."""
    groups = static_groups(members)
    specs = group_specs(task, members, name=name, engine=engine)
    results = run_groups(specs, progress=progress, store=store,
                         observer=None if observer is None else GridObserver(observer, groups))
    return SweepResult(task.name, results)


def run_sweep(task, statics: Sequence[dict], seeds: Sequence[int], axes: dict[str, Sequence[float]],
              *, engine: EngineOptions = EngineOptions(), progress: bool = True) -> SweepResult:
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
    return run_grid(task, members, progress=progress, engine=engine)
