"""One store for every run: a :class:`~jaxlabs.engine.run.RunState` saved between chunks and given back,
so a killed sweep or search, on one process or several, resumes where it stopped with identical results.

``OUT/.checkpoint/`` holds:

- ``config.json``: the run's configuration (members, engine options, code version); a run with
  another configuration refuses to resume from it (:class:`CheckpointMismatch`);
- ``run/<step>/``: orbax steps, the two latest kept, each with the run's arrays (every running
  unit's wave as its device arrays, typed keys as their key data; finished units' curves and final
  metrics; the units' numbers) and the position as JSON (the units' layouts, each group's log, the
  policy's record). Orbax writes a step aside and renames it, so a kill leaves the previous step
  whole; a step that does not read back whole is passed over for the one before it, with a note
  (:class:`CheckpointDamaged` when none reads). On several processes the folder is one shared
  folder: every process writes its own members' shards of each step and process 0 the rest, at
  the same chunks (process 0's clock decides), and process 0 judges the folder on resume;
- ``finished``: the run's results are published; the command removes the folder when all its
  runs are done.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxlabs import interrupt
from jaxlabs.checkpoint import CheckpointDamaged, CheckpointMismatch, _difference, _jsonable, _write_json, remove
from jaxlabs.engine.placement import process0
from jaxlabs.engine.run import Run, host_like
from jaxlabs.engine.state import GroupLog, RunState, Unit, on_host, to_devices, to_host
from jaxlabs.interrupt import Interrupted

KEEP = 2  # steps kept: a step cut short by a kill leaves the one before it


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    text = text.split(" [tensorstore_spec=")[0]
    return text if len(text) <= 160 else text[:157] + "..."


@contextlib.contextmanager
def _quiet_orbax():
    """orbax logs each failed read of a damaged checkpoint from its background tasks; the caller
    says it in one line instead."""
    loggers = [logging.getLogger(n) for n in ("asyncio", "absl")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


class RunStore:
    """One run's checkpoint folder. ``config``: what must match to resume; ``every``: seconds between
    checkpoints; ``label``: the run, for messages; ``record``: the policy's record type (its
    ``from_json``), None for a sweep.

    On several processes the folder must be the same one for all (a shared ``--out``): process 0
    reads and judges it and tells the others (:meth:`open`), and every process writes its own
    members' shards into each step (:meth:`save`). Where the processes' folders differ, the store
    is off (``enabled``), and process 0 says so."""

    def __init__(self, folder: Path, config: dict, every: float, label: str, record: Any = None):
        self.folder, self.config, self.every, self.label = Path(folder), _jsonable(config), every, label
        self.record_type = record
        self._last = time.monotonic()
        self._manager = None
        self._step = 0
        self.finished = False
        self.enabled = True
        self.saved: Optional[dict] = None  # the position to resume from
        self.resume_step: Optional[int] = None

    @property
    def steps_folder(self) -> Path:
        return self.folder / "run"

    # ------------------------------------------------------------------ opening
    def open(self) -> Optional[str]:
        """Read an earlier run's checkpoint: None when there is none, else the line that says where
        this run resumes. CheckpointMismatch for another run's, CheckpointDamaged when none reads."""
        try:
            if jax.process_count() == 1:
                return self._open()
            return self._open_together()
        except BaseException:
            self.close(quiet=True)  # nothing of orbax's may outlive the one-line error
            raise

    def _open_together(self) -> Optional[str]:
        """Several processes: one shared folder, judged by process 0 alone from its files, then
        read by every process together (orbax's reads and writes are collective)."""
        from jax.experimental import multihost_utils

        mine = np.frombuffer(hashlib.sha256(str(self.folder.absolute()).encode()).digest()[:8], np.int64)
        every = np.asarray(multihost_utils.process_allgather(mine))
        if len(set(every.reshape(-1).tolist())) > 1:
            self.enabled = False
            return (f"{self.label}: no checkpoints: the {jax.process_count()} processes write to different --out "
                    "folders; give every process the same shared --out to make the run resumable")
        verdict, error, note = np.int64([-1, 0, 0]), None, None  # (step to resume, finished, next step)
        if jax.process_index() == 0:
            try:
                step, note = self._judge()
                verdict = np.int64([-1 if step is None else step, int(self.finished), self._step])
            except Exception as e:  # noqa: BLE001 - the others are told, then it is raised as it was
                error, verdict = e, np.int64([-2, 0, 0])
        verdict = np.asarray(multihost_utils.broadcast_one_to_all(verdict))
        if error is not None:
            raise error
        if verdict[0] == -2:
            raise CheckpointDamaged(f"process 0 could not resume from {self.folder}: see its message")
        self.finished, self._step = bool(verdict[1]), int(verdict[2])
        if verdict[0] >= 0:
            self._resume_from(int(verdict[0]))
            note = (note or "") + self._resumes(self.saved)
        return note

    def _open(self) -> Optional[str]:
        step, note = self._judge()
        if step is None:
            return note
        self._resume_from(step)
        return note + self._resumes(self.saved)

    def _resume_from(self, step: int) -> None:
        self._steps_manager(create=False)
        self.saved, self.resume_step = self._restore(step, arrays=False)["position"], step

    def _judge(self) -> tuple[Optional[int], Optional[str]]:
        """The step to resume from (None: none) and the note to print, from the folder's files;
        CheckpointMismatch for another run's checkpoint."""
        for trash in [*self.folder.parent.glob(f"{self.folder.name}.deleting-*"), *self.folder.glob("*.deleting-*")]:
            shutil.rmtree(trash, ignore_errors=True)
        try:
            saved = json.loads((self.folder / "config.json").read_text())
        except (OSError, ValueError):
            remove(self.folder)  # nothing usable was written (or nothing at all)
            return None, None
        diff = _difference(saved, self.config)
        if diff:
            raise CheckpointMismatch(
                f"{self.folder.parent} holds the checkpoint of another run of {self.label} ({diff}); add --fresh "
                "to discard it and start over, or choose another --out")
        self.finished = (self.folder / "finished").is_file() and (self.folder.parent / "results.json").is_file()
        if (self.folder / "finished").is_file() and not self.finished:  # its results are gone: start over
            remove(self.folder)
            return None, None
        if self.finished:
            return None, f"resuming {self.label}: finished earlier, results in {self.folder.parent}"
        steps = sorted(int(p.name) for p in self.steps_folder.glob("*") if p.name.isdigit()) \
            if self.steps_folder.is_dir() else []
        if steps:
            self._step = steps[-1] + 1
        if jax.process_count() == 1:
            self._steps_manager(create=False)
            steps = sorted(self._manager.all_steps()) if self._manager is not None else []
        step, note = self._readable(steps)
        return step, note

    def _resumes(self, position: dict) -> str:
        where = position["where"]
        if where.get("search"):
            return f"resuming {self.label} from epoch {where['start']}"
        if where.get("settings") is None:
            done = where["done_groups"]
            return f"resuming {self.label} after {done} finished group{'s' * (done != 1)}"
        waves = f", wave {where['wave'] + 1}/{where['waves']}" if where["waves"] > 1 else ""
        return f"resuming {self.label} [{where['settings']}] from epoch {where['start']}" + waves

    def _readable(self, steps: list[int]) -> tuple[Optional[int], str]:
        """The newest step that reads back whole (every array), and a note when a newer one is
        damaged (a disk error, a copy cut short); CheckpointDamaged when none reads. On several
        processes the arrays are read by the restore itself (a raw read needs every process)."""
        if not steps:
            return None, ""
        if jax.process_count() > 1:  # orbax commits a step with a rename: a numbered folder is whole
            return steps[-1], ""
        reason = ""
        for step in reversed(steps):
            try:
                with _quiet_orbax():
                    self._manager.restore(step)  # every item, as saved: only to read each byte once
            except Exception as e:  # noqa: BLE001 - orbax and tensorstore raise many kinds for one cause
                reason = reason or _first_line(e)
                continue
            if step == steps[-1]:
                return step, ""
            return step, (f"the newest checkpoint in {self.folder} is damaged ({reason}); going back to the "
                          "previous one\n")
        raise CheckpointDamaged(
            f"the checkpoint in {self.folder} is damaged and cannot be read ({reason}); add --fresh to discard it "
            "and start over")

    def _steps_manager(self, create: bool):
        """orbax's manager of the steps (on several processes created by every process together)."""
        if self._manager is None and (create or self.steps_folder.is_dir() or jax.process_count() > 1):
            import orbax.checkpoint as ocp

            if jax.process_index() == 0:
                self.steps_folder.mkdir(parents=True, exist_ok=True)
            options = ocp.CheckpointManagerOptions(max_to_keep=KEEP, create=True)  # written in the background
            self._manager = ocp.CheckpointManager(self.steps_folder.absolute(), options=options)
        return self._manager

    def _restore(self, step: int, *, arrays: Any = False) -> dict:
        import orbax.checkpoint as ocp

        items = {"position": ocp.args.JsonRestore()}
        if arrays is not False:
            items["arrays"] = ocp.args.StandardRestore(arrays)
        with _quiet_orbax():
            return self._manager.restore(step, args=ocp.args.Composite(**items))

    # ------------------------------------------------------------------ restoring
    def restore(self, run: Run) -> RunState:
        """The saved run: running waves on the devices (each process its members' shards), parked
        ones back on the host, finished units' curves and final metrics."""
        position = self.saved
        record = None if self.record_type is None or position["record"] is None else \
            self.record_type.from_json(position["record"])
        logs = tuple(None if d is None else GroupLog.from_json(d) for d in position["logs"])
        target = {}
        for name, (shape, dtype, kind) in position["arrays"].items():
            u = int(name.split("/", 1)[0])
            if kind == "device":
                sharding = run.group(position["units"][u]["group"]).placement.sharding(True)
                target[name] = jax.ShapeDtypeStruct(tuple(shape), np.dtype(dtype), sharding=sharding)
            else:
                target[name] = np.zeros(tuple(shape), np.dtype(dtype))
        arrays = self._restore(self.resume_step, arrays=target)["arrays"] if target else {}
        units = []
        for u, d in enumerate(position["units"]):
            unit = Unit(None, {}, group=d["group"], members=tuple(d["members"]), slots=tuple(d["slots"]))
            mine = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.split("/", 1)[0] == str(u)}
            part = lambda name: {k.split("/", 1)[1]: v for k, v in mine.items() if k.split("/", 1)[0] == name}  # noqa: E731
            if d["kind"] == "running":
                ws = unflat(host_like(run, unit, logs[d["group"]], d["layout"]), part("ws"))
                ws = dataclasses.replace(ws, state=typed_keys(ws.state), full=None if ws.full is None else
                                         typed_keys(ws.full), epoch=int(d["epoch"]), order=np.asarray(ws.order),
                                         status=np.asarray(ws.status))
                unit = dataclasses.replace(unit, ws=to_host(ws) if d["parked"] else ws,
                                           hp={k: np.asarray(v, np.float32) for k, v in part("hp").items()})
            elif d["kind"] == "done":
                unit = dataclasses.replace(unit, curves={k: np.asarray(v) for k, v in part("curves").items()},
                                           final={k: np.asarray(v) for k, v in part("final").items()})
            units.append(unit)
        return RunState(tuple(units), position["stop"], logs, record)

    # ------------------------------------------------------------------ saving
    def due(self) -> bool:
        """A checkpoint is due: ``every`` seconds since the last one (or the start), or Ctrl-C;
        process 0's clock decides for every process."""
        due = interrupt.requested() or time.monotonic() - self._last >= self.every
        return bool(process0([float(due)])[0] > 0.5)

    def save(self, state: RunState, run: Run, force: bool = False) -> None:
        """Checkpoint ``state`` if one is due (or ``force``); after Ctrl-C, raise :class:`Interrupted`
        once it is on disk. Every process calls it at the same chunks: each writes its members'
        shards, process 0 the host values and the position."""
        if not self.enabled or not (self.due() or force):
            return
        import orbax.checkpoint as ocp

        self._ensure_config()
        arrays, units = {}, []
        for u, unit in enumerate(state.units):
            d = {"group": unit.group, "members": list(unit.members), "slots": list(unit.slots), "kind": "pending"}
            if unit.done:
                d["kind"] = "done"
                arrays.update(flat({"curves": unit.curves, "final": unit.final}, f"{u}/"))
            elif unit.ws is not None:
                parked = on_host(unit.ws.state)
                ws = to_devices(unit.ws, run.group(unit.group).placement) if parked else unit.ws
                ws = dataclasses.replace(ws, state=key_data(ws.state), full=None if ws.full is None else
                                         key_data(ws.full))
                d.update(kind="running", epoch=int(unit.ws.epoch), layout=unit.ws.layout, parked=parked)
                arrays.update(flat({"ws": ws, "hp": unit.hp}, f"{u}/"))
            units.append(d)
        position = {"stop": state.stop, "units": units,
                    "arrays": {k: [list(v.shape), str(v.dtype), "device" if isinstance(v, jax.Array) else "host"]
                               for k, v in arrays.items()},
                    "logs": [None if log is None else log.to_json() for log in state.logs],
                    "record": None if state.record is None else state.record.to_json(), "where": where(state, run)}
        items = {"position": ocp.args.JsonSave(_jsonable(position))}
        if arrays:  # copies: the engine donates the state to its next chunk while orbax writes
            items["arrays"] = ocp.args.StandardSave({k: jnp.copy(v) if isinstance(v, jax.Array) else np.array(v)
                                                     for k, v in arrays.items()})
        manager = self._steps_manager(create=True)
        with _quiet_orbax():
            manager.save(self._step, args=ocp.args.Composite(**items), force=True)
        self._step += 1
        self._last = time.monotonic()
        if interrupt.requested():
            manager.wait_until_finished()
            raise Interrupted(f"stopped {self.label} at epoch {position['where'].get('start', 0)}; the checkpoint "
                              f"in {self.folder.parent} resumes it: run the same command again")

    def _ensure_config(self) -> None:
        if jax.process_index() == 0 and not (self.folder / "config.json").is_file():
            self.folder.mkdir(parents=True, exist_ok=True)
            _write_json(self.folder / "config.json", self.config)

    # ------------------------------------------------------------------ the end
    def finish(self) -> None:
        """The run's results are published (process 0): mark it finished, drop what it no longer needs."""
        self.close()
        if jax.process_index() == 0 and self.enabled:
            remove(self.steps_folder)
            self._ensure_config()
            _write_json(self.folder / "finished", {"run": self.label})

    def close(self, quiet: bool = False) -> None:
        """Let a checkpoint being written finish (a run that stops for an error keeps it);
        ``quiet``: whatever orbax raises or logs doing so (the caller reports an error of its own)."""
        if self._manager is not None:
            manager, self._manager = self._manager, None
            with _quiet_orbax(), contextlib.suppress(Exception) if quiet else contextlib.nullcontext():
                manager.wait_until_finished()
                manager.close()


def key_data(member_state):
    """A member state with its typed key as key data (what orbax and the host keep)."""
    return member_state._replace(key=jax.random.key_data(member_state.key))


def typed_keys(member_state):
    return member_state._replace(key=jax.random.wrap_key_data(member_state.key))


def where(state: RunState, run: Run) -> dict:
    """Where the run is, for the line that says where it resumes."""
    if run.policy.holds:
        epochs = [u.ws.epoch for u in state.units if u.ws is not None]
        return {"search": True, "start": int(min(epochs)) if epochs else 0}
    done = sum(1 for g, log in enumerate(state.logs) if log is not None and
               all(u.done for u in state.units if u.group == g))
    for u, unit in enumerate(state.units):
        if unit.ws is not None:
            spec = run.specs[unit.group]
            return {"settings": ", ".join(dict.fromkeys(spec.labels)), "start": int(unit.ws.epoch),
                    "wave": run.wave_of(state, u), "waves": len(state.logs[unit.group].waves), "done_groups": done}
    return {"settings": None, "done_groups": done, "start": 0}


def _name(path) -> str:
    return ".".join(str(getattr(k, "name", getattr(k, "key", getattr(k, "idx", k)))) for k in path)


def flat(tree, prefix: str = "") -> dict:
    """A tree of arrays as one flat dict, ``prefix`` + part + "/" + the leaf's path (orbax saves it
    as it is, whatever the tree's types)."""
    out = {}
    for part, sub in tree.items():
        for path, leaf in jax.tree_util.tree_flatten_with_path(sub)[0]:
            out[f"{prefix}{part}/{_name(path)}"] = leaf if isinstance(leaf, jax.Array) else np.asarray(leaf)
    return out


def unflat(like, values: dict):
    """``like``'s tree with each leaf taken by its path from ``values`` (:func:`flat`'s, one part)."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(like)
    return jax.tree_util.tree_unflatten(treedef, [values[_name(path)] for path, _ in leaves])


def saved_position(out: Path) -> Optional[dict]:
    """The ``where`` of the latest checkpoint written to ``out`` (None before one exists)."""
    folder = Path(out) / ".checkpoint"
    for sub in ("run",):
        steps_dir = folder / sub
        steps = sorted(int(p.name) for p in steps_dir.glob("*") if p.name.isdigit() and (p / "position").is_dir()) \
            if steps_dir.is_dir() else []
        for step in reversed(steps):
            for f in (steps_dir / str(step) / "position").glob("*"):
                with contextlib.suppress(OSError, ValueError):
                    return json.loads(f.read_text())["where"]
    return None
