"""Tiny dataset files written by the tests themselves (the real datasets are never needed).

The IDX and CIFAR writers here are independent of jaxlabs' readers: headers packed by hand, as
the formats specify, so a reader bug cannot cancel out against a writer bug.
"""
import gzip
import io
import pickle
import struct
import tarfile

import numpy as np

IDX_NAMES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
             "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}


def idx_bytes(array, type_code=0x08):
    """An IDX file: two zero bytes, the type code, the number of dims, big-endian dims, data."""
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def mnist_arrays(n_train, n_test, seed=0, size=28, learnable=False):
    """Random uint8 images and labels. ``learnable``: class k lights up row k (k < 8) or column
    k - 8 over dim noise, so a working trainer separates the classes within a few epochs."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        if learnable:
            images = rng.integers(0, 60, (n, size, size)).astype(np.uint8)
            for i, k in enumerate(labels):
                if k < 8:
                    images[i, k, :] = 220
                else:
                    images[i, :, k - 8] = 220
        else:
            images = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
        out[f"{split}_images"], out[f"{split}_labels"] = images, labels
    return out


def write_mnist(folder, n_train=6, n_test=4, gz=True, seed=0, size=28, learnable=False):
    """The four IDX files of an MNIST-format dataset; returns the arrays written."""
    arrays = mnist_arrays(n_train, n_test, seed, size, learnable)
    folder.mkdir(parents=True, exist_ok=True)
    for key, name in IDX_NAMES.items():
        data = idx_bytes(arrays[key])
        (folder / (name + ".gz" if gz else name)).write_bytes(gzip.compress(data) if gz else data)
    return arrays


def cifar_batches(n=10, seed=0):
    """Six pickled batches of n images each, as the CIFAR-10 python version lays them out."""
    rng = np.random.default_rng(seed)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batches[name] = {b"batch_label": name.encode(), b"labels": rng.integers(0, 10, n).tolist(),
                         b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}
    return batches


def write_cifar_folder(folder, batches):
    folder.mkdir(parents=True)
    for name, batch in batches.items():
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))


def write_cifar_archive(path, batches):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, batch in batches.items():
            blob = pickle.dumps(batch, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))


def write_image_folder(root, counts, size=4, suffix=".png", gray=False, seed=0):
    """``root/<split>/<class>/<i>.<suffix>`` with Pillow, for ``counts = {split: {class: n}}``.

    Returns ``{split: {class: [image, ...]}}``, each uint8 (size, size) if ``gray`` else
    (size, size, 3), listed in file-name order (names 0..n-1, zero-padded so they sort as numbers).
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    written = {}
    for split, classes in counts.items():
        written[split] = {}
        for name, n in classes.items():
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            shape = (size, size) if gray else (size, size, 3)
            images = [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(n)]
            for i, image in enumerate(images):
                Image.fromarray(image).save(folder / f"{i:03d}{suffix}")
            written[split][name] = images
    return written


def zip_folder(root, zip_path, top=None):
    """Zip the tree under ``root`` (its folders too, as `zip -r` does), under folder ``top`` if given."""
    import zipfile

    with zipfile.ZipFile(zip_path, "w") as archive:
        for path in sorted(root.rglob("*")):
            name = path.relative_to(root).as_posix()
            archive.write(path, f"{top}/{name}" if top else name)  # a folder gets its "name/" entry
    return zip_path


BOSTON_COLUMNS = ("CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX", "PTRATIO", "B",
                  "LSTAT", "MEDV")


def write_boston_csv(path, rows=506, seed=0, columns=BOSTON_COLUMNS):
    """A Boston-housing-shaped CSV (quoted header, MEDV last) of random positive numbers, laid out
    as the `boston` package ships it; returns its lines so a test can spoil one."""
    rng = np.random.default_rng(seed)
    lines = [",".join(f'"{c}"' for c in columns)]
    lines += [",".join(f"{v:.4g}" for v in rng.uniform(0.1, 50, len(columns))) for _ in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return lines
