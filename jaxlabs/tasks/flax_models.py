"""A Flax model of one's own as pure functions the engine can stack over members: Linen or NNX.

:class:`ModelFns` is what the table loop (:mod:`jaxlabs.tasks.tabular`) needs of a model:
``init(key, x1) -> (params, state)`` and ``apply(params, state, x, key) -> (outputs, state)``,
with ``key`` the step's dropout key in training and None in evaluation. ``params`` is what the
optimizer updates, ``state`` everything else a member carries (BatchNorm's running statistics),
both plain nested dicts of arrays, so the engine stacks, masks, copies and checkpoints them as any
carry.

- Linen: ``params`` and the other collections (``batch_stats``) of ``module.init``; a module
  whose ``__call__`` takes ``train`` gets ``train=True``, a ``dropout`` key and its statistics
  mutable in training, ``train=False`` in evaluation.
- NNX: a function of ``nnx.Rngs`` that builds the model, reduced once (shapes only) to
  ``nnx.split``'s graph definitions in train and eval mode (``model.train()``/``model.eval()``).
  Every call is Flax's functional API: ``nnx.merge`` builds a fresh module inside the current
  trace (so BatchNorm may update its statistics under the engine's vmap, scan and grad; a module
  merged outside a trace and mutated inside raises TraceContextError), calls it, and ``nnx.split``
  hands the updated statistics back. The random streams (``nnx.Dropout``'s) are not carried:
  each call rebuilds their keys from the step's key, so a member's dropout is drawn from its own
  epoch key as every lab's is, whatever the chunking.
"""
from __future__ import annotations

import inspect
import zlib
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from flax import linen as nn
from flax import nnx


class ModelFns(NamedTuple):
    init: Callable[[jax.Array, jax.Array], tuple[Any, Any]]  # (key, x (1, ...)) -> (params, state)
    apply: Callable[..., tuple[jax.Array, Any]]  # (params, state, x (n, ...), key | None) -> (out, state)
    stateful: bool  # state holds batch statistics: a padded batch would count its padding in them
    kind: str  # "linen" or "nnx", for descriptions
    name: str  # the model's class name


def takes_train_flag(model: nn.Module) -> bool:
    """Whether ``model.__call__`` has a ``train`` argument (dropout, BatchNorm)."""
    return "train" in inspect.signature(type(model).__call__).parameters


def is_nnx_builder(what) -> bool:
    """A callable that is not a Linen module (nor an NNX module itself): read as ``rngs -> model``."""
    return callable(what) and not isinstance(what, (nn.Module, nnx.Module))


def linen_fns(model: nn.Module, x1) -> ModelFns:
    """A Linen module's functions; its collections other than ``params`` are its state."""
    collections = set(jax.eval_shape(lambda: model.init(jax.random.key(0), x1)))
    stateful = bool(collections - {"params"})
    train_flag = takes_train_flag(model)

    def init(key, x):
        variables = model.init(key, x)
        return variables["params"], {k: v for k, v in variables.items() if k != "params"}

    def apply(params, state, x, key=None):
        variables = {"params": params, **state}
        if not train_flag:
            return model.apply(variables, x), state
        if key is None:
            return model.apply(variables, x, train=False), state
        if not stateful:
            return model.apply(variables, x, train=True, rngs={"dropout": key}), state
        out, updated = model.apply(variables, x, train=True, rngs={"dropout": key}, mutable=list(state))
        return out, {**state, **updated}

    return ModelFns(init, apply, stateful, "linen", type(model).__name__)


def _split(model):
    """graphdef, random streams, params, the rest (BatchStat and any other variable)."""
    return nnx.split(model, nnx.RngState, nnx.Param, ...)


def nnx_fns(build: Callable[[nnx.Rngs], nnx.Module]) -> ModelFns:
    """An NNX model's functions from ``build(rngs) -> model`` (its shapes read once, nothing computed)."""
    abstract = nnx.eval_shape(lambda: build(nnx.Rngs(0)))
    if not isinstance(abstract, nnx.Module):
        raise TypeError(f"the model function returned {type(abstract).__name__}, not an nnx.Module")
    abstract.train()
    train_def, streams, _, rest = _split(abstract)
    abstract.eval()
    eval_def = _split(abstract)[0]
    stream_leaves, stream_tree = jax.tree_util.tree_flatten_with_path(nnx.to_pure_dict(streams))
    # each stream's key: the step key folded with a number of its path (stable across runs)
    stream_ids = [zlib.crc32(jax.tree_util.keystr(p).encode()) & 0x7FFFFFFF for p, _ in stream_leaves]

    def stream_state(key):
        leaves = [jax.random.fold_in(key, i) if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key)
                  else jnp.zeros(a.shape, a.dtype) for i, (_, a) in zip(stream_ids, stream_leaves)]
        return jax.tree_util.tree_unflatten(stream_tree, leaves)

    def init(key, x):
        _, _, params, state = _split(build(nnx.Rngs(key)))
        return nnx.to_pure_dict(params), nnx.to_pure_dict(state)

    def apply(params, state, x, key=None):
        training = key is not None
        model = nnx.merge(train_def if training else eval_def,
                          stream_state(key if training else jax.random.key(0)), params, state)
        out = model(x)
        return out, nnx.to_pure_dict(_split(model)[3]) if training else state

    stateful = bool(jax.tree.leaves(nnx.to_pure_dict(rest)))
    return ModelFns(init, apply, stateful, "nnx", type(abstract).__name__)
