"""The conv labs' training speed (ResNet20, Lab D's CNN) against the report-style PyTorch loop, side by side.

    python -m experiments.benchmark conv                                  # both models, 1 and 4 members
    python -m experiments.benchmark conv --models cnn --members 1,8 --plans vmap,map,hybrid:4
    python -m experiments.benchmark conv --conv-impl lax --json runs/conv-lax.json   # the accelerators' convolution

jaxlabs trains through the engine's own programs (:class:`jaxlabs.engine.programs.Programs`,
compiled with its XLA options, timed as auto times a chunk: one epoch from the same state each
time, compile off the clock); PyTorch runs the members one after another, each a fresh model
(``experiments.torch_models``) and optimizer: shuffled batches, loss.backward(), step, then the
same evaluation passes. Both train on synthetic data of the real shapes, augmentation off; the
two take turns (``--repeats``) so both see the same load; the median is reported.
"""
from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np

from experiments.bench import forced_plans, load, save
from jaxlabs.cli import int_at_least
from jaxlabs.engine.group import member_keys
from jaxlabs.engine.plans import VMAP
from jaxlabs.engine.programs import Programs, compiler_options
from jaxlabs.tasks import TASKS

# --conv-impl -> the backend the task builds its model for (Task(backend=...): its convolution,
# jaxlabs.models.conv_for_backend); auto: this machine's
CONV_BACKENDS = {"auto": None, "cpu": "cpu", "lax": "cuda"}
CONV_LABS = {  # model -> (task, batch size, its --*-steps argument, normalisation mean and std)
    "resnet20": ("cifar-resnet20", 128, "resnet_steps", (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cnn": ("mnist-cnn", 64, "cnn_steps", (0.1307,), (0.3081,)),
}


def model_list(text: str) -> list[str]:
    names = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in names if m not in CONV_LABS]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"{(bad or [text])[0]!r} is not a model; choose from {', '.join(CONV_LABS)}")
    return names


def count_list(text: str) -> list[int]:
    return [int_at_least(1)(v) for v in text.split(",")]


def add_arguments(p) -> None:
    p.add_argument("--models", type=model_list, default=model_list("resnet20,cnn"),
                   help="models, of resnet20,cnn (default: both)")
    p.add_argument("--members", type=count_list, default=[1, 4], help="member counts (default: 1,4)")
    p.add_argument("--plans", type=forced_plans, default=forced_plans("vmap,map"),
                   help="plans for more than one member, of vmap, map, hybrid:K (default: vmap,map; one member "
                        "runs alone)")
    p.add_argument("--resnet-steps", type=int_at_least(1), default=8,
                   help="ResNet20 training batches per epoch (default: %(default)s)")
    p.add_argument("--cnn-steps", type=int_at_least(1), default=40,
                   help="Lab D CNN training batches per epoch (default: %(default)s)")
    p.add_argument("--repeats", type=int_at_least(1), default=3,
                   help="timed epochs per path, taking turns; the median is reported (default: %(default)s)")
    p.add_argument("--conv-impl", choices=tuple(CONV_BACKENDS), default="auto",
                   help="jaxlabs' convolution: cpu (conv_cpu), lax (XLA's own, as built for an accelerator) or auto "
                        "(this machine's; jaxlabs.models.conv_for_backend)")
    p.add_argument("--torch-threads", type=int_at_least(1), default=2,
                   help="torch.set_num_threads (default: %(default)s; on a busy machine 1)")
    p.add_argument("--skip-torch", action="store_true", help="do not run the PyTorch loop")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")


def lab_static(model: str, steps: int, conv_impl: str = "auto") -> tuple:
    """The task (building its model with ``conv_impl``'s convolution) and its static configuration
    on synthetic data with ``steps`` training batches per epoch, augmentation off (on both sides),
    one epoch."""
    name, batch = CONV_LABS[model][:2]
    task = TASKS[name](backend=CONV_BACKENDS[conv_impl])
    if model == "resnet20":  # train = synthetic, test = synthetic // 5
        return task, task.resolve_static(synthetic=steps * batch, epochs=1, augment=False)
    # subset 1: train:val = 4.8:1.2 of synthetic, test = synthetic // 6
    return task, task.resolve_static(synthetic=steps * batch * 5 // 4, subset=1.0, epochs=1, augment=False)


def jax_epoch(trainer, data, members: int, traced: dict, plan):
    """(run() -> seconds of one epoch of ``members`` members under ``plan``, compile seconds)."""
    programs = Programs(trainer, data, plan)
    hp = {k: np.full(members, v, np.float32) for k, v in traced.items()}
    key_data = np.asarray(member_keys(range(members)))
    state = programs.init(key_data, hp)
    run = lambda: programs.timed_chunk(state, hp, 0, 1)[1]  # noqa: E731 - the same epoch from the same start
    run()  # compiles (off the clock), then the first execution (allocation, thread pool warm-up)
    return run, programs.compile_s


def torch_epoch(model: str, data: dict, members: int, threads: int):
    """The report-style loop: run() -> seconds for every member's epoch, one member after another."""
    import torch
    from torch import nn

    from experiments.torch_models import CifarResNet, TorchCNN

    torch.set_num_threads(threads)
    _, batch, _, mean, std = CONV_LABS[model]
    build = CifarResNet if model == "resnet20" else TorchCNN
    as_t = lambda a: torch.from_numpy(np.array(a))  # noqa: E731
    x_train, y_train = as_t(data["x_train"]), as_t(data["y_train"]).long()
    evals = [(as_t(data[f"x_{s}"]), as_t(data[f"y_{s}"]).long()) for s in ("val", "test") if f"x_{s}" in data]
    m, sd = (torch.tensor(v, dtype=torch.float32).view(1, -1, 1, 1) for v in (mean, std))
    prep = lambda xb: (xb.permute(0, 3, 1, 2).float() / 255.0 - m) / sd  # noqa: E731 - uint8 NHWC -> NCHW
    criterion = nn.CrossEntropyLoss()

    def run() -> float:
        t = time.perf_counter()
        for seed in range(members):
            torch.manual_seed(seed)
            net = build()
            opt = (torch.optim.SGD(net.parameters(), lr=0.1, weight_decay=5e-4) if model == "resnet20"
                   else torch.optim.Adam(net.parameters(), lr=1e-3))
            net.train()
            for idx in torch.randperm(len(x_train)).split(batch):
                opt.zero_grad()
                criterion(net(prep(x_train[idx])), y_train[idx]).backward()
                opt.step()
            net.eval()
            with torch.no_grad():
                for xs, ys in evals:
                    for i in range(0, len(xs), 1000):
                        criterion(net(prep(xs[i:i + 1000])), ys[i:i + 1000])
        return time.perf_counter() - t

    run()  # warm-up (allocator, oneDNN primitive caches) off the clock
    return run


def run(args) -> int:
    have_torch = not args.skip_torch
    if have_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            have_torch = False
            print("PyTorch column skipped: torch is not installed (pip install torch)")
    print(f"jaxlabs {jax.__version__} on {jax.default_backend()} ({os.cpu_count()} CPUs), conv {args.conv_impl}; "
          f"PyTorch {args.torch_threads} threads; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; "
          f"compile options {compiler_options()}; {load()}")
    rows = []
    for model in args.models:
        task, static = lab_static(model, getattr(args, CONV_LABS[model][2]), args.conv_impl)
        trainer, data = task.build(static)
        n_train = int(data["x_train"].shape[0])
        for members in args.members:
            for plan in [VMAP] if members == 1 else args.plans:  # one member: the plan is moot
                run_jax, compile_s = jax_epoch(trainer, data, members, task.hparams(), plan)
                run_torch = torch_epoch(model, data, members, args.torch_threads) if have_torch else None
                t_jax, t_torch = [], []
                for _ in range(args.repeats):  # taking turns: both see the same load
                    t_jax.append(run_jax())
                    if run_torch:
                        t_torch.append(run_torch())
                images = n_train * members
                jax_s, torch_s = float(np.median(t_jax)), float(np.median(t_torch)) if t_torch else None
                row = {"model": model, "members": members, "plan": str(plan), "train_images_per_member": n_train,
                       "jax_s": jax_s, "jax_compile_s": compile_s, "jax_img_s": images / jax_s,
                       "torch_s": torch_s, "torch_img_s": images / torch_s if torch_s else None}
                rows.append(row)
                ratio = f"{row['jax_img_s'] / row['torch_img_s']:.2f}x" if torch_s else "-"
                print(f"  {model:8s} {members} member(s), {str(plan):8s}: jaxlabs {row['jax_img_s']:7.0f} img/s "
                      f"(compile {compile_s:.0f} s) | PyTorch "
                      + (f"{row['torch_img_s']:7.0f} img/s" if torch_s else "skipped") + f" | jaxlabs/PyTorch {ratio}",
                      flush=True)
    print("\n| model | members | plan | jaxlabs img/s | PyTorch img/s | jaxlabs / PyTorch |\n|---|---|---|---|---|---|")
    for r in rows:
        tp = f"{r['torch_img_s']:.0f}" if r["torch_img_s"] else "skipped"
        ratio = f"{r['jax_img_s'] / r['torch_img_s']:.2f}" if r["torch_img_s"] else "-"
        print(f"| {r['model']} | {r['members']} | {r['plan']} | {r['jax_img_s']:.0f} | {tp} | {ratio} |")
    print(f"\ntrain images/s in all (members x train images / median epoch time over {args.repeats} turns); "
          "each epoch also evaluates the val/test splits on both sides; compile excluded; no augmentation")
    save(args.json, {"conv_impl": args.conv_impl, "torch_threads": args.torch_threads, "rows": rows})
    return 0
