"""A grid of members, run as one compiled program per static configuration.

A grid is a list of :class:`Member`: a setting's label, its static configuration (model shape,
data size, ...: each distinct one compiles its own program), its traced numbers (learning rate,
tolerance, ...) and a seed. :func:`run_grid` groups the members by static configuration
(:func:`static_groups`), builds each group's trainer and data once, and hands each group to the
engine (:func:`jaxlabs.engine.group.run_group`: plans, waves, devices, compaction, checkpoints).
"""
from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from jaxlabs.engine.auto import cache_key
from jaxlabs.engine.group import GroupResult, member_keys, run_group
from jaxlabs.engine.options import EngineOptions
from jaxlabs.train import STATUS_NAMES

__all__ = ["EngineOptions", "GroupResult", "Member", "SweepResult", "grid_members", "member_keys", "run_grid",
           "run_group", "run_sweep", "static_groups"]


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


class _GroupObserver:
    """A grid observer seen from one group: ``chunk`` with the group's index and members."""

    def __init__(self, observer, g: int, members: Sequence[Member]):
        self.observer, self.g, self.members = observer, g, members

    def chunk(self, rows: np.ndarray, first_epoch: int, logs: dict, status: np.ndarray) -> None:
        self.observer.chunk(self.g, self.members, rows, first_epoch, logs, status)


def run_grid(task, members: Sequence[Member], *, progress: bool = True, name: str = "",
             engine: EngineOptions = EngineOptions(), checkpoint=None, observer=None) -> SweepResult:
    """Every member of the grid, one compiled program per static configuration (or several: waves,
    compaction; see :func:`run_group`). Members keep their order within a group; groups come in
    order of their first member. ``checkpoint``: a :class:`jaxlabs.checkpoint.StudyCheckpoint`:
    groups an earlier run finished are taken from it, the others resume and are checkpointed.
    ``observer``: ``observer.chunk(group, members, rows, first_epoch, logs, status)`` after every
    chunk (``rows``: the wave's members, indices into ``members``; ``logs``: name -> (rows, epochs
    of the chunk) host values) and ``observer.group_done(group, members, result)``."""
    result = SweepResult(task.name)
    groups = static_groups(members)
    devices = len(engine.device_list())
    for g, group in enumerate(groups):
        static = group[0].static
        saved = checkpoint.finished_group(g, static) if checkpoint is not None else None
        if saved is None:
            trainer, data = task.build(static)
            settings = ", ".join(dict.fromkeys(m.label for m in group))
            hparams = {k: [m.hparams[k] for m in group] for k in group[0].hparams}
            options = engine if engine.chunk else dataclasses.replace(engine, chunk=task.chunk)
            saved = run_group(
                trainer, data, [m.seed for m in group], hparams, options=options, static=static,
                labels=[m.label for m in group], progress=progress,
                desc=f"{name or task.name} [{settings}] ({len(group)} members)",
                plan_key=cache_key(task.name, static, len(group), engine.precision, devices, engine.compile_options),
                checkpoint=checkpoint.group(g, settings) if checkpoint is not None else None,
                observer=None if observer is None else _GroupObserver(observer, g, group))
            if checkpoint is not None:
                checkpoint.group_done(g, saved, last=g == len(groups) - 1)
        result.groups.append(saved)
        if observer is not None:
            observer.group_done(g, group, saved)
    return result


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
