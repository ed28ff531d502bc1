"""Labs A and B: fit a 1-D function with an MLP, full-batch, stopping at a train-loss tolerance.

Lab A (seed 000): y = log2(x) + cos(pi x / 2), x ~ U[1, 16], 8:1:1 split, SiLU MLP, Adam, MSE,
stop when the train loss reaches the tolerance (1e-4) or at the maximum epoch.

Per epoch the train loss is computed on the current parameters; if it is at or below the
tolerance the member converged at that (1-based) epoch and keeps exactly those parameters,
otherwise the update is applied. (The report's loop printed its counter after one more
``optimizer.step()``, so its "Final Epoch" is this epoch + 1.)
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxlabs.data.synthetic import log2_cos, sample_regression
from jaxlabs.models import MLP
from jaxlabs.tasks.base import Task
from jaxlabs.train import Trainer


def mse(pred, target):
    return jnp.mean(jnp.square(pred - target))


def make_optimizer(name: str, lr) -> optax.GradientTransformation:
    """``lr`` may be a traced scalar: the optimizer is rebuilt inside the traced function."""
    if name == "adam":
        return optax.adam(lr)  # PyTorch's defaults: b1 0.9, b2 0.999, eps 1e-8 outside the sqrt
    if name == "sgd":
        return optax.sgd(lr)
    raise ValueError(f"unknown optimizer {name!r}; choose adam or sgd")


class FitTask(Task):
    name = "fit-log2cos"
    lab = "A"
    description = "Lab A: fit log2(x) + cos(pi x/2) on [1, 16] with a SiLU MLP, full-batch Adam"
    static_defaults = {"n": 2000, "width": 64, "depth": 4, "activation": "silu", "optimizer": "adam",
                       "epochs": 20000, "data_seed": 0, "initializer": "pytorch"}
    traced_defaults = {"lr": 0.01, "tolerance": 1e-4}
    chunk = 250
    primary_metric = "test_mse"
    x_range = (1.0, 16.0)

    @staticmethod
    def target(x):
        return log2_cos(x)

    def data(self, static: dict) -> dict:
        return sample_regression(self.target, static["n"], self.x_range, static["data_seed"])

    def build(self, static: dict):
        model = MLP(width=static["width"], depth=static["depth"], out=1,
                    activation=static["activation"], initializer=static["initializer"])
        opt_name = static["optimizer"]
        make_optimizer(opt_name, 0.1)  # fail on a bad name before tracing
        data = {k: jnp.asarray(v) for k, v in self.data(static).items()}

        def loss_fn(params, x, y):
            return mse(model.apply({"params": params}, x), y)

        def init(key, hp, d):
            params = model.init(key, d["x_train"][:1])["params"]
            return {"params": params, "opt_state": make_optimizer(opt_name, hp["lr"]).init(params)}

        def epoch(carry, hp, d, e):
            del e
            loss, grads = jax.value_and_grad(loss_fn)(carry["params"], d["x_train"], d["y_train"])
            opt = make_optimizer(opt_name, hp["lr"])
            updates, opt_state = opt.update(grads, carry["opt_state"], carry["params"])
            params = optax.apply_updates(carry["params"], updates)
            val = loss_fn(carry["params"], d["x_val"], d["y_val"])  # same parameters as `loss`
            return {"params": params, "opt_state": opt_state}, {"loss": loss, "val_mse": val}, loss <= hp["tolerance"]

        def finish(carry, hp, d):
            p = carry["params"]
            return {"train_mse": loss_fn(p, d["x_train"], d["y_train"]),
                    "val_mse": loss_fn(p, d["x_val"], d["y_val"]),
                    "test_mse": loss_fn(p, d["x_test"], d["y_test"]),
                    "val_pred": model.apply({"params": p}, d["x_val"])[:, 0],  # (n_val,)
                    "val_true": d["y_val"][:, 0]}

        return Trainer(init, epoch, finish, max_epochs=static["epochs"], monitor="loss"), data
