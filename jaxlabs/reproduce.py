"""Run a study and write its report: ``report.md``, ``results.csv`` and the figures."""
from __future__ import annotations

import json

import math
import re
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

from jaxlabs import plots
from jaxlabs.results import fmt_num, format_table, mean_std, write_records
from jaxlabs.catalogue import STUDIES
from jaxlabs.studies import SEED_TEST_LEVEL, Claim, ClaimVerdict, MetricDirection, Original, Outcome, Study
from jaxlabs.sweep import GroupResult, SweepResult, run_group
from jaxlabs.tasks import get_task

QUICK_CAPPED = ("n", "epochs", "synthetic")  # --quick caps these even where a setting varies them


def metric_direction(study: Study, task) -> MetricDirection:
    """Whether larger is better for a metric of ``study``, as its task declares; a metric read off
    a curve (``study.curve_points``) has its curve's direction."""
    return lambda metric: task.higher_is_better(study.curve_points.get(metric, (metric,))[0])


def setting_static(study: Study, task, setting, quick: bool, data_dir: str | None) -> dict:
    static = {**study.static, **setting.static}
    if quick:
        for k, v in study.quick.items():
            static[k] = min(static[k], v) if k in setting.static and k in QUICK_CAPPED else (
                static[k] if k in setting.static else v)
    if data_dir is not None and "data_dir" in task.static_defaults:
        static["data_dir"] = data_dir
    return task.resolve_static(**static)


def run_study(study: Study, seeds: Sequence[int], out: Path, *, quick: bool = False,
              data_dir: str | None = None, progress: bool = True, command: str = "") -> dict:
    """Train every setting x seed (one vmapped program per static configuration), write the
    report and return ``{"study", "verdict", "wall_s", "out"}``."""
    task = get_task(study.task)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    # --quick: the first and last settings only (each static setting is a compile, which dominates)
    run_settings = study.settings if not quick or len(study.settings) <= 2 else (study.settings[0], study.settings[-1])
    by_static: dict[tuple, list] = defaultdict(list)
    statics = {}
    for s in run_settings:
        static = setting_static(study, task, s, quick, data_dir)
        key = tuple(sorted((k, repr(v)) for k, v in static.items()))
        statics[key] = static
        by_static[key].append(s)
    groups: list[tuple[GroupResult, list[str]]] = []
    for key, settings in by_static.items():
        trainer, data = task.build(statics[key])
        member_seeds, labels, hp = [], [], defaultdict(list)
        for s in settings:
            numbers = {**task.traced_defaults, **study.traced, **s.traced}
            for seed in seeds:
                member_seeds.append(seed)
                labels.append(s.label)
                for k, v in numbers.items():
                    hp[k].append(float(v))
        desc = f"{study.key} [{', '.join(s.label for s in settings)}] ({len(member_seeds)} members)"
        g = run_group(trainer, data, member_seeds, dict(hp), static=statics[key], labels=labels, chunk=task.chunk,
                      progress=progress, desc=desc)
        groups.append((g, labels))
    wall = round(time.perf_counter() - t0, 2)  # as results.json keeps it: a rewritten report reads the same

    records = []
    for g, labels in groups:
        for i, (row, label) in enumerate(zip(SweepResult(task.name, [g]).records(), labels)):
            # the monitored loss at the member's last epoch: the report's "final train loss"
            row = {"study": study.key, "setting": label, **row,
                   "final_loss": float(g.curves["loss"][i, -1]),
                   "program_s": round(g.compile_s + g.run_s, 2)}  # this setting's program, compile included
            for name, (curve, idx) in study.curve_points.items():
                c = g.curves[curve]
                row[name] = float(c[i, idx]) if idx < c.shape[1] else None
            records.append(row)
    meta = {"study": study.key, "title": study.title, "command": command, "seeds": list(seeds), "quick": quick,
            "wall_s": round(wall, 2), "verdict": None}
    write_records(out, records, meta)  # saved before the figures and the report: nothing trained is lost
    metrics = study.summary_metrics()
    summary = {s.label: summarize_setting([r for r in records if r["setting"] == s.label], metrics)
               for s in run_settings}
    for g, labels in groups:  # median curves, for claims about a curve's shape
        for s in study.settings:
            mask = np.asarray(labels) == s.label
            if mask.any():
                with np.errstate(all="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: diverged members
                    summary[s.label]["curves"] = {k: np.nanmedian(v[mask], 0) for k, v in g.curves.items()}
    figures = draw_figures(study, task, groups, out)
    verdict, lines = write_report(study, task, summary, figures, seeds, wall, quick, out, command)
    write_records(out, records, {**meta, "verdict": verdict})
    return {"study": study.key, "title": study.title, "verdict": verdict, "wall_s": wall, "out": str(out),
            "quick": quick, "lines": lines}


def summarize_setting(rows: list[dict], metrics: Sequence[str]) -> dict:
    out = {"members": len(rows), "converged": sum(r["status"] == "converged" for r in rows),
           "diverged": sum(r["status"] == "diverged" for r in rows)}
    for m in metrics:
        if m == "converged_epoch":
            vals = [r[m] for r in rows if r["status"] == "converged"]
        else:
            vals = [r.get(m) for r in rows if r["status"] != "diverged"]
        v = np.asarray([x for x in vals if x is not None and math.isfinite(x)], np.float64)
        out[m] = v
        out[f"{m}_median"] = float(np.median(v)) if v.size else None
    return out


def judge(o: Original, s: dict, higher_is_better: bool) -> str:
    """One original number against the seeds of its setting (``higher_is_better``: its metric's
    direction, for the luck of a value outside the spread)."""
    n = s["members"]
    if o.kind == "diverged":
        return (f"agrees: {s['diverged']}/{n} seeds diverged" if s["diverged"] else
                f"disagrees: no seed diverged (0/{n})")
    if o.kind == "never":
        k = s["converged"]
        return f"agrees: 0/{n} seeds converged" if k == 0 else f"disagrees: {k}/{n} seeds converged"
    if o.kind == "at_least":
        k = int((s[o.metric] >= o.value).sum())
        word = "agrees" if 2 * k >= n else "disagrees"
        return f"{word}: {k}/{n} seeds reached {o.value:g} ({mean_std(s[o.metric])})"
    if o.kind == "within":
        k = int((s["converged_epoch"] <= o.value).sum())
        word = "agrees" if 2 * k >= n else "disagrees"
        return f"{word}: {k}/{n} seeds converged within {o.value:g} epochs"
    v = s[o.metric]
    if not v.size:
        what = "converged within the budget" if o.metric == "converged_epoch" else "gave a value"
        return f"outside: no seed {what}"
    lo, hi = float(v.min()), float(v.max())
    if lo <= o.value <= hi:
        return f"within the seeds' spread ({fmt_num(lo)} - {fmt_num(hi)})"
    orig_better = (o.value > hi) if higher_is_better else (o.value < lo)
    luck = "a lucky run" if orig_better else "an unlucky run"
    side = "better" if orig_better else "worse"
    return f"outside: {side} than every seed ({fmt_num(lo)} - {fmt_num(hi)}): {luck}, or a setup difference"


def rewrite_report(study: Study, out: Path) -> dict:
    """Rewrite ``out/report.md`` and the verdict in ``out/results.json`` from the members that
    ``results.json`` saved, without training (after a change to how reports judge). The figures
    are the ones already in the folder. Returns what :func:`run_study` returns."""
    out = Path(out)
    path = out / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"no saved results for {study.key} in {out} (no results.json): run the study first")
    try:
        meta = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON ({e}): run the study again") from None
    if not isinstance(meta, dict) or meta.get("study") != study.key or not isinstance(meta.get("members"), list):
        raise ValueError(f"{path} does not hold the results of {study.key}: run the study again")
    records = meta["members"]
    task = get_task(study.task)
    ran = {r.get("setting") for r in records}
    metrics = study.summary_metrics()
    summary = {s.label: summarize_setting([r for r in records if r.get("setting") == s.label], metrics)
               for s in study.settings if s.label in ran}
    old_report = out / "report.md"
    figures = re.findall(r"^!\[([^\]]+)\]", old_report.read_text(), re.MULTILINE) if old_report.is_file() else \
        sorted(f.name for f in out.glob("*.png"))
    figures = [f for f in figures if (out / f).is_file()] + (["per_class.md"] if (out / "per_class.md").is_file() else [])
    wall = float(meta.get("wall_s") or float("nan"))
    verdict, lines = write_report(study, task, summary, figures, meta.get("seeds", []), wall,
                                  bool(meta.get("quick")), out, meta.get("command", ""))
    path.write_text(json.dumps({**meta, "verdict": verdict}, indent=1))
    return {"study": study.key, "title": study.title, "verdict": verdict, "wall_s": wall, "out": str(out),
            "quick": bool(meta.get("quick")), "lines": lines}


def claim_line(v: ClaimVerdict, claim: Claim) -> str:
    """The report's line for one verdict: the outcome, the claim, the test's numbers."""
    lean = {True: "agree", False: "disagree", None: "are equal"}[v.leaning]
    head = v.outcome.value
    if v.outcome in (Outcome.NOISE, Outcome.MEDIANS_ONLY):
        head += f" (the {claim.estimate} {lean})"
    if v.outcome in (Outcome.NO_DATA, Outcome.MEDIANS_ONLY):
        return f"- {head}: {v.text} ({v.why})"
    p = f"p = {v.p:.2g}" if v.outcome != Outcome.FAILS else f"p = {v.p_opposite:.2g} for the opposite"
    return f"- {head}: {v.text} ({p}; {v.share:.0%} of seed pairs agree)"


def claims_verdict(verdicts: list[ClaimVerdict]) -> str:
    """"k/n of its conclusions hold (...)": medians-only and undecided claims never count as holding."""
    count = {o: sum(v.outcome is o for v in verdicts) for o in Outcome}
    notes = [f"{count[o]} {o.value}" for o in (Outcome.NOISE, Outcome.MEDIANS_ONLY, Outcome.NO_DATA) if count[o]]
    return f"{count[Outcome.HOLDS]}/{len(verdicts)} of its conclusions hold" + (f" ({'; '.join(notes)})" if notes else "")


def write_report(study: Study, task, summary: dict, figures: list[str], seeds, wall: float, quick: bool,
                 out: Path, command: str) -> tuple[str, list[str]]:
    tolerance_study = "converged_epoch" in study.metrics  # otherwise "converged" means nothing
    headers = ["setting", *(["converged"] if tolerance_study else []), "diverged"]
    names = {"converged_epoch": "epochs to converge"}
    headers += [f"{names.get(m, m)} (mean +- std)" for m in study.metrics]
    headers += ["original (report)", "verdict"]
    rows, n_orig, n_ok = [], 0, 0
    direction = metric_direction(study, task)
    for s in study.settings:
        if s.label not in summary:  # --quick ran two settings
            rows.append([s.label] + ["not run (--quick)"] + [""] * (len(headers) - 4)
                        + ["; ".join(o.text for o in s.originals) or "-", "-"])
            continue
        sm = summary[s.label]
        base = [s.label, *([f"{sm['converged']}/{sm['members']}"] if tolerance_study else []),
                f"{sm['diverged']}/{sm['members']}"]
        base += [mean_std(sm[m]) for m in study.metrics]
        if not s.originals:
            rows.append(base + ["-", "-"])
        for i, o in enumerate(s.originals):
            verdict = judge(o, sm, direction(o.metric))
            n_orig += 1
            n_ok += verdict.startswith(("within", "agrees"))
            label = f"{names.get(o.metric, o.metric)}: {o.text}" if o.metric else o.text
            rows.append((base if i == 0 else [""] * len(base)) + [label, verdict])
    claims = [c.judge(summary, direction) for c in study.claims]
    parts = []
    if n_orig:
        parts.append(f"{n_ok}/{n_orig} of the report's numbers reproduced within the seeds' spread")
    if claims:
        parts.append(claims_verdict(claims))
    verdict = "; ".join(parts) or "no numbers in the report to compare"
    lines = [
        f"# {study.key}: {study.title}", "",
        f"Lab {study.lab}, task `{task.name}`. {len(study.settings)} settings x {len(seeds)} seeds = "
        f"{len(study.settings) * len(seeds)} members; vmapped axes: {', '.join(study.vmapped_axes())}; "
        f"static axes (one program each): {', '.join(study.static_axes()) or 'none'}. "
        f"Wall time {wall:.1f} s{' (--quick: a tiny version, not the real study)' if quick else ''}.", "",
        f"Command: `{command}`" if command else "", "",
        f"**Verdict:** {verdict}.", "",
    ]
    if study.note:
        lines += [study.note, ""]
    lines += ["Each cell is the mean +- std over seeds (epochs: over the seeds that converged). "
              "\"Within the seeds' spread\" means the report's single value lies between the smallest "
              "and largest seed.", "", format_table(headers, rows), ""]
    if claims:
        lines += ["## The report's conclusions", ""]
        tests = dict.fromkeys(c.test for c in study.claims)
        lines += [f"Each conclusion is decided over the seeds at the {SEED_TEST_LEVEL:.0%} level: "
                  + "; ".join(tests) + ". It holds when the test rejects in the claimed direction and does "
                  "not hold when it rejects in the opposite one; otherwise it is within the seeds' noise, "
                  "whichever way the medians fall. A conclusion the seeds cannot test is marked \"medians "
                  "only\" and never counts as holding.", ""]
        lines += [claim_line(v, c) for v, c in zip(claims, study.claims)]
        lines.append("")
    per_class = [f for f in figures if f.startswith("per_class")]
    if figures:
        lines += ["## Figures", ""] + [f"![{f}]({f})" for f in figures if not f.endswith(".md")] + [""]
    for f in per_class:
        lines += [(out / f).read_text(), ""]
    (out / "report.md").write_text("\n".join(lines))
    return verdict, lines


def _pad(curves: list[np.ndarray]) -> np.ndarray:
    n = max(c.shape[1] for c in curves)
    return np.concatenate([np.pad(c.astype(np.float64), ((0, 0), (0, n - c.shape[1])), constant_values=np.nan)
                           for c in curves])


def draw_figures(study: Study, task, groups, out: Path) -> list[str]:
    names: list[str] = []
    labels = np.asarray([lab for _, ls in groups for lab in ls])
    order = [s.label for s in study.settings if s.label in set(labels.tolist())]
    curve_names = list(groups[0][0].curves)
    for cname in curve_names:
        if cname != "loss" and not ("acc" in cname and "accuracy" in study.figures):
            continue
        curves = _pad([g.curves[cname] for g, _ in groups])
        name = f"{cname}_curves.png"
        plots.curves_band(out / name, curves, labels, "setting", ylabel=cname, logy=("acc" not in cname),
                          title=f"{study.key}: {cname}, median and min-max over seeds", order=order)
        names.append(name)
    finals = defaultdict(list)
    for g, ls in groups:
        for k, v in g.final.items():
            finals[k].append(np.asarray(v))
    finals = {k: np.concatenate(v) if all(a.shape[1:] == v[0].shape[1:] for a in v) else None
              for k, v in finals.items()}
    if "fit" in study.figures and finals.get("grid_pred") is not None:
        by_target = defaultdict(list)
        for s in study.settings:
            g = next((g for g, ls in groups if s.label in ls), None)
            if g is None:
                continue
            by_target[(g.static.get("target"), g.static.get("x_range"))].append((s.label, g.static))
        for i, (_, items) in enumerate(by_target.items()):
            fn, label, (lo, hi) = task.resolve_target(items[0][1])
            x = np.linspace(lo, hi, finals["grid_pred"].shape[1])
            fits = [(lab, finals["grid_pred"][labels == lab]) for lab, _ in items]
            name = f"fitted_curves{'' if len(by_target) == 1 else f'_{i}'}.png"
            plots.fitted_curves(out / name, x, fn(x), fits, title=f"{study.key}: {label}")
            names.append(name)
    if "true_vs_pred" in study.figures and finals.get("val_pred") is not None:
        panels = []
        score = np.where(np.isfinite(finals["val_mse"]), finals["val_mse"], np.inf)
        for lab in order:
            idx = np.flatnonzero(labels == lab)
            b = idx[np.argmin(score[idx])]
            panels.append((f"{lab}: val MSE {finals['val_mse'][b]:.3g}", finals["val_true"][b], finals["val_pred"][b]))
        plots.true_vs_pred(out / "val_true_vs_pred.png", panels, title=f"{study.key}: best seed per setting")
        names.append("val_true_vs_pred.png")
    conf = finals.get("confusion")
    if "confusion" in study.figures and conf is not None:
        mats = [(lab, conf[labels == lab].sum(0)) for lab in order]
        plots.confusion_heatmaps(out / "confusion.png", mats, title=f"{study.key}: test confusion, summed over seeds")
        names.append("confusion.png")
        pc = finals.get("per_class_acc")
        if pc is not None:
            rows = [[lab] + [f"{pc[labels == lab][:, c].mean():.3f}" for c in range(pc.shape[1])] for lab in order]
            table = format_table(["setting", *[str(c) for c in range(pc.shape[1])]], rows)
            (out / "per_class.md").write_text("## Per-class test accuracy (mean over seeds)\n\n" + table)
            names.append("per_class.md")
    return names


def _report_verdict(results_json: Path) -> str | None:
    """The verdict line of the ``report.md`` beside ``results_json``, for folders written before
    ``results.json`` kept it; None where the report is missing or older than the results (an
    interrupted run's folder: its report belongs to a run before)."""
    report = results_json.with_name("report.md")
    try:
        if report.stat().st_mtime < results_json.stat().st_mtime:
            return None
        text = report.read_text()
    except OSError:
        return None
    m = re.search(r"^\*\*Verdict:\*\* (.+?)\.?$", text, re.MULTILINE)
    return m.group(1) if m else None


def write_index(results: list[dict], skipped: list[tuple[str, str]], out: Path) -> None:
    """``index.md`` in ``out``: a line per study with its verdict, linking its report. Studies run
    earlier into the same folder (their ``results.json``) are listed too, marked with their command,
    so running one lab after another builds one index."""
    out = Path(out)
    order = {s.key: i for i, s in enumerate(STUDIES)}
    rows = {r["study"]: {**r, "earlier": None} for r in results}
    for path in sorted(out.glob("*/results.json")):
        if path.parent.name in rows:
            continue
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # not a study folder of ours
        if not isinstance(meta, dict) or meta.get("study") != path.parent.name:
            continue
        rows[meta["study"]] = {"study": meta["study"], "title": meta.get("title", ""), "out": str(path.parent),
                               "verdict": meta.get("verdict") or _report_verdict(path) or "no verdict recorded",
                               "wall_s": meta.get("wall_s", float("nan")), "quick": meta.get("quick", False),
                               "earlier": meta.get("command") or "an earlier run"}
    lines = ["# jaxlabs: the lab reports, regenerated", "",
             "| study | title | verdict | wall time | run by |", "|---|---|---|---|---|"]
    for key in sorted(rows, key=lambda k: (order.get(k, len(order)), k)):
        r = rows[key]
        rel = Path(r["out"]).relative_to(out) if Path(r["out"]).is_relative_to(out) else Path(r["out"])
        verdict = f"{r['verdict']} (--quick: not a result)" if r.get("quick") else r["verdict"]
        run_by = f"earlier: `{r['earlier']}`" if r["earlier"] else "this run"
        lines.append(f"| [{key}]({rel}/report.md) | {r['title']} | {verdict} | {r['wall_s']:.0f} s | {run_by} |")
    if skipped:
        lines += ["", "## Skipped", ""] + [f"- {k}: {why}" for k, why in skipped]
    (out / "index.md").write_text("\n".join(lines) + "\n")
