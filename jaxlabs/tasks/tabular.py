"""Lab C's loop for any table of numbers: mini-batch steps, a plateau schedule, the best-validation
parameters. Boston housing (Lab C), a CSV table of your own and a Flax module of your own run it.

One epoch, as Lab C's PyTorch loop did it: a DataLoader pass (shuffle=True, drop_last=False, the
order drawn from the epoch's key; the short last batch is padded to the batch shape and masked, so
its loss is the mean over its real rows) of optimizer steps at ``lr * plateau_scale``; the
validation loss of the parameters after the pass; ``scheduler.step(val_loss)``. The engine keeps
the parameters of the epoch with the best validation loss (regression) or accuracy
(classification): the trainer's checkpoint. ``finish`` evaluates them on the test split.

Regression: targets float32 (n, k); the default loss is ``nn.MSELoss()``; the final metrics are
MSE, MAE and R^2 (sklearn's ``r2_score``, averaged over the k outputs). Classification: labels
int32 (n,); the default loss is ``nn.CrossEntropyLoss()``; the final metrics are accuracy, loss,
per-class accuracy and the confusion matrix, as the image classifiers give them.

A model with batch statistics (a Flax module of one's own with BatchNorm:
:mod:`jaxlabs.tasks.flax_models`) carries them per member beside its parameters, keeps them with
the best epoch's parameters, and trains on full batches only (``drop_last=True``: each epoch's
order leaves out its own ``n % batch_size`` rows), because a padded batch would count its padding
in the statistics.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import optax
from flax import linen as nn

from jaxlabs.data.batches import batch_order, padded_batches
from jaxlabs.optim import cross_entropy, mse_loss, reduce_lr_on_plateau
from jaxlabs.tasks.flax_models import ModelFns, linen_fns, takes_train_flag  # noqa: F401 - takes_train_flag: re-exported
from jaxlabs.train import Checkpoint, Trainer


def masked_mse(pred, target, mask):
    """MSELoss over the rows where mask (batch,) is True; pred/target (batch, 1)."""
    se = jnp.sum(jnp.square(pred - target), axis=-1) / pred.shape[-1]
    return jnp.sum(jnp.where(mask, se, 0.0)) / jnp.sum(mask)


def regression_metrics(pred, true) -> dict[str, jax.Array]:
    """MSE, MAE and R^2 (sklearn's r2_score: 1 - SS_res / SS_tot) of pred, true (n,)."""
    err = pred - true
    ss_tot = jnp.sum(jnp.square(true - jnp.mean(true)))
    return {"mse": jnp.mean(jnp.square(err)), "mae": jnp.mean(jnp.abs(err)),
            "r2": 1.0 - jnp.sum(jnp.square(err)) / ss_tot}


def plateau_scheduler(static: dict) -> optax.GradientTransformationExtraArgs:
    """``ReduceLROnPlateau(mode='min', factor, patience, threshold, threshold_mode='rel',
    cooldown)`` as optax's ``reduce_on_plateau`` (patience + 1: see jaxlabs.optim)."""
    return reduce_lr_on_plateau(factor=static["factor"], patience=static["patience"],
                                threshold=static["threshold"], cooldown=static["cooldown"])


def plateau_step(scheduler, state, val_loss):
    """``scheduler.step(val_loss)``: one epoch's value in; the new scale is ``state.scale``.

    Only the state is used: the scale multiplies the learning rate of the *next* epoch, as
    PyTorch's does, instead of scaling updates inside the optimizer chain (which would count
    every mini-batch as an epoch).
    """
    return scheduler.update(jnp.zeros(()), state, value=val_loss)[1]


@dataclass(frozen=True)
class TableSpec:
    """A static configuration of the loop. ``optimizer(hp)`` builds a member's optax
    transformation from its traced numbers; ``loss(outputs, targets)`` is a batch mean (None: MSE,
    or cross entropy with ``classes``); ``scheduler``: a plateau schedule on the validation loss
    (None: the optimizer's own learning rate throughout); ``fns``: the model's functions (None:
    ``model``, a Linen module, as :func:`jaxlabs.tasks.flax_models.linen_fns` reads it)."""

    model: nn.Module | None
    optimizer: Callable[[dict], optax.GradientTransformation]
    batch_size: int
    epochs: int
    classes: int = 0  # 0: regression; else the number of classes (labels 0 .. classes - 1)
    loss: Optional[Callable[[jax.Array, jax.Array], jax.Array]] = None
    scheduler: Optional[optax.GradientTransformationExtraArgs] = None
    fns: Optional[ModelFns] = None


def make_table_trainer(spec: TableSpec, data: dict, data_name: str = "") -> Trainer:
    """The Trainer for ``data``: ``x_{train,val,test}`` (n, ...) float32 and ``y_*``: float32
    (n, k) targets or int32 (n,) labels. Sizes are read here: they shape the program."""
    scheduler, classify = spec.scheduler, spec.classes > 0
    fns = spec.fns if spec.fns is not None else linen_fns(spec.model, data["x_train"][:1])
    n_train = data["x_train"].shape[0]
    batch_size = min(spec.batch_size, n_train)
    drop_last = fns.stateful  # batch statistics: full batches only
    rows_per_epoch = (n_train // batch_size) * batch_size if drop_last else n_train
    if spec.loss is None:
        row_loss = None  # the default losses: Lab C's masked MSE exactly, or cross entropy per row
        batch_loss = cross_entropy if classify else mse_loss
    else:  # a batch-mean loss of the user's, per row: its masked mean is the short batch's mean
        row_loss = jax.vmap(lambda o, t: spec.loss(o[None], t[None]))
        batch_loss = spec.loss

    def predict(carry, x):  # evaluation: (n, ...) -> (n, outputs)
        return fns.apply(carry["params"], carry.get("model_state", {}), x)[0]

    def masked_loss(out, target, mask):
        if row_loss is not None:
            per_row = row_loss(out, target)
        elif classify:
            per_row = optax.softmax_cross_entropy_with_integer_labels(out, target)
        else:
            return masked_mse(out, target, mask)
        return jnp.sum(jnp.where(mask, per_row, 0.0)) / jnp.sum(mask)

    def init(key, hp, d, tx):
        params, state = fns.init(key, d["x_train"][:1])
        carry = {"params": params, "opt_state": tx.init(params)}
        if fns.stateful:
            carry["model_state"] = state
        if scheduler is not None:
            carry["plateau"] = scheduler.init(jnp.zeros(()))
        return carry

    def epoch(carry, hp, d, e, key, tx):
        full, rest = batch_order(key, n_train, batch_size)
        idx, mask = (full, jnp.ones(full.shape, bool)) if drop_last else padded_batches(full, rest)  # (batches, batch_size)
        lr_scale = carry["plateau"].scale if scheduler is not None else None  # this epoch's lr: hp["lr"] * it
        # dropout keys from a child of the epoch's key: the order is drawn from the key itself, as
        # Lab C's always was
        step_keys = jax.random.split(jax.random.fold_in(key, 1), idx.shape[0])

        def batch_loss_and_state(p, model_state, rows, m, k):
            out, model_state = fns.apply(p, model_state, d["x_train"][rows], k)
            return masked_loss(out, d["y_train"][rows], m), model_state

        def step(state, batch):
            params, opt_state, model_state = state
            rows, m, k = batch
            (loss, model_state), grads = jax.value_and_grad(batch_loss_and_state, has_aux=True)(
                params, model_state, rows, m, k)
            updates, opt_state = tx.update(grads, opt_state, params)
            if lr_scale is not None:
                updates = jax.tree.map(lambda u: lr_scale * u, updates)
            return (optax.apply_updates(params, updates), opt_state, model_state), loss * jnp.sum(m)

        start = (carry["params"], carry["opt_state"], carry.get("model_state", {}))
        (params, opt_state, model_state), weighted = jax.lax.scan(step, start, (idx, mask, step_keys))
        train_loss = jnp.sum(weighted) / rows_per_epoch  # mean over the epoch's samples, as seen during the pass
        new = {"params": params, "opt_state": opt_state}
        if fns.stateful:
            new["model_state"] = model_state
        val_out = predict(new, d["x_val"])
        val_loss = batch_loss(val_out, d["y_val"])
        logs = {"loss": train_loss, "val_loss": val_loss}
        if classify:
            logs["val_acc"] = jnp.mean(jnp.argmax(val_out, -1) == d["y_val"])
        if scheduler is not None:
            new["plateau"] = plateau_step(scheduler, carry["plateau"], val_loss)
            logs["lr"] = hp["lr"] * lr_scale
        # Every log describes this epoch's pass and the parameters after it (PyTorch's per-epoch
        # curve): val_loss is the monitor, so it goes NaN in the epoch the parameters do and the
        # engine then keeps the carry from before that epoch.
        return new, logs, jnp.bool_(False)

    def finish(carry, hp, d):
        p = carry  # the best-validation epoch's parameters and statistics (the engine's checkpoint)
        test_out = predict(p, d["x_test"])
        extra = {"final_lr": hp["lr"] * carry["plateau"].scale} if scheduler is not None else {}
        if classify:
            return {**classification_metrics(test_out, d["y_test"], spec.classes),
                    "test_loss": batch_loss(test_out, d["y_test"]), **extra}
        if test_out.shape[-1] == 1:
            metrics = regression_metrics(test_out[:, 0], d["y_test"][:, 0])
        else:  # several outputs: each metric averaged over them, as sklearn's uniform_average
            per_output = jax.vmap(regression_metrics, in_axes=1)(test_out, d["y_test"])
            metrics = {k: jnp.mean(v) for k, v in per_output.items()}
        out = {**{f"test_{k}": v for k, v in metrics.items()},
               "train_mse": mse_loss(predict(p, d["x_train"]), d["y_train"]),
               "val_mse": mse_loss(predict(p, d["x_val"]), d["y_val"]), **extra}
        if test_out.shape[-1] == 1:  # the true-vs-predicted figure's points
            out.update(val_pred=predict(p, d["x_val"])[:, 0], val_true=d["y_val"][:, 0],  # (n_val,)
                       test_pred=test_out[:, 0], test_true=d["y_test"][:, 0])  # (n_test,)
        return out

    kept = ("params", "model_state") if fns.stateful else ("params",)
    checkpoint = Checkpoint("val_acc", True, kept) if classify else Checkpoint("val_loss", False, kept)
    return Trainer(init, epoch, finish, max_epochs=spec.epochs, monitor="val_loss",
                   optimizer=spec.optimizer, checkpoint=checkpoint, data_name=data_name)


def classification_metrics(logits, labels, classes: int) -> dict[str, jax.Array]:
    """Test accuracy, per-class accuracy (NaN for a class absent from the split) and the confusion
    matrix (classes, classes): rows true, columns predicted."""
    pred = jnp.argmax(logits, -1)
    conf = (jax.nn.one_hot(labels, classes).T @ jax.nn.one_hot(pred, classes)).astype(jnp.int32)
    support = jnp.sum(conf, axis=1)
    per_class = jnp.where(support > 0, jnp.diag(conf) / jnp.maximum(support, 1), jnp.nan)
    return {"test_acc": jnp.mean(pred == labels), "per_class_acc": per_class, "confusion": conf}
