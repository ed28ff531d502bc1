"""A group's programs lowered for a platform this machine may not have (CUDA by default), nothing
compiled, and what their StableHLO shows: its size, its grouped convolutions and its host
callbacks.

Why these: a vmapped convolution whose members have their own kernels becomes one grouped
convolution (``feature_group_count`` = members; its weight gradient may carry ``batch_group_count``
instead), the slow path of XLA:GPU (jax-ml/jax#26568, #13800) that ``map`` and ``hybrid:K`` avoid;
and a host callback (``jax.debug.callback``, ``pure_callback``, ``io_callback``) inside the
training loop is a round trip to Python every step. Lowering needs no GPU: ``jax.jit(f).trace(*args)
.lower(lowering_platforms=("cuda",))`` emits the module XLA:GPU would compile. A callback cannot be
lowered that way (its lowering asks this machine's backend for a host function: "the platform for
the specified backend cpu is different from the lowering platform cuda"), so callbacks are counted
on the traced jaxpr, which every platform shares.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Optional

import jax
import numpy as np
from jax.extend.core import jaxprs_in_params

from jaxlabs.engine.group import member_keys
from jaxlabs.engine.placement import Placement
from jaxlabs.engine.plans import PRECISIONS, Plan
from jaxlabs.engine.programs import Programs, compiler_options
from jaxlabs.train import Trainer

PROGRAMS = ("init", "chunk", "finish")
SLICED = ("begin", "slice", "end")  # a trainer's epoch in pieces (Trainer.slices), run instead of a chunk
LOOPS = frozenset({"scan", "while"})  # lax.scan, lax.map, lax.fori_loop, lax.while_loop
GROUP_COUNT = re.compile(r"(feature|batch)_group_count = (\d+)")
CALLBACK_TARGET = re.compile(r"custom_call @(\w*callback\w*)")  # xla_ffi_python_{cpu,gpu}_callback, ...
PARTITIONS = re.compile(r"mhlo\.num_partitions = (\d+)")
PRECISION = re.compile(r"precision = \[(\w+), (\w+)\]")  # of a dot_general or convolution


@dataclass(frozen=True)
class ProgramCheck:
    """One program lowered for ``platform``, and what it holds."""

    program: str  # "init", "chunk" or "finish"
    platform: str
    error: str = ""  # why it did not trace or lower, one line ("" when it did)
    size: int = 0  # bytes of its StableHLO text
    partitions: int = 1  # devices the module is split over (mhlo.num_partitions)
    convolutions: int = 0
    grouped: int = 0  # convolutions with feature_group_count or batch_group_count > 1
    largest_group: int = 1  # the largest of those counts (1: no grouped convolution)
    callbacks: int = 0  # host callbacks in the program's jaxpr
    callbacks_in_loop: int = 0  # of those, inside a loop body: one host round trip per iteration
    callback_targets: tuple[str, ...] = ()  # custom_call targets in the module that name a callback
    precisions: tuple[str, ...] = ()  # the operand precisions of its dots and convolutions (HIGHEST: fp32)

    @property
    def lowered(self) -> bool:
        return not self.error

    def to_json(self) -> dict:
        return asdict(self)


def convolutions(text: str) -> tuple[int, int, int]:
    """(convolutions, grouped ones, their largest group count) in a StableHLO module's text."""
    total = grouped = largest = 0
    for line in text.splitlines():
        if "stablehlo.convolution" not in line:
            continue
        total += 1
        group = max([int(n) for _, n in GROUP_COUNT.findall(line)] or [1])
        if group > 1:
            grouped += 1
            largest = max(largest, group)
    return total, grouped, max(largest, 1)


def host_callbacks(jaxpr, in_loop: bool = False) -> tuple[int, int]:
    """(host callbacks, those inside a loop body) in a jaxpr and every jaxpr nested in it."""
    total = inside = 0
    for eqn in jaxpr.eqns:
        if "callback" in eqn.primitive.name:
            total, inside = total + 1, inside + in_loop
        for sub in jaxprs_in_params(eqn.params):
            t, i = host_callbacks(sub, in_loop or eqn.primitive.name in LOOPS)
            total, inside = total + t, inside + i
    return total, inside


def check_traced(program: str, traced, platform: str, precision: str = "fp32") -> ProgramCheck:
    """A traced program (``jax.stages.Traced``) lowered for ``platform`` and read."""
    callbacks, in_loop = host_callbacks(traced.jaxpr.jaxpr)
    found = dict(program=program, platform=platform, callbacks=callbacks, callbacks_in_loop=in_loop)
    try:
        with jax.default_matmul_precision(PRECISIONS[precision]):
            text = traced.lower(lowering_platforms=(platform,)).as_text()
    except Exception as e:  # any failure to lower is the finding, reported in its row
        return ProgramCheck(error=_one_line(e), **found)
    partitions = PARTITIONS.search(text)
    count, grouped, largest = convolutions(text)
    return ProgramCheck(size=len(text.encode()), partitions=int(partitions.group(1)) if partitions else 1,
                        convolutions=count, grouped=grouped, largest_group=largest,
                        callback_targets=tuple(sorted(set(CALLBACK_TARGET.findall(text)))),
                        precisions=tuple(sorted({p for pair in PRECISION.findall(text) for p in pair})), **found)


def check_programs(trainer: Trainer, data: Any, plan: Plan, hparams: dict[str, float], members: int,
                   precision: str = "fp32", placement: Optional[Placement] = None, platform: str = "cuda",
                   length: int = 1) -> list[ProgramCheck]:
    """init, a chunk of ``length`` epochs and finish (and a sliced epoch's begin, slice of
    ``length`` steps and end, for a trainer with Slices) of ``members`` members (seeds 0, 1, ...; each
    with the numbers ``hparams``), traced as the engine compiles them under ``plan`` and
    ``precision`` over ``placement``'s devices, with the compile options the engine would give
    ``platform``, and lowered for ``platform``. The data is placed on ``placement``'s devices;
    nothing is compiled or run."""
    placement = placement or Placement()
    programs = Programs(trainer, data, plan, precision, placement, options=compiler_options(platform) or {})
    key_data = placement.members(np.asarray(member_keys(range(members))))  # (members, 2) uint32
    hp = placement.members({k: np.full(members, v, np.float32) for k, v in hparams.items()})
    checks = []
    try:
        state = programs.state_shapes(key_data, hp)
    except Exception as e:  # init does not even trace: nothing else can
        return [ProgramCheck(p, platform, error=_one_line(e)) for p in PROGRAMS]
    args = {"init": (key_data, hp, programs.data), "chunk": programs.chunk_args(state, hp, 0),
            "finish": (state, hp, programs.data)}
    names = PROGRAMS
    if trainer.slices is not None:  # the pieces of an epoch the engine calls instead of a chunk
        epoch = first = placement.shared(np.int32(0))
        args["begin"] = (state, hp, programs.data, epoch)
        try:
            partial = programs.partial_shapes(state, hp)
        except Exception as e:
            return [ProgramCheck(p, platform, error=_one_line(e)) for p in (*PROGRAMS, *SLICED)]
        args["slice"] = (partial, (state, hp), programs.data, epoch, first)
        args["end"] = ((state, partial), hp, programs.data, epoch)
        names = (*PROGRAMS, *SLICED)
    for name in names:
        try:
            traced = programs.trace(name, length, args[name])
        except Exception as e:
            checks.append(ProgramCheck(name, platform, error=_one_line(e)))
            continue
        checks.append(check_traced(name, traced, platform, precision))
    return checks


def _one_line(e: Exception) -> str:
    first = next((line.strip() for line in str(e).splitlines() if line.strip()), "")
    return f"{type(e).__name__}: {first}"[:300]
