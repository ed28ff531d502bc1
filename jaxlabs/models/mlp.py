"""Multilayer perceptron: Labs A, B, C (regression) and E (Fashion-MNIST)."""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxlabs.models.layers import Dense

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": nn.sigmoid,
    "silu": nn.silu,
}


def get_activation(name: str):
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}") from None


class MLP(nn.Module):
    """``depth`` hidden layers (Linear -> activation [-> dropout]) of ``width`` units, then a Linear.

    Lab A's ``num_layers`` is ``depth`` (fc1 plus num_layers - 1 hidden layers, each followed by the
    activation, then fc2). Inputs are flattened past the batch axis, so images work as in Lab E.
    """

    width: int = 64
    depth: int = 4
    out: int = 1
    activation: str = "silu"
    initializer: str = "pytorch"
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x, train: bool = False):  # (batch, ...) -> (batch, out)
        act = get_activation(self.activation)
        x = x.reshape(x.shape[0], -1)
        for i in range(self.depth):
            x = act(Dense(self.width, initializer=self.initializer, name=f"hidden_{i}")(x))
            if self.dropout > 0:
                x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return Dense(self.out, initializer=self.initializer, name="out")(x)
