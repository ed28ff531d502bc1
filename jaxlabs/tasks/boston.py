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

One epoch, as the report's PyTorch loop did it: a DataLoader pass (shuffle=True, drop_last=False)
of SGD steps at ``lr * plateau_scale``; the validation MSE of the parameters after the pass;
``scheduler.step(val_loss)``; keep the parameters if the validation MSE is the best so far.
"""
from __future__ import annotations

from numbers import Integral

import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.model_selection import train_test_split

from jaxlabs.data import load_boston, standardize
from jaxlabs.data.batches import batch_indices
from jaxlabs.data.splits import DATA_SEED
from jaxlabs.models import MLP
from jaxlabs.models.init import get_init
from jaxlabs.models.mlp import get_activation
from jaxlabs.tasks.base import Task
from jaxlabs.torch_compat import mse_loss, reduce_lr_on_plateau, torch_sgd
from jaxlabs.train import Trainer


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
    cooldown)`` as optax's ``reduce_on_plateau`` (patience + 1: see torch_compat)."""
    return reduce_lr_on_plateau(factor=static["factor"], patience=static["patience"],
                                threshold=static["threshold"], cooldown=static["cooldown"])


def plateau_step(scheduler, state, val_loss):
    """``scheduler.step(val_loss)``: one epoch's value in; the new scale is ``state.scale``.

    Only the state is used: the scale multiplies the learning rate of the *next* epoch, as
    PyTorch's does, instead of scaling updates inside the optimizer chain (which would count
    every mini-batch as an epoch).
    """
    return scheduler.update(jnp.zeros(()), state, value=val_loss)[1]


def _traced(hp: dict, name: str, default: float):
    # A name missing from hp is a Python constant: torch_sgd then drops a zero momentum statically.
    return hp[name] if name in hp else default


class BostonTask(Task):
    name = "boston"
    lab = "C"
    description = "Lab C: Boston housing MLP regression, mini-batch SGD, ReduceLROnPlateau, best-val params"
    static_defaults = {
        "depth": 1,  # the report's default hidden_layers=1
        "width": 64,  # not in the report; a common FNN width
        "activation": "relu",  # relu / tanh / sigmoid studied
        "batch_size": 32,  # not in the report; DataLoader(batch_size=32): 11 steps per epoch, the last of 16 rows
        "epochs": 100,  # not in the report; its curves show relu settled before 10, tanh by ~60, sigmoid not
        "data_seed": DATA_SEED,  # train_test_split(random_state=42), as the report
        "patience": 10,  # ReduceLROnPlateau defaults (the report gives none): patience 10,
        "factor": 0.1,  # factor 0.1,
        "threshold": 1e-4,  # relative threshold 1e-4,
        "cooldown": 0,  # no cooldown
        "initializer": "pytorch",
    }
    traced_defaults = {"lr": 0.01, "momentum": 0.0}  # report: lr 0.01 best; plain SGD (no momentum stated)
    chunk = 25
    primary_metric = "test_r2"
    higher_better = frozenset({"test_r2"})

    def build(self, static: dict):
        for k, low in (("depth", 0), ("width", 1), ("batch_size", 1), ("epochs", 1), ("patience", 0), ("cooldown", 0)):
            if not isinstance(static[k], Integral) or static[k] < low:
                raise ValueError(f"boston: {k} must be an integer >= {low}, got {static[k]!r}")
        if not 0.0 < static["factor"] < 1.0:
            raise ValueError(f"boston: factor must be in (0, 1), got {static['factor']!r}")
        get_activation(static["activation"]), get_init(static["initializer"])  # bad names fail here, not in jit
        model = MLP(width=static["width"], depth=static["depth"], out=1, activation=static["activation"],
                    initializer=static["initializer"])
        scheduler = plateau_scheduler(static)
        data = {k: jnp.asarray(v) for k, v in boston_splits(static["data_seed"]).items()}
        n_train, batch_size = data["x_train"].shape[0], min(static["batch_size"], data["x_train"].shape[0])

        def predict(params, x):  # (n, 13) -> (n, 1)
            return model.apply({"params": params}, x)

        def optimizer(hp, scale):
            return torch_sgd(hp["lr"] * scale, momentum=_traced(hp, "momentum", 0.0))

        def init(key, hp, d):
            init_key, shuffle_key = jax.random.split(key)
            params = model.init(init_key, d["x_train"][:1])["params"]
            plateau = scheduler.init(jnp.zeros(()))
            return {"params": params, "opt_state": optimizer(hp, plateau.scale).init(params),
                    "plateau": plateau, "key": shuffle_key, "best_params": params,
                    "best_val": jnp.float32(jnp.inf), "best_epoch": jnp.int32(0)}

        def epoch(carry, hp, d, e):
            key, shuffle_key = jax.random.split(carry["key"])
            idx, mask = batch_indices(shuffle_key, n_train, batch_size)  # (batches, batch_size)
            lr_scale = carry["plateau"].scale
            opt = optimizer(hp, lr_scale)

            def step(state, batch):
                params, opt_state = state
                rows, m = batch
                loss, grads = jax.value_and_grad(
                    lambda p: masked_mse(predict(p, d["x_train"][rows]), d["y_train"][rows], m))(params)
                updates, opt_state = opt.update(grads, opt_state, params)
                return (optax.apply_updates(params, updates), opt_state), loss * jnp.sum(m)

            (params, opt_state), weighted = jax.lax.scan(step, (carry["params"], carry["opt_state"]), (idx, mask))
            train_loss = jnp.sum(weighted) / n_train  # mean over the epoch's samples, as seen during the pass
            val_loss = mse_loss(predict(params, d["x_val"]), d["y_val"])
            better = val_loss < carry["best_val"]  # NaN never is: a diverged member keeps its best
            new = {"params": params, "opt_state": opt_state, "key": key,
                   "plateau": plateau_step(scheduler, carry["plateau"], val_loss),
                   "best_params": jax.tree.map(lambda a, b: jnp.where(better, a, b), params, carry["best_params"]),
                   "best_val": jnp.where(better, val_loss, carry["best_val"]),
                   "best_epoch": jnp.where(better, e + 1, carry["best_epoch"])}
            # val_loss is of the parameters after this epoch (PyTorch's per-epoch curve), so it is
            # the monitor: it goes NaN in the epoch the parameters do, and the engine then keeps
            # the carry from before that epoch.
            return new, {"loss": train_loss, "val_loss": val_loss, "lr": hp["lr"] * lr_scale}, jnp.bool_(False)

        def finish(carry, hp, d):
            # no epoch ever had a finite val loss (lr 0.1 in the report): no checkpoint, NaN metrics
            p = jax.tree.map(lambda w: jnp.where(carry["best_epoch"] > 0, w, jnp.nan), carry["best_params"])
            test_pred = predict(p, d["x_test"])[:, 0]  # (n_test,)
            metrics = regression_metrics(test_pred, d["y_test"][:, 0])
            return {**{f"test_{k}": v for k, v in metrics.items()},
                    "train_mse": mse_loss(predict(p, d["x_train"]), d["y_train"]),
                    "val_mse": mse_loss(predict(p, d["x_val"]), d["y_val"]),
                    "best_epoch": carry["best_epoch"],
                    "final_lr": hp["lr"] * carry["plateau"].scale,
                    "val_pred": predict(p, d["x_val"])[:, 0], "val_true": d["y_val"][:, 0],  # (n_val,)
                    "test_pred": test_pred, "test_true": d["y_test"][:, 0]}  # (n_test,)

        return Trainer(init, epoch, finish, max_epochs=static["epochs"], monitor="val_loss"), data
