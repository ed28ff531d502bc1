"""A folder of your own images: classification with an MLP, Lab D's CNN or ResNet20.

``python -m experiments.lr_sweep --task image-folder --data-dir DIR --model cnn`` reads DIR, a
folder or .zip of ``train/<class>/*.jpg|*.jpeg|*.png`` and ``test/<class>/...`` (or no test/ and
``--test-share``: that share of train/ becomes the test split), through
:mod:`jaxlabs.data.imagefolder`: classes are the sorted folder names, every image one size
(``--resize HxW`` where they differ) and one kind (gray or colour; ``--color gray|rgb`` converts).
The decoded arrays are cached (:mod:`jaxlabs.data.imagecache`): a second run does not decode.

``--val-share`` of the train images (stratified by class) picks the best epoch: its parameters are
tested (without one, the last epoch's). Pixels are scaled to [0, 1] and normalised per channel with
the train split's mean and std; ``--crop PAD`` (random crop after zero padding) and ``--flip``
(random horizontal flip) augment the training batches on the device. The loop, metrics and
figures are the labs' shared classifier (:mod:`jaxlabs.tasks.classify`): per-epoch loss and
accuracy curves, test accuracy, the per-class table and the confusion heatmap; the data's name,
in every record, report and figure, lists the classes in label order.
"""
from __future__ import annotations

import re

import jax
import numpy as np
from sklearn.model_selection import train_test_split

from jaxlabs.data.augment import random_crop, random_flip
from jaxlabs.data.imagecache import load_image_folder_cached
from jaxlabs.data.imagefolder import ImageFolderError
from jaxlabs.data.splits import DATA_SEED
from jaxlabs.models import CNN, MLP, ResNet, conv_for_backend
from jaxlabs.options import static_option, traced_option
from jaxlabs.optim import cross_entropy, step_schedule, torch_adam, torch_sgd
from jaxlabs.tasks.base import ClassifierTask
from jaxlabs.tasks.classify import ClassifierSpec, make_trainer
from jaxlabs.tasks.csv_table import class_list

MODEL_DEFAULTS = {  # what an option left out means for each model
    "mlp": {"width": 256, "depth": 1, "dropout": 0.0},  # Lab E's base MLP
    "cnn": {"depth": 2, "dropout": 0.5},  # Lab D's CNN
    "resnet20": {"width": 16},  # He et al.'s CIFAR ResNet20
}


def parse_size(text: str) -> tuple[int, int]:
    """``"32x24"`` -> (32, 24): height x width in pixels."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m or min(int(m[1]), int(m[2])) < 1:
        raise ValueError(f"{text!r} is not HxW (height x width in pixels, e.g. 32x32)")
    return int(m[1]), int(m[2])


def split_off(labels: np.ndarray, share: float, seed: int, what: str, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(kept, split off) row indices: ``share`` of the rows, stratified by label where every class
    has the images for it."""
    rows = np.arange(len(labels))
    try:
        return tuple(train_test_split(rows, test_size=share, random_state=seed, stratify=labels))
    except ValueError:
        try:  # a class too small to stratify: a plain random split
            return tuple(train_test_split(rows, test_size=share, random_state=seed))
        except ValueError:
            raise ImageFolderError(f"{where}: {len(rows)} train images are too few to split off a {what} share of "
                                   f"{share:g}; add images or lower --{what}-share") from None


def channel_stats(images: np.ndarray, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images (n, H, W, C) scaled to [0, 1], in chunks of images
    (a float64 copy of 50,000 CIFAR images would take 1.2 GB). A constant channel gets std 1."""
    total, squares = np.zeros(images.shape[-1]), np.zeros(images.shape[-1])
    for i in range(0, len(images), chunk):
        part = images[i:i + chunk].astype(np.float64) / 255.0
        total += part.sum((0, 1, 2))
        squares += np.square(part).sum((0, 1, 2))
    count = images.size // images.shape[-1]
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - np.square(mean), 0.0))
    return tuple(map(float, mean)), tuple(float(s) if s > 1e-6 else 1.0 for s in std)


class ImageFolderTask(ClassifierTask):
    name = "image-folder"
    lab = "your data"
    description = "your image folder (train/<class>/*, test/<class>/*): MLP, CNN or ResNet20 classifier"
    options = (
        static_option("data_dir", str, None, "folder or .zip of train/<class>/*.jpg|*.png, and test/<class>/... "
                      "unless --test-share", none_ok=True),
        static_option("model", str, "cnn", "mlp (Lab E's), cnn (Lab D's) or resnet20 (Lab F's)",
                      choices=tuple(MODEL_DEFAULTS)),
        static_option("width", int, None, "mlp: hidden units (default 256); resnet20: channels of the first "
                      "stage (default 16)", low=1, none_ok=True),
        static_option("depth", int, None, "mlp: hidden layers (default 1); cnn: conv blocks, each halving the "
                      "image (default 2)", low=1, none_ok=True),
        static_option("kernel", int, 5, "cnn: conv kernel size", low=1),
        static_option("channels", int, 32, "cnn: channels of the first conv block, doubling per block", low=1),
        static_option("hidden", int, 128, "cnn: the fc layer's width", low=1),
        static_option("batch_norm", bool, False, "cnn: BatchNorm after each conv (resnet20 always has it)"),
        static_option("blocks", int, 3, "resnet20: basic blocks per stage (3 = ResNet20)", low=1),
        static_option("dropout", float, None, "mlp, cnn: dropout rate (default: mlp 0, cnn 0.5)", low=0, high=1,
                      high_open=True, none_ok=True),
        static_option("resize", str, None, "HxW: resize every image to it (bilinear); needed when sizes differ",
                      none_ok=True, check=parse_size),
        static_option("color", str, "auto", "auto: as the images are (gray and colour mixed is an error); gray or "
                      "rgb: convert every image", choices=("auto", "gray", "rgb")),
        static_option("test_share", float, None, "split this share of train/ off as the test split (for a folder "
                      "without test/)", low=0, high=1, low_open=True, high_open=True, none_ok=True),
        static_option("val_share", float, 0.1, "share of the train images held out to pick the best epoch (0: "
                      "test the last epoch)", low=0, high=1, high_open=True),
        static_option("crop", int, 0, "augment: random crop after zero padding by this many pixels (0: none; "
                      "Lab F's 4)", low=0),
        static_option("flip", bool, False, "augment: random horizontal flip"),
        static_option("optimizer", str, "adam", "adam (PyTorch's) or sgd (PyTorch's, with --momentum and "
                      "--weight-decay)", choices=("adam", "sgd")),
        static_option("drop_epoch", int, 0, "from this epoch the lr is divided by 10 (0: never)", low=0),
        static_option("batch_size", int, 64, "mini-batch size", low=1),
        static_option("epochs", int, 10, "epochs", low=1),
        static_option("data_seed", int, DATA_SEED, "seed of the validation and test splits", low=0),
        traced_option("lr", 0.001, "learning rate (Adam's default)", low=0, low_open=True, log=True),
        traced_option("momentum", 0.0, "SGD momentum (adam ignores it)", low=0, high=1, high_open=True),
        traced_option("weight_decay", 0.0, "coupled L2 weight decay, as PyTorch's optimizers", low=0, high=1,
                      high_open=True, log=True),
    )
    lr_grid = (0.0003, 0.001, 0.003)

    def check(self, static: dict) -> None:
        if not static["data_dir"]:
            raise ValueError(f"{self.name} needs --data-dir (a folder or .zip of train/<class>/*.jpg|*.png)")

    def splits(self, static: dict) -> tuple[dict, tuple[str, ...], str]:
        """(uint8 images x_* (n, H, W, C) and int32 labels y_*, the class names, the data's name)."""
        self.check(static)
        path = static["data_dir"]
        share = static["test_share"]
        raw = load_image_folder_cached(path, resize=static["resize"] and parse_size(static["resize"]),
                                       channels={"gray": 1, "rgb": 3}.get(static["color"]), mixed_channels=False,
                                       test=False)
        names = raw["class_names"]
        if len(names) < 2:
            raise ImageFolderError(f"{path}: one class folder (train/{names[0]}/); a classifier needs two or more: "
                                   "add a folder of images per class")
        if share is None and "test_images" not in raw:
            raise ImageFolderError(f"{path}: no test/ folder beside train/; add test/<class>/... or pass "
                                   "--test-share 0.2 to split a test share off train/")
        if share is not None and "test_images" in raw:
            raise ImageFolderError(f"{path}: has a test/ folder and --test-share {share:g} was given; leave out "
                                   "--test-share to test on test/, or remove test/")
        x, y = raw["train_images"], raw["train_labels"]
        if share is not None:
            keep, test = split_off(y, share, static["data_seed"], "test", path)
            data = {"x_test": x[test], "y_test": y[test]}
            x, y = x[keep], y[keep]
        else:
            data = {"x_test": raw["test_images"], "y_test": raw["test_labels"]}
        if static["val_share"] > 0:
            keep, val = split_off(y, static["val_share"], static["data_seed"], "val", path)
            data.update(x_val=x[val], y_val=y[val])
            x, y = x[keep], y[keep]
        data.update(x_train=x, y_train=y)
        n, h, w, c = x.shape
        parts = "/".join(str(len(data[f"y_{s}"])) for s in ("train", "val", "test") if f"y_{s}" in data)
        which = "train/val/test" if "y_val" in data else "train/test"
        name = (f"{raw['source']}; {parts} {which} images of {h}x{w}x{c}"
                f"{' (resized)' if static['resize'] else ''}; classes {class_list(names)}")
        return data, names, name

    def model(self, static: dict, classes: int, image_shape: tuple[int, ...]):
        kind, d = static["model"], MODEL_DEFAULTS[static["model"]]
        pick = lambda k: d[k] if static[k] is None else static[k]  # noqa: E731
        if kind == "mlp":
            return MLP(width=pick("width"), depth=pick("depth"), out=classes, activation="relu",
                       dropout=pick("dropout"))
        if kind == "cnn":
            depth, (h, w) = pick("depth"), image_shape[:2]
            if min(h, w) >> depth < 1:
                raise ValueError(f"cnn --depth {depth} pools {h}x{w} images {depth} times, below one pixel; "
                                 f"lower --depth or --resize them larger")
            return CNN(depth=depth, kernel=static["kernel"], channels=static["channels"], hidden=static["hidden"],
                       classes=classes, batch_norm=static["batch_norm"], dropout=pick("dropout"),
                       conv=conv_for_backend(self.backend))
        b, w = static["blocks"], pick("width")
        return ResNet(blocks_per_stage=(b, b, b), widths=(w, 2 * w, 4 * w), classes=classes, conv=conv_for_backend(self.backend))

    def build(self, static: dict):
        data, names, name = self.splits(static)
        model = self.model(static, len(names), data["x_train"].shape[1:])
        mean, std = channel_stats(data["x_train"])
        crop, flip, drop = static["crop"], static["flip"], static["drop_epoch"]

        def augment(key, images):  # (B, H, W, C) in [0, 1]
            crop_key, flip_key = jax.random.split(key)  # as Lab F's crop_flip draws them
            images = random_crop(crop_key, images, crop) if crop else images
            return random_flip(flip_key, images) if flip else images

        def optimizer(hp, steps):
            lr = step_schedule(hp["lr"], steps, milestones=(drop,), gamma=0.1) if drop else hp["lr"]
            if static["optimizer"] == "sgd":
                return torch_sgd(lr, momentum=hp["momentum"], weight_decay=hp["weight_decay"])
            return torch_adam(lr, weight_decay=hp["weight_decay"])

        spec = ClassifierSpec(model=model, loss=cross_entropy, optimizer=optimizer, batch_size=static["batch_size"],
                              epochs=static["epochs"], mean=mean, std=std,
                              augment=augment if crop or flip else None, eval_batch=500)
        return make_trainer(spec, data, name), data
