"""Run a sweep and turn it into what a user reads: tables, files, figures."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from jaxlabs import plots
from jaxlabs.results import (check_writable, convergence_table, metric_table, summarize, write_curves,
                             write_records)
from jaxlabs.sweep import SweepResult, run_sweep, static_label

__all__ = ["check_writable", "run_and_save", "lr_tables", "plot_sweep", "static_label"]


def run_and_save(task, static: dict, seeds: Sequence[int], axes: dict[str, Sequence[float]], out,
                 *, command: str = "", progress: bool = True) -> SweepResult:
    """Train the grid, then write results.json / results.csv / curves.npz before any plotting, so
    a failure while drawing loses nothing. Sets ``result.plots`` to the figure file names."""
    out = Path(out)
    result = run_sweep(task, [static], seeds, axes, progress=progress)
    meta = {"task": task.name, "lab": task.lab, "command": command, "static": static,
            "seeds": list(seeds), "axes": {k: list(v) for k, v in axes.items()},
            "timing": [{"static": g.static, "members": g.members, "epochs_run": g.epochs_run,
                        "compile_s": round(g.compile_s, 3), "run_s": round(g.run_s, 3)}
                       for g in result.groups]}
    write_records(out, result.records(), meta)
    write_curves(out, result)
    result.plots = plot_sweep(task, result, out, by="lr")
    return result


def lr_tables(task, result: SweepResult) -> str:
    """One table per static group: convergence counts where members have a tolerance to reach
    (a positive ``tolerance``), else the final metric's mean and spread over seeds."""
    records = result.records()
    parts = []
    for g in result.groups:
        rows = [r for r in records if all(r.get(k) == v for k, v in g.static.items())]
        tol = g.hparams.get("tolerance")
        table = convergence_table if tol is not None and np.any(np.asarray(tol) > 0) else metric_table
        parts.append(f"\n{task.name}: {static_label(g.static)}\n"
                     + table(summarize(rows, ["lr"], task.primary_metric), "lr", task.primary_metric))
        parts.append(f"compile {g.compile_s:.1f} s, train {g.run_s:.1f} s for {g.members} members "
                     f"x {g.epochs_run} epochs")
    return "\n".join(parts)


def plot_sweep(task, result: SweepResult, out: Path, by: str = "lr") -> list[str]:
    """Loss curves per setting with the spread over seeds and, for regression tasks, true vs
    predicted on the validation set for the best member of each setting."""
    names = []
    for gi, g in enumerate(result.groups):
        suffix = "" if len(result.groups) == 1 else f"_{gi}"
        settings = g.hparams[by]
        tol = g.hparams.get("tolerance")
        hline = float(tol[0]) if tol is not None and np.all(tol == tol[0]) else None
        name = f"loss_curves{suffix}.png"
        plots.curves_band(out / name, g.curves["loss"], settings, by, ylabel="train loss", hline=hline,
                          title=f"{task.name}: train loss, median and min-max over seeds")
        names.append(name)
        if "val_pred" in g.final and "val_true" in g.final:
            panels = []
            val = np.where(np.isfinite(g.final["val_mse"]), g.final["val_mse"], np.inf)
            for value in dict.fromkeys(settings.tolist()):
                idx = np.flatnonzero(settings == value)
                best = idx[np.argmin(val[idx])]
                panels.append((f"{by}={value:g}, seed {g.seeds[best]}: val MSE "
                               f"{g.final['val_mse'][best]:.3g}", g.final["val_true"][best],
                               g.final["val_pred"][best]))
            name = f"val_true_vs_pred{suffix}.png"
            plots.true_vs_pred(out / name, panels, title=f"{task.name}: best member per {by} (validation)")
            names.append(name)
        if "grid_pred" in g.final:
            _, label, (lo, hi) = task.resolve_target(g.static)
            x = np.linspace(lo, hi, g.final["grid_pred"].shape[1])
            fits = []
            for value in dict.fromkeys(settings.tolist()):
                idx = np.flatnonzero(settings == value)
                fits.append((f"{by}={value:g}", g.final["grid_pred"][idx]))
            name = f"fitted_curves{suffix}.png"
            plots.fitted_curves(out / name, x, task.resolve_target(g.static)[0](x), fits,
                                title=f"{task.name}: {label}, learnt curves (every seed) over the ground truth")
            names.append(name)
    return names
