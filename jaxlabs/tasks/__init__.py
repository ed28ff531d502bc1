"""Every lab as a task the sweep engine can run; ``TASKS`` maps CLI names to them."""
from jaxlabs.tasks.base import Task
from jaxlabs.tasks.fit import FitPolyTask, FitTask

TASKS: dict[str, type[Task]] = {cls.name: cls for cls in (FitTask, FitPolyTask)}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]()
    except KeyError:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}") from None


__all__ = ["TASKS", "Task", "get_task"]
