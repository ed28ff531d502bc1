"""jaxlabs.data on tiny files written here: readers, dataset lookup, Boston, splits, augmentation."""
import gzip

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from tiny_data import cifar_batches, idx_bytes, write_cifar_archive, write_cifar_folder, write_mnist

from jaxlabs.data import (
    CIFARFormatError, DatasetNotFoundError, IDXFormatError, augment, load_boston, load_cifar10,
    load_dataset, load_idx_folder, read_idx, split_ratio, standardize, warp,
)

TOL = 1e-5  # float32 resampling at exact grid points; jit and eager differ by ~1e-6
augment_jit = jax.jit(augment)  # one compile per image shape, shared by the tests below


# ---------------------------------------------------------------- fake files: tests/tiny_data.py


# ---------------------------------------------------------------- IDX

@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_roundtrip(tmp_path, gz):
    arrays = write_mnist(tmp_path, gz=gz)
    data = load_idx_folder(tmp_path)
    assert data["train_images"].shape == (6, 28, 28, 1) and data["train_images"].dtype == np.uint8
    assert data["test_labels"].dtype == np.int32
    for key, expected in arrays.items():
        np.testing.assert_array_equal(data[key].reshape(expected.shape), expected)


def test_read_idx_big_endian_ints(tmp_path):
    values = np.arange(-3, 3, dtype=">i4").reshape(2, 3)
    (tmp_path / "x").write_bytes(idx_bytes(values, type_code=0x0C))
    np.testing.assert_array_equal(read_idx(tmp_path / "x"), values.astype(np.int32))


def test_read_idx_rejects_bad_magic_and_truncation(tmp_path):
    bad = tmp_path / "train-images-idx3-ubyte"
    bad.write_bytes(b"<html>not found</html>")
    with pytest.raises(IDXFormatError, match="magic number"):
        read_idx(bad)
    short = tmp_path / "short.gz"
    short.write_bytes(gzip.compress(idx_bytes(np.zeros((4, 28, 28), np.uint8))[:-10]))
    with pytest.raises(IDXFormatError, match=r"short\.gz.*size mismatch"):
        read_idx(short)


# ---------------------------------------------------------------- CIFAR

def test_cifar_folder_and_archive_agree_and_are_nhwc(tmp_path):
    batches = cifar_batches()
    write_cifar_folder(tmp_path / "cifar-10-batches-py", batches)
    write_cifar_archive(tmp_path / "cifar-10-python.tar.gz", batches)
    from_folder = load_cifar10(tmp_path / "cifar-10-batches-py")
    from_archive = load_cifar10(tmp_path / "cifar-10-python.tar.gz")
    assert from_folder["train_images"].shape == (50, 32, 32, 3)
    assert from_folder["test_images"].shape == (10, 32, 32, 3)
    for key in from_folder:
        np.testing.assert_array_equal(from_folder[key], from_archive[key])
    # Row layout is channel-major: pixel (y, x) of channel c sits at c*1024 + y*32 + x.
    raw = batches["data_batch_1"][b"data"]
    assert from_folder["train_images"][3, 5, 7, 2] == raw[3, 2 * 1024 + 5 * 32 + 7]
    np.testing.assert_array_equal(from_folder["train_labels"][10:20], batches["data_batch_2"][b"labels"])


def test_cifar_rejects_a_wrong_batch(tmp_path):
    batches = cifar_batches()
    batches["test_batch"][b"data"] = batches["test_batch"][b"data"][:, :100]
    write_cifar_folder(tmp_path / "c", batches)
    with pytest.raises(CIFARFormatError, match="test_batch.*expected"):
        load_cifar10(tmp_path / "c")


# ---------------------------------------------------------------- load_dataset lookup

def test_load_dataset_from_data_dir(clean_env):
    arrays = write_mnist(clean_env / "d" / "mnist")
    for data_dir in (clean_env / "d" / "mnist", clean_env / "d"):  # the folder or its parent
        data = load_dataset("mnist", data_dir=data_dir)
        np.testing.assert_array_equal(data["train_labels"], arrays["train_labels"])
        assert data["test_images"].shape == (4, 28, 28, 1)
    write_cifar_archive(clean_env / "c" / "cifar-10-python.tar.gz", cifar_batches())
    assert load_dataset("cifar10", data_dir=clean_env / "c")["train_images"].shape == (50, 32, 32, 3)


def test_load_dataset_from_env_var(clean_env, monkeypatch):
    arrays = write_mnist(clean_env / "store" / "fashion-mnist", n_train=3)
    monkeypatch.setenv("JAXLABS_DATA_DIR", str(clean_env / "store"))
    data = load_dataset("fashion_mnist")
    np.testing.assert_array_equal(data["train_images"][..., 0], arrays["train_images"])
    write_cifar_folder(clean_env / "store" / "cifar-10-batches-py", cifar_batches(n=2))
    assert load_dataset("cifar10")["test_labels"].shape == (2,)


def test_load_dataset_from_home(clean_env):
    write_mnist(clean_env / "home" / ".jaxlabs" / "data" / "mnist", n_train=2)
    assert load_dataset("mnist")["train_images"].shape == (2, 28, 28, 1)


def test_load_dataset_from_keras_npz(clean_env):
    keras = clean_env / "home" / ".keras" / "datasets"
    keras.mkdir(parents=True)
    x = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
    y = np.arange(3, dtype=np.uint8)
    np.savez(keras / "mnist.npz", x_train=x, y_train=y, x_test=x[:1], y_test=y[:1])
    data = load_dataset("mnist")
    assert data["train_images"].shape == (3, 28, 28, 1) and data["test_labels"].dtype == np.int32
    np.testing.assert_array_equal(data["train_images"][..., 0], x)


def test_explicit_data_dir_is_not_replaced_by_env(clean_env, monkeypatch):
    write_mnist(clean_env / "store" / "mnist")
    monkeypatch.setenv("JAXLABS_DATA_DIR", str(clean_env / "store"))
    with pytest.raises(DatasetNotFoundError, match="typo"):
        load_dataset("mnist", data_dir=clean_env / "typo")


def test_missing_dataset_error_says_where_and_how(clean_env):
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("mnist")
    message = str(info.value)
    assert isinstance(info.value, DatasetNotFoundError) and "\n" not in message
    assert message.startswith("mnist not found")
    places = (".jaxlabs/data (", "data (", ".keras/datasets/mnist.npz", "tensorflow_datasets (not prepared)")
    for place in places:
        assert str(clean_env / "home") + "/" + place in message
    for hint in ("JAXLABS_DATA_DIR (unset)", "--data-dir", "train-images-idx3-ubyte.gz", "tfds build mnist"):
        assert hint in message


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
        load_dataset("svhn")


def test_tfds_prepared_dataset_without_tensorflow(clean_env):
    """tfds' mock stands in for a dataset prepared as array_record; TensorFlow is not needed."""
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=5):
        mnist = load_dataset("mnist", data_dir=clean_env / "tfds")
        cifar = load_dataset("cifar10")  # default tfds dir, under the fake HOME
    assert mnist["train_images"].shape == (5, 28, 28, 1) and mnist["train_images"].dtype == np.uint8
    assert mnist["test_labels"].dtype == np.int32 and set(mnist["test_labels"]) <= set(range(10))
    assert cifar["test_images"].shape == (5, 32, 32, 3)


# ---------------------------------------------------------------- Boston

def test_boston():
    x, y = load_boston()
    assert x.shape == (506, 13) and y.shape == (506,) and x.dtype == y.dtype == np.float32
    assert not np.isnan(x).any() and not np.isnan(y).any()
    # First row of the original table: CRIM, ..., LSTAT and MEDV, so the columns are in order.
    np.testing.assert_allclose(x[0, [0, 5, 12]], [0.00632, 6.575, 4.98], rtol=1e-6)
    assert y[0] == 24.0 and 5.0 <= y.min() and y.max() == 50.0


# ---------------------------------------------------------------- splits

def test_split_sizes_and_disjointness():
    train, val, test = split_ratio(2000)
    assert (len(train), len(val), len(test)) == (1600, 200, 200)
    assert len(np.unique(np.concatenate([train, val, test]))) == 2000
    assert tuple(map(len, split_ratio(506, (4, 1, 1)))) == (337, 84, 85)


def test_split_matches_the_labs_two_train_test_split_calls():
    x = np.random.default_rng(0).normal(size=(2000, 1))
    x_train, x_temp = train_test_split(x, test_size=0.2, random_state=42)
    x_val, x_test = train_test_split(x_temp, test_size=0.5, random_state=42)
    train, val, test = split_ratio(x, (8, 1, 1), seed=42)
    for idx, expected in ((train, x_train), (val, x_val), (test, x_test)):
        np.testing.assert_array_equal(x[idx], expected)


def test_split_is_deterministic_per_seed():
    a, b, c = (split_ratio(506, (4, 1, 1), seed=s) for s in (1, 1, 2))
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not np.array_equal(a[0], c[0])


def test_stratified_subset():
    labels = np.repeat(np.arange(10), [1000, 9000, 5000, 5000, 5000, 5000, 5000, 5000, 10000, 10000])
    parts = split_ratio(labels, (4.8, 1.2, 1), subset=0.05, labels=labels)
    chosen = np.concatenate(parts)
    assert len(chosen) == 3000 and len(np.unique(chosen)) == 3000
    np.testing.assert_allclose(np.bincount(labels[chosen], minlength=10), np.bincount(labels) * 0.05, atol=1)
    assert tuple(map(len, parts)) == tuple(map(len, split_ratio(3000, (4.8, 1.2, 1))))


def test_standardize_uses_train_statistics_only():
    rng = np.random.default_rng(0)
    train, test = rng.normal(3.0, 2.0, (100, 4)), rng.normal(10.0, 5.0, (30, 4))
    train_s, test_s = standardize(train, test)
    np.testing.assert_allclose(train_s.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(train_s.std(0), 1, atol=1e-5)
    np.testing.assert_allclose(test_s, (test - train.mean(0)) / train.std(0), rtol=1e-5)
    assert test_s.dtype == np.float32 and test_s.mean() > 2  # not re-centred on its own mean


# ---------------------------------------------------------------- augmentation

def images(b=4, h=12, w=12, c=1, seed=0):
    return jnp.asarray(np.random.default_rng(seed).uniform(size=(b, h, w, c)), jnp.float32)


def test_augment_shape_and_determinism():
    x, key = images(), jax.random.key(0)
    out = augment_jit(key, x)
    assert out.shape == x.shape and out.dtype == jnp.float32
    np.testing.assert_array_equal(out, augment_jit(key, x))
    np.testing.assert_allclose(out, augment(key, x), atol=TOL)
    assert not np.allclose(out, augment_jit(jax.random.key(1), x))
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_each_image_gets_its_own_transform():
    x = jnp.repeat(images(b=1), 4, axis=0)  # four copies of one image
    out = np.asarray(augment_jit(jax.random.key(0), x))
    assert all(not np.allclose(out[i], out[j]) for i in range(4) for j in range(i))


def test_augment_vmaps_over_keys():
    keys = jax.random.split(jax.random.key(0), 3)
    out = jax.vmap(augment, in_axes=(0, None))(keys, images())
    assert out.shape == (3, 4, 12, 12, 1)
    np.testing.assert_allclose(out[1], augment_jit(keys[1], images()), atol=TOL)


def test_zero_parameters_are_identity():
    x = images()
    out = augment_jit(jax.random.key(0), x, 0.0, 0.0, 0.0)
    np.testing.assert_allclose(out, x, atol=TOL)


def test_brightness_is_a_per_image_factor_in_range():
    x = images() + 0.1
    out = augment(jax.random.key(3), x, rotation_deg=0.0, translate=0.0, brightness=0.2, value_range=None)
    ratio = np.asarray(out / x).reshape(4, -1)
    np.testing.assert_allclose(ratio, ratio[:, :1] * np.ones_like(ratio), rtol=1e-5)
    assert np.all((ratio >= 0.8) & (ratio <= 1.2)) and len(np.unique(ratio[:, 0].round(6))) == 4


def test_warp_quarter_turn_and_whole_pixel_shift():
    x = images(b=1, h=9, w=9, c=2)[0]
    # Counter-clockwise as displayed (rows down), which is what np.rot90 does.
    np.testing.assert_allclose(warp(x, 90.0, jnp.zeros(2)), np.rot90(x, 1, axes=(0, 1)), atol=TOL)
    shifted = np.zeros_like(x)
    shifted[2:, :-3] = x[:-2, 3:]  # down 2, left 3, zeros where nothing comes in
    np.testing.assert_allclose(warp(x, 0.0, jnp.array([2.0, -3.0])), shifted, atol=TOL)


def test_shifts_stay_within_ten_percent():
    keys = jax.random.split(jax.random.key(0), 16)
    x = jnp.ones((4, 20, 20, 1))
    out = np.asarray(jax.vmap(augment_jit, in_axes=(0, None, None, None, None))(keys, x, 0.0, 0.1, 0.0))
    out = out.reshape(64, 20, 20)
    empty_rows = (out.sum(2) == 0).sum(1)  # rows shifted out of view, per image
    empty_cols = (out.sum(1) == 0).sum(1)
    assert empty_rows.max() == 2 and empty_cols.max() == 2  # round(U[-2, 2]) reaches 2, never 3
