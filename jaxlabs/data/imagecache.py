"""An image folder decoded once: the arrays kept in the cache directory, read back on later runs.

The cache file is ``$JAXLABS_CACHE_DIR/images/<key>.npz`` (default ``~/.cache/jaxlabs``), where
the key hashes the folder's or zip's resolved path, every file's name, size and modification time
(a zip's own), and the reading options (resize, channels): a changed, added or removed image makes
a new entry, never a stale read. A cache that cannot be written is only a cache: the run goes on
with the decoded arrays. A sweep builds its data once per static group, and a study of several
groups, or the same command run again, decodes the images once.
"""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from jaxlabs import atomic
from jaxlabs.data.imagefolder import load_image_folder

CACHE_FORMAT = 1  # bump when the arrays a reader returns change for the same files


def cache_dir() -> Path:
    root = os.environ.get("JAXLABS_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "jaxlabs")
    return Path(root) / "images"


def fingerprint(path: Path, options: dict) -> str:
    """A hash of what the arrays depend on: the files (names, sizes, times) and the options."""
    h = hashlib.sha256(json.dumps({"format": CACHE_FORMAT, "path": str(path.resolve()), **options},
                                  sort_keys=True, default=str).encode())
    if path.is_file():
        st = path.stat()
        h.update(f"{st.st_size} {st.st_mtime_ns}".encode())
    else:
        for folder, subfolders, names in sorted(os.walk(path)):
            subfolders.sort()
            for name in sorted(names):
                st = os.stat(os.path.join(folder, name))
                h.update(f"{os.path.relpath(os.path.join(folder, name), path)} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def load_image_folder_cached(path: str | os.PathLike, **options) -> dict:
    """:func:`jaxlabs.data.load_image_folder` (same arguments, same dict), from the cache when the
    same files were decoded with the same options before; ``cached`` says which."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such folder or .zip; pass --data-dir a folder or .zip of "
                                "train/<class>/*.jpg|*.png (and test/<class>/...)")
    entry = cache_dir() / f"{fingerprint(path, options)}.npz"
    try:
        with np.load(entry, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files if k not in ("class_names", "source")}
            data.update(class_names=tuple(z["class_names"].tolist()), source=str(z["source"]), cached=True)
            return data
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        pass  # not cached yet (or an unreadable entry: decoded again and rewritten)
    data = load_image_folder(path, **options)
    arrays = {k: v for k, v in data.items() if isinstance(v, np.ndarray)}
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_npz(entry, {**arrays, "class_names": np.asarray(data["class_names"]),
                                 "source": np.asarray(data["source"])})
    except OSError:
        pass
    return {**data, "cached": False}
