"""Write the PyTorch reference outputs that ``tests/test_parity.py`` holds jaxlabs to.

Regenerate (PyTorch is a development-only dependency; the parity tests only read the .npz files):

    pip install torch==2.13.0 && python tests/make_references.py
    python tests/make_references.py --out runs/ref   # into another folder, to compare with tests/reference first
    python tests/make_references.py --only own_batchnorm   # one file

Everything is seeded and computed on the CPU in float32, into ``tests/reference/*.npz`` (about
2.1 MB in all; the script refuses to write more than 5 MB). Model weights are PyTorch's default
initialisation, BatchNorm affine parameters and running statistics drawn away from 1 / 0 so they
matter, all rounded to float16-representable values and stored as float16 (halving the files):
both sides compute in float32 from exactly the same numbers. Gradients are of ``sum(out * r)``
for a stored random cotangent ``r``.

The models are ``experiments/torch_models.py``'s (the benchmark and the crosscheck train the same
ones); their state_dict names are the keys below. Files and keys (``w/NAME`` is a PyTorch
state_dict entry, ``grad/NAME`` its gradient):
- mlp.npz: Lab A's FeedforwardNN (fc1, hidden_layers.i, fc2; SiLU): x, r, w/*, out, grad/*.
- cnn.npz: TorchCNN (convs.i, bns.i, fc1, fc2) in three cases, ``plain`` (no BatchNorm, dropout 0.5,
  eval), ``bn_eval`` (BatchNorm, dropout 0.5, eval), ``bn_train`` (BatchNorm, no dropout, train:
  batch statistics, ``CASE/state/*`` the updated running statistics); each ``CASE/w/*``,
  ``CASE/out``, ``CASE/dx``, ``CASE/grad/*``; shared x (NCHW), r.
- resnet20.npz: akamaster's CIFAR ResNet20 (option-A shortcut): x, r, w/*, eval/out, train/out,
  train/grad/*, train/state/*.
- losses.npz: MSELoss, CrossEntropyLoss, MultiMarginLoss (p=1, margins 1 and 0.5), values and
  gradients with respect to the predictions.
- optim.npz: 25-step full-batch trajectories (``NAME/traj/P``: initial value then after each step)
  of SGD (plain, momentum, coupled weight decay 5e-4, dampening, nesterov) and Adam (plain,
  coupled weight decay) on a small tanh regression whose ``tiny`` parameter has gradients ~1e-7
  (so Adam's eps placement shows); Lab F's schedule (SGD momentum 0.9, weight decay 5e-4,
  MultiStepLR([5], 0.1), 3 minibatches per epoch, 8 epochs); ReduceLROnPlateau on a validation loss.
- lab_a.npz: Lab A's data and FeedforwardNN(1, 64, 4, 1), 200 full-batch Adam(0.01) epochs: the
  train MSE and validation MSE per epoch (before that epoch's update) and the final weights; and
  ``loss_f64``, the same run in float64 (how far float32 rounding alone moves the curve).
- batchnorm.npz: BatchNorm2d running statistics over 6 train-mode steps, then eval; and a BatchNorm
  CNN trained 4 SGD steps: running statistics after each, final weights.
- own_batchnorm.npz: a model of one's own (Linear(4, 8), BatchNorm1d(8), ReLU, Linear(8, 3)) trained
  by full-batch SGD (lr 0.1, momentum 0.9, cross entropy) for 6 epochs on 24 rows: ``w/*`` its
  initial weights, x, y, ``loss`` per epoch (before its step), ``running_mean`` / ``running_var``
  (6, 8) after each epoch, ``final/*`` the weights after the last, ``eval_out`` in eval mode.
- layers.npz: Conv2d padding (stride 2 on an even input, k=5), and default-init statistics of
  large Linear / Conv2d layers.
"""
from __future__ import annotations

import copy
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # run as a script from anywhere: the models are the experiments' own
from experiments.torch_models import CifarResNet, FeedforwardNN, TorchCNN  # noqa: E402

OUT = os.path.join(ROOT, "tests", "reference")
torch.set_num_threads(1)  # deterministic summation order


# ------------------------------------------------------------------------------------- helpers
def prepare(model, seed):
    """Random BatchNorm parameters and statistics, then every float rounded to float16 values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(0.6 * torch.rand(m.bias.shape, generator=g) - 0.3)
                m.running_mean.copy_(0.6 * torch.rand(m.running_mean.shape, generator=g) - 0.3)
                m.running_var.copy_(0.5 + 1.5 * torch.rand(m.running_var.shape, generator=g))
        for v in model.state_dict().values():
            if v.is_floating_point():
                v.copy_(v.half().float())
    return model


def weights(model, prefix="w/"):
    return {prefix + k: (v.numpy().astype(np.float16) if v.is_floating_point() else v.numpy())
            for k, v in model.state_dict().items()}


def run_case(model, x, r, train, prefix=""):
    """Forward in train or eval mode, gradients of sum(out * r); updated buffers in train mode."""
    model = copy.deepcopy(model)
    model.train(train)
    x = torch.tensor(x, requires_grad=True)
    out = model(x)
    (out * torch.tensor(r)).sum().backward()
    res = {prefix + "out": out.detach().numpy(), prefix + "dx": x.grad.numpy()}
    res.update({f"{prefix}grad/{k}": p.grad.numpy() for k, p in model.named_parameters()})
    if train:
        res.update({f"{prefix}state/{k}": v.numpy() for k, v in model.named_buffers()
                    if k.endswith(("running_mean", "running_var"))})
    return res


def save(name, arrays):
    os.makedirs(OUT, exist_ok=True)
    np.savez_compressed(os.path.join(OUT, name), **arrays)


def f32(a):
    return np.asarray(a, np.float32)


# --------------------------------------------------------------------------------------- cases
def make_mlp():
    torch.manual_seed(1)
    model = prepare(FeedforwardNN(5, 16, 3, 3), 1)
    rng = np.random.default_rng(1)
    x, r = f32(rng.normal(size=(8, 5))), f32(rng.normal(size=(8, 3)))
    save("mlp.npz", {"x": x, "r": r, **weights(model), **run_case(model, x, r, train=False)})


CNN_CASES = {  # name: (TorchCNN kwargs, train mode)
    "plain": (dict(batch_norm=False, dropout=0.5), False),
    "bn_eval": (dict(batch_norm=True, dropout=0.5), False),
    "bn_train": (dict(batch_norm=True, dropout=0.0), True),
}
CNN_SHAPE = dict(depth=3, kernel=5, channels=4, hidden=16, classes=10)  # 28 -> 14 -> 7 -> 3 (floor)


def make_cnn():
    rng = np.random.default_rng(2)
    x, r = f32(rng.normal(size=(4, 1, 28, 28))), f32(rng.normal(size=(4, 10)))
    arrays = {"x": x, "r": r}
    for i, (case, (kw, train)) in enumerate(CNN_CASES.items()):
        torch.manual_seed(20 + i)
        model = prepare(TorchCNN(**CNN_SHAPE, **kw), 20 + i)
        arrays.update(weights(model, f"{case}/w/"))
        arrays.update(run_case(model, x, r, train, prefix=f"{case}/"))
    save("cnn.npz", arrays)


def make_resnet():
    torch.manual_seed(3)
    model = prepare(CifarResNet(), 3)
    assert sum(p.numel() for p in model.parameters()) == 269_722
    rng = np.random.default_rng(3)
    x, r = f32(rng.normal(size=(2, 3, 32, 32))), f32(rng.normal(size=(2, 10)))
    ev = run_case(model, x, r, train=False, prefix="eval/")
    save("resnet20.npz", {"x": x, "r": r, **weights(model), "eval/out": ev["eval/out"],
                          **run_case(model, x, r, train=True, prefix="train/")})


def make_losses():
    rng = np.random.default_rng(4)
    logits, labels = f32(2 * rng.normal(size=(16, 10))), rng.integers(0, 10, size=16)
    pred, target = f32(rng.normal(size=(16, 3))), f32(rng.normal(size=(16, 3)))
    arrays = {"logits": logits, "labels": labels, "pred": pred, "target": target}
    cases = {"mse": (nn.MSELoss(), pred, torch.tensor(target)),
             "cross_entropy": (nn.CrossEntropyLoss(), logits, torch.tensor(labels)),
             "multi_margin": (nn.MultiMarginLoss(p=1, margin=1.0), logits, torch.tensor(labels)),
             "multi_margin_0.5": (nn.MultiMarginLoss(p=1, margin=0.5), logits, torch.tensor(labels))}
    for name, (fn, inp, tgt) in cases.items():
        inp = torch.tensor(inp, requires_grad=True)
        loss = fn(inp, tgt)
        loss.backward()
        arrays[f"{name}/value"], arrays[f"{name}/grad"] = loss.detach().numpy(), inp.grad.numpy()
    save("losses.npz", arrays)


# optimizer problem: pred = tanh(X w1 + b1) w2; loss = MSE + 1e-7 * sum(tiny * c)
PARAM_SHAPES = {"w1": (6, 8), "b1": (8,), "w2": (8, 3), "tiny": (4,)}
TRAJ_STEPS = 25


def problem_loss(p, x, y, c):
    return F.mse_loss(torch.tanh(x @ p["w1"] + p["b1"]) @ p["w2"], y) + 1e-7 * (p["tiny"] * c).sum()


def run_traj(data, opt_fn, sched_fn=None, steps_per_epoch=1, epochs=TRAJ_STEPS, plateau=False):
    p = {k: torch.tensor(v, requires_grad=True) for k, v in data["init"].items()}
    opt = opt_fn(list(p.values()))
    sched = sched_fn(opt) if sched_fn else None
    x, y, c = (torch.tensor(data[k]) for k in ("x", "y", "c"))
    traj = {k: [v.detach().numpy().copy()] for k, v in p.items()}
    lrs, vals = [], []
    for _ in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        for b in np.array_split(np.arange(len(x)), steps_per_epoch):
            b = torch.as_tensor(b)
            opt.zero_grad()
            problem_loss(p, x[b], y[b], c).backward()
            opt.step()
            for k, v in p.items():
                traj[k].append(v.detach().numpy().copy())
        if plateau:
            with torch.no_grad():
                vals.append(problem_loss(p, torch.tensor(data["xv"]), torch.tensor(data["yv"]), c).item())
            sched.step(vals[-1])
        elif sched:
            sched.step()
    out = {f"traj/{k}": np.stack(v) for k, v in traj.items()}
    out["lr"] = np.asarray(lrs, np.float64)
    if plateau:
        out["val"] = np.asarray(vals, np.float64)
    return out


def plateau_margin(vals, threshold):
    """Smallest relative distance of a validation loss from the improvement threshold."""
    best, margin = np.inf, np.inf
    for v in vals:
        if np.isfinite(best):
            margin = min(margin, abs(v - best * (1 - threshold)) / best)
        best = min(best, v) if v < best * (1 - threshold) else best
    return margin


def make_optim():
    rng = np.random.default_rng(5)
    init = {k: f32(rng.uniform(-0.8, 0.8, size=s)) for k, s in PARAM_SHAPES.items()}
    x, xv = f32(rng.normal(size=(24, 6))), f32(rng.normal(size=(24, 6)))
    w_true = rng.normal(size=(6, 3))
    y, yv = f32(np.sin(x @ w_true)), f32(np.sin(xv @ w_true) + 0.3 * rng.normal(size=(24, 3)))
    data = {"init": init, "x": x, "y": y, "xv": xv, "yv": yv, "c": f32(rng.normal(size=4))}
    arrays = {f"init/{k}": v for k, v in init.items()} | {k: v for k, v in data.items() if k != "init"}
    sgd, adam = torch.optim.SGD, torch.optim.Adam
    cases = {
        "sgd": dict(opt_fn=lambda ps: sgd(ps, lr=0.1)),
        "sgd_momentum": dict(opt_fn=lambda ps: sgd(ps, lr=0.1, momentum=0.9)),
        "sgd_wd": dict(opt_fn=lambda ps: sgd(ps, lr=0.1, momentum=0.9, weight_decay=5e-4)),
        "sgd_dampening": dict(opt_fn=lambda ps: sgd(ps, lr=0.1, momentum=0.9, dampening=0.5)),
        "sgd_nesterov": dict(opt_fn=lambda ps: sgd(ps, lr=0.1, momentum=0.9, nesterov=True)),
        "adam": dict(opt_fn=lambda ps: adam(ps, lr=0.01)),
        "adam_wd": dict(opt_fn=lambda ps: adam(ps, lr=0.01, weight_decay=1e-2)),
        # Lab F: lr 0.1 for 5 epochs then 0.01; 3 minibatches per epoch, 8 epochs = 24 steps
        "lab_f": dict(opt_fn=lambda ps: sgd(ps, lr=0.1, momentum=0.9, weight_decay=5e-4),
                      sched_fn=lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[5], gamma=0.1),
                      steps_per_epoch=3, epochs=8),
        "plateau": dict(opt_fn=lambda ps: sgd(ps, lr=0.5, momentum=0.5),
                        sched_fn=lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(
                            o, mode="min", factor=0.5, patience=2, threshold=1e-4, cooldown=1, min_lr=0.05),
                        epochs=40, plateau=True),
    }
    for name, kw in cases.items():
        arrays.update({f"{name}/{k}": v for k, v in run_traj(data, **kw).items()})
    lrs = arrays["plateau/lr"]
    assert len(np.unique(lrs)) >= 3 and lrs[-1] == 0.05, lrs  # reduced several times, then clamped
    margin = plateau_margin(arrays["plateau/val"], 1e-4)
    assert margin > 1e-4, margin  # no decision within float32 noise of the threshold
    assert len(np.unique(arrays["lab_f/lr"])) == 2
    save("optim.npz", arrays)


def make_lab_a():
    from jaxlabs.data.synthetic import log2_cos, sample_regression  # numpy + sklearn only

    data = sample_regression(log2_cos, 2000, (1.0, 16.0), data_seed=0)
    # seed 10: a well-conditioned run. Full-batch Adam at lr 0.01 often has loss spikes that blow
    # float32 rounding up 1e4-fold (for seeds 6-25 the float32 and float64 curves differ by 2e-6 to
    # 5e-2); a reference for semantics wants a run where rounding stays rounding (asserted below).
    torch.manual_seed(10)
    model = prepare(FeedforwardNN(1, 64, 4, 1), 10)
    w0 = weights(model)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    x, y = torch.tensor(data["x_train"]), torch.tensor(data["y_train"])
    xv, yv = torch.tensor(data["x_val"]), torch.tensor(data["y_val"])
    losses, vals = [], []
    for _ in range(200):
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        with torch.no_grad():
            vals.append(F.mse_loss(model(xv), yv).item())
        loss.backward()
        opt.step()
        losses.append(loss.item())
    final = {"final/" + k: v.detach().numpy() for k, v in model.state_dict().items()}
    # the same run in float64: how far float32 rounding alone carries the loss curve
    m64 = FeedforwardNN(1, 64, 4, 1).double()
    m64.load_state_dict({k[2:]: torch.tensor(v.astype(np.float64)) for k, v in w0.items()})
    opt64, losses64 = torch.optim.Adam(m64.parameters(), lr=0.01), []
    for _ in range(200):
        opt64.zero_grad()
        loss = F.mse_loss(m64(x.double()), y.double())
        loss.backward()
        opt64.step()
        losses64.append(loss.item())
    spread = np.max(np.abs(np.asarray(losses) - losses64) / np.asarray(losses64))
    assert spread < 1e-5, f"float32 and float64 runs differ by {spread:.2g}: pick a better-conditioned seed"
    save("lab_a.npz", {**data, **w0, **final, "loss": f32(losses), "val_mse": f32(vals),
                       "loss_f64": np.asarray(losses64)})


def make_batchnorm():
    rng = np.random.default_rng(7)
    bn = nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(f32(rng.uniform(0.5, 1.5, 3))))
        bn.bias.copy_(torch.tensor(f32(rng.uniform(-0.5, 0.5, 3))))
    xs = f32(rng.normal(1.0, 2.0, size=(6, 4, 3, 5, 5)))
    arrays = {"bn/weight": bn.weight.detach().numpy().copy(), "bn/bias": bn.bias.detach().numpy().copy(),
              "bn/xs": xs}
    outs, means, vars_ = [], [], []
    bn.train()
    for x in xs:
        outs.append(bn(torch.tensor(x)).detach().numpy())
        means.append(bn.running_mean.numpy().copy())
        vars_.append(bn.running_var.numpy().copy())
    bn.eval()
    arrays |= {"bn/outs": np.stack(outs), "bn/running_mean": np.stack(means), "bn/running_var": np.stack(vars_),
               "bn/eval_out": bn(torch.tensor(xs[0])).detach().numpy()}
    # a BatchNorm CNN trained 4 SGD steps (momentum 0.9, lr 0.05, cross entropy)
    torch.manual_seed(8)
    model = prepare(TorchCNN(**CNN_SHAPE, batch_norm=True, dropout=0.0), 8)
    arrays.update(weights(model, "steps/w/"))
    xs, ys = f32(rng.normal(size=(4, 4, 1, 28, 28))), rng.integers(0, 10, size=(4, 4))
    arrays |= {"steps/xs": xs, "steps/ys": ys}
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for i, (x, y) in enumerate(zip(xs, ys)):
        opt.zero_grad()
        loss = F.cross_entropy(model(torch.tensor(x)), torch.tensor(y))
        loss.backward()
        opt.step()
        arrays[f"steps/loss/{i}"] = f32(loss.item())
        arrays.update({f"steps/state/{i}/{k}": v.numpy().copy() for k, v in model.named_buffers()
                       if k.endswith(("running_mean", "running_var"))})
    arrays.update({"steps/final/" + k: p.detach().numpy() for k, p in model.named_parameters()})
    save("batchnorm.npz", arrays)


OWN_EPOCHS = 6


def make_own_batchnorm():
    rng = np.random.default_rng(11)
    torch.manual_seed(11)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor(f32(rng.uniform(0.5, 1.5, 8))))
        model[1].bias.copy_(torch.tensor(f32(rng.uniform(-0.3, 0.3, 8))))
        for v in model.state_dict().values():
            if v.is_floating_point():
                v.copy_(v.half().float())
    x = f32(rng.normal(1.0, 2.0, size=(24, 4)).astype(np.float16))
    y = rng.integers(0, 3, size=24)
    arrays = {**weights(model), "x": x, "y": y}
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses, means, vars_ = [], [], []
    model.train()
    for _ in range(OWN_EPOCHS):
        opt.zero_grad()
        loss = F.cross_entropy(model(torch.tensor(x)), torch.tensor(y))
        loss.backward()
        opt.step()
        losses.append(loss.item())
        means.append(model[1].running_mean.numpy().copy())
        vars_.append(model[1].running_var.numpy().copy())
    arrays |= {"loss": f32(losses), "running_mean": np.stack(means), "running_var": np.stack(vars_)}
    arrays.update({"final/" + k: p.detach().numpy().copy() for k, p in model.named_parameters()})
    model.eval()
    arrays["eval_out"] = model(torch.tensor(x)).detach().numpy()
    save("own_batchnorm.npz", arrays)


def make_layers():
    rng = np.random.default_rng(9)
    arrays = {}
    for name, (c_in, c_out, k, stride, size) in {"conv_s2": (3, 5, 3, 2, 8), "conv_k5": (2, 4, 5, 1, 7)}.items():
        torch.manual_seed(9)
        conv = prepare(nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2), 9)
        x = f32(rng.normal(size=(2, c_in, size, size)))
        arrays |= {f"{name}/x": x, **weights(conv, f"{name}/w/"), f"{name}/out": conv(torch.tensor(x)).detach().numpy()}
    # default initialisation of large layers: the bounds and variances jaxlabs must reproduce
    torch.manual_seed(10)
    for name, layer in {"linear": nn.Linear(256, 4096), "conv": nn.Conv2d(128, 256, 3)}.items():
        for pname, p in layer.named_parameters():
            v = p.detach().double().numpy()
            arrays[f"init/{name}/{pname}"] = np.array([np.abs(v).max(), v.mean(), v.var(), v.size])
    save("layers.npz", arrays)


def main(argv=None) -> None:
    global OUT
    import argparse

    p = argparse.ArgumentParser(description="Write the PyTorch reference outputs of tests/test_parity.py.")
    p.add_argument("--out", default=OUT, help="folder for the .npz files (default: tests/reference; another "
                   "folder to compare a change with the stored files before replacing them)")
    p.add_argument("--only", default=None, metavar="NAME", help="write only NAME.npz (e.g. own_batchnorm)")
    args = p.parse_args(argv)
    OUT = args.out
    assert torch.__version__.startswith("2.13"), f"references are written with torch 2.13, not {torch.__version__}"
    for make in (make_mlp, make_cnn, make_resnet, make_losses, make_optim, make_lab_a, make_batchnorm, make_layers,
                 make_own_batchnorm):
        if args.only and make.__name__ != f"make_{args.only}":
            continue
        make()
        print(f"{make.__name__[5:]:>10}: done")
    sizes = {f: os.path.getsize(os.path.join(OUT, f)) for f in sorted(os.listdir(OUT)) if f.endswith(".npz")}
    for f, s in sizes.items():
        print(f"{f:>16} {s / 1e3:8.1f} kB")
    total = sum(sizes.values())
    print(f"{'total':>16} {total / 1e6:8.2f} MB")
    assert total < 5e6, "references must stay well under 5 MB"


if __name__ == "__main__":
    main()
