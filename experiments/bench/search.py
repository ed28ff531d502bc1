"""Search against the exhaustive grid: successive halving and PBT on Lab A, Boston and the Fashion-MNIST MLP.

    python -m experiments.benchmark search                        # every lab, 5 search seeds
    python -m experiments.benchmark search --labs boston --search-seeds 7 --json runs/search.json
    python -m experiments.benchmark search --overhead 1000        # the cost of a decision, 1,000 members

For each lab the grid trains every point of a log-spaced grid over the same range as the search,
5 seeds each (``--grid-seeds``); its best setting is the one with the best mean validation metric,
and its seeds' test metrics are the reference. Each search seed (``--search-seeds``) samples its
own population and member seeds; halving ranks on validation and keeps 1/3 per rung, PBT trains a
population as large as the grid for as many epochs (equal member-epochs) and copies the best
quarter into the worst every tenth of the budget. The winners' test metrics are tested against
the grid's best setting's seeds with the project's one-sided Mann-Whitney test at 5%
(:func:`jaxlabs.studies.mann_whitney`): halving's target is "not significantly worse", PBT's
"significantly better". Wall times include compiles, on this machine, one run after the other.
The Fashion-MNIST MLP runs on the real images when they are found (``--data-dir``; a 10%
stratified subset of the training images, so that it fits a CPU), else on synthetic images.
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from experiments.bench import load, machine, save
from jaxlabs.cli import int_at_least
from jaxlabs.engine.plans import VMAP
from jaxlabs.options import by_name
from jaxlabs.search import SearchOptions, parse_dimension, population, run_search, search_space
from jaxlabs.search.run import validation_metric
from jaxlabs.studies import SEED_TEST_LEVEL, decide, mann_whitney
from jaxlabs.sweep import EngineOptions, Member, grid_members, run_grid
from jaxlabs.tasks import get_task

# lab -> task, fixed options, searched ranges, grid points per range, halving population
LABS = {
    "lab-a": {"task": "fit-log2cos", "static": {"epochs": 1000}, "ranges": {"lr": "1e-4..1e-1"}, "grid": {"lr": 6},
              "members": 27},
    "boston": {"task": "boston", "static": {}, "ranges": {"lr": "1e-3..0.3", "weight_decay": "1e-5..1e-1"},
               "grid": {"lr": 4, "weight_decay": 3}, "members": 81},
    "fashion": {"task": "fashion-mlp", "static": {"epochs": 10, "val_split": 0.1, "subset": 0.1},
                "ranges": {"lr": "0.01..1"}, "grid": {"lr": 6}, "members": 27},
}


METHODS = ("halving", "hyperband", "hyperband-halton", "hyperband-tpe", "pbt")


def _names(allowed, none_ok: bool = False):
    def parse(text: str) -> list[str]:
        names = [t.strip() for t in text.split(",") if t.strip()]
        if none_ok and names == ["none"]:
            return []
        bad = [n for n in names if n not in allowed] or ([] if names else [text])
        if bad:
            raise argparse.ArgumentTypeError(f"{bad[0]!r} is not one of {', '.join(allowed)}")
        return names

    parse.__name__ = "names"
    return parse


def add_arguments(p) -> None:
    p.add_argument("--labs", type=_names(tuple(LABS), none_ok=True), default=list(LABS),
                   help="comma list of " + ", ".join(LABS) + " (none: only --overhead)")
    p.add_argument("--methods", type=_names(METHODS), default=list(METHODS),
                   help="comma list of " + ", ".join(METHODS) + " (hyperband-halton / -tpe: --rounds Hyperband "
                        "iterations, Halton's or TPE's points)")
    p.add_argument("--rounds", type=int_at_least(1), default=2,
                   help="rounds of hyperband-halton and hyperband-tpe (default: %(default)s)")
    p.add_argument("--search-seeds", dest="search_seeds", type=int_at_least(2), default=5,
                   help="searches per method, each from its own seed (default: %(default)s)")
    p.add_argument("--grid-seeds", dest="grid_seeds", type=int_at_least(2), default=5,
                   help="seeds per grid point (default: %(default)s)")
    p.add_argument("--rungs", type=int_at_least(1), default=None,
                   help="halving's rungs, the first at the budget / 3^rungs (default: until one member is left)")
    p.add_argument("--data-dir", dest="data_dir", default=None, help="where the Fashion-MNIST files are")
    p.add_argument("--overhead", type=int_at_least(0), default=0, metavar="MEMBERS",
                   help="also time the decisions of a search of this many members on Lab A (e.g. 1000)")
    p.add_argument("--overhead-epochs", dest="overhead_epochs", type=int_at_least(10), default=2000,
                   help="the budget of that search (default: %(default)s)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")


def _grid_axes(task, lab) -> dict[str, np.ndarray]:
    """Each searched range as grid points: log-spaced for a log-scale option, else evenly spaced."""
    opts = by_name(task.options)
    axes = {}
    for name, count in lab["grid"].items():
        d = parse_dimension(opts[name], lab["ranges"][name])
        axes[name] = np.geomspace(d.low, d.high, count) if d.log else np.linspace(d.low, d.high, count)
    return axes


def _static(task, lab, data_dir):
    static = dict(lab["static"])
    if task.name == "fashion-mlp":
        try:
            from jaxlabs.data import load_dataset

            load_dataset("fashion_mnist", data_dir)
            static["data_dir"] = data_dir
        except (FileNotFoundError, ValueError):
            static.update(synthetic=2000, subset=1.0)  # the real set is absent: a learnable stand-in
    return task.resolve_static(**static)


def grid(task, lab, static, seeds: int, engine: EngineOptions) -> dict:
    member_seeds, hp = grid_members(range(seeds), **_grid_axes(task, lab))  # points slowest, seeds fastest
    rows = [{k: v[i] for k, v in hp.items()} for i in range(len(member_seeds))]
    members = [Member(" ".join(f"{k}={v:.4g}" for k, v in p.items()), static, task.hparams(**p), s)
               for p, s in zip(rows, member_seeds)]
    points = rows[::seeds]
    t0 = time.perf_counter()
    result = run_grid(task, members, progress=False, engine=engine)
    wall = time.perf_counter() - t0
    g = result.groups[0]
    trainer_logs = list(g.curves)
    metric, higher = validation_metric(task, trainer_logs)
    val = np.asarray(g.final[metric], float).reshape(len(points), seeds)
    test = np.asarray(g.final[task.primary_metric], float).reshape(len(points), seeds)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a grid point whose every seed diverged
        mean = np.nanmean(np.where(np.isfinite(val), val, np.nan), axis=1)
    mean = np.where(np.isfinite(mean), mean, -np.inf if higher else np.inf)
    best = int(np.argmax(mean) if higher else np.argmin(mean))
    return {"points": points, "best": points[best], "best_val": float(mean[best]), "test": test[best].tolist(),
            "member_epochs": int(np.sum(g.final["stop_epoch"])), "wall_s": wall, "compile_s": g.compile_s,
            "members": len(members), "metric": metric, "higher": higher}


def search(task, lab, static, method: str, seed: int, members: int, epochs: int, engine: EngineOptions,
           rungs: int | None = None, rounds: int = 2):
    opts = by_name(task.options)
    given = {k: parse_dimension(opts[k], v) for k, v in lab["ranges"].items()}
    fixed = {*lab["static"], "data_dir", "synthetic", "subset"}
    given.update({k: parse_dimension(opts[k], str(v)) for k, v in static.items() if k in fixed and v is not None})
    space = search_space(task.options, given)
    if method.startswith("hyperband"):
        return _hyperband(task, space, method, seed, epochs, engine, rounds)
    pop = population(task, space, members, seed)
    options = SearchOptions(method, rungs=rungs, min_epochs=max(1, epochs // 3 ** rungs) if rungs else None) \
        if method == "halving" else SearchOptions("pbt", pbt_every=max(1, epochs // 10))
    t0 = time.perf_counter()
    r = run_search(task, pop, space, options, engine=engine, progress=False)
    wall = time.perf_counter() - t0
    b = r.best
    return {"seed": seed, "member_epochs": r.member_epochs, "wall_s": wall, "compile_s": r.compile_s,
            "decide_s": r.decide_s, "test": float(r.final[task.primary_metric][b]),
            "val": float(r.final[r.metric][b]) if r.metric in r.final else None,
            "setting": {d.name: float(r.members[b].hparams[d.name]) for d in space if d.varies and d.option.traced},
            "last": {k: float(r.numbers[k][b]) for k in lab["ranges"]}}


def _hyperband(task, space, method: str, seed: int, epochs: int, engine: EngineOptions, rounds: int) -> dict:
    """Hyperband as the command runs it by default (one iteration), or ``rounds`` iterations whose
    points are Halton's or TPE's; the winner: the best complete member of every round."""
    import tempfile
    from pathlib import Path

    from jaxlabs.search.rounds import search_rounds

    options = SearchOptions("hyperband").check(epochs, 27)
    size = options.population_size(epochs, 27)
    k, sampler = (1, "halton") if method == "hyperband" else (rounds, method.split("-")[1])
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        _, history, _ = search_rounds(task, space, options, size=size, seed=seed, rounds=k, sampler=sampler,
                                      out=Path(out), config={}, engine=engine, progress=False, say=lambda s: None)
    wall = time.perf_counter() - t0
    higher = history[0]["attrs"]["metric"] in ("val_acc", "val_r2")
    done = [t for t in history if t["state"] == "COMPLETE"]
    win = max(done, key=lambda t: t["value"] if higher else -t["value"])
    return {"seed": seed, "member_epochs": sum(t["attrs"]["epochs_trained"] for t in history), "wall_s": wall,
            "compile_s": float("nan"), "decide_s": float("nan"), "members": len(history),
            "test": win["attrs"][task.primary_metric], "val": win["value"], "setting": win["params"]}


def verdict(xs, ys, higher: bool, claim: str) -> dict:
    """The project's seed test: ``claim`` "worse" or "better" of the searches' test metrics ``xs``
    against the grid's best setting's ``ys``."""
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    ys = ys[np.isfinite(ys)]
    xs = np.where(np.isfinite(xs), xs, -np.inf if higher else np.inf)  # a diverged winner counts as worst
    better_is_higher = higher if claim == "better" else not higher
    p, p_opposite = mann_whitney(xs, ys, higher=better_is_higher)
    return {"claim": claim, "p": p, "p_opposite": p_opposite, "outcome": decide(p, p_opposite).value}


def overhead(members: int, engine: EngineOptions, epochs: int = 2000) -> list[dict]:
    """Each method's decisions on a search of ``members`` Lab A members (small, so that the
    decisions weigh as much as they can): their seconds against the whole run's."""
    task = get_task("fit-log2cos")
    opts = by_name(task.options)
    out = []
    for method, options in (("halving", SearchOptions("halving", eta=3)), ("pbt", SearchOptions("pbt"))):
        space = search_space(task.options, {"lr": parse_dimension(opts["lr"], "1e-4..1e-1"),
                                            "n": parse_dimension(opts["n"], "200"),
                                            "width": parse_dimension(opts["width"], "16"),
                                            "depth": parse_dimension(opts["depth"], "2"),
                                            "epochs": parse_dimension(opts["epochs"], str(epochs))})
        t0 = time.perf_counter()
        r = run_search(task, population(task, space, members, 0), space, options, engine=engine, progress=False)
        wall = time.perf_counter() - t0
        row = {"method": method, "members": members, "decisions": len(r.decisions), "wall_s": wall,
               "decide_s": r.decide_s, "per_decision_s": r.decide_s / max(1, len(r.decisions)),
               "share": r.decide_s / wall}
        print(f"  {method}: {members} members, {row['decisions']} decisions: {row['decide_s']:.2f} s deciding of "
              f"{wall:.1f} s ({row['share']:.2%}; {row['per_decision_s'] * 1000:.0f} ms a decision, "
              f"{row['per_decision_s'] / wall:.3%} of the run each)")
        out.append(row)
    return out


def optuna_cost(members: int, sampler: str = "tpe", steps: int = 30) -> dict:
    """Optuna's share of a round of ``members``: TPE asked for the whole round told ``members``
    earlier trials (each with ``steps`` intermediate values), and the round written to a SQLite study."""
    import tempfile
    from pathlib import Path

    from jaxlabs.search import trials as T

    task = get_task("fit-log2cos")
    space = search_space(task.options, {"lr": parse_dimension(by_name(task.options)["lr"], "1e-4..1e-1")})
    rng = np.random.default_rng(0)
    earlier = [{"params": {"lr": float(10 ** rng.uniform(-4, -1))}, "state": "PRUNED" if i % 3 else "COMPLETE",
                "value": float(rng.uniform()), "intermediate": {str(e + 1): float(rng.uniform()) for e in range(steps)},
                "attrs": {"round": 0, "member": i, "metric": "val_mse"}} for i in range(members)]
    t0 = time.perf_counter()
    T.propose(space, earlier, members, sampler, 0, 1, higher=False)
    ask_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as d:
        study = T.open_study(f"sqlite:///{Path(d) / 'study.db'}", "bench", space, False, "val_mse")
        t0 = time.perf_counter()
        T.write_trials(study, space, earlier)
        write_s = time.perf_counter() - t0
    row = {"members": members, "sampler": sampler, "ask_s": ask_s, "sqlite_write_s": write_s,
           "sqlite_per_trial_ms": 1000 * write_s / members}
    print(f"  optuna: {sampler} asked for {members} points told {members} trials: {ask_s:.2f} s; {members} trials "
          f"({steps} intermediate values each) written to SQLite: {write_s:.2f} s ({row['sqlite_per_trial_ms']:.1f} ms "
          "a trial)")
    return row


def run(args) -> int:
    # as the commands run (compaction on), but whole epochs (--slice-steps 0): a bar that moves within an epoch
    # costs each program size three more compiles, on both sides
    engine = EngineOptions(plan=VMAP, compaction=True, slice_steps=None)
    labs, methods = args.labs, args.methods
    doc = {"machine": machine(), "labs": {}}
    print(f"search against the grid; {load()}")
    for name in labs:
        lab = LABS[name]
        task = get_task(lab["task"])
        static = _static(task, lab, args.data_dir)
        g = grid(task, lab, static, args.grid_seeds, engine)
        epochs = static["epochs"]
        data = " (synthetic images)" if static.get("synthetic") else ""
        print(f"\n{name}{data}: grid {g['members']} members x {epochs} epochs: {g['member_epochs']:,} member-epochs, "
              f"{g['wall_s']:.1f} s; best {g['best']} (mean {g['metric']} {g['best_val']:.4g}); its "
              f"{task.primary_metric}: {np.median(g['test']):.4g} median of {len(g['test'])} seeds; {load()}")
        entry = {"grid": g, "static": {k: v for k, v in static.items() if v is not None}}
        higher = task.higher_is_better(task.primary_metric)
        for method in methods:
            size = lab["members"] if method == "halving" else g["members"]
            runs = [search(task, lab, static, method, s, size, epochs, engine, args.rungs, args.rounds)
                    for s in range(args.search_seeds)]
            size = runs[0].get("members", size)
            tests = [r["test"] for r in runs]
            v = verdict(tests, g["test"], higher, "better" if method == "pbt" else "worse")
            me = float(np.median([r["member_epochs"] for r in runs]))
            wall = float(np.median([r["wall_s"] for r in runs]))
            entry[method] = {"members": size, "runs": runs, "verdict": v,
                             "member_epochs_ratio": me / g["member_epochs"], "wall_ratio": wall / g["wall_s"]}
            print(f"  {method} ({size} members, {args.search_seeds} seeds): member-epochs {me:,.0f} "
                  f"({me / g['member_epochs']:.2f} of the grid's), wall {wall:.1f} s ({wall / g['wall_s']:.2f}; "
                  f"compiling {np.median([r['compile_s'] for r in runs]):.1f} s against the grid's "
                  f"{g['compile_s']:.1f} s); "
                  f"winners' {task.primary_metric} median {np.median(tests):.4g} [{min(tests):.4g}, {max(tests):.4g}]; "
                  f"{v['claim']} than the grid's best: p = {v['p']:.3f} ({v['outcome']} at {SEED_TEST_LEVEL:.0%}); "
                  f"{load()}")
        doc["labs"][name] = entry
    if args.overhead:
        print(f"\ndecision overhead; {load()}")
        doc["overhead"] = overhead(args.overhead, engine, args.overhead_epochs)
        doc["optuna"] = optuna_cost(args.overhead)
    save(args.json, doc)
    return 0
