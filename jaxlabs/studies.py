"""Every study of the lab reports as data: its settings, its grid, the report's numbers.

A :class:`Study` varies one thing. Its settings that share a static configuration run as one
vmapped program (their traced numbers differ per member); settings that change the program
(depth, width, N, ...) run one after another. Each setting carries the original report's result
so the regenerated table can put it beside the distribution over seeds and say whether it fits.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional


@dataclass(frozen=True)
class Original:
    """What the report found for one setting.

    kind "value": a number for ``metric`` (compared with the seeds' spread);
    kind "at_least": "``metric`` reached ``value`` or more" (checked against every seed);
    kind "within": "converged within ``value`` epochs" (checked against every seed);
    kind "never": never converged in the report's budget; kind "diverged": NaN/inf in the report.
    """

    kind: str
    value: Optional[float] = None
    metric: str = ""
    text: str = ""  # how the report put it, shown in the table


def value(metric: str, v: float, text: str = "") -> Original:
    return Original("value", v, metric, text or f"{v:g}")


def within(epochs: float, text: str = "") -> Original:
    return Original("within", epochs, "converged_epoch", text or f"within ~{epochs:g} epochs")


def at_least(metric: str, v: float, text: str = "") -> Original:
    return Original("at_least", v, metric, text or f">= {v:g}")


def never(text: str = "never converged") -> Original:
    return Original("never", None, "converged_epoch", text)


def diverged(text: str = "diverged (NaN)") -> Original:
    return Original("diverged", None, "", text)


@dataclass(frozen=True)
class Setting:
    label: str
    static: dict = field(default_factory=dict)  # overrides of the study's static config
    traced: dict = field(default_factory=dict)  # overrides of the study's traced numbers
    originals: tuple[Original, ...] = ()


@dataclass(frozen=True)
class Claim:
    """A comparison the report drew across settings, checked on the seeds' medians."""

    text: str
    check: Callable[[dict[str, dict]], Optional[bool]]  # label -> summary row -> holds? (None: no data)


@dataclass(frozen=True)
class Study:
    key: str  # "A-depth"
    lab: str
    title: str
    task: str
    settings: tuple[Setting, ...]
    metrics: tuple[str, ...]  # columns of the table, e.g. ("converged_epoch", "test_mse")
    static: dict = field(default_factory=dict)
    traced: dict = field(default_factory=dict)
    quick: dict = field(default_factory=dict)  # static overrides for --quick (tiny data, few epochs)
    claims: tuple[Claim, ...] = ()
    note: str = ""  # setup differences from the report, budgets
    dataset: Optional[str] = None  # a dataset that must be on this machine ("mnist", ...)
    figures: tuple[str, ...] = ("loss",)  # extra figure kinds: "fit", "true_vs_pred", "accuracy", "confusion"
    # metrics read off a curve: name -> (curve, index), e.g. {"test_acc_2k": ("test_acc", 5)}
    curve_points: dict = field(default_factory=dict)

    def vmapped_axes(self) -> list[str]:
        axes = {k for s in self.settings for k in s.traced}
        return ["seed", *sorted(axes)]

    def static_axes(self) -> list[str]:
        return sorted({k for s in self.settings for k in s.static})

    def summary_metrics(self) -> tuple[str, ...]:
        """What to summarise per setting: the table's metrics, then any other that a claim or an
        original number compares (``final_loss``, say), so no comparison lacks its values."""
        compared = [getattr(c.check, "metric", "") for c in self.claims]
        compared += [o.metric for s in self.settings for o in s.originals]
        return tuple(dict.fromkeys([*self.metrics, *(m for m in compared if m)]))


def _median(label: str, metric: str) -> Callable[[dict], Any]:
    # a setting that was not run (--quick runs two) or a metric not summarised: no value
    return lambda rows: rows.get(label, {}).get(f"{metric}_median")


# A comparison of two settings is decided when at least this share of the (seed of a, seed of b)
# pairs agree with it (it holds) or at most 1 - this share do (it does not): for 5 seeds against 5,
# the one-sided Mann-Whitney U test at the 5% level (U >= 21 of 25). In between the settings
# overlap and the order of their medians is seed noise (``jaxlabs.reproduce.judge_claim``).
CLEAR_PAIRS = 0.84


def pair_share(xs, ys) -> Optional[float]:
    """The share of pairs (x from ``xs``, y from ``ys``) with x < y, ties counting half: the
    Mann-Whitney U statistic over its maximum. None when either side has no value."""
    xs, ys = [float(x) for x in xs], [float(y) for y in ys]
    if not xs or not ys:
        return None
    wins = sum((x < y) + 0.5 * (x == y) for x in xs for y in ys)
    return wins / (len(xs) * len(ys))


def lower(metric: str, a: str, b: str) -> Callable[[dict], bool]:
    """Setting ``a``'s median ``metric`` is below ``b``'s (a missing median counts as worse).
    ``check.pairs(rows)`` gives the share of seed pairs that agree (see :data:`CLEAR_PAIRS`);
    ``check.metric`` names the metric, so the report summarises it even when it is no column."""

    def check(rows):
        x, y = _median(a, metric)(rows), _median(b, metric)(rows)
        if x is None and y is None:
            return None  # neither produced a value (e.g. no seed converged): cannot tell
        return x is not None and (y is None or x < y)

    def pairs(rows):
        if a not in rows or b not in rows:
            return None
        return pair_share(rows[a].get(metric, ()), rows[b].get(metric, ()))

    check.pairs, check.metric = pairs, metric
    return check


def higher(metric: str, a: str, b: str) -> Callable[[dict], Optional[bool]]:
    """Setting ``a``'s median ``metric`` is above ``b``'s (with ``.pairs`` as :func:`lower`)."""
    return lower(metric, b, a)


def more_converged(a: str, b: str) -> Callable[[dict], Optional[bool]]:
    def check(rows):
        if a not in rows or b not in rows:
            return None
        return rows[a]["converged"] / rows[a]["members"] > rows[b]["converged"] / rows[b]["members"]

    return check


REGISTRY: dict[str, Study] = {}


def register(*studies: Study) -> None:
    for s in studies:
        if s.key in REGISTRY:
            raise ValueError(f"study {s.key} defined twice")
        REGISTRY[s.key] = s


def resolve(name: str) -> list[Study]:
    """A study key ("A-depth"), a lab letter ("A": all its studies) or "all"."""
    from jaxlabs import lab_studies  # noqa: F401  (registers every study)

    if name.lower() == "all":
        return list(REGISTRY.values())
    if name.upper() in {s.lab for s in REGISTRY.values()}:
        return [s for s in REGISTRY.values() if s.lab == name.upper()]
    for key, s in REGISTRY.items():
        if key.lower() == name.lower():
            return [s]
    raise ValueError(f"unknown study {name!r}; run --list to see them (or give a lab letter, or all)")
