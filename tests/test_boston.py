"""Lab C task: DataLoader-style masked batches, train-only standardisation, PyTorch's
ReduceLROnPlateau stepped once per epoch, best-validation parameters, sklearn's metrics, and a
diverging member that leaves its neighbours alone. Real Boston data (it ships with `boston`)."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from jaxlabs.data import load_boston, split_ratio
from jaxlabs.models import MLP
from jaxlabs.sweep import run_group
from jaxlabs.tasks.boston import BostonTask, batch_indices, boston_splits, plateau_scheduler, plateau_step
from jaxlabs.train import DIVERGED, MAX_EPOCHS, init_member, make_train, run_epochs

# float32 throughout: a vmapped member and the same member alone, or a padded batch and its
# unpadded twin, sum in a different order, so they agree to rounding amplified by a few SGD steps.
FLOAT32_RTOL = 1e-5
TINY = {"width": 8, "depth": 2, "batch_size": 32, "epochs": 6}  # 337 train rows: 10 full batches + 17


@pytest.fixture(scope="module")
def tiny():
    task = BostonTask()
    static = task.resolve_static(**TINY)
    trainer, data = task.build(static)
    return task, static, trainer, data


def test_batches_are_a_permutation_cut_like_a_dataloader():
    idx, mask = batch_indices(jax.random.key(3), 337, 32)
    assert idx.shape == mask.shape == (11, 32)
    assert mask[:10].all() and int(mask[10].sum()) == 337 - 10 * 32  # only the last batch is short
    assert sorted(np.asarray(idx)[np.asarray(mask)].tolist()) == list(range(337))
    other, _ = batch_indices(jax.random.key(4), 337, 32)
    assert not np.array_equal(idx, other)  # the order depends on the key


def test_masked_epoch_equals_sgd_over_the_unpadded_batches(tiny):
    """One epoch of the task = plain SGD over the same shuffled batches, the last one 17 rows."""
    _, static, trainer, data = tiny
    hp = {"lr": jnp.float32(0.01), "momentum": jnp.float32(0.0)}
    carry = trainer.init(jax.random.key(0), hp, data)
    new, logs, _ = trainer.epoch(carry, hp, data, jnp.int32(0))

    _, shuffle_key = jax.random.split(carry["key"])  # what epoch() does with the carried key
    idx, mask = map(np.asarray, batch_indices(shuffle_key, 337, static["batch_size"]))
    model = MLP(width=8, depth=2, out=1, activation="relu")
    params, losses, sizes = carry["params"], [], []
    for rows in (r[m] for r, m in zip(idx, mask)):
        def loss_fn(p):
            return jnp.mean(jnp.square(model.apply({"params": p}, data["x_train"][rows]) - data["y_train"][rows]))
        loss, grads = jax.value_and_grad(loss_fn)(params)
        params = optax.apply_updates(params, jax.tree.map(lambda g: -0.01 * g, grads))
        losses.append(float(loss)), sizes.append(len(rows))
    assert sizes[-1] == 17
    for a, b in zip(jax.tree.leaves(new["params"]), jax.tree.leaves(params)):
        np.testing.assert_allclose(a, b, rtol=FLOAT32_RTOL, atol=1e-6)
    np.testing.assert_allclose(logs["loss"], np.dot(losses, sizes) / 337, rtol=FLOAT32_RTOL)


def test_features_are_standardised_with_train_statistics_only():
    x, y = load_boston()
    train, val, test = split_ratio(506, (4, 1, 1), seed=42)
    d = boston_splits(42)
    assert d["x_train"].shape == (337, 13) and d["x_val"].shape == (84, 13) and d["x_test"].shape == (85, 13)
    mean, std = x[train].mean(0), x[train].std(0)
    np.testing.assert_allclose(d["x_train"].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(d["x_val"], (x[val] - mean) / std, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(d["x_test"], (x[test] - mean) / std, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(d["y_test"][:, 0], y[test])  # targets stay in $1000s
    assert np.abs(d["x_val"].mean(0)).max() > 0.05  # val was not standardised with its own statistics


def torch_plateau_lrs(values, lr, factor, patience, threshold=1e-4, cooldown=0):
    """PyTorch's ReduceLROnPlateau.step(value) (mode='min', threshold_mode='rel') as documented,
    transcribed; the lr after each call."""
    best, bad, cooldown_counter, out = float("inf"), 0, 0, []
    for v in values:
        if v < best * (1 - threshold):
            best, bad = v, 0
        else:
            bad += 1  # NaN compares False: a bad epoch
        if cooldown_counter > 0:
            cooldown_counter -= 1
            bad = 0
        if bad > patience:
            lr, cooldown_counter, bad = lr * factor, cooldown, 0
        out.append(lr)
    return out


@pytest.mark.parametrize("values, patience, cooldown, expected", [
    # patience 2: the third bad epoch in a row reduces. 8.9995 is no improvement on 9 (needs
    # < 9 * (1 - 1e-4) = 8.9991); NaN is a bad epoch; an improvement (8.0) resets the count.
    ([10, 9, 9, 8.9995, 9.5, 9.5, 8.0, 8.5, 8.5, 8.5, float("nan"), 9, 9], 2, 0,
     [1, 1, 1, 1, .5, .5, .5, .5, .5, .25, .25, .25, .125]),
    # patience 1, cooldown 2: reduce at the second bad epoch, then two epochs whose bad count is
    # ignored; the next reduction needs two bad epochs after an improvement (4).
    ([5, 6, 6, 6, 6, 6, 4, 6, 6], 1, 2, [1, 1, .5, .5, .5, .5, .5, .5, .25]),
])
def test_plateau_schedule_matches_pytorch(values, patience, cooldown, expected):
    assert torch_plateau_lrs(values, 1.0, 0.5, patience, cooldown=cooldown) == expected  # the transcription
    scheduler = plateau_scheduler({"factor": 0.5, "patience": patience, "threshold": 1e-4, "cooldown": cooldown})
    state, lrs = scheduler.init(jnp.zeros(())), []
    for v in values:
        state = plateau_step(scheduler, state, jnp.float32(v))
        lrs.append(float(state.scale))
    np.testing.assert_allclose(lrs, expected)


def test_task_steps_the_scheduler_once_per_epoch_on_the_val_loss():
    task = BostonTask()
    trainer, data = task.build(task.resolve_static(**{**TINY, "epochs": 12, "patience": 0, "factor": 0.5}))
    curves, _ = jax.jit(make_train(trainer))(jax.random.key(1), {"lr": jnp.float32(0.02)}, data)
    # the lr of epoch e is set by the val losses of epochs 0 .. e-1
    expected = [0.02] + torch_plateau_lrs(np.asarray(curves["val_loss"], np.float64)[:-1], 0.02, 0.5, 0)
    np.testing.assert_allclose(curves["lr"], expected, rtol=1e-6)
    assert curves["lr"][-1] < 0.02  # it did reduce, so the comparison could fail


def test_metrics_use_the_best_validation_parameters_and_match_sklearn(tiny):
    _, _, trainer, data = tiny
    hp = {"lr": jnp.float32(0.01), "momentum": jnp.float32(0.0)}
    state = init_member(trainer, jax.random.key(2), hp, data)
    state, curves = jax.jit(lambda s: run_epochs(trainer, s, hp, data, jnp.int32(0), TINY["epochs"]))(state)
    final = trainer.finish(state.carry, hp, data)
    val = np.asarray(curves["val_loss"])
    assert int(final["best_epoch"]) == val.argmin() + 1
    np.testing.assert_allclose(final["val_mse"], val.min(), rtol=FLOAT32_RTOL)
    # the last parameters play no part: wreck them and nothing changes
    wrecked = {**state.carry, "params": jax.tree.map(jnp.zeros_like, state.carry["params"])}
    np.testing.assert_allclose(trainer.finish(wrecked, hp, data)["test_mse"], final["test_mse"])
    pred, true = np.asarray(final["test_pred"], np.float64), np.asarray(final["test_true"], np.float64)
    np.testing.assert_array_equal(true, data["y_test"][:, 0])
    np.testing.assert_allclose(final["test_mse"], mean_squared_error(true, pred), rtol=FLOAT32_RTOL)
    np.testing.assert_allclose(final["test_mae"], mean_absolute_error(true, pred), rtol=FLOAT32_RTOL)
    np.testing.assert_allclose(final["test_r2"], r2_score(true, pred), rtol=FLOAT32_RTOL)
    assert 0.0 < float(final["test_r2"]) < 1.0  # learnt something, so R^2 is not trivially 0


def test_diverging_member_is_flagged_and_leaves_its_neighbour_alone(tiny):
    _, _, trainer, data = tiny
    both = run_group(trainer, data, [0, 0], {"lr": [0.01, 10.0], "momentum": [0.0, 0.0]}, chunk=4, progress=False)
    alone = run_group(trainer, data, [0], {"lr": [0.01], "momentum": [0.0]}, chunk=4, progress=False)
    assert both.final["status"].tolist() == [MAX_EPOCHS, DIVERGED]
    assert both.final["stop_epoch"][1] < TINY["epochs"]
    for k in ("loss", "val_loss", "lr"):
        np.testing.assert_allclose(both.curves[k][0], alone.curves[k][0], rtol=FLOAT32_RTOL)
    for k in ("test_mse", "test_mae", "test_r2", "test_pred"):
        np.testing.assert_allclose(both.final[k][0], alone.final[k][0], rtol=FLOAT32_RTOL)


@pytest.mark.parametrize("bad", [{"activation": "gelu"}, {"batch_size": 0}, {"factor": 1.5}, {"depth": 1.5}])
def test_bad_static_options_raise_value_error(bad):
    task = BostonTask()
    with pytest.raises(ValueError):
        task.build(task.resolve_static(**{**TINY, **bad}))
