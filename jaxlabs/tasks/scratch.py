"""Lab G: MNIST with a framework written by hand (``jaxlabs.scratch``), next to the library path.

Seed 004 (the report's code: PJ1 ``test_train.py``, ``mynn/``): 60000 MNIST training images,
``np.random.seed(309)`` permutation, the first 10000 held out for validation, the other 50000
trained on; pixels / 255 (the report's ``/ imgs.max()``); an MLP 784 -> 600 -> ReLU -> 10 with
``N(0, 2 / (in + out))`` weights and zero biases; softmax cross entropy; lr 0.01; ``RunnerM``
with batch 128, shuffled every epoch, the last short batch kept: 391 steps per epoch, so the
report's "2k / 4k steps" are 5 / 10 epochs (1955 / 3910 steps; ``batch_size=125`` gives exactly
400 per epoch). Its runs, and what jaxlabs measures for them (mean over 3-5 seeds, MNIST):

- base: SGD, test 0.9042 (5 epochs) / 0.9246 (10). Constant lr 0.01 gives 0.910 / 0.924. (Its
  script also shows ``StepLR(500, 0.5)`` per batch and L2 1e-4: that gives 0.892 / 0.894.)
- MomentGD (mu 0.9, no schedule, no L2): 0.8896 / 0.9705, the report's best. jaxlabs: 0.957 /
  0.969 (std 0.001; PyTorch 0.970 +- 0.001, ``python -m experiments.torch_crosscheck G``); the report's 0.8896 equals its regularised figure to four digits, likely
  the same saved model evaluated twice.
- regularised: SGD + L2 1e-4 + dropout 0.2 + early stopping (patience 3, min_delta 0.001 on the
  validation loss) + the optimizer's ``weight_decay=0.001`` + StepLR: 0.8896 / 0.8916, which the
  StepLR schedule alone reproduces (above): lr 0.01 halved every 500 steps has all but stopped by
  step 2000. Dropout and early stopping did nothing: ``evaluate()`` left the model in eval mode
  (dropout on the first batch only) and the stopping check ran after the epoch loop ("没停").
  For plain SGD that weight decay is coupled L2 on every parameter: ``l2=1.1e-3`` is it on the
  weights (the biases are not decayed here).

``path="scratch"`` trains with the hand-written forward/backward, SGD / MomentGD, L2 and dropout
of :mod:`jaxlabs.scratch`; ``path="library"`` trains the same network as jaxlabs' Flax ``MLP`` with
``optax.add_decayed_weights`` (L2 on kernels) + ``optax.sgd(lr, momentum)``. Both start from the
same initialisation (the scratch initialiser, copied into the Flax parameter tree) and see the same
batches, so for one seed the two runs follow each other (``tests/test_scratch.py``; timing:
``experiments/scratch_vs_library.py``). Dropout masks come from different generators, so with
dropout they agree only in distribution; with MomentGD and ``lr_decay < 1`` they differ by design
(the report's velocity keeps the lr each step was taken with, optax's trace is rescaled by the
current lr).

One epoch: the validation and test metrics of the current parameters (logged, and the early
stopping rule applied to the validation loss or accuracy, per member); then one pass of mini-batch
steps. So ``curves["test_acc"][:, e]`` is the accuracy after e epochs (column 5: the report's "2k
steps"), and ``final`` after the last; the logged ``loss`` is the mean training loss of the pass.

    python -c "from jaxlabs.tasks.scratch import ScratchTask as T; from jaxlabs.sweep import run_sweep; \
t = T(); r = run_sweep(t, [t.resolve_static(data_dir='DIR')], range(3), {'lr': [0.01]}); print(r.records())"
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlabs import scratch
from jaxlabs.data import load_dataset
from jaxlabs.models import MLP
from jaxlabs.options import static_option, traced_option
from jaxlabs.tasks.base import Task
from jaxlabs.data.batches import batch_order, padded_batches
from jaxlabs.train import Trainer

PATHS = ("scratch", "library")
OPTIMIZERS = ("sgd", "momentgd")
STOP_ON = ("val_loss", "val_acc")
CLASSES = 10


DATASETS = ("mnist", "fashion_mnist")  # the same 28x28 IDX layout: Lab E's own-vs-library study uses Fashion-MNIST


def mnist_splits(data_dir, val_size: int, data_seed: int, dataset: str = "mnist") -> dict[str, np.ndarray]:
    """uint8 images flattened (n, 784) and int32 labels: train / val from the 60000 training
    images (the report's split: ``RandomState(seed).permutation``, first ``val_size`` held out),
    test from the 10000 test images. Kept uint8: a quarter of the device memory of float32."""
    raw = load_dataset(dataset, data_dir)
    x, y = raw["train_images"].reshape(len(raw["train_images"]), -1), raw["train_labels"]
    if not 1 <= val_size < len(x):
        raise ValueError(f"mnist-scratch: val_size must be in [1, {len(x) - 1}] for {len(x)} training "
                         f"images, got {val_size}")
    perm = np.random.RandomState(data_seed).permutation(len(x))  # == np.random.seed(309); permutation
    val, train = perm[:val_size], perm[val_size:]
    return {"train_x": x[train], "train_y": y[train], "val_x": x[val], "val_y": y[val],
            "test_x": raw["test_images"].reshape(len(raw["test_images"]), -1), "test_y": raw["test_labels"]}


def pixels(x_uint8):  # (n, 784) uint8 -> float32 in [0, 1]
    return x_uint8.astype(jnp.float32) / 255.0


def to_flax(layers: list[dict]) -> dict:
    """Scratch layers -> jaxlabs ``MLP`` params: the same (in, out) kernels, renamed."""
    names = [f"hidden_{i}" for i in range(len(layers) - 1)] + ["out"]
    return {n: {"kernel": p["w"], "bias": p["b"]} for n, p in zip(names, layers)}


def masked_ce(logits, labels, mask):
    """Optax's cross entropy, averaged over the real rows of a (possibly padded) batch."""
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    return jnp.sum(jnp.where(mask, ce, 0.0)) / jnp.sum(mask)


class ScratchTask(Task):
    name = "mnist-scratch"
    lab = "G"
    description = "Lab G: MNIST MLP 784-600-10 by a hand-written jax.numpy framework (or Flax/Optax), SGD/MomentGD"
    options = (
        static_option("path", str, "scratch", "the hand-written jax.numpy framework, or the same network with "
                      "Flax + Optax", choices=PATHS),
        static_option("optimizer", str, "momentgd", "MomentGD (the report's best) or SGD (its base)",
                      choices=OPTIMIZERS),
        static_option("epochs", int, 10, "epochs: 10 x 391 = 3910 steps, the report's \"4k\"; 5 is its \"2k\"", low=1),
        static_option("batch_size", int, 128, "mini-batch size (RunnerM(batch_size=128): 391 steps per epoch)", low=1),
        static_option("width", int, 600, "hidden units (Model_MLP([784, 600, 10]))", low=1),
        static_option("depth", int, 1, "hidden layers", low=1),
        static_option("initializer", str, "xavier_normal", "the report's Linear: N(0, 2/(in+out)), zero bias; "
                      "or pytorch", choices=tuple(scratch.INIT_SCHEMES)),
        static_option("dropout", float, 0.0, "dropout rate after each hidden ReLU (the regularised run: 0.2)",
                      low=0, high=1, high_open=True),
        static_option("decay_every", int, 500, "StepLR step_size: lr *= lr_decay every this many steps", low=1),
        static_option("stop_on", str, "val_loss", "early stopping monitor (the report's EarlyStopping watched the "
                      "val loss)", choices=STOP_ON),
        static_option("val_size", int, 10000, "validation images held out (the report's split)", low=1),
        static_option("data_seed", int, 309, "np.random.seed(309) in the report's test_train.py: its exact split",
                      low=0),
        static_option("data_dir", str, None, "folder with the dataset's files (default: $JAXLABS_DATA_DIR and the "
                      "usual places)", none_ok=True),
        static_option("dataset", str, "mnist", "or fashion_mnist (Lab E's hand-written MLP vs the library's)",
                      choices=DATASETS),
        traced_option("lr", 0.01, "learning rate (the report's)", low=0, low_open=True, log=True),
        traced_option("momentum", 0.9, "MomentGD's mu (unused by sgd)", low=0, high=1, high_open=True),
        traced_option("l2", 0.0, "coupled L2 on the weight matrices (the report's SGD scripts: 1e-4)",
                      low=0, high=1, high_open=True),
        traced_option("lr_decay", 1.0, "StepLR gamma; 1 = constant lr, which reproduces the base run "
                      "(regularised: 0.5)", low=0, high=1, low_open=True),
        traced_option("patience", 0.0, "early stopping patience in epochs; 0 = off (regularised run: 3)", low=0),
        traced_option("min_delta", 0.001, "early stopping's smallest improvement (EarlyStopping(min_delta=0.001))",
                      low=0),
    )
    chunk = 1  # an epoch is 391 steps: tick the progress bar every epoch
    lr_grid = (0.003, 0.01, 0.03)
    primary_metric = "test_acc"
    figures = ("loss", "accuracy")
    higher_better = frozenset({"test_acc", "val_acc"})

    def build(self, static: dict):
        data = {k: jnp.asarray(v) for k, v in
                mnist_splits(static["data_dir"], static["val_size"], static["data_seed"], static["dataset"]).items()}
        n_train, features = data["train_x"].shape
        batch_size = min(static["batch_size"], n_train)
        sizes = (features,) + (static["width"],) * static["depth"] + (CLASSES,)
        rate, momentgd, decay_every = static["dropout"], static["optimizer"] == "momentgd", static["decay_every"]
        model = MLP(width=static["width"], depth=static["depth"], out=CLASSES, activation="relu", dropout=rate)
        kernels_only = to_flax([{"w": True, "b": False}] * (len(sizes) - 1))  # L2 mask: weights, not biases

        def init_params(key):
            return scratch.init_mlp(key, sizes, static["initializer"])

        shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, features)))["params"])
        if jax.tree.structure(shapes) != jax.tree.structure(to_flax(jax.eval_shape(init_params, jax.random.key(0)))):
            raise AssertionError("scratch layers and the Flax MLP disagree on the parameter tree")

        def lr_at(hp, count):  # StepLR stepped per batch: lr * gamma ** floor(count / step_size)
            return hp["lr"] * hp["lr_decay"] ** (count // decay_every).astype(jnp.float32)

        def library_tx(hp):
            return optax.chain(optax.add_decayed_weights(hp["l2"], mask=kernels_only),
                               optax.sgd(lambda count: lr_at(hp, count), momentum=hp["momentum"] if momentgd else None))

        if static["path"] == "scratch":
            def predict(params, x):
                return scratch.mlp_forward(params, x)[0]

            def init_opt(params, tx):
                return jax.tree.map(jnp.zeros_like, params) if momentgd else ()

            def step(params, opt_state, x, y, mask, key, hp, count, tx):
                loss, grads = scratch.mlp_loss_and_grads(params, x, y, mask, key if rate > 0 else None,
                                                         rate, hp["l2"])
                if momentgd:
                    params, opt_state = scratch.momentgd(params, grads, opt_state, lr_at(hp, count), hp["momentum"])
                else:
                    params = scratch.sgd(params, grads, lr_at(hp, count))
                return params, opt_state, loss
        else:
            def predict(params, x):
                return model.apply({"params": params}, x)

            def init_opt(params, tx):
                return tx.init(params)

            def step(params, opt_state, x, y, mask, key, hp, count, tx):
                def loss_fn(p):
                    return masked_ce(model.apply({"params": p}, x, train=True, rngs={"dropout": key}), y, mask)

                loss, grads = jax.value_and_grad(loss_fn)(params)
                updates, opt_state = tx.update(grads, opt_state, params)  # its own count = ours
                return optax.apply_updates(params, updates), opt_state, loss

        def evaluate(params, d, split):
            logits = predict(params, pixels(d[f"{split}_x"]))  # (n, 10)
            return scratch.cross_entropy(logits, d[f"{split}_y"]), scratch.accuracy(logits, d[f"{split}_y"])

        def init(key, hp, d, tx):
            layers = init_params(key)
            params = layers if static["path"] == "scratch" else to_flax(layers)
            return {"params": params, "opt_state": init_opt(params, tx), "step": jnp.int32(0),
                    "early_stop": scratch.early_stop_init()}

        def epoch(carry, hp, d, e, key, tx):
            del e
            val_loss, val_acc = evaluate(carry["params"], d, "val")
            test_loss, test_acc = evaluate(carry["params"], d, "test")
            watched = val_loss if static["stop_on"] == "val_loss" else -val_acc
            early_stop, stop = scratch.early_stop_update(carry["early_stop"], watched, hp["patience"], hp["min_delta"])
            perm_key, drop_key = jax.random.split(key)
            idx, mask = padded_batches(*batch_order(perm_key, n_train, batch_size))  # (steps, batch)

            def body(state, batch):
                params, opt_state, count = state
                rows, m, k = batch
                params, opt_state, loss = step(params, opt_state, pixels(d["train_x"][rows]), d["train_y"][rows],
                                               m, k, hp, count, tx)
                return (params, opt_state, count + 1), loss * jnp.sum(m)

            (params, opt_state, count), weighted = jax.lax.scan(
                body, (carry["params"], carry["opt_state"], carry["step"]),
                (idx, mask, jax.random.split(drop_key, idx.shape[0])))
            moved = jnp.sqrt(sum(jnp.sum(jnp.square(a - b)) for a, b in
                                 zip(jax.tree.leaves(params), jax.tree.leaves(carry["params"]))))
            logs = {"loss": jnp.sum(weighted) / n_train, "val_loss": val_loss, "val_acc": val_acc,
                    "test_acc": test_acc, "test_loss": test_loss,
                    "update_norm": moved}  # the report's "parameters really change" check, per epoch
            new = {"params": params, "opt_state": opt_state, "step": count, "early_stop": early_stop}
            return new, logs, stop

        def finish(carry, hp, d):
            val_loss, val_acc = evaluate(carry["params"], d, "val")
            test_loss, test_acc = evaluate(carry["params"], d, "test")
            return {"test_acc": test_acc, "test_loss": test_loss, "val_acc": val_acc, "val_loss": val_loss,
                    "steps": carry["step"]}

        return Trainer(init, epoch, finish, max_epochs=static["epochs"], monitor="loss",
                       optimizer=library_tx if static["path"] == "library" else None), data
