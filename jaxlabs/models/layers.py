"""Layers that follow PyTorch's conventions where Flax's defaults differ.

- ``Dense`` / ``Conv`` build their bias initialiser from the fan-in (PyTorch's default bias).
- ``Conv`` pads symmetrically by ``kernel // 2`` like ``nn.Conv2d(padding=k // 2)``; Flax's
  ``"SAME"`` pads (0, 1) for a stride-2 3x3 conv on an even input, which shifts the sampling grid.
- ``BatchNorm`` matches ``nn.BatchNorm2d``: running = (1 - m) * running + m * batch with m = 0.1
  (Flax's momentum 0.9 is the weight of the old value), and the running variance is updated with
  the *unbiased* batch variance while the batch is normalised with the biased one.
"""
from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
from flax import linen as nn

from jaxlabs.models.conv import ConvFn, conv_for_backend
from jaxlabs.models.init import get_init


class Dense(nn.Module):
    """``nn.Linear``: y = x @ kernel + bias, kernel (in, out) = PyTorch's weight transposed."""

    features: int
    initializer: str = "pytorch"
    use_bias: bool = True

    @nn.compact
    def __call__(self, x):  # (..., in) -> (..., features)
        scheme = get_init(self.initializer)
        fan_in = x.shape[-1]
        kernel = self.param("kernel", scheme.kernel, (fan_in, self.features), jnp.float32)
        y = x @ kernel
        if self.use_bias:
            y = y + self.param("bias", scheme.bias(fan_in), (self.features,), jnp.float32)
        return y


class Conv(nn.Module):
    """``nn.Conv2d(padding=kernel // 2)`` in NHWC; kernel (kh, kw, in, out) = weight OIHW -> HWIO.

    ``conv`` computes the convolution (:mod:`jaxlabs.models.conv`); models pass it down from where
    they are built. None: ``conv_for_backend()``, for direct use of the layer."""

    features: int
    kernel_size: int = 3
    strides: int = 1
    initializer: str = "pytorch"
    use_bias: bool = True
    conv: ConvFn | None = None

    @nn.compact
    def __call__(self, x):  # (batch, H, W, C_in) -> (batch, H', W', features)
        scheme = get_init(self.initializer)
        k = self.kernel_size
        fan_in = x.shape[-1] * k * k
        kernel = self.param("kernel", scheme.kernel, (k, k, x.shape[-1], self.features), jnp.float32)
        conv = self.conv or conv_for_backend()
        y = conv(x, kernel, self.strides, k // 2)  # (batch, H', W', features)
        if self.use_bias:
            y = y + self.param("bias", scheme.bias(fan_in), (self.features,), jnp.float32)
        return y


class BatchNorm(nn.Module):
    """PyTorch ``BatchNorm{1,2}d`` semantics: momentum 0.1 (new-value weight), eps 1e-5,
    unbiased running variance. Normalises over every axis but the last."""

    momentum: float = 0.1
    epsilon: float = 1e-5

    @nn.compact
    def __call__(self, x, train: bool):
        features = x.shape[-1]
        axes: Sequence[int] = tuple(range(x.ndim - 1))
        scale = self.param("scale", nn.initializers.ones, (features,))
        bias = self.param("bias", nn.initializers.zeros, (features,))
        ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((features,), jnp.float32))
        ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((features,), jnp.float32))
        if train:
            mean = jnp.mean(x, axis=axes)
            var = jnp.mean(jnp.square(x - mean), axis=axes)  # biased: used to normalise
            n = x.size // features
            if not self.is_initializing():
                m = self.momentum
                unbiased = var * (n / max(n - 1, 1))
                ra_mean.value = (1 - m) * ra_mean.value + m * mean
                ra_var.value = (1 - m) * ra_var.value + m * unbiased
        else:
            mean, var = ra_mean.value, ra_var.value
        y = (x - mean) * (1.0 / jnp.sqrt(var + self.epsilon))
        return y * scale + bias
