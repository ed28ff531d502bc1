"""Mini-batch order for one epoch as device arrays (shared by the Boston and scratch tasks).

The classification tasks use ``jaxlabs.tasks.classify.batch_order`` instead, which returns the
short last batch apart (one extra step at its own shape): BatchNorm would count padded rows.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def batch_indices(key: jax.Array, n: int, batch_size: int) -> tuple[jax.Array, jax.Array]:
    """One epoch of ``DataLoader(shuffle=True, drop_last=False)`` as fixed shapes.

    Returns indices (batches, batch_size) into range(n) and a bool mask of the same shape: a
    permutation cut into batches, the last one padded (with row 0, masked out) when batch_size
    does not divide n. lax.scan needs one batch shape; the mask keeps the short batch a real step
    whose loss is the mean over its real rows, as PyTorch's is.
    """
    batches = -(-n // batch_size)
    flat = jnp.arange(batches * batch_size)
    perm = jnp.pad(jax.random.permutation(key, n), (0, batches * batch_size - n))
    return perm.reshape(batches, batch_size), (flat < n).reshape(batches, batch_size)
