"""Lab C: Boston housing regression with an MLP, mini-batch SGD and ReduceLROnPlateau.

Seed 001, part 1: 506 rows split 4:1:1 (train/val/test: the report's rows exactly), features
standardised with the train split's statistics, an MLP 13 -> [width] * depth -> 1, MSE, SGD over shuffled mini-batches,
``ReduceLROnPlateau`` on the validation loss once per epoch, the best-validation parameters kept
and evaluated on the test split (MSE, MAE, R^2). Targets (MEDV, in $1000s) are not scaled: the
report's MSEs (6.5 to 20) are in those units.

The report does not state width, batch size, epochs, momentum or the scheduler's settings; the
defaults below are common choices (PyTorch's own for the scheduler) and say so. Run the depth study:

    python -c "from jaxlabs.tasks.boston import BostonTask; from jaxlabs.sweep import run_sweep; \
t = BostonTask(); r = run_sweep(t, [t.resolve_static(depth=d) for d in (1, 2, 8)], range(8), {'lr': [0.01]})"

One epoch, as the report's PyTorch loop did it: a DataLoader pass (shuffle=True, drop_last=False,
the order drawn from the epoch's key) of SGD steps at ``lr * plateau_scale``; the validation MSE
of the parameters after the pass; ``scheduler.step(val_loss)``. The engine keeps the parameters
of the epoch with the best validation MSE (the trainer's checkpoint).
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from sklearn.model_selection import train_test_split

from jaxlabs.data import load_boston, standardize
from jaxlabs.data.splits import DATA_SEED
from jaxlabs.models import ACTIVATIONS, INIT_SCHEMES, MLP
from jaxlabs.options import static_option, traced_option
from jaxlabs.optim import torch_sgd
from jaxlabs.tasks.base import Task
from jaxlabs.tasks.tabular import (TableSpec, make_table_trainer, masked_mse, plateau_scheduler,  # noqa: F401
                                   plateau_step, regression_metrics)


def lab_c_split(n: int, data_seed: int = DATA_SEED, stratify=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices (train, val, test) of Lab C's split: the test sixth first
    (``train_test_split(test_size=1/6, random_state=data_seed)``), then a fifth of the rest for
    validation. ``stratify``: labels (n,) to keep every class's share in each part."""
    rest, test = train_test_split(np.arange(n), test_size=1 / 6, random_state=data_seed, stratify=stratify)
    train, val = train_test_split(rest, test_size=0.2, random_state=data_seed,
                                  stratify=None if stratify is None else stratify[rest])
    return train, val, test


def boston_splits(data_seed: int = DATA_SEED) -> dict[str, np.ndarray]:
    """x_{train,val,test} float32 (n, 13) standardised with train statistics; y_* float32 (n, 1).

    The report's order: the test sixth first, ``train_test_split(test_size=1/6, random_state=42)``,
    then a fifth of the rest for validation: 336 / 85 / 85 rows. Its numbers pin this down: every
    MSE / (1 - R^2) it reports is 72.71, the variance of MEDV on exactly those 85 test rows (the
    train-first :func:`split_ratio` order gives other rows, variance 69.13, and a harder test set).
    """
    x, y = load_boston()
    train, val, test = lab_c_split(len(x), data_seed)
    x_train, x_val, x_test = standardize(x[train], x[val], x[test])
    return {"x_train": x_train, "y_train": y[train, None], "x_val": x_val, "y_val": y[val, None],
            "x_test": x_test, "y_test": y[test, None]}


class BostonTask(Task):
    name = "boston"
    lab = "C"
    description = "Lab C: Boston housing MLP regression, mini-batch SGD, ReduceLROnPlateau, best-val params"
    options = (
        static_option("depth", int, 1, "hidden layers (the report's default hidden_layers=1)", low=0),
        static_option("width", int, 64, "hidden units per layer (not in the report; a common FNN width)", low=1),
        static_option("activation", str, "relu", "hidden activation (relu / tanh / sigmoid studied)",
                      choices=tuple(ACTIVATIONS)),
        # not in the report: DataLoader(batch_size=32): 11 steps per epoch, the last of 16 rows
        static_option("batch_size", int, 32, "mini-batch size", low=1),
        # not in the report; its curves show relu settled before 10, tanh by ~60, sigmoid not
        static_option("epochs", int, 100, "epochs", low=1),
        static_option("data_seed", int, DATA_SEED, "train_test_split's random_state (the report's 42)", low=0),
        # ReduceLROnPlateau's PyTorch defaults (the report gives none)
        static_option("patience", int, 10, "ReduceLROnPlateau patience in epochs", low=0),
        static_option("factor", float, 0.1, "ReduceLROnPlateau factor", low=0, high=1, low_open=True, high_open=True),
        static_option("threshold", float, 1e-4, "ReduceLROnPlateau relative threshold", low=0),
        static_option("cooldown", int, 0, "ReduceLROnPlateau cooldown in epochs", low=0),
        static_option("initializer", str, "pytorch", "weight initialisation", choices=tuple(INIT_SCHEMES)),
        traced_option("lr", 0.01, "learning rate (the report: 0.01 best)", low=0, low_open=True, log=True),
        traced_option("momentum", 0.0, "SGD momentum (the report states none)", low=0, high=1, high_open=True),
        traced_option("weight_decay", 0.0, "coupled L2 weight decay, as PyTorch SGD's (the report states none)",
                      low=0, high=1, high_open=True, log=True),
    )
    chunk = 25
    primary_metric = "test_r2"
    figures = ("loss", "true_vs_pred")
    higher_better = frozenset({"test_r2"})

    def build(self, static: dict):
        model = MLP(width=static["width"], depth=static["depth"], out=1, activation=static["activation"],
                    initializer=static["initializer"])
        data = {k: jnp.asarray(v) for k, v in boston_splits(static["data_seed"]).items()}
        # numbers without a weight decay (an earlier caller's) train as before: none, not even a zero term
        sgd = lambda hp: torch_sgd(hp["lr"], momentum=hp["momentum"], weight_decay=hp.get("weight_decay", 0.0))  # noqa: E731
        spec = TableSpec(model, sgd,
                         batch_size=static["batch_size"], epochs=static["epochs"], scheduler=plateau_scheduler(static))
        return make_table_trainer(spec, data), data
