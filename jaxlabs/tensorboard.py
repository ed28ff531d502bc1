"""TensorBoard logs of a run, written as it trains: one run per member, its curves as scalars and
its options and results in the HParams dashboard.

``OUT/tensorboard/<study>/<setting>/seed<k>/`` holds one member's event files:

- every per-epoch curve the task logs (``loss``, ``val_acc``, ...) as scalars, step = the 1-based
  epoch. A long run keeps about :data:`MAX_POINTS` points per curve: every ``stride``-th epoch, plus
  the first, each chunk's last (so a watched run is current), each chunk's best epoch where it
  beats the curve's best so far (so the best is kept) and the stop epoch; nothing after a member stopped;
- the HParams plugin's session start (the setting, every static option, every traced number and
  the seed as hparams) when the member starts, and when its group ends its final metrics as
  ``final/<name>`` scalars, ``final/converged`` and ``final/diverged`` (1 or 0; both 0: it ran to
  the epoch budget), ``final/stop_epoch`` and a session end (failure when it diverged). No experiment summary is
  written, so TensorBoard derives the table's columns from all sessions (every member's hparams,
  every scalar tag as a metric: the curves' latest values while the run goes, the finals after).

:class:`TensorBoardLog` is the engine's observer (``run_grid(..., observer=)``): ``chunk`` after
every chunk of epochs with the host values the progress bar shows (no extra device transfer), and
``group_done`` when a static group finishes. Event files (TFRecords of tensorboardX's ``Event``
protos, in this thread, no queue) are appended and flushed to the OS after every chunk: the one
exception to :mod:`jaxlabs.atomic`, as TensorBoard reads a growing file live; a run killed
mid-write leaves at most a truncated last record, which TensorBoard's reader skips.

Resume: a member opened at epoch ``T > 0`` writes a ``SessionLog.START`` at step ``T + 1`` (what
``tensorboardX.SummaryWriter(purge_step=)`` writes), and TensorBoard drops every event of that run
at or after that step written before it. TensorBoard treats the first START of a run as its
beginning, not a restart, so every file starts with one. A member started afresh (epoch 0) removes
the event files of an earlier run of it; a member resumed whose folder has none (the earlier run
had ``--no-tensorboard``) is written whole, in order, when its group finishes.
"""
from __future__ import annotations

import math
import os
import re
import struct
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from jaxlabs.train import CONVERGED, DIVERGED, RUNNING

MAX_POINTS = 900  # regular points per curve; the kept extras (chunk ends, bests, stop) stay near 1,000


def run_folder(root: Path, label: str, seed: int) -> Path:
    """``root/<setting>/seed<k>``: a setting's label with path separators replaced."""
    safe = re.sub(r"[/\\\x00]", "_", label).strip() or "default"
    return Path(root) / safe / f"seed{int(seed)}"


def _hparam(v):
    """A value the HParams plugin takes: bool, float or str (None: left out)."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, (int, float, np.integer, np.floating)):
        return float(v)
    return str(v)


class _Events:
    """One member's event file: TFRecords of ``Event`` protos (tensorboardX's protos and checksum),
    named as TensorBoard expects. ``flush`` hands the bytes to the OS (TensorBoard reads them at
    once; a killed process loses nothing flushed) without an fsync per chunk, which cost more than
    the rest of the writing together; ``close`` fsyncs. An OSError names the file."""

    def __init__(self, folder: Path, start_step: Optional[int]):
        import socket

        self.folder = folder
        # the suffix orders files of the same second (a quick resume) as TensorBoard reads them
        self.path = str(folder / f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}"
                                 f".{time.time_ns():020d}.{os.getpid()}")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._f = open(self.path, "ab")
        except OSError as e:
            raise OSError(e.errno, e.strerror, self.path) from e
        from tensorboardX.proto.event_pb2 import Event, SessionLog
        self._write(Event(wall_time=time.time(), file_version="brain.Event:2"))
        if start_step is not None:
            self._write(Event(wall_time=time.time(), step=start_step, session_log=SessionLog(status=SessionLog.START)))

    def _write(self, event) -> None:
        from tensorboardX.record_writer import masked_crc32c

        data = event.SerializeToString()
        header = struct.pack("<Q", len(data))
        try:
            self._f.write(header + struct.pack("<I", masked_crc32c(header)) + data
                          + struct.pack("<I", masked_crc32c(data)))
        except OSError as e:
            raise OSError(e.errno, e.strerror, self.path) from e

    def summary(self, step: int, values: dict[str, float], wall: float) -> None:
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.proto.summary_pb2 import Summary

        self._write(Event(wall_time=wall, step=step, summary=Summary(
            value=[Summary.Value(tag=k, simple_value=float(v)) for k, v in values.items()])))

    def raw(self, step: int, summary) -> None:
        from tensorboardX.proto.event_pb2 import Event
        self._write(Event(wall_time=time.time(), step=step, summary=summary))

    def flush(self) -> None:
        try:
            self._f.flush()
        except OSError as e:
            raise OSError(e.errno, e.strerror, self.path) from e

    def close(self) -> None:
        try:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()
        except OSError as e:
            raise OSError(e.errno, e.strerror, self.path) from e


def _session_start(hparams: dict):
    from tensorboardX.summary import hparams as hparams_summaries
    return hparams_summaries(hparams, {})[1]


def _session_end(status: int):
    from tensorboardX.proto.api_pb2 import Status
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData, SessionEndInfo
    from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata

    sei = SessionEndInfo(status=Status.Value("STATUS_FAILURE" if status == DIVERGED else "STATUS_SUCCESS"),
                         end_time_secs=time.time())
    content = HParamsPluginData(session_end_info=sei, version=0).SerializeToString()
    meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="hparams", content=content))
    return Summary(value=[Summary.Value(tag="_hparams_/session_end_info", metadata=meta)])


class _Member:
    def __init__(self, folder: Path):
        self.folder = folder
        self.events: Optional[_Events] = None
        self.last = 0  # the last step (1-based epoch) of its curves in its event files
        self.best: dict[str, float] = {}  # each curve's best value so far
        self.running_before = False  # seen running at the end of a chunk of this process
        self.stopped = False  # its last point is written; later chunks hold its values
        self.deferred = False  # resumed with no earlier logs: written whole at the group's end
        self.previous: Optional[dict] = None  # each curve's value at the end of the last chunk seen


class TensorBoardLog:
    """The engine's observer that writes ``root/<setting>/seed<k>/`` for every member (see the
    module docstring). ``higher_is_better(curve)``: the direction of each curve (the task's), to
    keep each curve's best epoch when a long run is thinned."""

    def __init__(self, root: Path, higher_is_better=lambda name: "acc" in name, max_points: int = MAX_POINTS):
        self.root = Path(root)
        self.higher = higher_is_better
        self.max_points = max_points
        self._groups: dict[int, dict[int, _Member]] = {}

    def _stride(self, members: Sequence) -> int:
        epochs = members[0].static.get("epochs") if members else None
        return max(1, math.ceil(int(epochs) / self.max_points)) if epochs else 1

    def _member(self, group: int, members: Sequence, i: int) -> _Member:
        runs = self._groups.setdefault(group, {})
        if i not in runs:
            runs[i] = _Member(run_folder(self.root, members[i].label, members[i].seed))
        return runs[i]

    def _open(self, m: _Member, member, first_epoch: int) -> None:
        earlier = sorted(m.folder.glob("events.out.tfevents.*")) if m.folder.is_dir() else []
        if first_epoch == 0:
            for f in earlier:  # an earlier run of this member: replaced, as results.json is
                f.unlink(missing_ok=True)
        elif not earlier:
            m.deferred = True
            return
        m.events = _Events(m.folder, start_step=first_epoch + 1)
        m.last = first_epoch
        hp = {"setting": member.label, **member.static, **member.hparams, "seed": member.seed}
        m.events.raw(0, _session_start({k: _hparam(v) for k, v in hp.items() if _hparam(v) is not None}))

    def _points(self, m: _Member, curves: dict[str, np.ndarray], first_epoch: int, upto: int,
                stride: int, keep_last: bool) -> list[int]:
        """Column indices to write of one member's ``curves`` (name -> values from epoch
        ``first_epoch``), columns ``0 .. upto`` at most: the regular ones, the first epoch, the last
        column when ``keep_last``, and each curve's best column where it beats its best so far."""
        if upto < 0:
            return []
        epoch = first_epoch + np.arange(upto + 1)
        keep = (epoch == 0) | ((epoch + 1) % stride == 0)
        keep[-1] |= keep_last
        for name, values in curves.items():  # the columns' best, where it beats the best so far
            sign = -1.0 if self.higher(name) else 1.0  # minimise sign * value
            v = sign * values[:upto + 1]
            v = np.where(np.isfinite(v), v, np.inf)
            j = int(np.argmin(v))
            if v[j] < (sign * m.best[name] if name in m.best else np.inf):
                keep[j] = True
                m.best[name] = float(values[j])
        return np.flatnonzero(keep & (epoch + 1 > m.last)).tolist()

    def _write(self, m: _Member, curves: dict[str, np.ndarray], first_epoch: int, cols: list[int]) -> None:
        wall = time.time()
        for j in cols:
            m.events.summary(first_epoch + j + 1, {k: v[j] for k, v in curves.items()}, wall)
        if cols:
            m.last = first_epoch + cols[-1] + 1

    def chunk(self, group: int, members: Sequence, rows: np.ndarray, first_epoch: int,
              logs: dict[str, np.ndarray], status: np.ndarray) -> None:
        """One chunk of a wave: ``logs[name]`` (len(rows), epochs in the chunk) from epoch
        ``first_epoch`` (0-based), ``status`` (len(rows),) at the chunk's end."""
        stride = self._stride(members)
        epochs = members[0].static.get("epochs") if members else None
        width = min(next(iter(logs.values())).shape[1], int(epochs) - first_epoch if epochs else 1 << 62)
        for r, i in enumerate(np.asarray(rows).tolist()):
            m = self._member(group, members, i)
            if m.events is None and not m.deferred:
                self._open(m, members[i], first_epoch)
            if m.deferred or m.stopped or width <= 0:
                continue
            curves = {k: np.asarray(v[r, :width], np.float64) for k, v in logs.items()}
            previous, m.previous = m.previous, {k: v[width - 1] for k, v in curves.items()}
            if int(status[r]) == RUNNING:
                upto, m.running_before = width - 1, True
            else:  # it stopped: nothing past the first of its held (repeated) values
                upto = _held_from(curves, width)
                if upto == 0 and not m.running_before:
                    upto = -1  # stopped before this process's first chunk (a resume): nothing new here
                if upto == 0 and previous is not None and all(_same(v[0], previous[k]) for k, v in curves.items()):
                    upto = -1  # stopped between chunks (a search's pruning): held from the chunk before
                m.stopped = True
            self._write(m, curves, first_epoch, self._points(m, curves, first_epoch, upto, stride, True))
            m.events.flush()

    def group_done(self, group: int, members: Sequence, result) -> None:
        """A static group's end: each member's points up to its exact stop epoch that a chunk left
        out, or its whole history where it was deferred; its final metrics; its session end."""
        stride = self._stride(members)
        final = result.final
        for i, member in enumerate(members):
            m = self._member(group, members, i)
            stop = int(final["stop_epoch"][i])
            curves = {k: np.asarray(v[i, :stop], np.float64) for k, v in result.curves.items()}
            if m.events is None:  # deferred, or not trained by this process (an earlier wave)
                history = m.deferred or not (m.folder.is_dir() and any(m.folder.glob("events.out.tfevents.*")))
                m.events = _Events(m.folder, start_step=1 if history else None)
                if history:
                    m.best, m.last = {}, 0
                    hp = {"setting": member.label, **member.static, **member.hparams, "seed": member.seed}
                    m.events.raw(0, _session_start({k: _hparam(v) for k, v in hp.items() if _hparam(v) is not None}))
                else:
                    m.last = stop
            if stop > m.last:
                self._write(m, curves, 0, self._points(m, curves, 0, stop - 1, stride, True))
            code = int(final["status"][i])  # 0/1 columns read plainly in the HParams table, a code would not
            values = {"final/converged": float(code == CONVERGED), "final/diverged": float(code == DIVERGED),
                      "final/stop_epoch": stop}
            values.update({f"final/{k}": v[i] for k, v in final.items()
                           if k not in ("status", "stop_epoch") and np.ndim(v[i]) == 0})
            m.events.summary(max(stop, 1), values, time.time())
            m.events.raw(max(stop, 1), _session_end(int(final["status"][i])))
            m.events.close()
        self._groups.pop(group, None)

    def close(self) -> None:
        """Close every event file still open (a run stopped by an error or Ctrl-C)."""
        for runs in self._groups.values():
            for m in runs.values():
                if m.events is not None:
                    try:
                        m.events.close()
                    except OSError:
                        pass  # the error that stopped the run is the one to report
        self._groups.clear()


def _held_from(curves: dict[str, np.ndarray], width: int) -> int:
    """The first column from which every curve repeats its last value (a stopped member's held
    logs start right after its stop epoch, which is the first column of the repeated run or later)."""
    j = width - 1
    while j > 0 and all(_same(v[j - 1], v[width - 1]) for v in curves.values()):
        j -= 1
    return j


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))
