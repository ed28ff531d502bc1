"""2-D convolutions (NHWC input, HWIO kernel, symmetric padding), chosen once per backend.

Every function here computes ``lax.conv_general_dilated(x, kernel, (s, s), ((p, p), (p, p)),
dimension_numbers=("NHWC", "HWIO", "NHWC"))``; they differ in what XLA makes of them.

Why XLA:CPU needs its own: XLA:CPU runs a convolution through a library kernel (YNNPACK / Eigen)
only when its dimension numbers are canonical, NHWC x HWIO -> NHWC. Autodiff of a conv gives two
that are not (the input gradient's kernel is OIHW-like, the weight gradient contracts the batch),
and the pass that rewrites them into canonical form with transposes,
``xla/service/cpu/conv_canonicalization.cc``, only visits the *entry* computation. Inside
``lax.scan`` (every training loop here) they fall to XLA's naive loop emitter: 30-100x slower (a
ResNet20 3x3 conv at batch 128 went from 20 ms to 2 s). :func:`conv_cpu` therefore has a custom
VJP whose three convolutions are written canonically by hand, so they stay library calls at any
loop depth. And under ``vmap`` over members with their own kernels, JAX batches a conv into a
grouped conv (``feature_group_count``), which XLA:CPU runs slowly too: each of the three
convolutions has a custom vmap rule that runs the members one after another (``lax.map``), each a
canonical conv; a batched input with a shared kernel is folded into the batch instead. Last, the
weight gradient's two transposes are kept from fusing with their producers (see ``weight_grad``).

Which library kernel runs a canonical convolution is XLA:CPU's choice: YNNPACK by default (jaxlib
0.10's ``xla_cpu_experimental_ynn_fusion_type`` is individual dots, individual convolutions and
reductions), Eigen's when convolutions are left out of that list. On a quiet 2-core machine Eigen's
trains ResNet20 and Lab D's CNN 15-45% faster (BENCHMARKS.md, "Conv labs on XLA:CPU"), so
:func:`jaxlabs.engine.programs.compiler_options` leaves them out of every program the engine
compiles on the CPU. oneDNN
(``--xla_cpu_use_onednn``) measured no faster than YNNPACK.

Use :func:`conv_for_backend` to pick one; :class:`jaxlabs.models.layers.Conv` takes the result.
"""
from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_batching import custom_vmap

ConvFn = Callable[[jax.Array, jax.Array, int, int], jax.Array]  # (x, kernel, stride, pad) -> y
DN = ("NHWC", "HWIO", "NHWC")


def conv_lax(x, kernel, stride: int, pad: int):
    """The reference: one ``lax.conv_general_dilated``; XLA differentiates and batches it. Fast
    on accelerators, whose compilers canonicalise convolutions everywhere."""
    return lax.conv_general_dilated(x, kernel, (stride, stride), ((pad, pad), (pad, pad)),
                                    dimension_numbers=DN)


def conv_im2col(x, kernel, stride: int, pad: int):
    """Shifted slices and one matmul: no convolution op at all, so nothing for XLA:CPU to lower
    naively; it pays for the (batch, ho, wo, kh*kw*c) patch matrix instead (slower than
    :func:`conv_cpu` for wide layers, kept as a second reference)."""
    kh, kw, c, o = kernel.shape
    h, w = x.shape[-3], x.shape[-2]
    xp = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    ho, wo = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
    cols = [xp[:, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride, :]
            for i in range(kh) for j in range(kw)]  # kh*kw x (batch, ho, wo, c), in HWI order
    return jnp.concatenate(cols, -1) @ kernel.reshape(kh * kw * c, o)  # (batch, ho, wo, o)


def _canonical(lhs, rhs, stride=1, padding=((0, 0), (0, 0)), lhs_dilation=None, rhs_dilation=None):
    return lax.conv_general_dilated(lhs, rhs, (stride, stride), padding, lhs_dilation=lhs_dilation,
                                    rhs_dilation=rhs_dilation, dimension_numbers=DN)


def _members(fn, lhs_batched: bool, rhs_batched: bool, lhs, rhs):
    """``fn`` per member when both operands carry a member axis 0 (the rhs is the kernel-like
    operand); a batched lhs with a shared rhs is folded into the conv's own batch."""
    if (lhs if lhs_batched else rhs).shape[0] == 1:  # one member (run_group with one seed): no loop
        return fn(lhs[0] if lhs_batched else lhs, rhs[0] if rhs_batched else rhs)[None]
    if lhs_batched and not rhs_batched:
        m, n = lhs.shape[:2]
        y = fn(lhs.reshape(m * n, *lhs.shape[2:]), rhs)  # (m * n, ...)
        return y.reshape(m, n, *y.shape[1:])
    if not lhs_batched:
        return lax.map(lambda r: fn(lhs, r), rhs)
    return lax.map(lambda a: fn(*a), (lhs, rhs))


def _transposed(xg):  # (n, h, w, c), (n, ho, wo, o) -> (c, h, w, n), (ho, wo, n, o)
    x, g = xg
    return x.transpose(3, 1, 2, 0), g.transpose(1, 2, 0, 3)


def _with_member_rule(fn):
    """``fn(lhs, rhs)`` with the vmap rule of :func:`_members` (never a grouped conv)."""
    wrapped = custom_vmap(fn)

    @wrapped.def_vmap
    def rule(axis_size, in_batched, lhs, rhs):
        lb, rb = in_batched
        return _members(wrapped, lb, rb, lhs, rhs), True

    return wrapped


@functools.lru_cache(maxsize=None)
def _primitives(stride: int, pad: int, h: int, w: int, kh: int, kw: int):
    """Forward, input-gradient and weight-gradient convolutions for one layer geometry, each
    canonical (NHWC x HWIO -> NHWC)."""
    s, p = stride, pad
    ho, wo = (h + 2 * p - kh) // s + 1, (w + 2 * p - kw) // s + 1

    def forward(x, kernel):  # (n, h, w, c), (kh, kw, c, o) -> (n, ho, wo, o)
        return _canonical(x, kernel, s, ((p, p), (p, p)))

    def input_grad(g, kernel):  # (n, ho, wo, o), (kh, kw, c, o) -> (n, h, w, c)
        flipped = jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2)  # (kh, kw, o, c): HWIO of the transpose
        lo_h, lo_w = kh - 1 - p, kw - 1 - p
        hi_h = h + kh - 1 - ((ho - 1) * s + 1) - lo_h  # rows the stride never reached get zeros
        hi_w = w + kw - 1 - ((wo - 1) * s + 1) - lo_w
        return _canonical(g, flipped, 1, ((lo_h, hi_h), (lo_w, hi_w)), lhs_dilation=(s, s))

    def weight_grad(x, g):  # (n, h, w, c), (n, ho, wo, o) -> (kh, kw, c, o)
        # channels play the batch, the batch plays the contracted features: (c, h, w, n) x (ho, wo, n, o)
        hi_h = (kh - 1) + (ho - 1) * s + 1 - h - p
        hi_w = (kw - 1) + (wo - 1) * s + 1 - w - p
        # The transposes sit in a conditional that is always taken (false only for a NaN, and both
        # branches are the same): fusion cannot cross into it, so x and g are read as stored.
        # Fused, XLA recomputes their producers (BatchNorm, relu, a ResNet's whole residual chain)
        # inside the cache-hostile transposed loop: half a ResNet20 step (1.5x faster without).
        # (lax.optimization_barrier does not stop it: XLA:CPU removes barriers before fusion.)
        xt, gt = lax.cond(g[0, 0, 0, 0] == g[0, 0, 0, 0], _transposed, _transposed, (x, g))
        dk = _canonical(xt, gt, 1, ((p, hi_h), (p, hi_w)), rhs_dilation=(s, s))  # (c, kh, kw, o)
        return dk.transpose(1, 2, 0, 3)

    fwd_p, dx_p, dw_p = (_with_member_rule(f) for f in (forward, input_grad, weight_grad))

    @jax.custom_vjp
    def conv(x, kernel):
        return fwd_p(x, kernel)

    def conv_fwd(x, kernel):
        return fwd_p(x, kernel), (x, kernel)

    def conv_bwd(res, g):
        x, kernel = res
        return dx_p(g, kernel), dw_p(x, g)

    conv.defvjp(conv_fwd, conv_bwd)
    return conv


def conv_cpu(x, kernel, stride: int, pad: int):
    """:func:`conv_lax`'s values and gradients from three hand-canonicalised convolutions with
    member-by-member vmap rules (see the module docstring): XLA:CPU's library kernels inside
    ``lax.scan`` and under ``vmap``. Reverse mode only (no ``jvp``, no second derivatives)."""
    kh, kw = kernel.shape[:2]
    return _primitives(stride, pad, x.shape[-3], x.shape[-2], kh, kw)(x, kernel)


def conv_for_backend(backend: str | None = None) -> ConvFn:
    """The convolution to build models with on ``backend`` (default: JAX's default backend,
    which initialises it: set ``XLA_FLAGS`` before). The one place this choice is made."""
    backend = backend or jax.default_backend()
    return conv_cpu if backend == "cpu" else conv_lax
