"""Every lab as a task the sweep engine can run; ``TASKS`` maps CLI names to them."""
from jaxlabs.tasks.base import Task
from jaxlabs.tasks.boston import BostonTask
from jaxlabs.tasks.cifar_resnet20 import CifarResNet20Task
from jaxlabs.tasks.csv_table import CsvTask
from jaxlabs.tasks.fashion_mlp import FashionMLPTask
from jaxlabs.tasks.fit import FitPolyTask, FitTask
from jaxlabs.tasks.image_folder import ImageFolderTask
from jaxlabs.tasks.mnist_cnn import MnistCNNTask
from jaxlabs.tasks.scratch import ScratchTask

TASKS: dict[str, type[Task]] = {cls.name: cls for cls in (
    FitTask, FitPolyTask, BostonTask, MnistCNNTask, FashionMLPTask, CifarResNet20Task, ScratchTask, CsvTask,
    ImageFolderTask)}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]()
    except KeyError:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}") from None


__all__ = ["TASKS", "Task", "get_task"]
