"""Mini-batch image classification on the engine: what Labs D, E and F share.

One epoch is the reports' PyTorch loop, ``for x, y in DataLoader(train, batch_size,
shuffle=True, drop_last=False)``, then an evaluation pass:

- order: each member draws its own permutation from the epoch's key (the engine folds it from the
  member's key), so seeds see different orders and one seed always sees the same one;
- steps: the full batches run under ``lax.scan`` (in one scan, or in pieces the engine calls one
  after another so a long epoch shows progress: :class:`jaxlabs.train.Slices`, the same numbers);
  the short last batch (``n % batch_size``
  images) is one more step, traced at its own static shape. Not padded and masked: BatchNorm would
  count padded rows in its batch statistics, while a separate step is exact for every model (it
  only costs a second trace of the step);
- logs: ``loss`` is the mean of the step losses (PyTorch's ``train_loss / (batch_idx + 1)``),
  ``train_acc`` correct / total over the pass (train mode, augmented, while the parameters move,
  as the reports printed them); ``val_*`` / ``test_*`` are loss (mean over images) and accuracy of
  the parameters after the pass, in eval mode. So an epoch's logs describe that epoch's pass, as
  the reports' curves do, not the carry before it; ``loss`` is the engine's monitor: one NaN step
  makes it NaN, and the engine then marks the member diverged and keeps the carry from before;
- checkpoint: the trainer asks the engine to keep params and batch_stats of the first epoch with
  the best validation accuracy (the reports saved the best model); without a validation split,
  the last epoch is tested. ``finish`` evaluates on the test split: accuracy, loss, per-class
  accuracy and confusion matrix.

Images stay uint8 on the device, shared by all members; each batch is scaled to [0, 1],
augmented (train steps only, when the task asks), then normalised with the task's mean and std.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn

from jaxlabs.data.batches import batch_order
from jaxlabs.data.splits import DATA_SEED, split_ratio
from jaxlabs.train import Checkpoint, Slices, Trainer

Augment = Callable[[jax.Array, jax.Array], jax.Array]  # (key, images in [0, 1]) -> images


@dataclass(frozen=True)
class ClassifierSpec:
    """A static configuration of a classification lab.

    ``loss(logits, labels)`` is the batch mean (as ``nn.CrossEntropyLoss()``); ``optimizer(hp,
    steps_per_epoch)`` builds the member's optax transformation from its traced numbers (the steps
    let a schedule count in epochs).
    """

    model: nn.Module
    loss: Callable[[jax.Array, jax.Array], jax.Array]
    optimizer: Callable[[dict, int], optax.GradientTransformation]
    batch_size: int
    epochs: int
    mean: Sequence[float] = (0.0,)  # per channel, applied after scaling to [0, 1]
    std: Sequence[float] = (1.0,)
    augment: Augment | None = None
    eval_batch: int = 1000  # images per evaluation step: bounds activation memory per member


def steps_per_epoch(n: int, batch_size: int) -> int:
    return -(-n // batch_size)


def _variables(params, stats) -> dict:
    return {"params": params, "batch_stats": stats} if stats else {"params": params}


def make_trainer(spec: ClassifierSpec, data: dict, data_name: str = "") -> Trainer:
    """The Trainer for ``data``: uint8 images ``x_{train,val,test}`` (n, H, W, C) and int32 labels
    ``y_*`` (n,); ``x_val``/``y_val`` are optional. Sizes are read here: they shape the program."""
    model, batch_size = spec.model, spec.batch_size
    n_train = int(data["x_train"].shape[0])
    has_val = "x_val" in data
    steps = steps_per_epoch(n_train, batch_size)
    n_full, n_rest = divmod(n_train, batch_size)
    mean, std = jnp.asarray(spec.mean, jnp.float32), jnp.asarray(spec.std, jnp.float32)
    per_image_loss = jax.vmap(lambda z, y: spec.loss(z[None], y[None]))  # the batch-mean loss per row

    def prepare(images, key=None):  # uint8 (B, H, W, C) -> float32, normalised
        x = images.astype(jnp.float32) / 255.0
        if key is not None and spec.augment is not None:
            x = spec.augment(key, x)
        return (x - mean) / std

    def train_step(tx, d, state, batch):
        params, stats, opt_state = state
        rows, key = batch  # (B,) indices into the train split, the step's key
        aug_key, dropout_key = jax.random.split(key)
        x, y = prepare(d["x_train"][rows], aug_key), d["y_train"][rows]

        def objective(p):
            logits, new = model.apply(_variables(p, stats), x, train=True, rngs={"dropout": dropout_key},
                                      mutable=["batch_stats"])
            return spec.loss(logits, y), (logits, new.get("batch_stats", stats))

        (loss, (logits, stats)), grads = jax.value_and_grad(objective, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        correct = jnp.sum(jnp.argmax(logits, -1) == y)
        return (optax.apply_updates(params, updates), stats, opt_state), (loss, correct)

    def evaluate(params, stats, images, labels, confusion=False):
        """Mean loss, accuracy (and the confusion matrix, rows = true class) over a split, in
        fixed-size batches; the last batch re-reads the final image and masks the repeats."""
        n = int(images.shape[0])
        eb = min(spec.eval_batch, n)
        variables = _variables(params, stats)

        def body(acc, i):
            idx = i * eb + jnp.arange(eb)
            valid = idx < n  # (eb,)
            idx = jnp.minimum(idx, n - 1)
            y = labels[idx]
            logits = model.apply(variables, prepare(images[idx]), train=False)  # (eb, classes)
            pred = jnp.argmax(logits, -1)
            loss_sum, correct, conf = acc
            loss_sum += jnp.sum(jnp.where(valid, per_image_loss(logits, y), 0.0))
            correct += jnp.sum(valid & (pred == y))
            if confusion:
                classes = logits.shape[-1]
                conf += (jax.nn.one_hot(y, classes) * valid[:, None]).T @ jax.nn.one_hot(pred, classes)
            return (loss_sum, correct, conf), None

        classes = jax.eval_shape(lambda: model.apply(variables, prepare(images[:1]), train=False)).shape[-1]
        zero = (jnp.float32(0), jnp.int32(0), jnp.zeros((classes, classes) if confusion else (), jnp.float32))
        (loss_sum, correct, conf), _ = jax.lax.scan(body, zero, jnp.arange(-(-n // eb)))
        out = {"loss": loss_sum / n, "acc": correct / n}
        if confusion:
            out["confusion"] = conf.astype(jnp.int32)
        return out

    def init(key, hp, d, tx):
        variables = model.init({"params": key}, prepare(d["x_train"][:1]), train=False)
        params, stats = variables["params"], variables.get("batch_stats", {})
        return {"params": params, "batch_stats": stats, "opt_state": tx.init(params)}

    # an epoch in pieces (Slices), which the engine may call one after another: the steps' losses
    # and correct counts are kept per step, so the epoch's logs sum them as one pass would
    def order(key):  # the epoch's full batches, the short rest and every step's key
        order_key, steps_key = jax.random.split(key)
        full, rest = batch_order(order_key, n_train, batch_size)
        return full, rest, jax.random.split(steps_key, steps)

    def begin(carry, hp, d, e, key, tx):
        return {"state": (carry["params"], carry["batch_stats"], carry["opt_state"]),
                "loss": jnp.zeros(n_full, jnp.float32), "correct": jnp.zeros(n_full, jnp.int32)}

    def run(partial, hp, d, e, key, tx, first, count):
        full, _, step_keys = order(key)
        batches = (jax.lax.dynamic_slice_in_dim(full, first, count),
                   jax.lax.dynamic_slice_in_dim(step_keys, first, count))
        state, (loss, correct) = jax.lax.scan(lambda st, b: train_step(tx, d, st, b), partial["state"], batches)
        return {"state": state, "loss": jax.lax.dynamic_update_slice_in_dim(partial["loss"], loss, first, 0),
                "correct": jax.lax.dynamic_update_slice_in_dim(partial["correct"], correct.astype(jnp.int32), first, 0)}

    def end(carry, partial, hp, d, e, key, tx):
        _, rest, step_keys = order(key)
        state, losses, corrects = partial["state"], [partial["loss"]], [partial["correct"]]
        if n_rest:
            state, (loss, correct) = train_step(tx, d, state, (rest, step_keys[-1]))
            losses.append(loss[None])
            corrects.append(correct[None].astype(jnp.int32))
        params, stats, opt_state = state
        logs = {"loss": jnp.mean(jnp.concatenate(losses)),
                "train_acc": jnp.sum(jnp.concatenate(corrects)) / n_train}
        if has_val:
            val = evaluate(params, stats, d["x_val"], d["y_val"])
            logs.update(val_loss=val["loss"], val_acc=val["acc"])
        test = evaluate(params, stats, d["x_test"], d["y_test"])  # the reports plotted it per epoch
        logs.update(test_loss=test["loss"], test_acc=test["acc"])
        return {"params": params, "batch_stats": stats, "opt_state": opt_state}, logs, jnp.bool_(False)

    def epoch(carry, hp, d, e, key, tx):  # begin, every full batch in one scan, end
        partial = begin(carry, hp, d, e, key, tx)
        if n_full:
            partial = run(partial, hp, d, e, key, tx, 0, n_full)
        return end(carry, partial, hp, d, e, key, tx)

    def finish(carry, hp, d):
        test = evaluate(carry["params"], carry["batch_stats"], d["x_test"], d["y_test"], confusion=True)
        conf = test["confusion"]  # (classes, classes): rows true, columns predicted
        support = jnp.sum(conf, axis=1)
        per_class = jnp.where(support > 0, jnp.diag(conf) / jnp.maximum(support, 1), jnp.nan)
        return {"test_acc": test["acc"], "test_loss": test["loss"], "per_class_acc": per_class, "confusion": conf}

    # with a validation split the engine keeps the first epoch of best validation accuracy (the
    # reports saved the best model); without one, the parameters after the last epoch are tested
    checkpoint = Checkpoint("val_acc", higher=True, keys=("params", "batch_stats")) if has_val else None
    return Trainer(init, epoch, finish, max_epochs=spec.epochs, monitor="loss",
                   optimizer=lambda hp: spec.optimizer(hp, steps), checkpoint=checkpoint,
                   probe=lambda: _probe(spec, data), data_name=data_name, items_per_epoch=n_train,
                   slices=Slices(n_full, begin, run, end) if n_full else None)


def data_name(raw: dict, original: str, synthetic: int = 0) -> str:
    """What records and figures call the data ``raw`` (a :func:`jaxlabs.data.load_dataset` dict):
    a copy by its ``source`` (e.g. "cifar10-jpeg (JPEG copy of CIFAR-10)"), stand-in data as such."""
    if synthetic:
        return f"synthetic ({synthetic} random {original}-shaped train images; not {original})"
    return str(raw.get("source", original))


def held_out_splits(raw: dict, val_split: float, data_seed: int = DATA_SEED,
                   subset: float = 1.0) -> dict[str, np.ndarray]:
    """x_train/x_test uint8 (n, H, W, C), y_* int32 from load_dataset's dict; x_val/y_val (that share
    of the training images, held out) only when val_split > 0.
    ``subset`` < 1 keeps that share of the training images first (stratified by class); the test
    set stays whole."""
    data = {"x_train": raw["train_images"], "y_train": raw["train_labels"],
            "x_test": raw["test_images"], "y_test": raw["test_labels"]}
    if subset < 1:
        from sklearn.model_selection import train_test_split

        keep, _ = train_test_split(np.arange(len(data["y_train"])), train_size=subset, random_state=data_seed,
                                   stratify=data["y_train"])
        keep = np.sort(keep)
        data.update(x_train=data["x_train"][keep], y_train=data["y_train"][keep])
    if val_split > 0:
        train, val = split_ratio(len(data["x_train"]), (1 - val_split, val_split), seed=data_seed)
        x, y = data["x_train"], data["y_train"]
        data.update(x_train=x[train], y_train=y[train], x_val=x[val], y_val=y[val])
    return data


PROBE_STEPS = 8  # train steps per epoch of the probe: enough to time a step, cheap to compile


def _probe(spec: ClassifierSpec, data: dict) -> tuple[Trainer, dict]:
    """The same program on a few batches: full train steps at the real batch size and one eval
    batch per split, for timing plans."""
    train = PROBE_STEPS * spec.batch_size
    small = {k: v[:train] if k.endswith("_train") else v[:min(spec.eval_batch, len(v))] for k, v in data.items()}
    return make_trainer(spec, small), small


def synthetic_images(n_train: int, n_test: int, shape: Sequence[int], classes: int = 10,
                     seed: int = 0) -> dict[str, np.ndarray]:
    """Random stand-in data in :func:`jaxlabs.data.load_dataset`'s format, for tests and speed
    benchmarks without the real files: each class has a random template and an image is half its
    template, half noise (uint8), so a model can learn it. Never a result about the real dataset."""
    rng = np.random.default_rng(seed)
    templates = rng.integers(0, 256, (classes, *shape))
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = rng.integers(0, classes, n).astype(np.int32)
        noise = rng.integers(0, 256, (n, *shape))
        out[f"{split}_images"] = ((templates[labels] + noise) // 2).astype(np.uint8)
        out[f"{split}_labels"] = labels
    return out
