"""The engine's promises: a vmapped member is the same run as that member alone; stopping,
freezing, divergence and the best checkpoint are per member; epoch keys do not depend on chunking."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlabs.sweep import EngineOptions, grid_members, run_group
from jaxlabs.tasks import get_task
from jaxlabs.train import CONVERGED, DIVERGED, MAX_EPOCHS, Checkpoint, Trainer, make_train

# float32: vmapped and unbatched matmuls may sum in a different order, so the two runs agree to
# rounding, amplified a little by 40 Adam steps; a real difference (other key, other lr, a wrong
# member index) shows up at 1e-2 or more within a few steps.
VMAP_VS_ALONE_RTOL = 1e-5


def tiny_fit(epochs=40, **kw):
    task = get_task("fit-log2cos")
    static = task.resolve_static(n=120, width=16, depth=2, epochs=epochs, **kw)
    return task, static, *task.build(static)


def test_member_of_vmapped_sweep_equals_member_trained_alone():
    task, static, trainer, data = tiny_fit(epochs=40)
    seeds, hp = grid_members([0, 1, 2], lr=[0.001, 0.01, 0.05], tolerance=[1e-9])
    # chunk 7 does not divide 40: the last chunk is partly masked, which must not change anything
    swept = run_group(trainer, data, seeds, hp, progress=False, options=EngineOptions(chunk=7))
    assert swept.epochs_run == 40 and swept.curves["loss"].shape == (9, 40)
    train = jax.jit(make_train(trainer))
    for i in (0, 4, 8):
        key = jax.random.key(seeds[i])
        curves, final = train(key, {k: jnp.float32(v[i]) for k, v in hp.items()}, data)
        np.testing.assert_allclose(swept.curves["loss"][i], curves["loss"], rtol=VMAP_VS_ALONE_RTOL)
        np.testing.assert_allclose(swept.curves["val_mse"][i], curves["val_mse"], rtol=VMAP_VS_ALONE_RTOL)
        np.testing.assert_allclose(swept.final["test_mse"][i], final["test_mse"], rtol=VMAP_VS_ALONE_RTOL)
    # and the members really differ (so the comparison above could fail)
    assert abs(swept.curves["loss"][0, -1] - swept.curves["loss"][4, -1]) > 1e-3
    assert abs(swept.curves["loss"][3, 0] - swept.curves["loss"][4, 0]) > 1e-3  # seed 0 vs seed 1


def halving_trainer(max_epochs, checkpoint=None):
    """carry x starts at hp['x0']; the logged loss is sqrt(x) (NaN once x < 0); each epoch
    multiplies x by hp['rate']; the stopping rule is loss <= hp['tol']. ``score`` is a log of the
    carry after the update: -(x - 0.3)^2, best when x is nearest 0.3."""

    def init(key, hp, data, tx):
        return {"x": hp["x0"]}

    def epoch(carry, hp, data, e, key, tx):
        loss = jnp.sqrt(carry["x"])
        x = carry["x"] * hp["rate"]
        return {"x": x}, {"loss": loss, "score": -jnp.square(x - 0.3)}, loss <= hp["tol"]

    def finish(carry, hp, data):
        return {"x": carry["x"]}

    return Trainer(init, epoch, finish, max_epochs=max_epochs, checkpoint=checkpoint)


def test_convergence_epoch_freezing_and_divergence_are_per_member():
    # sqrt(x): 1, .5, .25, .125, .0625 at epochs 1..5 (x quartered each epoch)
    hp = {"x0": [1.0, 1.0, 1.0, 1.0], "rate": [0.25, 0.25, -1.0, 0.99], "tol": [0.1, 0.3, 0.1, 1e-6]}
    r = run_group(halving_trainer(12), None, [0, 0, 0, 0], hp, progress=False, options=EngineOptions(chunk=5))
    status, stop = r.final["status"], r.final["stop_epoch"]
    # member 0: loss 0.0625 <= 0.1 first at epoch 5; x frozen at the value that met the tolerance
    assert status[0] == CONVERGED and stop[0] == 5
    assert r.final["x"][0] == pytest.approx(0.0625**2)
    np.testing.assert_allclose(r.curves["loss"][0], [1, .5, .25, .125] + [.0625] * 8)
    # member 1: 0.25 <= 0.3 at epoch 3
    assert status[1] == CONVERGED and stop[1] == 3
    # member 2: x goes negative after one update, so the loss is NaN at epoch 2: diverged
    assert status[2] == DIVERGED and stop[2] == 2
    assert np.isnan(r.curves["loss"][2, 1:]).all()
    # member 3 never reaches 1e-6: ran to the maximum
    assert status[3] == MAX_EPOCHS and stop[3] == 12
    assert r.final["x"][3] == pytest.approx(0.99**12, rel=1e-6)
    # the diverged member left the others exactly as they are when run without it
    alone = run_group(halving_trainer(12), None, [0, 0, 0], {k: [v[0], v[1], v[3]] for k, v in hp.items()}, progress=False, options=EngineOptions(chunk=5))
    np.testing.assert_array_equal(alone.curves["loss"], r.curves["loss"][[0, 1, 3]])


def test_program_stops_early_once_every_member_has_stopped():
    hp = {"x0": [1.0, 1.0], "rate": [0.25, -1.0], "tol": [0.1, 0.1]}
    r = run_group(halving_trainer(1000), None, [0, 1], hp, progress=False, options=EngineOptions(chunk=4))
    assert r.epochs_run == 8  # two chunks of 4: member 0 converges at epoch 5
    assert list(r.final["status"]) == [CONVERGED, DIVERGED]


def test_lab_a_member_meeting_the_tolerance_at_once_keeps_its_initialisation():
    task, static, trainer, data = tiny_fit(epochs=10)
    r = run_group(trainer, data, [0, 0], {"lr": [0.01, 0.01], "tolerance": [1e3, 1e-12]}, progress=False)
    assert r.final["status"][0] == CONVERGED and r.final["stop_epoch"][0] == 1
    assert r.final["status"][1] == MAX_EPOCHS
    # frozen at the initial parameters: its train MSE is its epoch-1 loss, held for every epoch
    np.testing.assert_allclose(r.curves["loss"][0], r.curves["loss"][0, 0])
    np.testing.assert_allclose(r.final["train_mse"][0], r.curves["loss"][0, 0], rtol=1e-6)
    assert r.curves["loss"][1, -1] < r.curves["loss"][1, 0]  # the other member trained


def test_best_checkpoint_is_kept_by_the_engine_per_member():
    # x after epochs 1..: 0.5, 0.25, 0.125 ... (rate 0.5): nearest 0.3 after epoch 2; rate 1.0
    # keeps x = 1 (every epoch ties: the first is kept); rate -1 makes the loss NaN at epoch 2.
    hp = {"x0": [1.0, 1.0, 1.0], "rate": [0.5, 1.0, -1.0], "tol": [0.0, 0.0, 0.0]}
    r = run_group(halving_trainer(6, Checkpoint("score", higher=True, keys=("x",))), None, [0, 0, 0], hp, progress=False, options=EngineOptions(chunk=4))
    np.testing.assert_array_equal(r.final["best_epoch"], [2, 1, 1])
    assert r.final["x"][0] == pytest.approx(0.25)  # finish saw the checkpoint, not the last x
    assert r.final["x"][1] == pytest.approx(1.0)
    # the diverged member's checkpoint is its first epoch's (x = -1), never the NaN epoch's
    assert r.final["status"][2] == DIVERGED and r.final["x"][2] == pytest.approx(-1.0)
    np.testing.assert_allclose(r.final["score"], [-0.0025, -0.49, -1.69], rtol=1e-5)  # the best values
    lower = run_group(halving_trainer(6, Checkpoint("score", higher=False, keys=("x",))), None, [0],
                      {k: v[:1] for k, v in hp.items()}, progress=False)
    assert lower.final["best_epoch"][0] == 6  # lowest score: x furthest from 0.3


def test_a_member_without_any_checkpoint_reports_nan_metrics():
    # the loss is NaN at the first epoch: no epoch qualified, so no parameters to report
    r = run_group(halving_trainer(3, Checkpoint("score", higher=True, keys=("x",))), None, [0],
                  {"x0": [-1.0], "rate": [1.0], "tol": [0.0]}, progress=False)
    assert r.final["status"][0] == DIVERGED and r.final["best_epoch"][0] == 0
    assert np.isnan(r.final["x"][0])


def test_epoch_keys_do_not_depend_on_how_epochs_are_chunked():
    from jaxlabs.tasks.mnist_cnn import MnistCNNTask

    task = MnistCNNTask()  # shuffled batches and dropout: every epoch draws from its key
    static = task.resolve_static(synthetic=40, subset=1.0, depth=1, channels=2, hidden=8, batch_size=8, epochs=3)
    trainer, data = task.build(static)
    a = run_group(trainer, data, [0, 1], {"lr": [0.01, 0.01]}, progress=False, options=EngineOptions(chunk=1))
    b = run_group(trainer, data, [0, 1], {"lr": [0.01, 0.01]}, progress=False, options=EngineOptions(chunk=3))
    np.testing.assert_allclose(a.curves["loss"], b.curves["loss"], rtol=VMAP_VS_ALONE_RTOL)
    assert a.curves["loss"][0, 0] != a.curves["loss"][1, 0]  # seeds differ, so the check can fail


def test_groups_after_the_first_are_laid_out_as_their_waves_when_they_come():
    """A sweep of two static groups, the second in two waves (as if memory held two members): every
    wave of every group trains, and each group's members end as they do in a run of their own."""
    from jaxlabs.engine.group import run_groups
    from jaxlabs.engine.plans import Plan
    from jaxlabs.engine.run import GroupSpec
    from test_plans import tiny_task

    _, trainer, data = tiny_task("fit-log2cos", n=60, width=8, depth=2, epochs=12)
    _, longer, data2 = tiny_task("fit-log2cos", n=60, width=8, depth=2, epochs=20)
    options = EngineOptions(chunk=5, plan=Plan("map"), max_wave=2)
    hp = {"lr": np.asarray([0.01, 0.02, 0.03]), "tolerance": np.zeros(3)}
    specs = [GroupSpec({"epochs": 12}, ["a"] * 2, np.asarray([0, 1]), {k: v[:2] for k, v in hp.items()},
                       lambda: (trainer, data), "a", None, dataclasses.replace(options, max_wave=None)),
             GroupSpec({"epochs": 20}, ["b"] * 3, np.asarray([0, 1, 2]), hp, lambda: (longer, data2), "b", None,
                       options)]
    both = run_groups(specs, progress=False)
    assert [g.waves for g in both] == [[2], [2, 1]] and [g.epochs_run for g in both] == [12, 20]
    alone = run_group(longer, data2, [0, 1, 2], hp, progress=False, options=dataclasses.replace(options, max_wave=None))
    for part in ("curves", "final"):
        for k, v in getattr(alone, part).items():
            np.testing.assert_array_equal(getattr(both[1], part)[k], v, err_msg=k)
