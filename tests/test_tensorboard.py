"""jaxlabs.tensorboard: the observer's event files read back with TensorBoard's own reader, from
synthetic chunks shaped as the engine sends them (a stopped member's values held flat)."""
from __future__ import annotations

import errno

import numpy as np
import pytest

pytest.importorskip("tensorboard")
from tb_read import read_runs  # noqa: E402

from jaxlabs.sweep import GroupResult, Member  # noqa: E402
from jaxlabs.tensorboard import MAX_POINTS, TensorBoardLog  # noqa: E402
from jaxlabs.train import CONVERGED, DIVERGED, MAX_EPOCHS, RUNNING  # noqa: E402

EPOCHS = 5000
F32 = dict(rtol=1e-6, atol=0)  # scalars are stored as float32


def grid(epochs=EPOCHS, stop=(EPOCHS, 1234, 2999, EPOCHS)):
    members = [Member(f"lr={lr:g}", {"epochs": epochs, "width": 8, "activation": "silu"},
                      {"lr": lr, "tolerance": 1e-4}, seed) for lr in (0.01, 0.1) for seed in (0, 1)]
    rng = np.random.default_rng(0)
    t = np.arange(epochs)
    loss = np.exp(-t / 700)[None] * (1 + 0.3 * rng.random((4, epochs)))  # noisy, decreasing
    acc = 1 - loss / 2
    stop = np.array(stop)  # 1-based stop epochs: member 1 converges, 2 diverges
    status = np.array([MAX_EPOCHS, CONVERGED, DIVERGED, MAX_EPOCHS])
    loss[2, stop[2] - 1] = np.nan
    curves = {"loss": loss, "val_acc": acc}
    for i, s in enumerate(stop):  # the engine holds a stopped member's last values
        for c in curves.values():
            c[i, s:] = c[i, s - 1]
    return members, curves, stop, status


def feed(log, members, curves, stop, status, *, chunk=100, start=0, end=None, rows=None, group=0):
    """Chunks as the engine's wave loop sends them, epochs ``start`` .. ``end``."""
    rows = np.arange(len(members)) if rows is None else rows
    end = curves["loss"].shape[1] if end is None else end
    for first in range(start, end, chunk):
        done = first + chunk
        st = np.where(stop[rows] <= done, status[rows], RUNNING)
        st = np.where(st == MAX_EPOCHS, RUNNING, st)  # MAX_EPOCHS is set at the end, by finalize
        log.chunk(group, members, rows, first, {k: v[rows, first:done] for k, v in curves.items()}, st)


def result(members, curves, stop, status):
    final = {"status": status, "stop_epoch": stop, "test_mse": np.array([0.1, 0.2, np.nan, 0.4]),
             "val_pred": np.zeros((4, 3))}
    return GroupResult(static=members[0].static, labels=[m.label for m in members],
                       seeds=np.array([m.seed for m in members]),
                       hparams={"lr": np.array([m.hparams["lr"] for m in members])},
                       curves=curves, final=final, epochs_run=curves["loss"].shape[1], compile_s=0, run_s=0)


def check_member(run, i, members, curves, stop, status):
    loss_steps, loss = run["scalars"]["loss"]
    acc_steps, acc = run["scalars"]["val_acc"]
    assert (np.diff(loss_steps) > 0).all(), "steps in order, none twice"
    assert loss_steps[0] == 1 and loss_steps[-1] == stop[i], "first and stop epoch kept, nothing after"
    stride = -(-EPOCHS // MAX_POINTS)  # every stride-th epoch, and the kept extras
    assert stop[i] // stride <= len(loss_steps) <= 1.2 * MAX_POINTS
    np.testing.assert_allclose(loss, curves["loss"][i, loss_steps - 1], **F32, equal_nan=True)
    np.testing.assert_allclose(acc, curves["val_acc"][i, acc_steps - 1], **F32)
    best = np.nanargmin(curves["loss"][i, :stop[i]]) + 1
    assert best in loss_steps and np.argmax(curves["val_acc"][i, :stop[i]]) + 1 in acc_steps
    hp = run["hparams"]["_hparams_/session_start_info"].session_start_info.hparams
    assert hp["seed"].number_value == members[i].seed and hp["lr"].number_value == members[i].hparams["lr"]
    assert hp["setting"].string_value == members[i].label and hp["activation"].string_value == "silu"
    end = run["hparams"]["_hparams_/session_end_info"].session_end_info
    assert end.status == (2 if status[i] == DIVERGED else 1)  # STATUS_FAILURE / STATUS_SUCCESS
    finals = {k: v[1][-1] for k, v in run["scalars"].items() if k.startswith("final/")}
    assert finals["final/stop_epoch"] == stop[i]
    assert (finals["final/converged"], finals["final/diverged"]) == (status[i] == CONVERGED, status[i] == DIVERGED)
    assert set(finals) == {"final/converged", "final/diverged", "final/stop_epoch", "final/test_mse"}  # no arrays


def test_one_run_per_member_with_thinned_curves_hparams_and_finals(tmp_path):
    members, curves, stop, status = grid()
    log = TensorBoardLog(tmp_path, lambda name: "acc" in name)
    feed(log, members, curves, stop, status)
    log.group_done(0, members, result(members, curves, stop, status))
    runs = read_runs(tmp_path)
    assert sorted(runs) == ["lr=0.01/seed0", "lr=0.01/seed1", "lr=0.1/seed0", "lr=0.1/seed1"]
    for i, m in enumerate(members):
        check_member(runs[f"{m.label}/seed{m.seed}"], i, members, curves, stop, status)


def test_a_short_run_keeps_every_epoch_and_waves_write_their_own_members(tmp_path):
    members, curves, stop, status = grid(epochs=300, stop=(300, 120, 250, 300))
    log = TensorBoardLog(tmp_path)
    for wave in (np.array([0, 1]), np.array([2, 3])):
        feed(log, members, curves, stop, status, chunk=64, rows=wave)  # a last chunk past the budget
    log.group_done(0, members, result(members, curves, stop, status))
    for i, m in enumerate(members):
        steps, values = read_runs(tmp_path)[f"{m.label}/seed{m.seed}"]["scalars"]["val_acc"]
        np.testing.assert_array_equal(steps, np.arange(1, stop[i] + 1))


def test_a_resumed_run_replaces_the_steps_after_its_checkpoint(tmp_path):
    members, curves, stop, status = grid()
    first = TensorBoardLog(tmp_path)
    feed(first, members, curves, stop, status, end=2600)  # killed after epoch 2600's chunk: nothing closed
    first.chunk(0, members, np.arange(4), 2600, {k: v[:, 2600:2700] * 7 for k, v in curves.items()},
                np.full(4, RUNNING))  # a chunk past the checkpoint, computed again after the resume
    resumed = TensorBoardLog(tmp_path)
    feed(resumed, members, curves, stop, status, start=2600)  # the checkpoint was at epoch 2600
    resumed.group_done(0, members, result(members, curves, stop, status))
    runs = read_runs(tmp_path)
    assert len(runs) == 4
    for i, m in enumerate(members):
        check_member(runs[f"{m.label}/seed{m.seed}"], i, members, curves, stop, status)


def test_a_resume_without_earlier_logs_writes_the_whole_history_at_the_groups_end(tmp_path):
    members, curves, stop, status = grid()
    log = TensorBoardLog(tmp_path)  # the run before had --no-tensorboard
    feed(log, members, curves, stop, status, start=2600)
    assert not list(tmp_path.rglob("events.*"))  # deferred: no file with a gap
    log.group_done(0, members, result(members, curves, stop, status))
    runs = read_runs(tmp_path)
    for i, m in enumerate(members):
        check_member(runs[f"{m.label}/seed{m.seed}"], i, members, curves, stop, status)


def test_a_fresh_run_replaces_an_earlier_runs_logs(tmp_path):
    members, curves, stop, status = grid(epochs=200, stop=(200, 100, 150, 200))
    for scale in (3.0, 1.0):
        log = TensorBoardLog(tmp_path)
        feed(log, members, {k: v * scale for k, v in curves.items()}, stop, status)
        log.group_done(0, members, result(members, curves, stop, status))
    steps, loss = read_runs(tmp_path)["lr=0.01/seed0"]["scalars"]["loss"]
    np.testing.assert_allclose(loss, curves["loss"][0, steps - 1], **F32)
    assert len(list((tmp_path / "lr=0.01" / "seed0").glob("events.*"))) == 1


def test_a_killed_runs_truncated_event_file_still_reads(tmp_path):
    members, curves, stop, status = grid()
    log = TensorBoardLog(tmp_path)
    feed(log, members, curves, stop, status, end=1000)
    f = next((tmp_path / "lr=0.01" / "seed0").glob("events.*"))
    f.write_bytes(f.read_bytes()[:-7])  # killed in the middle of a record
    steps, loss = read_runs(tmp_path)["lr=0.01/seed0"]["scalars"]["loss"]
    assert steps[-1] < 1000 and len(steps) > 150
    np.testing.assert_allclose(loss, curves["loss"][0, steps - 1], **F32)


def test_a_full_disk_is_an_oserror_naming_the_event_file(tmp_path, monkeypatch):
    import builtins

    members, curves, stop, status = grid()
    log = TensorBoardLog(tmp_path)
    # every event file is /dev/full: its writes fail with ENOSPC, as on a full disk
    monkeypatch.setattr("jaxlabs.tensorboard.open", lambda path, mode: builtins.open("/dev/full", mode), raising=False)
    with pytest.raises(OSError) as e:
        feed(log, members, curves, stop, status, end=100)
    assert e.value.errno == errno.ENOSPC and "events.out.tfevents" in e.value.filename
    log.close()
