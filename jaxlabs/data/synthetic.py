"""Synthetic regression targets for the function-fitting labs (A and B)."""
from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split


def log2_cos(x: np.ndarray) -> np.ndarray:
    """Lab A's target: log2(x) + cos(pi x / 2)."""
    return np.log2(x) + np.cos(np.pi * x / 2)


def sample_regression(target, n: int, x_range: tuple[float, float], data_seed: int = 0,
                      split_seed: int = 42) -> dict[str, np.ndarray]:
    """``n`` points x ~ U[x_range], y = target(x), split 8:1:1 the way Lab A's report did it
    (``train_test_split(test_size=0.2, random_state=42)``, then the rest halved the same way).
    Arrays are float32 columns: x_* and y_* of shape (n_split, 1)."""
    if n < 10:
        raise ValueError(f"n={n} is too small to split 8:1:1; use n >= 10")
    rng = np.random.default_rng(data_seed)
    x = rng.uniform(x_range[0], x_range[1], size=(n, 1))
    y = np.asarray(target(x), np.float64).reshape(n, 1)
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=0.2, random_state=split_seed)
    x_val, x_test, y_val, y_test = train_test_split(x_rest, y_rest, test_size=0.5, random_state=split_seed)
    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
    return {"x_train": f32(x_train), "y_train": f32(y_train), "x_val": f32(x_val),
            "y_val": f32(y_val), "x_test": f32(x_test), "y_test": f32(y_test)}
