"""Class-per-folder image datasets, the layout of torchvision's and tfds' ``ImageFolder``.

``<root>/train/<class>/*.jpg|*.jpeg|*.png`` and ``<root>/test/<class>/...``, from a folder or
from a ``.zip`` (read in place, nothing extracted; the tree may sit under one top-level folder, as
``zip -r name.zip name/`` makes it). Labels are indices into the sorted class names and files are
read in sorted order, so the arrays are the same on every machine and from folder or zip alike.
Sub-folders of a class folder count as that class (as in torchvision); hidden files, macOS'
``__MACOSX/`` and non-image files are skipped.

Decoding CIFAR-10's 60,000 32x32 JPEGs takes 9-13 s on 2 CPU cores (Pillow's decoder is about
a third of it, Python per file the rest): short beside a training run, so the labs' loaders cache
nothing; the image-folder task keeps the arrays in the cache directory
(:mod:`jaxlabs.data.imagecache`).
"""
from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

SPLITS = ("train", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_FORMAT_NAMES = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}
_LAYOUT = "train/<class>/*.jpg|*.jpeg|*.png and test/<class>/..."


class ImageFolderError(ValueError):
    """Image files that cannot be read as train/<class>/<image> and test/<class>/<image>."""


# A tree: split -> class name -> image paths (relative to the tree's root, "/"-separated), sorted.
Tree = dict[str, dict[str, list[str]]]


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def _hidden(parts: list[str]) -> bool:
    """Dot-files (.DS_Store, ._x.jpg) and macOS' resource forks are not images of the dataset."""
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def find_image_folder(path: str | os.PathLike, names: tuple[str, ...] = ()) -> Path | None:
    """`path` if it is a .zip or a folder with train/ or test/ in it, else the first folder or
    ``<name>.zip`` of `names` directly under `path` that is; None if there is none."""
    path = Path(path)
    for candidate in (path, *(c for n in names for c in (path / n, path / f"{n}.zip"))):
        if candidate.is_file() and candidate.suffix.lower() == ".zip":
            return candidate
        if candidate.is_dir() and any((candidate / s).is_dir() for s in SPLITS):
            return candidate
    return None


def _list_folder(root: Path) -> tuple[Tree, Callable[[str], bytes]]:
    tree: Tree = {}
    for split in SPLITS:
        if not (root / split).is_dir():
            continue
        tree[split] = {}
        for class_dir in sorted((e for e in os.scandir(root / split) if e.is_dir()), key=lambda e: e.name):
            if _hidden([class_dir.name]):
                continue
            files = []
            for folder, subfolders, names in os.walk(class_dir.path):
                subfolders[:] = [s for s in subfolders if not _hidden([s])]
                rel = Path(folder).relative_to(root).as_posix()
                files += [f"{rel}/{n}" for n in names if _is_image(n) and not _hidden([n])]
            tree[split][class_dir.name] = sorted(files)
    return tree, lambda rel: (root / rel).read_bytes()


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise ImageFolderError(f"{path}: not a zip archive ({e}); download it again "
                               "or make it with `zip -r NAME.zip NAME/`") from None


def _list_zip(archive: zipfile.ZipFile, path: Path) -> tuple[Tree, Callable[[str], bytes], str]:
    """The tree in the zip, a reader of its members, and the top-level folder it sits under."""
    names = [n for n in archive.namelist() if not _hidden(n.split("/"))]
    # The tree sits at the root or under one top-level folder: find which.
    prefixes = sorted({"" if parts[0] in SPLITS else parts[0] + "/" for parts in (n.split("/") for n in names)
                       if len(parts) > 1 and (parts[0] in SPLITS or (len(parts) > 2 and parts[1] in SPLITS))})
    if not prefixes:
        raise ImageFolderError(f"{path}: no train/ or test/ folder in the zip, expected {_LAYOUT} "
                               "(at its root or under one top-level folder)")
    if len(prefixes) > 1:
        raise ImageFolderError(f"{path}: several train/ or test/ folders ({', '.join(p or '/' for p in prefixes)}); "
                               "the zip must hold one image-folder tree")
    prefix = prefixes[0]
    tree: Tree = {}
    for name in names:
        if not name.startswith(prefix):
            continue
        parts = name[len(prefix):].split("/")
        if parts[0] not in SPLITS or len(parts) < 2:
            continue
        classes = tree.setdefault(parts[0], {})
        if len(parts) == 2:  # a file beside the class folders, or the split's own folder entry
            continue
        files = classes.setdefault(parts[1], [])  # also registers a class whose folder is empty
        if _is_image(parts[-1]):
            files.append(name[len(prefix):])
    for classes in tree.values():
        for files in classes.values():
            files.sort()
    return tree, lambda rel: archive.read(prefix + rel), prefix.rstrip("/")


def _check_tree(tree: Tree, where: str, required: tuple[str, ...] = SPLITS) -> tuple[str, ...]:
    """The class names, after checking the `required` splits exist, the splits have the same
    classes, and no class is empty."""
    for split in required:
        if split not in tree:
            other = next(iter(tree))
            raise ImageFolderError(f"{where}: no {split}/ folder beside {other}/, expected {_LAYOUT}")
    present = [s for s in SPLITS if s in tree]
    for split in present:
        if not tree[split]:
            raise ImageFolderError(f"{where}: {split}/ has no class folders, expected {_LAYOUT}")
    if "test" in tree and set(tree["train"]) != set(tree["test"]):
        only = {s: sorted(set(tree[s]) - set(tree[o])) for s, o in (("train", "test"), ("test", "train"))}
        diff = "; ".join(f"only in {s}/: {', '.join(c) or '-'}" for s, c in only.items())
        raise ImageFolderError(f"{where}: train/ and test/ have different classes ({diff}); "
                               "both need the same class folders")
    for split in present:
        for name, files in tree[split].items():
            if not files:
                raise ImageFolderError(f"{where}: class folder {split}/{name}/ has no .jpg/.jpeg/.png images; "
                                       f"add its images or remove the folder from {' and '.join(f'{s}/' for s in present)}")
    return tuple(sorted(tree["train"]))


def _decode(blob: bytes, where: Callable[[], str], channels: int | None = None,
            resize: tuple[int, int] | None = None) -> np.ndarray:
    """uint8 (H, W) for a grayscale image, (H, W, 3) for anything else (palette, alpha, CMYK);
    ``channels`` 1 or 3 converts every image to gray or RGB; ``resize`` (H, W): bilinear, Pillow's."""
    from PIL import Image  # imported when images are read: Pillow is needed by nothing else here

    try:
        with Image.open(io.BytesIO(blob)) as image:
            image.load()  # decode now, so a truncated file fails here with its name
            mode = {1: "L", 3: "RGB"}.get(channels) or ("L" if image.mode in ("1", "L", "LA") else "RGB")
            image = image if image.mode == mode else image.convert(mode)
            if resize is not None and image.size != (resize[1], resize[0]):
                image = image.resize((resize[1], resize[0]), Image.BILINEAR)
            return np.asarray(image)
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError...: all mean "bad image"
        raise ImageFolderError(f"{where()}: cannot decode the image ({type(e).__name__}: {e}); "
                               "replace or delete the file") from None


def load_image_folder(path: str | os.PathLike, copy_of: str | None = None, *, resize: tuple[int, int] | None = None,
                      channels: int | None = None, mixed_channels: bool = True, test: bool = True) -> dict:
    """``train_images``, ``test_images`` uint8 (N, H, W, C) and ``train_labels``, ``test_labels``
    int32 (N,), as :func:`jaxlabs.data.load_dataset` returns them, plus ``class_names`` (label i is
    ``class_names[i]``) and ``source``, the name records and figures should give the data:
    "NAME (image folder of JPEG files)", or "NAME (JPEG copy of CIFAR-10)" with ``copy_of="CIFAR-10"``,
    so a re-encoded copy is never reported as the original dataset.

    C is 3 (RGB), or 1 when every image is grayscale; ``channels`` (1 or 3) converts every image
    to that. ``mixed_channels=False``: gray and colour images together are an error naming one of
    each (instead of gray ones becoming three equal channels). All images must have one size, or
    ``resize`` = (H, W) gives them one. ``test=False``: a tree without test/ is read too (its dict
    then has no test arrays).
    """
    options = {"resize": resize, "channels": channels, "mixed_channels": mixed_channels}
    required = SPLITS if test else ("train",)
    path = Path(path)
    if path.is_file():
        with _open_zip(path) as archive:
            tree, read, top = _list_zip(archive, path)
            class_names = _check_tree(tree, str(path), required)
            data = _decode_tree(tree, class_names, read,
                                lambda rel: f"{path}:{top + '/' if top else ''}{rel}", **options)
        title = top or path.stem
    elif path.is_dir():
        tree, read = _list_folder(path)
        if not tree:
            raise ImageFolderError(f"{path}: no train/ or test/ folder, expected {_LAYOUT}")
        class_names = _check_tree(tree, str(path), required)
        data = _decode_tree(tree, class_names, read, lambda rel: str(path / rel), **options)
        title = path.resolve().name
    else:
        raise FileNotFoundError(f"{path}: no such folder or .zip")
    formats = sorted({_FORMAT_NAMES[Path(rel).suffix.lower()] for classes in tree.values()
                      for files in classes.values() for rel in files})
    kind = " and ".join(formats)
    source = f"{title} ({kind} copy of {copy_of})" if copy_of else f"{title} (image folder of {kind} files)"
    return {**data, "class_names": class_names, "source": source}


def _decode_tree(tree: Tree, class_names: tuple[str, ...], read: Callable[[str], bytes],
                 where: Callable[[str], str], resize: tuple[int, int] | None = None, channels: int | None = None,
                 mixed_channels: bool = True) -> dict[str, np.ndarray]:
    """The arrays of each split in `tree`, images in class order then file order; `where` names a
    file for errors."""
    first: tuple[str, tuple[int, int]] | None = None  # an image's name and size, to compare the others with
    seen = {}  # ndim (2: gray, 3: colour) -> the first such file, for the mixed-channels error
    data = {}
    for split in (s for s in SPLITS if s in tree):
        files = [rel for name in class_names for rel in tree[split][name]]
        images = None  # allocated at the first image's size, 3 channels; cut to 1 if all are gray
        for i, rel in enumerate(files):
            image = _decode(read(rel), lambda: where(rel), channels, resize)  # the name is only formatted for an error
            if first is None:
                first = (where(rel), image.shape[:2])
            elif image.shape[:2] != first[1]:
                (h, w), (h0, w0) = image.shape[:2], first[1]
                raise ImageFolderError(f"{where(rel)}: image is {w}x{h} but {first[0]} is {w0}x{h0}; "
                                       "all images must have one size (resize them first, or give resize=HxW: "
                                       "--resize HxW)")
            if images is None:
                images = np.empty((len(files), *first[1], 3), np.uint8)
            seen.setdefault(image.ndim, where(rel))
            if len(seen) > 1 and not mixed_channels:
                raise ImageFolderError(f"{seen[2]} is grayscale but {seen[3]} is colour; convert the images to one "
                                       "kind, or convert them as they are read: --color gray or --color rgb (channels=1 or 3)")
            images[i] = image[..., None] if image.ndim == 2 else image  # gray broadcasts to 3 equal channels
        data[f"{split}_images"] = images
        data[f"{split}_labels"] = np.repeat(np.arange(len(class_names), dtype=np.int32),
                                            [len(tree[split][name]) for name in class_names])
    if set(seen) == {2}:
        for split in (s for s in SPLITS if s in tree):
            data[f"{split}_images"] = np.ascontiguousarray(data[f"{split}_images"][..., :1])
    return data
