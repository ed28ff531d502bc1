"""The engine's promises: a vmapped member is the same run as that member alone; stopping,
freezing and divergence are per member."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlabs.sweep import grid_members, run_group
from jaxlabs.tasks import get_task
from jaxlabs.train import CONVERGED, DIVERGED, MAX_EPOCHS, Trainer, make_train

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
    swept = run_group(trainer, data, seeds, hp, chunk=7, progress=False)
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


def halving_trainer(max_epochs):
    """carry x starts at hp['x0']; the logged loss is sqrt(x) (NaN once x < 0); each epoch
    multiplies x by hp['rate']; the stopping rule is loss <= hp['tol']."""

    def init(key, hp, data):
        return {"x": hp["x0"]}

    def epoch(carry, hp, data, e):
        loss = jnp.sqrt(carry["x"])
        return {"x": carry["x"] * hp["rate"]}, {"loss": loss}, loss <= hp["tol"]

    def finish(carry, hp, data):
        return {"x": carry["x"]}

    return Trainer(init, epoch, finish, max_epochs=max_epochs)


def test_convergence_epoch_freezing_and_divergence_are_per_member():
    # sqrt(x): 1, .5, .25, .125, .0625 at epochs 1..5 (x quartered each epoch)
    hp = {"x0": [1.0, 1.0, 1.0, 1.0], "rate": [0.25, 0.25, -1.0, 0.99], "tol": [0.1, 0.3, 0.1, 1e-6]}
    r = run_group(halving_trainer(12), None, [0, 0, 0, 0], hp, chunk=5, progress=False)
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
    alone = run_group(halving_trainer(12), None, [0, 0, 0], {k: [v[0], v[1], v[3]] for k, v in hp.items()},
                      chunk=5, progress=False)
    np.testing.assert_array_equal(alone.curves["loss"], r.curves["loss"][[0, 1, 3]])


def test_program_stops_early_once_every_member_has_stopped():
    hp = {"x0": [1.0, 1.0], "rate": [0.25, -1.0], "tol": [0.1, 0.1]}
    r = run_group(halving_trainer(1000), None, [0, 1], hp, chunk=4, progress=False)
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
