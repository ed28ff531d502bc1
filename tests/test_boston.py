"""Lab C task: DataLoader-style masked batches, train-only standardisation, PyTorch's
ReduceLROnPlateau stepped once per epoch, best-validation parameters, sklearn's metrics, and a
diverging member that leaves its neighbours alone. Real Boston data (it ships with `boston`)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import train_test_split

from jaxlabs.data import load_boston
from jaxlabs.models import MLP
from jaxlabs.sweep import EngineOptions, run_group
from jaxlabs.data.batches import batch_order, padded_batches
from jaxlabs.tasks.boston import BostonTask, boston_splits, plateau_scheduler, plateau_step
from jaxlabs.train import DIVERGED, MAX_EPOCHS, epoch_key, make_train

# float32 throughout: a vmapped member and the same member alone, or a padded batch and its
# unpadded twin, sum in a different order, so they agree to rounding amplified by a few SGD steps.
FLOAT32_RTOL = 1e-5
# 336 train rows: 10 full batches + 16. Patience 0 so that 6 epochs see the lr cut (here: val losses
# 301, 197, 22.2, 48.8, 14.0, 28.8 at lr 0.01, seed 4) and the best epoch is not the last.
TINY = {"width": 8, "depth": 2, "batch_size": 32, "epochs": 6, "patience": 0, "factor": 0.5}
SEED = 4
SANE = {"lr": 0.01, "momentum": 0.0}


@pytest.fixture(scope="module")
def tiny():
    task = BostonTask()
    static = task.resolve_static(**TINY)
    trainer, data = task.build(static)
    return static, trainer, data


@pytest.fixture(scope="module")
def alone(tiny):
    """(curves, final) of the sane member trained alone, all epochs in one scan."""
    _, trainer, data = tiny
    return jax.jit(make_train(trainer))(jax.random.key(SEED), {k: jnp.float32(v) for k, v in SANE.items()}, data)


def test_batches_are_a_permutation_cut_like_a_dataloader():
    idx, mask = padded_batches(*batch_order(jax.random.key(3), 336, 32))
    assert idx.shape == mask.shape == (11, 32)
    assert mask[:10].all() and int(mask[10].sum()) == 336 - 10 * 32  # only the last batch is short
    assert sorted(np.asarray(idx)[np.asarray(mask)].tolist()) == list(range(336))
    other, _ = padded_batches(*batch_order(jax.random.key(4), 336, 32))
    assert not np.array_equal(idx, other)  # the order depends on the key


def test_masked_epoch_equals_sgd_over_the_unpadded_batches(tiny, alone):
    """Epoch 1 of the task = plain SGD over the same shuffled batches, the last one 16 rows."""
    static, trainer, data = tiny
    carry = trainer.init(jax.random.key(SEED), SANE, data, trainer.optimizer(SANE))
    shuffle_key = epoch_key(jax.random.key(SEED), 0)  # epoch 0's key: the task shuffles with it
    idx, mask = map(np.asarray, padded_batches(*batch_order(shuffle_key, 336, static["batch_size"])))
    model = MLP(width=8, depth=2, out=1, activation="relu")

    def mse(p, x, y):
        return jnp.mean(jnp.square(model.apply({"params": p}, x) - y))

    @jax.jit
    def sgd_step(p, x, y):  # torch.optim.SGD(lr=0.01) on one batch
        loss, grads = jax.value_and_grad(mse)(p, x, y)
        return jax.tree.map(lambda w, g: w - SANE["lr"] * g, p, grads), loss

    params, losses, sizes = carry["params"], [], []
    for rows in (r[m] for r, m in zip(idx, mask)):
        params, loss = sgd_step(params, data["x_train"][rows], data["y_train"][rows])
        losses.append(float(loss)), sizes.append(len(rows))
    assert sizes[-1] == 16
    curves, _ = alone
    np.testing.assert_allclose(curves["loss"][0], np.dot(losses, sizes) / 336, rtol=FLOAT32_RTOL)
    np.testing.assert_allclose(curves["val_loss"][0], mse(params, data["x_val"], data["y_val"]), rtol=FLOAT32_RTOL)


def test_split_is_the_reports_and_standardised_with_train_statistics_only():
    x, y = load_boston()
    rest, test = train_test_split(np.arange(506), test_size=1 / 6, random_state=42)
    train, val = train_test_split(rest, test_size=0.2, random_state=42)
    d = boston_splits(42)
    assert d["x_train"].shape == (336, 13) and d["x_val"].shape == (85, 13) and d["x_test"].shape == (85, 13)
    # the report's test rows: each of its MSE / (1 - R^2) pairs gives var(y_test) = 72.71
    np.testing.assert_allclose(d["y_test"].var(), 6.5521 / (1 - 0.9099), rtol=1e-3)
    np.testing.assert_array_equal(d["y_test"][:, 0], y[test])  # targets stay in $1000s
    mean, std = x[train].mean(0), x[train].std(0)
    np.testing.assert_allclose(d["x_train"].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(d["x_val"], (x[val] - mean) / std, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(d["x_test"], (x[test] - mean) / std, rtol=1e-4, atol=1e-5)
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
    step = jax.jit(lambda state, v: plateau_step(scheduler, state, v))
    state, lrs = scheduler.init(jnp.zeros(())), []
    for v in values:
        state = step(state, jnp.float32(v))
        lrs.append(float(state.scale))
    np.testing.assert_allclose(lrs, expected)


def test_task_steps_the_scheduler_once_per_epoch_on_the_val_loss(alone):
    curves, _ = alone
    # the lr of epoch e is set by the val losses of epochs 0 .. e-1
    expected = [SANE["lr"]] + torch_plateau_lrs(np.asarray(curves["val_loss"], np.float64)[:-1], SANE["lr"], 0.5, 0)
    np.testing.assert_allclose(curves["lr"], expected, rtol=1e-6)
    assert curves["lr"][-1] < SANE["lr"]  # it did reduce, so the comparison could fail


def test_metrics_use_the_best_validation_parameters_and_match_sklearn(tiny, alone):
    _, trainer, data = tiny
    curves, final = alone
    val = np.asarray(curves["val_loss"])
    assert int(final["best_epoch"]) == val.argmin() + 1 < TINY["epochs"]  # not simply the last epoch
    np.testing.assert_allclose(final["val_mse"], val.min(), rtol=FLOAT32_RTOL)
    pred, true = np.asarray(final["test_pred"], np.float64), np.asarray(final["test_true"], np.float64)
    np.testing.assert_array_equal(true, data["y_test"][:, 0])
    np.testing.assert_allclose(final["test_mse"], mean_squared_error(true, pred), rtol=FLOAT32_RTOL)
    np.testing.assert_allclose(final["test_mae"], mean_absolute_error(true, pred), rtol=FLOAT32_RTOL)
    np.testing.assert_allclose(final["test_r2"], r2_score(true, pred), rtol=FLOAT32_RTOL)
    assert 0.0 < float(final["test_r2"]) < 1.0  # learnt something, so R^2 is not trivially 0
    # the engine keeps the checkpoint of the parameters; the trainer declares it on the val loss
    assert trainer.checkpoint.metric == "val_loss" and not trainer.checkpoint.higher
    assert trainer.checkpoint.keys == ("params",)


def test_diverging_member_is_flagged_and_leaves_its_neighbour_alone(tiny, alone):
    _, trainer, data = tiny
    both = run_group(trainer, data, [SEED, SEED], {"lr": [SANE["lr"], 10.0], "momentum": [0.0, 0.0]}, progress=False, options=EngineOptions(chunk=4))
    assert both.final["status"].tolist() == [MAX_EPOCHS, DIVERGED]
    assert both.final["stop_epoch"][1] < TINY["epochs"]
    assert both.final["best_epoch"][1] < both.final["stop_epoch"][1]  # its checkpoint predates the NaN
    curves, final = alone
    for k in ("loss", "val_loss", "lr"):
        np.testing.assert_allclose(both.curves[k][0], curves[k], rtol=FLOAT32_RTOL)
    for k in ("test_mse", "test_mae", "test_r2", "test_pred"):
        np.testing.assert_allclose(both.final[k][0], final[k], rtol=FLOAT32_RTOL)


@pytest.mark.parametrize("bad", [{"activation": "gelu"}, {"batch_size": 0}, {"factor": 1.5}, {"depth": 1.5}])
def test_bad_static_options_raise_value_error(bad):
    task = BostonTask()
    with pytest.raises(ValueError, match=next(iter(bad))):
        task.resolve_static(**{**TINY, **bad})
