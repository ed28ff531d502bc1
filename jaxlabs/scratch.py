"""A neural-network framework in ``jax.numpy`` only (no Flax, no Optax): Lab G's hand-written one.

Lab G (seed 004) wrote a NumPy framework by hand: linear layers with a hand-written backward pass,
ReLU, softmax cross entropy, SGD, MomentGD, L2 regularisation, dropout, early stopping, and a
``conv2d`` whose Python loops took 45 s per batch, so the CNN was abandoned. This module is that
framework as pure functions of arrays, so it jit-compiles and vmaps like the library path:

- parameters are a list of layers ``{"w": (in, out), "b": (out,)}`` (the report's layout);
- the backward pass is written by hand, as in the report (``tests/test_scratch.py`` holds it to
  ``jax.grad`` of a Flax/Optax reference);
- ``conv2d`` is im2col: one strided slice per kernel offset and a single matmul, no ``lax.conv``.

Every number (learning rate, momentum, L2 coefficient, dropout rate, patience) may be traced.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp

Layer = dict  # {"w": (fan_in, fan_out), "b": (fan_out,)}
INIT_SCHEMES = ("pytorch", "xavier_normal")


# ------------------------------------------------------------------------------ initialisation
def init_linear(key: jax.Array, fan_in: int, fan_out: int, scheme: str = "pytorch") -> Layer:
    """One linear layer.

    ``"pytorch"``: ``nn.Linear``'s default, w and b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    (``kaiming_uniform_(a=sqrt(5))`` reduces to that bound). ``"xavier_normal"``: the report's
    ``Linear``, w ~ N(0, 2 / (fan_in + fan_out)) untruncated (``np.random.normal(scale=...)``), b = 0.
    """
    kw, kb = jax.random.split(key)
    size = fan_in * fan_out  # drawn flat, then reshaped: the same numbers, and XLA:CPU compiles a
    # vmapped 1-D draw several times faster than a 2-D one (seconds per layer in a sweep)
    if scheme == "pytorch":
        bound = 1.0 / math.sqrt(fan_in)
        return {"w": jax.random.uniform(kw, (size,), jnp.float32, -bound, bound).reshape(fan_in, fan_out),
                "b": jax.random.uniform(kb, (fan_out,), jnp.float32, -bound, bound)}
    if scheme == "xavier_normal":
        std = math.sqrt(2.0 / (fan_in + fan_out))
        return {"w": std * jax.random.normal(kw, (size,), jnp.float32).reshape(fan_in, fan_out),
                "b": jnp.zeros((fan_out,), jnp.float32)}
    raise ValueError(f"unknown init scheme {scheme!r}; choose one of {', '.join(INIT_SCHEMES)}")


def init_mlp(key: jax.Array, sizes: Sequence[int], scheme: str = "pytorch") -> list[Layer]:
    """Layers for ``sizes`` = (in, hidden..., out), e.g. the report's (784, 600, 10)."""
    keys = jax.random.split(key, len(sizes) - 1)
    return [init_linear(k, a, b, scheme) for k, a, b in zip(keys, sizes[:-1], sizes[1:])]


# ------------------------------------------------------------------------- layers, forward/back
def linear(p: Layer, x):  # (batch, in) -> (batch, out)
    return x @ p["w"] + p["b"]


def linear_backward(p: Layer, x, gy):
    """Gradients of w and b, and the gradient passed down, from gy = dL/dy (batch, out)."""
    return {"w": x.T @ gy, "b": jnp.sum(gy, axis=0)}, gy @ p["w"].T


def relu(x):
    return jnp.maximum(x, 0.0)


def relu_backward(x, gy):
    return jnp.where(x > 0, gy, 0.0)  # the report's np.where(X < 0, 0, grads), but 0 at x == 0


def log_softmax(logits):  # (batch, classes); log-sum-exp after subtracting the row max: no overflow
    shifted = logits - jax.lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True))
    return shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=-1, keepdims=True))


def _weights(labels, mask):
    """Per-row weights: 1 / (real rows) where mask, else 0 (padding rows of a short last batch)."""
    mask = jnp.ones(labels.shape, bool) if mask is None else mask
    return mask.astype(jnp.float32) / jnp.maximum(jnp.sum(mask), 1)


def cross_entropy(logits, labels, mask=None):
    """Mean softmax cross entropy over the rows where ``mask``; labels int (batch,).

    The report clipped probabilities at 1e-10 before the log; log-softmax needs no clip.
    """
    nll = -jnp.take_along_axis(log_softmax(logits), labels[:, None], axis=-1)[:, 0]
    return jnp.sum(nll * _weights(labels, mask))


def cross_entropy_backward(logits, labels, mask=None):
    """dL/dlogits = (softmax - one_hot) / rows, the report's ``MultiCrossEntropyLoss.backward``."""
    probs = jnp.exp(log_softmax(logits))
    return (probs - jax.nn.one_hot(labels, logits.shape[-1])) * _weights(labels, mask)[:, None]


def dropout(key: jax.Array, x, rate):
    """Inverted dropout (the report's): keep with probability 1 - rate, scale kept units by
    1 / (1 - rate). ``rate`` may be traced; rate 0 is the identity. Returns (y, mask) where mask
    holds the scale factors (0 or 1 / (1 - rate)) that the backward pass multiplies by."""
    keep = jax.random.uniform(key, (x.size,)).reshape(x.shape) >= rate  # flat draw: see init_linear
    mask = jnp.where(keep, 1.0 / jnp.maximum(1.0 - rate, 1e-12), 0.0)
    return x * mask, mask


def mlp_forward(layers: list[Layer], x, key=None, rate=0.0):
    """Logits, and the cache the backward pass needs. Linear -> ReLU [-> dropout] per hidden
    layer, then a linear output layer. Dropout only when a key is given (training)."""
    cache, h = [], x
    for i, p in enumerate(layers[:-1]):
        z = linear(p, h)
        a = relu(z)
        mask = None
        if key is not None:
            a, mask = dropout(jax.random.fold_in(key, i), a, rate)
        cache.append((h, z, mask))
        h = a
    cache.append((h, None, None))
    return linear(layers[-1], h), cache


def mlp_loss_and_grads(layers: list[Layer], x, labels, mask=None, key=None, rate=0.0, l2=0.0):
    """Cross-entropy loss and its hand-derived gradients, one backward pass like the report's.

    L2 regularisation is coupled into the gradient, of the weight matrices only, as the report's
    ``Linear.backward`` did (``grads['W'] += lambda * W``): it is the gradient of
    ``loss + l2 / 2 * sum ||W||^2``. The returned loss excludes that term, as the report's did.
    """
    logits, cache = mlp_forward(layers, x, key, rate)
    loss = cross_entropy(logits, labels, mask)
    g = cross_entropy_backward(logits, labels, mask)
    grads = [None] * len(layers)
    for i in reversed(range(len(layers))):
        grads[i], g = linear_backward(layers[i], cache[i][0], g)
        grads[i]["w"] = grads[i]["w"] + l2 * layers[i]["w"]
        if i > 0:  # back through the previous layer's dropout and ReLU
            _, z_prev, drop_prev = cache[i - 1]
            g = relu_backward(z_prev, g if drop_prev is None else g * drop_prev)
    return loss, grads


def accuracy(logits, labels):
    return jnp.mean(jnp.argmax(logits, axis=-1) == labels)


# -------------------------------------------------------------------------------- optimizers
def sgd(params, grads, lr):
    """p <- p - lr g: ``optax.sgd(lr)`` exactly (optax adds -lr g, the same float operation)."""
    return jax.tree.map(lambda p, g: p - lr * g, params, grads)


def momentgd(params, grads, velocity, lr, momentum):
    """The report's MomentGD: v <- mu v - lr g; p <- p + v (v starts at 0).

    With a constant lr this is ``optax.sgd(lr, momentum)`` (heavy ball: t <- mu t + g;
    p <- p - lr t): by induction v = -lr t. The two differ only in rounding, and only when lr
    changes mid-run does the order matter (here past steps keep the lr they were taken with).
    Returns (params, velocity).
    """
    velocity = jax.tree.map(lambda v, g: momentum * v - lr * g, velocity, grads)
    return jax.tree.map(lambda p, v: p + v, params, velocity), velocity


# ---------------------------------------------------------------------------- early stopping
class EarlyStop(NamedTuple):
    """Per-member state, carried through the epochs (vmaps like any other array)."""

    best: jax.Array  # best monitored value so far (lower is better); inf before the first
    bad: jax.Array  # epochs in a row without an improvement of at least min_delta


def early_stop_init() -> EarlyStop:
    return EarlyStop(jnp.float32(jnp.inf), jnp.float32(0))


def early_stop_update(state: EarlyStop, value, patience, min_delta=0.0) -> tuple[EarlyStop, jax.Array]:
    """The report's ``callbacks.EarlyStopping``: an improvement is value <= best - min_delta (the
    count resets); otherwise the count grows and the rule fires once it reaches ``patience``.
    Lower is better: pass -accuracy to stop on accuracy. ``patience <= 0`` never fires. A NaN
    value never improves, so a diverging member counts towards its patience."""
    improved = value <= state.best - min_delta
    new = EarlyStop(jnp.where(improved, value, state.best), jnp.where(improved, 0.0, state.bad + 1.0))
    return new, (patience > 0) & (new.bad >= patience)


# ------------------------------------------------------------------------------------- conv2d
def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def conv2d(x, w, b=None, stride=1, padding=0):
    """2-D convolution (cross-correlation, as every framework's conv) by im2col.

    x (batch, H, W, C_in) NHWC, w (kh, kw, C_in, C_out) HWIO: jaxlabs' Conv layout (the report's
    NCHW / OIHW arrays are ``x.transpose(0, 2, 3, 1)`` and ``w.transpose(2, 3, 1, 0)``).
    ``padding`` is an int, (ph, pw), or ((top, bottom), (left, right)), zeros. For each of the
    kh * kw kernel offsets one strided slice of the padded input gives that tap for every output
    pixel; stacked they are the patch matrix (batch * H' * W', kh * kw * C_in), and one matmul
    with the reshaped kernel gives the output (batch, H', W', C_out). The report's loop did the
    same sums one output pixel at a time. Differentiable (jax.grad) like any jnp function.
    """
    (sh, sw), (kh, kw) = _pair(stride), w.shape[:2]
    pad = [_pair(p) for p in padding] if isinstance(padding, (tuple, list)) and \
        isinstance(padding[0], (tuple, list)) else [(p, p) for p in _pair(padding)]
    x = jnp.pad(x, ((0, 0), pad[0], pad[1], (0, 0)))
    n, hp, wp, c = x.shape
    ho, wo = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    if ho < 1 or wo < 1:
        raise ValueError(f"conv2d: kernel {kh}x{kw} is larger than the padded input {hp}x{wp}")
    taps = [x[:, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw, :]  # (n, ho, wo, c) each
            for i in range(kh) for j in range(kw)]
    patches = jnp.stack(taps, axis=3).reshape(n, ho, wo, kh * kw * c)  # order (i, j, c) = HWI
    y = patches @ w.reshape(kh * kw * c, -1)
    return y if b is None else y + b
