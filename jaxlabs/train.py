"""The training loop as pure functions: ``make_train(trainer) -> train(key, hparams, data)``.

A task supplies a :class:`Trainer`: pure functions of a member's carry (params, optimizer state,
...), its hyperparameters (a dict of traced scalars: learning rate, tolerance, momentum, ...) and
the data (device arrays shared by every member). The engine owns what every lab needs, as
per-member masks so no member ever waits on Python:

- keys: a member's key (from its seed) initialises it; epoch ``e`` gets
  ``fold_in(fold_in(key, EPOCH_STREAM), e)`` for its data order, dropout and augmentation, so
  nothing random is carried, and epoch ``e`` draws the same numbers however the epochs are chunked;
- the optimizer: ``trainer.optimizer(hparams)`` is built once per member and handed to ``init``
  and ``epoch``;
- a status: running, converged (the task's stopping rule fired), diverged (the monitored value went
  NaN or inf), max_epochs (still running when the budget ran out), or pruned (a search stopped it
  between two chunks: :mod:`jaxlabs.search`);
- freezing: from the epoch a member stops, its carry no longer changes and its logged values are
  held, so a stopped member's curve is flat at the value it stopped with;
- the best checkpoint: when the trainer declares a :class:`Checkpoint`, the parts of the carry it
  names are kept from the epoch with the best value of its metric, and ``finish`` sees them;
- epochs under ``lax.scan``, so one call runs a whole chunk of epochs on the device;
- one random-number policy: every program is traced with jax's partitionable threefry (jax's
  default), pinned here so results do not depend on a user's global configuration.

One member trained alone (:func:`make_train`) and a sweep run the same ``run_epochs``. The engine
(:mod:`jaxlabs.engine`) runs it over many members under a plan, in chunks of epochs: between two
chunks it ticks the progress bar, checkpoints, stops once no member runs, and repacks or reorders
the members that still run.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

Carry = Any
HParams = dict[str, jax.Array]
Data = Any

RUNNING, CONVERGED, MAX_EPOCHS, DIVERGED, PRUNED = 0, 1, 2, 3, 4
STATUS_NAMES = {RUNNING: "running", CONVERGED: "converged", MAX_EPOCHS: "max_epochs", DIVERGED: "diverged",
                PRUNED: "pruned"}  # pruned: a search stopped it at a rung (jaxlabs.search)

# Epoch keys come from this child of the member key; the member key itself initialises the model,
# as it always has (Lab A's numbers stay those of earlier releases).
EPOCH_STREAM = 1
PARTITIONABLE_THREEFRY = True  # jax's default since 0.5; needed to shard members over devices


class Checkpoint(NamedTuple):
    """Keep ``keys`` of the carry (a dict) from the epoch with the best ``metric`` (a log that
    describes the carry *after* the epoch's update): the largest when ``higher``, else the
    smallest; the first such epoch on ties. NaN is never best."""

    metric: str
    higher: bool
    keys: tuple[str, ...] = ("params",)


class Slices(NamedTuple):
    """An epoch in pieces the engine calls one after another, so a long epoch shows progress
    between them (no host callback inside a program). ``steps``: the epoch's steps that can be
    split; ``begin(carry, hparams, data, epoch, key, tx) -> partial`` (the epoch in progress: the
    carry being updated and the per-step logs so far); ``run(partial, hparams, data, epoch, key,
    tx, first, count) -> partial``: steps ``first .. first + count - 1`` (``first`` traced,
    ``count`` static); ``end(carry, partial, hparams, data, epoch, key, tx) -> (new_carry, logs,
    stop)``: the rest of the epoch, as ``Trainer.epoch`` returns it. ``end(begin, then run over
    every step)`` computes what ``Trainer.epoch`` does, to the bit."""

    steps: int
    begin: Callable[..., Any]
    run: Callable[..., Any]
    end: Callable[..., tuple[Carry, dict, jax.Array]]


class Trainer(NamedTuple):
    """What a task gives the engine for one static configuration.

    init(key, hparams, data, tx) -> carry: a dict; ``tx`` is the member's optimizer (None when the
        trainer declares none).
    epoch(carry, hparams, data, epoch, key, tx) -> (new_carry, logs, stop): ``epoch`` is 0-based and
        ``key`` is that epoch's key. ``logs`` is a dict of scalars of this epoch; which carry each
        describes is the task's to document, under two rules the engine relies on: ``stop`` (a
        bool: the task's stopping rule) is judged on the carry *before* the update, so when it
        fires the update is discarded and the member stops at this epoch; the checkpoint metric
        describes the carry *after* the update. ``logs[monitor]`` must be finite for the update
        to be kept: NaN or inf marks the member diverged and the carry from before the epoch stays.
    finish(carry, hparams, data) -> dict of final metrics (arrays of fixed shape). With a
        checkpoint, the carry's checkpointed keys hold their values from the best epoch.
    optimizer(hparams) -> optax.GradientTransformation, or None for a task that updates by hand.
    probe() -> (trainer, data): a cheaper version of the same program (fewer steps per epoch, the
        same step) for timing plans (:class:`jaxlabs.engine.auto.Auto`); None: the engine probes a
        few epochs of this one.
    data_name: what the data is, as records, reports and figures name it ("" when the task has one
        fixed data source): e.g. "cifar10-jpeg (JPEG copy of CIFAR-10)", "synthetic (2048 random images)".
    items_per_epoch: the examples one epoch trains on (0: not counted), for the progress bar's rate.
    slices: the epoch in pieces (:class:`Slices`), or None: the engine then calls whole epochs only.
    """

    init: Callable[..., Carry]
    epoch: Callable[..., tuple[Carry, dict, jax.Array]]
    finish: Callable[[Carry, HParams, Data], dict]
    max_epochs: int
    monitor: str = "loss"
    optimizer: Optional[Callable[[HParams], optax.GradientTransformation]] = None
    checkpoint: Optional[Checkpoint] = None
    probe: Optional[Callable[[], tuple["Trainer", Data]]] = None
    data_name: str = ""
    items_per_epoch: int = 0
    slices: Optional[Slices] = None


class MemberState(NamedTuple):
    carry: Carry
    key: jax.Array  # the member's key; epoch keys are folded from it
    status: jax.Array  # int32: RUNNING / CONVERGED / DIVERGED (MAX_EPOCHS is set at the end)
    stop_epoch: jax.Array  # int32: 1-based epoch at which the member stopped; 0 while running
    last_logs: dict  # logs of the last active epoch, held once the member stops
    best: dict  # the checkpointed part of the carry ({} without a checkpoint)
    best_score: jax.Array  # float32: the checkpoint metric's best value so far
    best_epoch: jax.Array  # int32: 1-based epoch of the best value; 0 before any


def with_rng_policy(fn):
    """Trace ``fn`` under the engine's one random-number policy."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with jax.threefry_partitionable(PARTITIONABLE_THREEFRY):
            return fn(*args, **kwargs)

    return wrapped


def epoch_key(member_key: jax.Array, epoch: jax.Array) -> jax.Array:
    return jax.random.fold_in(jax.random.fold_in(member_key, EPOCH_STREAM), epoch)


def _where(cond, a, b):
    return jax.tree.map(lambda x, y: jnp.where(cond, x, y), a, b)


def _optimizer(trainer: Trainer, hparams: HParams):
    return None if trainer.optimizer is None else trainer.optimizer(hparams)


def _kept(trainer: Trainer, carry: Carry) -> dict:
    return {} if trainer.checkpoint is None else {k: carry[k] for k in trainer.checkpoint.keys}


@with_rng_policy
def init_member(trainer: Trainer, key: jax.Array, hparams: HParams, data: Data) -> MemberState:
    tx = _optimizer(trainer, hparams)
    carry = trainer.init(key, hparams, data, tx)
    log_shapes = jax.eval_shape(lambda: trainer.epoch(carry, hparams, data, jnp.int32(0), key, tx))[1]
    last_logs = jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype), log_shapes)
    worst = -jnp.inf if trainer.checkpoint is None or trainer.checkpoint.higher else jnp.inf
    return MemberState(carry, key, jnp.int32(RUNNING), jnp.int32(0), last_logs, _kept(trainer, carry),
                       jnp.float32(worst), jnp.int32(0))


@with_rng_policy
def run_epochs(trainer: Trainer, state: MemberState, hparams: HParams, data: Data,
               start: jax.Array, length: int, skip_stopped: bool = False) -> tuple[MemberState, dict]:
    """Epochs ``start .. start + length - 1`` (0-based) of one member; epochs past
    ``trainer.max_epochs`` are no-ops. Returns the new state and the logs, each (length, ...).
    ``skip_stopped``: a member stopped before the chunk skips it (a branch: worth it where members
    run one at a time, under the map plan)."""
    tx = _optimizer(trainer, hparams)

    def body(ms: MemberState, epoch):
        new_carry, logs, stop = trainer.epoch(ms.carry, hparams, data, epoch, epoch_key(ms.key, epoch), tx)
        return _after_epoch(trainer, ms, epoch, new_carry, logs, stop)

    epochs = start + jnp.arange(length, dtype=jnp.int32)
    if not skip_stopped:
        return jax.lax.scan(body, state, epochs)
    # one member at a time, a stopped one then costs nothing. Vmapped, the branches would become a
    # select that computes the chunk anyway (and changes how XLA fuses it: other roundings), so the
    # batched plans do without (hybrid skips blocks of stopped members, vmap repacks: jaxlabs.engine.wave).
    # A per-epoch branch would skip the rest of the chunk where a member stops, but costs every
    # running epoch more than it saves (Lab A: 66 s against 60 s).
    return jax.lax.cond(state.status == RUNNING, lambda ms: jax.lax.scan(body, ms, epochs),
                        lambda ms: hold_epochs(ms, length), state)


def _after_epoch(trainer: Trainer, ms: MemberState, epoch, new_carry, logs: dict, stop) -> tuple[MemberState, dict]:
    """The member after epoch ``epoch`` computed ``new_carry``, ``logs`` and ``stop``: its status,
    freezing, best checkpoint and held logs, as masks (a member that had stopped changes nothing)."""
    ckpt = trainer.checkpoint
    active = (ms.status == RUNNING) & (epoch < trainer.max_epochs)
    diverged = ~jnp.all(jnp.isfinite(logs[trainer.monitor]))
    stop = jnp.asarray(stop, bool) & ~diverged
    status = jnp.where(active & diverged, DIVERGED, jnp.where(active & stop, CONVERGED, ms.status))
    stop_epoch = jnp.where(active & (stop | diverged), epoch + 1, ms.stop_epoch)
    accept = active & ~stop & ~diverged
    carry = _where(accept, new_carry, ms.carry)
    best, best_score, best_epoch = ms.best, ms.best_score, ms.best_epoch
    if ckpt is not None:
        score = logs[ckpt.metric].astype(jnp.float32)
        better = accept & ((score > best_score) if ckpt.higher else (score < best_score))
        best = _where(better, _kept(trainer, new_carry), best)
        best_score = jnp.where(better, score, best_score)
        best_epoch = jnp.where(better, epoch + 1, best_epoch).astype(jnp.int32)
    logs = _where(active, logs, ms.last_logs)
    return MemberState(carry, ms.key, status.astype(jnp.int32), stop_epoch.astype(jnp.int32), logs,
                       best, best_score, best_epoch), logs


@with_rng_policy
def begin_epoch(trainer: Trainer, state: MemberState, hparams: HParams, data: Data, epoch: jax.Array):
    """The first piece of a sliced epoch (:class:`Slices`): the epoch in progress."""
    tx = _optimizer(trainer, hparams)
    return trainer.slices.begin(state.carry, hparams, data, epoch, epoch_key(state.key, epoch), tx)


@with_rng_policy
def run_slice(trainer: Trainer, partial, state: MemberState, hparams: HParams, data: Data, epoch: jax.Array,
              first: jax.Array, count: int, skip_stopped: bool = False):
    """Steps ``first .. first + count - 1`` of a sliced epoch. ``skip_stopped``: a member stopped
    before the epoch skips them (under map, as :func:`run_epochs`)."""
    tx = _optimizer(trainer, hparams)
    run = lambda p: trainer.slices.run(p, hparams, data, epoch, epoch_key(state.key, epoch), tx, first, count)  # noqa: E731
    return jax.lax.cond(state.status == RUNNING, run, lambda p: p, partial) if skip_stopped else run(partial)


@with_rng_policy
def end_epoch(trainer: Trainer, state: MemberState, partial, hparams: HParams, data: Data,
              epoch: jax.Array) -> tuple[MemberState, dict]:
    """The last piece of a sliced epoch: the member after it and its logs, (1, ...) as a chunk of
    one epoch gives them."""
    tx = _optimizer(trainer, hparams)
    new_carry, logs, stop = trainer.slices.end(state.carry, partial, hparams, data, epoch,
                                               epoch_key(state.key, epoch), tx)
    state, logs = _after_epoch(trainer, state, epoch, new_carry, logs, stop)
    return state, jax.tree.map(lambda x: x[None], logs)


def hold_epochs(state: MemberState, length: int) -> tuple[MemberState, dict]:
    """:func:`run_epochs` of a member that has stopped: its state, and its last logs repeated."""
    return state, jax.tree.map(lambda x: jnp.broadcast_to(x, (length, *x.shape)), state.last_logs)


@with_rng_policy
def finalize(trainer: Trainer, state: MemberState, hparams: HParams, data: Data) -> dict:
    """Final metrics plus status; a member still running at the budget's end ran to the maximum.

    With a checkpoint, ``finish`` evaluates the best epoch's kept carry, and the final metrics
    gain ``best_epoch`` and the checkpoint metric's best value (unless ``finish`` gives its own).
    A member no epoch of which qualified (every value NaN) has no checkpoint: its float metrics
    are NaN rather than those of its initialisation."""
    running = state.status == RUNNING
    carry, extra = state.carry, {}
    if trainer.checkpoint is not None:
        carry = {**carry, **state.best}
        extra = {"best_epoch": state.best_epoch, trainer.checkpoint.metric: state.best_score}
    final = {**extra, **trainer.finish(carry, hparams, data)}
    if trainer.checkpoint is not None:
        none = state.best_epoch == 0
        final = {k: jnp.where(none, jnp.nan, v) if jnp.issubdtype(jnp.result_type(v), jnp.floating) else v
                 for k, v in final.items()}
    return {**final,
            "status": jnp.where(running, MAX_EPOCHS, state.status).astype(jnp.int32),
            "stop_epoch": jnp.where(running, trainer.max_epochs, state.stop_epoch).astype(jnp.int32)}


def make_train(trainer: Trainer) -> Callable[[jax.Array, HParams, Data], tuple[dict, dict]]:
    """``train(key, hparams, data) -> (curves, final)`` for one member, all epochs in one scan.

    The same function vmapped over keys and hyperparameters is a sweep; :mod:`jaxlabs.engine` runs
    it in chunks instead, to report progress and to stop early once every member has stopped.
    """

    def train(key, hparams, data):
        state = init_member(trainer, key, hparams, data)
        state, curves = run_epochs(trainer, state, hparams, data, jnp.int32(0), trainer.max_epochs)
        return curves, finalize(trainer, state, hparams, data)

    return train
