"""Accuracy of a lab's configuration in jaxlabs and in PyTorch, the same seeds side by side.

    python -m experiments.torch_crosscheck E --data-dir DIR      # Lab E's best 256-512-0.3-10
    python -m experiments.torch_crosscheck G --data-dir DIR      # Lab G's MomentGD, 10 epochs

When a lab's accuracy target is missed, this tells whether the gap belongs to the configuration
(PyTorch lands in the same place) or to jaxlabs (it does not). Both sides train the same
configuration from their own initialisations and shuffles, so they agree in distribution over
seeds, not member by member (tests/test_parity.py checks the member-by-member agreement). PyTorch
is needed by this script only (``pip install torch``).

- E: Fashion-MNIST, MLP 784-512-10 ReLU (PyTorch's default init), SGD lr 0.3, batch 256 with the
  short last batch, 10 epochs, cross entropy; test accuracy after the last epoch (the report
  had no validation split).
- G: MNIST, the report's split (50,000 train, ``RandomState(309)``), MLP 784-600-10 ReLU with
  N(0, 2/(in+out)) weights and zero biases, SGD lr 0.01 with momentum 0.9 (torch's
  ``v = mu v + g`` equals the report's MomentGD at a constant lr), batch 128, 10 epochs
  (3,910 steps); test accuracy after the last epoch. G also trains one epoch in both from the
  same initialisation and the same batches, and prints how far the weights moved apart: if they
  agree to rounding, any gap between the two columns is a difference between seed draws.
"""
from __future__ import annotations

import json
import os
import time

import numpy as np

from jaxlabs.cli import ArgumentParser, fail, int_at_least
from jaxlabs.data import load_dataset
from jaxlabs.results import mean_std
from jaxlabs.sweep import run_sweep
from jaxlabs.tasks import get_task

PROG = "python -m experiments.torch_crosscheck"
LABS = {
    "E": {"task": "fashion-mlp", "static": {"hidden": 512, "epochs": 10}, "lr": 0.3, "dataset": "fashion_mnist"},
    "G": {"task": "mnist-scratch", "static": {"optimizer": "momentgd", "epochs": 10}, "lr": 0.01, "dataset": "mnist"},
}


def parse_args(argv=None):
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("lab", choices=sorted(LABS), help="which lab's configuration to check")
    p.add_argument("--seeds", type=int_at_least(1), default=5, help="seeds on each side (default: %(default)s)")
    p.add_argument("--data-dir", default=None, help="folder with the IDX files (default: jaxlabs' search)")
    p.add_argument("--torch-threads", type=int_at_least(1), default=os.cpu_count() or 1,
                   help="torch.set_num_threads (default: every core)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    return p.parse_args(argv)


def torch_lab_e(raw: dict, seed: int) -> float:
    import torch
    from torch import nn

    torch.manual_seed(seed)
    x = torch.from_numpy(raw["train_images"].reshape(len(raw["train_images"]), -1).astype(np.float32) / 255.0)
    y = torch.from_numpy(raw["train_labels"].astype(np.int64))
    xt = torch.from_numpy(raw["test_images"].reshape(len(raw["test_images"]), -1).astype(np.float32) / 255.0)
    yt = torch.from_numpy(raw["test_labels"].astype(np.int64))
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.3)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(10):
        for rows in torch.randperm(len(x)).split(256):
            opt.zero_grad()
            loss_fn(model(x[rows]), y[rows]).backward()
            opt.step()
    with torch.no_grad():
        return float((model(xt).argmax(1) == yt).float().mean())


def torch_lab_g(data: dict, seed: int) -> float:
    import torch
    from torch import nn

    torch.manual_seed(seed)
    x = torch.from_numpy(data["train_x"].astype(np.float32) / 255.0)
    y = torch.from_numpy(data["train_y"].astype(np.int64))
    xt = torch.from_numpy(data["test_x"].astype(np.float32) / 255.0)
    yt = torch.from_numpy(data["test_y"].astype(np.int64))
    layers = [nn.Linear(784, 600), nn.Linear(600, 10)]
    with torch.no_grad():
        for layer in layers:
            fan_out, fan_in = layer.weight.shape
            layer.weight.normal_(0.0, (2.0 / (fan_in + fan_out)) ** 0.5)
            layer.bias.zero_()
    model = nn.Sequential(layers[0], nn.ReLU(), layers[1])
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(10):
        for rows in torch.randperm(len(x)).split(128):
            opt.zero_grad()
            loss_fn(model(x[rows]), y[rows]).backward()
            opt.step()
    with torch.no_grad():
        return float((model(xt).argmax(1) == yt).float().mean())


def same_start_g(task, static: dict, seed: int = 0) -> float:
    """One epoch of Lab G in jaxlabs and in PyTorch from jaxlabs' initialisation and batch order:
    the largest weight difference afterwards, relative to the largest weight."""
    import jax
    import jax.numpy as jnp
    import torch

    from jaxlabs.data.batches import batch_order, padded_batches
    from jaxlabs.train import PARTITIONABLE_THREEFRY, epoch_key

    trainer, d = task.build({**static, "epochs": 1})
    hp = {k: jnp.float32(v) for k, v in task.hparams(lr=0.01, momentum=0.9).items()}
    key, epoch = jax.random.key(seed), jnp.int32(0)
    tx = None if trainer.optimizer is None else trainer.optimizer(hp)
    with jax.threefry_partitionable(PARTITIONABLE_THREEFRY):  # the engine's random-number policy
        carry = trainer.init(key, hp, d, tx)
        order_key = jax.random.split(epoch_key(key, epoch))[0]  # the split the task's epoch makes
        idx, mask = (np.asarray(a) for a in padded_batches(*batch_order(order_key, d["train_x"].shape[0],
                                                                         static["batch_size"])))
        after = jax.jit(trainer.epoch)(carry, hp, d, epoch, epoch_key(key, epoch), tx)[0]["params"]
    start = jax.tree.map(np.asarray, carry["params"])  # [{"w": (in, out), "b": (out,)}, ...]
    after = jax.tree.map(np.asarray, after)

    x = torch.from_numpy(np.asarray(d["train_x"]).astype(np.float32) / 255.0)
    y = torch.from_numpy(np.asarray(d["train_y"]).astype(np.int64))
    layers = [torch.nn.Linear(*p["w"].shape) for p in start]
    with torch.no_grad():
        for layer, p in zip(layers, start):
            layer.weight.copy_(torch.from_numpy(p["w"].T.copy()))
            layer.bias.copy_(torch.from_numpy(p["b"].copy()))
    model = torch.nn.Sequential(layers[0], torch.nn.ReLU(), layers[1])
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for rows, keep in zip(idx, mask):
        opt.zero_grad()
        batch = torch.from_numpy(rows[keep].astype(np.int64))
        torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
        opt.step()
    diff = max(float(np.abs(layer.weight.detach().numpy().T - p["w"]).max()) for layer, p in zip(layers, after))
    return diff / max(float(np.abs(p["w"]).max()) for p in after)


def summary(name: str, accs: list[float], seconds: float) -> str:
    a = np.asarray(accs)
    return (f"  {name:8s}: test accuracy {mean_std(a)} (mean +- population std, as in the reports) "
            f"(min {a.min():.4f}, max {a.max():.4f}) over {len(a)} seeds, {seconds:.1f} s")


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        import torch
    except ImportError:
        fail(PROG, "PyTorch is not installed; pip install torch (only this script needs it)")
    torch.set_num_threads(args.torch_threads)
    lab = LABS[args.lab]
    seeds = list(range(args.seeds))
    task = get_task(lab["task"])
    try:
        static = task.resolve_static(**lab["static"], data_dir=args.data_dir)
        if args.lab == "E":
            raw = load_dataset(lab["dataset"], args.data_dir)
            torch_run = lambda seed: torch_lab_e(raw, seed)  # noqa: E731
        else:
            from jaxlabs.tasks.scratch import mnist_splits

            data = mnist_splits(args.data_dir, static["val_size"], static["data_seed"])
            torch_run = lambda seed: torch_lab_g(data, seed)  # noqa: E731
    except (ValueError, FileNotFoundError) as e:  # a dataset that is not on this machine
        fail(PROG, str(e))

    print(f"Lab {args.lab}: {lab['task']} {lab['static']} lr {lab['lr']}, seeds {seeds[0]}-{seeds[-1]}")
    t0 = time.perf_counter()
    result = run_sweep(task, [static], seeds, {"lr": [lab["lr"]]}, progress=False)
    jax_s = time.perf_counter() - t0
    jax_accs = [r["test_acc"] for r in result.records()]
    t0 = time.perf_counter()
    torch_accs = [torch_run(s) for s in seeds]
    torch_s = time.perf_counter() - t0
    print(summary("jaxlabs", jax_accs, jax_s))
    print(summary("PyTorch", torch_accs, torch_s))
    diff = np.mean(jax_accs) - np.mean(torch_accs)
    spread = np.sqrt(np.var(jax_accs, ddof=1) / len(seeds) + np.var(torch_accs, ddof=1) / len(seeds)) \
        if len(seeds) > 1 else float("nan")
    print(f"  jaxlabs - PyTorch: {diff:+.4f} (standard error of the difference {spread:.4f})")
    same_start = None
    if args.lab == "G":
        same_start = max(same_start_g(task, static, seed) for seed in seeds[:3])
        print(f"  same initialisation and batches, one epoch (391 steps), seeds {seeds[:3]}: weights "
              f"differ by at most {same_start:.1e} of the largest weight (float32 rounding)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"lab": args.lab, "seeds": seeds, "jaxlabs": jax_accs, "torch": torch_accs,
                       "jaxlabs_s": jax_s, "torch_s": torch_s,
                       "same_start_rel_diff": same_start}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
