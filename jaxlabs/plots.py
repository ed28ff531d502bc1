"""Figures for sweeps and reports (matplotlib, Agg backend: works with no screen)."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxlabs import atomic  # noqa: E402
from jaxlabs.results import format_table  # noqa: E402


def _label(name: str, value) -> str:
    return f"{name}={value:g}" if isinstance(value, (float, np.floating)) else f"{name}={value}"


def curves_band(path: Path, curves: np.ndarray, settings: Sequence, setting_name: str,
                *, ylabel: str = "train loss", logy: bool = True, hline: float | None = None,
                title: str = "", order: Sequence | None = None) -> None:
    """One line per setting: the median over its members with a band from the min to the max
    (NaN-aware: a diverged member's NaN does not hide the others). ``curves``: (members, epochs);
    ``settings``: (members,) the setting each member belongs to."""
    settings = np.asarray(settings)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    epochs = np.arange(1, curves.shape[1] + 1)
    for value in (order if order is not None else dict.fromkeys(settings.tolist())):
        c = curves[settings == value].astype(np.float64)
        if not len(c):
            continue
        c = np.where(np.isfinite(c), c, np.nan)
        with np.errstate(all="ignore"), _quiet_nan():
            med, lo, hi = np.nanmedian(c, 0), np.nanmin(c, 0), np.nanmax(c, 0)
        line, = ax.plot(epochs, med, lw=1.4, label=f"{_label(setting_name, value)} (n={len(c)})")
        ax.fill_between(epochs, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
    if hline is not None:
        ax.axhline(hline, color="k", ls=":", lw=1, label=f"tolerance {hline:g}")
    if logy:
        ax.set_yscale("log")
        finite = curves[np.isfinite(curves) & (curves > 0)]
        if finite.size:  # a few divergent spikes must not squash every other curve
            ax.set_ylim(top=float(np.percentile(finite, 99.5)) * 3)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title or f"{ylabel}: median and min-max over seeds")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic.write_figure(path, fig, dpi=120)


def true_vs_pred(path: Path, panels: Sequence[tuple[str, np.ndarray, np.ndarray]], title: str = "") -> None:
    """One scatter per panel ``(label, y_true, y_pred)`` with the identity line."""
    n = max(1, len(panels))
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.6), squeeze=False)
    for ax, (label, t, p) in zip(axes[0], panels):
        ax.scatter(t, p, s=6, alpha=0.6)
        finite = np.concatenate([t[np.isfinite(t)], p[np.isfinite(p)]])
        if finite.size:
            lo, hi = finite.min(), finite.max()
            ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("true")
        ax.set_ylabel("predicted")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    atomic.write_figure(path, fig, dpi=120)


def fitted_curves(path: Path, x: np.ndarray, truth: np.ndarray,
                  fits: Sequence[tuple[str, np.ndarray]], title: str = "") -> None:
    """One panel per setting: the ground truth and every member's learnt curve ``(members, len(x))``."""
    n = max(1, len(fits))
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.4), squeeze=False, sharey=True)
    for ax, (label, preds) in zip(axes[0], fits):
        ax.plot(x, truth, "k-", lw=2, label="ground truth")
        for i, p in enumerate(preds):
            ax.plot(x, p, lw=1, alpha=0.7, label="learnt (each seed)" if i == 0 else None)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("x")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    lo, hi = np.nanmin(truth), np.nanmax(truth)
    pad = 0.25 * (hi - lo + 1e-9)
    axes[0][0].set_ylim(lo - pad, hi + pad)  # a diverged fit must not flatten the others
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic.write_figure(path, fig, dpi=120)


def confusion_heatmaps(path: Path, mats: Sequence[tuple[str, np.ndarray]], title: str = "") -> None:
    """One heatmap per setting: rows true class, columns predicted, normalised per true class."""
    n = max(1, len(mats))
    fig, axes = plt.subplots(1, n, figsize=(3.8 * n, 3.6), squeeze=False)
    for ax, (label, m) in zip(axes[0], mats):
        m = np.asarray(m, np.float64)
        frac = m / np.maximum(m.sum(1, keepdims=True), 1)
        im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
        k = m.shape[0]
        for i in range(k):
            for j in range(k):
                if frac[i, j] >= 0.01:
                    ax.text(j, i, f"{frac[i, j]:.2f}"[1:] if frac[i, j] < 1 else "1", ha="center",
                            va="center", fontsize=5, color="white" if frac[i, j] > 0.5 else "black")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_xticks(range(k))
        ax.set_yticks(range(k))
        ax.tick_params(labelsize=6)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8)
    if title:
        fig.suptitle(title, fontsize=10)
    atomic.write_figure(path, fig, dpi=130)


class _quiet_nan:
    """Silence 'All-NaN slice' warnings: a column where every member diverged is simply blank."""

    def __enter__(self):
        import warnings
        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._w.__exit__(*exc)


def _pad(curves: list[np.ndarray]) -> np.ndarray:
    n = max(c.shape[1] for c in curves)
    return np.concatenate([np.pad(c.astype(np.float64), ((0, 0), (0, n - c.shape[1])), constant_values=np.nan)
                           for c in curves])


def study_figures(study, task, result, out: Path) -> list[str]:
    """The figures ``study.figures`` asks for, from a :class:`jaxlabs.sweep.SweepResult` of its
    members: curves per setting (median and min-max band over seeds), fitted curves, true vs
    predicted for the best seed, confusion matrices and the per-class table. Returns the file names."""
    names: list[str] = []
    groups = result.groups
    data = "; ".join(dict.fromkeys(g.data for g in groups if g.data))
    on = f"\non {data}" if data else ""  # a copy of a dataset, or stand-in data, says so on every figure
    labels = np.asarray([lab for g in groups for lab in g.labels])
    order = [s.label for s in study.settings if s.label in set(labels.tolist())]
    tolerance = study.traced.get("tolerance")  # one tolerance for every setting: drawn on the loss
    hline = tolerance if tolerance and not any("tolerance" in s.traced for s in study.settings) else None
    for cname in groups[0].curves:
        if cname != "loss" and not ("acc" in cname and "accuracy" in study.figures):
            continue
        curves = _pad([g.curves[cname] for g in groups])
        name = f"{cname}_curves.png"
        curves_band(out / name, curves, labels, "setting", ylabel=cname, logy=("acc" not in cname),
                    hline=hline if cname == "loss" else None,
                    title=f"{study.key}: {cname}, median and min-max over seeds{on}", order=order)
        names.append(name)
    finals = defaultdict(list)
    for g in groups:
        for k, v in g.final.items():
            finals[k].append(np.asarray(v))
    finals = {k: np.concatenate(v) if all(a.shape[1:] == v[0].shape[1:] for a in v) else None
              for k, v in finals.items()}
    if "fit" in study.figures and finals.get("grid_pred") is not None:
        by_target = defaultdict(list)
        for s in study.settings:
            g = next((g for g in groups if s.label in g.labels), None)
            if g is None:
                continue
            by_target[(g.static.get("target"), g.static.get("x_range"))].append((s.label, g.static))
        for i, (_, items) in enumerate(by_target.items()):
            fn, label, (lo, hi) = task.resolve_target(items[0][1])
            x = np.linspace(lo, hi, finals["grid_pred"].shape[1])
            fits = [(lab, finals["grid_pred"][labels == lab]) for lab, _ in items]
            name = f"fitted_curves{'' if len(by_target) == 1 else f'_{i}'}.png"
            fitted_curves(out / name, x, fn(x), fits, title=f"{study.key}: {label}{on}")
            names.append(name)
    if "true_vs_pred" in study.figures and finals.get("val_pred") is not None:
        panels = []
        score = np.where(np.isfinite(finals["val_mse"]), finals["val_mse"], np.inf)
        for lab in order:
            idx = np.flatnonzero(labels == lab)
            b = idx[np.argmin(score[idx])]
            panels.append((f"{lab}: val MSE {finals['val_mse'][b]:.3g}", finals["val_true"][b], finals["val_pred"][b]))
        true_vs_pred(out / "val_true_vs_pred.png", panels, title=f"{study.key}: best seed per setting{on}")
        names.append("val_true_vs_pred.png")
    conf = finals.get("confusion")
    if "confusion" in study.figures and conf is not None:
        mats = [(lab, conf[labels == lab].sum(0)) for lab in order]
        confusion_heatmaps(out / "confusion.png", mats, title=f"{study.key}: test confusion, summed over seeds{on}")
        names.append("confusion.png")
        pc = finals.get("per_class_acc")
        if pc is not None:
            rows = [[lab] + [f"{pc[labels == lab][:, c].mean():.3f}" for c in range(pc.shape[1])] for lab in order]
            table = format_table(["setting", *[str(c) for c in range(pc.shape[1])]], rows)
            heading = "## Per-class test accuracy (mean over seeds)" + (f" on {data}" if data else "")
            atomic.write_text(out / "per_class.md", heading + "\n\n" + table)
            names.append("per_class.md")
    return names
