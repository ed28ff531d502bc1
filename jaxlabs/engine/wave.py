"""One wave of a group: its members from init to finish, a chunk of epochs per device call.

The running wave is one value, :class:`WaveState`; each step of the run loop
(:mod:`jaxlabs.engine.run`) is a small operation on it: :func:`run_chunk` (the next chunk on the
devices), :func:`after_chunk` (a chunk's host values recorded), :func:`compaction_order` (which
members the next program holds, in which order), :func:`repacked` (that order taken),
:func:`stopped` and :func:`copied` (a search's pruning and PBT's copies), :func:`merged` (every
member's state in wave order, for the finish). The store saves WaveStates as they are.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import jax
import numpy as np

from jaxlabs.engine.memory import bucket
from jaxlabs.engine.options import EngineOptions
from jaxlabs.engine.placement import Placement, members_of, process0
from jaxlabs.train import RUNNING


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class WaveState:
    """Everything a wave is between two chunks (``n`` members with padding, ``real`` without)."""

    state: Any  # MemberState of the running program's members, in its order (on the devices)
    full: Any  # MemberState of all n members, once the program was repacked or reordered; else None
    order: np.ndarray  # (n,) wave indices: the running program's members first, in its order
    status: np.ndarray  # (n,) every member's status after the last chunk
    held: dict  # name -> (n,) every member's last logged value when the program was last repacked
    logs: dict  # name -> (real, epochs budget + a chunk) per-epoch logs; NaN past ``epoch``
    epoch: int  # epochs run: the next chunk starts here

    @property
    def active(self) -> np.ndarray:
        """Wave indices of the running program's members, in its order."""
        return self.order[:members_of(self.state)]

    @property
    def layout(self) -> dict:
        """What a restore needs to know to rebuild this state's structure (:func:`jaxlabs.engine.run.host_like`)."""
        return {"members": members_of(self.state), "compacted": self.full is not None}


def fresh(state, real: int, capacity: int, log_names) -> WaveState:
    """A wave of ``members_of(state)`` members (``real`` of them reported) before its first chunk."""
    n = members_of(state)
    return WaveState(state, None, np.arange(n), np.full(n, RUNNING), {},
                     {k: np.full((real, capacity), np.nan, np.float32) for k in log_names}, 0)


def after_chunk(ws: WaveState, state, logs: dict, status: np.ndarray, length: int) -> WaveState:
    """The wave after a chunk of ``length`` epochs: the program's new ``state``, its members' host
    ``logs`` (name -> (program members, length)) and ``status``. Members out of the program log
    their held values. The logs buffer is the wave's own and is filled in place."""
    active, real = ws.active, ws.logs[next(iter(ws.logs))].shape[0]
    every = np.array(ws.status)
    every[active] = status
    for k, v in logs.items():
        v = np.asarray(v)
        if ws.full is not None:  # back to the wave's order; the others hold their last value
            out = np.repeat(np.asarray(ws.held[k])[:, None], v.shape[1], axis=1).astype(v.dtype)
            out[active] = v
            v = out
        ws.logs[k][:, ws.epoch:ws.epoch + length] = v[:real]
    return dataclasses.replace(ws, state=state, status=every, epoch=ws.epoch + length)


def compaction_order(ws: WaveState, plan, devices: int, chunk_s: float, chunks_left: int,
                     options: EngineOptions) -> Optional[np.ndarray]:
    """Positions (in the running program) of the members the next program holds, in order; None:
    keep it. hybrid: stopped members move together into blocks it skips (the same program). vmap:
    the running ones are repacked into a smaller program once at most half still run, when the
    remaining chunks are worth a compile (process 0's estimate decides for every process). map
    skips stopped members on its own."""
    if not options.compaction:
        return None
    active = ws.active
    running = ws.status[active] == RUNNING
    if plan.kind == "hybrid":
        return hybrid_order(running, plan.batch, devices)
    if (plan.kind != "vmap" or running.sum() > len(active) // 2
            or process0([chunk_s * chunks_left])[0] <= options.compact_worth_s):
        return None
    return shrunk_order(ws, devices)


def shrunk_order(ws: WaveState, devices: int) -> Optional[np.ndarray]:
    """Positions (in the running program) of a smaller program's members: the running ones, padded
    with stopped ones (frozen) to a size :func:`bucket` allows, in wave order; None when no such
    size is smaller than the running program."""
    active = ws.active
    running = np.flatnonzero(ws.status[active] == RUNNING)
    size = bucket(len(running), devices)
    if size >= len(active):
        return None
    keep = active[running]
    # stopped members of the running program, frozen (an earlier repack left the others out of it)
    fillers = np.setdiff1d(active, keep)[:size - len(keep)]
    at = {int(a): i for i, a in enumerate(active)}
    return np.asarray([at[int(a)] for a in np.sort(np.concatenate([keep, fillers]))], int)


def stopped(ws: WaveState, members: np.ndarray, status: int, placement: Placement) -> WaveState:
    """The wave with ``members`` (wave indices of running members, all in the running program)
    stopped now with ``status`` (a search's pruning): frozen from this epoch on, as a member the
    task stopped is, their stop epoch the epochs run so far."""
    members = np.asarray(members, int)
    if not len(members):
        return ws
    at = {int(a): i for i, a in enumerate(ws.active)}
    if any(int(m) not in at or ws.status[m] != RUNNING for m in members):
        raise ValueError("only running members of the running program can be stopped")
    mask = np.zeros(len(at), bool)
    mask[[at[int(m)] for m in members]] = True
    state = ws.state
    status_now = placement.set_where(state.status, mask, status)
    stop_now = placement.set_where(state.stop_epoch, mask, ws.epoch)
    every = np.array(ws.status)
    every[members] = status
    return dataclasses.replace(ws, state=state._replace(status=status_now, stop_epoch=stop_now), status=every)


def copied(ws: WaveState, children: np.ndarray, parents: np.ndarray, placement: Placement) -> WaveState:
    """The wave with each of ``children`` (wave indices) given the whole state of its parent in
    ``parents`` (parameters, optimizer state, best checkpoint, status, logs held) except its own
    key (population-based training's exploit). Every member must be in the running program (a
    population that is never repacked)."""
    children, parents = np.asarray(children, int), np.asarray(parents, int)
    if not len(children):
        return ws
    if ws.full is not None:
        raise ValueError("members are copied within a program that holds every member")
    at = {int(a): i for i, a in enumerate(ws.active)}
    kid, parent = (np.asarray([at[int(m)] for m in x], int) for x in (children, parents))
    state = ws.state
    new = placement.copy(state._replace(key=None), kid, parent)._replace(key=state.key)
    every = np.array(ws.status)
    every[children] = ws.status[parents]
    return dataclasses.replace(ws, state=new, status=every)


def repacked(ws: WaveState, order: np.ndarray, placement: Placement) -> WaveState:
    """The wave with the program's members ``order`` (positions in the running program) as its
    next program; every member's state and last logs are kept aside for the ones left out."""
    full = merged(ws, placement)
    active = ws.active[order]
    rest = np.setdiff1d(ws.order, active)
    return dataclasses.replace(ws, state=placement.take(full, active), full=full,
                               order=np.concatenate([active, rest]),
                               held={k: np.asarray(v) for k, v in placement.fetch(full.last_logs).items()})


def merged(ws: WaveState, placement: Placement):
    """Every member's state, in wave order."""
    return ws.state if ws.full is None else placement.put_back(ws.full, ws.active, ws.state)


def hybrid_order(running: np.ndarray, k: int, devices: int) -> Optional[np.ndarray]:
    """A reordering of a hybrid:``k`` program's members (``running``: a mask in its order) that
    leaves more blocks of ``k`` with no running member (blocks hybrid skips), or None. Each device
    holds a contiguous share; the running members are dealt evenly over the devices, first in each."""
    n = len(running)
    m = n // devices  # members per device

    def idle_blocks(mask: np.ndarray) -> int:
        size = min(k, m)
        return sum(not mask[d * m + b:d * m + min(b + size, m)].any()
                   for d in range(devices) for b in range(0, m, size))

    go, stopped = np.flatnonzero(running), np.flatnonzero(~running)
    order, used = [], 0
    for d in range(devices):
        mine = list(go[d::devices])
        order += mine + list(stopped[used:used + m - len(mine)])
        used += m - len(mine)
    order = np.asarray(order, int)
    return order if idle_blocks(running[order]) > idle_blocks(running) else None


def run_chunk(programs, ws: WaveState, hp, length: int, sliced: Callable[[float, float], None]):
    """The running program's next ``length`` epochs: (state, logs) on the devices. An epoch that
    runs in pieces (:meth:`Programs.piece_steps`) calls ``sliced(share of an epoch, seconds)``
    after each piece, so a bar can move within it."""
    steps = programs.piece_steps(members_of(ws.state))
    if steps is None:
        return programs.chunk(ws.state, hp, ws.epoch, length)
    last = [time.perf_counter()]

    def piece(share):
        now = time.perf_counter()
        sliced(share, now - last[0])
        last[0] = now

    return programs.sliced_chunk(ws.state, hp, ws.epoch, length, steps, piece)
