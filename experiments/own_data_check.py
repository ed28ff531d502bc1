"""Your own data, checked against work no one here wrote (the figures are in BENCHMARKS.md).

    python -m experiments.own_data_check csv --seeds 5 --out runs/own-data
    python -m experiments.own_data_check images --data-dir DIR --seeds 3 --out runs/own-data   # DIR holds cifar10-jpeg.zip

``csv``: sklearn's diabetes table (442 rows, 10 numeric features, a disease-progression target)
written as a CSV and regressed by ``--task csv``, beside sklearn's ``MLPRegressor`` and ``Ridge``
fitted on the same train rows (the csv task's split and standardisation) and scored on the same
test rows: test R^2 per seed.

``images``: a few classes of the JPEG copy of CIFAR-10 (the files copied, not re-encoded) as an
image folder, resized, trained by ``--task image-folder --model resnet20`` with Lab F's recipe
(SGD, weight decay 5e-4, lr / 10 at ``--drop-epoch``, crop 4 + flip, no validation split) and by
Lab F's own task (``cifar-resnet20``: its CIFAR normalisation, its 10-way output) on the same
arrays: test accuracy per seed, and a two-sided Mann-Whitney test between the two.
"""
from __future__ import annotations

import argparse
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np

from jaxlabs import atomic


def mean_std(values) -> str:
    v = np.asarray(values, np.float64)
    return f"{v.mean():.4f} +- {v.std():.4f} ({v.min():.4f}-{v.max():.4f})"


def check_csv(out: Path, seeds: list[int], epochs: int, lr: float) -> None:
    from sklearn.datasets import load_diabetes
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score
    from sklearn.neural_network import MLPRegressor

    from jaxlabs.sweep import run_sweep
    from jaxlabs.tasks.csv_table import CsvTask, table_arrays

    d = load_diabetes()
    rows = [",".join([*d.feature_names, "progression"])]
    rows += [",".join(f"{v:.6g}" for v in (*x, t)) for x, t in zip(d.data, d.target)]
    path = atomic.write_text(out / "diabetes.csv", "\n".join(rows) + "\n")
    task = CsvTask()
    static = task.resolve_static(data=str(path), target="progression", depth=2, width=64, epochs=epochs)
    result = run_sweep(task, [static], seeds, {"lr": [lr]}, progress=False)
    ours = [r["test_r2"] for r in result.records()]
    a = table_arrays(path, "progression")
    y_train, y_test = a["y_train"][:, 0], a["y_test"][:, 0]
    ridge = r2_score(y_test, Ridge(alpha=1.0).fit(a["x_train"], y_train).predict(a["x_test"]))
    def sk_mlp(seed, **kw):  # sklearn's defaults (Adam lr 0.001, batch 200, L2 1e-4) but the layers
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = MLPRegressor(hidden_layer_sizes=(64, 64), max_iter=2000, random_state=seed, **kw)
            return r2_score(y_test, model.fit(a["x_train"], y_train).predict(a["x_test"]))

    mlp = [sk_mlp(s) for s in seeds]
    mlp_early = [sk_mlp(s, early_stopping=True) for s in seeds]  # its own 10% of train to stop on
    print(f"diabetes: {len(a['y_train'])}/{len(a['y_val'])}/{len(a['y_test'])} train/val/test rows; test R^2")
    print(f"jaxlabs --task csv (2 x 64 relu, Adam lr {lr:g}, {epochs} epochs, best val): {mean_std(ours)}")
    print(f"  per seed: {' '.join(f'{v:.4f}' for v in ours)}")
    print(f"sklearn MLPRegressor((64, 64), max_iter=2000): {mean_std(mlp)}")
    print(f"  per seed: {' '.join(f'{v:.4f}' for v in mlp)}")
    print(f"sklearn MLPRegressor((64, 64), early_stopping=True): {mean_std(mlp_early)}")
    print(f"  per seed: {' '.join(f'{v:.4f}' for v in mlp_early)}")
    print(f"sklearn Ridge(alpha=1): {ridge:.4f}")


def class_folder(zip_path: Path, out: Path, classes: list[str], per_class: int, test_per_class: int) -> Path:
    """The first files (sorted) of each class of the copy's train/ and test/, copied byte for byte."""
    root = out / f"cifar10-jpeg-{len(classes)}"
    with zipfile.ZipFile(zip_path) as z:
        names = sorted(n for n in z.namelist() if n.endswith(".jpg"))
        for split, n in (("train", per_class), ("test", test_per_class)):
            for c in classes:
                files = [f for f in names if f"/{split}/{c}/" in f][:n]
                if not files:
                    raise SystemExit(f"{zip_path}: no {split}/{c}/ images; classes: airplane, automobile, ...")
                (root / split / c).mkdir(parents=True, exist_ok=True)
                for f in files:
                    atomic.write_bytes(root / split / c / Path(f).name, z.read(f))
    return root


def check_images(zip_path: Path, out: Path, seeds: list[int], classes: list[str], per_class: int,
                 test_per_class: int, size: int, epochs: int, drop: int) -> None:
    from scipy.stats import mannwhitneyu

    from jaxlabs.data.imagecache import load_image_folder_cached
    from jaxlabs.sweep import run_sweep
    from jaxlabs.tasks.cifar_resnet20 import CifarResNet20Task
    from jaxlabs.tasks.image_folder import ImageFolderTask

    root = class_folder(zip_path, out, classes, per_class, test_per_class)
    resize = f"{size}x{size}"
    folder = ImageFolderTask()
    static = folder.resolve_static(data_dir=str(root), model="resnet20", resize=resize, optimizer="sgd",
                                   drop_epoch=drop, epochs=epochs, batch_size=128, crop=4, flip=True, val_share=0.0)
    ours = run_sweep(folder, [static], seeds, {"lr": [0.1], "weight_decay": [5e-4]}, progress=False)

    class LabF(CifarResNet20Task):  # Lab F's task, on the same arrays
        def raw_data(self, static):
            return load_image_folder_cached(root, resize=(size, size), mixed_channels=False)

    lab = LabF()
    lab_static = lab.resolve_static(epochs=epochs, drop_epoch=drop, batch_size=128)
    theirs = run_sweep(lab, [lab_static], seeds, {"lr": [0.1]}, progress=False)
    a = [r["test_acc"] for r in ours.records()]
    b = [r["test_acc"] for r in theirs.records()]
    print(f"{ours.groups[0].data}")
    print(f"{epochs} epochs, lr 0.1 then 0.01 from epoch {drop + 1}, batch 128, SGD wd 5e-4, crop 4 + flip; test accuracy")
    print(f"--task image-folder --model resnet20: {mean_std(a)}; per seed {' '.join(f'{v:.4f}' for v in a)}")
    print(f"Lab F's task (cifar-resnet20) on the same arrays: {mean_std(b)}; per seed {' '.join(f'{v:.4f}' for v in b)}")
    print(f"two-sided Mann-Whitney U: p = {mannwhitneyu(a, b, alternative='two-sided').pvalue:.2f}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.own_data_check", description=__doc__.split("\n\n")[0])
    p.add_argument("check", choices=("csv", "images"))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path("runs/own-data"))
    p.add_argument("--data-dir", type=Path, help="images: a folder holding cifar10-jpeg.zip, or the zip")
    p.add_argument("--epochs", type=int, default=None, help="csv: 200; images: 6")
    p.add_argument("--lr", type=float, default=0.003, help="csv: Adam's learning rate (default: %(default)s)")
    p.add_argument("--classes", default="airplane,automobile,bird", help="images: comma list of CIFAR-10 classes")
    p.add_argument("--per-class", type=int, default=600, help="images: train images per class")
    p.add_argument("--test-per-class", type=int, default=300, help="images: test images per class")
    p.add_argument("--size", type=int, default=16, help="images: resized to SIZE x SIZE")
    p.add_argument("--drop-epoch", type=int, default=4, help="images: lr / 10 from this epoch")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.seeds))
    if args.check == "csv":
        check_csv(args.out, seeds, args.epochs or 200, args.lr)
        return 0
    if args.data_dir is None:
        p.error("images needs --data-dir (a folder holding cifar10-jpeg.zip, or the zip)")
    zip_path = args.data_dir if args.data_dir.suffix == ".zip" else args.data_dir / "cifar10-jpeg.zip"
    check_images(zip_path, args.out, seeds, args.classes.split(","), args.per_class, args.test_per_class,
                 args.size, args.epochs or 6, args.drop_epoch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
