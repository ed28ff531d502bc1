"""What the progress bar says after a chunk: the numbers a person watching a study needs.

A pure function of the host values the chunk returned (the engine's progress bar calls it; nothing
here touches a device):

- a classifier (its logs have an accuracy): the best and median validation accuracy over the
  members (the test accuracy where the task keeps no validation split), as percentages;
- a member that stops at a tolerance (Lab A, B): how many converged, and the monitored loss's best
  and median;
- any other regression (Boston): the monitored loss's best and median;

always with how many members still run and how many diverged, and, when the caller measured it, the
throughput (``1,234 img/s``). :func:`tick` moves the engine's bar after each chunk.
"""
from __future__ import annotations

import math
from typing import Mapping, Optional

import numpy as np

from jaxlabs.train import CONVERGED, DIVERGED, RUNNING, Trainer

ACCURACY_LOGS = ("val_acc", "test_acc", "acc")  # the first one a classifier logs is shown


def converging(hparams: Mapping[str, np.ndarray]) -> bool:
    """Whether any member has a tolerance to reach (a converged count then means something)."""
    tol = hparams.get("tolerance")
    return tol is not None and bool((np.asarray(tol) > 0).any())


def _num(x: float) -> str:
    return "nan" if not np.isfinite(x) else f"{x:.3g}"


def _pct(x: float) -> str:
    return "nan" if not np.isfinite(x) else f"{100 * x:.1f}%"


def postfix(last: Mapping[str, np.ndarray], status: np.ndarray, *, monitor: str, converging: bool = False,
            rate: Optional[float] = None, unit: str = "img/s") -> str:
    """The bar's text. ``last``: each log's value at the chunk's last epoch, (members,) (a stopped
    member's held value); ``status``: (members,) jaxlabs.train codes; ``monitor``: the trainer's
    monitored log; ``converging``: members stop at a tolerance (see :func:`converging`); ``rate``:
    items per second over the chunk, shown with ``unit`` when given."""
    status = np.asarray(status)
    counts = f"run {int((status == RUNNING).sum())}"
    if converging:
        counts += f" conv {int((status == CONVERGED).sum())}"
    counts += f" div {int((status == DIVERGED).sum())}"
    acc = next((k for k in ACCURACY_LOGS if k in last), None)
    if acc is not None:
        name, values, fmt, best = acc, np.asarray(last[acc], np.float64), _pct, np.max
    else:
        name, values, fmt, best = monitor, np.asarray(last[monitor], np.float64), _num, np.min
    finite = values[np.isfinite(values)]
    line = (f"{counts} | {name} best {fmt(best(finite)) if finite.size else 'nan'} "
            f"median {fmt(float(np.median(finite))) if finite.size else 'nan'}")
    if rate is not None and np.isfinite(rate):
        line += f" | {rate:,.0f} {unit}"
    return line


def tick(bar, trainer: Trainer, ws, first: int, done: int, seconds: float, converging: bool) -> None:
    """Advance the engine's ``bar`` to the end of the ``done`` epochs of the chunk that started at
    epoch ``first`` (whole epochs again where it moved piece by piece within them; ``ws``: the wave
    after the chunk; ``seconds``: the chunk's, compile excluded) and show :func:`postfix`'s line,
    with images per second for a trainer that counts them."""
    real = ws.logs[trainer.monitor].shape[0]
    last = {k: v[:, first + done - 1] for k, v in ws.logs.items()}
    members = int((ws.status[:real] == RUNNING).sum()) or real
    rate = members * done * trainer.items_per_epoch / seconds if trainer.items_per_epoch and seconds > 0 else None
    bar.update(first + done - bar.n)  # whole epochs again after the pieces' shares
    bar.n = first + done
    bar.set_postfix_str(postfix(last, ws.status[:real], monitor=trainer.monitor, converging=converging, rate=rate),
                        refresh=False)


def with_rate(line: str, rate: float, unit: str = "img/s") -> str:
    """``line`` (a :func:`postfix` text) with its throughput replaced by ``rate``: within a sliced
    epoch the counts and metrics are the last epoch's, the rate is the piece just run."""
    kept = (line.rsplit(" | ", 1)[0] if " | " in line else "") if line.endswith(unit) else line
    return f"{kept} | {rate:,.0f} {unit}" if kept else f"{rate:,.0f} {unit}"


def without_epoch(line: str) -> str:
    """``line`` (the bar's text) without the part :func:`within_epoch` added."""
    line = line.split(" | epoch ")[0]
    return "" if line.startswith("epoch ") else line


def within_epoch(line: str, done: int, into: float, of: int) -> str:
    """``line`` with where a long epoch is, ``epoch 6 of 10, 42%``: ``done`` whole epochs (the bar's
    count), ``into`` epochs the pieces covered since, ``of`` the budget."""
    whole = max(math.ceil(into - 1e-9), 1)  # the epoch the pieces are in, 1-based past the count
    where = f"epoch {min(done + whole, of)} of {of}, {100 * (into - (whole - 1)):.0f}%"
    return f"{line} | {where}" if line else where
