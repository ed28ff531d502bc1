"""Numeric parity with PyTorch, against the references ``tests/make_references.py`` wrote with
torch 2.13 (CPU, float32). These tests only read ``tests/reference/*.npz``: torch is not needed.

Every PyTorch semantic that differs from the Flax/Optax default is pinned twice: jaxlabs matches the
reference, and the Flax/Optax default it replaces does *not* (so nobody "simplifies" it away).
"""
from __future__ import annotations

import functools
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen as nn
from flax import traverse_util

from jaxlabs import from_torch
from jaxlabs.models import CNN, MLP, BatchNorm, Conv, Dense, ResNet20
from jaxlabs.tasks import get_task
from jaxlabs import optim
from jaxlabs.tasks import fit
from jaxlabs.tasks.fit import make_optimizer, mse
from jaxlabs.interop import TorchImportError
from jaxlabs.optim import (cross_entropy, mse_loss, multi_margin_loss, reduce_lr_on_plateau, step_schedule,
                           torch_adam, torch_sgd)
from jaxlabs.train import make_train

# Tolerances. Comparisons are |jax - torch| <= rtol * (|torch| + max|torch|) per array (see
# assert_close): relative per element, with a floor at the array's own scale so entries that cancel
# to ~0 are judged at the precision of the sums that produced them.
# float32 has eps 1.2e-7; a forward pass sums tens to hundreds of products in another order than
# PyTorch's kernels (oneDNN convolutions, blocked matmuls): measured <= 6e-7, "about 1e-5".
FORWARD_RTOL = 1e-5
# Backward passes also sum over the batch and spatial positions, and train-mode BatchNorm's backward
# subtracts means (cancellation): measured <= 1.4e-6.
GRAD_RTOL = 2e-5
# ResNet20: 19 convolutions and BatchNorms deep, rounding compounds layer by layer: measured 2.8e-6.
RESNET_RTOL = 5e-5
# Losses: one reduction over at most 160 terms: measured 7e-8.
LOSS_RTOL = 5e-6
# 24-40 optimizer steps: each step's rounding feeds the next (tanh model, momentum, Adam dividing by
# sqrt(v)): measured <= 2e-7 (2e-6 for optax.adam's float32 bias correction), while every wrong
# semantic checked below is >= 4e-3 off.
TRAJ_RTOL = 1e-5
# A learning rate is a product of a few float32 factors: measured 7e-8.
LR_RTOL = 1e-6
# The BatchNorm CNN trained 4 SGD steps: gradients through batch statistics, then momentum:
# measured 6e-7.
BN_STEPS_RTOL = 2e-5
# Lab A, 200 full-batch Adam epochs of a 4-layer SiLU MLP on 1600 points, loss per epoch (plain
# relative error). The reference run is well conditioned (its float32 and float64 PyTorch curves,
# both stored, agree to 2e-6; float64 jaxlabs and float64 PyTorch agree to 1e-12, checked by hand).
# fit.make_optimizer("adam") is torch_adam, whose bias corrections are as exact as PyTorch's float64
# ones: measured 2e-6, tolerance 2e-5. (optax.adam computes 1 - 0.999**t from 0.999 rounded to
# float32, 1.3e-5 off at step 1, which the run carries to 3e-4: pinned below as a real difference.)
LAB_A_RTOL = 2e-5
# Default init: how many standard errors a sample statistic may be from its expectation.
INIT_SIGMAS = 6.0

REF = Path(__file__).parent / "reference"
CNN_SHAPE = dict(depth=3, kernel=5, channels=4, hidden=16, classes=10)  # as make_references.CNN_SHAPE


@functools.cache
def load(name: str) -> dict[str, np.ndarray]:
    with np.load(REF / name) as f:
        return {k: f[k] for k in f.files}


def sub(arrays: dict, prefix: str) -> dict:
    """Entries under ``prefix``, the prefix removed (e.g. a state_dict from ``w/``)."""
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


def nhwc(x):
    return np.asarray(x).transpose(0, 2, 3, 1)


def error(actual, expected) -> float:
    """Largest |actual - expected| / (|expected| + max|expected|): what the tolerances bound."""
    a, e = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert a.shape == e.shape, (a.shape, e.shape)
    return float(np.max(np.abs(a - e) / (np.abs(e) + np.abs(e).max() + 1e-30)))


def assert_close(actual, expected, rtol, what=""):
    err = error(actual, expected)
    assert err <= rtol, f"{what}: relative error {err:.3g} > {rtol:g}"


def assert_rel(actual, expected, rtol, what=""):
    """Plain relative error, for positive scalars and curves (losses, learning rates)."""
    a, e = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert a.shape == e.shape, (a.shape, e.shape)
    err = float(np.max(np.abs(a - e) / np.abs(e)))
    assert err <= rtol, f"{what}: relative error {err:.3g} > {rtol:g}"


def assert_tree_close(actual, expected, rtol, what=""):
    fa, fe = traverse_util.flatten_dict(actual, sep="/"), traverse_util.flatten_dict(expected, sep="/")
    assert fa.keys() == fe.keys()
    for k in fe:
        assert_close(fa[k], fe[k], rtol, f"{what} {k}")


def torch_grads(model, weights: dict, grads: dict):
    """PyTorch's gradients in Flax layout: a layout conversion is linear, so from_torch applies."""
    return from_torch(model, {**weights, **grads})["params"]


def forward_and_grads(model, variables, x, r, train):
    """Output, parameter and input gradients of sum(out * r), updated batch_stats (one jit)."""

    @jax.jit
    def run(variables, x, r):
        def f(params, x):
            return model.apply({**variables, "params": params}, x, train=train, mutable=["batch_stats"])

        out, vjp, state = jax.vjp(f, variables["params"], x, has_aux=True)
        return out, *vjp(r), state

    return run(variables, jnp.asarray(x), jnp.asarray(r))


# ------------------------------------------------------------------------------------- models
def test_mlp_forward_and_grads_match_lab_a_feedforwardnn():
    d = load("mlp.npz")
    model = MLP(width=16, depth=3, out=3, activation="silu")
    weights = sub(d, "w/")
    out, grads, dx, _ = forward_and_grads(model, from_torch(model, weights), d["x"], d["r"], train=False)
    assert_close(out, d["out"], FORWARD_RTOL, "out")
    assert_close(dx, d["dx"], GRAD_RTOL, "dx")
    assert_tree_close(grads, torch_grads(model, weights, sub(d, "grad/")), GRAD_RTOL, "grad")


@pytest.mark.parametrize("case", ["plain", "bn_eval", "bn_train"])
def test_cnn_forward_grads_and_running_stats(case):
    # plain: no BatchNorm, dropout 0.5 in eval mode (identity); bn_eval: running statistics used;
    # bn_train: batch statistics used and the running ones updated (dropout 0: PyTorch's mask is random)
    d = load("cnn.npz")
    train = case == "bn_train"
    model = CNN(**CNN_SHAPE, batch_norm=case != "plain", dropout=0.0 if train else 0.5)
    weights = sub(d, f"{case}/w/")
    variables = from_torch(model, weights)
    out, grads, dx, state = forward_and_grads(model, variables, nhwc(d["x"]), d["r"], train)
    assert_close(out, d[f"{case}/out"], FORWARD_RTOL, "out")
    assert_close(dx, nhwc(d[f"{case}/dx"]), GRAD_RTOL, "dx")
    expected = torch_grads(model, weights, sub(d, f"{case}/grad/"))
    if train:  # a bias before train-mode BatchNorm cancels: its gradient is 0 up to rounding, both sides
        for i in range(model.depth):
            scale = np.abs(expected[f"conv_{i}"]["kernel"]).max()
            for g in (grads[f"conv_{i}"].pop("bias"), expected[f"conv_{i}"].pop("bias")):
                assert np.abs(g).max() <= GRAD_RTOL * scale
    assert_tree_close(grads, expected, GRAD_RTOL, "grad")
    if case == "plain":
        assert "batch_stats" not in variables
    elif train:
        expected = from_torch(model, {**weights, **sub(d, f"{case}/state/")})["batch_stats"]
        assert_tree_close(state["batch_stats"], expected, FORWARD_RTOL, "running stats")
        assert error(state["batch_stats"]["bn_0"]["var"], variables["batch_stats"]["bn_0"]["var"]) > 1e-2
    else:
        assert_tree_close(state["batch_stats"], variables["batch_stats"], 0.0, "eval leaves stats alone")


def test_resnet20_eval_forward():
    d = load("resnet20.npz")
    model = ResNet20()
    out = jax.jit(lambda v, x: model.apply(v, x, train=False))(from_torch(model, sub(d, "w/")), nhwc(d["x"]))
    assert_close(out, d["eval/out"], RESNET_RTOL, "eval out")


def test_resnet20_train_forward_grads_and_running_stats():
    d = load("resnet20.npz")
    model = ResNet20()
    variables = from_torch(model, sub(d, "w/"))
    out, grads, dx, state = forward_and_grads(model, variables, nhwc(d["x"]), d["r"], train=True)
    assert_close(out, d["train/out"], RESNET_RTOL, "train out")
    assert error(out, d["eval/out"]) > 1e-2  # train and eval really differ
    weights = sub(d, "w/")
    assert_tree_close(grads, torch_grads(model, weights, sub(d, "train/grad/")), RESNET_RTOL, "grad")
    expected = from_torch(model, {**weights, **sub(d, "train/state/")})["batch_stats"]
    assert_tree_close(state["batch_stats"], expected, RESNET_RTOL, "running stats")


def test_resnet20_has_the_papers_parameter_count():
    params = from_torch(ResNet20(), sub(load("resnet20.npz"), "w/"))["params"]
    assert sum(p.size for p in jax.tree.leaves(params)) == 269_722


# ---------------------------------------------------------------------------------- BatchNorm
def test_batchnorm_running_stats_follow_pytorch_over_several_steps():
    d = sub(load("batchnorm.npz"), "bn/")
    variables = {"params": {"scale": d["weight"], "bias": d["bias"]},
                 "batch_stats": {"mean": np.zeros(3, np.float32), "var": np.ones(3, np.float32)}}
    bn = BatchNorm()
    for i, x in enumerate(d["xs"]):
        out, state = bn.apply(variables, nhwc(x), train=True, mutable=["batch_stats"])
        variables = {**variables, **state}
        assert_close(out, nhwc(d["outs"][i]), FORWARD_RTOL, f"step {i} out")
        assert_close(state["batch_stats"]["mean"], d["running_mean"][i], FORWARD_RTOL, f"step {i} mean")
        assert_close(state["batch_stats"]["var"], d["running_var"][i], FORWARD_RTOL, f"step {i} var")
    assert_close(bn.apply(variables, nhwc(d["xs"][0]), train=False), nhwc(d["eval_out"]), FORWARD_RTOL)


def test_flax_batchnorm_default_is_not_pytorchs():
    # Flax's momentum 0.9 is PyTorch's 0.1 (same running mean), but Flax keeps the biased variance.
    d = sub(load("batchnorm.npz"), "bn/")
    bn = nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5)
    variables = bn.init(jax.random.key(0), nhwc(d["xs"][0]))
    for x in d["xs"]:
        _, state = bn.apply(variables, nhwc(x), mutable=["batch_stats"])
        variables = {**variables, **state}
    assert_close(variables["batch_stats"]["mean"], d["running_mean"][-1], FORWARD_RTOL)
    assert error(variables["batch_stats"]["var"], d["running_var"][-1]) > 1e-3  # n/(n-1) = 100/99
    flax99 = nn.BatchNorm(use_running_average=False, momentum=0.99, epsilon=1e-5)
    _, state = flax99.apply(flax99.init(jax.random.key(0), nhwc(d["xs"][0])), nhwc(d["xs"][0]),
                            mutable=["batch_stats"])
    assert error(state["batch_stats"]["mean"], d["running_mean"][0]) > 0.3  # Flax's own default


def test_batchnorm_cnn_training_steps_match():
    d = load("batchnorm.npz")
    model = CNN(**CNN_SHAPE, batch_norm=True, dropout=0.0)
    weights = sub(d, "steps/w/")
    variables = from_torch(model, weights)
    opt = torch_sgd(0.05, momentum=0.9)

    @jax.jit
    def step(params, batch_stats, opt_state, x, y):
        def loss_fn(p):
            out, state = model.apply({"params": p, "batch_stats": batch_stats}, x, train=True,
                                     mutable=["batch_stats"])
            return cross_entropy(out, y), state["batch_stats"]

        (loss, batch_stats), g = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = opt.update(g, opt_state, params)
        return optax.apply_updates(params, updates), batch_stats, opt_state, loss

    params, batch_stats = variables["params"], variables["batch_stats"]
    opt_state = opt.init(params)
    for i, (x, y) in enumerate(zip(d["steps/xs"], d["steps/ys"])):
        params, batch_stats, opt_state, loss = step(params, batch_stats, opt_state, nhwc(x), y)
        assert_rel(loss, d[f"steps/loss/{i}"], BN_STEPS_RTOL, f"step {i} loss")
        expected = from_torch(model, {**weights, **sub(d, f"steps/state/{i}/")})["batch_stats"]
        assert_tree_close(batch_stats, expected, BN_STEPS_RTOL, f"step {i} running stats")
    expected = from_torch(model, {**weights, **sub(d, "steps/final/")})["params"]
    assert_tree_close(params, expected, BN_STEPS_RTOL, "final params")


# ------------------------------------------------------------------------------ conv and init
@pytest.mark.parametrize("name, features, kernel, strides", [("conv_s2", 5, 3, 2), ("conv_k5", 4, 5, 1)])
def test_conv_padding_matches_pytorch(name, features, kernel, strides):
    d = load("layers.npz")
    conv = Conv(features, kernel, strides)
    w = sub(d, f"{name}/w/")
    params = {"kernel": w["weight"].astype(np.float32).transpose(2, 3, 1, 0), "bias": w["bias"].astype(np.float32)}
    x, expected = nhwc(d[f"{name}/x"]), nhwc(d[f"{name}/out"])
    assert_close(conv.apply({"params": params}, x), expected, FORWARD_RTOL, name)
    if strides == 2:  # Flax's "SAME" pads (0, 1) here, PyTorch (1, 1)
        flax_same = jax.lax.conv_general_dilated(x, params["kernel"], (2, 2), "SAME",
                                                 dimension_numbers=("NHWC", "HWIO", "NHWC")) + params["bias"]
        assert error(flax_same, expected) > 1e-2


def _check_uniform(values, bound, what):
    """values ~ U(-bound, bound): max |v| at the bound, mean 0, variance bound^2 / 3."""
    v = np.asarray(values, np.float64).ravel()
    n = v.size
    assert np.abs(v).max() <= bound * (1 + 1e-6), what
    assert np.abs(v).max() >= bound * (1 - 21 / n), what  # P(all n below) = (1 - 21/n)^n < 1e-9
    assert abs(v.mean()) <= INIT_SIGMAS * bound / math.sqrt(3 * n), what
    # Var(v^2) / E[v^2]^2 = 0.8 for a uniform: relative standard error sqrt(0.8 / n)
    assert abs(v.var() / (bound**2 / 3) - 1) <= INIT_SIGMAS * math.sqrt(0.8 / n), what


@pytest.mark.parametrize("layer, fan_in, x", [
    ("linear", 256, np.zeros((1, 256), np.float32)),      # 1M kernel draws, 4096 bias draws
    ("conv", 128 * 9, np.zeros((1, 3, 3, 128), np.float32)),  # 295k kernel draws, 256 bias draws
])
def test_default_init_has_pytorchs_bounds_and_variance(layer, fan_in, x):
    d = sub(load("layers.npz"), f"init/{layer}/")
    module = Dense(4096) if layer == "linear" else Conv(256, 3)
    params = module.init(jax.random.key(0), x)["params"]
    bound = 1 / math.sqrt(fan_in)  # kaiming_uniform_(a=sqrt(5)) and the bias rule both give this
    for ours, theirs in (("kernel", "weight"), ("bias", "bias")):
        t_max, t_mean, t_var, t_n = d[theirs]
        assert params[ours].size == t_n
        assert abs(t_max / bound - 1) <= 21 / t_n  # PyTorch's own draw confirms the formula
        assert abs(t_var / (bound**2 / 3) - 1) <= INIT_SIGMAS * math.sqrt(0.8 / t_n)
        _check_uniform(params[ours], bound, f"{layer} {ours}")


# ----------------------------------------------------------------------------------- losses
def test_losses_and_their_gradients_match():
    d = load("losses.npz")
    labels = jnp.asarray(d["labels"])
    cases = {"mse": (mse_loss, d["pred"], d["target"]), "cross_entropy": (cross_entropy, d["logits"], labels),
             "multi_margin": (multi_margin_loss, d["logits"], labels),
             "multi_margin_0.5": (functools.partial(multi_margin_loss, margin=0.5), d["logits"], labels)}
    for name, (fn, inp, target) in cases.items():
        value, grad = jax.jit(jax.value_and_grad(fn))(jnp.asarray(inp), target)
        assert_close(value, d[f"{name}/value"], LOSS_RTOL, name)
        assert_close(grad, d[f"{name}/grad"], LOSS_RTOL, f"{name} grad")
    assert_close(mse(d["pred"], d["target"]), d["mse/value"], LOSS_RTOL, "jaxlabs.tasks.fit.mse")


def test_multi_margin_loss_is_not_optax_multiclass_hinge():
    d = load("losses.npz")
    hinge = jnp.mean(optax.losses.multiclass_hinge_loss(d["logits"], d["labels"]))
    assert error(hinge, d["multi_margin/value"]) > 0.1


# -------------------------------------------------------------------------------- optimizers
def problem_loss(p, x, y, c):
    """make_references.problem_loss: a tanh regression plus a parameter with ~1e-7 gradients."""
    return jnp.mean(jnp.square(jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] - y)) + 1e-7 * jnp.sum(p["tiny"] * c)


def trajectory(opt, steps_per_epoch=1, epochs=25):
    """Parameters before and after every step (as make_references.run_traj stores them)."""
    d = load("optim.npz")
    params = {k: jnp.asarray(v) for k, v in sub(d, "init/").items()}
    state = opt.init(params)
    batches = np.array_split(np.arange(len(d["x"])), steps_per_epoch)

    @jax.jit
    def step(params, state, x, y):
        g = jax.grad(problem_loss)(params, x, y, d["c"])
        updates, state = opt.update(g, state, params)
        return optax.apply_updates(params, updates), state

    traj = [params]
    for _ in range(epochs):
        for b in batches:
            params, state = step(params, state, d["x"][b], d["y"][b])
            traj.append(params)
    return jax.tree.map(lambda *a: np.stack(a), *traj)


def traj_error(traj, name) -> float:
    expected = sub(load("optim.npz"), f"{name}/traj/")
    return max(error(traj[k], expected[k]) for k in expected)


OPTIMIZERS = {  # reference name: (jaxlabs optimizer, the Optax default it must differ from or None)
    "sgd": (torch_sgd(0.1), None),
    "sgd_momentum": (torch_sgd(0.1, momentum=0.9), None),
    # coupled L2: the decay goes into the momentum buffer; decoupled decay does not
    "sgd_wd": (torch_sgd(0.1, momentum=0.9, weight_decay=5e-4),
               optax.chain(optax.trace(0.9), optax.add_decayed_weights(5e-4), optax.scale(-0.1))),
    # PyTorch's first step puts the undampened gradient in the buffer; optax.trace has no dampening
    "sgd_dampening": (torch_sgd(0.1, momentum=0.9, dampening=0.5),
                      optax.chain(optax.scale(0.5), optax.trace(0.9), optax.scale(-0.1))),
    "sgd_nesterov": (torch_sgd(0.1, momentum=0.9, nesterov=True), optax.sgd(0.1, momentum=0.9)),
    # eps outside the square root, as optax.adam; inside it (eps_root) the ~1e-7 gradients crawl
    "adam": (torch_adam(0.01), optax.adam(0.01, eps=0.0, eps_root=1e-8)),
    # coupled L2, not AdamW's decoupled decay
    "adam_wd": (torch_adam(0.01, weight_decay=1e-2), optax.adamw(0.01, weight_decay=1e-2)),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_trajectory_matches_torch(name):
    ours, optax_default = OPTIMIZERS[name]
    assert traj_error(trajectory(ours), name) <= TRAJ_RTOL
    if optax_default is not None:
        assert traj_error(trajectory(optax_default), name) > 10 * TRAJ_RTOL


def test_lab_a_optimizer_is_torch_adam():
    assert traj_error(trajectory(make_optimizer("adam", 0.01)), "adam") <= TRAJ_RTOL


def test_lab_f_step_schedule():
    d = load("optim.npz")
    schedule = step_schedule(0.1, steps_per_epoch=3)
    lrs = np.array([schedule(k) for k in range(24)])
    assert_rel(lrs, np.repeat(d["lab_f/lr"], 3), LR_RTOL, "lr per step")
    opt = torch_sgd(schedule, momentum=0.9, weight_decay=5e-4)
    assert traj_error(trajectory(opt, steps_per_epoch=3, epochs=8), "lab_f") <= TRAJ_RTOL
    per_step = torch_sgd(step_schedule(0.1, steps_per_epoch=1), momentum=0.9, weight_decay=5e-4)
    assert traj_error(trajectory(per_step, steps_per_epoch=3, epochs=8), "lab_f") > 10 * TRAJ_RTOL


def plateau_run(rop, epochs=40, lr=0.5):
    """SGD(lr, momentum 0.5), the plateau transformation stepped on the validation loss per epoch."""
    d = load("optim.npz")
    params = {k: jnp.asarray(v) for k, v in sub(d, "init/").items()}
    opt_state, plateau = torch_sgd(lr, momentum=0.5).init(params), rop.init(params)

    @jax.jit
    def epoch(params, opt_state, plateau):
        lr_now = lr * plateau.scale
        g = jax.grad(problem_loss)(params, d["x"], d["y"], d["c"])
        updates, opt_state = torch_sgd(lr_now, momentum=0.5).update(g, opt_state, params)
        params = optax.apply_updates(params, updates)
        val = problem_loss(params, d["xv"], d["yv"], d["c"])
        _, plateau = rop.update(jnp.zeros(()), plateau, value=val)
        return params, opt_state, plateau, lr_now, val

    traj, lrs, vals = [params], [], []
    for _ in range(epochs):
        params, opt_state, plateau, lr_now, val = epoch(params, opt_state, plateau)
        traj.append(params), lrs.append(lr_now), vals.append(val)
    return jax.tree.map(lambda *a: np.stack(a), *traj), np.array(lrs), np.array(vals)


def test_reduce_lr_on_plateau_matches_torch():
    d = load("optim.npz")  # factor 0.5, patience 2, cooldown 1, min_lr 0.05 = 0.1 * lr
    traj, lrs, vals = plateau_run(reduce_lr_on_plateau(factor=0.5, patience=2, cooldown=1, min_scale=0.1))
    assert_rel(lrs, d["plateau/lr"], LR_RTOL, "lr per epoch")
    assert_rel(vals, d["plateau/val"], TRAJ_RTOL, "validation loss")
    assert traj_error(traj, "plateau") <= TRAJ_RTOL
    # optax's patience counts differently: the same number reduces one epoch early
    _, lrs_optax, _ = plateau_run(optax.contrib.reduce_on_plateau(factor=0.5, patience=2, cooldown=1, min_scale=0.1))
    assert error(lrs_optax, d["plateau/lr"]) > 0.1


# ------------------------------------------------------------------------------------ Lab A
def lab_a_run(make_optimizer=None):
    """FitTask's own training loop (Trainer, make_train, fit.make_optimizer) from the reference's
    initial weights on the reference's data, 200 epochs, no tolerance stop."""
    d = load("lab_a.npz")
    task = get_task("fit-log2cos")
    trainer, built = task.build(task.resolve_static(epochs=200))  # width 64, depth 4, SiLU, Adam
    model = MLP(width=64, depth=4, out=1, activation="silu")
    params = from_torch(model, sub(d, "w/"))["params"]
    trainer = trainer._replace(init=lambda key, hp, data, tx: {
        "params": params, "opt_state": (make_optimizer or fit.make_optimizer)("adam", hp["lr"]).init(params)})
    # the reference's splits (FitTask's own), plus whatever else the task's data carries
    data = {**built, **{k: jnp.asarray(d[k]) for k in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")}}
    curves, final = jax.jit(make_train(trainer))(
        jax.random.key(0), {"lr": jnp.float32(0.01), "tolerance": jnp.float32(0.0)}, data)
    return d, model, data, curves, final


def test_lab_a_200_adam_epochs_match_torch():
    d, model, data, curves, final = lab_a_run()
    assert d["loss"][-1] < 0.05 * d["loss"][0]  # it really trained
    assert_rel(d["loss"], d["loss_f64"], 1e-5, "the reference run is well conditioned")
    assert_rel(curves["loss"], d["loss"], LAB_A_RTOL, "train loss per epoch")
    assert_rel(curves["val_mse"], d["val_mse"], LAB_A_RTOL, "validation loss per epoch")
    final_torch = from_torch(model, sub(d, "final/"))
    assert_rel(final["train_mse"], mse(model.apply(final_torch, data["x_train"]), data["y_train"]), LAB_A_RTOL)


def test_lab_a_with_optax_adam_drifts_from_torch(monkeypatch):
    # why fit.make_optimizer uses torch_adam: optax.adam's float32 bias correction drifts to ~3e-4
    plain = lambda name, lr: optax.adam(lr)  # noqa: E731
    monkeypatch.setattr(fit, "make_optimizer", plain)
    d, _, _, curves, _ = lab_a_run(plain)
    err = np.max(np.abs(np.asarray(curves["loss"]) - d["loss"]) / np.abs(d["loss"]))
    assert err > 10 * LAB_A_RTOL


def test_adam_bias_correction_is_as_accurate_as_pytorchs():
    # PyTorch: 1 - 0.999**t in float64. In float32 0.999 is 0.99900001: 1.3e-5 off at t = 1.
    count = jnp.arange(1, 1001)
    exact = 1 - 0.999 ** np.arange(1, 1001, dtype=np.float64)
    assert_rel(optim._bias_correction(0.999, count), exact, 1e-6, "torch_adam")
    assert np.max(np.abs(1 - jnp.float32(0.999) ** count - exact) / exact) > 1e-5  # optax.scale_by_adam's


# -------------------------------------------------------------------------------- from_torch
def test_from_torch_accepts_module_prefix_and_ignores_num_batches_tracked():
    weights = sub(load("resnet20.npz"), "w/")
    assert any(k.endswith("num_batches_tracked") for k in weights)
    plain = from_torch(ResNet20(), weights)
    prefixed = from_torch(ResNet20(), {"module." + k: v for k, v in weights.items()})
    assert_tree_close(prefixed, plain, 0.0)
    assert plain["params"]["layer2_0"]["conv1"]["kernel"].shape == (3, 3, 16, 32)  # OIHW -> HWIO


def test_from_torch_accepts_layers_naming_for_the_mlp():
    d = load("mlp.npz")
    weights = sub(d, "w/")
    rename = {"fc1": "layers.0", "hidden_layers.0": "layers.1", "hidden_layers.1": "layers.2", "fc2": "layers.3"}
    renamed = {rename[k.rsplit(".", 1)[0]] + "." + k.rsplit(".", 1)[1]: v for k, v in weights.items()}
    model = MLP(width=16, depth=3, out=3)
    assert_tree_close(from_torch(model, renamed), from_torch(model, weights), 0.0)


def test_from_torch_lists_every_problem_at_once():
    weights = sub(load("cnn.npz"), "bn_eval/w/")
    model = CNN(**CNN_SHAPE, batch_norm=True)
    bad = dict(weights)
    bad["fc3.weight"] = bad.pop("fc2.weight")  # a wrong name
    bad["convs.1.weight"] = bad["convs.1.weight"].transpose(1, 0, 2, 3)  # a transposed kernel
    del bad["bns.0.running_var"]
    with pytest.raises(TorchImportError) as info:
        from_torch(model, bad)
    msg = str(info.value)
    for part in ("missing (2)", "fc2.weight", "bns.0.running_var", "unexpected (1): fc3.weight",
                 "convs.1.weight: got (4, 8, 5, 5), expected (8, 4, 5, 5)"):
        assert part in msg, msg
    with pytest.raises(TorchImportError, match="missing"):  # BatchNorm weights given to a model without
        from_torch(CNN(**CNN_SHAPE, batch_norm=True), sub(load("cnn.npz"), "plain/w/"))
    with pytest.raises(TypeError):
        from_torch(nn.Dense(3), weights)


def test_from_torch_permutes_the_nchw_flatten_for_non_square_inputs():
    # a 28 x 20 input: fc1 sees (C, H, W) = (16, 3, 2) in PyTorch's flatten order
    model = CNN(**CNN_SHAPE)
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 28, 20, 1)))["params"]
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda s: rng.normal(size=s.shape).astype(np.float32), shapes)
    torch_names = {"conv_0": "convs.0", "conv_1": "convs.1", "conv_2": "convs.2", "fc_0": "fc1", "fc_1": "fc2"}
    sd = {}
    for name, p in traverse_util.flatten_dict(params).items():
        torch_name = torch_names[name[0]]
        p = np.asarray(p)
        if name[0] == "fc_0" and name[1] == "kernel":  # rows in (H, W, C) order -> columns in (C, H, W)
            p = p.reshape(3, 2, 16, -1).transpose(3, 2, 0, 1).reshape(p.shape[1], -1)
        elif p.ndim == 4:
            p = p.transpose(3, 2, 0, 1)
        elif p.ndim == 2:
            p = p.T
        sd[f"{torch_name}.{'weight' if name[1] == 'kernel' else 'bias'}"] = p
    assert_tree_close(from_torch(model, sd, input_shape=(28, 20, 1))["params"], params, 0.0)
    with pytest.raises(TorchImportError, match="fc1.weight"):  # not square: needs input_shape
        from_torch(model, sd)
