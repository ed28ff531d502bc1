"""One static group: its members (seeds x traced numbers) trained as the fewest waves that fit,
each under the group's plan, with a progress bar, auto's decision and checkpoints between chunks."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxlabs.progress import converging, with_rate
from jaxlabs.progress import tick as tick_bar
from jaxlabs.engine.auto import Auto, Decision
from jaxlabs.engine.memory import check_data_fits, rows, wave_size, waves
from jaxlabs.engine.options import EngineOptions
from jaxlabs.engine.placement import Placement
from jaxlabs.engine.plans import VMAP
from jaxlabs.engine.programs import PlanPrograms
from jaxlabs.engine.wave import WaveRun, train_wave
from jaxlabs.train import Trainer


@dataclass
class GroupResult:
    """Everything one static configuration's program returned, as NumPy arrays per member."""

    static: dict
    labels: list[str]  # (members,): the setting of each member
    seeds: np.ndarray  # (members,)
    hparams: dict[str, np.ndarray]  # name -> (members,), as given (the program saw them as float32)
    curves: dict[str, np.ndarray]  # name -> (members, epochs_run)
    final: dict[str, np.ndarray]  # name -> (members, ...), with "status" and "stop_epoch"
    epochs_run: int
    compile_s: float
    run_s: float  # training, compile and probe excluded
    plan: str = "vmap"  # the plan that trained the group (after auto's first chunk)
    plan_source: str = "forced"  # forced, probed, cached, or why auto kept vmap
    probe: dict = field(default_factory=dict)  # plan -> probe seconds, when auto probed
    waves: list = field(default_factory=list)  # members per wave
    devices: int = 1  # devices the members were split over
    data: str = ""  # what the data is (Trainer.data_name), "" for a task's one fixed source
    compiled: list = field(default_factory=list)  # (plan, program, epochs, members) of every compile, in order
    programs: dict = field(default_factory=dict)  # compile_s's compiles: {"loaded" (cached), "compiled", "xla_s"}
    repacks: list = field(default_factory=list)  # (epoch, wave, members of the next program in its order)

    @property
    def members(self) -> int:
        return len(self.seeds)


def member_keys(seeds: Sequence[int]) -> jax.Array:
    """One key per member from its seed alone: members with the same seed and different learning
    rates start from the same initialisation (common random numbers make the comparison sharper)."""
    return jnp.stack([jax.random.key_data(jax.random.key(int(s))) for s in seeds])


def run_group(trainer: Trainer, data: Any, seeds: Sequence[int], hparams: dict[str, Sequence[float]],
              *, options: EngineOptions = EngineOptions(), static: dict | None = None,
              labels: Sequence[str] | None = None, progress: bool = True, desc: str = "",
              plan_key: str | None = None, checkpoint=None, observer=None) -> GroupResult:
    """Train ``len(seeds)`` members (member i: seed ``seeds[i]``, hyperparameters
    ``hparams[name][i]``, setting ``labels[i]``) of one static configuration, as ``options`` say
    (:class:`EngineOptions`: plan or auto, memory, compaction, precision, devices, chunk length).

    A group that does not fit the memory runs as the fewest waves that do. Every member's results
    are its own whatever the plan, waves, compaction and devices, to float32 rounding (bit for bit
    under ``map``: see the README's Determinism). ``plan_key``: auto's cache key. ``checkpoint``: a
    :class:`jaxlabs.checkpoint.GroupCheckpoint`: the group starts from where an earlier run saved it
    and is checkpointed between chunks. ``observer``: ``observer.chunk(rows, first_epoch, logs,
    status)`` after every chunk, with this wave's member rows and host values."""
    members = len(seeds)
    if any(len(v) != members for v in hparams.values()):
        raise ValueError("every hyperparameter needs one value per member")
    # equal chunks that cover max_epochs with the least overshoot: epochs past the budget in the
    # last chunk are computed (masked) too, so 300 epochs in chunks of 250 would cost 500
    n_chunks = -(-trainer.max_epochs // max(1, options.chunk_for(100)))
    chunk = -(-trainer.max_epochs // n_chunks)
    key_data = np.asarray(member_keys(seeds))  # (members, 2) uint32, on the host
    hp = {k: np.asarray(v, np.float32) for k, v in hparams.items()}
    placement = Placement(options.device_list())
    local = next(d for d in placement.devices if d.process_index == jax.process_index())  # this process's
    check_data_fits(data, options.memory_limit, local, trainer.data_name)
    programs_for = PlanPrograms(trainer, placement.shared(data), options.precision, placement,
                                options.compile_options)  # the data placed once, for every plan
    programs_for.slice_steps = options.slice_steps
    t0 = time.perf_counter()
    saved = checkpoint.position if checkpoint is not None else None  # where an earlier run stopped
    auto = Auto(trainer, programs_for, options, plan_key, chunk, n_chunks)
    decision = Decision.start(options.plan)
    if saved is None and options.plan is None and plan_key and trainer.probe is None:
        decision = auto.cached() or decision  # decided by an earlier run: sized and run under it
    if saved is None:
        size = wave_size(programs_for(decision.plan or VMAP), key_data, hp, chunk, options.memory_limit,
                         options.max_wave)
        split = waves(members, size)
        pieces, finals, epochs_run = [], [], 0
    else:  # its waves and auto's decision: the rest runs as it would have
        split = [np.asarray(i, int) for i in saved["waves"]]
        decision = Decision.from_json(saved["decision"])
        pieces, finals, epochs_run = checkpoint.earlier_waves()
    auto.chunks = n_chunks * len(split)
    probe_s, repacks = 0.0, []
    for w, idx in enumerate(split):
        if w < len(pieces):
            continue  # finished before the checkpoint
        name = desc or f"{members} members"
        on = f" on {placement.count} devices" if placement.count > 1 else ""
        bar = tqdm(total=trainer.max_epochs, unit="epoch", dynamic_ncols=True, leave=True, disable=not progress,
                   desc=(name if len(split) == 1 else f"{name} wave {w + 1}/{len(split)}") + on)

        def tick(ws, first, done, seconds, idx=idx, bar=bar):
            tick_bar(bar, trainer, ws, first, done, seconds, converging(hp))
            if observer is not None:
                observer.chunk(idx, first, {k: v[:, first:first + done] for k, v in ws.logs.items()},
                               ws.status[:len(idx)])

        def resume(fresh, bar=bar):
            ws = checkpoint.restore_wave(fresh, placement)
            bar.update(min(ws.epoch, trainer.max_epochs))
            return ws

        def sliced(share, seconds, bar=bar, idx=idx):  # a piece of a long epoch: the bar moves by its share
            bar.update(share)
            if trainer.items_per_epoch and seconds > 0 and not bar.disable:  # the wave's members' images
                rate = share * trainer.items_per_epoch * len(idx) / seconds
                bar.set_postfix_str(with_rate(getattr(bar, "postfix", None) or "", rate), refresh=False)

        run = WaveRun(trainer, programs_for, options, chunk, decision, auto, tick,
                      lambda epoch, members, w=w: repacks.append((epoch, w, [int(i) for i in members])),
                      sliced,
                      None if checkpoint is None else
                      lambda ws, d, w=w: checkpoint.save(w, split, d, (pieces, finals, epochs_run), ws))
        with bar:
            curves, final, ran, spent = train_wave(run, key_data[idx], rows(hp, idx),
                                                   resume if saved is not None and w == saved["wave"] else None)
        decision = run.decision
        pieces.append(curves)
        finals.append(final)
        epochs_run = max(epochs_run, ran)
        probe_s += spent
    compile_s = programs_for.compile_s
    run_s = time.perf_counter() - t0 - compile_s - probe_s
    # a wave that stopped early holds its members' last values, as one program would have
    curves = {k: np.concatenate([np.pad(c[k], ((0, 0), (0, epochs_run - c[k].shape[1])), mode="edge")
                                 for c in pieces]) for k in pieces[0]}
    final = {k: np.concatenate([f[k] for f in finals]) for k in finals[0]}
    return GroupResult(
        static=dict(static or {}), labels=list(labels or [""] * members), seeds=np.asarray(seeds), curves=curves,
        hparams={k: np.asarray(v, np.float64) for k, v in hparams.items()},  # as given, for records
        final=final, epochs_run=epochs_run, compile_s=compile_s, run_s=run_s,
        plan=str(decision.plan or VMAP), plan_source=decision.source or "short group: vmap",
        probe=decision.probe, waves=[len(i) for i in split], devices=placement.count, data=trainer.data_name,
        compiled=[(str(p.plan), *c) for p in programs_for.built() for c in p.compiles], repacks=repacks,
        programs=programs_for.tally())
