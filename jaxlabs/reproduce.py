"""The one runner: a study's grid trained, its records saved, its figures drawn, its report written.

Both commands come here. ``experiments.reproduce`` runs the reports' studies (the catalogue);
``experiments.lr_sweep`` runs an ad-hoc study, one setting per learning rate (:func:`sweep_study`).
The members go to :func:`jaxlabs.sweep.run_grid` (one program per static configuration); the
records, summaries, table, figures and ``report.md`` are the same for both.

Training and writing are two steps: :func:`study_outcome` gathers what a trained grid gives (a
:class:`StudyOutcome`: the records, summaries, timing), :func:`write_study` writes its files. The
library's results (:mod:`jaxlabs.outcomes`) write the same files from the same outcome without
training again.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import jax
import numpy as np

from jaxlabs.catalogue import STUDIES
from jaxlabs.checkpoint import CHECKPOINT_DIR, code_version
from jaxlabs.store import RunStore
from jaxlabs.checkpoint import remove as remove_checkpoint
from jaxlabs.plots import study_figures
from jaxlabs.html import render
from jaxlabs.report import write_report
from jaxlabs import atomic
from jaxlabs.results import summarize_setting, write_curves, write_records
from jaxlabs.studies import Setting, Study
from jaxlabs.sweep import EngineOptions, Member, SweepResult, run_grid, static_groups
from jaxlabs.tensorboard import TensorBoardLog
from jaxlabs.tasks import get_task

QUICK_CAPPED = ("n", "epochs", "synthetic")  # --quick caps these even where a setting varies them


def sweep_study(task, static: dict, lrs: Sequence[float], traced: dict) -> Study:
    """``lr_sweep``'s grid as a study: one setting per learning rate, everything else fixed.
    Convergence is reported when the members have a tolerance to reach."""
    converging = traced.get("tolerance", 0) > 0
    return Study(
        f"{task.name}-lr-sweep", task.lab, f"Learning rates: {task.description}", task.name,
        settings=tuple(Setting(f"lr={lr:g}", traced={"lr": float(lr)}) for lr in lrs),
        metrics=(*(("converged_epoch",) if converging else ()), task.primary_metric),
        static=dict(static), traced={k: v for k, v in traced.items() if k != "lr"}, figures=task.figures)


def setting_static(study: Study, task, setting, quick: bool, data_dir: str | None) -> dict:
    static = {**study.static, **setting.static}
    if quick:
        for k, v in study.quick.items():
            static[k] = min(static[k], v) if k in setting.static and k in QUICK_CAPPED else (
                static[k] if k in setting.static else v)
    if data_dir is not None and "data_dir" in task.static_defaults:
        static["data_dir"] = data_dir
    return task.resolve_static(**static)


def study_members(study: Study, task, seeds: Sequence[int], settings: Sequence[Setting], quick: bool,
                  data_dir: str | None) -> list[Member]:
    """Every setting x seed (settings vary slowest): static options resolved, traced numbers
    filled with the task's defaults."""
    members = []
    for s in settings:
        static = setting_static(study, task, s, quick, data_dir)
        numbers = task.hparams(**{**study.traced, **s.traced})
        members += [Member(s.label, static, numbers, seed) for seed in seeds]
    return members


def study_records(study: Study, result: SweepResult) -> list[dict]:
    """The engine's rows, each with its study, the monitored loss at the member's last epoch (the
    reports' "final train loss"), its program's time and the study's curve points."""
    rows, engine_rows = [], iter(result.records())
    for g in result.groups:
        for j in range(g.members):
            row = {"study": study.key, **next(engine_rows),
                   "final_loss": float(g.curves["loss"][j, -1]),
                   "program_s": round(g.compile_s + g.run_s, 2)}  # this setting's program, compile included
            for name, (curve, idx) in study.curve_points.items():
                c = g.curves[curve]
                row[name] = float(c[j, idx]) if idx < c.shape[1] else None
            rows.append(row)
    return rows


def study_config(study: Study, task, seeds: Sequence[int], members: Sequence[Member], quick: bool,
                 engine: EngineOptions) -> dict:
    """What a checkpoint must match to resume: every member's numbers, the engine, the code."""
    return {"study": study.key, "task": task.name, "seeds": list(seeds), "quick": quick,
            "settings": {m.label: {"static": m.static, "traced": m.hparams} for m in members},
            "engine": {**dataclasses.asdict(engine), "plan": "auto" if engine.plan is None else str(engine.plan)},
            "code": code_version()}


def run_study(study: Study, seeds: Sequence[int], out: Path, *, quick: bool = False,
              data_dir: str | None = None, progress: bool = True, command: str = "",
              engine: EngineOptions = EngineOptions(), checkpoint_every: float = 0.0, fresh: bool = False,
              settings: Sequence[str] | None = None, tensorboard: Path | None = None, task=None) -> "StudyReport":
    """Train every setting x seed, save the records (``results.json``/``.csv``, ``curves.npz``)
    before anything else, then the figures and ``report.md``. Returns its :class:`StudyReport`.

    ``checkpoint_every`` > 0: checkpoint the training in ``out/.checkpoint`` that often (seconds),
    and resume from a checkpoint already there (:mod:`jaxlabs.checkpoint`; a study it marks finished
    is not run again); one of another configuration is a CheckpointMismatch. ``fresh``: discard
    any checkpoint first. ``settings``: the labels of the settings to train (default: all; --quick
    alone trains the first and last); the report says which did not run. ``tensorboard``: write
    TensorBoard logs as the members train, one run per member in ``tensorboard/<study>/``
    (:mod:`jaxlabs.tensorboard`; a fresh run replaces that folder, a resumed one appends to it).
    ``task``: the task object to run (default: the registered task ``study.task`` names; a
    model_task of one's own is not registered)."""
    task = task if task is not None else get_task(study.task)
    out = Path(out)
    if jax.process_index() == 0:
        out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    run_settings = chosen_settings(study, settings, quick)
    members = study_members(study, task, seeds, run_settings, quick, data_dir)
    if fresh:
        remove_checkpoint(out / CHECKPOINT_DIR)
    checkpoint, note = None, None
    if checkpoint_every > 0:  # on several processes, each keeps its own members' shards
        checkpoint = RunStore(out / CHECKPOINT_DIR, study_config(study, task, seeds, members, quick, engine),
                              checkpoint_every, study.key)
        note = checkpoint.open()
        if note and jax.process_index() == 0:
            print(note)
        if checkpoint.finished and jax.process_index() != 0:  # process 0 has the results
            return StudyReport(study.key, study.title, None, 0.0, str(out), quick)
        if checkpoint.finished:
            return dataclasses.replace(rewrite_report(study, out),
                                       timing=json.loads((out / "results.json").read_text())["timing"])
    observer = None
    if tensorboard is not None and jax.process_index() == 0:
        logs = Path(tensorboard) / study.key
        if checkpoint is None or note is None:  # not resuming: an earlier run's logs go, as its results do
            shutil.rmtree(logs, ignore_errors=True)
        observer = TensorBoardLog(logs, task.higher_is_better)
    try:
        result = run_grid(task, members, progress=progress, name=study.key, engine=engine, store=checkpoint,
                          observer=observer)
    finally:
        if checkpoint is not None:
            checkpoint.close()
        if observer is not None:
            observer.close()
    wall = round(time.perf_counter() - t0, 2)  # as results.json keeps it: a rewritten report reads the same
    outcome = study_outcome(study, task, seeds, run_settings, members, result, wall, quick, command)
    if jax.process_index() != 0:  # several processes trained together: process 0 writes
        return StudyReport(study.key, study.title, None, wall, str(out), quick, timing=outcome.timing)
    written = write_study(outcome, out)
    if checkpoint is not None:
        checkpoint.finish()
    return written


@dataclass(frozen=True)
class StudyReport:
    """A study's run as the commands print it: its verdict, where its files are, its table and
    report lines, its figures and how each static group ran (``timing``, as ``results.json``
    keeps it). Processes other than 0 get one without a verdict, table or figures."""

    study: str
    title: str
    verdict: Optional[str]
    wall_s: float
    out: str
    quick: bool = False
    lines: list = field(default_factory=list)
    table: str = ""
    figures: list = field(default_factory=list)
    timing: list = field(default_factory=list)


@dataclass
class StudyOutcome:
    """What training a study gave, before anything is written: the engine's result, the members
    (in the grid's order), the records (one row per member), the per-setting summaries (with
    median curves) and the metadata ``results.json`` keeps."""

    study: Study
    task: object
    seeds: list
    settings: tuple  # the settings that ran
    members: list  # jaxlabs.sweep.Member, grid order
    result: SweepResult
    records: list
    summary: dict
    meta: dict

    @property
    def timing(self) -> list:
        return self.meta["timing"]


def study_outcome(study: Study, task, seeds: Sequence[int], run_settings: Sequence[Setting],
                  members: Sequence[Member], result: SweepResult, wall: float, quick: bool = False,
                  command: str = "") -> StudyOutcome:
    """The records, summaries and metadata of a trained grid (nothing written)."""
    timing = [{"settings": list(dict.fromkeys(g.labels)), "members": g.members, "epochs_run": g.epochs_run,
               "compile_s": round(g.compile_s, 3), "run_s": round(g.run_s, 3), "plan": g.plan,
               "programs": g.programs,  # compile_s's compiles: loaded from the cache or compiled
               "plan_source": g.plan_source, "probe_s": g.probe, "waves": g.waves, "devices": g.devices}
              for g in result.groups]
    records = study_records(study, result)
    data = list(dict.fromkeys(g.data for g in result.groups if g.data))
    meta = {"study": study.key, "title": study.title, "task": task.name, "lab": study.lab, "command": command,
            "data": data, "seeds": list(seeds), "quick": quick, "wall_s": wall, "timing": timing, "verdict": None}
    summary = {s.label: summarize_setting([r for r in records if r["setting"] == s.label], study.summary_metrics())
               for s in run_settings}
    for g in result.groups:  # median curves, for claims about a curve's shape
        labels = np.asarray(g.labels)
        for label in dict.fromkeys(g.labels):
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: diverged members
                summary[label]["curves"] = {k: np.nanmedian(v[labels == label], 0) for k, v in g.curves.items()}
    return StudyOutcome(study, task, list(seeds), tuple(run_settings), list(members), result, records, summary, meta)


def write_study(outcome: StudyOutcome, out: Path, tensorboard: Path | None = None) -> "StudyReport":
    """Every file of a trained study into ``out``: ``results.json``/``.csv``, ``curves.npz``, the
    figures, ``report.md``/``.html``; with ``tensorboard``, one TensorBoard run per member in
    ``tensorboard/<study>/`` (replacing that folder) from the saved curves. Returns what
    :func:`run_study` returns."""
    study, task, result, meta = outcome.study, outcome.task, outcome.result, outcome.meta
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # every file is written aside and moved into ``out`` at the end: a full disk leaves the earlier
    # run's files as they were, and a failure while drawing still keeps the records
    staging = Path(tempfile.mkdtemp(prefix=".writing-", dir=out))
    try:
        write_records(staging, outcome.records, meta)  # first: nothing trained is lost
        write_curves(staging, result)
        figures = study_figures(study, task, result, staging)
        verdict, lines, table = write_report(study, task, outcome.summary, figures, outcome.seeds, meta["wall_s"],
                                             meta["quick"], staging, meta["command"], meta["data"],
                                             index=_index_link(study), timing=outcome.timing)
        write_records(staging, outcome.records, {**meta, "verdict": verdict})
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    except BaseException:
        publish(staging, out)
        raise
    publish(staging, out)
    if tensorboard is not None:
        write_tensorboard(outcome, Path(tensorboard) / study.key)
    return StudyReport(study.key, study.title, verdict, meta["wall_s"], str(out), meta["quick"], lines, table, figures,
                       outcome.timing)


def write_tensorboard(outcome: StudyOutcome, logs: Path) -> None:
    """The TensorBoard runs a live ``--tensorboard`` run writes, from a finished outcome's curves."""
    shutil.rmtree(logs, ignore_errors=True)
    board = TensorBoardLog(logs, outcome.task.higher_is_better)
    try:
        for g, (group, saved) in enumerate(zip(static_groups(outcome.members), outcome.result.groups)):
            board.group_done(g, group, saved)
    finally:
        board.close()


def publish(staging: Path, out: Path) -> None:
    """Move every file written in ``staging`` into ``out`` (renames: no disk space needed)."""
    for f in sorted(staging.iterdir()):
        os.replace(f, out / f.name)
    staging.rmdir()


def chosen_settings(study: Study, labels: Sequence[str] | None, quick: bool = False) -> tuple:
    """The settings of ``study`` named by ``labels`` (in the study's order), or, without labels,
    every setting (--quick: the first and last only, as each static setting is a compile, which
    dominates). An unknown label is a ValueError naming the study's settings."""
    if labels:
        known = [s.label for s in study.settings]
        unknown = [label for label in labels if label not in known]
        if unknown:
            raise ValueError(f"{study.key} has no setting {unknown[0]!r}; its settings are "
                             + ", ".join(repr(k) for k in known))
        return tuple(s for s in study.settings if s.label in labels)
    return study.settings if not quick or len(study.settings) <= 2 else (study.settings[0], study.settings[-1])


def rewrite_report(study: Study, out: Path) -> "StudyReport":
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
    verdict, lines, table = write_report(study, task, summary, figures, meta.get("seeds", []), wall,
                                         bool(meta.get("quick")), out, meta.get("command", ""),
                                         meta.get("data", []), index=_index_link(study),
                                         timing=meta.get("timing", []))
    atomic.write_json(path, {**meta, "verdict": verdict})
    return StudyReport(study.key, study.title, verdict, wall, str(out), bool(meta.get("quick")), lines, table, figures)


def _index_link(study: Study) -> str | None:
    """``../index.html`` for a study of the catalogue (``reproduce`` writes an index beside its
    folders), None for an ad-hoc study (``lr_sweep``: a folder of its own)."""
    return "../index.html" if any(s.key == study.key for s in STUDIES) else None


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
    """``index.md`` and ``index.html`` in ``out``: a line per study with its verdict, linking its
    report (the HTML page links the HTML reports). Studies run
    earlier into the same folder (their ``results.json``) are listed too, marked with their command,
    so running one lab after another builds one index."""
    out = Path(out)
    order = {s.key: i for i, s in enumerate(STUDIES)}
    rows = {r.study: {**dataclasses.asdict(r), "earlier": None} for r in results}
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
    if (out / "tensorboard").is_dir():
        lines += ["", f"Every member's curves and hyperparameters: `tensorboard --logdir {out / 'tensorboard'}` "
                  "(the HParams tab: one row per member)."]
    text = "\n".join(lines) + "\n"
    atomic.write_text(out / "index.md", text)
    atomic.write_text(out / "index.html", render(text, out, "jaxlabs: the lab reports, regenerated"))
