"""Deterministic train/val/test splits and train-only standardisation.

The labs split with sklearn's `train_test_split(..., random_state=42)` twice (8:1:1 = peel off
20%, then halve it). Splitting an index array with the same `random_state` picks the same rows
as splitting the data itself, so these indices reproduce the reports' splits exactly, and the
data seed stays separate from the training seeds a sweep varies.
"""
from __future__ import annotations

from numbers import Integral
from typing import Sequence

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

DATA_SEED = 42  # the labs' random_state


def _length(n_or_arrays) -> int:
    """n itself, the length of one array, or the common length of several."""
    if isinstance(n_or_arrays, Integral):
        return int(n_or_arrays)
    if hasattr(n_or_arrays, "shape"):
        return len(n_or_arrays)
    lengths = {len(a) for a in n_or_arrays}
    if len(lengths) != 1:
        raise ValueError(f"arrays to split have different lengths {sorted(lengths)}")
    return lengths.pop()


def split_ratio(
    n_or_arrays,
    ratios: Sequence[float] = (8, 1, 1),
    seed: int = DATA_SEED,
    subset: float | None = None,
    labels: np.ndarray | None = None,
) -> tuple[np.ndarray, ...]:
    """Index arrays (one per ratio, e.g. train, val, test) into range(n).

    `subset` (e.g. 0.05, Lab D's 3000 of 60000 MNIST images) keeps that fraction first,
    stratified by `labels` when given so every class keeps its share. The parts themselves are
    plain random splits, as in the labs. Sizes follow sklearn's rounding: 4:1:1 on 506 rows
    gives 337/84/85.
    """
    n = _length(n_or_arrays)
    if len(ratios) < 2 or min(ratios) <= 0:
        raise ValueError(f"ratios must be two or more positive numbers, got {tuple(ratios)}")
    index = np.arange(n)
    parts = []
    try:
        if subset is not None and subset < 1:
            index, _ = train_test_split(index, train_size=subset, random_state=seed, stratify=labels)
        for i in range(len(ratios) - 1):
            rest = sum(ratios[i + 1:]) / sum(ratios[i:])  # share of what is left that goes on
            part, index = train_test_split(index, test_size=rest, random_state=seed)
            parts.append(part)
    except ValueError as e:  # too few rows, or of one class, for the parts: sklearn's words, with ours
        kept = f" (a subset of {subset:g} of them, stratified)" if subset is not None and subset < 1 else ""
        raise ValueError(f"cannot split {n} rows{kept} {':'.join(f'{r:g}' for r in ratios)}: "
                         f"{str(e).rstrip('.')}; use more data or a larger subset") from None
    return (*parts, index)


def standardize(train: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Scale every array by the train features' mean and std (population std, as sklearn).

    Fitting on train only keeps val/test statistics out of training (Lab C). Returns float32
    arrays in the order given.
    """
    scaler = StandardScaler().fit(train)
    return tuple(scaler.transform(a).astype(np.float32) for a in (train, *others))
