"""What a search may try: each option of the task fixed, a list of values, or (a traced number) a
range, and the population sampled from it quasi-randomly.

A range ``LOW..HIGH`` of an option declared log-scale (:attr:`jaxlabs.options.Option.log`:
learning rates, weight decay) is sampled log-uniformly, any other uniformly; a list is sampled
uniformly over its values. Static options take a list (each value compiles its own program) or
one value. Points come from scipy's scrambled Halton sequence (any population size, evenly spread
in every dimension at once), seeded by the search's seed.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
from scipy.stats import qmc

from jaxlabs.options import Option, OptionError, by_name
from jaxlabs.sweep import Member


@dataclass(frozen=True)
class Dimension:
    """One option of the search: ``values`` (a list; one value: fixed) or a range ``low..high``
    (``log``: sampled log-uniformly)."""

    option: Option
    values: tuple = ()
    low: Optional[float] = None
    high: Optional[float] = None

    @property
    def name(self) -> str:
        return self.option.name

    @property
    def is_range(self) -> bool:
        return self.low is not None

    @property
    def log(self) -> bool:
        return self.option.log

    @property
    def varies(self) -> bool:
        return self.is_range or len(self.values) > 1

    def at(self, u: float) -> Any:
        """The value at ``u`` in [0, 1): the range's point (log or linear) or a list entry."""
        if not self.is_range:
            return self.values[min(int(u * len(self.values)), len(self.values) - 1)]
        if self.log:
            return float(math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low))))
        return float(self.low + u * (self.high - self.low))

    def clip(self, value: float) -> float:
        """A perturbed number kept inside the range (or the span of the listed values)."""
        lo, hi = (self.low, self.high) if self.is_range else (min(self.values), max(self.values))
        return float(min(max(value, lo), hi))

    def text(self) -> str:
        if self.is_range:
            return f"{self.low:g}..{self.high:g} ({'log-uniform' if self.log else 'uniform'})"
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in self.values)

    def to_json(self) -> dict:
        return {"name": self.name, "low": self.low, "high": self.high, "log": self.log,
                "values": list(self.values)}


def parse_dimension(option: Option, text: str, owner: str = "") -> Dimension:
    """``LOW..HIGH`` (a traced number), ``A,B,C`` or one value for ``option`` (a free-text option,
    such as a folder or a formula, takes its text as one value); an OptionError of one line for
    anything else (a range of a static or non-numeric option, low >= high, a log range
    that reaches 0 or below, a value outside the option's own range)."""
    where = f"{owner}: " if owner else ""
    text = text.strip()
    if option.type is str and option.choices is None:  # free text (a path, a formula): one value, as given
        return Dimension(option, values=(_parsed(option, text, where),))
    if ".." in text:
        if option.type not in (int, float) or option.choices is not None:
            raise OptionError(f"{where}{option.name} is {option.range_text()}, not a number: give a list of "
                              "values (A,B,C), not a range")
        if not option.traced:
            raise OptionError(f"{where}{option.name} is static (each value compiles its own program): give a "
                              f"list of values, e.g. {option.name}=A,B,C, not a range")
        lo_text, _, hi_text = text.partition("..")
        low, high = (_number(option, t.strip(), where) for t in (lo_text, hi_text))
        if low >= high:
            raise OptionError(f"{where}{option.name} range {text!r} has low >= high; give LOW..HIGH with LOW < HIGH")
        if option.log and low <= 0:
            raise OptionError(f"{where}{option.name} is searched on a log scale, so its range must be > 0; "
                              f"got {text!r} (e.g. 1e-4..1e-1)")
        return Dimension(option, low=low, high=high)
    items = [t.strip() for t in text.split(",")]
    if not text or any(not t for t in items):
        raise OptionError(f"{where}{option.name}: {text!r} is empty or has an empty item; give a value, "
                          "a list A,B,C" + (" or a range LOW..HIGH" if option.traced else ""))
    values = []
    for t in items:
        values.append(_number(option, t, where) if option.type is float else _parsed(option, t, where))
    return Dimension(option, values=tuple(dict.fromkeys(values)))


def _number(option: Option, text: str, where: str) -> float:
    try:
        return float(option.parse(text))
    except OptionError as e:
        said = str(e)
        named = said if said.startswith(option.name) else f"{option.name}: {said}"
        raise OptionError(f"{where}{named}") from None


def _parsed(option: Option, text: str, where: str) -> Any:
    try:
        return option.parse(text)
    except OptionError as e:
        said = str(e)
        named = said if said.startswith(option.name) else f"{option.name}: {said}"
        raise OptionError(f"{where}{named}") from None


def fixed(option: Option, value: Any) -> Dimension:
    return Dimension(option, values=(value,))


def search_space(options: Sequence[Option], given: dict[str, Dimension]) -> list[Dimension]:
    """Every option of a task as a dimension: those ``given``, the rest fixed at their defaults."""
    table = by_name(options)
    return [given[n] if n in given else fixed(o, o.default) for n, o in table.items()]


def sample(space: Sequence[Dimension], members: int, seed: int) -> list[dict]:
    """``members`` points of the space (every option's value per point), quasi-random from ``seed``."""
    varying = [d for d in space if d.varies]
    u = (qmc.Halton(d=len(varying), scramble=True, seed=seed).random(members) if varying
         else np.zeros((members, 0)))
    points = []
    for row in u:
        point = {d.name: d.values[0] for d in space if not d.varies}
        point.update({d.name: d.at(float(x)) for d, x in zip(varying, row)})
        points.append({d.name: point[d.name] for d in space})
    return points


def member_seed(search_seed: int, i: int) -> int:
    """Member ``i``'s training seed (its initialisation and data order) in the search seeded
    ``search_seed``: each search draws its own, apart from the sampling."""
    return search_seed * 100_003 + i


def population(task, space: Sequence[Dimension], members: int, seed: int, start: int = 0) -> list[Member]:
    """The members of a search: sampled points, each with its static configuration validated by the
    task (and its :meth:`~jaxlabs.tasks.base.Task.check`) and its traced numbers. ``start``: skip
    that many points of the sequence first (a later round of the search continues it)."""
    return members_at(task, space, sample(space, start + members, seed)[start:], seed, start)


def members_at(task, space: Sequence[Dimension], points: Sequence[dict], seed: int, start: int = 0) -> list[Member]:
    """Members at given ``points`` (every option's value), the ``start + i``-th seeds of the search."""
    out, checked = [], set()
    for i, point in enumerate(points):
        static = task.resolve_static(**{k: v for k, v in point.items() if k in task.static_defaults})
        key = json.dumps(static, sort_keys=True, default=str)
        if key not in checked:
            task.check(static)
            checked.add(key)
        numbers = task.hparams(**{k: v for k, v in point.items() if k in task.traced_defaults})
        varied = [d.name for d in space if d.varies]
        label = " ".join(f"{k}={_fmt(point[k])}" for k in varied) or "default"
        out.append(Member(label, static, numbers, member_seed(seed, start + i)))
    return out


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
