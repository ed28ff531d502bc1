"""Lab D: MNIST digits with a small CNN, Adam, cross entropy, best-validation checkpoint.

Seed 001, part 2. The model is [conv -> (BatchNorm) -> relu -> maxpool 2] x depth -> fc -> relu
-> dropout -> fc(10) (:class:`jaxlabs.models.CNN`). Splits:

- ``subset < 1`` (default 0.05, the report's local runs): the 70,000 MNIST images (train and test
  files pooled) are subsampled, stratified by digit, and split train:val:test = 4.8:1.2:1. 5% is
  2,400 / 600 / 500 images: the report's "3000 images" for training and validation, and its
  confusion matrices hold about 500 test images (sklearn's rounding gives 2,399 / 600 / 501).
- ``subset == 1`` (the report's "full set, same proportions", where it reached 99%+): 48,000 /
  12,000 of the train file for train / val, and the official 10,000-image test file, which is the
  same 4.8:1.2:1 and keeps test accuracy comparable with everyone else's.

The report does not give batch size, channels, dropout rate, epochs or the normalisation; the
defaults are the usual PyTorch MNIST choices and each says so. Full-set run (3 seeds, 3 epochs;
test accuracy 0.9903 +- 0.0019 over seeds 0-2; 2 epochs gave 0.9895 +- 0.0014)::

    python -c "from jaxlabs.tasks.mnist_cnn import MnistCNNTask; from jaxlabs.sweep import run_sweep; \
t = MnistCNNTask(); r = run_sweep(t, [t.resolve_static(subset=1.0, epochs=3)], [0, 1, 2], {'lr': [0.001]})"
"""
from __future__ import annotations

import numpy as np

from jaxlabs.data import augment as augment_images
from jaxlabs.data import load_dataset, split_ratio
from jaxlabs.data.splits import DATA_SEED
from jaxlabs.models import CNN, INIT_SCHEMES, conv_for_backend
from jaxlabs.options import static_option, traced_option
from jaxlabs.tasks.base import ClassifierTask
from jaxlabs.tasks.classify import ClassifierSpec, data_name, make_trainer, synthetic_images
from jaxlabs.optim import cross_entropy, torch_adam

MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)  # transforms.Normalize of the PyTorch MNIST example
SPLIT = (4.8, 1.2, 1.0)  # the report's train:val:test


def mnist_splits(raw: dict, subset: float, data_seed: int = DATA_SEED) -> dict[str, np.ndarray]:
    """x_{train,val,test} uint8 (n, 28, 28, 1) and y_* int32 (n,) from load_dataset's dict."""
    if subset < 1:
        images = np.concatenate([raw["train_images"], raw["test_images"]])
        labels = np.concatenate([raw["train_labels"], raw["test_labels"]])
        parts = split_ratio(len(images), SPLIT, seed=data_seed, subset=subset, labels=labels)
        return {f"{a}_{s}": (images if a == "x" else labels)[idx]
                for s, idx in zip(("train", "val", "test"), parts) for a in ("x", "y")}
    train, val = split_ratio(len(raw["train_images"]), SPLIT[:2], seed=data_seed)
    return {"x_train": raw["train_images"][train], "y_train": raw["train_labels"][train],
            "x_val": raw["train_images"][val], "y_val": raw["train_labels"][val],
            "x_test": raw["test_images"], "y_test": raw["test_labels"]}


class MnistCNNTask(ClassifierTask):
    name = "mnist-cnn"
    lab = "D"
    description = "Lab D: MNIST CNN [conv-(bn)-relu-pool] x depth -> fc -> dropout -> fc, Adam, best-val checkpoint"
    options = (
        static_option("depth", int, 2, "conv blocks (the report's default: conv-pool-conv-pool-fc-fc); "
                      "4 pools 28x28 down to 1x1", low=1, high=4),
        static_option("kernel", int, 5, "conv kernel size (the report's choice: 5x5 best trade-off)", low=1),
        static_option("channels", int, 32, "channels of the first conv block, doubling per block (not in the "
                      "report)", low=1),
        static_option("hidden", int, 128, "the fc layer's width (not in the report)", low=1),
        static_option("batch_norm", bool, False, "BatchNorm after each conv (studied on/off; the base has none)"),
        static_option("dropout", float, 0.5, "dropout rate before the last fc (several studied; PyTorch's "
                      "nn.Dropout default)", low=0, high=1, high_open=True),
        # the PyTorch MNIST example's; 2,399 images -> 38 steps
        static_option("batch_size", int, 64, "mini-batch size (not in the report)", low=1),
        # the report's curves settle after ~15 epochs on the 5% subset; 3 reach 99% on the full set
        static_option("epochs", int, 20, "epochs", low=1),
        static_option("subset", float, 0.05, "fraction of the 70k images (the report's local runs: 0.05); "
                      "1 = the full set", low=0, high=1, low_open=True),
        static_option("augment", bool, False, "on-device rotation 10 / translate 0.1 / brightness 0.2 (the "
                      "report found it harmful)"),
        static_option("data_dir", str, None, "folder with the MNIST files (default: $JAXLABS_DATA_DIR and the "
                      "usual places)", none_ok=True),
        static_option("data_seed", int, DATA_SEED, "seed of the split, apart from the training seeds", low=0),
        static_option("synthetic", int, 0, "> 0: that many random MNIST-shaped train images instead of MNIST "
                      "(tests, benchmarks; not a result)", low=0),
        static_option("initializer", str, "pytorch", "weight initialisation", choices=tuple(INIT_SCHEMES)),
        traced_option("lr", 0.001, "Adam learning rate (its default, the usual MNIST choice)", low=0, low_open=True,
                      log=True),
    )
    lr_grid = (0.0001, 0.001, 0.01)

    def raw_data(self, static: dict) -> dict:
        if static["synthetic"]:
            n = int(static["synthetic"])
            return synthetic_images(n, max(n // 6, 1), (28, 28, 1), seed=static["data_seed"])
        return load_dataset("mnist", static["data_dir"])

    def build(self, static: dict):
        raw = self.raw_data(static)
        data = mnist_splits(raw, static["subset"], static["data_seed"])
        model = CNN(depth=static["depth"], kernel=static["kernel"], channels=static["channels"],
                    hidden=static["hidden"], batch_norm=static["batch_norm"], dropout=static["dropout"],
                    initializer=static["initializer"], conv=conv_for_backend(self.backend))
        spec = ClassifierSpec(
            model=model, loss=cross_entropy, optimizer=lambda hp, steps: torch_adam(hp["lr"]),
            batch_size=static["batch_size"], epochs=static["epochs"], mean=MNIST_MEAN, std=MNIST_STD,
            augment=augment_images if static["augment"] else None)  # rotation 10, translate 0.1, brightness 0.2
        return make_trainer(spec, data, data_name(raw, "MNIST", static["synthetic"])), data
