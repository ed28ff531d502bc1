"""A CSV table of your own: regression or classification with an MLP, on Lab C's loop.

``python -m experiments.lr_sweep --task csv --data FILE --target COLUMN`` reads the table
(:mod:`jaxlabs.data.table`: numeric columns standardised on the train split, categorical ones
one-hot encoded, missing cells refused or their rows dropped with ``--missing``), splits the rows
as Lab C does (a test sixth, then a fifth of the rest for validation, ``random_state=data_seed``)
and trains an MLP ``features -> [width] * depth -> outputs`` over mini-batches with a plateau
schedule on the validation loss, keeping the best-validation parameters
(:mod:`jaxlabs.tasks.tabular`).

A numeric target is regressed (MSE loss; test MSE, MAE and R^2, the true-vs-predicted figure); a
text target, or any target with ``--classify``, is classified (cross entropy; test accuracy, the
per-class table and the confusion heatmap; class i is the i-th of the sorted values, listed in
the data's name). Records, reports and figures name the file, its rows and its target.
"""
from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np

from jaxlabs.data.splits import DATA_SEED
from jaxlabs.data.table import TableError, encode_features, prepare_table, read_csv
from jaxlabs.models import ACTIVATIONS, INIT_SCHEMES, MLP
from jaxlabs.options import static_option, traced_option
from jaxlabs.optim import torch_adam, torch_sgd
from jaxlabs.tasks.base import Task
from jaxlabs.tasks.boston import lab_c_split
from jaxlabs.tasks.tabular import TableSpec, make_table_trainer, plateau_scheduler


def column_list(text: str | None) -> tuple[str, ...]:
    """``"a,b"`` -> ("a", "b"); None or "" -> ()."""
    return tuple(c.strip() for c in (text or "").split(",") if c.strip())


def class_list(classes) -> str:
    shown = ", ".join(f"{i}={c}" for i, c in enumerate(classes[:12]))
    return shown + (f", ... ({len(classes)} in all)" if len(classes) > 12 else "")


class CsvTask(Task):
    name = "csv"
    lab = "your data"
    description = "your CSV table: an MLP regresses or classifies --target from the other columns (Lab C's loop)"
    options = (
        static_option("data", str, None, "the CSV file: a header row of column names, then a row per sample",
                      none_ok=True),
        static_option("target", str, None, "the column to predict", none_ok=True),
        static_option("classify", bool, False, "classify the target even when it is numeric (a text target is "
                      "always classified)"),
        static_option("missing", str, "error", "rows with an empty or NA cell: error stops naming the first, "
                      "drop leaves them out", choices=("error", "drop")),
        static_option("categorical", str, "", "comma list of columns to one-hot encode even though they hold "
                      "numbers (text columns always are)"),
        static_option("ignore", str, "", "comma list of columns to leave out (ids, free text)"),
        static_option("depth", int, 2, "hidden layers", low=0),
        static_option("width", int, 64, "hidden units per layer", low=1),
        static_option("activation", str, "relu", "hidden activation", choices=tuple(ACTIVATIONS)),
        static_option("optimizer", str, "adam", "sgd (PyTorch's, with --momentum) or adam (PyTorch's)",
                      choices=("adam", "sgd")),
        static_option("batch_size", int, 32, "mini-batch size", low=1),
        static_option("epochs", int, 100, "epochs (the best-validation epoch is kept)", low=1),
        static_option("data_seed", int, DATA_SEED, "random_state of the train/val/test split", low=0),
        static_option("patience", int, 10, "ReduceLROnPlateau patience in epochs (PyTorch's default)", low=0),
        static_option("factor", float, 0.1, "ReduceLROnPlateau factor (PyTorch's default)", low=0, high=1,
                      low_open=True, high_open=True),
        static_option("threshold", float, 1e-4, "ReduceLROnPlateau relative threshold", low=0),
        static_option("cooldown", int, 0, "ReduceLROnPlateau cooldown in epochs", low=0),
        static_option("initializer", str, "pytorch", "weight initialisation", choices=tuple(INIT_SCHEMES)),
        traced_option("lr", 0.001, "learning rate (Adam's default)", low=0, low_open=True, log=True),
        traced_option("momentum", 0.0, "SGD momentum (adam ignores it)", low=0, high=1, high_open=True),
    )
    lr_grid = (0.0003, 0.001, 0.003)
    chunk = 25
    primary_metric = "test_r2"  # test_acc for a classification: set by check()
    figures = ("loss", "accuracy", "true_vs_pred", "confusion")
    higher_better = frozenset({"test_r2", "test_acc", "val_acc"})

    def check(self, static: dict) -> None:
        """The file and target given, the table readable: every CSV problem is found here, before
        anything is trained; the primary metric follows the target's kind."""
        self.prepared(static)

    def prepared(self, static: dict) -> dict:
        for name in ("data", "target"):
            if not static[name]:
                raise ValueError(f"{self.name} needs --{name} ({'the CSV file' if name == 'data' else 'its column to predict'})")
        prep = prepare_table(read_csv(static["data"]), static["target"], classify=static["classify"],
                             missing=static["missing"], categorical=column_list(static["categorical"]),
                             ignore=column_list(static["ignore"]))
        self.primary_metric = "test_acc" if prep["classes"] else "test_r2"
        return prep

    def splits(self, static: dict) -> tuple[dict, dict, str]:
        """(data arrays, the prepared table, the data's name)."""
        prep = self.prepared(static)
        path, n = Path(static["data"]), len(prep["y"])
        try:
            parts = lab_c_split(n, static["data_seed"])
        except ValueError:
            raise TableError(f"{path}: {n} rows are too few to split into train, validation and test (4:1:1); "
                             "add rows") from None
        x = encode_features(prep, parts)
        y = prep["y"] if prep["classes"] else prep["y"][:, None]  # regression targets (n, 1)
        data = {f"{a}_{s}": jnp.asarray(arr if a == "x" else y[idx])
                for s, idx, arr in zip(("train", "val", "test"), parts, x) for a in ("x", "y")}
        dropped = f", {prep['dropped']} with missing cells dropped" if prep["dropped"] else ""
        kind = f"{len(prep['classes'])} classes {class_list(prep['classes'])}" if prep["classes"] else "regression"
        name = (f"{path.name} ({n} rows{dropped}; {len(parts[0])}/{len(parts[1])}/{len(parts[2])} train/val/test; "
                f"target {prep['target']}: {kind}; {x[0].shape[1]} features from {len(prep['numeric'])} numeric and "
                f"{len(prep['categorical'])} categorical columns)")
        return data, prep, name

    def build(self, static: dict):
        data, prep, name = self.splits(static)
        classes = len(prep["classes"] or ())
        model = MLP(width=static["width"], depth=static["depth"], out=classes or 1, activation=static["activation"],
                    initializer=static["initializer"])
        if static["optimizer"] == "sgd":
            optimizer = lambda hp: torch_sgd(hp["lr"], momentum=hp["momentum"])  # noqa: E731
        else:
            optimizer = lambda hp: torch_adam(hp["lr"])  # noqa: E731
        spec = TableSpec(model, optimizer, batch_size=static["batch_size"], epochs=static["epochs"],
                         classes=classes, scheduler=plateau_scheduler(static))
        return make_table_trainer(spec, data, name), data


def table_arrays(path, target: str, data_seed: int = DATA_SEED, **kw) -> dict[str, np.ndarray]:
    """The csv task's split and encoding of ``path`` as NumPy arrays (for comparisons with other
    libraries on the same rows): ``x_{train,val,test}``, ``y_*``."""
    task = CsvTask()
    data, _, _ = task.splits(task.resolve_static(data=str(path), target=target, data_seed=data_seed, **kw))
    return {k: np.asarray(v) for k, v in data.items()}
