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

import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.model_selection import train_test_split

from jaxlabs.data import load_boston, standardize
from jaxlabs.data.batches import batch_order, padded_batches
from jaxlabs.data.splits import DATA_SEED
from jaxlabs.models import ACTIVATIONS, INIT_SCHEMES, MLP
from jaxlabs.options import static_option, traced_option
from jaxlabs.tasks.base import Task
from jaxlabs.optim import mse_loss, reduce_lr_on_plateau, torch_sgd
from jaxlabs.train import Checkpoint, Trainer


def boston_splits(data_seed: int = DATA_SEED) -> dict[str, np.ndarray]:
    """x_{train,val,test} float32 (n, 13) standardised with train statistics; y_* float32 (n, 1).

    The report's order: the test sixth first, ``train_test_split(test_size=1/6, random_state=42)``,
    then a fifth of the rest for validation: 336 / 85 / 85 rows. Its numbers pin this down: every
    MSE / (1 - R^2) it reports is 72.71, the variance of MEDV on exactly those 85 test rows (the
    train-first :func:`split_ratio` order gives other rows, variance 69.13, and a harder test set).
    """
    x, y = load_boston()
    rest, test = train_test_split(np.arange(len(x)), test_size=1 / 6, random_state=data_seed)
    train, val = train_test_split(rest, test_size=0.2, random_state=data_seed)
    x_train, x_val, x_test = standardize(x[train], x[val], x[test])
    return {"x_train": x_train, "y_train": y[train, None], "x_val": x_val, "y_val": y[val, None],
            "x_test": x_test, "y_test": y[test, None]}


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
        traced_option("lr", 0.01, "learning rate (the report: 0.01 best)", low=0, low_open=True),
        traced_option("momentum", 0.0, "SGD momentum (the report states none)", low=0, high=1, high_open=True),
    )
    chunk = 25
    primary_metric = "test_r2"
    figures = ("loss", "true_vs_pred")
    higher_better = frozenset({"test_r2"})

    def build(self, static: dict):
        model = MLP(width=static["width"], depth=static["depth"], out=1, activation=static["activation"],
                    initializer=static["initializer"])
        scheduler = plateau_scheduler(static)
        data = {k: jnp.asarray(v) for k, v in boston_splits(static["data_seed"]).items()}
        n_train, batch_size = data["x_train"].shape[0], min(static["batch_size"], data["x_train"].shape[0])

        def predict(params, x):  # (n, 13) -> (n, 1)
            return model.apply({"params": params}, x)

        def init(key, hp, d, tx):
            params = model.init(key, d["x_train"][:1])["params"]
            return {"params": params, "opt_state": tx.init(params), "plateau": scheduler.init(jnp.zeros(()))}

        def epoch(carry, hp, d, e, key, tx):
            idx, mask = padded_batches(*batch_order(key, n_train, batch_size))  # (batches, batch_size)
            lr_scale = carry["plateau"].scale  # this epoch's lr is hp["lr"] * lr_scale

            def step(state, batch):
                params, opt_state = state
                rows, m = batch
                loss, grads = jax.value_and_grad(
                    lambda p: masked_mse(predict(p, d["x_train"][rows]), d["y_train"][rows], m))(params)
                updates, opt_state = tx.update(grads, opt_state, params)
                updates = jax.tree.map(lambda u: lr_scale * u, updates)
                return (optax.apply_updates(params, updates), opt_state), loss * jnp.sum(m)

            (params, opt_state), weighted = jax.lax.scan(step, (carry["params"], carry["opt_state"]), (idx, mask))
            train_loss = jnp.sum(weighted) / n_train  # mean over the epoch's samples, as seen during the pass
            val_loss = mse_loss(predict(params, d["x_val"]), d["y_val"])
            new = {"params": params, "opt_state": opt_state,
                   "plateau": plateau_step(scheduler, carry["plateau"], val_loss)}
            # Every log describes this epoch's pass and the parameters after it (PyTorch's
            # per-epoch curve): val_loss is the monitor, so it goes NaN in the epoch the
            # parameters do and the engine then keeps the carry from before that epoch; it is also
            # the checkpoint metric.
            return new, {"loss": train_loss, "val_loss": val_loss, "lr": hp["lr"] * lr_scale}, jnp.bool_(False)

        def finish(carry, hp, d):
            p = carry["params"]  # the best-validation epoch's (the engine's checkpoint)
            test_pred = predict(p, d["x_test"])[:, 0]  # (n_test,)
            metrics = regression_metrics(test_pred, d["y_test"][:, 0])
            return {**{f"test_{k}": v for k, v in metrics.items()},
                    "train_mse": mse_loss(predict(p, d["x_train"]), d["y_train"]),
                    "val_mse": mse_loss(predict(p, d["x_val"]), d["y_val"]),
                    "final_lr": hp["lr"] * carry["plateau"].scale,
                    "val_pred": predict(p, d["x_val"])[:, 0], "val_true": d["y_val"][:, 0],  # (n_val,)
                    "test_pred": test_pred, "test_true": d["y_test"][:, 0]}  # (n_test,)

        return Trainer(init, epoch, finish, max_epochs=static["epochs"], monitor="val_loss",
                       optimizer=lambda hp: torch_sgd(hp["lr"], momentum=hp["momentum"]),
                       checkpoint=Checkpoint("val_loss", higher=False, keys=("params",))), data
