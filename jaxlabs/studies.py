"""Every study of the lab reports as data: its settings, its grid, the report's numbers and
conclusions.

A :class:`Study` varies one thing. Its settings that share a static configuration run as one
static group of the engine (their traced numbers differ per member: one compiled program under
the group's plan, or a few with waves and compaction); settings that change the program (depth,
width, N, ...) run one group after another. Each setting carries the original report's result
so the regenerated table can put it beside the distribution over seeds and say whether it fits.
The report's conclusions are typed claims (:class:`Compare`, :class:`MoreConverged`,
:class:`Similar`, :class:`GainsMore`), each decided by a one-sided test over the seeds, since a
single run per setting, as the reports had, cannot tell a difference from seed noise. The studies
themselves are in :mod:`jaxlabs.catalogue`.
"""
from __future__ import annotations

import abc

from dataclasses import dataclass, field
from enum import Enum
from typing import Callable, ClassVar, Optional

import numpy as np
from scipy.stats import fisher_exact, mannwhitneyu


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


# ---------------------------------------------------------------- the report's conclusions
# Every conclusion is decided by a one-sided test over the seeds at this level (it rejects when
# p <= the level), whatever the seed count: a share-of-pairs threshold (the 84% that was used) is
# the right one for 5 seeds against 5 only.
SEED_TEST_LEVEL = 0.05


class Outcome(str, Enum):
    HOLDS = "holds"
    FAILS = "does not hold"
    NOISE = "within the seeds' noise"
    MEDIANS_ONLY = "medians only"  # the seeds could not be tested: never counted as holding
    NO_DATA = "undecided: no data"


@dataclass(frozen=True)
class ClaimVerdict:
    """How the seeds judge one claim. ``p``: the test's p-value for the claim, ``p_opposite``: for
    its opposite; ``share``: the share of (seed, seed) pairs that agree with the claim (ties half);
    ``leaning``: whether the point estimates (medians) fall the claimed way (None: equal)."""

    text: str
    outcome: Outcome
    p: Optional[float] = None
    p_opposite: Optional[float] = None
    share: Optional[float] = None
    leaning: Optional[bool] = None
    why: str = ""  # for NO_DATA and MEDIANS_ONLY: what was missing


MetricDirection = Callable[[str], bool]  # metric -> is larger better (the task declares it)


@dataclass(frozen=True)
class Claim(abc.ABC):
    """A conclusion the report drew across settings, in its own words (``text``); each kind of
    claim says which settings it compares and how the seeds decide it."""

    text: str
    test: ClassVar[str]  # how the seeds decide it, named in each report.md
    estimate: ClassVar[str] = "medians"  # the point estimates whose order ``leaning`` gives

    def metrics(self) -> tuple[str, ...]:
        """The metrics it reads, so every study summarises them."""
        return ()

    @abc.abstractmethod
    def labels(self) -> tuple[str, ...]:
        """The settings it compares."""

    @abc.abstractmethod
    def judge(self, rows: dict[str, dict], higher_is_better: MetricDirection) -> ClaimVerdict:
        """Decide the claim on ``rows`` (setting label -> summary with per-seed values)."""


@dataclass(frozen=True)
class Compare(Claim):
    """Setting ``a`` is better than ``b`` on ``metric``, better as the task declares the metric's
    direction. ``higher`` overrides it for a claim about a metric with no natural better ("costs
    more time", "a higher final train loss"): True claims a's values are higher, False lower."""

    metric: str
    a: str
    b: str
    higher: Optional[bool] = None
    test: ClassVar[str] = ("a comparison of two settings by a one-sided Mann-Whitney U test on the seeds' "
                           "values (a seed that did not converge counts as the slowest)")

    def metrics(self):
        return (self.metric,)

    def labels(self):
        return (self.a, self.b)

    def judge(self, rows, higher_is_better):
        xs, ys = seed_values(rows, self.a, self.metric), seed_values(rows, self.b, self.metric)
        missing = no_values(self, xs, ys)
        if missing:
            return ClaimVerdict(self.text, Outcome.NO_DATA, why=missing)
        higher = higher_is_better(self.metric) if self.higher is None else self.higher
        p, p_opposite = mann_whitney(xs, ys, higher)
        return ClaimVerdict(self.text, decide(p, p_opposite), p, p_opposite, pair_share(xs, ys, higher),
                            order(np.median(xs), np.median(ys), higher))


@dataclass(frozen=True)
class MoreConverged(Claim):
    """Setting ``a`` converges more often than ``b`` (a diverged seed did not converge)."""

    a: str
    b: str
    test: ClassVar[str] = ("\"converges more often\" by a one-sided Fisher exact test on the counts of seeds "
                           "that converged and did not")
    estimate: ClassVar[str] = "converged shares"

    def labels(self):
        return (self.a, self.b)

    def judge(self, rows, higher_is_better):
        if self.a not in rows or self.b not in rows:
            return ClaimVerdict(self.text, Outcome.NO_DATA, why=f"{self.b if self.a in rows else self.a} was not run")
        (ca, na), (cb, nb) = ((rows[s]["converged"], rows[s]["members"]) for s in (self.a, self.b))
        table = [[ca, na - ca], [cb, nb - cb]]
        p = float(fisher_exact(table, alternative="greater").pvalue)
        p_opposite = float(fisher_exact(table, alternative="less").pvalue)
        return ClaimVerdict(self.text, decide(p, p_opposite), p, p_opposite,
                            pair_share(np.arange(na) < ca, np.arange(nb) < cb, higher=True),  # 1: converged
                            order(ca / na, cb / nb, higher=True))


@dataclass(frozen=True)
class Similar(Claim):
    """Settings ``a`` and ``b`` differ by less than ``margin`` on ``metric`` ("10 epochs change
    little"): an equivalence, so it takes two tests, one against each side of the margin."""

    metric: str
    a: str
    b: str
    margin: float
    test: ClassVar[str] = ("\"within a margin\" by two one-sided Mann-Whitney U tests on the values shifted "
                           "by the margin (TOST: it holds when both reject, and does not hold when a "
                           "one-sided test at half the level finds the difference beyond the margin)")

    def metrics(self):
        return (self.metric,)

    def labels(self):
        return (self.a, self.b)

    def judge(self, rows, higher_is_better):
        xs, ys = seed_values(rows, self.a, self.metric), seed_values(rows, self.b, self.metric)
        missing = no_values(self, xs, ys)
        if missing:
            return ClaimVerdict(self.text, Outcome.NO_DATA, why=missing)
        m = self.margin
        above_lower_edge, _ = mann_whitney(xs + m, ys, higher=True)  # a - b > -margin
        below_upper_edge, _ = mann_whitney(xs - m, ys, higher=False)  # a - b < margin
        beyond_upper, _ = mann_whitney(xs - m, ys, higher=True)  # a - b > margin
        beyond_lower, _ = mann_whitney(xs + m, ys, higher=False)  # a - b < -margin
        p = max(above_lower_edge, below_upper_edge)
        p_opposite = min(1.0, 2 * min(beyond_upper, beyond_lower))  # two ways to differ: Bonferroni
        share = float(np.mean(np.abs(xs[:, None] - ys[None, :]) < m))
        return ClaimVerdict(self.text, decide(p, p_opposite), p, p_opposite, share,
                            bool(abs(np.median(xs) - np.median(ys)) < m))


@dataclass(frozen=True)
class GainsMore(Claim):
    """Setting ``a`` gains more than ``b`` between two points of one curve (``start`` and ``end``,
    metrics of ``Study.curve_points``): "accuracy jumps when the lr drops". A gain is an
    improvement in the curve's declared direction, taken per seed."""

    start: str
    end: str
    a: str
    b: str
    test: ClassVar[str] = "a larger gain along a curve by a one-sided Mann-Whitney U test on each seed's gain"
    estimate: ClassVar[str] = "median gains"

    def metrics(self):
        return (self.start, self.end)

    def labels(self):
        return (self.a, self.b)

    def judge(self, rows, higher_is_better):
        sign = 1.0 if higher_is_better(self.end) else -1.0
        ends = {s: seed_values(rows, s, self.end) for s in (self.a, self.b)}
        starts = {s: seed_values(rows, s, self.start) for s in (self.a, self.b)}
        missing = no_values(self, ends[self.a], ends[self.b]) or no_values(self, starts[self.a], starts[self.b])
        if missing:
            return ClaimVerdict(self.text, Outcome.NO_DATA, why=missing)
        unpaired = [s for s in (self.a, self.b) if starts[s].size != ends[s].size]
        if unpaired:  # some seed lacks one of the two points: no per-seed gain to test
            gain = {s: sign * (np.median(ends[s]) - np.median(starts[s])) for s in (self.a, self.b)}
            return ClaimVerdict(self.text, Outcome.MEDIANS_ONLY, leaning=order(gain[self.a], gain[self.b], True),
                                why=f"{', '.join(unpaired)}: not every seed has both {self.start} and {self.end}")
        xs, ys = (sign * (ends[s] - starts[s]) for s in (self.a, self.b))
        p, p_opposite = mann_whitney(xs, ys, higher=True)
        return ClaimVerdict(self.text, decide(p, p_opposite), p, p_opposite, pair_share(xs, ys, higher=True),
                            order(np.median(xs), np.median(ys), higher=True))


def seed_values(rows: dict[str, dict], label: str, metric: str) -> Optional[np.ndarray]:
    """A setting's per-seed values of ``metric`` (None: the setting was not run). Epochs to
    converge exist only for seeds that converged; every other seed counts as slower (inf)."""
    if label not in rows:
        return None
    values = np.asarray(rows[label].get(metric, ()), np.float64)
    if metric == "converged_epoch":
        values = np.r_[values, np.full(rows[label]["members"] - values.size, np.inf)]
    return values


def no_values(claim: Claim, *values: Optional[np.ndarray]) -> str:
    """Why ``claim`` cannot be tested on ``values`` (one array per setting it compares), or ""."""
    labels = claim.labels()
    for label, v in zip(labels, values):
        if v is None:
            return f"{label} was not run"
        if not v.size:
            return f"no seed of {label} gave a value"
    if not any(np.isfinite(v).any() for v in values):  # epochs to converge: no seed converged
        return f"no seed of {' or '.join(labels)} gave a value"
    return ""


def mann_whitney(xs: np.ndarray, ys: np.ndarray, higher: bool) -> tuple[float, float]:
    """One-sided Mann-Whitney U p-values that ``xs`` are higher (``higher``) or lower than ``ys``,
    and the same for the opposite direction. Exact for small samples without ties."""
    claimed, opposite = ("greater", "less") if higher else ("less", "greater")
    return (float(mannwhitneyu(xs, ys, alternative=claimed).pvalue),
            float(mannwhitneyu(xs, ys, alternative=opposite).pvalue))


def decide(p: float, p_opposite: float) -> Outcome:
    if p <= SEED_TEST_LEVEL:
        return Outcome.HOLDS
    if p_opposite <= SEED_TEST_LEVEL:
        return Outcome.FAILS
    return Outcome.NOISE


def pair_share(xs, ys, higher: bool) -> float:
    """The share of pairs (x from ``xs``, y from ``ys``) where x is the higher (``higher``) or the
    lower, ties counting half: the Mann-Whitney U statistic over its maximum."""
    xs, ys = np.asarray(xs, np.float64)[:, None], np.asarray(ys, np.float64)[None, :]
    wins = (xs > ys) if higher else (xs < ys)
    return float(np.mean(wins + 0.5 * (xs == ys)))


def order(x: float, y: float, higher: bool) -> Optional[bool]:
    """Whether ``x`` is on the claimed side of ``y`` (None: equal)."""
    return None if x == y else bool(x > y) == higher



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
        compared = [m for c in self.claims for m in c.metrics()]
        compared += [o.metric for s in self.settings for o in s.originals]
        return tuple(dict.fromkeys([*self.metrics, *(m for m in compared if m)]))


