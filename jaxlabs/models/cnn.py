"""Lab D's MNIST CNN: [conv -> (BatchNorm) -> relu -> maxpool 2] x depth -> fc -> dropout -> fc.

The report gives the block structure but not the widths; jaxlabs uses 32 channels doubling per
block and a 128-unit hidden layer, a common PyTorch MNIST layout. Convs pad ``kernel // 2`` so the
spatial size only changes at the pools (28 -> 14 -> 7 -> 3 -> 1 for depth 4; floor, like
``nn.MaxPool2d(2)``).
"""
from __future__ import annotations

from flax import linen as nn

from jaxlabs.models.conv import ConvFn
from jaxlabs.models.layers import BatchNorm, Conv, Dense


class CNN(nn.Module):
    depth: int = 2
    kernel: int = 5
    channels: int = 32
    hidden: int = 128
    classes: int = 10
    batch_norm: bool = False
    dropout: float = 0.5
    initializer: str = "pytorch"
    conv: ConvFn | None = None  # the convolution (jaxlabs.models.conv.conv_for_backend); None: chosen per backend

    @nn.compact
    def __call__(self, x, train: bool = False):  # (batch, 28, 28, 1) -> (batch, classes)
        for i in range(self.depth):
            x = Conv(self.channels * 2**i, self.kernel, initializer=self.initializer, conv=self.conv,
                     name=f"conv_{i}")(x)
            if self.batch_norm:
                x = BatchNorm(name=f"bn_{i}")(x, train=train)
            x = nn.relu(x)
            x = nn.max_pool(x, (2, 2), strides=(2, 2))  # VALID: floor like nn.MaxPool2d(2)
        # PyTorch flattens NCHW; jaxlabs flattens NHWC. from_torch permutes the fc weights.
        x = x.reshape(x.shape[0], -1)
        x = nn.relu(Dense(self.hidden, initializer=self.initializer, name="fc_0")(x))
        if self.dropout > 0:
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return Dense(self.classes, initializer=self.initializer, name="fc_1")(x)
