"""One epoch's mini-batch order as device arrays: ``DataLoader(shuffle=True, drop_last=False)``.

:func:`batch_order` draws the epoch's permutation (the one place that does), cut into full
batches and the short rest. A task that scans one step shape pads the rest with
:func:`padded_batches` (a mask keeps the short batch a real step whose loss is the mean over its
real rows, as PyTorch's is); the classifiers run the rest as one more step at its own shape
instead, because BatchNorm would count padded rows in its batch statistics.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def batch_order(key: jax.Array, n: int, batch_size: int) -> tuple[jax.Array, jax.Array]:
    """A permutation of range(n) cut into full batches (n // batch_size, batch_size) and the
    rest (n % batch_size,)."""
    perm = jax.random.permutation(key, n)
    full = (n // batch_size) * batch_size
    return perm[:full].reshape(-1, batch_size), perm[full:]


def padded_batches(full: jax.Array, rest: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``batch_order``'s output as one shape: indices (batches, batch_size) with the rest padded
    (with row 0) into a last batch, and a bool mask of the same shape, False on the padding."""
    batch_size = full.shape[1]
    mask = jnp.ones(full.shape, bool)
    if rest.shape[0]:
        pad = batch_size - rest.shape[0]
        full = jnp.concatenate([full, jnp.pad(rest, (0, pad))[None]])
        mask = jnp.concatenate([mask, (jnp.arange(batch_size) < rest.shape[0])[None]])
    return full, mask
