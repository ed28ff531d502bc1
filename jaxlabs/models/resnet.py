"""ResNet20 for CIFAR-10 (He et al. 2016, section 4.2), Lab F.

3 stages x 3 basic blocks with 16/32/64 channels; the shortcut is parameter-free ("option A"):
stride-2 subsampling plus zero-padded channels, so the model has exactly 269,722 trainable
parameters for 10 classes. Convs have no bias (BatchNorm follows each one).
"""
from __future__ import annotations

from functools import partial
from typing import Sequence

import jax.numpy as jnp
from flax import linen as nn

from jaxlabs.models.conv import ConvFn
from jaxlabs.models.layers import BatchNorm, Conv, Dense


class BasicBlock(nn.Module):
    features: int
    strides: int = 1
    initializer: str = "pytorch"
    conv: ConvFn | None = None

    @nn.compact
    def __call__(self, x, train: bool):
        y = Conv(self.features, 3, self.strides, initializer=self.initializer, use_bias=False, conv=self.conv,
                 name="conv1")(x)
        y = nn.relu(BatchNorm(name="bn1")(y, train=train))
        y = Conv(self.features, 3, 1, initializer=self.initializer, use_bias=False, conv=self.conv,
                 name="conv2")(y)
        y = BatchNorm(name="bn2")(y, train=train)
        if self.strides != 1 or x.shape[-1] != self.features:
            # option A: x[:, ::2, ::2] with the new channels zero-padded evenly on both sides
            x = x[:, :: self.strides, :: self.strides, :]
            extra = self.features - x.shape[-1]
            x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)))
        return nn.relu(y + x)


class ResNet(nn.Module):
    blocks_per_stage: Sequence[int] = (3, 3, 3)
    widths: Sequence[int] = (16, 32, 64)
    classes: int = 10
    initializer: str = "pytorch"
    conv: ConvFn | None = None  # the convolution (jaxlabs.models.conv.conv_for_backend); None: chosen per backend

    @nn.compact
    def __call__(self, x, train: bool = False):  # (batch, 32, 32, 3) -> (batch, classes)
        x = Conv(self.widths[0], 3, initializer=self.initializer, use_bias=False, conv=self.conv, name="conv1")(x)
        x = nn.relu(BatchNorm(name="bn1")(x, train=train))
        for stage, (n, width) in enumerate(zip(self.blocks_per_stage, self.widths)):
            for b in range(n):
                strides = 2 if stage > 0 and b == 0 else 1
                x = BasicBlock(width, strides, initializer=self.initializer, conv=self.conv,
                               name=f"layer{stage + 1}_{b}")(x, train)
        x = jnp.mean(x, axis=(1, 2))  # global average pool: (batch, 64)
        return Dense(self.classes, initializer=self.initializer, name="linear")(x)


ResNet20 = partial(ResNet, blocks_per_stage=(3, 3, 3))
ResNet8 = partial(ResNet, blocks_per_stage=(1, 1, 1))  # tiny variant for tests
