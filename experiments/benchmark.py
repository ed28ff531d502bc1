"""Lab A, timed three ways in one run: the vmapped grid, the same members one at a time in JAX, and
the lab report's own PyTorch loop (eager, one configuration after another). With ``--conv``: the
conv labs' training speed (ResNet20, Lab D's CNN) against the report-style PyTorch loop.

    python -m experiments.benchmark                    # 3 lr x 3 seeds, N=2000, 1000 epochs
    python -m experiments.benchmark --seeds 8 --epochs 2000 --json runs/bench.json
    python -m experiments.benchmark --conv             # ResNet20 and Lab D CNN, 1 and 4 members (vmap, map)
    python -m experiments.benchmark --plans            # every plan and auto, and compaction's gain
    python -m experiments.benchmark --suite device     # the same on an accelerator, at its sizes
    python -m experiments.benchmark --sweep-default    # lr_sweep as shipped against --plan vmap
    python -m experiments.benchmark --devices-overhead # the default sweep on 4 simulated devices vs 1

Every member runs the same number of epochs (the tolerance is set unreachable), so the three
paths do the same arithmetic: full-batch Adam on 1600 points through the SiLU MLP, plus (JAX paths)
the per-epoch validation MSE that the sweep records. Compile time is reported apart. PyTorch is an
optional dependency of this benchmark only (``pip install torch``); without it that column is
skipped.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxlabs.cli import ArgumentParser, int_at_least, positive_float_list
from jaxlabs.sweep import EngineOptions, grid_members, run_group
from jaxlabs.tasks import get_task
from jaxlabs.train import make_train


def parse_args(argv=None):
    p = ArgumentParser(prog="python -m experiments.benchmark", description=__doc__.split("\n\n")[0])
    p.add_argument("--lr", type=positive_float_list("--lr", "0.001,0.01,0.1"), default=[0.001, 0.01, 0.1],
                   help="learning rates (default: 0.001,0.01,0.1)")
    p.add_argument("--seeds", type=int_at_least(1), default=3, help="seeds per learning rate (default: %(default)s)")
    p.add_argument("--n", type=int_at_least(10), default=2000, help="samples, split 8:1:1 (default: %(default)s)")
    p.add_argument("--epochs", type=int_at_least(1), default=1000, help="epochs per member (default: %(default)s)")
    p.add_argument("--width", type=int_at_least(1), default=64, help="hidden units (default: %(default)s)")
    p.add_argument("--depth", type=int_at_least(1), default=4, help="hidden layers (default: %(default)s)")
    p.add_argument("--skip-torch", action="store_true", help="do not run the PyTorch loop")
    p.add_argument("--torch-threads", type=int_at_least(1), default=None,
                   help="torch.set_num_threads for the PyTorch loop (default: every core, as PyTorch "
                        "does; 2 with --conv; on a busy machine use 1: oversubscribed threads slow it 30x)")
    p.add_argument("--plans", action="store_true",
                   help="members per second under each plan (vmap, map, hybrid:K, auto) for Lab A, the Lab D "
                        "CNN and ResNet20 at several member counts, and the gain of compaction")
    p.add_argument("--suite", choices=("cpu", "device"), default=None,
                   help="--plans at this suite's sizes: cpu (this machine) or device (one accelerator: 1,024 "
                        "Lab A members, 64 ResNet20 members x 10 epochs); --suite alone implies --plans")
    p.add_argument("--all-devices", dest="all_devices", action="store_true",
                   help="--plans: split members over every device present (default: one device)")
    p.add_argument("--sweep-default", dest="sweep_default", action="store_true",
                   help="time `python -m experiments.lr_sweep` as shipped (twice: probing, then cached) against --plan vmap")
    p.add_argument("--compaction", action="store_true",
                   help="only the compaction study of --plans (a Lab A learning-rate study, vmap against auto + "
                        "compaction)")
    p.add_argument("--chunk-spread", dest="chunk_spread", type=int_at_least(1), default=None, metavar="ROUNDS",
                   help="time one chunk of the default grid under each plan ROUNDS times in rotation: how much one "
                        "chunk's time varies (what auto's probe sees)")
    p.add_argument("--devices-overhead", dest="devices_overhead", action="store_true",
                   help="time the default sweep split over 4 simulated CPU devices against one device")
    p.add_argument("--conv", action="store_true",
                   help="benchmark the conv labs instead (ResNet20 batch 128 SGD, Lab D CNN batch 64 Adam)")
    p.add_argument("--models", default="resnet20,cnn", help="--conv: models, of resnet20,cnn (default: %(default)s)")
    p.add_argument("--members", default="1,4", help="--conv: member counts (default: %(default)s)")
    p.add_argument("--resnet-steps", type=int_at_least(1), default=8,
                   help="--conv: ResNet20 training batches per epoch (default: %(default)s)")
    p.add_argument("--cnn-steps", type=int_at_least(1), default=40,
                   help="--conv: Lab D CNN training batches per epoch (default: %(default)s)")
    p.add_argument("--repeats", type=int_at_least(1), default=3,
                   help="--conv: timed epochs per path, interleaved; the median is reported (default: %(default)s)")
    p.add_argument("--conv-impl", choices=("auto", "cpu", "lax", "im2col"), default="auto",
                   help="--conv: jaxlabs' convolution (jaxlabs.models.conv; auto: conv_for_backend())")
    p.add_argument("--conv-plans", default="vmap,map",
                   help="--conv: plans for more than one member, of vmap, map, hybrid:K (default: %(default)s; "
                        "one member runs alone)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    return p.parse_args(argv)


def torch_report_loop(data, lrs, seeds, width, depth, epochs, threads):
    """The report's training code, verbatim in spirit: eager PyTorch, Adam, MSE, a Python while
    loop that compares the loss tensor every epoch, one configuration after another."""
    import torch
    from torch import nn

    torch.set_num_threads(threads)

    class FeedforwardNN(nn.Module):
        def __init__(self, input_dim, hidden_dim, output_dim, num_layers):
            super().__init__()
            self.fc1 = nn.Linear(input_dim, hidden_dim)
            self.hidden_layers = nn.ModuleList([nn.Linear(hidden_dim, hidden_dim) for _ in range(num_layers - 1)])
            self.fc2 = nn.Linear(hidden_dim, output_dim)
            self.activation = nn.SiLU()

        def forward(self, x):
            x = self.activation(self.fc1(x))
            for layer in self.hidden_layers:
                x = self.activation(layer(x))
            return self.fc2(x)

    def train_model(model, criterion, optimizer, X_train, y_train, max_epochs, tolerance):
        losses = []
        loss = 1.0
        epoch = 1
        while loss > tolerance:
            optimizer.zero_grad()
            outputs = model(X_train)
            loss = criterion(outputs, y_train)
            losses.append(loss)
            loss.backward()
            optimizer.step()
            epoch = epoch + 1
            if epoch % 2000 == 0:
                print(f"Epoch [{epoch}], Loss: {loss.item():.4f}", file=sys.stderr)
            if epoch > max_epochs:
                break
        return losses

    X = torch.from_numpy(np.array(data["x_train"]))  # (1600, 1), a writable copy
    y = torch.from_numpy(np.array(data["y_train"]))
    final = []
    t0 = time.perf_counter()
    for lr in lrs:
        for seed in seeds:
            torch.manual_seed(seed)
            model = FeedforwardNN(1, width, 1, depth)
            opt = torch.optim.Adam(model.parameters(), lr=lr)
            losses = train_model(model, nn.MSELoss(), opt, X, y, epochs, tolerance=-1.0)
            final.append(losses[-1].item())
    return time.perf_counter() - t0, final


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.plans or args.suite or args.sweep_default or args.devices_overhead or args.compaction or args.chunk_spread:
        from experiments import plan_benchmark

        results = {}
        if args.plans or args.suite:
            results["plans"] = plan_benchmark.run(args.suite or "cpu", None, devices_all=args.all_devices)
        if args.compaction and not (args.plans or args.suite):
            results["compaction"] = plan_benchmark.compaction_gain(jax.devices()[:1])
            print(f"  auto + compaction is {results['compaction']['gain']:.2f}x as fast as vmap without compaction")
        if args.chunk_spread:
            results["chunk_spread"] = plan_benchmark.chunk_spread(args.chunk_spread)
        if args.sweep_default:
            results["sweep_default"] = plan_benchmark.default_sweep_vs_vmap()
        if args.devices_overhead:
            results["devices_overhead"] = plan_benchmark.devices_overhead()
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1, default=str)
            print(f"wrote {args.json}")
        return 0
    if args.conv:
        return conv_benchmark(args)
    if args.torch_threads is None:
        args.torch_threads = os.cpu_count() or 1
    task = get_task("fit-log2cos")
    static = task.resolve_static(n=args.n, width=args.width, depth=args.depth, epochs=args.epochs)
    trainer, data = task.build(static)
    seeds = list(range(args.seeds))
    member_seeds, hp = grid_members(seeds, lr=args.lr, tolerance=[0.0])  # never converges: equal work
    members = len(member_seeds)
    device = jax.devices()[0]
    machine = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
               "cpu_count": os.cpu_count(), "jax": jax.__version__, "device": str(device.device_kind),
               "backend": jax.default_backend()}
    print(f"Lab A: {members} members ({len(args.lr)} lr x {args.seeds} seeds), N={args.n}, "
          f"width {args.width}, depth {args.depth}, {args.epochs} epochs each, on {machine['backend']} "
          f"({machine['device']}, {machine['cpu_count']} CPUs)")

    swept = run_group(trainer, data, member_seeds, hp, progress=False, options=EngineOptions(chunk=task.chunk))
    t_vmap = swept.run_s
    print(f"  vmapped grid        : {t_vmap:8.2f} s  (+{swept.compile_s:.1f} s compile)")

    train = jax.jit(make_train(trainer))  # lr is traced: one compile serves every member
    t0 = time.perf_counter()
    jax.block_until_ready(train(jax.random.key(0), {k: jnp.float32(v[0]) for k, v in hp.items()}, data))
    compile_one = time.perf_counter() - t0
    t0 = time.perf_counter()
    alone_curves = []
    for i in range(members):
        curves, final = train(jax.random.key(member_seeds[i]), {k: jnp.float32(v[i]) for k, v in hp.items()}, data)
        alone_curves.append(np.asarray(jax.block_until_ready(curves["loss"])))
    t_alone = time.perf_counter() - t0
    print(f"  JAX one at a time   : {t_alone:8.2f} s  (+{compile_one:.1f} s first call)")
    # The same members, so the same numbers: a benchmark of different work would mean nothing.
    # Float32 rounding (batched vs unbatched matmuls) grows chaotically in the unstable runs (lr 0.1
    # overshoots to losses of ~40 within ten epochs), so the check covers the first 5 epochs;
    # tests/test_engine.py pins 1e-5 over 40 steps at stable learning rates.
    np.testing.assert_allclose(np.stack(alone_curves)[:, :5], swept.curves["loss"][:, :5], rtol=1e-5)

    t_torch = None
    if not args.skip_torch:
        try:
            t_torch, _ = torch_report_loop(data, args.lr, seeds, args.width, args.depth, args.epochs,
                                           threads=args.torch_threads)
            print(f"  PyTorch report loop : {t_torch:8.2f} s  ({args.torch_threads} threads)")
        except ImportError:
            print("  PyTorch report loop : skipped (torch not installed: pip install torch)")
    print(f"\nJAX one at a time / vmapped grid = {t_alone / t_vmap:.2f}x")
    if t_torch is not None:
        print(f"PyTorch report loop / vmapped grid = {t_torch / t_vmap:.2f}x")
        print(f"PyTorch report loop / JAX one at a time = {t_torch / t_alone:.2f}x")
    member_epochs = members * args.epochs
    print(f"throughput: vmapped {member_epochs / t_vmap:,.0f} member-epochs/s, one at a time "
          f"{member_epochs / t_alone:,.0f}" + (f", PyTorch {member_epochs / t_torch:,.0f}" if t_torch else ""))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "members": members, "epochs": args.epochs, "n": args.n,
                       "vmapped_s": t_vmap, "vmapped_compile_s": swept.compile_s, "jax_alone_s": t_alone,
                       "torch_s": t_torch, "torch_threads": args.torch_threads}, f, indent=1)
    return 0


# ------------------------------------------------------------------------------ --conv: Labs D and F
CONV_LABS = {  # model -> (task, batch size, the --*-steps argument)
    "resnet20": ("cifar-resnet20", 128, "resnet_steps"),
    "cnn": ("mnist-cnn", 64, "cnn_steps"),
}


def conv_lab_data(model: str, steps: int):
    """The task's static configuration on synthetic data with ``steps`` training batches per epoch,
    augmentation off (on both sides), one epoch per call; and its train/eval splits."""
    name, batch, _ = CONV_LABS[model]
    task = get_task(name)
    if model == "resnet20":  # train = synthetic, test = synthetic // 5
        static = task.resolve_static(synthetic=steps * batch, epochs=1, augment=False)
    else:  # subset 1: train:val = 4.8:1.2 of synthetic, test = synthetic // 6
        static = task.resolve_static(synthetic=steps * batch * 5 // 4, subset=1.0, epochs=1, augment=False)
    return task, static


def jax_conv_program(task, static: dict, members: int, conv_impl: str, plan=None):
    """The task's Trainer as one program of ``members`` members under ``plan`` (a jaxlabs.plans.Plan,
    default vmap: all members batched; map: one after another in the same program; hybrid:K), jitted
    with the engine's compile options
    as jaxlabs.sweep.run_group runs it, compiled; returns (run() -> seconds for one epoch, compile s,
    the data)."""
    from jaxlabs import models
    from jaxlabs.models.conv import compiler_options
    from jaxlabs.plans import VMAP
    from jaxlabs.sweep import member_keys
    from jaxlabs.train import init_member, run_epochs

    if conv_impl == "auto":
        trainer, data = task.build(static)
    else:  # the same task with another convolution injected (for before/after figures)
        impl = getattr(models, f"conv_{conv_impl}")
        original = models.conv_for_backend
        module = sys.modules[type(task).__module__]
        module.conv_for_backend = lambda backend=None: impl
        try:
            trainer, data = task.build(static)
        finally:
            module.conv_for_backend = original
    seeds = list(range(members))
    hp = {k: jnp.full((members,), v, jnp.float32) for k, v in task.hparams().items()}
    keys = jax.random.wrap_key_data(member_keys(seeds))
    data = jax.device_put(data)
    options = compiler_options()  # the engine's XLA options (on the CPU: Eigen's convolutions)
    vinit = jax.jit(jax.vmap(lambda k, h, d: init_member(trainer, k, h, d), in_axes=(0, 0, None)),
                    compiler_options=options)
    plan = plan or VMAP
    over = plan.over_members(
        lambda st, h, d: run_epochs(trainer, st, h, d, jnp.int32(0), 1, skip_stopped=plan.kind == "map"))
    vepoch = jax.jit(over, compiler_options=options)
    t0 = time.perf_counter()
    state = jax.block_until_ready(vinit(keys, hp, data))
    compiled = vepoch.lower(state, hp, data).compile()
    compile_s = time.perf_counter() - t0

    def run() -> float:
        t = time.perf_counter()
        out = compiled(state, hp, data)  # the same epoch from the same start every time: equal work
        jax.block_until_ready(out)
        return time.perf_counter() - t

    run()  # first execution (allocation, thread pool warm-up) off the clock
    return run, compile_s, data


def torch_conv_models():
    """The report-style PyTorch models: akamaster's CIFAR ResNet20 (option-A shortcut) and Lab D's
    CNN ([conv 5x5 pad 2 -> relu -> maxpool 2] x 2 -> fc 128 -> relu -> dropout 0.5 -> fc)."""
    import torch.nn.functional as F
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.pad = (cout - cin) // 2 if stride != 1 or cin != cout else None

        def forward(self, x):
            out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
            short = x if self.pad is None else F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
            return F.relu(out + short)

    class ResNet20(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16)
            blocks, cin = [], 16
            for width, stride in ((16, 1), (32, 2), (64, 2)):
                for b in range(3):
                    blocks.append(Block(cin, width, stride if b == 0 else 1))
                    cin = width
            self.blocks = nn.Sequential(*blocks)
            self.linear = nn.Linear(64, 10)

        def forward(self, x):
            out = self.blocks(F.relu(self.bn1(self.conv1(x))))
            return self.linear(F.avg_pool2d(out, out.size(3)).flatten(1))

    class CNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(1, 32, 5, padding=2), nn.Conv2d(32, 64, 5, padding=2)
            self.fc1, self.drop, self.fc2 = nn.Linear(64 * 7 * 7, 128), nn.Dropout(0.5), nn.Linear(128, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv1(x)), 2)
            x = F.max_pool2d(F.relu(self.conv2(x)), 2)
            return self.fc2(self.drop(F.relu(self.fc1(x.flatten(1)))))

    return {"resnet20": ResNet20, "cnn": CNN}


def torch_conv_program(model: str, data: dict, members: int, mean, std, threads: int):
    """The report-style loop: per member, a fresh model and optimizer, one epoch of shuffled
    batches (uint8 -> float / 255, normalised, NCHW), loss.backward(), optimizer.step(), then
    the same evaluation passes as the jaxlabs epoch (val if any, test) under no_grad. Members run
    one after another. Returns run() -> seconds for every member's epoch."""
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    _, batch, _ = CONV_LABS[model]
    build = torch_conv_models()[model]
    as_t = lambda a: torch.from_numpy(np.array(a))  # noqa: E731
    x_train, y_train = as_t(data["x_train"]), as_t(data["y_train"]).long()
    evals = [(as_t(data[f"x_{s}"]), as_t(data[f"y_{s}"]).long()) for s in ("val", "test") if f"x_{s}" in data]
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    sd = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    prep = lambda xb: (xb.permute(0, 3, 1, 2).float() / 255.0 - m) / sd  # noqa: E731
    criterion = nn.CrossEntropyLoss()

    def run() -> float:
        t = time.perf_counter()
        for seed in range(members):
            torch.manual_seed(seed)
            net = build()
            if model == "resnet20":
                opt = torch.optim.SGD(net.parameters(), lr=0.1, weight_decay=5e-4)
            else:
                opt = torch.optim.Adam(net.parameters(), lr=1e-3)
            net.train()
            for idx in torch.randperm(len(x_train)).split(batch):
                opt.zero_grad()
                loss = criterion(net(prep(x_train[idx])), y_train[idx])
                loss.backward()
                opt.step()
            net.eval()
            with torch.no_grad():
                for xs, ys in evals:
                    for i in range(0, len(xs), 1000):
                        criterion(net(prep(xs[i:i + 1000])), ys[i:i + 1000])
        return time.perf_counter() - t

    run()  # warm-up (allocator, oneDNN primitive caches) off the clock
    return run


def conv_benchmark(args) -> int:
    """jaxlabs vs the report-style PyTorch loop, train images/s, side by side and interleaved."""
    from jaxlabs.models.conv import compiler_options
    from jaxlabs.plans import VMAP, parse_plan
    threads = args.torch_threads or 2
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [m for m in models if m not in CONV_LABS]
    if bad:
        raise SystemExit(f"--models: unknown model {bad[0]!r} (choose from {', '.join(CONV_LABS)})")
    member_counts = [int(v) for v in args.members.split(",")]
    try:
        plans = [parse_plan(v) for v in args.conv_plans.split(",") if v.strip()]
    except ValueError as e:
        raise SystemExit(f"--conv-plans: {e}") from None
    if not plans or None in plans:
        raise SystemExit("--conv-plans: name the plans to time (vmap, map, hybrid:K), not auto and not nothing")
    try:
        import torch  # noqa: F401
        have_torch = not args.skip_torch
    except ImportError:
        have_torch = False
        print("PyTorch column skipped: torch is not installed (pip install torch)")
    print(f"jaxlabs {jax.__version__} on {jax.default_backend()} ({os.cpu_count()} CPUs), conv {args.conv_impl}; "
          f"PyTorch {threads} threads; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; "
          f"compile options {compiler_options()}; "
          f"load average {os.getloadavg()[0]:.1f}")
    rows = []
    for model in models:
        task, static = conv_lab_data(model, getattr(args, CONV_LABS[model][2]))
        for members in member_counts:
            for plan in ([VMAP] if members == 1 else plans):  # one member: the plan is moot
                run_jax, compile_s, data = jax_conv_program(task, static, members, args.conv_impl, plan)
                n_train = int(data["x_train"].shape[0])
                run_torch = None
                if have_torch:
                    spec_mean = (0.4914, 0.4822, 0.4465) if model == "resnet20" else (0.1307,)
                    spec_std = (0.2023, 0.1994, 0.2010) if model == "resnet20" else (0.3081,)
                    run_torch = torch_conv_program(model, data, members, spec_mean, spec_std, threads)
                t_jax, t_torch = [], []
                for _ in range(args.repeats):  # interleaved: both see the same load
                    t_jax.append(run_jax())
                    if run_torch:
                        t_torch.append(run_torch())
                images = n_train * members
                row = {"model": model, "members": members, "plan": str(plan), "train_images_per_member": n_train,
                       "jax_s": float(np.median(t_jax)), "jax_compile_s": compile_s,
                       "jax_img_s": images / float(np.median(t_jax)),
                       "torch_s": float(np.median(t_torch)) if t_torch else None,
                       "torch_img_s": images / float(np.median(t_torch)) if t_torch else None}
                rows.append(row)
                ratio = f"{row['jax_img_s'] / row['torch_img_s']:.2f}x" if t_torch else "-"
                print(f"  {model:8s} {members} member(s), {str(plan):4s}: jaxlabs {row['jax_img_s']:7.0f} img/s "
                      f"(compile {compile_s:.0f} s) | PyTorch "
                      + (f"{row['torch_img_s']:7.0f} img/s" if t_torch else "skipped") + f" | jaxlabs/PyTorch {ratio}",
                      flush=True)
    print("\n| model | members | plan | jaxlabs img/s | PyTorch img/s | jaxlabs / PyTorch |\n|---|---|---|---|---|---|")
    for r in rows:
        tp = f"{r['torch_img_s']:.0f}" if r["torch_img_s"] else "skipped"
        ratio = f"{r['jax_img_s'] / r['torch_img_s']:.2f}" if r["torch_img_s"] else "-"
        print(f"| {r['model']} | {r['members']} | {r['plan']} | {r['jax_img_s']:.0f} | {tp} | {ratio} |")
    print(f"\ntrain images/s in all (members x train images / median epoch time over {args.repeats} interleaved "
          "repeats); each epoch also evaluates the val/test splits on both sides; compile excluded; "
          "no augmentation")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"conv_impl": args.conv_impl, "torch_threads": threads, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
