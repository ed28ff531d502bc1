"""The library's face: one call for a sweep or a search on a lab, a task or a model of one's own.

    import jaxlabs
    jaxlabs.sweep("boston", lr=[0.01, 0.001], seeds=3).table()
    jaxlabs.search("boston", lr=jaxlabs.loguniform(1e-3, 0.3), members=27).best()
    net = jaxlabs.model(lambda rngs: Net(rngs), optimizer=lambda lr: optax.adam(lr),
                        loss=jaxlabs.optim.cross_entropy, data=(x, y), epochs=20)
    jaxlabs.sweep(net, lr=[0.01, 0.1]).save("runs/net")

Axes and spaces are Python values: a number (every member takes it), a list (a sweep's grid: one
setting per value; a search samples among them), or, in a search, a range of a traced number:
:func:`loguniform` / :func:`uniform`. A static option's values each compile their own program.
The engine's options (``plan=``, ``devices=``, ``precision=``, ``chunk=``, ``memory_limit=``,
...: :class:`jaxlabs.engine.options.EngineOptions`) are keywords too. Everything is checked
before anything is compiled or written: a bad value is a :class:`LibraryError` (a ValueError) of
one line saying what to change. Both train once; the results (:mod:`jaxlabs.outcomes`) write
their files from what was trained.
"""
from __future__ import annotations

import dataclasses
import itertools
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Sequence

from jaxlabs.engine.options import EngineOptions
from jaxlabs.engine.plans import parse_plan, parse_precision
from jaxlabs.options import OptionError, by_name

if TYPE_CHECKING:
    from jaxlabs.tasks.base import Task

ENGINE_FIELDS = tuple(f.name for f in dataclasses.fields(EngineOptions))
SEARCH_FIELDS = ("eta", "min_epochs", "rungs", "pbt_every", "quantile", "resample")
# what a search tries when the space leaves the learning rate out, as the command: three decades
DEFAULT_LR = (1e-4, 1e-1)


class LibraryError(OptionError):
    """A call that cannot run as given; one line saying what to change. Nothing was compiled."""


@dataclass(frozen=True)
class Range:
    """A range of a traced number for a search: sampled log-uniformly (``log``) or uniformly."""

    low: float
    high: float
    log: bool

    def __repr__(self) -> str:
        return f"{'loguniform' if self.log else 'uniform'}({self.low:g}, {self.high:g})"


def loguniform(low: float, high: float) -> Range:
    """A search range sampled log-uniformly (learning rates, weight decay): 0 < low < high."""
    return Range(float(low), float(high), True)


def uniform(low: float, high: float) -> Range:
    """A search range sampled uniformly: low < high."""
    return Range(float(low), float(high), False)


def model(module, *, optimizer, loss, data, epochs: int = 20, batch_size: int = 32, name: str = "own-model",
          data_name: str | None = None, classify: bool | None = None) -> Task:
    """Your own model as a task a sweep or a search trains: ``module`` a function of ``nnx.Rngs``
    that builds an ``nnx.Module`` (``lambda rngs: Net(rngs)``: each member built from its own key)
    or a Linen module; ``optimizer`` an optax factory whose arguments are the numbers a sweep varies
    (``lambda lr: optax.adam(lr)``); ``loss(outputs, targets)`` a batch mean
    (``jaxlabs.optim.cross_entropy``); ``data`` ``(x, y)`` arrays (split 4:1:1) or the six named
    splits. See :func:`jaxlabs.tasks.own_model.model_task`."""
    from jaxlabs.tasks.own_model import model_task

    return model_task(module, optimizer, loss, data, name=name, data_name=data_name, epochs=epochs,
                      batch_size=batch_size, classify=classify)


def task_of(what) -> Task:
    """A lab's task by name, a Task as it is (``jaxlabs.model``'s among them)."""
    from jaxlabs.tasks import TASKS, get_task  # here: the labs' modules load sklearn, tfds (`import jaxlabs` stays light)
    from jaxlabs.tasks.base import Task

    if isinstance(what, Task):
        return what
    if isinstance(what, str):
        if what not in TASKS:
            raise LibraryError(f"unknown lab {what!r}; the labs are {', '.join(TASKS)} (or give a Task, or "
                               "jaxlabs.model(...) for your own model)")
        return get_task(what)
    raise LibraryError(f"cannot train a {type(what).__name__}: give a lab's name ({', '.join(list(TASKS)[:3])}, "
                       "...), a Task, or jaxlabs.model(...) for your own model")


def split_keywords(task: Task, keywords: dict, extra: Sequence[str] = ()) -> tuple[dict, dict, dict]:
    """(the task's options, the engine's options, ``extra`` ones) from a call's keywords; an
    unknown name is a LibraryError naming the task's options."""
    table = by_name(task.options)
    axes, engine, other = {}, {}, {}
    for k, v in keywords.items():
        if k in table:
            axes[k] = v
        elif k in ENGINE_FIELDS:
            engine[k] = v
        elif k in extra:
            other[k] = v
        else:
            raise LibraryError(f"{task.name} has no option {k!r}; its options are {', '.join(table)} (and the "
                               f"engine's: {', '.join(ENGINE_FIELDS[:5])}, ...)")
    return axes, engine, other


def engine_options(given: dict, default: EngineOptions = EngineOptions()) -> EngineOptions:
    """EngineOptions with ``given`` fields; ``plan`` may be text ("vmap", "map", "hybrid:4", "auto")."""
    for name, parse in (("plan", parse_plan), ("precision", parse_precision)):
        if isinstance(given.get(name), str):
            try:
                given = {**given, name: parse(given[name])}
            except ValueError as e:
                raise LibraryError(f"{name}: {e}") from None
    options = dataclasses.replace(default, **given)
    try:
        options.device_list()  # more devices than there are: said now, before anything compiles
    except ValueError as e:
        raise LibraryError(f"devices: {e}") from None
    return options


def _values(option, value) -> list:
    """An axis as the option's values: a number or a list of them, each validated."""
    if isinstance(value, Range):
        raise LibraryError(f"{option.name}={value!r}: a sweep takes a value or a list of values; give a list "
                           f"(e.g. {option.name}=[...]) or use jaxlabs.search for a range")
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise LibraryError(f"{option.name}=[]: give at least one value")
    return list(dict.fromkeys(option.validate(v, option.name) for v in items))


def sweep_study(task: Task, axes: dict) -> tuple[Any, list]:
    """The grid of ``axes`` as a study: one setting per combination of the listed values (the
    options given one value are the study's own); its settings."""
    from jaxlabs.reproduce import sweep_study as lr_study
    from jaxlabs.studies import Setting

    table = by_name(task.options)
    values = {k: _values(table[k], v) for k, v in axes.items()}
    fixed = {k: v[0] for k, v in values.items() if len(v) == 1}
    varied = {k: v for k, v in values.items() if len(v) > 1}
    static = task.resolve_static(**{k: v for k, v in fixed.items() if k in task.static_defaults})
    traced = task.hparams(**{k: v for k, v in fixed.items() if k in task.traced_defaults})
    if set(varied) <= {"lr"}:  # the command's study: one setting per learning rate
        lrs = varied.get("lr", [traced["lr"]])
        study = lr_study(task, static, lrs, traced)
    else:
        settings = []
        for combo in itertools.product(*varied.values()):
            point = dict(zip(varied, combo))
            label = " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in point.items())
            settings.append(Setting(label, static={k: v for k, v in point.items() if k in task.static_defaults},
                                    traced={k: v for k, v in point.items() if k in task.traced_defaults}))
        base = lr_study(task, static, [traced["lr"]], traced)
        study = dataclasses.replace(base, key=f"{task.name}-sweep", title=f"Sweep of {', '.join(varied)}: "
                                    f"{task.description}", settings=tuple(settings),
                                    traced={k: v for k, v in traced.items() if k not in varied})
    for s in study.settings:  # every program's options resolved and checked before any compiles
        task.check(task.resolve_static(**{**study.static, **s.static}))
    return study, list(study.settings)


def sweep(what, *, seeds: int | Sequence[int] = 3, out=None, progress: bool = True, **axes):
    """Train every combination of ``axes`` x ``seeds`` (a count: 0..seeds-1, or the seeds) of a lab,
    a Task or your own model (:func:`model`), once; returns a :class:`jaxlabs.outcomes.SweepOutcome`
    (records, table, best, curves, figures, save). ``out``: save there too."""
    from jaxlabs.outcomes import SweepOutcome
    from jaxlabs.reproduce import study_members, study_outcome
    from jaxlabs.sweep import run_grid

    task = task_of(what)
    options, engine_given, _ = split_keywords(task, axes)
    engine = engine_options(engine_given)
    seeds = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seeds:
        raise LibraryError("seeds: give a count >= 1 or a list of seeds")
    study, settings = sweep_study(task, options)
    members = study_members(study, task, seeds, settings, False, None)
    t0 = time.perf_counter()
    result = run_grid(task, members, progress=progress, name=study.key, engine=engine)
    outcome = SweepOutcome(study_outcome(study, task, seeds, settings, members, result,
                                         round(time.perf_counter() - t0, 2), command=_command("sweep", task, axes)))
    if out is not None:
        outcome.save(out)
    return outcome


def search_space(task: Task, given: dict) -> list:
    """The search's dimensions from Python values: a number, a list, a :class:`Range`; the options
    left out fixed at their defaults (the learning rate searched over :data:`DEFAULT_LR`, and the
    task's ``search_defaults``, as the command)."""
    from jaxlabs.search.space import Dimension, fixed, parse_dimension
    from jaxlabs.search.space import search_space as full_space

    table = by_name(task.options)
    given = dict(given)
    if "lr" in table and "lr" not in given:
        given["lr"] = loguniform(*DEFAULT_LR)
    for k, v in getattr(task, "search_defaults", {}).items():
        given.setdefault(k, v)
    dims = {}
    for k, v in given.items():
        o = table[k]
        if isinstance(v, Range):
            # the option's own checks (static, numeric, inside its range, low < high, log > 0), then
            # the scale asked for, whatever the option's declared one
            o = dataclasses.replace(o, log=v.log)
            d = parse_dimension(o, f"{v.low!r}..{v.high!r}")
            dims[k] = Dimension(o, low=d.low, high=d.high)
        else:
            vals = _values(o, v)
            dims[k] = Dimension(o, values=tuple(vals)) if len(vals) > 1 else fixed(o, vals[0])
    if "epochs" in dims and len(dims["epochs"].values) > 1:
        raise LibraryError("epochs: a search has one budget; give one value (the rungs divide it)")
    return full_space(task.options, dims)


def search(what, *, members: Optional[int] = None, method: str = "halving", seed: int = 0, out=None,
           progress: bool = True,
           **space):
    """Search a lab, a Task or your own model for its best setting: ``members`` points sampled
    from ``space`` (numbers, lists, :func:`loguniform`/:func:`uniform` ranges), trained once with
    successive halving (``method="halving"``; ``eta``, ``min_epochs``, ``rungs``; ``members``
    default 27), Hyperband (``"hyperband"``: its brackets size the population) or
    population-based training (``"pbt"``; ``pbt_every``, ``quantile``, ``resample``). Returns a
    :class:`jaxlabs.outcomes.SearchOutcome`; ``out``: save there too."""
    from jaxlabs.outcomes import SearchOutcome
    from jaxlabs.search.run import SearchOptions, run_search
    from jaxlabs.search.space import population

    task = task_of(what)
    given, engine_given, how = split_keywords(task, space, SEARCH_FIELDS)
    engine = engine_options(engine_given)  # a search's default plan: vmap (the population changes)
    if method == "hyperband" and members is not None:
        raise LibraryError(f"members={members!r}: hyperband's brackets size its population (eta, min_epochs, "
                           "rungs); leave members out")
    members = 27 if members is None else members
    if not isinstance(members, int) or members < 1:
        raise LibraryError(f"members={members!r}: give a population size >= 1")
    dims = search_space(task, given)
    epochs = next(int(d.values[0]) for d in dims if d.name == "epochs") if "epochs" in task.static_defaults else None
    options = SearchOptions(method, **how)
    if epochs is not None:
        options = options.check(epochs, members)
        members = options.population_size(epochs, members)
    pop = population(task, dims, members, seed)
    result = run_search(task, pop, dims, options, engine=engine, progress=progress, name=f"{task.name} {method} search")
    outcome = SearchOutcome(result, task, _command("search", task, space))
    if out is not None:
        outcome.save(out)
    return outcome


def _command(verb: str, task: Task, keywords: dict) -> str:
    """The call, as the records and the report name it."""
    args = [repr(task.name)] + [f"{k}={v!r}" for k, v in keywords.items()]
    return f"jaxlabs.{verb}({', '.join(args)})"


__all__ = ["LibraryError", "Range", "loguniform", "model", "search", "sweep", "uniform"]
