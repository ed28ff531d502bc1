"""A search's results, as files: ``results.json`` and ``results.csv`` (a row per member: sampled
numbers, last numbers, status with ``pruned``, rungs reached, lineage), ``curves.npz``, figures
(the validation metric over epochs of every member coloured by its learning rate, with the rungs;
for PBT the numbers' trajectories) and ``report.md`` / ``report.html`` with the best setting found,
its validation and test metrics, and the cost against training the whole population."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import numpy as np

from jaxlabs import atomic
from jaxlabs.engine.compile_cache import programs_line
from jaxlabs.results import fmt_num, format_table, write_records
from jaxlabs.search.run import SearchResult


def _fmt(v) -> str:
    """A table cell or an inline number: numbers as every report writes them, NaN and None as "-"."""
    return fmt_num(v, 4) if isinstance(v, float) or v is None else str(v)


def _table(rows: list[dict], columns: list[str]) -> str:
    return format_table(columns, [[_fmt(row.get(c)) for c in columns] for row in rows])


def programs(r: SearchResult) -> dict:
    """``{"loaded", "compiled", "xla_s"}`` of the compiles the search's compile_s counts."""
    total = {k: sum(g["programs"][k] for g in r.groups) for k in ("loaded", "compiled", "xla_s")}
    return {**total, "xla_s": round(total["xla_s"], 3)}


def cost_line(r: SearchResult) -> str:
    share = r.member_epochs / max(1, r.full_epochs)
    return (f"{r.member_epochs:,} member-epochs ({share:.0%} of the {r.full_epochs:,} that training all "
            f"{len(r.members)} members to {r.epochs} epochs costs), {r.wall_s:.1f} s ({r.compile_s:.1f} s compiling: "
            f"{programs_line(programs(r)['loaded'], programs(r)['compiled'])})")


def member_rows(r: SearchResult, test_metric: str) -> list[dict]:
    """One plain row per member, in sampled order."""
    searched = [d.name for d in r.space if d.varies]
    by_member: dict[int, list[dict]] = {}
    for e in r.lineage:
        by_member.setdefault(e["member"], []).append(e)
    out = []
    for i, m in enumerate(r.members):
        row = {"member": i, "seed": m.seed}
        for k in searched:
            row[k] = m.static[k] if k in m.static else float(np.float32(m.hparams[k]))
        if r.method == "pbt":
            row.update({f"{k}_last": float(r.numbers[k][i]) for k in searched if k in r.numbers})
        if r.bracket is not None:
            row["bracket"] = int(r.bracket[i])
        row["status"] = r.status[i]
        row["rungs_reached" if r.options.prunes else "decisions"] = int(r.reached[i])
        row["epochs_trained"] = int(r.final["stop_epoch"][i])
        for k in (r.metric, test_metric):
            if k in r.final and np.ndim(r.final[k][i]) == 0:
                row[k] = float(r.final[k][i])
        if r.method == "pbt":
            row["lineage"] = " ".join(f"{e['parent']}@{e['epoch']}" for e in by_member.get(i, []))
        row["best"] = i == r.best
        out.append(row)
    return out


def summary(r: SearchResult, test_metric: str) -> dict:
    """The search in a few numbers: the setting found and what it cost."""
    b = r.best
    m = r.members[b]
    setting = {d.name: float(np.float32(m.hparams[d.name])) if d.option.traced else m.static.get(d.name)
               for d in r.space if d.varies}
    return {"member": b, "setting": setting, "seed": r.members[b].seed,
            **({"schedule": schedule(r, b)} if r.method == "pbt" else {}),
            "last_numbers": {k: float(r.numbers[k][b]) for k in setting if k in r.numbers},
            r.metric: float(r.final[r.metric][b]) if r.metric in r.final else None,
            test_metric: float(r.final[test_metric][b]) if test_metric in r.final else None,
            "status": r.status[b]}


def write_results(r: SearchResult, task, out: Path, command: str = "", rounds: Optional[list] = None,
                  storage_s: float = 0.0) -> list[str]:
    """Every file of a search into ``out``; the names of the figures. ``rounds``: per round of a
    search of several (:func:`jaxlabs.search.rounds.summaries`); ``r`` is then the last one run."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    test = task.primary_metric
    rows = member_rows(r, test)
    best = summary(r, test)
    cost = {"member_epochs": r.member_epochs, "full_member_epochs": r.full_epochs,
            "share": r.member_epochs / max(1, r.full_epochs), "program_member_epochs": r.program_epochs,
            "wall_s": round(r.wall_s, 2), "compile_s": round(r.compile_s, 2), "decide_s": round(r.decide_s, 3),
            "programs": programs(r),
            "full_wall_s_estimate": round((r.wall_s - r.compile_s) * r.full_epochs / max(1, r.program_epochs)
                                          + r.compile_s, 1)}
    write_records(out, rows, {  # results.json (this, and the rows as "members") and results.csv, as a sweep's
        "task": r.task, "method": r.method, "command": command, "data": r.data, "metric": r.metric,
        "higher_is_better": r.higher, "test_metric": test, "epochs": r.epochs, "options": vars(r.options),
        "space": [d.to_json() for d in r.space if d.varies], "best": best, "cost": cost,
        "decisions": r.decisions, "lineage": r.lineage, "groups": r.groups,
        **({"brackets": r.brackets()} if r.bracket is not None else {}),
        **({"rounds": rounds, "winner": rounds_winner(rounds, r.higher), "storage_s": round(storage_s, 3)}
           if rounds is not None else {})})
    arrays = {f"curves/{k}": v for k, v in r.curves.items()}
    arrays.update({f"numbers/{k}": np.stack([h[k] for _, h in r.history]) for k in r.history[0][1]})
    arrays["numbers_epochs"] = np.asarray([e for e, _ in r.history])
    arrays.update({f"final/{k}": v for k, v in r.final.items()})
    atomic.write_npz(out / "curves.npz", arrays)
    figures = [curves_figure(r, out / "search_curves.png")]
    if r.method == "pbt":
        figures.append(schedules_figure(r, out / "pbt_schedules.png"))
    text = report_text(r, task, rows, best, cost, figures, command)
    if rounds is not None:
        text = rounds_text(rounds, r, test, storage_s) + text
    atomic.write_text(out / "report.md", text)
    from jaxlabs.html import render

    atomic.write_text(out / "report.html", render(text, out, f"jaxlabs search: {r.task}"))
    return figures


def _colour_dimension(r: SearchResult):
    """The searched number the figures colour by: the learning rate where it was searched."""
    numeric = [d for d in r.space if d.varies and d.option.traced]
    for d in numeric:
        if d.name == "lr":
            return d
    return numeric[0] if numeric else None


def curves_figure(r: SearchResult, path: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm, Normalize

    curves = r.curves[r.metric]
    d = _colour_dimension(r)
    values = np.asarray([m.hparams[d.name] for m in r.members], float) if d else np.zeros(len(r.members))
    top = max(values.max(), values.min() * 1.0001 + 1e-12)  # one value: a range all the same
    norm = (LogNorm if d is not None and d.log else Normalize)(vmin=values.min(), vmax=top)
    cmap = plt.get_cmap("viridis")
    fig, ax = plt.subplots(figsize=(8, 4.8))
    epochs = np.arange(1, curves.shape[1] + 1)
    for i in np.argsort(-values):
        stop = int(r.final["stop_epoch"][i]) if r.status[i] == "pruned" else curves.shape[1]
        ax.plot(epochs[:stop], curves[i, :stop], color=cmap(norm(values[i])), lw=2.2 if i == r.best else 0.8,
                alpha=1.0 if i == r.best else 0.7, zorder=3 if i == r.best else 2)
    if r.options.prunes:
        for e in r.options.decisions(r.epochs, len(r.members)):
            ax.axvline(e, color="0.5", ls="--", lw=0.8)
    else:
        for e in r.options.decisions(r.epochs, len(r.members)):
            ax.axvline(e, color="0.85", lw=0.6)
    finite_vals = curves[np.isfinite(curves)]
    if finite_vals.size and not r.higher and finite_vals.min() > 0:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(r.metric + (" (higher is better)" if r.higher else " (lower is better)"))
    what = "rungs dashed, pruned curves end at their rung" if r.options.prunes else "exploit steps in grey"
    data = f"; {r.data}" if r.data else ""
    method = {"halving": "halving", "hyperband": "Hyperband"}.get(r.method, "PBT")
    ax.set_title(f"{r.task}: {method} over {len(r.members)} members ({what}){data}", fontsize=9)
    if d is not None:
        sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
        fig.colorbar(sm, ax=ax, label=f"{d.name} (first value)" if r.method == "pbt" else d.name)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic.write_figure(path, fig, dpi=110)
    return path.name


def schedules_figure(r: SearchResult, path: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [d.name for d in r.space if d.varies and d.option.traced]
    epochs = [e for e, _ in r.history] + [r.epochs]
    fig, axes = plt.subplots(len(names), 1, figsize=(8, 2.8 * len(names) + 0.6), squeeze=False)
    line = ancestry(r, r.best)
    for ax, name in zip(axes[:, 0], names):
        d = next(x for x in r.space if x.name == name)
        track = np.stack([h[name] for _, h in r.history])  # (decisions + 1, members)
        for i in range(track.shape[1]):
            ax.step(epochs, np.r_[track[:, i], track[-1, i]], where="post", color="0.65", lw=0.7)
        mine = np.asarray([track[k, m] for k, m in enumerate(line)])
        ax.step(epochs, np.r_[mine, mine[-1]], where="post", color="C3", lw=2.2, zorder=3,
                label=f"member {r.best}'s schedule, inherited through its copies")
        if d.log:
            ax.set_yscale("log")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, loc="best")
    axes[-1, 0].set_xlabel("epoch")
    axes[0, 0].set_title(f"{r.task}: PBT, the numbers of {len(r.members)} members over epochs "
                         "(grey: each member's own)",
                         fontsize=9)
    fig.tight_layout()
    atomic.write_figure(path, fig, dpi=110)
    return path.name


def schedule(r: SearchResult, member: int) -> dict[str, list[tuple[int, float]]]:
    """PBT: each searched number of ``member``'s state over epochs, through its copies: (from
    epoch, value) wherever it changed."""
    line = ancestry(r, member)
    out = {}
    for name in r.history[0][1]:
        if not any(d.name == name and d.varies for d in r.space):
            continue
        track = []
        for (epoch, numbers), m in zip(r.history, line):
            v = float(numbers[name][m])
            if not track or track[-1][1] != v:
                track.append((int(epoch), v))
        out[name] = track
    return out


def ancestry(r: SearchResult, member: int) -> list[int]:
    """Whose numbers ``member``'s state trained under between PBT's decisions: entry k is the member
    (of ``r.history[k]``) its state descends from in the k-th stretch of epochs. A child's state is its
    parent's up to the copy."""
    parent = {(e["epoch"], e["member"]): e["parent"] for e in r.lineage}
    line, cur = [], member
    for k in range(len(r.history) - 1, -1, -1):
        line.append(cur)
        cur = parent.get((r.history[k][0], cur), cur)
    return line[::-1]


def report_text(r: SearchResult, task, rows: list[dict], best: dict, cost: dict, figures: list[str],
                command: str = "") -> str:
    test = task.primary_metric
    searched = [d for d in r.space if d.varies]
    title = {"halving": "successive halving", "hyperband": "Hyperband", "pbt": "population-based training"}
    lines = [f"# Search: {r.task}, {title[r.method]}",
             "", f"{task.description}." + (f" Data: {r.data}." if r.data else ""), ""]
    if command:
        lines += ["```", command, "```", ""]
    space = "; ".join(f"{d.name} {d.text()}" for d in searched) or "nothing varied"
    o = r.options
    rungs = ", ".join(map(str, o.decisions(r.epochs, len(r.members))))
    how = (f"eta {o.eta}, rungs at epochs {rungs}" if r.method == "halving" else
           f"eta {o.eta}, {len(o.brackets(r.epochs))} brackets ranking their own members at rungs among epochs "
           f"{rungs}" if r.method == "hyperband" else
           f"every {o.pbt_every} epochs the bottom {o.quantile:.0%} copy one of the top {o.quantile:.0%} and "
           f"perturb its numbers (x0.8 / x1.25, resampled with probability {o.resample:g})")
    lines += [f"{len(r.members)} members sampled from {space}; {r.epochs} epochs each at most; {how}. Ranked on "
              f"**{r.metric}** ({'higher' if r.higher else 'lower'} is better), never on the test split.", ""]
    setting = ", ".join(f"{k}={_fmt(v)}" for k, v in best["setting"].items())
    last = ""
    if r.method == "pbt" and best["last_numbers"]:
        steps = "; ".join(f"{k} " + ", ".join(f"{v:.4g} from epoch {e}" for e, v in track)
                          for k, track in schedule(r, r.best).items())
        last = f" as first sampled; the schedule its state trained under, through its copies: {steps}"
    lines += ["## Best setting found", "",
              f"Member {best['member']} (seed {best['seed']}): **{setting}**{last}: {r.metric} "
              f"{_fmt(best.get(r.metric))}, {test} {_fmt(best.get(test))} ({best['status']}).", "",
              "## Cost", "", f"{cost_line(r)}.", "",
              f"Training every member to the budget would cost {cost['full_member_epochs']:,} member-epochs, about "
              f"{cost['full_wall_s_estimate']:.0f} s at this run's speed per member-epoch (an estimate). "
              "The programs ran "
              f"{cost['program_member_epochs']:,} member-epochs in all, frozen and padding members included. "
              f"The {len(r.decisions)} decisions took {r.decide_s:.2f} s in all "
              f"({r.decide_s / max(r.wall_s, 1e-9):.2%} "
              "of the run: ranking, draws, pruning, repacking, copying).", ""]
    if r.method == "hyperband":
        lines += ["## Brackets", "", "Every bracket's members trained in the same programs; each bracket ranks its "
                  "own members at its own rungs, and the winner is the best of every bracket's finalists.", "",
                  "| bracket | members | rungs | member-epochs | its best member |", "|---|---|---|---|---|"]
        lines += [f"| {b['bracket']} | {len(b['members'])} | {', '.join(map(str, b['rungs'])) or '-'} | "
                  f"{b['member_epochs']:,} | {b['best']}{' (the winner)' if b['best'] == r.best else ''} |"
                  for b in r.brackets()]
        lines += ["", "| epoch | bracket | members ranked | kept | program sizes after |", "|---|---|---|---|---|"]
        lines += [f"| {d['epoch']} | {b['bracket']} | {b['entered']} | {len(b['kept'])} | "
                  f"{', '.join(map(str, d['sizes']))} |" for d in r.decisions for b in d["brackets"]]
        lines.append("")
    elif r.method == "halving":
        lines += ["## Rungs", "", "| epoch | members ranked | kept | program sizes after |", "|---|---|---|---|"]
        lines += [f"| {d['epoch']} | {d['entered']} | {len(d['kept'])} | {', '.join(map(str, d['sizes']))} |"
                  for d in r.decisions]
        lines.append("")
    else:
        lines += ["## Exploit and explore", "",
                  f"{len(r.lineage)} copies in {len(r.decisions)} steps. The best member's line:", ""]
        mine = [e for e in r.lineage if e["member"] == best["member"]]
        lines += [f"- epoch {e['epoch']}: copied member {e['parent']} ("
                  + ", ".join(f"{k} {e['parent_numbers'][k]:.4g}" for k in e["new"]) + "), explored to "
                  + ", ".join(f"{k} {e['new'][k]:.4g}" for k in e["new"]) + " (its own had been "
                  + ", ".join(f"{k} {e['old'][k]:.4g}" for k in e["new"]) + ")" for e in mine] or \
            ["- never copied: it kept its own line throughout"]
        lines.append("")
    top = sorted(rows, key=lambda row: (row["best"] is False, _order(row.get(r.metric), r.higher)))[:10]
    cols = ["member", *[d.name for d in searched], *([f"{d.name}_last" for d in searched if d.option.traced]
                                                      if r.method == "pbt" else []),
            "bracket", "status", "rungs_reached" if r.options.prunes else "decisions", "epochs_trained", r.metric, test]
    lines += [f"## Top members by {r.metric}", "", _table(top, [c for c in cols if any(c in row for row in rows)]), ""]
    lines += ["## Figures", ""] + [f"![{f}]({f})" for f in figures] + [""]
    lines += ["Every member's row is in results.csv and results.json; curves and numbers over epochs in "
              "curves.npz.", ""]
    return "\n".join(lines)


def rounds_winner(rounds: list, higher: bool) -> Optional[dict]:
    """The best complete member of every round: its round and numbers."""
    done = [{"round": x["round"], **x["best"]} for x in rounds if x["best"]]
    return min(done, key=lambda b: _order(b["value"], higher)) if done else None


def rounds_text(rounds: list, r: SearchResult, test: str, storage_s: float) -> str:
    """The report's head for a search of several rounds: every round's best and the winner."""
    win = rounds_winner(rounds, r.higher)
    lines = [f"# Rounds of a search: {r.task}, {len(rounds)} rounds", ""]
    if win:
        lines += [f"Best across the rounds: round {win['round'] + 1}, member {win['member']}: **"
                  + ", ".join(f"{k}={_fmt(v)}" for k, v in win["params"].items())
                  + f"**: {r.metric} {_fmt(win['value'])}, {test} {_fmt(win.get(test))}.", ""]
    lines += ["| round | members | member-epochs | best | " + r.metric + " | " + test + " |", "|---|---|---|---|---|---|"]
    for x in rounds:
        b = x["best"] or {}
        lines.append(f"| {x['round'] + 1} | {x['members']} | {x['member_epochs']:,} | "
                     + (", ".join(f"{k}={_fmt(v)}" for k, v in b.get("params", {}).items()) or "-")
                     + f" | {_fmt(b.get('value'))} | {_fmt(b.get(test))} |")
    lines += ["", f"Writing this run's members to the storage took {storage_s:.2f} s." if storage_s else "",
              "What follows is the last round run.", "", ""]
    return "\n".join(lines)


def _order(v: Optional[float], higher: bool) -> float:
    if v is None:
        return math.inf
    return -v if higher else v
