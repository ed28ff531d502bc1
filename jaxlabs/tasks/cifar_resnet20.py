"""Lab F: CIFAR-10 with ResNet20, SGD with weight decay, lr then lr / 10.

Seed 003, exercise 2, and the course script it completes (``exp2.py``, whose data pipeline is
marked "DO NOT MODIFY"): batch 128, ``RandomCrop(32, padding=4)`` + ``RandomHorizontalFlip`` on
the training images, ``Normalize((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))``,
cross entropy, ``optim.SGD(lr, weight_decay=5e-4)`` (coupled L2, no momentum), lr 0.1 for 5
epochs then 0.01 for 5. The report re-created the optimizer at the drop; with momentum 0 that is
the same as this per-step schedule (with momentum > 0 the buffer is kept, as ``MultiStepLR``
would). No validation split by default, as the script: the model after the last epoch is tested,
and the test split is evaluated after every epoch for the train-vs-test curves the report drew.
``val_split > 0`` holds that share of the training images out to keep the best epoch (a search
sets 0.1: it ranks on validation, never on the test split).

CIFAR-10 is read from ``data_dir`` / ``$JAXLABS_DATA_DIR`` (``jaxlabs.data.load_dataset``).
``synthetic=N`` trains on N random CIFAR-shaped images instead (N // 5 test images): for tests
and speed benchmarks only; every record carries ``synthetic=N`` so it cannot pass for CIFAR-10.
Speed check on synthetic data, 2 seeds::

    python -c "from jaxlabs.tasks.cifar_resnet20 import CifarResNet20Task; from jaxlabs.sweep import run_sweep; \
t = CifarResNet20Task(); r = run_sweep(t, [t.resolve_static(synthetic=2048, epochs=1)], [0, 1], {'lr': [0.1]})"
"""
from __future__ import annotations

from jaxlabs.data import crop_flip, load_dataset
from jaxlabs.data.splits import DATA_SEED
from jaxlabs.models import ResNet, conv_for_backend
from jaxlabs.options import static_option, traced_option
from jaxlabs.tasks.base import ClassifierTask
from jaxlabs.tasks.classify import ClassifierSpec, data_name, held_out_splits, make_trainer, synthetic_images
from jaxlabs.optim import cross_entropy, step_schedule, torch_sgd

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)  # the course script's Normalize
CIFAR_STD = (0.2023, 0.1994, 0.2010)


def make_optimizer(hp: dict, steps_per_epoch: int, drop_epoch: int):
    """SGD with coupled weight decay at hp['lr'] for ``drop_epoch`` epochs, then hp['lr'] / 10."""
    schedule = step_schedule(hp["lr"], steps_per_epoch, milestones=(drop_epoch,), gamma=0.1)
    return torch_sgd(schedule, momentum=hp["momentum"], weight_decay=hp["weight_decay"])


class CifarResNet20Task(ClassifierTask):
    name = "cifar-resnet20"
    lab = "F"
    description = ("Lab F: CIFAR-10 ResNet20, SGD weight decay 5e-4, lr for 5 epochs then lr/10, crop+flip "
                   "(synthetic=N: random CIFAR-shaped data, for speed only)")
    options = (
        static_option("blocks", int, 3, "basic blocks per stage: 3 = ResNet20 (1 = ResNet8, for tests)", low=1),
        static_option("width", int, 16, "channels of the first stage (16/32/64 in ResNet20)", low=1),
        static_option("batch_size", int, 128, "mini-batch size (the course script's: 391 steps per epoch)", low=1),
        static_option("epochs", int, 10, "epochs (5 at lr, 5 at lr / 10)", low=1),
        static_option("drop_epoch", int, 5, "the epoch from which the lr is divided by 10", low=0),
        static_option("augment", bool, True, "the script's RandomCrop(32, 4) + RandomHorizontalFlip"),
        static_option("data_dir", str, None, "folder with the CIFAR-10 files (default: $JAXLABS_DATA_DIR and the "
                      "usual places)", none_ok=True),
        static_option("val_split", float, 0.0, "share of the training images held out to pick the best epoch "
                      "(the script had none: the last epoch is tested)", low=0, high=1, high_open=True),
        static_option("data_seed", int, DATA_SEED, "seed of the validation split, when there is one", low=0),
        static_option("synthetic", int, 0, "> 0: that many random CIFAR-shaped train images instead of CIFAR-10 "
                      "(speed only; not a result)", low=0),
        traced_option("lr", 0.1, "learning rate before the drop", low=0, low_open=True, log=True),
        traced_option("momentum", 0.0, "SGD momentum (the course script's 0)", low=0, high=1, high_open=True),
        traced_option("weight_decay", 5e-4, "coupled L2 weight decay (PyTorch SGD's; the script's 5e-4)",
                      low=0, high=1, high_open=True, log=True),
    )
    lr_grid = (0.05, 0.1, 0.2)
    search_defaults = {"val_split": 0.1}

    def raw_data(self, static: dict) -> dict:
        """load_dataset's dict: CIFAR-10 (or a copy) from data_dir, or the synthetic stand-in."""
        if static["synthetic"]:
            n = int(static["synthetic"])
            return synthetic_images(n, max(n // 5, 1), (32, 32, 3))
        return load_dataset("cifar10", static["data_dir"])

    def build(self, static: dict):
        raw = self.raw_data(static)
        data = held_out_splits(raw, static["val_split"], static["data_seed"])
        b, w = static["blocks"], static["width"]
        model = ResNet(blocks_per_stage=(b, b, b), widths=(w, 2 * w, 4 * w), conv=conv_for_backend(self.backend))
        drop = static["drop_epoch"]
        spec = ClassifierSpec(
            model=model, loss=cross_entropy, optimizer=lambda hp, steps: make_optimizer(hp, steps, drop),
            batch_size=static["batch_size"], epochs=static["epochs"], mean=CIFAR_MEAN, std=CIFAR_STD,
            augment=crop_flip if static["augment"] else None, eval_batch=500)
        return make_trainer(spec, data, data_name(raw, "CIFAR-10", static["synthetic"])), data
