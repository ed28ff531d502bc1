"""IDX files (MNIST, Fashion-MNIST): the format LeCun's site, torchvision and Debian ship.

A header of two zero bytes, a type code, the number of dimensions, then one big-endian uint32
per dimension, then the data. Every field is checked, so a truncated download or an HTML error
page saved under the right name fails here with its path, not later as a reshape error.
"""
from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"

# The four standard files; the dotted spelling ("train-images.idx3-ubyte") is what some mirrors use.
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


REFETCH = "download it again"  # the way out of every format error here: the file is not what it claims


class IDXFormatError(ValueError):
    """A file that is not a well-formed IDX file."""


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode the bytes of one IDX file (already decompressed) into a native-endian array."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES or data[3] == 0:
        raise IDXFormatError(f"{name}: not an IDX file (magic number {data[:4].hex() or 'missing'}, "
                             f"expected 0000TTNN with a known type TT and NN >= 1 dimensions); {REFETCH}")
    dtype, ndim = np.dtype(_DTYPES[data[2]]), data[3]
    if len(data) < 4 + 4 * ndim:
        raise IDXFormatError(f"{name}: IDX header truncated ({len(data)} bytes for {ndim} dimensions); {REFETCH}")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    expected = 4 + 4 * ndim + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise IDXFormatError(f"{name}: IDX size mismatch, header says shape {shape} "
                             f"({expected} bytes) but the file has {len(data)} bytes; {REFETCH}")
    array = np.frombuffer(data, dtype, offset=4 + 4 * ndim).reshape(shape)
    if dtype.kind == "f" and not np.isfinite(array).all():  # NaN would train to NaN, far from here
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        raise IDXFormatError(f"{name}: {bad} values are NaN or inf; {REFETCH} or replace those values")
    return array.astype(dtype.newbyteorder("="), copy=False)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file, gzipped or raw (told apart by content, not by the name)."""
    data = Path(path).read_bytes()
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:  # truncated, bad CRC, or a broken deflate stream
            raise IDXFormatError(f"{path}: corrupt gzip data ({e}); {REFETCH}") from None
    return parse_idx(data, name=str(path))


def find_idx_files(folder: str | os.PathLike) -> dict[str, Path] | None:
    """The four standard files in `folder` (each `.gz` or raw), or None unless all four are there."""
    folder, found = Path(folder), {}
    for key, stem in IDX_FILES.items():
        dotted = stem.replace("-idx", ".idx")
        names = (stem + ".gz", stem, dotted + ".gz", dotted)
        found[key] = next((folder / n for n in names if (folder / n).is_file()), None)
    return found if all(found.values()) else None


def load_idx_folder(folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """Train and test split of an MNIST-like folder: images uint8 (N, H, W, 1), labels int32 (N,)."""
    paths = find_idx_files(folder)
    if paths is None:
        raise FileNotFoundError(f"{folder}: missing IDX files, need {', '.join(IDX_FILES.values())} "
                                "(each .gz or raw)")
    out = {}
    for split in ("train", "test"):
        images, labels = read_idx(paths[f"{split}_images"]), read_idx(paths[f"{split}_labels"])
        names = f"{paths[f'{split}_images']} and {paths[f'{split}_labels'].name}"
        if images.ndim != 3 or images.dtype != np.uint8 or labels.ndim != 1:
            raise IDXFormatError(f"{names}: {split} images {images.shape} {images.dtype} and labels "
                                 f"{labels.shape}, expected (N, H, W) uint8 and (N,); {REFETCH}")
        if len(images) != len(labels):
            raise IDXFormatError(f"{names}: {len(images)} {split} images but {len(labels)} labels; "
                                 f"{REFETCH} (the two files must come from one copy)")
        out[f"{split}_images"] = images[..., None]  # (N, 28, 28, 1): NHWC like the convs expect
        out[f"{split}_labels"] = labels.astype(np.int32)
    return out
