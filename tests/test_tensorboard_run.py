"""TensorBoard logs end to end: ``lr_sweep`` writes one run per member as it trains, a killed run
resumed appends without a step twice, a resume of a run that wrote none fills in the whole history,
and a full disk is the one-line exit 2. Read back with TensorBoard's own reader and compared with
the run's ``curves.npz`` and ``results.csv``."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorboard")
from tb_read import read_runs  # noqa: E402
from test_resume import LAB_A, rerun, start, wait_for  # noqa: E402

from experiments import lr_sweep  # noqa: E402
from jaxlabs.store import saved_position  # noqa: E402

TINY = ["--n", "60", "--epochs", "30", "--width", "8", "--depth", "2", "--no-progress", "--lr", "0.01,0.05",
        "--seeds", "2", "--tolerance", "1e-3"]
STUDY = "fit-log2cos-lr-sweep"


def check_against_the_run(out: Path) -> dict:
    """Every member's run has its curves (every kept step once, in order, equal to curves.npz), its
    hparams and its final metrics (equal to results.csv)."""
    runs = read_runs(out / "tensorboard")
    curves = np.load(out / "curves.npz")
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert sorted(runs) == sorted(f"{STUDY}/{r['setting']}/seed{r['seed']}" for r in rows)
    for i, r in enumerate(rows):
        run = runs[f"{STUDY}/{r['setting']}/seed{r['seed']}"]
        stop = int(r["epochs_trained"])
        for tag in ("loss", "val_mse"):
            steps, values = run["scalars"][tag]
            assert (np.diff(steps) > 0).all() and steps[0] == 1 and steps[-1] == stop, (tag, steps)
            np.testing.assert_array_equal(values.astype(np.float32), curves[tag][i, steps - 1])
        hp = run["hparams"]["_hparams_/session_start_info"].session_start_info.hparams
        assert hp["lr"].number_value == float(r["lr"]) and hp["seed"].number_value == int(r["seed"])
        assert hp["setting"].string_value == r["setting"] and hp["width"].number_value == float(r["width"])
        final = run["scalars"]["final/test_mse"][1][-1]
        assert np.float32(final) == np.float32(float(r["test_mse"]))
        assert run["scalars"]["final/converged"][1][-1] == (r["status"] == "converged")
    return runs


def test_a_sweep_writes_one_run_per_member_and_no_tensorboard_writes_none(tmp_path):
    out = tmp_path / "run"
    assert lr_sweep.main([*TINY, "--out", str(out)]) == 0
    runs = check_against_the_run(out)
    assert len(runs) == 4 and all(len(r["scalars"]["loss"][0]) == int(r["scalars"]["final/stop_epoch"][1][-1])
                                  for r in runs.values())  # a short run keeps every epoch
    assert lr_sweep.main([*TINY, "--out", str(tmp_path / "off"), "--no-tensorboard"]) == 0
    assert not (tmp_path / "off" / "tensorboard").exists()


def test_a_killed_run_resumed_appends_without_a_step_twice(tmp_path):
    out = tmp_path / "run"
    p = start("experiments.lr_sweep", LAB_A, out, tensorboard=True)
    wait_for(p, lambda: saved_position(out) is not None)
    p.kill()
    p.wait()
    rerun("experiments.lr_sweep", LAB_A, out, tensorboard=True)
    check_against_the_run(out)


def test_a_resumed_run_that_had_no_tensorboard_logs_gets_the_whole_history(tmp_path):
    out = tmp_path / "run"
    p = start("experiments.lr_sweep", [*LAB_A, "--no-tensorboard"], out, tensorboard=True)
    wait_for(p, lambda: saved_position(out) is not None)
    p.kill()
    p.wait()
    assert not (out / "tensorboard").exists()
    rerun("experiments.lr_sweep", LAB_A, out, tensorboard=True)
    check_against_the_run(out)


def test_a_full_disk_while_writing_events_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    import builtins

    # every event file written from now on is /dev/full: its writes fail with ENOSPC, as on a full disk
    monkeypatch.setattr("jaxlabs.tensorboard.open", lambda path, mode: builtins.open("/dev/full", mode), raising=False)
    with pytest.raises(SystemExit) as e:
        lr_sweep.main([*TINY, "--out", str(tmp_path / "run")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "events.out.tfevents" in err and "No space left on device" in err
