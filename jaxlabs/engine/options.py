"""How the engine runs a group: every choice and tuning value in one frozen object, each with its
reason; and the errors it raises about them, which name the option (the command line maps the
option to its flag)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import jax

from jaxlabs.engine.plans import VMAP, Plan


class OptionError(ValueError):
    """An engine option that cannot be honoured here; ``option`` names the EngineOptions field."""

    def __init__(self, option: str, message: str):
        self.option = option
        super().__init__(message)


@dataclass(frozen=True)
class EngineOptions:
    """How the engine runs each static group. The library's default is one vmapped program on
    every device; the commands default to auto with compaction."""

    plan: Optional[Plan] = VMAP  # None: auto (jaxlabs.engine.auto) chooses, and caches its choice
    memory_limit: Optional[int] = None  # bytes one program may use per device; None: the free memory
    compaction: bool = False  # stopped members stop costing (map skips; hybrid reorders; vmap repacks)
    precision: str = "fp32"  # of matmuls and convolutions (fp32, tf32, bf16); parameters stay float32
    devices: Optional[int] = None  # split members over the first N devices; None: every device
    chunk: Optional[int] = None  # epochs per device call (a progress tick, a checkpoint); None: the task's
    max_wave: Optional[int] = None  # members per program at most, whatever memory allows (None: no cap)
    compile_options: Optional[dict] = None  # XLA compile options; None: programs.compiler_options()
    # a trainer whose epoch comes in pieces (Trainer.slices: the classifiers) runs about this many
    # training steps per member and device call, shared by the members on a device (4 members on
    # a device: 4 steps a call), so the bar moves every few seconds within a long epoch (16 steps of
    # ResNet20 at batch 128 take about 3 s on a 2-core CPU); the numbers are those of whole epochs.
    # None: whole epochs only
    slice_steps: Optional[int] = 16
    # auto: before any other plan is timed, the share of the group's time one might save. Plans
    # differed by 4-24% per member on a 2-core CPU (BENCHMARKS.md, "Plans") and by 1.5x for a conv
    # net (Lab F, map against vmap): a candidate is probed only when this share of the time left
    # (this run and one later run, which the cache serves) exceeds what probing it costs
    probe_gain: float = 0.15
    # auto: timings within this share of each other are noise on a busy or virtual machine (one
    # chunk varies by 10-15%); such candidates are timed once more, and between plans whose costs
    # stay this close the one quicker to compile is kept
    probe_close: float = 0.15
    # vmap's compaction repacks only when the program's remaining chunks are estimated to take
    # longer than this: a smaller program is a compile of a few seconds
    compact_worth_s: float = 10.0

    def device_list(self) -> list:
        """The devices members are split over: the first ``devices`` of every process's (all of
        them by default); an OptionError when there are fewer."""
        there = jax.devices()
        if self.devices is None:
            return there
        if self.devices > len(there):
            kinds = ", ".join(sorted({d.device_kind for d in there}))
            raise OptionError("devices", f"{self.devices} devices asked for, but {len(there)} "
                                         f"{'are' if len(there) > 1 else 'is'} here ({kinds}); ask for at most "
                                         f"{len(there)}, or all")
        return there[:self.devices]

    def chunk_for(self, default: int) -> int:
        return self.chunk or default
