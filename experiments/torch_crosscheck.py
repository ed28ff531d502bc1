"""Accuracy of a lab's configuration in jaxlabs and in PyTorch, the same seeds side by side.

    python -m experiments.torch_crosscheck E --data-dir DIR      # Lab E's best 256-512-0.3-10
    python -m experiments.torch_crosscheck G --data-dir DIR      # Lab G's MomentGD, 10 epochs
    python -m experiments.torch_crosscheck F --data-dir DIR --seeds 3 --json f-torch.json \
        --jaxlabs-results runs/reproduce/F-schedule/results.json      # Lab F's ResNet20, lr drop

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
- F: CIFAR-10 (or the image-folder copy ``load_dataset`` finds, e.g. ``cifar10-jpeg.zip``, named
  as such in every line), the course script's configuration as ``cifar-resnet20`` defines it:
  ResNet20 (3 stages x 3 basic blocks, 16/32/64 channels, the parameter-free option-A shortcut,
  ``BatchNorm2d`` defaults, PyTorch's default init), ``RandomCrop(32, padding=4)`` +
  ``RandomHorizontalFlip`` (on tensors, no torchvision), ``Normalize(CIFAR_MEAN, CIFAR_STD)``,
  cross entropy, ``SGD(lr=0.1, momentum=0, weight_decay=5e-4)``, lr 0.1 for 5 epochs then 0.01
  for 5, batch 128 with the short last batch, shuffled each epoch; the whole test split in eval
  mode after every epoch. It checks the final test accuracy and the jump at the drop (epoch 6
  minus epoch 5 test accuracy). jaxlabs takes hours to train F on a CPU, so F does not train it:
  ``--jaxlabs-results`` reads the ``results.json`` of ``python -m experiments.reproduce F`` (its
  "0.1 then 0.01" setting; per-epoch curves from ``curves.npz`` beside it); without it only the
  PyTorch side is printed. A PyTorch seed is 3,910 steps, tens of minutes on a 2-core CPU: with
  ``--json`` each finished seed is saved at once and the same command run again skips the saved
  seeds, so Ctrl-C loses at most the running seed. A progress line per epoch.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

from experiments.torch_models import CifarResNet, FeedforwardNN
from jaxlabs import atomic
from jaxlabs.interrupt import Interrupted, stop_at_checkpoint
from jaxlabs.cli import ArgumentParser, fail, int_at_least
from jaxlabs.data import load_dataset
from jaxlabs.results import mean_std
from jaxlabs.sweep import run_sweep
from jaxlabs.tasks import get_task

PROG = "python -m experiments.torch_crosscheck"
LABS = {
    "E": {"task": "fashion-mlp", "static": {"hidden": 512, "epochs": 10}, "lr": 0.3, "dataset": "fashion_mnist"},
    "G": {"task": "mnist-scratch", "static": {"optimizer": "momentgd", "epochs": 10}, "lr": 0.01, "dataset": "mnist"},
    "F": {"task": "cifar-resnet20", "static": {"epochs": 10, "drop_epoch": 5}, "lr": 0.1, "dataset": "cifar10"},
}
# Lab F's jaxlabs figures come from a results.json of `experiments.reproduce F`: this study, this setting
F_STUDY, F_SETTING = "F-schedule", "0.1 then 0.01"
F_RESULTS_HINT = "runs/reproduce/F-schedule/results.json"  # where reproduce's default --out puts it
# The course script's configuration, as cifar-resnet20's defaults define it (tests hold them equal)
F_CONFIG = {"blocks": 3, "width": 16, "batch_size": 128, "epochs": 10, "drop_epoch": 5, "augment": True,
            "lr": 0.1, "momentum": 0.0, "weight_decay": 5e-4}


def parse_args(argv=None):
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("lab", choices=sorted(LABS), help="which lab's configuration to check")
    p.add_argument("--seeds", type=int_at_least(1), default=5, help="seeds on each side (default: %(default)s)")
    p.add_argument("--data-dir", default=None, help="folder with the IDX files (E, G) or CIFAR-10 or an "
                   "image-folder copy of it (F) (default: jaxlabs' search)")
    p.add_argument("--torch-threads", type=int_at_least(1), default=os.cpu_count() or 1,
                   help="torch.set_num_threads (default: every core)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file (F: each PyTorch seed "
                   "as it finishes; the same command again skips the seeds already there)")
    p.add_argument("--jaxlabs-results", dest="jaxlabs_results", default=None, metavar="PATH",
                   help=f"F only: jaxlabs' figures from this results.json of `python -m experiments.reproduce F` "
                        f"(e.g. {F_RESULTS_HINT}); F does not train jaxlabs itself (hours on a CPU)")
    args = p.parse_args(argv)
    if args.jaxlabs_results is not None and args.lab != "F":
        p.error(f"argument --jaxlabs-results: only for Lab F (Lab {args.lab} trains both sides itself)")
    return args


def torch_lab_e(raw: dict, seed: int) -> float:
    import torch
    from torch import nn

    torch.manual_seed(seed)
    x = torch.from_numpy(raw["train_images"].reshape(len(raw["train_images"]), -1).astype(np.float32) / 255.0)
    y = torch.from_numpy(raw["train_labels"].astype(np.int64))
    xt = torch.from_numpy(raw["test_images"].reshape(len(raw["test_images"]), -1).astype(np.float32) / 255.0)
    yt = torch.from_numpy(raw["test_labels"].astype(np.int64))
    model = FeedforwardNN(784, 512, 1, 10, activation=nn.ReLU)  # 784-512-10, PyTorch's default init
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
    model = FeedforwardNN(784, 600, 1, 10, activation=nn.ReLU)
    with torch.no_grad():  # the report's N(0, 2 / (in + out)) weights and zero biases
        for layer in (model.fc1, model.fc2):
            fan_out, fan_in = layer.weight.shape
            layer.weight.normal_(0.0, (2.0 / (fan_in + fan_out)) ** 0.5)
            layer.bias.zero_()
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
    (n_in, hidden), n_out = start[0]["w"].shape, start[1]["w"].shape[1]
    model = FeedforwardNN(n_in, hidden, 1, n_out, activation=torch.nn.ReLU)
    layers = [model.fc1, model.fc2]
    with torch.no_grad():
        for layer, p in zip(layers, start):
            layer.weight.copy_(torch.from_numpy(p["w"].T.copy()))
            layer.bias.copy_(torch.from_numpy(p["b"].copy()))
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


# ------------------------------------------------------------------ Lab F: CIFAR-10 ResNet20
def crop_flip_torch(x, pad: int = 4):
    """``RandomCrop(size, padding=pad)`` then ``RandomHorizontalFlip()`` per image of a (B, C, H, W)
    batch in [0, 1], drawn as torchvision draws them (top and left uniform in 0..2 pad, a flip with
    probability 0.5) from torch's global generator; zero padding, as ``jaxlabs.data.crop_flip``."""
    import torch
    from torch.nn import functional as F

    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    top, left = torch.randint(0, 2 * pad + 1, (b,)), torch.randint(0, 2 * pad + 1, (b,))
    flip = torch.rand(b) < 0.5
    rows = top[:, None] + torch.arange(h)  # (B, H) rows of the padded image
    cols = left[:, None] + torch.arange(w)  # (B, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    return padded[torch.arange(b)[:, None, None, None], torch.arange(c)[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]


def _jump(curve, drop_epoch: int):
    """Test accuracy after the first epoch at the lower lr minus after the last one before it (F:
    epoch 6 minus epoch 5); None when the run has no such pair."""
    return float(curve[drop_epoch] - curve[drop_epoch - 1]) if 1 <= drop_epoch < len(curve) else None


def _finite(values) -> list:
    return [float(v) if math.isfinite(v) else None for v in values]


def torch_lab_f(raw: dict, seed: int, *, epochs: int = 10, blocks: int = 3, width: int = 16, batch_size: int = 128,
                drop_epoch: int = 5, lr: float = 0.1, momentum: float = 0.0, weight_decay: float = 5e-4,
                augment: bool = True, eval_batch: int = 500, log=None) -> dict:
    """Lab F in PyTorch, one seed: the course script's loop on ``raw`` (``load_dataset`` arrays,
    uint8 NHWC). Each epoch: a fresh shuffle, batches of ``batch_size`` and the short rest,
    crop + flip, ``Normalize(CIFAR_MEAN, CIFAR_STD)``, cross entropy, ``SGD(lr, momentum,
    weight_decay)`` at ``lr`` before ``drop_epoch`` and ``lr / 10`` from it; then the whole test
    split in eval mode. ``log``: called with a line per epoch. Returns the per-epoch curves
    (``test_acc``, ``test_loss``, ``train_loss``, ``train_acc``, ``epoch_s``), ``final_test_acc``,
    ``jump`` (:func:`_jump`) and ``seconds``."""
    import torch
    from torch import nn

    from jaxlabs.tasks.cifar_resnet20 import CIFAR_MEAN, CIFAR_STD

    torch.manual_seed(seed)
    x = torch.from_numpy(np.ascontiguousarray(raw["train_images"].transpose(0, 3, 1, 2)))  # uint8 NCHW
    y = torch.from_numpy(raw["train_labels"].astype(np.int64))
    xt = torch.from_numpy(np.ascontiguousarray(raw["test_images"].transpose(0, 3, 1, 2)))
    yt = torch.from_numpy(raw["test_labels"].astype(np.int64))
    mean = torch.tensor(CIFAR_MEAN, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(CIFAR_STD, dtype=torch.float32).view(1, -1, 1, 1)
    model = CifarResNet(blocks, width)  # experiments.torch_models: ResNet20 at 3 blocks of width 16
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()

    def evaluate() -> tuple[float, float]:
        model.eval()
        loss_sum, correct = 0.0, 0
        with torch.no_grad():
            for i in range(0, len(xt), eval_batch):
                logits = model((xt[i:i + eval_batch].float() / 255.0 - mean) / std)
                labels = yt[i:i + eval_batch]
                loss_sum += float(nn.functional.cross_entropy(logits, labels, reduction="sum"))
                correct += int((logits.argmax(1) == labels).sum())
        return loss_sum / len(xt), correct / len(xt)

    curves = {k: [] for k in ("test_acc", "test_loss", "train_loss", "train_acc", "epoch_s")}
    start = time.perf_counter()
    for epoch in range(epochs):
        t0 = time.perf_counter()
        lr_now = lr if epoch < drop_epoch else lr * 0.1  # MultiStepLR([drop_epoch], 0.1), stepped per epoch
        for group in opt.param_groups:
            group["lr"] = lr_now
        model.train()
        losses, correct = [], 0
        for rows in torch.randperm(len(x)).split(batch_size):
            images = x[rows].float() / 255.0
            if augment:
                images = crop_flip_torch(images)
            logits = model((images - mean) / std)
            loss = loss_fn(logits, y[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            correct += int((logits.argmax(1) == y[rows]).sum())
        test_loss, test_acc = evaluate()
        seconds = time.perf_counter() - t0
        for k, v in (("test_acc", test_acc), ("test_loss", test_loss), ("train_loss", float(np.mean(losses))),
                     ("train_acc", correct / len(x)), ("epoch_s", seconds)):
            curves[k].append(v)
        if log is not None:
            log(f"  PyTorch seed {seed} epoch {epoch + 1}/{epochs}: test accuracy {test_acc:.4f} "
                f"(lr {lr_now:g}, train loss {curves['train_loss'][-1]:.4f}), {seconds:.1f} s")
    return {"seed": seed, **{k: _finite(v) for k, v in curves.items()}, "final_test_acc": curves["test_acc"][-1],
            "jump": _jump(curves["test_acc"], drop_epoch), "seconds": time.perf_counter() - start}


def save_f_json(path, doc: dict) -> None:
    """``doc`` to ``path`` whole (jaxlabs.atomic): a Ctrl-C while it is written takes effect once
    it is on disk (jaxlabs.interrupt's handling, as for a checkpoint), so the file always holds
    every finished seed. Off the main thread, where no SIGINT arrives, it is written plainly."""
    main = threading.current_thread() is threading.main_thread()
    with stop_at_checkpoint() if main else contextlib.nullcontext():
        atomic.write_json(Path(path), doc)


def open_f_json(path, config: dict) -> dict:
    """The --json document of Lab F: the one at ``path`` when it holds PyTorch seeds of
    ``config`` (the configuration and the data), else a new one. Written at once, so a path that
    cannot be written fails before a seed is trained. ValueError (one line) for a file that holds
    anything else; OSError when it cannot be written."""
    path = Path(path)
    fix = "pass another --json or delete it"
    if path.exists():
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"argument --json: cannot read {path} as JSON ({str(e).splitlines()[0]}); {fix}") from None
        if not isinstance(doc, dict) or doc.get("lab") != "F" or not isinstance(doc.get("torch_seeds"), list):
            what = f"Lab {doc['lab']}'s figures" if isinstance(doc, dict) and "lab" in doc else "something else"
            raise ValueError(f"argument --json: {path} holds {what}, not Lab F's PyTorch seeds; {fix}")
        stored = doc.get("config") if isinstance(doc.get("config"), dict) else {}
        differ = [k for k in dict.fromkeys([*config, *stored]) if stored.get(k) != config.get(k)]
        if differ:
            raise ValueError(f"argument --json: the seeds in {path} were trained with another configuration or data "
                             f"(differs in {', '.join(differ)}); {fix}")
        epochs = config["epochs"]
        for r in doc["torch_seeds"]:
            if not (isinstance(r, dict) and isinstance(r.get("seed"), int) and isinstance(r.get("test_acc"), list)
                    and len(r["test_acc"]) == epochs and isinstance(r.get("final_test_acc"), (int, float))):
                raise ValueError(f"argument --json: {path} has a seed entry that is not a finished seed; {fix}")
    else:
        doc = {"lab": "F", "config": config, "torch_seeds": []}
    save_f_json(path, doc)
    return doc


def _same(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-6)  # traced numbers went through float32
    return a == b


def jaxlabs_f(path) -> dict:
    """jaxlabs' Lab F figures: the "0.1 then 0.01" members of a ``results.json`` written by
    ``python -m experiments.reproduce F``, checked to be the course script's configuration.
    Returns ``seeds``, ``final`` (test accuracy after the last epoch) and ``jump`` per member that
    did not diverge, ``curves`` (members, epochs) of per-epoch test accuracy from ``curves.npz``
    beside it (None without), ``data`` (what the members trained on), ``diverged`` (seeds) and
    ``notes``. FileNotFoundError or ValueError, one line, for anything else."""
    path = Path(path)
    if path.is_dir() and (path / "results.json").is_file():  # the study's folder
        path = path / "results.json"
    how = (f"pass the results.json that `python -m experiments.reproduce F --data-dir DIR` writes "
           f"({F_RESULTS_HINT} with its default --out)")
    flag = "argument --jaxlabs-results"
    if not path.is_file():
        raise FileNotFoundError(f"{flag}: {path}: no such file; {how}")
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{flag}: cannot read {path} as JSON ({str(e).splitlines()[0]}); {how}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("members"), list) or "study" not in meta:
        raise ValueError(f"{flag}: {path} is not a results.json of experiments.reproduce; {how}")
    if meta["study"] != F_STUDY:
        raise ValueError(f"{flag}: {path} holds the results of study {meta['study']!r}, not {F_STUDY}; {how}")
    if meta.get("quick"):
        raise ValueError(f"{flag}: {path} is a --quick run (tiny synthetic data: not a result); "
                         "run `python -m experiments.reproduce F` without --quick")
    picked = [(i, r) for i, r in enumerate(meta["members"]) if isinstance(r, dict) and r.get("setting") == F_SETTING]
    if not picked:
        raise ValueError(f"{flag}: {path} has no members of the {F_SETTING!r} setting; {how}")
    want = {**F_CONFIG, "synthetic": 0}
    differ = []
    for k, v in want.items():
        others = [r[k] for _, r in picked if k in r and not _same(r[k], v)]
        if others:
            differ.append(f"{k} {others[0]!r}, not {v!r}")
    if differ:
        raise ValueError(f"{flag}: the {F_SETTING!r} members in {path} were trained with another configuration "
                         f"({'; '.join(differ)}), not the course script's")
    drop, epochs = F_CONFIG["drop_epoch"], F_CONFIG["epochs"]
    notes, curves = [], None
    npz = path.with_name("curves.npz")
    if npz.is_file():
        try:
            with np.load(npz) as z:
                acc, curve_seeds = np.asarray(z["test_acc"], np.float64), np.asarray(z["seed"])
        except (OSError, ValueError, KeyError, EOFError) as e:
            notes.append(f"{npz} is not readable ({type(e).__name__}): jaxlabs' per-epoch curves left out")
        else:
            members = meta["members"]
            if acc.ndim == 2 and len(acc) == len(members) and acc.shape[1] >= epochs and all(
                    isinstance(r, dict) and r.get("seed") == int(s) for r, s in zip(members, curve_seeds)):
                curves = acc[[i for i, _ in picked], :epochs]
            else:
                notes.append(f"{npz} does not match the members of {path.name}: jaxlabs' per-epoch curves left out")
    else:
        notes.append(f"no curves.npz beside {path}: jaxlabs' per-epoch curves left out")
    seeds, final, jump, diverged, rows_kept = [], [], [], [], []
    for j, (_, r) in enumerate(picked):
        acc_final = r.get("test_acc")
        if r.get("status") == "diverged" or not isinstance(acc_final, (int, float)) or not math.isfinite(acc_final):
            diverged.append(r.get("seed"))
            continue
        before, after = r.get(f"test_acc_epoch{drop}"), r.get(f"test_acc_epoch{drop + 1}")
        if not (isinstance(before, (int, float)) and isinstance(after, (int, float))):
            before, after = (None, None) if curves is None else (curves[j, drop - 1], curves[j, drop])
        seeds.append(r.get("seed"))
        final.append(float(acc_final))
        jump.append(None if before is None else float(after - before))
        rows_kept.append(j)
    if not final:
        raise ValueError(f"{flag}: every {F_SETTING!r} member in {path} diverged: no accuracy to compare")
    names = list(dict.fromkeys(r["data"] for _, r in picked if r.get("data"))) or \
        [d for d in meta.get("data") or [] if isinstance(d, str)]
    return {"path": str(path), "seeds": seeds, "final": final, "jump": jump, "diverged": diverged,
            "curves": None if curves is None else curves[rows_kept],
            "data": "; ".join(names) if names else "data not named in results.json", "notes": notes}


def _spread(values: list[float]) -> dict:
    a = np.asarray(values, np.float64)
    return {"mean": float(a.mean()), "std": float(a.std()), "min": float(a.min()), "max": float(a.max()),
            "n": int(a.size)}


def _spread_line(name: str, s: dict, signed: bool = False) -> str:
    f = "+.4f" if signed else ".4f"
    return (f"    {name}: {s['mean']:{f}} +- {s['std']:.4f} (mean +- population std; min {s['min']:{f}}, "
            f"max {s['max']:{f}}) over {s['n']} seed{'s' if s['n'] != 1 else ''}")


def _within_line(jax_s: dict, torch_s: dict, signed: bool = False) -> str:
    f = "+.4f" if signed else ".4f"
    inside = torch_s["min"] <= jax_s["mean"] <= torch_s["max"]
    return (f"    jaxlabs' mean {jax_s['mean']:{f}} lies {'within' if inside else 'OUTSIDE'} PyTorch's seed range "
            f"[{torch_s['min']:{f}}, {torch_s['max']:{f}}]")


def report_f(torch_runs: list[dict], jax_side: dict | None, data: str) -> tuple[list[str], dict]:
    """The comparison's lines and figures: per-epoch test accuracy per seed, final test accuracy
    and the jump at the drop on both sides, whether jaxlabs' means lie within PyTorch's seed range."""
    epochs, drop = F_CONFIG["epochs"], F_CONFIG["drop_epoch"]
    cell = lambda v: "      -" if v is None or not math.isfinite(v) else f"{v:7.4f}"  # noqa: E731
    lines = [f"  test accuracy after each epoch (lr {F_CONFIG['lr']:g} up to epoch {drop}, "
             f"{F_CONFIG['lr'] * 0.1:g} from epoch {drop + 1}):",
             "    " + f"{'epoch':12s}" + "".join(f"{e + 1:>8d}" for e in range(epochs))]
    table = [(f"PyTorch {r['seed']}", r["test_acc"]) for r in torch_runs]
    table.append(("PyTorch mean", np.mean([r["test_acc"] for r in torch_runs], axis=0).tolist()))
    if jax_side is not None and jax_side["curves"] is not None:
        table += [(f"jaxlabs {s}", c.tolist()) for s, c in zip(jax_side["seeds"], jax_side["curves"])]
        table.append(("jaxlabs mean", jax_side["curves"].mean(axis=0).tolist()))
    lines += ["    " + f"{name:12s}" + "".join(f" {cell(v)}" for v in curve) for name, curve in table]
    figures = {"data": data, "torch": {"seeds": [r["seed"] for r in torch_runs],
                                       "final": _spread([r["final_test_acc"] for r in torch_runs])}}
    lines += [f"  final test accuracy (epoch {epochs}):", _spread_line("PyTorch", figures["torch"]["final"])]
    if jax_side is not None:
        figures["jaxlabs"] = {"seeds": jax_side["seeds"], "diverged": jax_side["diverged"], "data": jax_side["data"],
                              "final": _spread(jax_side["final"])}
        lines += [_spread_line("jaxlabs", figures["jaxlabs"]["final"]),
                  _within_line(figures["jaxlabs"]["final"], figures["torch"]["final"])]
    torch_jumps = [r["jump"] for r in torch_runs if r["jump"] is not None]
    if torch_jumps:
        figures["torch"]["jump"] = _spread(torch_jumps)
        lines += [f"  jump at the drop (epoch {drop + 1} minus epoch {drop} test accuracy):",
                  _spread_line("PyTorch", figures["torch"]["jump"], signed=True)]
        jax_jumps = [] if jax_side is None else [j for j in jax_side["jump"] if j is not None]
        if jax_jumps:
            figures["jaxlabs"]["jump"] = _spread(jax_jumps)
            lines += [_spread_line("jaxlabs", figures["jaxlabs"]["jump"], signed=True),
                      _within_line(figures["jaxlabs"]["jump"], figures["torch"]["jump"], signed=True)]
        elif jax_side is not None:
            lines.append(f"    jaxlabs: no epoch {drop} and {drop + 1} accuracies in {jax_side['path']}")
    if jax_side is None:
        lines.append(f"  jaxlabs: not compared. Add its figures with --jaxlabs-results PATH, the results.json of "
                     f"`python -m experiments.reproduce F --data-dir DIR` ({F_RESULTS_HINT} with its default --out; "
                     "hours on a CPU)")
        lines.append(f"  data: PyTorch trained on {data}")
    else:
        if jax_side["diverged"]:
            lines.append(f"    jaxlabs seeds {jax_side['diverged']} diverged: left out above")
        same = jax_side["data"] == data
        lines.append(f"  data: PyTorch trained on {data}; jaxlabs' members on {jax_side['data']}"
                     + ("" if same else " (not the same data: the comparison is only indicative)"))
        lines += [f"  note: {n}" for n in jax_side["notes"]]
    return lines, figures


def main_f(args) -> int:
    """Lab F: PyTorch's seeds trained here (each saved to --json as it finishes), jaxlabs' read
    from --jaxlabs-results."""
    from jaxlabs.tasks.cifar_resnet20 import CIFAR_MEAN, CIFAR_STD
    from jaxlabs.tasks.classify import data_name

    config = dict(F_CONFIG)
    seeds = list(range(args.seeds))
    jax_side = None
    try:
        if args.jaxlabs_results is not None:  # first: a wrong path fails before the data is decoded
            jax_side = jaxlabs_f(args.jaxlabs_results)
        raw = load_dataset("cifar10", args.data_dir)
    except (ValueError, FileNotFoundError) as e:  # a bad results.json, a dataset that is not on this machine
        fail(PROG, str(e))
    data = data_name(raw, "CIFAR-10")  # the copy's name, e.g. "cifar10-jpeg (JPEG copy of CIFAR-10)"
    key = {**config, "mean": list(CIFAR_MEAN), "std": list(CIFAR_STD), "data": data,
           "n_train": int(len(raw["train_labels"])), "n_test": int(len(raw["test_labels"]))}
    doc = None
    if args.json:
        try:
            doc = open_f_json(args.json, key)
        except ValueError as e:
            fail(PROG, str(e))
        except OSError as e:
            fail(PROG, f"argument --json: cannot write {args.json} ({e.strerror or e})")
    b, w = config["blocks"], config["width"]
    print(f"Lab F: {2 + 6 * b}-layer ResNet ({b} basic blocks x 3 stages, {w}/{2 * w}/{4 * w} channels), "
          f"SGD lr {config['lr']:g} then {config['lr'] * 0.1:g} from epoch {config['drop_epoch'] + 1}, "
          f"weight decay {config['weight_decay']:g}, momentum {config['momentum']:g}, batch {config['batch_size']}, "
          f"{config['epochs']} epochs, crop+flip: {'on' if config['augment'] else 'off'}; seeds {seeds[0]}-{seeds[-1]}")
    print(f"  data: {data}, {key['n_train']} train and {key['n_test']} test images")
    if jax_side is not None:
        print(f"  jaxlabs: {len(jax_side['final'])} seeds of {F_STUDY} {F_SETTING!r} from {jax_side['path']}, "
              f"trained on {jax_side['data']}")
    done = {r["seed"]: r for r in doc["torch_seeds"]} if doc is not None else {}
    if not args.json:
        print("  (no --json: an interrupted run keeps nothing; with --json PATH each finished seed is saved)")
    runs = []
    try:
        for seed in seeds:
            if seed in done:
                r = done[seed]
                print(f"  PyTorch seed {seed}: already in {args.json}, skipped "
                      f"(final test accuracy {r['final_test_acc']:.4f}, trained in {r.get('seconds', 0):.0f} s)")
                runs.append(r)
                continue
            r = torch_lab_f(raw, seed, **config, log=lambda line: print(line, flush=True))
            runs.append(r)
            if doc is not None:
                doc["torch_seeds"] = sorted([*(x for x in doc["torch_seeds"] if x["seed"] != seed), r],
                                            key=lambda x: x["seed"])
                save_f_json(args.json, doc)
                print(f"  PyTorch seed {seed}: done in {r['seconds']:.0f} s, saved to {args.json}", flush=True)
    except KeyboardInterrupt as e:  # Interrupted: Ctrl-C while a finished seed was written, which it waited for
        lost = "" if isinstance(e, Interrupted) else "the running seed is lost; "
        saved = ", ".join(str(r["seed"]) for r in doc["torch_seeds"]) if doc is not None else ""
        kept = (f"{args.json} holds the finished seeds ({saved or 'none yet'}); run the same command again to "
                "train the rest" if doc is not None else "nothing was saved (pass --json PATH to keep finished seeds)")
        print(f"{PROG}: interrupted: {lost}{kept}", file=sys.stderr)
        return 130
    except OSError as e:
        fail(PROG, f"argument --json: cannot write {args.json} ({e.strerror or e}); the seeds above are not saved")
    lines, figures = report_f(runs, jax_side, data)
    print("\n".join(lines))
    if doc is not None:
        doc["summary"] = {"seeds": seeds, **figures}
        try:
            save_f_json(args.json, doc)
        except OSError as e:
            fail(PROG, f"argument --json: cannot write {args.json} ({e.strerror or e})")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        import torch
    except ImportError:
        fail(PROG, "PyTorch is not installed; pip install torch (only this script needs it)")
    torch.set_num_threads(args.torch_threads)
    if args.lab == "F":
        return main_f(args)
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
        atomic.write_json(args.json, {"lab": args.lab, "seeds": seeds, "jaxlabs": jax_accs, "torch": torch_accs,
                                      "jaxlabs_s": jax_s, "torch_s": torch_s, "same_start_rel_diff": same_start},
                          indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
