"""Your own Flax model as a task: the engine's grids, records, reports and figures for it.

:func:`model_task` turns a model (a Linen ``nn.Module``, or a function of ``nnx.Rngs`` that builds
an ``nnx.Module``: :mod:`jaxlabs.tasks.flax_models`), an optax optimizer factory, a loss and
arrays into a :class:`jaxlabs.tasks.Task`, which ``jaxlabs.sweep`` and ``jaxlabs.search`` train
(every seed and learning rate in one program) and report as every lab. The optimizer factory's
arguments are the task's traced numbers: ``lambda lr, momentum=0.9: optax.sgd(lr, momentum)``
makes ``lr`` and ``momentum`` numbers every member may have its own of (the defaults are the
factory's; ``lr`` must be one of them, default 0.001 where the factory gives none).

Training is Lab C's loop (:mod:`jaxlabs.tasks.tabular`): shuffled mini-batches, the short last
one masked, the best-validation epoch kept and tested. A Linen module whose ``__call__`` takes
``train`` gets ``train=True`` and a ``dropout`` key in training steps; an NNX model is in
``model.train()`` mode while training and ``model.eval()`` mode while evaluated, its dropout keys
drawn from each member's epoch key. BatchNorm statistics (Linen's ``batch_stats``, NNX's
``BatchStat``) are carried per member and kept with the best epoch's parameters; such a model
trains on full batches only (the short last one is left out, as ``drop_last=True``). Integer
labels are classified (accuracy, per-class table, confusion heatmap); float targets regressed
(MSE, MAE, R^2, true vs predicted).
"""
from __future__ import annotations

import inspect
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn
from flax import nnx

from jaxlabs.data.splits import DATA_SEED
from jaxlabs.options import static_option, traced_option
from jaxlabs.tasks.base import Task
from jaxlabs.tasks.boston import lab_c_split
from jaxlabs.tasks.flax_models import ModelFns, is_nnx_builder, linen_fns, nnx_fns, takes_train_flag
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
    if not callable(optimizer) or isinstance(optimizer, optax.GradientTransformation):
        raise OwnModelError("optimizer must be a function of the numbers a sweep varies that returns an optax "
                            "optimizer, e.g. lambda lr: optax.adam(lr), not an optimizer itself")
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


def model_fns(model, x1: np.ndarray) -> ModelFns:
    """The model's functions (:mod:`jaxlabs.tasks.flax_models`), or an OwnModelError of one line."""
    if isinstance(model, nnx.Module):
        raise OwnModelError(f"give the NNX model as a function of nnx.Rngs that builds it (e.g. lambda rngs: "
                            f"{type(model).__name__}(rngs=rngs)), so each member is built from its own key")
    if not isinstance(model, nn.Module) and not is_nnx_builder(model):
        raise OwnModelError(f"the model must be a Flax Linen module or a function of nnx.Rngs that builds an "
                            f"nnx.Module; got {type(model).__name__}")
    try:
        fns = linen_fns(model, x1) if isinstance(model, nn.Module) else nnx_fns(model)
    except Exception as e:  # noqa: BLE001 - flax raises many kinds for a module that cannot take x
        raise OwnModelError(f"the model cannot be built for x of shape {tuple(x1.shape[1:])} per row "
                            f"({_first_line(e)})") from None
    if fns.stateful and isinstance(model, nn.Module) and not takes_train_flag(model):
        raise OwnModelError(f"{type(model).__name__} keeps batch statistics but its __call__ takes no train "
                            "argument: add one and use nn.BatchNorm(use_running_average=not train)")
    return fns


def _first_line(e: Exception) -> str:
    said = str(e).strip()
    return f"{type(e).__name__}: {said.splitlines()[0][:200]}" if said else type(e).__name__


def _check_fit(fns: ModelFns, data: dict, classify: bool) -> int:
    """The model's output against the targets; the number of classes (0: a regression). Shapes
    only: nothing is computed."""
    x1, x2 = data["x_train"][:1], data["x_train"][:2]  # numpy: slicing a jax array here would compile
    try:
        out = jax.eval_shape(lambda: fns.apply(*fns.init(jax.random.key(0), x1), x2, jax.random.key(1))[0])
    except Exception as e:  # noqa: BLE001 - a module that cannot take x raises anything
        raise OwnModelError(f"the model cannot take x of shape {tuple(data['x_train'].shape[1:])} per row "
                            f"({_first_line(e)})") from None
    shape = tuple(out.shape[1:])
    layer = "nn.Dense" if fns.kind == "linen" else "nnx.Linear"
    if classify:
        labels = np.concatenate([data[f"y_{s}"] for s in SPLITS])
        classes = int(labels.max()) + 1
        if labels.min() < 0 or len(shape) != 1 or shape[0] < classes:
            raise OwnModelError(f"the model gives {shape or 'a scalar'} per row but the labels run "
                                f"{int(labels.min())}..{classes - 1}: its last layer needs {classes} outputs "
                                f"({layer}(..., {classes})), one logit per class")
        return shape[0]
    target = tuple(data["y_train"].shape[1:]) or (1,)
    if shape != target:
        raise OwnModelError(f"the model gives {shape or 'a scalar'} per row but each target is {target}: make "
                            f"its last layer give {target[0] if len(target) == 1 else target} outputs, or reshape y")
    return 0


def model_task(model, optimizer: Callable[..., optax.GradientTransformation],
               loss: Callable[[jax.Array, jax.Array], jax.Array], data, *, name: str = "own-model",
               data_name: str | None = None, epochs: int = 20, batch_size: int = 32, classify: bool | None = None,
               data_seed: int = DATA_SEED) -> Task:
    """A task that trains ``model`` (``(batch, ...) -> (batch, outputs)``: a Flax Linen module, or
    a function of ``nnx.Rngs`` that builds an ``nnx.Module``, e.g. ``lambda rngs: Net(rngs=rngs)``)
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
    fns = model_fns(model, arrays["x_train"][:1])
    classes = _check_fit(fns, arrays, classify)
    rows = "/".join(str(len(arrays[f"y_{s}"])) for s in SPLITS)
    described = data_name or f"arrays given to model_task ({rows} train/val/test rows)"
    device_data = {k: jnp.asarray(v) for k, v in arrays.items()}

    def build(self, static: dict):
        spec = TableSpec(None, lambda hp: optimizer(**hp), batch_size=static["batch_size"],
                         epochs=static["epochs"], classes=classes, loss=loss, fns=fns)
        return make_table_trainer(spec, device_data, described), device_data

    attrs = {
        "name": name, "lab": "your model", "build": build,
        "description": f"{name}: {fns.name} ({fns.kind}; {'classification' if classify else 'regression'})",
        "options": (static_option("epochs", int, epochs, "epochs (the best-validation epoch is tested)", low=1),
                    static_option("batch_size", int, batch_size, "mini-batch size", low=1),
                    *traced),
        "chunk": max(1, min(25, epochs)),
        "primary_metric": "test_acc" if classify else "test_r2",
        "figures": ("loss", "accuracy", "confusion") if classify else ("loss", "true_vs_pred"),
        "higher_better": frozenset({"test_acc", "val_acc"} if classify else {"test_r2"}),
    }
    return type("OwnModelTask", (Task,), attrs)()

