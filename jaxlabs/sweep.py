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

import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxlabs.train import (CONVERGED, DIVERGED, RUNNING, STATUS_NAMES, Trainer, finalize,
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
    run_s: float

    @property
    def members(self) -> int:
        return len(self.seeds)


@dataclass
class SweepResult:
    task: str
    groups: list[GroupResult] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)  # figure files written for this sweep

    def records(self) -> list[dict]:
        """One plain row per member: static config, hyperparameters, seed, status, metrics."""
        rows = []
        for g in self.groups:
            for i in range(g.members):
                status = STATUS_NAMES[int(g.final["status"][i])]
                row: dict[str, Any] = {"task": self.task, "setting": g.labels[i], **g.static,
                                       "seed": int(g.seeds[i])}
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


def _stack_hparams(hparams: dict[str, Sequence[float]]) -> dict[str, jax.Array]:
    return {k: jnp.asarray(np.asarray(v, np.float32)) for k, v in hparams.items()}


def _fmt(x: float) -> str:
    return "nan" if not np.isfinite(x) else f"{x:.3g}"


def run_group(trainer: Trainer, data: Any, seeds: Sequence[int], hparams: dict[str, Sequence[float]],
              *, static: dict | None = None, labels: Sequence[str] | None = None, chunk: int = 100,
              progress: bool = True, desc: str = "") -> GroupResult:
    """Train ``len(seeds)`` members (member i: seed ``seeds[i]``, hyperparameters
    ``hparams[name][i]``, setting ``labels[i]``) of one static configuration in one vmapped
    program."""
    members = len(seeds)
    if any(len(v) != members for v in hparams.values()):
        raise ValueError("every hyperparameter needs one value per member")
    # equal chunks that cover max_epochs with the least overshoot: epochs past the budget in the
    # last chunk are computed (masked) too, so 300 epochs in chunks of 250 would cost 500
    n_chunks = -(-trainer.max_epochs // max(1, chunk))
    chunk = -(-trainer.max_epochs // n_chunks)
    keys = jax.random.wrap_key_data(member_keys(seeds))
    hp = _stack_hparams(hparams)
    data = jax.device_put(data)  # once, shared by every member

    def init_fn(key, h, d):
        return init_member(trainer, key, h, d)

    def chunk_fn(state, h, d, start):
        return run_epochs(trainer, state, h, d, start, chunk)

    def finish_fn(state, h, d):
        return finalize(trainer, state, h, d)

    vinit = jax.jit(jax.vmap(init_fn, in_axes=(0, 0, None)))
    vchunk = jax.jit(jax.vmap(chunk_fn, in_axes=(0, 0, None, None)), donate_argnums=0)
    vfinish = jax.jit(jax.vmap(finish_fn, in_axes=(0, 0, None)))

    t0 = time.perf_counter()
    state = vinit(keys, hp, data)
    compiled_chunk = vchunk.lower(state, hp, data, jnp.int32(0)).compile()
    compiled_finish = vfinish.lower(state, hp, data).compile()  # so run_s is training alone
    compile_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    pieces: list[dict] = []
    start = 0
    bar = tqdm(total=trainer.max_epochs, unit="epoch", desc=desc or f"{members} members",
               disable=not progress, dynamic_ncols=True, leave=True)
    with bar:
        while start < trainer.max_epochs:
            state, logs = compiled_chunk(state, hp, data, jnp.int32(start))
            logs = jax.device_get(logs)  # the one host round trip per chunk
            status = np.asarray(jax.device_get(state.status))
            pieces.append(logs)
            done = min(chunk, trainer.max_epochs - start)
            start += chunk
            last = np.asarray(logs[trainer.monitor])[:, done - 1]
            finite = last[np.isfinite(last)]
            bar.update(done)
            bar.set_postfix_str(
                f"run {int((status == RUNNING).sum())} conv {int((status == CONVERGED).sum())} "
                f"div {int((status == DIVERGED).sum())} | {trainer.monitor} best "
                f"{_fmt(finite.min() if finite.size else np.nan)} median "
                f"{_fmt(np.median(finite) if finite.size else np.nan)}", refresh=False)
            if not (status == RUNNING).any():
                break
        final = jax.device_get(compiled_finish(state, hp, data))
    run_s = time.perf_counter() - t0

    epochs_run = min(start, trainer.max_epochs)
    curves = {k: np.concatenate([p[k] for p in pieces], axis=1)[:, :epochs_run] for k in pieces[0]}
    return GroupResult(
        static=dict(static or {}), labels=list(labels or [""] * members), seeds=np.asarray(seeds), curves=curves,
        hparams={k: np.asarray(v, np.float64) for k, v in hparams.items()},  # as given, for records
        final={k: np.asarray(v) for k, v in final.items()}, epochs_run=epochs_run,
        compile_s=compile_s, run_s=run_s)


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


def static_label(static: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in static.items())


def static_groups(members: Sequence[Member]) -> list[list[Member]]:
    """Members grouped by static configuration (one program each), in order of first appearance."""
    groups: dict[str, list[Member]] = {}
    for m in members:
        groups.setdefault(json.dumps(m.static, sort_keys=True), []).append(m)
    return list(groups.values())


def run_grid(task, members: Sequence[Member], *, chunk: int | None = None, progress: bool = True,
             name: str = "") -> SweepResult:
    """Every member of the grid, one compiled program per static configuration. Members keep
    their order within a group; groups come in order of their first member."""
    result = SweepResult(task.name)
    for group in static_groups(members):
        static = group[0].static
        trainer, data = task.build(static)
        settings = ", ".join(dict.fromkeys(m.label for m in group))
        hparams = {k: [m.hparams[k] for m in group] for k in group[0].hparams}
        result.groups.append(run_group(
            trainer, data, [m.seed for m in group], hparams, static=static, labels=[m.label for m in group],
            chunk=chunk or task.chunk, progress=progress,
            desc=f"{name or task.name} [{settings}] ({len(group)} members)"))
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
