"""Your own Flax module as a task: the engine's grids, records, reports and figures for it.

:func:`model_task` turns an ``nn.Module``, an optax optimizer factory, a loss and arrays into a
:class:`jaxlabs.tasks.Task`: :func:`jaxlabs.sweep.run_sweep` trains its grids (every seed and
learning rate in one program), :func:`sweep_report` writes what ``lr_sweep`` writes (table,
``report.md``, ``results.json``/``.csv``, ``curves.npz``, figures). The optimizer factory's
arguments are the task's traced numbers: ``lambda lr, momentum=0.9: optax.sgd(lr, momentum)``
makes ``lr`` and ``momentum`` numbers every member may have its own of (the defaults are the
factory's; ``lr`` must be one of them, default 0.001 where the factory gives none).

Training is Lab C's loop (:mod:`jaxlabs.tasks.tabular`): shuffled mini-batches, the short last
one masked, the best-validation epoch kept and tested. A module whose ``__call__`` takes ``train``
gets ``train=True`` and a ``dropout`` key in training steps. Integer labels are classified
(accuracy, per-class table, confusion heatmap); float targets regressed (MSE, MAE, R^2, true vs
predicted). Modules with BatchNorm statistics are not supported: the masked last batch would count
its padding in them.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn

from jaxlabs.data.splits import DATA_SEED
from jaxlabs.options import static_option, traced_option
from jaxlabs.tasks.base import Task
from jaxlabs.tasks.boston import lab_c_split
from jaxlabs.tasks.tabular import TableSpec, make_table_trainer

SPLITS = ("train", "val", "test")


class OwnModelError(ValueError):
    """A module, optimizer or arrays that cannot train together; one line saying what to change."""


def _splits(data, data_seed: int) -> dict[str, np.ndarray]:
    """``(x, y)``: Lab C's split (a test sixth, then a fifth of the rest for validation); a dict
    with ``x_train``, ``y_train``, ``x_val``, ``y_val``, ``x_test``, ``y_test``: as given."""
    if isinstance(data, dict):
        missing = [f"{a}_{s}" for s in SPLITS for a in "xy" if f"{a}_{s}" not in data]
        if missing:
            raise OwnModelError(f"data lacks {', '.join(missing)}; give (x, y) to split them 4:1:1, or every one "
                                "of x_train, y_train, x_val, y_val, x_test, y_test")
        return {k: np.asarray(data[f"{k}"]) for k in (f"{a}_{s}" for s in SPLITS for a in "xy")}
    try:
        x, y = map(np.asarray, data)
    except (TypeError, ValueError):
        raise OwnModelError("data must be (x, y) arrays or a dict of x_train, y_train, x_val, y_val, x_test, "
                            "y_test") from None
    if len(x) != len(y):
        raise OwnModelError(f"x has {len(x)} rows but y has {len(y)}; give one target per row")
    try:
        parts = lab_c_split(len(x), data_seed)
    except ValueError:
        raise OwnModelError(f"{len(x)} rows are too few to split into train, validation and test (4:1:1)") from None
    return {f"{a}_{s}": (x if a == "x" else y)[idx] for s, idx in zip(SPLITS, parts) for a in "xy"}


def _traced_options(optimizer: Callable) -> tuple:
    """The factory's arguments as traced options (each default the factory's; lr's 0.001 if none)."""
    params = inspect.signature(optimizer).parameters
    if "lr" not in params:
        raise OwnModelError("the optimizer factory needs an lr argument, e.g. lambda lr: optax.adam(lr); "
                            "its arguments are the numbers the sweep varies")
    options = []
    for name, p in params.items():
        default = p.default if p.default is not inspect.Parameter.empty else (0.001 if name == "lr" else None)
        if default is None or isinstance(default, bool) or not isinstance(default, (int, float)):
            raise OwnModelError(f"optimizer argument {name!r} needs a number as its default (every argument but "
                                "lr: the value members take unless the sweep varies it)")
        options.append(traced_option(name, float(default), f"the optimizer's {name}",
                                     **({"low": 0, "low_open": True} if name == "lr" else {})))
    return tuple(options)


def _check_fit(module: nn.Module, data: dict, classify: bool) -> int:
    """The module's output against the targets (and no BatchNorm); the number of classes (0: a
    regression). Shapes only: nothing is computed."""
    x1 = jnp.asarray(data["x_train"][:1])
    try:
        variables = jax.eval_shape(lambda: module.init(jax.random.key(0), x1))
        out = jax.eval_shape(lambda v: module.apply(v, x1), variables)
    except Exception as e:  # noqa: BLE001 - flax raises many kinds for a module that cannot take x
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise OwnModelError(f"the module cannot take x of shape {tuple(data['x_train'].shape[1:])} per row "
                            f"({type(e).__name__}: {first})") from None
    if set(variables) - {"params"}:
        raise OwnModelError(f"the module keeps {', '.join(sorted(set(variables) - {'params'}))} besides its params "
                            "(BatchNorm): not supported here; use a module without batch statistics (LayerNorm)")
    shape = tuple(out.shape[1:])
    if classify:
        labels = np.concatenate([data[f"y_{s}"] for s in SPLITS])
        classes = int(labels.max()) + 1
        if labels.min() < 0 or len(shape) != 1 or shape[0] < classes:
            raise OwnModelError(f"the module gives {shape or 'a scalar'} per row but the labels run "
                                f"{int(labels.min())}..{classes - 1}: its last layer needs {classes} outputs "
                                f"(nn.Dense({classes})), one logit per class")
        return shape[0]
    target = tuple(data["y_train"].shape[1:]) or (1,)
    if shape != target:
        raise OwnModelError(f"the module gives {shape or 'a scalar'} per row but each target is {target}: make "
                            f"its last layer nn.Dense({target[0] if len(target) == 1 else target}), or reshape y")
    return 0


def model_task(module: nn.Module, optimizer: Callable[..., optax.GradientTransformation],
               loss: Callable[[jax.Array, jax.Array], jax.Array], data, *, name: str = "own-model",
               data_name: str | None = None, epochs: int = 20, batch_size: int = 32, classify: bool | None = None,
               data_seed: int = DATA_SEED) -> Task:
    """A task that trains ``module`` (any Flax Linen module, ``(batch, ...) -> (batch, outputs)``)
    on ``data``: ``(x, y)`` arrays, split 4:1:1 as Lab C, or a dict of ``x_train``, ``y_train``,
    ``x_val``, ``y_val``, ``x_test``, ``y_test``. ``loss(outputs, targets)`` is the batch mean
    (``jaxlabs.optim.cross_entropy``, ``mse_loss``, an ``optax.losses`` mean...). ``classify``:
    None decides from y (integer labels are classes). ``epochs`` and ``batch_size`` are its static
    options (``task.resolve_static(epochs=50)``). Everything that cannot work together is an
    :class:`OwnModelError` now, before anything is compiled."""
    traced = _traced_options(optimizer)
    arrays = _splits(data, data_seed)
    if classify is None:
        classify = np.issubdtype(arrays["y_train"].dtype, np.integer)
    for s in SPLITS:
        arrays[f"x_{s}"] = arrays[f"x_{s}"].astype(np.float32)
        y = arrays[f"y_{s}"]
        arrays[f"y_{s}"] = y.astype(np.int32) if classify else (y[:, None] if y.ndim == 1 else y).astype(np.float32)
    classes = _check_fit(module, arrays, classify)
    rows = "/".join(str(len(arrays[f"y_{s}"])) for s in SPLITS)
    described = data_name or f"arrays given to model_task ({rows} train/val/test rows)"
    device_data = {k: jnp.asarray(v) for k, v in arrays.items()}

    def build(self, static: dict):
        spec = TableSpec(module, lambda hp: optimizer(**hp), batch_size=static["batch_size"],
                         epochs=static["epochs"], classes=classes, loss=loss)
        return make_table_trainer(spec, device_data, described), device_data

    attrs = {
        "name": name, "lab": "your model", "build": build,
        "description": f"{name}: {type(module).__name__} ({'classification' if classify else 'regression'})",
        "options": (static_option("epochs", int, epochs, "epochs (the best-validation epoch is tested)", low=1),
                    static_option("batch_size", int, batch_size, "mini-batch size", low=1),
                    *traced),
        "chunk": max(1, min(25, epochs)),
        "primary_metric": "test_acc" if classify else "test_r2",
        "figures": ("loss", "accuracy", "confusion") if classify else ("loss", "true_vs_pred"),
        "higher_better": frozenset({"test_acc", "val_acc"} if classify else {"test_r2"}),
    }
    return type("OwnModelTask", (Task,), attrs)()


def sweep_report(task: Task, out: str | Path, *, lrs: Sequence[float] | None = None, seeds: int | Sequence[int] = 3,
                 static: dict | None = None, progress: bool = False, **numbers: float) -> dict:
    """``lr_sweep`` for ``task``: every learning rate in ``lrs`` (default: the task's lr) x
    ``seeds`` (a count: 0..seeds-1), static options from ``static`` (epochs, batch_size), the
    other traced numbers from ``numbers`` or their defaults;
    writes the table, ``report.md``, records and figures into ``out`` and returns what
    :func:`jaxlabs.reproduce.run_study` returns (``table``, ``figures``, ...)."""
    from jaxlabs.reproduce import run_study, sweep_study

    traced = task.hparams(**numbers)
    lrs = list(lrs) if lrs is not None else [traced["lr"]]
    study = sweep_study(task, task.resolve_static(**(static or {})), lrs, traced)
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return run_study(study, seeds, out, progress=progress, task=task,
                     command=f"jaxlabs.tasks.own_model.sweep_report({task.name!r})")
