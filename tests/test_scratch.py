"""Lab G's hand-written framework against the library it replaces, and the mnist-scratch task end
to end on tiny synthetic IDX files."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from tiny_data import write_mnist

from jaxlabs import scratch
from jaxlabs.models import MLP
from jaxlabs.sweep import EngineOptions, run_group
from jaxlabs.tasks.scratch import ScratchTask, masked_ce, to_flax
from jaxlabs.train import CONVERGED, MAX_EPOCHS, Trainer, epoch_key

# conv2d sums the same products as XLA's conv in another order: float32 rounding only.
CONV_RTOL, CONV_ATOL = 1e-5, 1e-5
# One forward/backward: hand-written vs autodiff, same math, different summation order.
GRAD_RTOL, GRAD_ATOL = 1e-5, 1e-6
# Scratch vs library over one 20-step epoch from the same initialisation and batches (lr 0.1,
# MomentGD, L2 1e-3; the parameters move by ~0.5). The paths differ in rounding only (x.T @ g vs
# autodiff's dot_general, MomentGD's -lr folded into the velocity vs optax's trace): measured
# 1e-7 at most. Real differences are far larger: L2 left out 4e-3, lr 0.1% off 6e-3, momentum
# 0.89 for 0.9 2.5e-2, another batch order 0.2. 1e-5 sits 100x above the one, 400x below the other.
PATH_ATOL = 1e-5


# ------------------------------------------------------------------------------------ conv2d
@pytest.mark.parametrize("stride,padding,kernel", [
    (1, 0, 3), (1, 1, 3), (2, 1, 3), (2, 0, 3), (1, 2, 5), (2, ((1, 0), (2, 1)), 3), ((2, 1), (0, 1), 1)])
def test_conv2d_matches_lax_conv(stride, padding, kernel):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 9, 8, 3)).astype(np.float32)  # odd height, even width: strides that do not divide
    w = rng.normal(size=(kernel, kernel, 3, 4)).astype(np.float32)
    b = rng.normal(size=(4,)).astype(np.float32)
    s = (stride, stride) if isinstance(stride, int) else stride
    pad = padding if isinstance(padding, tuple) and isinstance(padding[0], tuple) else \
        [(p, p) for p in ((padding, padding) if isinstance(padding, int) else padding)]
    ref = jax.jit(lambda x, w, b: jax.lax.conv_general_dilated(
        x, w, s, pad, dimension_numbers=("NHWC", "HWIO", "NHWC")) + b)(x, w, b)
    out = jax.jit(lambda x, w, b: scratch.conv2d(x, w, b, stride=stride, padding=padding))(x, w, b)
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=CONV_RTOL, atol=CONV_ATOL)


def test_conv2d_gradient_matches_lax_conv():
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=(2, 7, 7, 2)).astype(np.float32), rng.normal(size=(3, 3, 2, 5)).astype(np.float32)

    def ref(x, w):
        return jnp.sum(jnp.sin(jax.lax.conv_general_dilated(x, w, (2, 2), [(1, 1), (1, 1)],
                                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))))

    def ours(x, w):
        return jnp.sum(jnp.sin(scratch.conv2d(x, w, stride=2, padding=1)))

    for g, r in zip(jax.jit(jax.grad(ours, (0, 1)))(x, w), jax.jit(jax.grad(ref, (0, 1)))(x, w)):
        np.testing.assert_allclose(g, r, rtol=CONV_RTOL, atol=CONV_ATOL)


def test_conv2d_rejects_a_kernel_larger_than_the_input():
    with pytest.raises(ValueError, match="larger than the padded input"):
        scratch.conv2d(jnp.zeros((1, 2, 2, 1)), jnp.zeros((3, 3, 1, 1)))


# ------------------------------------------------------------------ forward and backward pass
def _batch(n=12, features=20, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, features)).astype(np.float32), rng.integers(0, classes, n).astype(np.int32)


def _layers(sizes, seed=0):
    """PyTorch-like uniform layers from NumPy (eager jax.random would compile op by op)."""
    rng = np.random.default_rng(seed)
    return [{"w": (rng.uniform(-1, 1, (a, b)) / np.sqrt(a)).astype(np.float32),
             "b": (rng.uniform(-1, 1, b) / np.sqrt(a)).astype(np.float32)} for a, b in zip(sizes[:-1], sizes[1:])]


def test_forward_and_hand_written_gradient_match_flax_optax_reference():
    x, y = _batch()
    mask = np.arange(12) < 9  # a padded last batch: 9 real rows
    layers = _layers((20, 16, 16, 10), seed=3)
    model, l2 = MLP(width=16, depth=2, out=10, activation="relu"), 0.01

    @jax.jit
    def both(layers):
        def reference(params):
            ce = masked_ce(model.apply({"params": params}, x), y, mask)
            return ce + l2 / 2 * sum(jnp.sum(jnp.square(p["kernel"])) for p in params.values())

        logits = scratch.mlp_forward(layers, x)[0]
        loss, grads = scratch.mlp_loss_and_grads(layers, x, y, mask, l2=l2)
        l2_term = l2 / 2 * sum(jnp.sum(jnp.square(p["w"])) for p in layers)  # left out of the returned loss
        plain_ce = optax.softmax_cross_entropy_with_integer_labels(logits[:9], y[:9]).mean()
        return (logits, loss, loss + l2_term, to_flax(grads), plain_ce,
                model.apply({"params": to_flax(layers)}, x), *jax.value_and_grad(reference)(to_flax(layers)))

    logits, loss, loss_l2, grads, plain_ce, ref_logits, ref_loss, ref_grads = both(layers)
    np.testing.assert_allclose(logits, ref_logits, rtol=GRAD_RTOL, atol=GRAD_ATOL)
    np.testing.assert_allclose(loss_l2, ref_loss, rtol=GRAD_RTOL)
    np.testing.assert_allclose(loss, plain_ce, rtol=GRAD_RTOL)
    assert float(loss_l2 - loss) > 1e-3  # the L2 term is really there
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
        np.testing.assert_allclose(got, want, rtol=GRAD_RTOL, atol=GRAD_ATOL)


def test_hand_written_gradient_through_dropout_matches_autodiff():
    x, y = _batch(seed=1)
    layers = _layers((20, 32, 10), seed=4)

    @jax.jit
    def both(layers, key):
        auto = jax.grad(lambda p: scratch.cross_entropy(scratch.mlp_forward(p, x, key, 0.5)[0], y))(layers)
        return scratch.mlp_loss_and_grads(layers, x, y, key=key, rate=0.5)[1], auto

    grads, auto = both(layers, jax.random.key(5))
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(auto)):
        np.testing.assert_allclose(got, want, rtol=GRAD_RTOL, atol=GRAD_ATOL)


def test_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 0.0]], np.float32)
    loss = jax.jit(scratch.cross_entropy)(logits, np.array([0, 0]))
    np.testing.assert_allclose(loss, 1e4 / 2, rtol=1e-6)


def test_dropout_rate_can_be_traced_and_vmapped():
    rates = np.array([0.0, 0.2, 0.5], np.float32)
    x = np.ones((4000,), np.float32)
    y, _ = jax.jit(jax.vmap(lambda r: scratch.dropout(jax.random.key(0), x, r)))(rates)
    y = np.asarray(y)
    np.testing.assert_array_equal(y[0], x)  # rate 0 is the identity
    np.testing.assert_allclose(np.mean(y == 0, axis=1), rates, atol=0.03)  # dropped fraction
    np.testing.assert_allclose(np.mean(y, axis=1), 1.0, atol=0.05)  # inverted scaling keeps the mean
    np.testing.assert_allclose(y[2][y[2] > 0], 2.0)


def test_init_schemes_have_the_stated_scales():
    init = jax.jit(scratch.init_linear, static_argnums=(1, 2, 3))
    pt = jax.tree.map(np.asarray, init(jax.random.key(0), 400, 300, "pytorch"))
    assert 0.049 < np.abs(pt["w"]).max() <= 1 / 20 and np.abs(pt["b"]).max() <= 1 / 20 and pt["b"].std() > 0.02
    xn = jax.tree.map(np.asarray, init(jax.random.key(0), 400, 300, "xavier_normal"))
    assert abs(xn["w"].std() - (2 / 700) ** 0.5) < 1e-3 and not xn["b"].any()
    with pytest.raises(ValueError, match="unknown init scheme"):
        scratch.init_linear(jax.random.key(0), 2, 2, "he")


# ------------------------------------------------------------------------------- optimizers
def _params_and_grads(steps):
    """Small layers and `steps` different gradient trees for them."""
    layers = _layers((6, 5, 3))
    return layers, [jax.tree.map(lambda p: np.cos(p * 7.0 + i).astype(np.float32), layers) for i in range(steps)]


def test_sgd_step_equals_optax_sgd_exactly():
    params, (grads,) = _params_and_grads(1)

    @jax.jit
    def both(params, grads):
        updates, _ = optax.sgd(0.05).update(grads, optax.sgd(0.05).init(params), params)
        return scratch.sgd(params, grads, 0.05), optax.apply_updates(params, updates)

    ours, theirs = both(params, grads)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
        np.testing.assert_array_equal(a, b)  # p - lr g and p + (-lr g): the same float operation


def test_momentgd_equals_optax_sgd_with_momentum():
    """v <- mu v - lr g; p <- p + v equals optax's trace t <- mu t + g; p <- p - lr t with
    v = -lr t at a constant lr: checked over 5 steps with a new gradient each step."""
    lr, mu = 0.05, 0.9
    params, grad_steps = _params_and_grads(5)

    @jax.jit
    def both(params, grad_steps):
        tx = optax.sgd(lr, momentum=mu)
        ours, velocity, theirs, state = params, jax.tree.map(jnp.zeros_like, params), params, tx.init(params)
        for grads in grad_steps:
            ours, velocity = scratch.momentgd(ours, grads, velocity, lr, mu)
            updates, state = tx.update(grads, state, theirs)
            theirs = optax.apply_updates(theirs, updates)
        return ours, velocity, theirs, state[0].trace  # optax's TraceState

    ours, velocity, theirs, trace = both(params, grad_steps)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    for v, t in zip(jax.tree.leaves(velocity), jax.tree.leaves(trace)):
        np.testing.assert_allclose(v, -lr * np.asarray(t), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("optimizer", ["sgd", "momentgd"])
def test_parameters_really_change_after_an_update(optimizer):
    """The report's own check (its first run trained nothing: the optimizer never wrote back)."""
    x, y = _batch(features=6, classes=3)
    layers, _ = _params_and_grads(0)

    @jax.jit
    def update(lr):
        _, grads = scratch.mlp_loss_and_grads(layers, x, y)
        if optimizer == "sgd":
            return scratch.sgd(layers, grads, lr)
        return scratch.momentgd(layers, grads, jax.tree.map(jnp.zeros_like, layers), lr, 0.9)[0]

    for before, after in zip(jax.tree.leaves(layers), jax.tree.leaves(update(0.01))):
        assert np.abs(np.asarray(after) - before).max() > 0  # every weight matrix and bias vector moved
    for before, after in zip(jax.tree.leaves(layers), jax.tree.leaves(update(0.0))):
        np.testing.assert_array_equal(after, before)  # and the check can fail


# --------------------------------------------------------------------------- early stopping
def test_early_stopping_fires_at_the_right_epoch():
    # an improvement needs value <= best - 0.05: .97 and .96 are too small, .90 resets the count
    values = [1.0, 0.97, 0.96, 0.99, 0.90, 0.91, 0.88, 0.92, 0.5]
    update = jax.jit(scratch.early_stop_update)
    state, fired = scratch.early_stop_init(), []
    for v in values:
        state, stop = update(state, np.float32(v), 3.0, 0.05)
        fired.append(bool(stop))
    # bad counts: 0 (first), 1, 2, 3 -> fires at index 3; .90 improves (reset), .91 1, .88 2, .92 3
    assert fired == [False, False, False, True, False, False, False, True, False]
    state, stop = update(scratch.EarlyStop(np.float32(1.0), np.float32(50.0)), np.float32(2.0), 0.0, 0.05)
    assert not bool(stop)  # patience 0: off


def test_early_stopping_is_per_member_in_the_engine():
    """Members with patience 1, 2, 0 (off) on the same constructed validation curve."""
    curve = jnp.array([1.0, 0.8, 0.9, 0.85, 0.7, 0.75, 0.76, 0.74])

    def init(key, hp, d, tx):
        return {"es": scratch.early_stop_init()}

    def epoch(carry, hp, d, e, key, tx):
        es, stop = scratch.early_stop_update(carry["es"], curve[e], hp["patience"], 0.0)
        return {"es": es}, {"loss": curve[e]}, stop

    r = run_group(Trainer(init, epoch, lambda c, hp, d: {"best": c["es"].best}, max_epochs=8), None,
                  [0, 0, 0], {"patience": [1.0, 2.0, 0.0]}, progress=False, options=EngineOptions(chunk=3))
    # patience 1: 0.9 at epoch 3 is worse than 0.8 -> stops there; patience 2: 0.9, 0.85 -> epoch 4
    assert list(r.final["stop_epoch"]) == [3, 4, 8]
    assert list(r.final["status"]) == [CONVERGED, CONVERGED, MAX_EPOCHS]


# ------------------------------------------------------------------------- the task, end to end
@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
    """200 training and 50 test 8x8 images with a learnable class pattern (tests/tiny_data.py)."""
    folder = tmp_path_factory.mktemp("mnist")
    write_mnist(folder, n_train=200, n_test=50, size=8, learnable=True)
    return str(folder)


def _build(idx_dir, **kw):
    task = ScratchTask()
    # 160 train rows / batch 8 = 20 steps per epoch
    static = task.resolve_static(**{"data_dir": idx_dir, "val_size": 40, "batch_size": 8, "width": 16, **kw})
    return task, static, *task.build(static)


def _hp(**kw):
    return {k: jnp.float32(v) for k, v in {**ScratchTask.traced_defaults, **kw}.items()}


def test_scratch_path_follows_the_library_path(idx_dir):
    """Same seed -> same initial parameters and batches; 20 MomentGD steps with L2 on: the same
    parameters to PATH_ATOL and the same logged losses. (Plain SGD steps are equal exactly:
    test_sgd_step_equals_optax_sgd_exactly.) The library's SGD + dropout branch trains alongside."""
    hp = _hp(lr=0.1, l2=1e-3)
    builds = {"scratch": dict(path="scratch"), "library": dict(path="library"),
              "library_sgd_dropout": dict(path="library", optimizer="sgd", dropout=0.1)}
    trainers = {name: _build(idx_dir, **{"optimizer": "momentgd", "initializer": "pytorch", **kw})[2]
                for name, kw in builds.items()}
    data = _build(idx_dir)[3]  # the same arrays for every build: the same files

    @jax.jit  # every variant in one program: one compile
    def run(key):
        runs = {}
        for name, trainer in trainers.items():
            tx = trainer.optimizer(hp) if trainer.optimizer else None
            start = trainer.init(key, hp, data, tx)
            end, logs, _ = trainer.epoch(start, hp, data, jnp.int32(0), epoch_key(key, 0), tx)
            if "dropout" in name:
                end = trainer.epoch(end, hp, data, jnp.int32(1), epoch_key(key, 1), tx)[0]
            as_flax = to_flax if name == "scratch" else (lambda p: p)
            runs[name] = (as_flax(start["params"]), as_flax(end["params"]), logs, end["step"],
                          trainer.finish(end, hp, data))
        return runs

    runs = run(jax.random.key(7))
    _, _, logs, steps, final = runs.pop("library_sgd_dropout")
    assert int(steps) == 40 and final["test_acc"] > logs["test_acc"] + 0.3  # 2 epochs: it learns
    (s0, s1, slog, ssteps, *_), (l0, l1, llog, lsteps, *_) = runs["scratch"], runs["library"]
    assert ssteps == lsteps == 20
    for a, b in zip(jax.tree.leaves(s0), jax.tree.leaves(l0)):
        np.testing.assert_array_equal(a, b)  # the same initialisation
    moved = max(np.abs(np.asarray(a) - b).max() for a, b in zip(jax.tree.leaves(s1), jax.tree.leaves(s0)))
    assert moved > 100 * PATH_ATOL  # trained far more than the tolerance
    for a, b in zip(jax.tree.leaves(s1), jax.tree.leaves(l1)):
        np.testing.assert_allclose(a, b, rtol=0, atol=PATH_ATOL)
    for k in ("loss", "val_loss", "test_acc"):
        np.testing.assert_allclose(slog[k], llog[k], rtol=1e-5)


def _members(**columns):
    """Traced hyperparameters per member: the task's defaults, overridden column by column."""
    n = len(next(iter(columns.values())))
    return {**{k: [v] * n for k, v in ScratchTask.traced_defaults.items()}, **columns}


def test_task_end_to_end_with_early_stopping_per_member(idx_dir):
    """Four members in one program: two learn (seed 0 with L2, seed 1); two have lr 0, so their
    validation loss never improves after the first epoch and patience p stops them at epoch
    p + 1 (1-based), the update of that epoch discarded."""
    task, static, trainer, data = _build(idx_dir, epochs=4, dropout=0.1)
    hp = _members(lr=[0.1, 0.1, 0.0, 0.0], l2=[1e-4, 0.0, 0.0, 0.0], patience=[0.0, 0.0, 2.0, 3.0])
    r = run_group(trainer, data, [0, 1, 0, 0], hp, progress=False, options=EngineOptions(chunk=task.chunk))
    assert r.curves["loss"].shape == (4, 4) and r.curves["test_acc"].shape == (4, 4)
    assert list(r.final["status"]) == [MAX_EPOCHS, MAX_EPOCHS, CONVERGED, CONVERGED]
    assert list(r.final["stop_epoch"]) == [4, 4, 3, 4]
    assert list(r.final["steps"]) == [80, 80, 40, 60]  # 20 steps per epoch actually taken
    assert (r.final["test_acc"][:2] > 0.9).all()  # learned the separable classes
    assert r.final["test_loss"][0] != r.final["test_loss"][1]  # the seeds differ
    assert (r.curves["update_norm"][:2] > 0).all() and not r.curves["update_norm"][2:].any()  # lr 0: frozen
    np.testing.assert_allclose(r.final["test_acc"][2:], r.curves["test_acc"][2:, 0])


@pytest.mark.parametrize("option,value,message", [
    ("path", "torch", "path must be one of"), ("optimizer", "adam", "optimizer must be one of"),
    ("dropout", 1.0, r"dropout must be a number in \[0, 1\)"), ("batch_size", 0, "batch_size must be an integer >= 1"),
    ("stop_on", "loss", "stop_on must be one of")])
def test_bad_static_options_are_one_line_value_errors(option, value, message):
    task = ScratchTask()
    with pytest.raises(ValueError, match=message):
        task.resolve_static(**{option: value})


def test_val_size_larger_than_the_data_is_a_value_error(idx_dir):
    with pytest.raises(ValueError, match="val_size must be in"):
        _build(idx_dir, val_size=500)
