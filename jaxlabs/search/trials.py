"""A search's members as Optuna trials: proposing a round's points with one of Optuna's samplers,
recording every member as a trial in a storage (the rounds themselves: :mod:`jaxlabs.search.rounds`).

- A round's points come from the scrambled Halton sequence (continued round after round from the
  search's seed), or from one of Optuna's samplers (``random``, ``tpe``, ``gp``, ``cmaes``) asked
  for the whole round at once in a study told every earlier member: complete with its validation
  metric, pruned with its value at its rung, failed when it diverged; each member's validation
  metric by epoch is its intermediate values. TPE asks with its constant liar, so a round's asks
  spread instead of piling on one point. A first round (nothing to learn from yet) is Halton's.
- The sampler is seeded from the search's seed and the round, and told the earlier members in
  their order: the same seed gives the same search, and a resumed round the same points.
- ``--storage URL``: the members are written to an Optuna study as trials (params, intermediate
  values, state, user attributes: seed, bracket, rungs, round, lineage), one transaction a trial
  (Optuna's ``add_trials``: a trial with its values in one call, not one call per report). A
  later run with more rounds continues the study.

Optuna is the optional extra ``search`` and is imported only here, only when a sampler or a
storage of its is asked for.
"""
from __future__ import annotations

import json
import math
import warnings
from typing import Optional, Sequence

import numpy as np

from jaxlabs.search.run import SearchError
from jaxlabs.train import STATUS_NAMES

SAMPLERS = ("halton", "random", "tpe", "gp", "cmaes")
EXTRA = "pip install 'jaxlabs[search]'"


def optuna_module(flag: str, what: str):
    """Optuna, or a SearchError naming the extra that installs it."""
    try:
        import optuna
    except ImportError:
        raise SearchError(flag, f"{what} needs Optuna, which is not installed; {EXTRA}") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def check_sampler(name: str) -> None:
    """SearchError (one line) for a sampler that cannot run here; imports nothing for halton."""
    if name not in SAMPLERS:
        raise SearchError("sampler", f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    if name == "halton":
        return
    optuna_module("sampler", f"--sampler {name}")
    needs = {"gp": ("torch", "Optuna's GP sampler needs PyTorch (pip install torch)"),
             "cmaes": ("cmaes", f"Optuna's CMA-ES sampler needs the cmaes package; {EXTRA}")}
    if name in needs:
        import importlib.util

        module, message = needs[name]
        if importlib.util.find_spec(module) is None:
            raise SearchError("sampler", message)


def distributions(space) -> dict:
    """name -> Optuna distribution of every varied dimension (a range: float, log where declared;
    a list: categorical)."""
    optuna = optuna_module("sampler", "an Optuna sampler")
    out = {}
    for d in space:
        if not d.varies:
            continue
        out[d.name] = (optuna.distributions.FloatDistribution(d.low, d.high, log=d.log) if d.is_range
                       else optuna.distributions.CategoricalDistribution(list(d.values)))
    return out


def sampler_of(name: str, seed: int):
    optuna = optuna_module("sampler", f"--sampler {name}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant_liar and GP are marked experimental
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if name == "tpe":
            return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
        if name == "gp":
            return optuna.samplers.GPSampler(seed=seed)
        return optuna.samplers.CmaEsSampler(seed=seed)


def round_seed(seed: int, round_: int) -> int:
    """The sampler's seed in a round: its own for every round, the same for the same search."""
    return (seed * 1_000_003 + round_) % 2 ** 32


def frozen(trial: dict, dists: dict):
    """A trial record (:func:`trial_records`) as Optuna's FrozenTrial."""
    optuna = optuna_module("sampler", "an Optuna sampler")
    state = optuna.trial.TrialState[trial["state"]]
    return optuna.trial.create_trial(
        state=state, value=trial["value"], params={k: trial["params"][k] for k in dists},
        distributions=dists, intermediate_values={int(k): v for k, v in trial["intermediate"].items()},
        user_attrs=trial["attrs"])


def propose(space, earlier: Sequence[dict], n: int, sampler: str, seed: int, round_: int, higher: bool) -> list[dict]:
    """``n`` points (name -> value of each varied dimension) asked of Optuna's ``sampler`` at once,
    in a study told the ``earlier`` trial records in their order."""
    optuna = optuna_module("sampler", f"--sampler {sampler}")
    dists = distributions(space)
    study = optuna.create_study(direction="maximize" if higher else "minimize",
                                sampler=sampler_of(sampler, round_seed(seed, round_)))
    study.add_trials([frozen(t, dists) for t in earlier if set(t["params"]) == set(dists)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [dict(study.ask(dists).params) for _ in range(n)]


def trial_records(result, round_: int, test_metric: str) -> list[dict]:
    """Each member of a finished round as a plain trial record: params, state (COMPLETE, PRUNED at
    its rung with its value there, FAIL when diverged), the validation metric by epoch as
    intermediate values, and its seed, bracket, rungs, lineage and round as attributes."""
    searched = [d for d in result.space if d.varies]
    parents: dict[int, list] = {}
    for e in result.lineage:
        parents.setdefault(e["member"], []).append([e["epoch"], e["parent"]])
    out = []
    for i, m in enumerate(result.members):
        status = STATUS_NAMES[int(result.final["status"][i])]
        stop = int(result.final["stop_epoch"][i])
        curve = np.asarray(result.curves[result.metric][i, :stop], np.float64)
        # a pruned member's value is its last intermediate value (its rung's), as Optuna's pruned trials
        value = float(result.final[result.metric][i]) if result.metric in result.final and status != "pruned" \
            else float(curve[-1]) if len(curve) else math.nan
        state = "FAIL" if status == "diverged" or not math.isfinite(value) else \
            "PRUNED" if status == "pruned" else "COMPLETE"
        test = float(result.final[test_metric][i]) if test_metric in result.final else None
        attrs = {"round": round_, "member": i, "seed": int(m.seed), "status": status, "epochs_trained": stop,
                 "method": result.method, "metric": result.metric, "rungs_passed": int(result.reached[i]),
                 test_metric: test if test is not None and math.isfinite(test) else None}
        if result.bracket is not None:
            attrs["bracket"] = int(result.bracket[i])
        if i in parents:
            attrs["lineage"] = parents[i]
        out.append({"params": {d.name: m.static[d.name] if d.name in m.static else float(np.float32(m.hparams[d.name]))
                               for d in searched},
                    "state": state, "value": None if state == "FAIL" else value,
                    "intermediate": {str(e + 1): float(v) for e, v in enumerate(curve) if math.isfinite(v)},
                    "attrs": attrs})
    return out


def round_summary(trials: Sequence[dict], round_: int, higher: bool, test_metric: str) -> dict:
    """A round in a few numbers: its members, member-epochs and the best complete member."""
    done = [t for t in trials if t["state"] == "COMPLETE"]
    best = min(done, key=lambda t: -t["value"] if higher else t["value"]) if done else None
    return {"round": round_, "members": len(trials), "member_epochs": sum(t["attrs"]["epochs_trained"] for t in trials),
            "best": None if best is None else {"member": best["attrs"]["member"], "params": best["params"],
                                              "value": best["value"], test_metric: best["attrs"].get(test_metric)}}


# ----------------------------------------------------------------------------- the storage
def open_study(url: str, name: str, space, higher: Optional[bool] = None, metric: Optional[str] = None):
    """The Optuna study ``name`` in the storage at ``url``: created when new and ``higher`` is
    given (its space and metric recorded), else None when new; SearchError (one line) for a
    storage that does not open or a study of another space or metric."""
    optuna = optuna_module("storage", "--storage")
    try:
        storage = optuna.storages.get_storage(url)
        names = [s.study_name for s in storage.get_all_studies()]
        if name not in names and higher is None:
            return None
        study = optuna.create_study(storage=storage, study_name=name, load_if_exists=True,
                                    direction="maximize" if higher or higher is None else "minimize")
    except Exception as e:  # noqa: BLE001 - sqlalchemy's and Optuna's errors differ by storage
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise SearchError("storage", f"cannot open the Optuna storage {url!r} ({first}); give a storage URL "
                                     "Optuna opens, e.g. sqlite:///study.db") from None
    mine = [d.to_json() for d in space if d.varies]
    saved = study.user_attrs.get("jaxlabs_space")
    if saved is None and not study.trials and higher is not None:
        study.set_user_attr("jaxlabs_space", mine)
        study.set_user_attr("jaxlabs_metric", metric)
        return study
    diff = space_difference(saved or [], mine)
    if metric is not None and study.user_attrs.get("jaxlabs_metric", metric) != metric:
        diff.append(f"it ranks on {study.user_attrs['jaxlabs_metric']}, this search on {metric}")
    if diff:
        raise SearchError("study_name", f"the study {name!r} searched another space ({'; '.join(diff)}); give the "
                                        "same ranges, or another --study-name")
    return study


def space_difference(saved: list[dict], mine: list[dict]) -> list[str]:
    """What differs between two spaces (:meth:`Dimension.to_json` lists), one phrase a dimension."""
    a, b = {d["name"]: d for d in saved}, {d["name"]: d for d in mine}
    out = [f"{n} searched there, not here" for n in a if n not in b]
    out += [f"{n} searched here, not there" for n in b if n not in a]
    for n in a:
        if n in b and json.dumps(a[n], sort_keys=True) != json.dumps(b[n], sort_keys=True):
            out.append(f"{n} {_text(a[n])} there, {_text(b[n])} here")
    return out


def _text(d: dict) -> str:
    return f"{d['low']:g}..{d['high']:g}" if d["low"] is not None else ",".join(map(str, d["values"]))


def study_trials(study) -> list[dict]:
    """Every finished trial of a study as a trial record, in their order."""
    out = []
    for t in study.get_trials(deepcopy=False):
        if not t.state.is_finished():
            continue
        out.append({"params": dict(t.params), "state": t.state.name, "value": t.value,
                    "intermediate": {str(k): v for k, v in t.intermediate_values.items()},
                    "attrs": dict(t.user_attrs)})
    return out


def write_trials(study, space, trials: Sequence[dict]) -> None:
    """Trial records into the study: in one transaction where the storage is Optuna's RDB storage
    (a commit per trial costs some 20-100 ms on SQLite), else one call a trial (``add_trials``)."""
    dists = distributions(space)
    made = [frozen(t, dists) for t in trials]
    rdb = _rdb_backend(study)
    if rdb is None or not made:
        study.add_trials(made)
        return
    import sqlalchemy
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    # what create_new_trial does, for every trial, and the intermediate values as plain rows (Optuna's
    # own path looks each one up before it inserts it: three queries a value)
    bare = [frozen({**t, "intermediate": {}}, dists) for t in trials]
    Value = models.TrialIntermediateValueModel
    values = []
    with _create_scoped_session(rdb.scoped_session) as session:
        models.StudyModel.find_or_raise_by_id(study._study_id, session, for_update=True)
        for t, template in zip(trials, bare):
            row = rdb._get_prepared_new_trial(study._study_id, template, session)
            values += [{"trial_id": row.trial_id, "step": int(k), "intermediate_value": stored,
                        "intermediate_value_type": kind} for k, v in t["intermediate"].items()
                       for stored, kind in [Value.intermediate_value_to_stored_repr(float(v))]]
        if values:  # one executemany for every value of the round
            session.execute(sqlalchemy.insert(Value.__table__), values)


def _rdb_backend(study):
    """The study's RDB storage when it is one whose batch path this Optuna has, else None."""
    import optuna

    storage = getattr(study, "_storage", None)
    storage = getattr(storage, "_backend", storage)  # Optuna wraps its RDB storage in a cache
    ok = isinstance(storage, optuna.storages.RDBStorage) and hasattr(storage, "_get_prepared_new_trial")
    return storage if ok else None


def rounds_in(trials: Sequence[dict]) -> list[int]:
    return sorted({int(t["attrs"]["round"]) for t in trials if "round" in t["attrs"]})


def first_round(trials: Optional[Sequence[dict]]) -> int:
    """The round a run starts at: after the last one recorded."""
    done = rounds_in(trials or [])
    return done[-1] + 1 if done else 0
