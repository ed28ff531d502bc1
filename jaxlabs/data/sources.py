"""Find MNIST, Fashion-MNIST or CIFAR-10 on this machine and load it as numpy arrays.

Nothing is downloaded: runs must be reproducible offline and fail fast with a message that says
where the data was looked for and how to provide it. Order: an explicit `data_dir` (and only
it: a path the user typed must not be silently replaced), else `$JAXLABS_DATA_DIR`, the usual
home folders, the Debian package location, Keras' and torchvision's caches, and finally a
dataset already prepared by tensorflow-datasets.

Besides each dataset's own format, a class-per-folder image copy (``train/<class>/*.jpg`` and
``test/<class>/...``, a folder or a .zip, e.g. ``cifar10-jpeg.zip``) is read, but only where no
original is found: a re-encoded copy is not the dataset, so its dict says so in ``source``.
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jaxlabs.data.cifar import ARCHIVES as CIFAR_ARCHIVES, FOLDER as CIFAR_FOLDER, TEST_BATCH, TRAIN_BATCHES, \
    find_cifar, load_cifar10
from jaxlabs.data.idx import IDX_FILES, REFETCH, find_idx_files, load_idx_folder
from jaxlabs.data.imagefolder import ImageFolderError, find_image_folder, load_image_folder

ENV_VAR = "JAXLABS_DATA_DIR"
SPLITS = ("train", "test")


class DatasetNotFoundError(FileNotFoundError):
    """No copy of the dataset in any place looked at."""


@dataclass(frozen=True)
class _Spec:
    subfolders: tuple[str, ...]  # tried under every base folder
    extra: tuple[str, ...]  # dataset-specific places, "~" expanded at call time
    tfds_name: str
    needs: str  # what a folder must hold, for the error message
    title: str  # the dataset's usual name, to label an image-folder copy of it
    image_folders: tuple[str, ...]  # names of image-folder copies (NAME/ or NAME.zip) tried under every path
    n_classes: int = 10  # an image-folder copy must have as many classes: the models have that many outputs


_IDX_NEEDS = "the IDX files " + ", ".join(f"{n}.gz" for n in IDX_FILES.values()) + " (or uncompressed)"
_SPECS = {
    "mnist": _Spec(("mnist", "MNIST", "MNIST/raw"), ("~/.keras/datasets/mnist.npz",), "mnist", _IDX_NEEDS,
                   "MNIST", ("mnist-png", "mnist-jpeg", "mnist-images")),
    "fashion_mnist": _Spec(
        ("fashion_mnist", "fashion-mnist", "FashionMNIST", "FashionMNIST/raw"),
        # Debian's dataset-fashion-mnist package, then Keras' cache
        ("/usr/share/datasets/fashion-mnist", "~/.keras/datasets/fashion-mnist"),
        "fashion_mnist", _IDX_NEEDS, "Fashion-MNIST",
        ("fashion-mnist-png", "fashion-mnist-jpeg", "fashion-mnist-images")),
    # find_cifar also looks one level down for cifar-10-batches-py/ and the archive
    "cifar10": _Spec(("cifar10", "cifar-10"), ("~/.keras/datasets",), "cifar10",
                     f"{CIFAR_FOLDER}/ (data_batch_1..5, test_batch) or {CIFAR_ARCHIVES[0]}",
                     "CIFAR-10", ("cifar10-jpeg", "cifar10-png", "cifar10-images")),
}
_HOME_BASES = ("~/.jaxlabs/data", "~/data")


def _read_local(name: str, path: Path) -> dict[str, np.ndarray] | None:
    """Load from `path` if it holds the dataset in its own format, else None."""
    if name == "cifar10":
        return load_cifar10(path) if find_cifar(path) else None
    if path.suffix == ".npz":  # Keras' mnist.npz: x_train (60000, 28, 28) uint8, ...
        return _read_keras_npz(path) if path.is_file() else None
    return load_idx_folder(path) if find_idx_files(path) else None


def _read_keras_npz(path: Path) -> dict[str, np.ndarray]:
    """Keras' ``mnist.npz``, checked as the IDX files are: every array there, uint8 images, one
    label per image (a broken download fails here with its name, not later in training)."""
    try:
        with np.load(path, allow_pickle=False) as z:  # a .npy or a pickle is no context manager: TypeError
            found = {k: z[k] for k in z.files}
    except (OSError, EOFError, ValueError, TypeError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not a readable .npz archive ({type(e).__name__}: {e}); {REFETCH}") from None
    missing = [k for k in (f"{a}_{s}" for s in SPLITS for a in "xy") if k not in found]
    if missing:
        raise ValueError(f"{path}: not a Keras MNIST archive, it lacks {', '.join(missing)}; {REFETCH}")
    arrays = {f"{s}_{k}": found[f"{'x' if k == 'images' else 'y'}_{s}"] for s in SPLITS for k in ("images", "labels")}
    for s in SPLITS:
        x, y = arrays[f"{s}_images"], arrays[f"{s}_labels"]
        if x.dtype != np.uint8 or x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(f"{path}: x_{s} {x.shape} {x.dtype} and y_{s} {y.shape}, expected (N, H, W) uint8 "
                             f"and (N,); {REFETCH}")
        arrays[f"{s}_images"], arrays[f"{s}_labels"] = x[..., None], y.astype(np.int32)
    return arrays


def _partial_copy(name: str, path: Path) -> str | None:
    """What a folder holding only part of the dataset's files lacks, or None: a file lost from a
    copy deserves its own name in the error, not a list of every place looked at."""
    if name == "cifar10":
        wanted = TRAIN_BATCHES + (TEST_BATCH,)
        for folder in (path, path / CIFAR_FOLDER):
            have = [b for b in wanted if (folder / b).is_file()]
            if have and len(have) < len(wanted):
                return f"{folder} holds part of {name}: missing {', '.join(b for b in wanted if b not in have)}"
        return None
    stems = [(stem, stem.replace("-idx", ".idx")) for stem in IDX_FILES.values()]
    have = [any((path / n).is_file() for v in variants for n in (v, v + ".gz")) for variants in stems]
    if any(have) and not all(have):
        lacking = ", ".join(stem for (stem, _), ok in zip(stems, have) if not ok)
        return f"{path} holds part of {name}: missing {lacking} (.gz or raw)"
    return None


def _read_image_folder(name: str, path: Path) -> dict | None:
    """Load an image-folder copy at or directly under `path`, else None."""
    spec = _SPECS[name]
    tree = find_image_folder(path, spec.image_folders)
    if tree is None:
        return None
    data = load_image_folder(tree, copy_of=spec.title)
    if len(data["class_names"]) != spec.n_classes:
        names = data["class_names"]
        shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
        raise ImageFolderError(f"{tree}: {len(names)} class folders ({shown}) but {name} has {spec.n_classes}; "
                               f"point --data-dir at a copy of {spec.title}")
    return data


def _from_tfds(name: str, data_dir: str) -> dict[str, np.ndarray] | str:
    """Read a dataset tfds has prepared in `data_dir`, or say why not (never downloads)."""
    try:
        import tensorflow_datasets as tfds  # heavy and optional: imported only when reached
    except ImportError:
        return "tensorflow-datasets not installed"
    builder = tfds.builder(_SPECS[name].tfds_name, data_dir=data_dir)
    try:  # array_record format: random access, no TensorFlow needed
        sources = {s: builder.as_data_source(split=s) for s in SPLITS}
        rows = {s: [src[i] for i in range(len(src))] for s, src in sources.items()}
        arrays = {s: (np.stack([r["image"] for r in rs]), np.array([r["label"] for r in rs]))
                  for s, rs in rows.items()}
    except Exception as e:
        if not builder.is_prepared():
            return "not prepared"
        try:  # prepared as TFRecord (tfds' default format): only TensorFlow reads it
            import tensorflow  # noqa: F401
        except ImportError:
            return f"prepared as TFRecord, needs tensorflow ({type(e).__name__}: {str(e).splitlines()[0]})"
        batches = {s: tfds.as_numpy(builder.as_dataset(split=s, batch_size=-1)) for s in SPLITS}
        arrays = {s: (batch["image"], batch["label"]) for s, batch in batches.items()}
    return {f"{s}_{k}": a.astype(dtype) for s, (x, y) in arrays.items()
            for k, a, dtype in (("images", x, np.uint8), ("labels", y, np.int32))}


def load_dataset(name: str, data_dir: str | os.PathLike | None = None) -> dict:
    """`train_images, train_labels, test_images, test_labels` of mnist, fashion_mnist or cifar10.

    Images uint8 NHWC, (N, 28, 28, 1) or (N, 32, 32, 3); labels int32 (N,). `data_dir` may be a
    folder holding the files, a parent of one named after the dataset, a tfds data dir, or an
    image-folder copy (a folder or .zip, or a folder holding e.g. cifar10-jpeg/ or cifar10-jpeg.zip).
    A copy's dict also has `class_names` and `source` ("cifar10-jpeg (JPEG copy of CIFAR-10)"):
    label records with ``data.get("source", name)``.
    """
    if name not in _SPECS:
        raise ValueError(f"unknown dataset {name!r}, expected one of {', '.join(_SPECS)}")
    spec = _SPECS[name]
    env = os.environ.get(ENV_VAR)
    if data_dir is not None:
        bases, extra, tfds_dirs = [Path(data_dir)], [], [str(data_dir)]
    else:
        bases = ([Path(env)] if env else []) + [Path(b).expanduser() for b in _HOME_BASES]
        extra = [Path(p).expanduser() for p in spec.extra]
        # tfds' own default, read now (tfds reads it once at import)
        default_tfds = os.environ.get("TFDS_DATA_DIR", str(Path("~/tensorflow_datasets").expanduser()))
        tfds_dirs = ([env] if env else []) + [default_tfds]

    paths = [p for b in bases for p in (b, *(b / sub for sub in spec.subfolders))] + extra
    for read in (_read_local, _read_image_folder):  # an original anywhere before a copy
        for path in paths:
            if (data := read(name, path)) is not None:
                return data
    tfds_notes = []
    for d in dict.fromkeys(tfds_dirs):  # dedupe, keep order
        result = _from_tfds(name, d)
        if isinstance(result, dict):
            return result
        tfds_notes.append(f"{d} ({result})")

    partial = next((note for path in paths if (note := _partial_copy(name, path))), None)
    if partial:
        raise DatasetNotFoundError(f"{partial}; add the missing files or point --data-dir at a complete copy")
    if data_dir is not None and not Path(data_dir).exists():  # a typo: say so, not where else it looked
        raise DatasetNotFoundError(f"{name}: the data folder {data_dir} does not exist; pass --data-dir a folder "
                                   f"holding {spec.needs}")
    subs = f" (and its subfolders {', '.join(spec.subfolders)})"
    looked = [f"{b}{subs}" for b in bases] + [str(p) for p in extra]
    if data_dir is None and env:
        looked[0] = f"${ENV_VAR}={looked[0]}"
    elif data_dir is None:
        looked.insert(0, f"${ENV_VAR} (unset)")
    raise DatasetNotFoundError(
        f"{name} not found; looked in {'; '.join(looked)}; tensorflow-datasets dir {'; '.join(tfds_notes)}. "
        f"Pass --data-dir DIR or set {ENV_VAR} to a folder holding {spec.needs} "
        f"(or an image-folder copy: train/<class>/*.png and test/<class>/..., a folder or .zip "
        f"such as {spec.image_folders[0]}.zip), "
        f"or prepare it with `tfds build {spec.tfds_name} --file_format=array_record`")
