"""PyTorch weights into jaxlabs models: :func:`from_torch` turns a ``state_dict`` (names -> arrays)
into Flax variables for :class:`~jaxlabs.models.MLP`, :class:`~jaxlabs.models.CNN` and
:class:`~jaxlabs.models.ResNet` (OIHW -> HWIO kernels, PyTorch's NCHW flatten order, the common
CIFAR ResNet names, with or without ``module.``).

The models already follow PyTorch (:mod:`jaxlabs.models.layers`) and the numerics tasks train
with live in :mod:`jaxlabs.optim`; this module is the only one that knows PyTorch's names, so it
is the only one that imports every model. ``tests/test_parity.py`` holds it to PyTorch's outputs.
"""
from __future__ import annotations

import math
import re
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxlabs.models.cnn import CNN
from jaxlabs.models.mlp import MLP
from jaxlabs.models.resnet import ResNet

__all__ = ["TorchImportError", "from_torch"]

# Flax leaf name -> PyTorch parameter / buffer name
_LEAF = {"kernel": "weight", "scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}


class TorchImportError(ValueError):
    """The state_dict does not fit the model; the message lists every problem at once."""


def _module_names(model, keys: set[str]):
    """Flax module path (tuple) -> PyTorch module name."""
    if isinstance(model, MLP):
        layers = any(k.startswith("layers.") for k in keys)

        def mlp(p):  # hidden_{i} / out
            i = model.depth if p[0] == "out" else int(p[0].split("_")[1])
            if layers:
                return f"layers.{i}"
            return "fc1" if i == 0 else "fc2" if p[0] == "out" else f"hidden_layers.{i - 1}"

        return mlp
    if isinstance(model, CNN):
        return lambda p: re.sub(r"^(conv|bn)_(\d+)$", r"\1s.\2", p[0]).replace("fc_0", "fc1").replace("fc_1", "fc2")
    if isinstance(model, ResNet):
        return lambda p: ".".join(re.sub(r"^layer(\d+)_(\d+)$", r"layer\1.\2", q) for q in p)
    raise TypeError(f"from_torch supports jaxlabs MLP, CNN and ResNet, not {type(model).__name__}")


def _example_input(model, sd: Mapping[str, np.ndarray], input_shape):
    """A (1, ...) input giving the model the state_dict's input-dependent shapes."""
    if input_shape is not None:
        return jnp.zeros((1, *input_shape), jnp.float32)
    if isinstance(model, MLP):
        w = sd.get("layers.0.weight", sd.get("fc1.weight"))
        return jnp.zeros((1, w.shape[1] if w is not None and w.ndim == 2 else 1), jnp.float32)
    first = "convs.0.weight" if isinstance(model, CNN) else "conv1.weight"
    w = sd.get(first)
    c_in = w.shape[1] if w is not None and w.ndim == 4 else 1
    if isinstance(model, ResNet):
        return jnp.zeros((1, 2 ** len(model.widths), 2 ** len(model.widths), c_in), jnp.float32)
    side, c_last = 1, model.channels * 2 ** (model.depth - 1) if model.depth else c_in
    fc = sd.get("fc1.weight")
    if fc is not None and fc.ndim == 2 and fc.shape[1] % c_last == 0:  # square maps assumed
        side = max(math.isqrt(fc.shape[1] // c_last), 1)
    return jnp.zeros((1, side * 2 ** model.depth, side * 2 ** model.depth, c_in), jnp.float32)


def from_torch(model, state_dict: Mapping[str, Any], input_shape: Sequence[int] | None = None) -> dict:
    """Flax variables ``{'params': ..., 'batch_stats': ...}`` for ``model`` from a PyTorch state_dict.

    ``state_dict`` maps PyTorch names to arrays (NumPy, or anything ``np.asarray`` takes). A
    ``module.`` prefix (DataParallel / DDP) is stripped and ``num_batches_tracked`` is ignored.
    Layouts are converted: Linear (out, in) -> (in, out); Conv OIHW -> HWIO; the CNN's first fully
    connected layer is permuted from PyTorch's NCHW flatten order to jaxlabs' NHWC order.
    ``batch_stats`` is only present for models with BatchNorm. Accepted names:

    - ``MLP(depth=d)``: Lab A's FeedforwardNN, ``fc1``, ``hidden_layers.{0..d-2}``, ``fc2``; or
      ``layers.{0..d}`` (``layers.{d}`` is the output layer). Inputs are flattened as given.
    - ``CNN(depth=d)``: ``convs.{i}``, ``bns.{i}`` (weight, bias, running_mean, running_var),
      ``fc1``, ``fc2`` for i < d (``tests/make_references.py``'s ``TorchCNN``).
    - ``ResNet`` / ``ResNet20``: the common PyTorch CIFAR ResNet (akamaster's ``resnet.py``):
      ``conv1``, ``bn1``, ``layer{1,2,3}.{j}.{conv1,bn1,conv2,bn2}``, ``linear``.

    Input-dependent sizes (the MLP's input width, the CNN's flattened size, assumed square) are read
    from the state_dict; ``input_shape`` (one example, NHWC for images) overrides that. Missing or
    unexpected names and shape mismatches raise :class:`TorchImportError`, all listed at once.
    """
    sd = {}
    for name, value in state_dict.items():
        name = name[len("module."):] if name.startswith("module.") else name
        if not name.endswith("num_batches_tracked"):
            sd[name] = np.asarray(value)
    to_torch = _module_names(model, set(sd))
    x = _example_input(model, sd, input_shape)
    shapes = jax.eval_shape(lambda: model.init({"params": jax.random.key(0), "dropout": jax.random.key(0)},
                                               x, train=False))
    expected = traverse_util.flatten_dict(dict(shapes))
    flat, missing, mismatched, used = {}, [], [], set()
    for path, want in expected.items():
        modules, leaf = path[1:-1], path[-1]  # path[0] is the collection
        name = f"{to_torch(modules)}.{_LEAF[leaf]}"
        want_torch = (want.shape[::-1] if len(want.shape) == 2 else
                      tuple(want.shape[i] for i in (3, 2, 0, 1)) if len(want.shape) == 4 else want.shape)
        if name not in sd:
            missing.append(f"{name} {want_torch}")
            continue
        used.add(name)
        w = sd[name].astype(np.float32)
        if w.shape != tuple(want_torch):
            mismatched.append(f"{name}: got {w.shape}, expected {tuple(want_torch)}")
            continue
        if w.ndim == 4:  # OIHW -> HWIO
            w = w.transpose(2, 3, 1, 0)
        elif w.ndim == 2 and isinstance(model, CNN) and modules == ("fc_0",):
            c = x.shape[-1] if model.depth == 0 else model.channels * 2 ** (model.depth - 1)
            hw = w.shape[1] // c  # PyTorch flattened (C, H, W); jaxlabs flattens (H, W, C)
            h = math.isqrt(hw) if input_shape is None else x.shape[1] // 2 ** model.depth
            w = w.reshape(w.shape[0], c, h, hw // h).transpose(2, 3, 1, 0).reshape(-1, w.shape[0])
        elif w.ndim == 2:
            w = w.T
        flat[path] = jnp.asarray(w)
    unexpected = sorted(set(sd) - used)
    if missing or unexpected or mismatched:
        parts = [f"{title} ({len(items)}): " + ", ".join(items) for title, items in
                 (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)) if items]
        raise TorchImportError(f"state_dict does not fit {type(model).__name__}: " + "; ".join(parts))
    return traverse_util.unflatten_dict(flat)
