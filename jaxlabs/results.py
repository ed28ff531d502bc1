"""Records (one plain row per member) -> summary tables, CSV, JSON and curve archives."""
from __future__ import annotations

import csv
import json
import math
import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from jaxlabs.sweep import SweepResult


def _finite(values: Iterable[Any]) -> np.ndarray:
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    return arr[np.isfinite(arr)]


def fmt_num(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if x != 0 and (abs(x) < 1e-2 or abs(x) >= 1e4):
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}"


def mean_std(v: np.ndarray) -> str:
    """A table cell for one setting's values over seeds: "mean +- std" (population std, as every
    report states it), the value alone for one seed, "-" for none."""
    if not v.size:
        return "-"
    if v.size == 1:
        return fmt_num(float(v[0]), 4)
    return f"{fmt_num(float(v.mean()), 4)} +- {fmt_num(float(v.std()), 2)}"


def group_rows(records: Sequence[dict], by: Sequence[str]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        groups[tuple(r[k] for k in by)].append(r)
    return dict(groups)


def summarize(records: Sequence[dict], by: Sequence[str], metric: str) -> list[dict]:
    """Per setting: converged / total, epochs to converge (mean, std, min, max over converged
    members), the final metric's values, median and range over members that did not diverge,
    diverged."""
    out = []
    for key, rows in group_rows(records, by).items():
        conv = [r["converged_epoch"] for r in rows if r["status"] == "converged"]
        ok = _finite(r.get(metric) for r in rows if r["status"] != "diverged")
        ep = np.asarray(conv, np.float64)
        out.append({
            **dict(zip(by, key)),
            "members": len(rows),
            "converged": len(conv),
            "diverged": sum(r["status"] == "diverged" for r in rows),
            "max_epochs": sum(r["status"] == "max_epochs" for r in rows),
            "epochs_mean": float(ep.mean()) if ep.size else None,
            "epochs_std": float(ep.std()) if ep.size else None,
            "epochs_min": int(ep.min()) if ep.size else None,
            "epochs_max": int(ep.max()) if ep.size else None,
            metric: ok,  # the finite values, for mean_std
            f"{metric}_median": float(np.median(ok)) if ok.size else None,
            f"{metric}_min": float(ok.min()) if ok.size else None,
            f"{metric}_max": float(ok.max()) if ok.size else None,
        })
    return out


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain aligned text table (also valid Markdown)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
                      *(line(r) for r in rows)])


def _median_range(s: dict, metric: str) -> str:
    m = s[f"{metric}_median"]
    return f"{fmt_num(m)} ({fmt_num(s[f'{metric}_min'])} - {fmt_num(s[f'{metric}_max'])})" if m is not None else "-"


def _setting(s: dict, by: str) -> str:
    return f"{s[by]:g}" if isinstance(s[by], float) else str(s[by])


def convergence_table(summary: Sequence[dict], by: str, metric: str) -> str:
    """For a task with a convergence tolerance (Labs A, B): how many members reached it, when."""
    rows = []
    for s in summary:
        if s["epochs_mean"] is None:
            epochs = "-"
        else:
            epochs = (f"{s['epochs_mean']:.0f} +- {s['epochs_std']:.0f} "
                      f"({s['epochs_min']}-{s['epochs_max']})")
        rows.append([_setting(s, by), f"{s['converged']}/{s['members']}", epochs, _median_range(s, metric),
                     str(s["diverged"])])
    return format_table([by, "converged", "epochs to converge: mean +- std (min-max)",
                         f"{metric}: median (min - max)", "diverged"], rows)


def metric_table(summary: Sequence[dict], by: str, metric: str) -> str:
    """For a task that trains a fixed budget (no tolerance): the final metric over seeds. A member
    whose own stopping rule fired (early stopping) is counted as stopped early, when any did."""
    early = any(s["converged"] for s in summary)
    rows = []
    for s in summary:
        rows.append([_setting(s, by), str(s["members"]), mean_std(s[metric]), _median_range(s, metric),
                     *([f"{s['converged']}/{s['members']}"] if early else []), str(s["diverged"])])
    return format_table([by, "seeds", f"{metric}: mean +- std", "median (min - max)",
                         *(["stopped early"] if early else []), "diverged"], rows)


def check_writable(out: str | os.PathLike) -> Path:
    """Create ``out`` and prove a file can be written there, before any training starts."""
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    probe = path / ".jaxlabs-write-test"
    probe.write_text("ok")
    probe.unlink()
    return path


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _clean(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v


def write_records(out: Path, records: Sequence[dict], meta: dict) -> None:
    """``results.json`` (meta + one object per member; NaN written as null) and ``results.csv``."""
    out = Path(out)
    rows = [{k: _clean(v) for k, v in r.items()} for r in records]
    with open(out / "results.json", "w") as f:
        json.dump({**meta, "members": rows}, f, indent=1, default=_json_default)
    columns: list[str] = []
    for r in records:
        columns += [k for k in r if k not in columns]
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        for r in records:
            w.writerow({k: ("" if r.get(k) is None else r[k]) for k in columns})


def write_curves(out: Path, result: SweepResult) -> None:
    """``curves.npz``: per-epoch curves (members, epochs) in results.csv's row order, NaN-padded
    across static groups; per-member array outputs (e.g. ``val_pred``) under ``final_<name>``."""
    groups = result.groups
    epochs = max(g.epochs_run for g in groups)
    arrays: dict[str, np.ndarray] = {"seed": np.concatenate([g.seeds for g in groups])}
    for name in groups[0].hparams:
        arrays[name] = np.concatenate([g.hparams[name] for g in groups])
    for name in groups[0].curves:
        padded = []
        for g in groups:
            c = g.curves[name].astype(np.float32)
            padded.append(np.pad(c, ((0, 0), (0, epochs - c.shape[1])), constant_values=np.nan))
        arrays[name] = np.concatenate(padded)
    for name, v in groups[0].final.items():
        if np.ndim(v) > 1 and all(np.shape(g.final[name])[1:] == np.shape(v)[1:] for g in groups):
            arrays[f"final_{name}"] = np.concatenate([g.final[name] for g in groups])
    arrays["status"] = np.concatenate([g.final["status"] for g in groups])
    arrays["stop_epoch"] = np.concatenate([g.final["stop_epoch"] for g in groups])
    np.savez_compressed(Path(out) / "curves.npz", **arrays)
