"""CIFAR-10 "python version": the pickled batches torchvision and Keras download.

Reads either the folder `cifar-10-batches-py` or the archive `cifar-10-python.tar.gz` in place
(members are read from the tar stream, so nothing is extracted to disk). The batches are Python
pickles: only load archives from a source you trust, as with torchvision.
"""
from __future__ import annotations

import os
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
FOLDER = "cifar-10-batches-py"
ARCHIVES = ("cifar-10-python.tar.gz", "cifar-10-batches-py.tar.gz")  # official name, Keras' name


REFETCH = "download it again"  # the way out of every format error here: the file is not what it claims


class CIFARFormatError(ValueError):
    """A batch that is not a CIFAR-10 python batch."""


def _decode(blob: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch -> images uint8 (N, 32, 32, 3), labels int32 (N,)."""
    try:
        batch = pickle.loads(blob, encoding="bytes")
        data, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"], np.int32)
    except Exception as e:  # a pickle can fail in many ways; all mean "not a CIFAR batch"
        raise CIFARFormatError(f"{name}: not a CIFAR-10 python batch ({type(e).__name__}: {e}); {REFETCH}") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise CIFARFormatError(f"{name}: data {data.shape} {data.dtype} with {len(labels)} labels, "
                               f"expected (N, 3072) uint8 and N labels; {REFETCH}")
    # Rows are channel-major (1024 R, 1024 G, 1024 B); flax convs want NHWC.
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def find_cifar(path: str | os.PathLike) -> Path | None:
    """The batches folder or archive at or directly under `path`, or None."""
    path = Path(path)
    if path.is_file() and path.name.endswith((".tar.gz", ".tgz", ".tar")):
        return path
    for candidate in (path, path / FOLDER):
        if all((candidate / b).is_file() for b in TRAIN_BATCHES + (TEST_BATCH,)):
            return candidate
    return next((path / a for a in ARCHIVES if (path / a).is_file()), None)


def _read_blobs(source: Path) -> dict[str, bytes]:
    """Raw bytes of the six batches, keyed by batch name, from a folder or a tar archive."""
    names = TRAIN_BATCHES + (TEST_BATCH,)
    if source.is_dir():
        return {n: (source / n).read_bytes() for n in names}
    blobs = {}
    try:
        with tarfile.open(source) as tar:  # "r:*" sniffs gzip or plain
            for member in tar:
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in names:
                    blobs[base] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:  # truncated or not a tar at all
        raise CIFARFormatError(f"{source}: not a readable tar archive ({type(e).__name__}: {e}); {REFETCH}") from None
    missing = [n for n in names if n not in blobs]
    if missing:
        raise CIFARFormatError(f"{source}: archive lacks {', '.join(missing)}; {REFETCH}")
    return blobs


def load_cifar10(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Train (50000) and test (10000) split: images uint8 (N, 32, 32, 3), labels int32 (N,)."""
    source = find_cifar(path)
    if source is None:
        raise FileNotFoundError(f"{path}: no {FOLDER}/ folder ({', '.join(TRAIN_BATCHES)}, {TEST_BATCH}) "
                                f"or {ARCHIVES[0]} archive")
    blobs = _read_blobs(source)
    train = [_decode(blobs[n], f"{source}:{n}") for n in TRAIN_BATCHES]
    test_images, test_labels = _decode(blobs[TEST_BATCH], f"{source}:{TEST_BATCH}")
    return {
        "train_images": np.concatenate([x for x, _ in train]),
        "train_labels": np.concatenate([y for _, y in train]),
        "test_images": test_images,
        "test_labels": test_labels,
    }
