"""A search's decisions as pure functions of the members' validation scores: who is best, who
goes on at a rung of successive halving, who copies whom in population-based training, and the
numbers a copy explores. Ties go to the lower member index and NaN ranks last, so every decision
is the same on any machine and device count."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


def ranking(scores: np.ndarray, higher: bool) -> np.ndarray:
    """Member indices best first: by score (largest when ``higher``), NaN and inf-worst last, ties
    by index."""
    scores = np.asarray(scores, np.float64)
    bad = ~np.isfinite(scores)
    key = np.where(bad, 0.0, -scores if higher else scores)
    return np.lexsort((np.arange(len(scores)), key, bad))


def rungs(min_epochs: int, eta: int, epochs: int, count: Optional[int] = None) -> list[int]:
    """The epochs at which successive halving ranks the population: ``min_epochs * eta**k`` below
    the budget ``epochs`` (the first ``count`` of them when given). ValueError (one line) when the
    budget has no room for a rung, or for ``count`` of them."""
    if eta < 2:
        raise ValueError(f"eta must be a whole number >= 2 (each rung keeps 1/eta of the members); got {eta}")
    if min_epochs >= epochs:
        raise ValueError(f"min-epochs {min_epochs} leaves no rung before the budget of {epochs} epochs; "
                         f"give --min-epochs below {epochs}")
    out, r = [], min_epochs
    while r < epochs:
        out.append(r)
        r *= eta
    if count is not None:
        if count > len(out):
            raise ValueError(f"{count} rungs need min-epochs x eta^{count - 1} = {min_epochs * eta ** (count - 1)} "
                             f"< {epochs} epochs; the budget allows {len(out)} (give --rungs {len(out)} or fewer, "
                             "a smaller --min-epochs or more --epochs)")
        out = out[:count]
    return out


def survivors(scores: np.ndarray, alive: np.ndarray, eta: int, higher: bool) -> np.ndarray:
    """Successive halving at a rung: of the ``alive`` members (a mask), the best
    ``max(1, alive // eta)`` by ``scores`` go on (a mask of them)."""
    alive = np.asarray(alive, bool)
    n = int(alive.sum())
    keep = max(1, n // eta) if n else 0
    order = [i for i in ranking(scores, higher) if alive[i]]
    out = np.zeros(len(alive), bool)
    out[order[:keep]] = True
    return out


def pbt_parents(scores: np.ndarray, higher: bool, quantile: float, draws: np.ndarray) -> dict[int, int]:
    """Population-based training's exploit: each member of the bottom ``quantile`` (by ``scores``)
    copies one of the top ``quantile``, the ``floor(draws[child] * top)``-th best of them
    (``draws``: one number in [0, 1) per member). {child: parent}; empty for fewer than two members."""
    n = len(scores)
    q = int(n * quantile)
    if n < 2 or q < 1:
        return {}
    q = min(q, n // 2)
    order = ranking(scores, higher)
    top, bottom = order[:q], order[n - q:]
    return {int(c): int(top[min(int(draws[c] * q), q - 1)]) for c in sorted(bottom)}


def explore(value: float, dimension, resample: bool, up: bool, u: float) -> float:
    """A copy's new number for a searched ``dimension`` from its parent's ``value``: resampled from
    the dimension at ``u`` when ``resample``, else x1.25 (``up``) or x0.8, kept in the range; a
    listed dimension moves to the neighbouring value instead."""
    if resample:
        return float(dimension.at(u))
    if not dimension.is_range:
        values = sorted(dimension.values)
        i = int(np.argmin([abs(v - value) for v in values]))
        return float(values[min(i + 1, len(values) - 1)] if up else values[max(i - 1, 0)])
    return dimension.clip(value * (1.25 if up else 0.8))


def best(scores: np.ndarray, candidates: Sequence[int], higher: bool) -> int:
    """The best of ``candidates`` (member indices) by ``scores``."""
    candidates = np.asarray(candidates, int)
    return int(candidates[ranking(np.asarray(scores)[candidates], higher)[0]])


def brackets(min_epochs: int, eta: int, epochs: int, count: Optional[int] = None) -> list[tuple[int, int, list[int]]]:
    """Hyperband's brackets (Li et al., JMLR 2018) over a budget of ``epochs``: (s, members, rungs)
    for s = s_max .. 0, where the rungs of halving (:func:`rungs`) are the most aggressive bracket's,
    bracket s ranks at the last s of them, and takes ceil((s_max + 1) eta^s / (s + 1)) members.
    s_max is the number of halving rungs, counted in integers: a log would give one bracket too
    few at an exact power (log(243) / log(3) is 4.999...)."""
    ladder = rungs(min_epochs, eta, epochs, count)
    top = len(ladder)
    return [(s, -(-(top + 1) * eta ** s // (s + 1)), ladder[top - s:]) for s in range(top, -1, -1)]


def bracket_rungs(members: int, ladder: Sequence[int], eta: int) -> list[int]:
    """The rungs of a bracket that decide something: while more than one of its ``members`` is in
    the race (each rung keeps ``max(1, n // eta)``)."""
    out, n = [], members
    for r in ladder:
        if n <= 1:
            break
        out.append(r)
        n = max(1, n // eta)
    return out
