"""Durable runs: a killed sweep or study, run again with the same command, writes exactly what an
uninterrupted run writes; another configuration never resumes from the checkpoint.

The kills are real (SIGKILL / SIGINT to a subprocess once its first checkpoint is on disk), and
the comparison is byte for byte, as in test_determinism (results.csv without its timing columns,
curves.npz, the members of results.json, report.md without its wall time)."""
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from experiments import lr_sweep, reproduce
from jaxlabs.checkpoint import CHECKPOINT_DIR, parse_every
from jaxlabs.store import RunStore, saved_position
from jaxlabs.engine.options import EngineOptions
from jaxlabs.sweep import run_group
from test_determinism import without_timing
from test_plans import tiny_task

# long enough (many chunks after the first checkpoint) that the kill lands mid-training
LAB_A = ["--n", "60", "--epochs", "30000", "--width", "8", "--depth", "2", "--lr", "0.01,0.1", "--seeds", "2",
         "--tolerance", "1e-9", "--plan", "vmap"]
MNIST_CNN = ["--task", "mnist-cnn", "--synthetic", "40", "--subset", "1.0", "--epochs", "150", "--depth", "1",
             "--channels", "4", "--hidden", "8", "--batch-size", "8", "--lr", "0.001,0.01", "--seeds", "2",
             "--plan", "vmap"]
LAB_C = ["C", "--quick", "--seeds", "2", "--plan", "vmap"]
EVERY = ["--checkpoint-every", "0.3s"]
# TensorBoard's logs are test_tensorboard_run's (which passes tensorboard=True); here they would only
# cost (a third of a 30,000-epoch run's time)
QUIET = ["--no-tensorboard"]


def start(command: str, args: list[str], out: Path, tensorboard: bool = False) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", command, *args, *EVERY, *([] if tensorboard else QUIET),
                             "--no-progress", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(p: subprocess.Popen, ready, timeout: float = 240.0) -> None:
    """Poll until ``ready()``; the run must still be going (else the test would test nothing)."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert p.poll() is None, f"the run ended before its checkpoint: {p.communicate()}"
        assert time.monotonic() < deadline, "no checkpoint written"
        time.sleep(0.02)


def rerun(command: str, args: list[str], out: Path, tensorboard: bool = False) -> str:
    p = subprocess.run([sys.executable, "-m", command, *args, *EVERY, *([] if tensorboard else QUIET),
                        "--no-progress", "--out", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    return p.stdout


def assert_same_results(a: Path, b: Path) -> None:
    assert (a / "curves.npz").read_bytes() == (b / "curves.npz").read_bytes()
    assert without_timing((a / "results.csv").read_bytes()) == without_timing((b / "results.csv").read_bytes())
    members = lambda d: json.loads((d / "results.json").read_text())["members"]  # noqa: E731
    drop = lambda rows: [{k: v for k, v in r.items() if not k.endswith("_s")} for r in rows]  # noqa: E731
    assert drop(members(a)) == drop(members(b))
    # the report's numbers: its wall time, its compile time and programs (loaded or compiled) and command aside
    numbers = lambda d: re.sub(r"Wall time [\d.]+ s( \(compile [^)]*\))?|`python -m [^`]*`", "",  # noqa: E731
                               (d / "report.md").read_text())
    assert numbers(a) == numbers(b)
    assert not (b / CHECKPOINT_DIR).exists()  # done: the next run of the command starts afresh


@pytest.fixture(scope="module")
def lab_a_reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "lab-a"
    assert lr_sweep.main([*LAB_A, "--checkpoint-every", "0", *QUIET, "--no-progress", "--out", str(out)]) == 0
    return out


def resume_epoch(stdout: str, label: str) -> int:
    m = re.search(rf"^resuming {re.escape(label)} \[.*\] from epoch (\d+)", stdout, re.MULTILINE)
    assert m, stdout
    return int(m.group(1))


def test_a_killed_sweep_resumes_to_the_uninterrupted_results(tmp_path, lab_a_reference):
    out = tmp_path / "run"
    p = start("experiments.lr_sweep", LAB_A, out)
    wait_for(p, lambda: saved_position(out) is not None)
    p.kill()
    p.wait()
    assert not (out / "results.csv").exists()
    epoch = resume_epoch(rerun("experiments.lr_sweep", LAB_A, out), "fit-log2cos-lr-sweep")
    assert 0 < epoch < 30000
    assert_same_results(lab_a_reference, out)


def test_a_killed_minibatch_sweep_with_a_best_epoch_checkpoint_resumes_exactly(tmp_path):
    reference, out = tmp_path / "reference", tmp_path / "run"
    assert lr_sweep.main([*MNIST_CNN, "--checkpoint-every", "0", *QUIET, "--no-progress", "--out", str(reference)]) == 0
    p = start("experiments.lr_sweep", MNIST_CNN, out)
    wait_for(p, lambda: saved_position(out) is not None)
    p.kill()
    p.wait()
    assert 0 < resume_epoch(rerun("experiments.lr_sweep", MNIST_CNN, out), "mnist-cnn-lr-sweep") < 150
    assert_same_results(reference, out)


def test_a_killed_lab_skips_finished_studies_and_groups(tmp_path):
    reference, out = tmp_path / "reference", tmp_path / "run"
    assert reproduce.main([*LAB_C, "--checkpoint-every", "0", *QUIET, "--no-progress", "--out", str(reference)]) == 0
    p = start("experiments.reproduce", LAB_C, out)
    # C-depth and C-lr are finished, C-activation's first static group too, its second is running
    wait_for(p, lambda: (saved_position(out / "C-activation") or {}).get("done_groups", 0) >= 1)
    p.kill()
    p.wait()
    assert (out / "C-depth" / CHECKPOINT_DIR / "finished").is_file()
    stdout = rerun("experiments.reproduce", LAB_C, out)
    for line in ("resuming C-depth: finished earlier", "resuming C-lr: finished earlier"):
        assert line in stdout, stdout
    # its first group is not trained again: the run goes on after it, or within its second group
    assert re.search(r"^resuming C-activation (after 1 finished group|\[sigmoid\] from epoch \d+)", stdout, re.M), stdout
    for study in ("C-depth", "C-lr", "C-activation"):
        assert_same_results(reference / study, out / study)


def test_ctrl_c_writes_a_checkpoint_says_how_to_resume_and_exits_130(tmp_path, lab_a_reference, capsys,
                                                                     monkeypatch):
    out = tmp_path / "run"
    p = start("experiments.lr_sweep", LAB_A, out)
    wait_for(p, lambda: saved_position(out) is not None)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"{lr_sweep.PROG}: interrupted: stopped fit-log2cos-lr-sweep at epoch ") and \
        "run the same command again" in last, err
    stopped = int(re.search(r"at epoch (\d+)", last).group(1))
    assert saved_position(out)["start"] == stopped

    # another configuration pointed at this checkpoint: one line, exit 2, nothing changed
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    capsys.readouterr()
    other = [*LAB_A[:-4], "--seeds", "3", "--plan", "vmap"]
    for argv, says in ((other, 'seeds: [0, 1] there, [0, 1, 2] here'),
                       ([*LAB_A, "--precision", "bf16"], 'engine.precision: "fp32" there, "bf16" here')):
        with pytest.raises(SystemExit) as stop:
            lr_sweep.main([*argv, *EVERY, *QUIET, "--no-progress", "--out", str(out)])
        err = capsys.readouterr().err.strip()
        assert stop.value.code == 2 and len(err.splitlines()) == 1, err
        assert says in err and "--fresh" in err and "another --out" in err, err
    monkeypatch.setattr("jaxlabs.reproduce.code_version", lambda: "0123456789ab")  # jaxlabs or a library changed
    with pytest.raises(SystemExit):
        lr_sweep.main([*LAB_A, *EVERY, *QUIET, "--no-progress", "--out", str(out)])
    assert "code: " in capsys.readouterr().err
    monkeypatch.undo()
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before

    # --fresh discards it (a short run here), the same command resumes it
    fresh = tmp_path / "fresh"
    shutil.copytree(out, fresh)
    short = [*LAB_A[:2], "--epochs", "30", *LAB_A[4:]]
    assert lr_sweep.main([*short, *EVERY, *QUIET, "--fresh", "--no-progress", "--out", str(fresh)]) == 0
    assert "resuming" not in capsys.readouterr().out
    assert json.loads((fresh / "results.json").read_text())["members"][0]["epochs_trained"] == 30
    assert resume_epoch(rerun("experiments.lr_sweep", LAB_A, out), "fit-log2cos-lr-sweep") == stopped
    assert_same_results(lab_a_reference, out)


def test_a_group_resumed_in_its_second_wave_after_compaction_matches_the_uninterrupted_one(tmp_path):
    """Engine level: waves, compaction (a repacked program, held logs) and auto's decision all
    come back from the checkpoint; the kill is an exception from the checkpoint hook."""
    task, trainer, data = tiny_task("fit-log2cos", n=120, width=16, depth=2, epochs=60)
    seeds = [0, 1, 2, 3, 4, 5]
    # second wave: two members diverge at once, one runs on (compacted to one member)
    hp = {"lr": [0.01, 0.02, 0.01, 1e20, 1e25, 0.01], "tolerance": [0.0, 0.0, 0.6, 0.0, 0.0, 0.0]}
    # as if memory held three members; repack even this tiny group
    kw = dict(progress=False, options=EngineOptions(chunk=5, compaction=True, plan=None, max_wave=3,
                                                    compact_worth_s=0.0))
    plain = run_group(trainer, data, seeds, hp, **kw)
    assert plain.waves == [3, 3]

    class Killed(Exception):
        pass

    class DiesOnceRepacked(RunStore):
        def save(self, state, run, force=False):
            super().save(state, run, force)
            if any(unit.ws is not None and unit.ws.full is not None and run.wave_of(state, u) == 1
                   for u, unit in enumerate(state.units)):
                raise Killed

    first = DiesOnceRepacked(tmp_path, {"run": 1}, 0.0, "tiny")
    with pytest.raises(Killed):
        run_group(trainer, data, seeds, hp, **kw, store=first)
    first.close()
    again = RunStore(tmp_path, {"run": 1}, 3600.0, "tiny")
    note = again.open()
    running = [u for u in again.saved["units"] if u["kind"] == "running"]
    assert len(running) == 1 and running[0]["layout"]["compacted"] and again.saved["where"]["wave"] == 1, note
    resumed = run_group(trainer, data, seeds, hp, **kw, store=again)
    assert (resumed.plan, resumed.waves) == (plain.plan, plain.waves)
    # the killed run's decision, not a new one
    assert resumed.plan_source == again.saved["logs"][0]["decision"]["source"]
    assert resumed.epochs_run == plain.epochs_run
    for part in ("curves", "final"):
        for k, v in getattr(plain, part).items():
            np.testing.assert_array_equal(getattr(resumed, part)[k], v, err_msg=k)


def test_checkpoint_every_takes_seconds_minutes_hours_and_zero(capsys):
    assert [parse_every(t) for t in ("10", "0.5s", "5m", "1h", "0")] == [10, 0.5, 300, 3600, 0]
    for bad in ("", "-1", "5 minutes", "m"):
        with pytest.raises(ValueError, match="is not a time"):
            parse_every(bad)
    with pytest.raises(SystemExit) as stop:
        reproduce.main(["C", "--checkpoint-every", "soon"])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and len(err.splitlines()) == 1 and "argument --checkpoint-every" in err, err



def wave_steps(out: Path) -> list[Path]:
    steps = out / CHECKPOINT_DIR / "run"
    return sorted((p for p in steps.glob("*") if p.name.isdigit()), key=lambda p: int(p.name)) if steps.is_dir() else []


def damage(step: Path) -> None:
    """A disk error or a copy cut short: every array file of a wave checkpoint step overwritten."""
    for f in (step / "arrays").rglob("*"):
        if f.is_file() and f.name not in ("_CHECKPOINT_METADATA", "commit_success.txt"):
            f.write_bytes(b"\0garbage")


def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before_it(tmp_path, lab_a_reference):
    out = tmp_path / "run"
    p = start("experiments.lr_sweep", LAB_A, out)
    wait_for(p, lambda: len(wave_steps(out)) >= 2 and saved_position(out) is not None)
    p.kill()
    p.wait()
    steps = wave_steps(out)
    damage(steps[-1])
    stdout = rerun("experiments.lr_sweep", LAB_A, out)
    assert "the newest checkpoint" in stdout and "is damaged" in stdout and "going back to the previous one" in stdout
    assert resume_epoch(stdout, "fit-log2cos-lr-sweep") > 0
    assert_same_results(lab_a_reference, out)


def test_a_checkpoint_that_cannot_be_read_is_one_line_naming_it_and_fresh(tmp_path, capsys):
    out = tmp_path / "run"
    p = start("experiments.lr_sweep", LAB_A, out)
    wait_for(p, lambda: saved_position(out) is not None)
    p.kill()
    p.wait()
    for step in wave_steps(out):
        damage(step)
    # in a process of its own: nothing of orbax's background work may print after the one line
    again = subprocess.run([sys.executable, "-m", "experiments.lr_sweep", *LAB_A, *EVERY, *QUIET, "--no-progress",
                            "--out", str(out)], capture_output=True, text=True, timeout=300)
    err = again.stderr.strip()
    assert again.returncode == 2 and len(err.splitlines()) == 1, err
    assert "is damaged and cannot be read" in err and str(out / CHECKPOINT_DIR) in err and "--fresh" in err, err
    assert not (out / "results.csv").exists()


def test_a_second_run_into_a_folder_in_use_stops_at_once_naming_the_first(tmp_path, capsys):
    out = tmp_path / "run"
    p = start("experiments.lr_sweep", LAB_A, out)
    try:
        wait_for(p, lambda: saved_position(out) is not None)  # training, lock held
        with pytest.raises(SystemExit) as stop:
            lr_sweep.main([*LAB_A, *EVERY, *QUIET, "--no-progress", "--out", str(out)])
        err = capsys.readouterr().err.strip()
        assert stop.value.code == 2 and len(err.splitlines()) == 1, err
        assert f"argument --out: {out} is in use by another run (pid {p.pid} on " in err, err
    finally:
        p.kill()
        p.wait()
    assert not (out / "results.csv").exists()
