"""What ``jaxlabs.sweep`` and ``jaxlabs.search`` return: a trained study as an object.

Both results answer the same questions: :meth:`records` (one plain dict per member, the rows the
commands save), :meth:`table` (the Markdown table; Jupyter shows it as HTML), :meth:`best`,
:meth:`curves` (an array members x epochs), :meth:`figures` (the report's figures as matplotlib
figures), :meth:`to_pandas` (where pandas is installed) and :meth:`save`, which writes what the
command writes (report, records, curves, figures; TensorBoard logs for a sweep) from what was
trained, without training again.

This module is the one place the library reads the engine's results (a sweep's
:class:`jaxlabs.reproduce.StudyOutcome` over :class:`jaxlabs.sweep.SweepResult`, a search's
:class:`jaxlabs.search.run.SearchResult`): a change of their types changes this module only.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from jaxlabs.results import fmt_num, format_table


def _pad(curves: list[np.ndarray]) -> np.ndarray:
    """Groups' (members, epochs) curves as one (members, most epochs) array, NaN past a group's end."""
    n = max(c.shape[1] for c in curves)
    return np.concatenate([np.pad(c.astype(np.float64), ((0, 0), (0, n - c.shape[1])), constant_values=np.nan)
                           for c in curves])


def _html(table: str) -> str:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table").render(table)


def _as_figures(draw) -> dict:
    """``draw(folder) -> names`` run in a scratch folder; each PNG drawn as a matplotlib figure
    (name -> Figure), so a notebook shows the report's figures inline."""
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt

    folder = Path(tempfile.mkdtemp(prefix="jaxlabs-figures-"))
    try:
        figures = {}
        for name in draw(folder):
            if not name.endswith(".png"):
                continue
            image = mpimg.imread(folder / name)  # (height, width, 4)
            fig = plt.figure(figsize=(image.shape[1] / 100, image.shape[0] / 100), dpi=100)
            ax = fig.add_axes((0, 0, 1, 1))
            ax.imshow(image)
            ax.set_axis_off()
            figures[name] = fig
        return figures
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _pandas(rows: list[dict]):
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("to_pandas() needs pandas (pip install pandas); records() gives the same rows as dicts") \
            from None
    return pd.DataFrame(rows)


def _publish(write, out) -> Path:
    """``write(staging)`` into a folder beside ``out``'s files, then moved in (as the commands do)."""
    from jaxlabs.reproduce import publish

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".writing-", dir=out))
    try:
        write(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    publish(staging, out)
    return out


class _Outcome:
    def _repr_html_(self) -> str:
        return _html(self.table())

    def __repr__(self) -> str:
        return self.table()

    def to_pandas(self):
        """The records as a pandas DataFrame (pandas is not a dependency of jaxlabs)."""
        return _pandas(self.records())


class SweepOutcome(_Outcome):
    """A trained sweep: every member of its grid (settings x seeds)."""

    def __init__(self, outcome):
        self._o = outcome  # jaxlabs.reproduce.StudyOutcome
        self.task = outcome.task
        self.study = outcome.study

    @property
    def metric(self) -> str:
        """The task's primary metric (the table's last column, what :meth:`best` ranks)."""
        return self.task.primary_metric

    def records(self) -> list[dict]:
        """One dict per member (setting, every option, seed, status, final metrics), as
        ``results.json`` keeps them."""
        return [dict(r) for r in self._o.records]

    def table(self) -> str:
        """The table the command prints: a row per setting, each metric's mean +- std over seeds."""
        from jaxlabs.report import metric_direction, results_table

        return results_table(self.study, self._o.summary, metric_direction(self.study, self.task))[0]

    def best(self) -> dict:
        """The setting with the best mean of the primary metric over its seeds that did not diverge:
        its label, its options, the mean, std and seed count (NaN-free settings only)."""
        higher = self.task.higher_is_better(self.metric)
        scored = []
        for s in self._o.settings:
            values = self._o.summary[s.label].get(self.metric, np.zeros(0))
            if len(values):
                scored.append((float(np.mean(values)), s))
        if not scored:
            return {"setting": None, "metric": self.metric, "mean": None, "std": None, "seeds": 0}
        mean, s = (max if higher else min)(scored, key=lambda t: t[0])
        values = self._o.summary[s.label][self.metric]
        row = next(r for r in self._o.records if r["setting"] == s.label)
        options = {k: row[k] for k in (*self.task.static_defaults, *self.task.traced_defaults) if k in row}
        return {"setting": s.label, **options, "metric": self.metric, "mean": mean, "std": float(np.std(values)),
                "seeds": int(len(values))}

    def curves(self, metric: str = "loss") -> np.ndarray:
        """(members, epochs) float64, members in :meth:`records` order; NaN past a shorter
        program's last epoch."""
        groups = self._o.result.groups
        if metric not in groups[0].curves:
            raise KeyError(f"no curve {metric!r}; the curves are {', '.join(groups[0].curves)}")
        return _pad([g.curves[metric] for g in groups])

    def figures(self) -> dict:
        """The report's figures (name -> matplotlib Figure)."""
        from jaxlabs.plots import study_figures

        return _as_figures(lambda folder: study_figures(self.study, self.task, self._o.result, folder))

    def save(self, out, tensorboard: bool = True) -> Path:
        """Write ``report.md``/``.html``, ``results.json``/``.csv``, ``curves.npz``, the figures
        and (``tensorboard``) ``tensorboard/<study>/`` into ``out``, from what was trained."""
        from jaxlabs.reproduce import write_study

        out = Path(out)
        write_study(self._o, out, tensorboard=out / "tensorboard" if tensorboard else None)
        return out

    @property
    def timing(self) -> list[dict]:
        """Per program: members, epochs run, compile and run seconds, plan, waves, devices."""
        return self._o.timing


class SearchOutcome(_Outcome):
    """A finished search: its population, the decisions and the setting it found."""

    def __init__(self, result, task, command: str = ""):
        self._r = result  # jaxlabs.search.run.SearchResult
        self.task = task
        self.command = command

    @property
    def metric(self) -> str:
        """The validation metric the search ranked on."""
        return self._r.metric

    def records(self) -> list[dict]:
        """One dict per member in sampled order: sampled numbers, status (``pruned``), rungs or
        decisions, epochs trained, validation and test metrics, ``best``."""
        from jaxlabs.search.report import member_rows

        return member_rows(self._r, self.task.primary_metric)

    def table(self) -> str:
        """The report's table of the top members (at most 10) by the validation metric."""
        rows = self.records()
        higher, metric, test = self._r.higher, self._r.metric, self.task.primary_metric

        def order(row):
            v = row.get(metric)
            return (not row["best"], np.inf if v is None or not np.isfinite(v) else (-v if higher else v))

        searched = [d.name for d in self._r.space if d.varies]
        cols = ["member", *searched, "bracket", "status", "rungs_reached" if self._r.options.prunes else "decisions",
                "epochs_trained", metric, test]
        cols = [c for c in cols if any(c in row for row in rows)]
        top = sorted(rows, key=order)[:10]
        cell = lambda v: fmt_num(v, 4) if isinstance(v, float) or v is None else str(v)  # noqa: E731
        return format_table(cols, [[cell(row.get(c)) for c in cols] for row in top])

    def best(self) -> dict:
        """The setting found: member, setting (the searched numbers), seed, validation and test
        metrics, status (PBT: the schedule its state trained under)."""
        from jaxlabs.search.report import summary

        return summary(self._r, self.task.primary_metric)

    def curves(self, metric: str | None = None) -> np.ndarray:
        """(members, epochs) of ``metric`` (default: the validation metric ranked on), members in
        sampled order; a pruned member's curve holds its value from its rung on."""
        metric = metric or self._r.metric
        if metric not in self._r.curves:
            raise KeyError(f"no curve {metric!r}; the curves are {', '.join(self._r.curves)}")
        return np.asarray(self._r.curves[metric], np.float64)

    def figures(self) -> dict:
        """The report's figures (name -> matplotlib Figure)."""
        from jaxlabs.search.report import curves_figure, schedules_figure

        def draw(folder):
            names = [curves_figure(self._r, folder / "search_curves.png")]
            if self._r.method == "pbt":
                names.append(schedules_figure(self._r, folder / "pbt_schedules.png"))
            return names

        return _as_figures(draw)

    @property
    def cost(self) -> dict:
        """Member-epochs trained against training every member to the budget, and seconds."""
        r = self._r
        return {"member_epochs": r.member_epochs, "full_member_epochs": r.full_epochs, "wall_s": r.wall_s,
                "compile_s": r.compile_s}

    def save(self, out) -> Path:
        """Write what the search command writes (report.md/.html, results.json/.csv, curves.npz,
        figures) into ``out``, from what was trained."""
        from jaxlabs.search.report import write_results

        return _publish(lambda staging: write_results(self._r, self.task, staging, self.command), out)


__all__ = ["SearchOutcome", "SweepOutcome"]
