"""A group's compiled programs: init, a chunk of epochs and finish, under one plan, over the
placement's devices, with the engine's XLA compile options; each compiled once per member count."""
from __future__ import annotations

import functools
import os
import time
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxlabs.engine import compile_cache
from jaxlabs.engine.placement import Placement, members_of, process0
from jaxlabs.engine.plans import PRECISIONS, Plan
from jaxlabs.engine.memory import program_bytes
from jaxlabs.train import (RUNNING, Trainer, begin_epoch, end_epoch, finalize, hold_epochs, init_member, run_epochs,
                           run_slice)

YNN_FUSION_TYPE = "xla_cpu_experimental_ynn_fusion_type"
# jaxlib 0.10's default list without LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION: dots and reductions
# stay in YNNPACK, convolutions go to Eigen's kernels (15-45% faster on ResNet20 and the Lab D CNN
# on a 2-core CPU; jaxlabs.models.conv says why the convolutions are library calls at all)
CPU_OPTIONS = {YNN_FUSION_TYPE: "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"}


def compiler_options(backend: str | None = None, wanted: dict[str, str] = CPU_OPTIONS) -> dict[str, str] | None:
    """XLA compile options for the engine's programs on ``backend`` (``jax.jit(...,
    compiler_options=...)``): on the CPU, ``wanted`` (convolutions in Eigen's kernels rather than
    YNNPACK's); None elsewhere, where ``XLA_FLAGS`` already names
    ``--xla_cpu_experimental_ynn_fusion_type`` (the user's choice stands), and on a jaxlib that
    does not know an option of ``wanted``. Only convolutions change: programs without one compile
    as before."""
    backend = backend or jax.default_backend()
    if backend != "cpu" or YNN_FUSION_TYPE in os.environ.get("XLA_FLAGS", ""):
        return None
    return dict(wanted) if _known(tuple(sorted(wanted.items()))) else None


@functools.cache
def _known(options: tuple) -> bool:
    try:
        jax.jit(lambda x: x + 1, compiler_options=dict(options)).lower(jnp.float32(0)).compile()
    except (RuntimeError, TypeError, ValueError):  # JaxRuntimeError: unknown option or value; old jit
        return False
    return True


class Programs:
    """One group's compiled programs under one plan: init, a chunk of ``length`` epochs and finish,
    each compiled once per member count (waves and compaction change the count). ``compiles``:
    (program, epochs, members) of every compile, in order; ``compile_s``: their seconds (tracing
    and lowering included); ``loaded``: how many of them came from the persistent compilation cache
    (:mod:`jaxlabs.engine.compile_cache`, on unless turned off), ``xla_s`` the seconds of XLA's
    compiles and loads among them. ``options``: the XLA compile
    options (None: :func:`compiler_options`'s)."""

    def __init__(self, trainer: Trainer, data: Any, plan: Plan, precision: str = "fp32",
                 placement: Optional[Placement] = None, options: Optional[dict] = None):
        compile_cache.ensure()
        self.trainer, self.plan, self.precision = trainer, plan, precision
        self.placement = placement or Placement()
        self.options = compiler_options() if options is None else options
        self.data = self.placement.shared(data)
        self.slice_steps: Optional[int] = None  # member-steps per piece of a sliced epoch (EngineOptions)
        self._compiled: dict[tuple, Any] = {}
        self.compiles: list[tuple[str, int, int]] = []
        self.compile_s = 0.0
        self.loaded, self.xla_s = 0, 0.0

    def _one(self, name: str, length: int) -> Callable:
        trainer, skip = self.trainer, self.plan.kind == "map"
        return {"init": lambda k, h, d: init_member(trainer, jax.random.wrap_key_data(k), h, d),
                "chunk": lambda s, h, d, start: run_epochs(trainer, s, h, d, start, length, skip_stopped=skip),
                "finish": lambda s, h, d: finalize(trainer, s, h, d),
                # a sliced epoch (Trainer.slices): begin, ``length`` steps from ``first``, end
                "begin": lambda s, h, d, epoch: begin_epoch(trainer, s, h, d, epoch),
                "slice": lambda p, sh, d, epoch, first: run_slice(trainer, p, sh[0], sh[1], d, epoch, first, length,
                                                                   skip_stopped=skip),
                "end": lambda sp, h, d, epoch: end_epoch(trainer, sp[0], sp[1], h, d, epoch)}[name]

    def trace(self, name: str, length: int, args: tuple):
        """The program ``name`` ("init", "chunk" or "finish"; ``length`` epochs for a chunk; "begin",
        "slice" of ``length`` steps and "end" of a sliced epoch) traced
        for ``args`` (arrays or ShapeDtypeStructs), as the engine compiles it: a jax Traced (its
        ``jaxpr``; ``.lower(lowering_platforms=("cuda",))`` lowers it for a GPU on any machine)."""
        idle = (lambda s: s.status != RUNNING, lambda s, h, d, start: hold_epochs(s, length))  # noqa: E731
        fn = self.placement.over_devices(
            self.plan.over_members(self._one(name, length), idle if name == "chunk" else None), _SHARED[name])
        with jax.default_matmul_precision(PRECISIONS[self.precision]):
            return jax.jit(fn, donate_argnums=(0,) if name in ("chunk", "slice") else (),
                           compiler_options=self.options).trace(*args)

    def lower(self, name: str, length: int, args: tuple):
        """:meth:`trace`'s program lowered for this machine's backend, as the engine compiles it."""
        with jax.default_matmul_precision(PRECISIONS[self.precision]):
            return self.trace(name, length, args).lower()

    def compiled(self, name: str, length: int, args: tuple):
        """:meth:`lower`'s program compiled, once per member count."""
        key = (name, length, members_of(args[1]))
        if key not in self._compiled:
            t0 = time.perf_counter()
            self._compiled[key], loaded, xla_s = compile_cache.compile(self.lower(name, length, args))
            self.compile_s += time.perf_counter() - t0
            self.loaded, self.xla_s = self.loaded + loaded, self.xla_s + xla_s
            self.compiles.append(key)
        return self._compiled[key]

    def tally(self) -> dict:
        """``{"loaded", "compiled", "xla_s"}`` of these programs' compiles (:func:`compile_cache.tally`)."""
        return compile_cache.tally([self])

    def init(self, key_data, hp):
        """States of the members with these keys (raw key data, (members, 2) uint32) and numbers."""
        return self.compiled("init", 0, (key_data, hp, self.data))(key_data, hp, self.data)

    def chunk_args(self, state, hp, start: int) -> tuple:
        return state, hp, self.data, self.placement.shared(np.int32(start))

    def chunk(self, state, hp, start: int, length: int, donate: bool = True):
        """``length`` epochs from epoch ``start``: (new state, logs (members, length))."""
        args = self.chunk_args(state, hp, start)
        program = self.compiled("chunk", length, args)
        if not donate:
            args = (jax.tree.map(jnp.copy, state), *args[1:])
        return program(*args)

    def timed_chunk(self, state, hp, start: int, length: int) -> tuple[tuple, float]:
        """A chunk from a copy of ``state`` (compiled first, off the clock): (its (state, logs),
        seconds: process 0's, on every process)."""
        self.compiled("chunk", length, self.chunk_args(state, hp, start))
        t0 = time.perf_counter()
        out = jax.block_until_ready(self.chunk(state, hp, start, length, donate=False))
        return out, round(float(process0([time.perf_counter() - t0])[0]), 4)

    def sliced_chunk(self, state, hp, start: int, length: int, steps: int, on_slice: Callable[[float], None]):
        """:meth:`chunk`'s epochs, each as pieces of ``steps`` steps (the trainer's Slices): the same
        numbers; ``on_slice(share of an epoch)`` after each piece, once it is done."""
        total, logs = self.trainer.slices.steps, []
        for e in range(start, start + length):
            epoch = self.placement.shared(np.int32(e))
            partial = self.compiled("begin", 0, (state, hp, self.data, epoch))(state, hp, self.data, epoch)
            for first in range(0, total, steps):
                count = min(steps, total - first)
                args = (partial, (state, hp), self.data, epoch, self.placement.shared(np.int32(first)))
                partial = jax.block_until_ready(self.compiled("slice", count, args)(*args))
                on_slice(count / total)
            args = ((state, partial), hp, self.data, epoch)
            state, piece = self.compiled("end", 0, args)(*args)
            logs.append(piece)
        return state, jax.tree.map(lambda *x: jnp.concatenate(x, axis=1), *logs)

    def finish(self, state, hp):
        return self.compiled("finish", 0, (state, hp, self.data))(state, hp, self.data)

    def state_shapes(self, key_data, hp):
        """The members' states as ShapeDtypeStructs placed as the engine places them (nothing run)."""
        state = jax.eval_shape(self.plan.over_members(self._one("init", 0)), key_data, hp, self.data)
        return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=self.placement.sharding(True)),
                            state)

    def partial_shapes(self, state, hp):
        """A sliced epoch in progress (what "begin" gives "slice") for these members' states, as
        ShapeDtypeStructs placed as the engine places them (nothing run)."""
        epoch = self.placement.shared(np.int32(0))
        partial = jax.eval_shape(self.plan.over_members(self._one("begin", 0)), state, hp, self.data, epoch)
        return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=self.placement.sharding(True)),
                            partial)

    def piece_steps(self, members: int) -> Optional[int]:
        """Steps per piece of a sliced epoch for a program of ``members`` members: ``slice_steps``
        shared by the members on a device; None where the epoch runs whole (no Slices, none
        asked for, or an epoch no longer than one piece)."""
        slices = self.trainer.slices
        if slices is None or not self.slice_steps:
            return None
        steps = max(1, self.slice_steps // max(1, members // self.placement.count))
        return steps if slices.steps > steps else None

    def chunk_bytes(self, key_data, hp, length: int) -> Optional[int]:
        """Device memory of a chunk for ``len(key_data)`` members (compiled, not run), per device:
        of the chunk program, or of the larger of a slice and an epoch's end where the trainer's
        epochs run in pieces (:meth:`piece_steps`: those programs are the ones that then run)."""
        state = self.state_shapes(key_data, hp)
        steps = self.piece_steps(members_of(hp))
        if steps is None:
            return program_bytes(self.compiled("chunk", length, self.chunk_args(state, hp, 0)))
        epoch = first = self.placement.shared(np.int32(0))
        partial = self.partial_shapes(state, hp)
        sizes = [program_bytes(self.compiled("slice", steps,
                                             (partial, (state, hp), self.data, epoch, first))),
                 program_bytes(self.compiled("end", 0, ((state, partial), hp, self.data, epoch)))]
        return None if None in sizes else max(sizes)


# per program, the arguments every member shares (after the two member-stacked ones)
_SHARED = {"init": 1, "chunk": 2, "finish": 1, "begin": 2, "slice": 3, "end": 2}


class PlanPrograms:
    """A group's :class:`Programs` per plan, built once each (the data is placed once)."""

    def __init__(self, trainer: Trainer, data: Any, precision: str, placement: Placement,
                 options: Optional[dict] = None):
        self.trainer, self.data, self.precision, self.placement = trainer, data, precision, placement
        self.options = options
        self.slice_steps: Optional[int] = None
        self._by_plan: dict[str, Programs] = {}

    def __call__(self, plan: Plan) -> Programs:
        if str(plan) not in self._by_plan:
            programs = Programs(self.trainer, self.data, plan, self.precision, self.placement, self.options)
            programs.slice_steps = self.slice_steps
            self._by_plan[str(plan)] = programs
        return self._by_plan[str(plan)]

    def built(self) -> list[Programs]:
        return list(self._by_plan.values())

    @property
    def compile_s(self) -> float:
        """Every compile so far: each plan's programs and the placement's member moves."""
        return sum(p.compile_s for p in self.built()) + self.placement.compile_s

    def tally(self) -> dict:
        """``{"loaded", "compiled", "xla_s"}`` of every compile :attr:`compile_s` counts
        (:func:`jaxlabs.engine.compile_cache.tally`)."""
        return compile_cache.tally([*self.built(), self.placement])
