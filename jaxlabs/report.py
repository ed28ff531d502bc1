"""A study's ``report.md``: every cell as mean +- std over seeds beside the original report's
number, a verdict per number, and each of the report's conclusions decided by a seed test.

The one table here is the one every command prints: ``reproduce`` for a report's study,
``lr_sweep`` for its ad-hoc study (one setting per learning rate).
"""
from __future__ import annotations

from pathlib import Path
from typing import Collection, Sequence

from jaxlabs import atomic
from jaxlabs.engine.compile_cache import programs_line
from jaxlabs.html import render
from jaxlabs.results import fmt_num, format_table, mean_std
from jaxlabs.studies import SEED_TEST_LEVEL, Claim, ClaimVerdict, MetricDirection, Original, Outcome, Study

METRIC_NAMES = {"converged_epoch": "epochs to converge"}


def metric_direction(study: Study, task) -> MetricDirection:
    """Whether larger is better for a metric of ``study``, as its task declares; a metric read off
    a curve (``study.curve_points``) has its curve's direction."""
    return lambda metric: task.higher_is_better(study.curve_points.get(metric, (metric,))[0])


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


def results_table(study: Study, summary: dict, direction: MetricDirection) -> tuple[str, int, int]:
    """The study's table (a row per setting: converged and diverged counts, each metric's mean +-
    std over seeds, and, where the report gave numbers, each beside its verdict) and how many of
    the report's numbers there are and lie within the seeds' spread."""
    tolerance_study = "converged_epoch" in study.metrics  # otherwise "converged" means nothing
    with_originals = any(s.originals for s in study.settings)
    headers = ["setting", *(["converged"] if tolerance_study else []), "diverged"]
    headers += [f"{METRIC_NAMES.get(m, m)} (mean +- std)" for m in study.metrics]
    headers += ["original (report)", "verdict"] if with_originals else []
    rows, n_orig, n_ok = [], 0, 0
    for s in study.settings:
        if s.label not in summary:  # --quick ran two settings, or --setting chose some
            rows.append([s.label, "not run"] + [""] * (len(headers) - 2 - 2 * with_originals)
                        + (["; ".join(o.text for o in s.originals) or "-", "-"] if with_originals else []))
            continue
        sm = summary[s.label]
        base = [s.label, *([f"{sm['converged']}/{sm['members']}"] if tolerance_study else []),
                f"{sm['diverged']}/{sm['members']}"]
        base += [mean_std(sm[m]) for m in study.metrics]
        if not s.originals:
            rows.append(base + (["-", "-"] if with_originals else []))
        for i, o in enumerate(s.originals):
            verdict = judge(o, sm, direction(o.metric))
            n_orig += 1
            n_ok += verdict.startswith(("within", "agrees"))
            label = f"{METRIC_NAMES.get(o.metric, o.metric)}: {o.text}" if o.metric else o.text
            rows.append((base if i == 0 else [""] * len(base)) + [label, verdict])
    return format_table(headers, rows), n_orig, n_ok


def ran_line(study: Study, ran: Collection[str]) -> str:
    """"3 settings", or "1 of 2 settings (not run: constant 0.1)" when only the settings labelled
    ``ran`` ran."""
    n = len(ran)
    missing = [s.label for s in study.settings if s.label not in ran]
    total = len(study.settings) if missing else n
    text = f"{n}{f' of {total}' if missing else ''} setting{'' if total == 1 else 's'}"
    return f"{text} (not run: {', '.join(missing)})" if missing else text


def compile_note(timing: Sequence[dict]) -> str:
    """`` (compile 3.7 s: 12 programs loaded from the cache, 1 compiled)`` of a run's groups (their
    ``results.json`` timing); "" where none was counted (results kept before programs were)."""
    counted = [g["programs"] for g in timing if "programs" in g]
    if not counted:
        return ""
    seconds = sum(g.get("compile_s", 0.0) for g in timing)
    return (f" (compile {seconds:.1f} s: "
            f"{programs_line(sum(c['loaded'] for c in counted), sum(c['compiled'] for c in counted))})")


def write_report(study: Study, task, summary: dict, figures: list[str], seeds, wall: float, quick: bool,
                 out: Path, command: str, data: Sequence[str] = (), index: str | None = None,
                 timing: Sequence[dict] = ()) -> tuple[str, list[str], str]:
    """Write ``out/report.md`` and the same page as ``out/report.html`` (figures embedded); returns
    the verdict line, the report's lines and its table. ``data``: what the members trained on, when
    a task names it (a copy of a dataset, stand-in data). ``index``: the index page's address from
    ``out``, linked above the HTML page. ``timing``: the groups' timing as ``results.json`` keeps
    it (the wall time then says what was compiled and what loaded from the cache)."""
    direction = metric_direction(study, task)
    table, n_orig, n_ok = results_table(study, summary, direction)
    claims = [c.judge(summary, direction) for c in study.claims]
    parts = []
    if n_orig:
        parts.append(f"{n_ok}/{n_orig} of the report's numbers reproduced within the seeds' spread")
    if claims:
        parts.append(claims_verdict(claims))
    verdict = "; ".join(parts) or "no numbers in the report to compare"
    lines = [
        f"# {study.key}: {study.title}", "",
        f"Lab {study.lab}, task `{task.name}`. {ran_line(study, summary)} x {len(seeds)} seeds = "
        f"{len(summary) * len(seeds)} members; vmapped axes: {', '.join(study.vmapped_axes())}; "
        f"static axes (one program each): {', '.join(study.static_axes()) or 'none'}. "
        f"Wall time {wall:.1f} s{compile_note(timing)}{' (--quick: a tiny version, not the real study)' if quick else ''}.", "",
        f"Command: `{command}`" if command else "", "",
        *([f"**Data:** {'; '.join(data)}.", ""] if data else []),
        f"**Verdict:** {verdict}.", "",
    ]
    if study.static:
        options = {**study.static, **{k: f"{v:g}" for k, v in study.traced.items()}}
        lines += ["Options: " + " ".join(f"{k}={v}" for k, v in options.items()), ""]
    if study.note:
        lines += [study.note, ""]
    lines += ["Each cell is the mean +- std over seeds (epochs: over the seeds that converged)."
              + (" \"Within the seeds' spread\" means the report's single value lies between the smallest "
                 "and largest seed." if n_orig else ""), "", table, ""]
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
    text = "\n".join(lines)
    atomic.write_text(out / "report.md", text)
    nav = [("\u2190 all studies (index)", index)] if index else []
    atomic.write_text(out / "report.html", render(text, out, f"{study.key}: {study.title}", nav))
    return verdict, lines, table
