"""Durable runs: a study's checkpoint, so a killed run resumes where it stopped with identical results.

Results are deterministic on one machine, so a run resumed from the exact state it saved (every
member's state, its logs so far, its position) writes what an uninterrupted run writes. One
study's checkpoint lives in ``OUT/.checkpoint/``:

- ``config.json``: the run's configuration (members, engine options, code version); a run with
  another configuration refuses to resume from it (:class:`CheckpointMismatch`);
- ``group-<g>.npz``: a finished static group's results, written as it ends;
- ``wave/<step>/``: the running wave (orbax-checkpoint: the engine's
  :class:`jaxlabs.engine.wave.WaveState` as it is, typed keys included; the finished waves' results;
  the position and auto's decision as JSON), every ``every`` seconds; the two latest are kept, and
  one that does not read back whole (a disk error, a copy cut short) is passed over for the one
  before it, with a note (:class:`CheckpointDamaged` when neither reads); orbax writes a step aside
  and renames it, so a kill leaves the previous step whole;
- ``finished``: the study's results are published; the command removes the folder when all its
  studies are done (a resumed multi-study command skips the finished ones).

Checkpoints are taken between chunks (the host loop), never inside a compiled program. While a
run writes to a folder it holds the folder's lock (:func:`jaxlabs.lock.lock_output`): a second run into the same
folder stops at once.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxlabs import atomic, interrupt
from jaxlabs.engine.group import GroupResult
from jaxlabs.engine.wave import WaveState, template
from jaxlabs.interrupt import Interrupted, stop_at_checkpoint  # noqa: F401 (Ctrl-C handling, reachable from here too)

CHECKPOINT_DIR = ".checkpoint"
EVERY_FORMS = "seconds with an optional unit: 30s, 5m, 1h; 0 turns checkpoints off"
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}
_ARRAYS = ("hparams", "curves", "final")  # a GroupResult's per-member arrays, by name


def parse_every(text: str) -> float:
    """``--checkpoint-every`` text -> seconds (0: off); ValueError (one line) otherwise."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", text.lower())
    if not m:
        raise ValueError(f"{text!r} is not a time; give {EVERY_FORMS}")
    return float(m.group(1)) * _UNITS[m.group(2)]


@functools.lru_cache(maxsize=None)
def code_version() -> str:
    """What else decides the numbers: jaxlabs' own sources, the libraries that compute, the backend."""
    h = hashlib.sha256()
    root = Path(__file__).parent
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    for lib in ("jax", "jaxlib", "flax", "optax", "numpy"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            h.update(f"{lib}={importlib.metadata.version(lib)}".encode())
    h.update(f"{jax.default_backend()}:{jax.devices()[0].device_kind}".encode())
    return h.hexdigest()[:12]


class CheckpointMismatch(ValueError):
    """The output folder holds the checkpoint of a run with another configuration."""


class CheckpointDamaged(ValueError):
    """The output folder's checkpoint cannot be read back (and no earlier one can either)."""


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    text = text.split(" [tensorstore_spec=")[0]
    return text if len(text) <= 160 else text[:157] + "..."


@contextlib.contextmanager
def _quiet_orbax():
    """orbax logs each failed read of a damaged checkpoint from its background tasks; the caller
    says it in one line instead."""
    import logging

    loggers = [logging.getLogger(n) for n in ("asyncio", "absl")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, sort_keys=True, default=str))


def _difference(there: Any, here: Any, path: str = "") -> Optional[str]:
    """The first place two configurations differ, as ``path: A there, B here``."""
    if isinstance(there, dict) and isinstance(here, dict):
        if set(there) != set(here):
            return f"{path or 'keys'}: {_short(sorted(there))} there, {_short(sorted(here))} here"
        for k in there:
            d = _difference(there[k], here[k], f"{path}.{k}" if path else k)
            if d:
                return d
        return None
    return None if there == here else f"{path}: {_short(there)} there, {_short(here)} here"


def _short(x: Any) -> str:
    text = json.dumps(x)
    return text if len(text) <= 60 else text[:57] + "..."


def remove(path: Path) -> None:
    """Delete a folder atomically: renamed aside first, so a kill while deleting never leaves half
    a checkpoint that looks whole (what is left aside is removed by the next :meth:`StudyCheckpoint.open`)."""
    path = Path(path)
    trash = path.with_name(f"{path.name}.deleting-{os.getpid()}")
    try:
        os.replace(path, trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def _write_json(path: Path, obj: Any) -> None:
    atomic.write_json(path, obj, sort_keys=True)


class StudyCheckpoint:
    """One study's checkpoint folder. ``config``: what must match to resume; ``every``: seconds
    between wave checkpoints; ``label``: the study, for messages."""

    def __init__(self, folder: Path, config: dict, every: float, label: str):
        self.folder, self.config, self.every, self.label = Path(folder), _jsonable(config), every, label
        self._last = time.monotonic()
        self._manager = None
        self._step = 0
        self.finished = False
        self.position: Optional[dict] = None  # the saved wave's position, when resuming one
        self.resume_step: Optional[int] = None  # its orbax step

    # ------------------------------------------------------------------ opening
    def open(self) -> Optional[str]:
        """Read an earlier run's checkpoint: None when there is none, else the line that says where
        this run resumes. CheckpointMismatch for another run's."""
        for trash in [*self.folder.parent.glob(f"{self.folder.name}.deleting-*"), *self.folder.glob("wave.deleting-*")]:
            shutil.rmtree(trash, ignore_errors=True)
        try:
            saved = json.loads((self.folder / "config.json").read_text())
        except (OSError, ValueError):
            remove(self.folder)  # nothing usable was written (or nothing at all)
            return None
        diff = _difference(saved, self.config)
        if diff:
            raise CheckpointMismatch(
                f"{self.folder.parent} holds the checkpoint of another run of {self.label} ({diff}); add --fresh "
                "to discard it and start over, or choose another --out")
        self.finished = (self.folder / "finished").is_file() and (self.folder.parent / "results.json").is_file()
        if (self.folder / "finished").is_file() and not self.finished:  # its results are gone: start over
            remove(self.folder)
            return None
        if self.finished:
            return f"resuming {self.label}: finished earlier, results in {self.folder.parent}"
        done = self._finished_groups()
        manager = self._wave_manager(create=False)
        steps = sorted(manager.all_steps()) if manager is not None else []
        step, note = self._readable(steps)
        if steps:
            self._step = steps[-1] + 1
        if step is not None:
            position = self._restore(step, position=True)["position"]
            line = self._resumes(position, done)
            if line is not None:
                self.position, self.resume_step = position, step
                return note + line
        if done:
            return f"{note}resuming {self.label} after {len(done)} finished group{'s' * (len(done) != 1)}"
        return note.rstrip("\n") or None

    def _resumes(self, position: dict, done: list[int]) -> Optional[str]:
        """The line that says where the saved ``position`` resumes; None when it is stale (its
        group finished after it was written)."""
        if position["group"] != len(done):
            return None
        waves = f", wave {position['wave'] + 1}/{len(position['waves'])}" if len(position["waves"]) > 1 else ""
        return f"resuming {self.label} [{position['settings']}] from epoch {position['start']}" + waves

    def _readable(self, steps: list[int]) -> tuple[Optional[int], str]:
        """The newest wave checkpoint that reads back whole (every array), and a note when a newer
        one is damaged (a disk error, a copy cut short); CheckpointDamaged when none reads."""
        if not steps:
            return None, ""
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

    def _finished_groups(self) -> list[int]:
        found = {int(m.group(1)) for p in self.folder.glob("group-*.npz") if (m := re.fullmatch(r"group-(\d+)\.npz", p.name))}
        return sorted(g for g in found if set(range(g)) <= found)

    def _wave_manager(self, create: bool):
        if self._manager is None and (create or (self.folder / "wave").is_dir()):
            import orbax.checkpoint as ocp

            self.folder.mkdir(parents=True, exist_ok=True)
            self._manager = ocp.CheckpointManager(
                (self.folder / "wave").absolute(), options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True))
        return self._manager

    def _restore(self, step: int, *, position: bool = False, earlier: bool = False, wave: Any = None) -> dict:
        import orbax.checkpoint as ocp

        items = {"position": ocp.args.JsonRestore()} if position else {}
        if earlier:
            items["earlier"] = ocp.args.StandardRestore()
        if wave is not None:  # device arrays as placed in the template, host arrays as NumPy arrays
            abstract = jax.tree.map(lambda x: ocp.utils.to_shape_dtype_struct(x) if isinstance(x, jax.Array) else x,
                                    wave)
            items["wave"] = ocp.args.StandardRestore(abstract)
        return self._manager.restore(step, args=ocp.args.Composite(**items))

    def _ensure_config(self) -> None:
        if not (self.folder / "config.json").is_file():
            self.folder.mkdir(parents=True, exist_ok=True)
            _write_json(self.folder / "config.json", self.config)

    # ------------------------------------------------------------------ static groups
    def finished_group(self, g: int, static: dict):
        """The results of group ``g`` when an earlier run finished it, else None (``static``: the
        group's own, whose values JSON would not give back as they were, e.g. tuples)."""
        path = self.folder / f"group-{g}.npz"
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as z:
            part = lambda name: {k.split("/", 1)[1]: z[k] for k in z.files if k.startswith(name + "/")}  # noqa: E731
            return GroupResult(static=static, seeds=z["seeds"], **{p: part(p) for p in _ARRAYS},
                               **json.loads(str(z["meta"])))

    def group(self, g: int, settings: str) -> "GroupCheckpoint":
        """The hooks :func:`jaxlabs.sweep.run_group` calls for group ``g`` (``settings``: its labels)."""
        position = self.position if self.position is not None and self.position["group"] == g else None
        return GroupCheckpoint(self, g, settings, position)

    def group_done(self, g: int, result, last: bool) -> None:
        """Keep a finished group's results; the group's wave checkpoint is spent. A short study's
        only group writes nothing (its results are published at once) unless a checkpoint was taken."""
        if last and g == 0 and not self.folder.is_dir():
            return
        self._ensure_config()
        meta = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)
                if f.name not in ("static", "seeds", *_ARRAYS)}
        arrays = {"meta": np.asarray(json.dumps(meta)), "seeds": result.seeds,
                  **{f"{part}/{k}": v for part in _ARRAYS for k, v in getattr(result, part).items()}}
        atomic.write_npz(self.folder / f"group-{g}.npz", arrays)
        self._drop_waves()
        self.position = None
        if interrupt.requested() and not last:
            raise Interrupted(f"stopped {self.label} after group {g + 1}; the checkpoint in {self.folder.parent} "
                              "resumes it: run the same command again")

    def _drop_waves(self) -> None:
        self.close()
        remove(self.folder / "wave")

    # ------------------------------------------------------------------ waves
    def due(self) -> bool:
        """A wave checkpoint is due: ``every`` seconds since the last one (or the start), or Ctrl-C."""
        return interrupt.requested() or time.monotonic() - self._last >= self.every

    def save_wave(self, position: dict, wave: WaveState, earlier: dict) -> None:
        """Write a wave checkpoint (orbax writes it in the background): the running ``wave`` as it
        is, the finished waves' results (``earlier``) and the ``position`` (JSON); after Ctrl-C,
        wait for it to be on disk and raise :class:`Interrupted`."""
        import orbax.checkpoint as ocp

        self._ensure_config()
        manager = self._wave_manager(create=True)
        # copies: the engine donates the state to its next chunk while orbax writes in the background
        wave = jax.tree.map(lambda x: jnp.copy(x) if isinstance(x, jax.Array) else np.array(x), wave)
        items = {"wave": ocp.args.StandardSave(wave), "position": ocp.args.JsonSave(_jsonable(position))}
        if earlier:  # the first wave has none (orbax saves no empty item)
            items["earlier"] = ocp.args.StandardSave(earlier)
        manager.save(self._step, args=ocp.args.Composite(**items))
        self._step += 1
        self._last = time.monotonic()
        if interrupt.requested():
            manager.wait_until_finished()
            raise Interrupted(f"stopped {self.label} at epoch {position['start']}; the checkpoint in "
                              f"{self.folder.parent} resumes it: run the same command again")

    # ------------------------------------------------------------------ the end
    def finish(self) -> None:
        """The study's results are published: mark it finished, drop what it no longer needs."""
        self._drop_waves()
        self._ensure_config()
        _write_json(self.folder / "finished", {"study": self.label})
        for p in self.folder.glob("group-*.npz"):
            p.unlink()

    def close(self) -> None:
        """Let a wave checkpoint being written finish (a run that stops for an error keeps it)."""
        if self._manager is not None:
            self._manager.wait_until_finished()
            self._manager.close()
            self._manager = None


def clear(out: Path) -> None:
    """Remove a finished study's checkpoint (the command's studies are all done)."""
    folder = Path(out) / CHECKPOINT_DIR
    if (folder / "finished").is_file():
        remove(folder)


def saved_position(out: Path) -> Optional[dict]:
    """The position of the latest wave checkpoint written to ``out`` (None before one exists)."""
    wave = Path(out) / CHECKPOINT_DIR / "wave"
    steps = sorted(int(p.name) for p in wave.glob("*") if p.name.isdigit() and (p / "position").is_dir()) \
        if wave.is_dir() else []
    for step in reversed(steps):
        for f in (wave / str(step) / "position").glob("*"):
            with contextlib.suppress(OSError, ValueError):
                return json.loads(f.read_text())
    return None


class GroupCheckpoint:
    """What :func:`jaxlabs.sweep.run_group` sees of the checkpoint: the group's saved position
    (``position``, None when the group starts afresh) and :meth:`save` between chunks."""

    def __init__(self, study: StudyCheckpoint, g: int, settings: str, position: Optional[dict]):
        self.study, self.g, self.settings, self.position = study, g, settings, position

    def earlier_waves(self) -> tuple[list, list, int]:
        """The curves, finals and epochs run of the waves that finished before the checkpoint."""
        if self.position is None or not self.position["wave"]:
            return [], [], 0
        earlier = self.study._restore(self.study.resume_step, earlier=True)["earlier"]
        ws = [earlier[str(w)] for w in range(self.position["wave"])]
        return [w["curves"] for w in ws], [w["final"] for w in ws], int(self.position["earlier_run"])

    def restore_wave(self, fresh: WaveState, placement) -> WaveState:
        """The saved wave, restored into the shapes of ``fresh`` (the wave before its first chunk:
        its structure, dtypes and placement) as the saved layout has them."""
        shaped = template(fresh, self.position["layout"], placement)
        wave = self.study._restore(self.study.resume_step, wave=shaped)["wave"]
        return dataclasses.replace(wave, epoch=int(wave.epoch))

    def save(self, wave: int, waves: list, decision, earlier: tuple, ws: WaveState) -> None:
        """A chunk ended: checkpoint the running wave ``ws`` (wave ``wave`` of ``waves``), auto's
        ``decision`` and the finished waves' results (``earlier``), if a checkpoint is due."""
        if not self.study.due():
            return
        curves, finals, earlier_run = earlier
        position = {"group": self.g, "settings": self.settings, "wave": wave, "waves": [list(map(int, w)) for w in waves],
                    "start": int(ws.epoch), "layout": ws.layout, "earlier_run": int(earlier_run),
                    "decision": decision.to_json()}
        self.study.save_wave(position, ws, {str(w): {"curves": c, "final": f}
                                            for w, (c, f) in enumerate(zip(curves, finals))})


class SearchCheckpoint(StudyCheckpoint):
    """A search's checkpoint (:func:`jaxlabs.search.run.run_search`): every static configuration's
    population (its WaveState and numbers) and the search's record (decisions, lineage, who is
    still in the race), saved together between chunks, in the study checkpoint's folder, with its
    config check, damaged-checkpoint fallback and finish."""

    def _resumes(self, position: dict, done: list[int]) -> Optional[str]:
        return f"resuming {self.label} from epoch {position['start']}"

    def restore(self, pops) -> dict:
        """Put the saved populations into ``pops`` (fresh ones, as the search builds them); the record."""
        layouts = self.position["layouts"]
        shaped = {"groups": {str(g): template(p.ws, layouts[g], p.placement) for g, p in enumerate(pops)},
                  "hp": {str(g): p.hp for g, p in enumerate(pops)}}
        saved = self._restore(self.resume_step, wave=shaped)["wave"]
        for g, p in enumerate(pops):
            ws = saved["groups"][str(g)]
            p.resume(dataclasses.replace(ws, epoch=int(ws.epoch), order=np.asarray(ws.order),
                                         status=np.asarray(ws.status)),
                     {k: np.asarray(v, np.float32) for k, v in saved["hp"][str(g)].items()})
        return self.position["record"]

    def save(self, pops, record: dict, epoch: int) -> None:
        """The populations and ``record`` after ``epoch`` epochs, if a checkpoint is due."""
        if not self.due():
            return
        position = {"group": 0, "start": int(epoch), "layouts": [p.ws.layout for p in pops], "record": record}
        self.save_wave(position, {"groups": {str(g): p.ws for g, p in enumerate(pops)},
                                  "hp": {str(g): p.hp for g, p in enumerate(pops)}}, {})
