"""What a lab is to the engine: a :class:`Task` declares its options and builds a Trainer and its
data per static configuration."""
from __future__ import annotations

from typing import Any, ClassVar

from jaxlabs.options import Option, OptionError, by_name, resolve
from jaxlabs.train import Trainer


class Task:
    """Subclasses set the class attributes and implement :meth:`build`.

    ``options``: every choice the task takes (:class:`jaxlabs.options.Option`): static ones shape
    the program (a change compiles a new one), traced ones are numbers the engine vmaps over
    (``lr`` at least). ``static_defaults`` / ``traced_defaults`` are derived from them.
    """

    name: ClassVar[str]
    lab: ClassVar[str]
    description: ClassVar[str]
    options: ClassVar[tuple[Option, ...]]
    static_defaults: ClassVar[dict[str, Any]]
    traced_defaults: ClassVar[dict[str, float]]
    chunk: ClassVar[int] = 100  # epochs per device call: one progress tick
    lr_grid: ClassVar[tuple[float, ...]] = (0.001, 0.01, 0.1)  # the sweep's default learning rates
    primary_metric: ClassVar[str]  # the final metric the tables lead with
    # figure kinds an ad-hoc sweep draws: "loss", "accuracy", "fit", "true_vs_pred", "confusion"
    figures: ClassVar[tuple[str, ...]] = ("loss",)
    # metrics (final values or curves) where larger is better: accuracies, R^2. Every other metric
    # is a loss, an error, epochs or seconds, where smaller is better. Reports and claims read it.
    higher_better: ClassVar[frozenset[str]] = frozenset()
    # options a search (jaxlabs.search) sets when it is not told otherwise: e.g. a validation split
    # for a task whose default has none (a search ranks on validation, never on the test split)
    search_defaults: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "options" in cls.__dict__:
            table = by_name(cls.options)
            cls.static_defaults = {k: o.default for k, o in table.items() if not o.traced}
            cls.traced_defaults = {k: o.default for k, o in table.items() if o.traced}

    def __init__(self, backend: str | None = None):
        # the backend the task builds models for, which picks their convolution
        # (jaxlabs.models.conv_for_backend); None: JAX's default, where they run. experiments.gpu_check
        # builds for "cuda" on any machine
        self.backend = backend

    def higher_is_better(self, metric: str) -> bool:
        return metric in self.higher_better

    def build(self, static: dict) -> tuple[Trainer, Any]:
        raise NotImplementedError

    def check(self, static: dict) -> None:
        """Raise ValueError (one line) for a combination of static options the declarations cannot
        express (e.g. a target undefined on the x range), before anything is trained."""

    def resolve_static(self, **overrides) -> dict:
        """Every static option: the overrides (None: the default) validated over the defaults."""
        values = {k: v for k, v in overrides.items() if v is not None}
        traced = [k for k in values if k in self.traced_defaults]
        if traced:
            raise OptionError(f"{self.name}: {traced[0]} is a traced number (set per member), not a static option")
        return resolve([o for o in self.options if not o.traced], values, self.name)

    def hparams(self, **overrides: float) -> dict[str, float]:
        """Every traced number of one member: the overrides validated over the defaults. The one
        place unswept traced numbers get their defaults."""
        static = [k for k in overrides if k in self.static_defaults]
        if static:
            raise OptionError(f"{self.name}: {static[0]} is a static option, not a traced number")
        return resolve([o for o in self.options if o.traced], overrides, self.name)


class ClassifierTask(Task):
    """A task trained by the shared classifier (:mod:`jaxlabs.tasks.classify`): what every such lab
    declares alike. An epoch is many steps, so each one is a progress tick (the engine moves the
    bar within it: Trainer.slices)."""

    chunk = 1
    primary_metric = "test_acc"
    figures = ("loss", "accuracy", "confusion")
    higher_better = frozenset({"test_acc", "val_acc", "train_acc"})
