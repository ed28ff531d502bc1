"""PyTorch's semantics where Optax differs: the losses, optimizers and schedules tasks train with.

- losses: :func:`mse_loss`, :func:`cross_entropy`, :func:`multi_margin_loss` (``nn.MultiMarginLoss``,
  which is *not* optax's Crammer-Singer ``losses.multiclass_hinge_loss``);
- optimizers: :func:`torch_sgd` (dampening, coupled weight decay, PyTorch's nesterov),
  :func:`torch_adam` (eps outside the square root, coupled L2 weight decay, unlike ``optax.adamw``);
- schedules: :func:`step_schedule` (``MultiStepLR`` stepped per epoch), :func:`reduce_lr_on_plateau`.

``tests/test_parity.py`` holds all of it to reference outputs written by PyTorch itself. Weight
import (:func:`jaxlabs.from_torch`) lives apart, in :mod:`jaxlabs.interop`.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import chex
import jax
import jax.numpy as jnp
import optax

__all__ = ["cross_entropy", "mse_loss", "multi_margin_loss", "reduce_lr_on_plateau", "step_schedule",
           "torch_adam", "torch_sgd"]


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
