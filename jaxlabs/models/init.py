"""Initialisers, PyTorch's defaults first.

Every lab was tuned with PyTorch's default initialisation, so that is jaxlabs' default too:
- ``nn.Linear`` / ``nn.Conv2d`` weights: ``kaiming_uniform_(a=sqrt(5))``, i.e.
  U(-b, b) with b = gain * sqrt(3 / fan_in), gain = sqrt(2 / (1 + a^2)) = sqrt(1/3), so
  b = 1 / sqrt(fan_in): Flax's ``variance_scaling(1/3, "fan_in", "uniform")``.
- biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in)). Flax bias initialisers only see the bias shape, so
  the bias initialiser is built from the layer's fan-in (``bias_init(fan_in)``).

Flax kernels are laid out (in, out) for Dense and (kh, kw, in, out) for Conv, so Flax's fan-in
(product of all but the last axis) equals PyTorch's (in_channels * kh * kw).
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from flax import linen as nn

Initializer = Callable[..., jax.Array]


def uniform_bias(fan_in: int) -> Initializer:
    """PyTorch's bias default: U(+-1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def zeros_bias(fan_in: int) -> Initializer:
    del fan_in
    return nn.initializers.zeros


class InitScheme(NamedTuple):
    """A kernel initialiser and a bias-initialiser factory taking the layer's fan-in."""

    kernel: Initializer
    bias: Callable[[int], Initializer]


INIT_SCHEMES: dict[str, InitScheme] = {
    # kaiming_uniform_(a=sqrt(5)) and U(+-1/sqrt(fan_in)) biases: torch.nn's defaults.
    "pytorch": InitScheme(nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform"), uniform_bias),
    # torch.nn.init.xavier_normal_ (Lab E's variant), zero biases.
    "xavier_normal": InitScheme(nn.initializers.glorot_normal(), zeros_bias),
    "xavier_uniform": InitScheme(nn.initializers.glorot_uniform(), zeros_bias),
    # torch.nn.init.kaiming_normal_(mode="fan_in", nonlinearity="relu"): N(0, 2/fan_in), untruncated.
    "kaiming_normal": InitScheme(nn.initializers.variance_scaling(2.0, "fan_in", "normal"), zeros_bias),
    # Flax's own default (LeCun normal, truncated), for comparison.
    "flax": InitScheme(nn.initializers.lecun_normal(), zeros_bias),
}


def get_init(name: str) -> InitScheme:
    try:
        return INIT_SCHEMES[name]
    except KeyError:
        raise ValueError(f"unknown initialiser {name!r}; choose one of {', '.join(INIT_SCHEMES)}") from None
