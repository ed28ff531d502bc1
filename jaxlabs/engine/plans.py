"""How the members of a static group share a device: the plans.

- ``vmap``: every member in one batched program (``jax.vmap``): wins on accelerators for
  matmul-heavy models;
- ``map``: one member's program looped over the members on the device (``jax.lax.map``): wins
  where a vmapped op lowers badly (a vmapped convolution is a grouped convolution) or on a CPU that
  one member already saturates;
- ``hybrid:K``: K members vmapped at a time, looped (``lax.map(..., batch_size=K)``).

Every plan computes each member's own trajectory; they differ only in how XLA batches the work
(float32 rounding, as between a vmapped member and the member alone). ``auto``
(:mod:`jaxlabs.engine.auto`) chooses one by timing the candidates.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Optional

import jax
import jax.numpy as jnp


PLAN_FORMS = "auto, vmap, map or hybrid:K (K >= 1 members vmapped at a time)"

PRECISIONS = {"fp32": "float32", "tf32": "tensorfloat32", "bf16": "bfloat16"}  # jax.default_matmul_precision

@dataclass(frozen=True)
class Plan:
    kind: str  # "vmap" | "map" | "hybrid"
    batch: int = 0  # hybrid's K

    def __str__(self) -> str:
        return f"hybrid:{self.batch}" if self.kind == "hybrid" else self.kind

    def over_members(self, fn: Callable, idle: Optional[tuple[Callable, Callable]] = None) -> Callable:
        """``fn(a, b, *shared)`` of one member -> the same over members stacked on the leading
        axis of ``a`` and ``b`` (``shared``: the data and numbers every member sees).

        ``idle = (is_idle, held)``: ``is_idle(a)`` says a member has nothing to do and ``held(a, b,
        *shared)`` gives its output without computing; hybrid then skips every block of K idle
        members (vmap computes them all; under map ``fn`` skips on its own)."""
        one = lambda a, b, *shared: jax.vmap(lambda x, y: fn(x, y, *shared))(a, b)  # noqa: E731
        if self.kind == "vmap":
            return one
        if self.kind == "map":
            return lambda a, b, *shared: jax.lax.map(lambda xy: fn(xy[0], xy[1], *shared), (a, b))
        if idle is None:
            return lambda a, b, *shared: jax.lax.map(lambda xy: fn(xy[0], xy[1], *shared), (a, b),
                                                     batch_size=self.batch)
        is_idle, held = idle
        stay = lambda a, b, *shared: jax.vmap(lambda x, y: held(x, y, *shared))(a, b)  # noqa: E731

        def hybrid(a, b, *shared):
            def block(xy):
                x, y = xy
                return jax.lax.cond(jnp.all(jax.vmap(is_idle)(x)), lambda: stay(x, y, *shared),
                                    lambda: one(x, y, *shared))

            n = jax.tree.leaves(a)[0].shape[0]
            k = min(self.batch, n)
            full = n - n % k
            blocks = jax.tree.map(lambda t: t[:full].reshape(full // k, k, *t.shape[1:]), (a, b))
            out = jax.tree.map(lambda t: t.reshape(full, *t.shape[2:]), jax.lax.map(block, blocks))
            if full == n:
                return out
            rest = block(jax.tree.map(lambda t: t[full:], (a, b)))
            return jax.tree.map(lambda u, v: jnp.concatenate([u, v]), out, rest)

        return hybrid


VMAP = Plan("vmap")


def parse_plan(text: str) -> Optional[Plan]:
    """``--plan`` text -> a Plan, or None for ``auto``; ValueError (one line) otherwise."""
    t = text.strip().lower()
    if t == "auto":
        return None
    if t in ("vmap", "map"):
        return Plan(t)
    m = re.fullmatch(r"hybrid:(\d+)", t)
    if m and int(m.group(1)) >= 1:
        return Plan("hybrid", int(m.group(1)))
    raise ValueError(f"{text!r} is not a plan; use {PLAN_FORMS}")


def parse_forced_plan(text: str) -> Plan:
    """``text`` as a plan that is not ``auto`` (for tools that time or lower named plans);
    ValueError (one line) otherwise."""
    plan = parse_plan(text)
    if plan is None:
        raise ValueError("auto chooses among plans and is not one itself; name vmap, map or hybrid:K")
    return plan


def parse_precision(text: str) -> str:
    if text not in PRECISIONS:
        raise ValueError(f"{text!r} is not a precision; use {', '.join(PRECISIONS)}")
    return text


