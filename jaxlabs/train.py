"""The training loop as pure functions: ``make_train(trainer) -> train(key, hparams, data)``.

A task supplies a :class:`Trainer`: three pure functions of a member's carry (params, optimizer
state, ...), its hyperparameters (a dict of traced scalars: learning rate, tolerance, momentum, ...)
and the data (device arrays shared by every member). The engine adds what every lab needs, as
per-member masks so no member ever waits on Python:

- a status: running, converged (the task's stopping rule fired), diverged (the monitored loss went
  NaN or inf), or max_epochs (still running when the budget ran out);
- freezing: from the epoch a member stops, its carry no longer changes and its logged values are
  held, so a stopped member's curve is flat at the value it stopped with;
- epochs under ``lax.scan``, so one call runs a whole chunk of epochs on the device.

One member trained alone (:func:`make_train`) and a vmapped sweep (:mod:`jaxlabs.sweep`) run the
same ``run_epochs``; the sweep only chops the epochs into chunks to drive a progress bar.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

Carry = Any
HParams = dict[str, jax.Array]
Data = Any

RUNNING, CONVERGED, MAX_EPOCHS, DIVERGED = 0, 1, 2, 3
STATUS_NAMES = {RUNNING: "running", CONVERGED: "converged", MAX_EPOCHS: "max_epochs", DIVERGED: "diverged"}


class Trainer(NamedTuple):
    """What a task gives the engine for one static configuration.

    init(key, hparams, data) -> carry
    epoch(carry, hparams, data, epoch) -> (new_carry, logs, stop): ``epoch`` is 0-based; ``logs`` a
        dict of scalars describing the carry *before* the update (``monitor`` among them); ``stop``
        a bool: the stopping rule fired on that carry, so the update is discarded and the member
        stops at this epoch.
    finish(carry, hparams, data) -> dict of final metrics (arrays of fixed shape).
    """

    init: Callable[[jax.Array, HParams, Data], Carry]
    epoch: Callable[[Carry, HParams, Data, jax.Array], tuple[Carry, dict, jax.Array]]
    finish: Callable[[Carry, HParams, Data], dict]
    max_epochs: int
    monitor: str = "loss"


class MemberState(NamedTuple):
    carry: Carry
    status: jax.Array  # int32: RUNNING / CONVERGED / DIVERGED (MAX_EPOCHS is set at the end)
    stop_epoch: jax.Array  # int32: 1-based epoch at which the member stopped; 0 while running
    last_logs: dict  # logs of the last active epoch, held once the member stops


def _where(cond, a, b):
    return jax.tree.map(lambda x, y: jnp.where(cond, x, y), a, b)


def init_member(trainer: Trainer, key: jax.Array, hparams: HParams, data: Data) -> MemberState:
    carry = trainer.init(key, hparams, data)
    log_shapes = jax.eval_shape(trainer.epoch, carry, hparams, data, jnp.int32(0))[1]
    last_logs = jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype), log_shapes)
    return MemberState(carry, jnp.int32(RUNNING), jnp.int32(0), last_logs)


def run_epochs(trainer: Trainer, state: MemberState, hparams: HParams, data: Data,
               start: jax.Array, length: int) -> tuple[MemberState, dict]:
    """Epochs ``start .. start + length - 1`` (0-based) of one member; epochs past
    ``trainer.max_epochs`` are no-ops. Returns the new state and the logs, each (length, ...)."""

    def body(ms: MemberState, epoch):
        new_carry, logs, stop = trainer.epoch(ms.carry, hparams, data, epoch)
        active = (ms.status == RUNNING) & (epoch < trainer.max_epochs)
        diverged = ~jnp.all(jnp.isfinite(logs[trainer.monitor]))
        stop = jnp.asarray(stop, bool) & ~diverged
        status = jnp.where(active & diverged, DIVERGED, jnp.where(active & stop, CONVERGED, ms.status))
        stop_epoch = jnp.where(active & (stop | diverged), epoch + 1, ms.stop_epoch)
        carry = _where(active & ~stop & ~diverged, new_carry, ms.carry)
        logs = _where(active, logs, ms.last_logs)
        return MemberState(carry, status.astype(jnp.int32), stop_epoch.astype(jnp.int32), logs), logs

    epochs = start + jnp.arange(length, dtype=jnp.int32)
    return jax.lax.scan(body, state, epochs)


def finalize(trainer: Trainer, state: MemberState, hparams: HParams, data: Data) -> dict:
    """Final metrics plus status; a member still running at the budget's end ran to the maximum."""
    running = state.status == RUNNING
    return {
        **trainer.finish(state.carry, hparams, data),
        "status": jnp.where(running, MAX_EPOCHS, state.status).astype(jnp.int32),
        "stop_epoch": jnp.where(running, trainer.max_epochs, state.stop_epoch).astype(jnp.int32),
    }


def make_train(trainer: Trainer) -> Callable[[jax.Array, HParams, Data], tuple[dict, dict]]:
    """``train(key, hparams, data) -> (curves, final)`` for one member, all epochs in one scan.

    The same function vmapped over keys and hyperparameters is a sweep; :mod:`jaxlabs.sweep` runs
    it in chunks instead, to report progress and to stop early once every member has stopped.
    """

    def train(key, hparams, data):
        state = init_member(trainer, key, hparams, data)
        state, curves = run_epochs(trainer, state, hparams, data, jnp.int32(0), trainer.max_epochs)
        return curves, finalize(trainer, state, hparams, data)

    return train
