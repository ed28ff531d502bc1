"""Lab G timed side by side: the hand-written jax.numpy path against Flax + Optax, and the
hand-written conv2d against lax.conv.

    python -m experiments.scratch_vs_library --data-dir DIR                    # 3 seeds, 2 epochs
    python -m experiments.scratch_vs_library --data-dir DIR --epochs 10 --json runs/scratch_vs_library.json

Part 1: both paths of the ``mnist-scratch`` task train the same members (seeds 0..K-1: the same
initialisation and the same batches) for the same steps, each as one vmapped program; compile and
run time are reported apart, with the ratio, and how far the two paths' results are apart.
Part 2: ``jaxlabs.scratch.conv2d`` (im2col, no lax.conv) against ``lax.conv_general_dilated`` on
one batch of 128 MNIST images through the report's CNN convolutions (1 -> 16 channels on 28x28,
then 16 -> 32 on 14x14, 3x3, padding 1), forward and forward + backward. The report's NumPy loop
took 45 s for one such training batch and the CNN was abandoned.
"""
from __future__ import annotations

import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxlabs import atomic, scratch
from jaxlabs.cli import ArgumentParser, fail, int_at_least
from jaxlabs.sweep import EngineOptions, run_group
from jaxlabs.tasks.scratch import OPTIMIZERS, ScratchTask

PROG = "python -m experiments.scratch_vs_library"
REPORT_CONV_S = 45.0  # the report's hand-written NumPy conv: seconds per training batch


def parse_args(argv=None):
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=None, help="MNIST IDX folder (default: the usual search)")
    p.add_argument("--seeds", type=int_at_least(1), default=3, help="members per path (default: %(default)s)")
    p.add_argument("--epochs", type=int_at_least(1), default=2, help="epochs of 391 steps (default: %(default)s)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="momentgd", help="(default: %(default)s)")
    p.add_argument("--conv-repeats", type=int_at_least(1), default=10, help="timed conv calls (default: %(default)s)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    return p.parse_args(argv)


def time_paths(args) -> dict:
    task, out = ScratchTask(), {}
    seeds = list(range(args.seeds))
    hp = {k: [v] * len(seeds) for k, v in task.traced_defaults.items()}
    for path in ("scratch", "library"):
        static = task.resolve_static(path=path, optimizer=args.optimizer, epochs=args.epochs, data_dir=args.data_dir)
        trainer, data = task.build(static)
        r = run_group(trainer, data, seeds, hp, static=static, progress=False, options=EngineOptions(chunk=args.epochs))
        out[path] = {"compile_s": r.compile_s, "run_s": r.run_s, "test_acc": r.final["test_acc"].tolist(),
                     "test_loss": r.final["test_loss"].tolist(), "steps": int(r.final["steps"][0])}
    return out


def _median_time(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))  # compile and warm up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def time_conv(repeats: int) -> dict:
    """The report's two conv layers on one batch: forward, and forward + backward (all grads)."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.random((128, 28, 28, 1), np.float32))  # (batch, 28, 28, 1)
    w1 = jnp.asarray(rng.normal(0, 0.3, (3, 3, 1, 16)).astype(np.float32))
    w2 = jnp.asarray(rng.normal(0, 0.1, (3, 3, 16, 32)).astype(np.float32))

    def lax_conv(x, w, b=None, stride=1, padding=1):
        return jax.lax.conv_general_dilated(x, w, (stride, stride), [(padding, padding)] * 2,
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))

    out = {}
    for name, conv in (("scratch", scratch.conv2d), ("lax", lax_conv)):
        def forward(x, w1, w2, conv=conv):
            h = jax.nn.relu(conv(x, w1, padding=1))[:, ::2, ::2]  # the report's "pooling": every 2nd pixel
            return jax.nn.relu(conv(h, w2, padding=1))  # (128, 14, 14, 32)

        loss = jax.jit(jax.value_and_grad(lambda x, w1, w2: jnp.sum(forward(x, w1, w2) ** 2), (0, 1, 2)))
        out[name] = {"forward_s": _median_time(jax.jit(forward), x, w1, w2, repeats=repeats),
                     "forward_backward_s": _median_time(loss, x, w1, w2, repeats=repeats)}
    diff = jnp.max(jnp.abs(jax.jit(lambda a, b: scratch.conv2d(a, b, padding=1))(x, w1) - lax_conv(x, w1)))
    out["max_abs_diff_layer1"] = float(diff)
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    print(f"{jax.devices()[0].platform} ({platform.processor() or platform.machine()}), jax {jax.__version__}")
    try:
        paths = time_paths(args)
    except (ValueError, FileNotFoundError) as e:
        fail(PROG, str(e))
    s, lib = paths["scratch"], paths["library"]
    print(f"\nmnist-scratch, {args.optimizer}, {args.seeds} members x {s['steps']} steps each, "
          "one vmapped program per path")
    print(f"{'path':<9} {'compile s':>10} {'run s':>8} {'ms/step':>8}  test_acc per seed   (a step: all members)")
    for name, r in paths.items():
        accs = " ".join(f"{a:.4f}" for a in r["test_acc"])
        print(f"{name:<9} {r['compile_s']:>10.2f} {r['run_s']:>8.2f} {1e3 * r['run_s'] / r['steps']:>8.2f}  {accs}")
    print(f"run time scratch / library: {s['run_s'] / lib['run_s']:.2f}; largest |test_acc difference| "
          f"{np.max(np.abs(np.subtract(s['test_acc'], lib['test_acc']))):.4f}, |test_loss difference| "
          f"{np.max(np.abs(np.subtract(s['test_loss'], lib['test_loss']))):.2e}")

    conv = time_conv(args.conv_repeats)
    print("\nconv2d, one batch of 128 through the report's two conv layers (median of "
          f"{args.conv_repeats}); max |scratch - lax| on layer 1: {conv['max_abs_diff_layer1']:.1e}")
    print(f"{'conv':<9} {'forward ms':>11} {'fwd+bwd ms':>11} {'report / this (fwd+bwd)':>24}")
    for name in ("scratch", "lax"):
        c = conv[name]
        print(f"{name:<9} {1e3 * c['forward_s']:>11.2f} {1e3 * c['forward_backward_s']:>11.2f} "
              f"{REPORT_CONV_S / c['forward_backward_s']:>24.0f}")
    print(f"hand-written / lax.conv: forward {conv['scratch']['forward_s'] / conv['lax']['forward_s']:.2f}, "
          f"forward + backward {conv['scratch']['forward_backward_s'] / conv['lax']['forward_backward_s']:.2f}")
    if args.json:
        atomic.write_json(args.json, {"args": vars(args), "paths": paths, "conv": conv,
                                      "device": jax.devices()[0].platform})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
