"""PyTorch compatibility: a weight importer, and PyTorch's semantics where Flax/Optax differ.

The models themselves already follow PyTorch (:mod:`jaxlabs.models.layers`: BatchNorm momentum 0.1
as the new-value weight with the unbiased running variance, symmetric ``kernel // 2`` conv padding,
PyTorch's default initialisation). This module adds what lives outside the models:

- :func:`from_torch`: a PyTorch ``state_dict`` (names -> arrays) to Flax variables;
- losses: :func:`mse_loss`, :func:`cross_entropy`, :func:`multi_margin_loss` (``nn.MultiMarginLoss``,
  which is *not* optax's Crammer-Singer ``losses.multiclass_hinge_loss``);
- optimizers: :func:`torch_sgd` (dampening, coupled weight decay, PyTorch's nesterov),
  :func:`torch_adam` (eps outside the square root, coupled L2 weight decay, unlike ``optax.adamw``);
- schedules: :func:`step_schedule` (``MultiStepLR`` stepped per epoch), :func:`reduce_lr_on_plateau`.

``tests/test_parity.py`` holds all of it to reference outputs written by PyTorch itself.
"""
from __future__ import annotations

import math
import re
from typing import Any, Mapping, NamedTuple, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util

from jaxlabs.models.cnn import CNN
from jaxlabs.models.mlp import MLP
from jaxlabs.models.resnet import ResNet

__all__ = ["TorchImportError", "cross_entropy", "from_torch", "mse_loss", "multi_margin_loss",
           "reduce_lr_on_plateau", "step_schedule", "torch_adam", "torch_sgd"]

# Flax leaf name -> PyTorch parameter / buffer name
_LEAF = {"kernel": "weight", "scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}


class TorchImportError(ValueError):
    """The state_dict does not fit the model; the message lists every problem at once."""


def _module_names(model, keys: set[str]):
    """Flax module path (tuple) -> PyTorch module name."""
    if isinstance(model, MLP):
        layers = any(k.startswith("layers.") for k in keys)

        def mlp(p):  # hidden_{i} / out
            i = model.depth if p[0] == "out" else int(p[0].split("_")[1])
            if layers:
                return f"layers.{i}"
            return "fc1" if i == 0 else "fc2" if p[0] == "out" else f"hidden_layers.{i - 1}"

        return mlp
    if isinstance(model, CNN):
        return lambda p: re.sub(r"^(conv|bn)_(\d+)$", r"\1s.\2", p[0]).replace("fc_0", "fc1").replace("fc_1", "fc2")
    if isinstance(model, ResNet):
        return lambda p: ".".join(re.sub(r"^layer(\d+)_(\d+)$", r"layer\1.\2", q) for q in p)
    raise TypeError(f"from_torch supports jaxlabs MLP, CNN and ResNet, not {type(model).__name__}")


def _example_input(model, sd: Mapping[str, np.ndarray], input_shape):
    """A (1, ...) input giving the model the state_dict's input-dependent shapes."""
    if input_shape is not None:
        return jnp.zeros((1, *input_shape), jnp.float32)
    if isinstance(model, MLP):
        w = sd.get("layers.0.weight", sd.get("fc1.weight"))
        return jnp.zeros((1, w.shape[1] if w is not None and w.ndim == 2 else 1), jnp.float32)
    first = "convs.0.weight" if isinstance(model, CNN) else "conv1.weight"
    w = sd.get(first)
    c_in = w.shape[1] if w is not None and w.ndim == 4 else 1
    if isinstance(model, ResNet):
        return jnp.zeros((1, 2 ** len(model.widths), 2 ** len(model.widths), c_in), jnp.float32)
    side, c_last = 1, model.channels * 2 ** (model.depth - 1) if model.depth else c_in
    fc = sd.get("fc1.weight")
    if fc is not None and fc.ndim == 2 and fc.shape[1] % c_last == 0:  # square maps assumed
        side = max(math.isqrt(fc.shape[1] // c_last), 1)
    return jnp.zeros((1, side * 2 ** model.depth, side * 2 ** model.depth, c_in), jnp.float32)


def from_torch(model, state_dict: Mapping[str, Any], input_shape: Sequence[int] | None = None) -> dict:
    """Flax variables ``{'params': ..., 'batch_stats': ...}`` for ``model`` from a PyTorch state_dict.

    ``state_dict`` maps PyTorch names to arrays (NumPy, or anything ``np.asarray`` takes). A
    ``module.`` prefix (DataParallel / DDP) is stripped and ``num_batches_tracked`` is ignored.
    Layouts are converted: Linear (out, in) -> (in, out); Conv OIHW -> HWIO; the CNN's first fully
    connected layer is permuted from PyTorch's NCHW flatten order to jaxlabs' NHWC order.
    ``batch_stats`` is only present for models with BatchNorm. Accepted names:

    - ``MLP(depth=d)``: Lab A's FeedforwardNN, ``fc1``, ``hidden_layers.{0..d-2}``, ``fc2``; or
      ``layers.{0..d}`` (``layers.{d}`` is the output layer). Inputs are flattened as given.
    - ``CNN(depth=d)``: ``convs.{i}``, ``bns.{i}`` (weight, bias, running_mean, running_var),
      ``fc1``, ``fc2`` for i < d (``tests/make_references.py``'s ``TorchCNN``).
    - ``ResNet`` / ``ResNet20``: the common PyTorch CIFAR ResNet (akamaster's ``resnet.py``):
      ``conv1``, ``bn1``, ``layer{1,2,3}.{j}.{conv1,bn1,conv2,bn2}``, ``linear``.

    Input-dependent sizes (the MLP's input width, the CNN's flattened size, assumed square) are read
    from the state_dict; ``input_shape`` (one example, NHWC for images) overrides that. Missing or
    unexpected names and shape mismatches raise :class:`TorchImportError`, all listed at once.
    """
    sd = {}
    for name, value in state_dict.items():
        name = name[len("module."):] if name.startswith("module.") else name
        if not name.endswith("num_batches_tracked"):
            sd[name] = np.asarray(value)
    to_torch = _module_names(model, set(sd))
    x = _example_input(model, sd, input_shape)
    shapes = jax.eval_shape(lambda: model.init({"params": jax.random.key(0), "dropout": jax.random.key(0)},
                                               x, train=False))
    expected = traverse_util.flatten_dict(dict(shapes))
    flat, missing, mismatched, used = {}, [], [], set()
    for path, want in expected.items():
        modules, leaf = path[1:-1], path[-1]  # path[0] is the collection
        name = f"{to_torch(modules)}.{_LEAF[leaf]}"
        want_torch = (want.shape[::-1] if len(want.shape) == 2 else
                      tuple(want.shape[i] for i in (3, 2, 0, 1)) if len(want.shape) == 4 else want.shape)
        if name not in sd:
            missing.append(f"{name} {want_torch}")
            continue
        used.add(name)
        w = sd[name].astype(np.float32)
        if w.shape != tuple(want_torch):
            mismatched.append(f"{name}: got {w.shape}, expected {tuple(want_torch)}")
            continue
        if w.ndim == 4:  # OIHW -> HWIO
            w = w.transpose(2, 3, 1, 0)
        elif w.ndim == 2 and isinstance(model, CNN) and modules == ("fc_0",):
            c = x.shape[-1] if model.depth == 0 else model.channels * 2 ** (model.depth - 1)
            hw = w.shape[1] // c  # PyTorch flattened (C, H, W); jaxlabs flattens (H, W, C)
            h = math.isqrt(hw) if input_shape is None else x.shape[1] // 2 ** model.depth
            w = w.reshape(w.shape[0], c, h, hw // h).transpose(2, 3, 1, 0).reshape(-1, w.shape[0])
        elif w.ndim == 2:
            w = w.T
        flat[path] = jnp.asarray(w)
    unexpected = sorted(set(sd) - used)
    if missing or unexpected or mismatched:
        parts = [f"{title} ({len(items)}): " + ", ".join(items) for title, items in
                 (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)) if items]
        raise TorchImportError(f"state_dict does not fit {type(model).__name__}: " + "; ".join(parts))
    return traverse_util.unflatten_dict(flat)


# ----------------------------------------------------------------------------------------- losses
def mse_loss(pred, target):
    """``nn.MSELoss()``: mean over every element."""
    return jnp.mean(jnp.square(pred - target))


def cross_entropy(logits, labels):
    """``nn.CrossEntropyLoss()`` with integer labels: mean over the batch."""
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def multi_margin_loss(logits, labels, margin: float = 1.0):
    """``nn.MultiMarginLoss(p=1, margin)``: sum_{i != y} max(0, margin - x_y + x_i) / C, batch mean.

    Not ``optax.losses.multiclass_hinge_loss`` (Crammer-Singer: max_i (x_i + margin [i != y]) - x_y), which
    keeps only the worst violation and does not divide by the number of classes C.
    """
    chex.assert_rank(logits, 2)
    x_y = jnp.take_along_axis(logits, labels[:, None], axis=-1)
    terms = jnp.maximum(0.0, margin - x_y + logits)
    terms = jnp.where(jax.nn.one_hot(labels, logits.shape[-1], dtype=bool), 0.0, terms)
    return jnp.mean(jnp.sum(terms, axis=-1) / logits.shape[-1])


# ------------------------------------------------------------------------------------- optimizers
class TorchMomentumState(NamedTuple):
    count: chex.Array  # steps taken: PyTorch's first step copies the gradient into the buffer
    buf: optax.Updates


def _torch_momentum(momentum, dampening, nesterov: bool) -> optax.GradientTransformation:
    """buf = g on the first step, then momentum * buf + (1 - dampening) * g; optax.trace has no
    dampening and would give (1 - dampening) * g on the first step."""

    def init(params):
        return TorchMomentumState(jnp.zeros([], jnp.int32), jax.tree.map(jnp.zeros_like, params))

    def update(updates, state, params=None):
        del params
        first = state.count == 0
        buf = jax.tree.map(lambda g, b: jnp.where(first, g, momentum * b + (1 - dampening) * g),
                           updates, state.buf)
        out = jax.tree.map(lambda g, b: g + momentum * b, updates, buf) if nesterov else buf
        return out, TorchMomentumState(optax.safe_increment(state.count), buf)

    return optax.GradientTransformation(init, update)


def _static_zero(x) -> bool:
    return isinstance(x, (int, float)) and x == 0


def torch_sgd(learning_rate, momentum=0.0, weight_decay=0.0, dampening=0.0,
              nesterov: bool = False) -> optax.GradientTransformation:
    """``torch.optim.SGD``: g += weight_decay * p (coupled L2, before momentum), PyTorch's momentum
    buffer with dampening, p -= lr * buf. ``learning_rate`` may be a traced scalar or an optax
    schedule; the buffer does not include the learning rate, so changing it mid-run is safe."""
    parts = [] if _static_zero(weight_decay) else [optax.add_decayed_weights(weight_decay)]
    if not _static_zero(momentum):
        parts.append(_torch_momentum(momentum, dampening, nesterov))
    return optax.chain(*parts, optax.scale_by_learning_rate(learning_rate))


class TorchAdamState(NamedTuple):
    count: chex.Array
    mu: optax.Updates
    nu: optax.Updates


def _bias_correction(beta, count):
    """1 - beta**count to float32 precision. optax computes it from beta rounded to float32
    (0.999 -> 0.99900001), 1.3e-5 off at step 1; PyTorch computes it in float64."""
    if isinstance(beta, (int, float)) and 0 < beta < 1:
        return -jnp.expm1(count.astype(jnp.float32) * jnp.float32(math.log(beta)))
    return 1 - beta**count


def _scale_by_torch_adam(b1, b2, eps) -> optax.GradientTransformation:
    def init(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        return TorchAdamState(jnp.zeros([], jnp.int32), zeros, zeros)

    def update(updates, state, params=None):
        del params
        count = optax.safe_increment(state.count)
        mu = jax.tree.map(lambda m, g: m + (1 - b1) * (g - m), state.mu, updates)  # exp_avg.lerp_
        nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, state.nu, updates)
        step_size = 1 / _bias_correction(b1, count)
        bc2_sqrt = jnp.sqrt(_bias_correction(b2, count))
        out = jax.tree.map(lambda m, v: step_size * (m / (jnp.sqrt(v) / bc2_sqrt + eps)), mu, nu)
        return out, TorchAdamState(count, mu, nu)

    return optax.GradientTransformation(init, update)


def torch_adam(learning_rate, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0) -> optax.GradientTransformation:
    """``torch.optim.Adam``, in its order of operations: eps added outside the square root of the
    bias-corrected second moment (as optax's ``eps``; not ``eps_root``); weight decay is coupled L2
    (added to the gradient before the moments), not AdamW's decoupled decay; bias corrections
    accurate to float32 rounding like PyTorch's float64 ones (see :func:`_bias_correction`)."""
    parts = [] if _static_zero(weight_decay) else [optax.add_decayed_weights(weight_decay)]
    return optax.chain(*parts, _scale_by_torch_adam(b1, b2, eps), optax.scale_by_learning_rate(learning_rate))


# -------------------------------------------------------------------------------------- schedules
def step_schedule(lr, steps_per_epoch: int, milestones: Sequence[int] = (5,), gamma: float = 0.1):
    """``MultiStepLR(milestones, gamma)`` stepped once per epoch, as a per-update optax schedule.
    Lab F: ``step_schedule(0.1, steps_per_epoch)`` is 0.1 for epochs 0-4, then 0.01."""
    return optax.piecewise_constant_schedule(lr, {m * steps_per_epoch: gamma for m in milestones})


def reduce_lr_on_plateau(factor: float = 0.1, patience: int = 10, threshold: float = 1e-4,
                         cooldown: int = 0, min_scale: float = 0.0) -> optax.GradientTransformationExtraArgs:
    """``ReduceLROnPlateau(mode='min', threshold_mode='rel')`` as ``optax.contrib.reduce_on_plateau``.

    The optax transformation has the same rule (improvement: value < best * (1 - threshold);
    best starts at inf and is updated during cooldown; cooldown zeroes the bad-epoch count) with
    two differences that are translated here:
    - PyTorch reduces when the bad-epoch count *exceeds* ``patience``, optax when it *reaches* it:
      optax's patience is PyTorch's + 1;
    - PyTorch's ``min_lr`` is absolute, optax's ``min_scale`` relative: pass ``min_lr / lr``.
    Left as they are: PyTorch compares in float64 and skips reductions smaller than eps = 1e-8
    (only matters for learning rates near 1e-8).

    Step it once per epoch, after validation, the way PyTorch's ``scheduler.step(val_loss)`` is::

        _, plateau = rop.update(jnp.zeros(()), plateau, value=val_loss)
        lr_next_epoch = lr * plateau.scale   # e.g. torch_sgd(lr * plateau.scale) for the next epoch

    (Chaining it after the optimizer with ``value=`` on every update also works, but then each
    update counts as an epoch and the scale applies to the update that reported the value.)
    """
    return optax.contrib.reduce_on_plateau(factor=factor, patience=patience + 1, rtol=threshold, atol=0.0,
                                           cooldown=cooldown, min_scale=min_scale)
