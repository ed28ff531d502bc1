"""Records (one plain row per member) -> summary tables, CSV, JSON and curve archives."""
from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from jaxlabs import atomic
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


def summarize_setting(rows: Sequence[dict], metrics: Sequence[str]) -> dict:
    """One setting's members: how many, converged, diverged, and each metric's per-seed values
    (``converged_epoch`` over the seeds that converged; any other over the seeds that did not
    diverge) with their median."""
    out = {"members": len(rows), "converged": sum(r["status"] == "converged" for r in rows),
           "diverged": sum(r["status"] == "diverged" for r in rows)}
    for m in metrics:
        if m == "converged_epoch":
            vals = [r[m] for r in rows if r["status"] == "converged"]
        else:
            vals = [r.get(m) for r in rows if r["status"] != "diverged"]
        v = _finite(vals)
        out[m] = v
        out[f"{m}_median"] = float(np.median(v)) if v.size else None
    return out


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain aligned text table (also valid Markdown)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
                      *(line(r) for r in rows)])


def check_writable(out: str | os.PathLike) -> Path:
    """Create ``out`` and prove a file can be written there, before any training starts."""
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    probe = path / ".jaxlabs-write-test"
    try:
        probe.write_text("ok")
    finally:  # a full disk can fail the write after creating the file
        probe.unlink(missing_ok=True)
    return path


def _clean(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v


def write_records(out: Path, records: Sequence[dict], meta: dict) -> None:
    """``results.json`` (meta + one object per member; NaN written as null) and ``results.csv``."""
    out = Path(out)
    rows = [{k: _clean(v) for k, v in r.items()} for r in records]
    atomic.write_json(out / "results.json", {**meta, "members": rows})
    columns: list[str] = []
    for r in records:
        columns += [k for k in r if k not in columns]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\r\n")
    w.writeheader()
    for r in records:
        w.writerow({k: ("" if r.get(k) is None else r[k]) for k in columns})
    atomic.write_text(out / "results.csv", buf.getvalue())


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
    atomic.write_npz(Path(out) / "curves.npz", arrays, compressed=True)
