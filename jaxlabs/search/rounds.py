"""Rounds of a search: K populations one after another (K Hyperband iterations, or K halving or
PBT populations), each a fresh population of the same size, proposed from what the earlier rounds
found (:mod:`jaxlabs.search.trials`), each trained by :func:`jaxlabs.search.run_search`.

Where a round stands is kept in ``rounds.json`` in the output folder (every finished round's
members as trial records, and the search's configuration, which must match to go on) and, in a
round, in that round's own checkpoint folder: a run killed mid-round resumes that round from its
checkpoint with the same points (its sampler is told the same earlier rounds), to the same results.
A later run of the same command with more rounds goes on from the last finished one; with a
storage, from the last round its study holds.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional, Sequence

from jaxlabs import atomic
from jaxlabs.search import trials as T
from jaxlabs.search.run import VALIDATION, SearchError, SearchOptions, run_search
from jaxlabs.search.space import members_at, population

ROUNDS_FILE = "rounds.json"


def check_rounds(options: SearchOptions, rounds: int, sampler: str, storage: Optional[str], processes: int) -> None:
    """SearchError (one line) for rounds, a sampler or a storage this search cannot take."""
    if rounds < 1:
        raise SearchError("rounds", f"--rounds {rounds}: a search runs at least one round; give --rounds 1 or more")
    T.check_sampler(sampler)
    if sampler not in ("halton", "random") and options.method == "pbt":
        raise SearchError("sampler", f"PBT changes its members' numbers as they train, so a model of sampled "
                                     f"points to results (--sampler {sampler}) learns the wrong thing; give "
                                     "--sampler halton or random, or --method hyperband")
    if processes > 1 and (rounds > 1 or storage or sampler != "halton"):
        raise SearchError("rounds", "rounds, samplers and storages run in one process; leave --num-processes "
                                    "out, or give --rounds 1 without --sampler and --storage")


def earlier_rounds(out: Path, config: dict) -> list[dict]:
    """The trial records of the rounds an earlier run finished in ``out``; SearchError when they are
    another search's."""
    from jaxlabs.store import _difference

    try:
        saved = json.loads((Path(out) / ROUNDS_FILE).read_text())
    except (OSError, ValueError):
        return []
    diff = _difference(saved["config"], json.loads(json.dumps(config, default=str)))
    if diff:
        raise SearchError("out", f"{out} holds the rounds of another search ({diff}); add --fresh to discard "
                                 "them and start over, or choose another --out")
    return saved["trials"]


def open_storage(storage: Optional[str], study_name: str, space) -> Optional[object]:
    """The study when it exists (its space checked), None when new or without a storage."""
    return T.open_study(storage, study_name, space) if storage else None


def search_rounds(task, space, options: SearchOptions, *, size: int, seed: int, rounds: int, sampler: str,
                  out: Path, config: dict, storage: Optional[str] = None, study_name: str = "", study=None,
                  store_for=None, engine=None, progress: bool = True, label: str = "", observer=None,
                  writer: bool = True, say=print):
    """Run rounds up to ``rounds`` (see the module). ``store_for(round, members)``: that round's
    :class:`jaxlabs.store.RunStore` (None: no checkpoints). Returns the last round run here (None
    when every round had run before), every trial record (the study's with a storage) and the
    seconds spent writing to the storage."""
    local = earlier_rounds(out, config)
    if study is not None:  # rounds finished here but not yet in the study (a kill in between)
        missing = set(T.rounds_in(local)) - set(T.rounds_in(T.study_trials(study)))
        T.write_trials(study, space, [t for t in local if t["attrs"]["round"] in missing])
    history = T.study_trials(study) if study is not None else list(local)
    result, storage_s = None, 0.0
    for r in range(T.first_round(history), rounds):
        told = [t for t in history if t["state"] != "FAIL"]
        if sampler == "halton" or not told:
            members = population(task, space, size, seed, start=r * size)
        else:
            higher = dict(VALIDATION)[told[0]["attrs"]["metric"]]
            fixed = {d.name: d.values[0] for d in space if not d.varies}
            points = [{d.name: {**fixed, **p}[d.name] for d in space}
                      for p in T.propose(space, history, size, sampler, seed, r, higher)]
            members = members_at(task, space, points, seed, start=r * size)
        store = store_for(r, members) if store_for is not None else None
        if store is not None:
            note = store.open()
            if note and writer:
                say(note)
        if writer:
            say(f"round {r + 1} of {rounds}: {size} members from "
                + ("the Halton sequence" if sampler == "halton" or not told else f"Optuna's {sampler} sampler, told "
                   f"{len(history)} earlier members"))
        try:
            result = run_search(task, members, space, options, engine=engine, store=store, progress=progress,
                                name=f"{label} round {r + 1}/{rounds}", observer=observer)
        finally:
            if store is not None:
                store.close()
        made = T.trial_records(result, r, task.primary_metric)
        local += made
        if writer:
            atomic.write_text(Path(out) / ROUNDS_FILE, json.dumps({"config": config, "trials": local}, default=str))
        if storage:
            t0 = time.perf_counter()
            study = study or T.open_study(storage, study_name, space, result.higher, result.metric)
            if writer:
                T.write_trials(study, space, made)
            storage_s += time.perf_counter() - t0
            history = T.study_trials(study)
        else:
            history = list(local)
        if store is not None and writer:
            from jaxlabs.checkpoint import remove

            remove(store.folder)
    return result, history, storage_s


def summaries(history: Sequence[dict], test_metric: str) -> list[dict]:
    """Per round: its members, member-epochs and best complete member."""
    out = []
    for r in T.rounds_in(history):
        mine = [t for t in history if t["attrs"].get("round") == r]
        higher = dict(VALIDATION).get(mine[0]["attrs"].get("metric"), False)
        out.append(T.round_summary(mine, r, higher, test_metric))
    return out
