"""jaxlabs: deep-learning lab studies in JAX, every seed and learning rate of a grid in one program."""
from jaxlabs.models import CNN, MLP, ResNet, ResNet8, ResNet20
from jaxlabs.train import Trainer, make_train
from jaxlabs.interop import from_torch

__version__ = "0.1.0"
__all__ = ["CNN", "MLP", "ResNet", "ResNet8", "ResNet20", "Trainer", "from_torch", "make_train"]
