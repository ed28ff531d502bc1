"""The classification labs (D, E, F) on tiny data: DataLoader semantics, the best-validation
checkpoint, the lr schedule, and each task end to end through the vmapped engine."""
import gzip
import struct

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlabs.data import DatasetNotFoundError, crop_flip
from jaxlabs.data.batches import batch_order
from jaxlabs.sweep import EngineOptions, run_group
from jaxlabs.train import epoch_key
from jaxlabs.tasks.cifar_resnet20 import CifarResNet20Task, make_optimizer
from jaxlabs.tasks.fashion_mlp import FashionMLPTask
from jaxlabs.tasks.mnist_cnn import MnistCNNTask, mnist_splits

LOSS_RTOL = 1e-5  # float32 sums of a handful of cross entropies, same parameters both ways
IDX_NAMES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
             "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}


def write_idx_folder(folder, n_train, n_test, seed=0):
    """Four gzipped IDX files of random 28x28 images and labels (header written by hand)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
              "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8)}
    for key, name in IDX_NAMES.items():
        a = arrays[key]
        header = bytes([0, 0, 0x08, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
        (folder / f"{name}.gz").write_bytes(gzip.compress(header + a.tobytes()))
    return folder


def assert_final_shapes(final, members, classes=10, keys=("test_acc", "test_loss")):
    for k in keys:
        assert final[k].shape == (members,) and np.all(np.isfinite(final[k])), k
    assert final["per_class_acc"].shape == (members, classes)
    assert final["confusion"].shape == (members, classes, classes)


def test_batch_order_is_a_per_seed_permutation_cut_like_a_dataloader():
    full, rest = batch_order(jax.random.key(0), 10, 4)
    assert full.shape == (2, 4) and rest.shape == (2,)
    np.testing.assert_array_equal(np.sort(np.concatenate([np.ravel(full), rest])), np.arange(10))
    again, _ = batch_order(jax.random.key(0), 10, 4)
    other, _ = batch_order(jax.random.key(1), 10, 4)
    np.testing.assert_array_equal(full, again)  # deterministic per seed
    assert not np.array_equal(full, other)  # another seed, another order
    # each epoch draws a fresh order from its own key
    first, _ = batch_order(epoch_key(jax.random.key(0), 0), 10, 4)
    second, _ = batch_order(epoch_key(jax.random.key(0), 1), 10, 4)
    assert not np.array_equal(first, second)


def test_short_last_batch_is_one_step_averaged_like_pytorch(tmp_path):
    # 10 images, batch 4: steps of 4, 4 and 2 images. lr 0 keeps the parameters, so the epoch's
    # loss must be the mean of the three batch means (not the mean over the 10 images).
    task = FashionMLPTask()
    static = task.resolve_static(variant="adam", batch_size=4, hidden=8, epochs=1,
                                 data_dir=str(write_idx_folder(tmp_path / "fashion", 10, 6)))
    trainer, data = task.build(static)
    hp = {"lr": jnp.float32(0.0)}
    tx = trainer.optimizer(hp)
    carry = jax.jit(trainer.init, static_argnums=3)(jax.random.key(3), hp, data, tx)
    key = epoch_key(jax.random.key(3), 0)
    new, logs, stop = jax.jit(trainer.epoch, static_argnums=5)(carry, hp, data, jnp.int32(0), key, tx)
    assert int(optax.tree_utils.tree_get(new["opt_state"], "count")) == 3  # ceil(10 / 4) Adam steps
    full, rest = batch_order(jax.random.split(key)[0], 10, 4)  # the split the task's epoch makes
    # the reference in NumPy: relu MLP forward and cross entropy of every image
    p = jax.tree.map(np.asarray, carry["params"])
    x = data["x_train"].reshape(10, -1).astype(np.float64) / 255.0  # fashion-mlp: ToTensor only
    h = np.maximum(x @ p["hidden_0"]["kernel"] + p["hidden_0"]["bias"], 0)
    logits = h @ p["out"]["kernel"] + p["out"]["bias"]  # (10, 10)
    log_z = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
    losses = log_z - logits[np.arange(10), data["y_train"]]
    expected = np.mean([losses[np.asarray(b)].mean() for b in (*full, rest)])  # 3 batch means
    np.testing.assert_allclose(logs["loss"], expected, rtol=LOSS_RTOL)
    assert abs(expected - losses.mean()) > 1e-4  # the two averages differ: the check can tell
    np.testing.assert_allclose(logs["train_acc"], np.mean(logits.argmax(-1) == data["y_train"]))
    assert not bool(stop)


def test_mnist_cnn_from_idx_files_keeps_the_best_validation_epoch(tmp_path):
    task = MnistCNNTask()
    static = task.resolve_static(subset=1.0, depth=1, channels=2, hidden=8, dropout=0.0, batch_size=8, epochs=4,
                                 data_dir=str(write_idx_folder(tmp_path / "mnist", 60, 20)))
    trainer, data = task.build(static)
    assert len(data["x_train"]) == 48 and len(data["x_val"]) == 12 and len(data["x_test"]) == 20
    seeds, lrs = [0, 1, 2], [0.01, 0.01, 0.03]
    g = run_group(trainer, data, seeds, {"lr": lrs}, progress=False, options=EngineOptions(chunk=2))
    assert_final_shapes(g.final, 3, keys=("test_acc", "test_loss", "best_epoch", "val_acc"))
    val, test, best = g.curves["val_acc"], g.curves["test_acc"], g.final["best_epoch"]
    assert val.shape == test.shape == g.curves["loss"].shape == (3, 4)
    np.testing.assert_array_equal(best, np.argmax(val, axis=1) + 1)  # first epoch of the best val acc
    rows = np.arange(3)
    np.testing.assert_allclose(g.final["test_acc"], test[rows, best - 1])  # finish tests that epoch's params
    np.testing.assert_allclose(g.final["val_acc"], val[rows, best - 1])
    # not vacuous: some member's best epoch is not its last and tests differently from it
    assert np.any((best < 4) & (test[rows, best - 1] != test[:, -1]))
    conf = g.final["confusion"]
    assert np.all(conf.sum(axis=(1, 2)) == 20)
    np.testing.assert_allclose(np.trace(conf, axis1=1, axis2=2) / 20, g.final["test_acc"], rtol=1e-6)


def test_mnist_subset_split_follows_the_report():
    # the report's 5% of the 70,000 MNIST images is 3,500: 2,400 / 600 / 500 at 4.8:1.2:1, here as
    # half of a 7,000-image pool (train and test files pooled). sklearn rounds held-out sizes up,
    # so a part can be one image off.
    raw = {"train_images": np.zeros((6000, 28, 28, 1), np.uint8), "train_labels": np.arange(6000) % 10,
           "test_images": np.zeros((1000, 28, 28, 1), np.uint8), "test_labels": np.arange(1000) % 10}
    split = mnist_splits(raw, subset=0.5)
    sizes = [len(split[f"y_{s}"]) for s in ("train", "val", "test")]
    assert sum(sizes) == 3500 and np.abs(np.subtract(sizes, [2400, 600, 500])).max() <= 1
    full = mnist_splits(raw, subset=1.0)  # full set: 4.8:1.2 of the train file, the test file as is
    assert [len(full[f"y_{s}"]) for s in ("train", "val", "test")] == [4800, 1200, 1000]


def test_fashion_mlp_variants_train_as_one_group():
    task = FashionMLPTask()
    static = task.resolve_static(variant="multimargin", synthetic=48, hidden=8, batch_size=16, epochs=2,
                                 val_split=0.25)
    trainer, data = task.build(static)
    g = run_group(trainer, data, [0, 1], {"lr": [0.1, 0.3]}, progress=False)
    assert_final_shapes(g.final, 2, keys=("test_acc", "test_loss", "best_epoch", "val_acc"))
    assert set(g.curves) == {"loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc"}
    assert g.curves["loss"][0, 0] != g.curves["loss"][1, 0]
    with pytest.raises(ValueError, match="variant"):
        task.resolve_static(variant="sigmoid", synthetic=48)


def test_cifar_schedule_is_lr_then_a_tenth_and_decay_is_coupled():
    hp = {"lr": jnp.float32(0.1), "momentum": jnp.float32(0.0), "weight_decay": jnp.float32(0.0)}
    opt = make_optimizer(hp, steps_per_epoch=3, drop_epoch=2)  # the drop is at update 6
    params = {"w": jnp.zeros(())}
    state = opt.init(params)
    lrs = []
    for _ in range(8):
        updates, state = opt.update({"w": jnp.ones(())}, state, params)
        lrs.append(-float(updates["w"]))
    np.testing.assert_allclose(lrs, [0.1] * 6 + [0.01] * 2, rtol=1e-6)
    decay = make_optimizer({k: jnp.float32(v) for k, v in CifarResNet20Task().hparams().items()}, 3, 5)  # 5e-4
    ones = {"w": jnp.ones(())}
    updates, _ = decay.update({"w": jnp.zeros(())}, decay.init(ones), ones)
    np.testing.assert_allclose(updates["w"], -0.1 * 5e-4, rtol=1e-6)  # g + wd * p, then -lr


def test_crop_flip_returns_shifted_or_mirrored_crops_of_the_zero_padded_image():
    images = jax.random.uniform(jax.random.key(0), (6, 5, 5, 1))
    crop = jax.jit(crop_flip, static_argnames="pad")
    out = np.asarray(crop(jax.random.key(1), images, pad=2))
    padded = np.pad(np.asarray(images), ((0, 0), (2, 2), (2, 2), (0, 0)))
    for img, got in zip(padded, out):
        crops = [c for y in range(5) for x in range(5) for c in (img[y:y + 5, x:x + 5], img[y:y + 5, x:x + 5][:, ::-1])]
        assert any(np.array_equal(got, c) for c in crops)
    assert not np.array_equal(out, np.asarray(images))


def test_cifar_resnet_on_synthetic_data_trains_two_members():
    task = CifarResNet20Task()
    static = task.resolve_static(synthetic=32, blocks=1, width=4, batch_size=16, epochs=2, drop_epoch=1)
    trainer, data = task.build(static)
    hp = {"lr": [0.1, 0.05], "momentum": [0.0, 0.9], "weight_decay": [5e-4, 5e-4]}
    g = run_group(trainer, data, [0, 1], hp, static=static, progress=False)
    assert_final_shapes(g.final, 2)
    assert g.curves["test_acc"].shape == (2, 2) and "val_acc" not in g.curves
    assert "best_epoch" not in g.final  # no validation split: no checkpoint, the last epoch is tested
    assert np.all(np.isfinite(g.curves["loss"]))


@pytest.mark.parametrize("task_cls", [MnistCNNTask, FashionMLPTask, CifarResNet20Task])
def test_missing_data_says_so(task_cls, tmp_path, monkeypatch):
    monkeypatch.delenv("JAXLABS_DATA_DIR", raising=False)
    task = task_cls()
    with pytest.raises(DatasetNotFoundError):
        task.build(task.resolve_static(data_dir=str(tmp_path)))
