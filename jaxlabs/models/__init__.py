"""jaxlabs models: Flax Linen modules used through pure ``init`` / ``apply``."""
from jaxlabs.models.cnn import CNN
from jaxlabs.models.conv import conv_cpu, conv_for_backend, conv_im2col, conv_lax
from jaxlabs.models.init import INIT_SCHEMES, get_init
from jaxlabs.models.layers import BatchNorm, Conv, Dense
from jaxlabs.models.mlp import ACTIVATIONS, MLP, get_activation
from jaxlabs.models.resnet import ResNet, ResNet8, ResNet20

__all__ = [
    "ACTIVATIONS", "BatchNorm", "CNN", "Conv", "Dense", "INIT_SCHEMES", "MLP", "ResNet", "ResNet8",
    "ResNet20", "conv_cpu", "conv_for_backend", "conv_im2col", "conv_lax", "get_activation", "get_init",
]
