"""The progress bar's line after each chunk, from the host values the chunk returned."""
from __future__ import annotations

import numpy as np

from jaxlabs.train import CONVERGED, DIVERGED, RUNNING, Trainer


def _fmt(x: float) -> str:
    return "nan" if not np.isfinite(x) else f"{x:.3g}"


def tick(bar, trainer: Trainer, ws, first: int, done: int) -> None:
    """Advance ``bar`` by the ``done`` epochs of the chunk that started at ``first`` and show how
    many members run, converged and diverged and the monitored value's best and median."""
    real = ws.logs[trainer.monitor].shape[0]
    status = ws.status[:real]
    last = ws.logs[trainer.monitor][:, first + done - 1]
    finite = last[np.isfinite(last)]
    bar.update(done)
    bar.set_postfix_str(
        f"run {int((status == RUNNING).sum())} conv {int((status == CONVERGED).sum())} "
        f"div {int((status == DIVERGED).sum())} | {trainer.monitor} best "
        f"{_fmt(finite.min() if finite.size else np.nan)} median "
        f"{_fmt(np.median(finite) if finite.size else np.nan)}", refresh=False)
