"""What a lab is to the engine: a :class:`Task` builds a Trainer and its data per static config."""
from __future__ import annotations

from typing import Any, ClassVar

from jaxlabs.train import Trainer


class Task:
    """Subclasses set the class attributes and implement :meth:`build`.

    ``static_defaults``: choices that shape the program (a change compiles a new one).
    ``traced_defaults``: numbers the engine vmaps over (learning rate at least).
    """

    name: ClassVar[str]
    lab: ClassVar[str]
    description: ClassVar[str]
    static_defaults: ClassVar[dict[str, Any]]
    traced_defaults: ClassVar[dict[str, float]]
    chunk: ClassVar[int] = 100  # epochs per device call: one progress tick
    lr_grid: ClassVar[tuple[float, ...]] = (0.001, 0.01, 0.1)  # the sweep's default learning rates
    primary_metric: ClassVar[str]  # the final metric the tables lead with
    # metrics (final values or curves) where larger is better: accuracies, R^2. Every other metric
    # is a loss, an error, epochs or seconds, where smaller is better. Reports and claims read it.
    higher_better: ClassVar[frozenset[str]] = frozenset()

    def higher_is_better(self, metric: str) -> bool:
        return metric in self.higher_better

    def build(self, static: dict) -> tuple[Trainer, Any]:
        raise NotImplementedError

    def check(self, static: dict) -> None:
        """Raise ValueError (one line) for a bad static option before anything is trained.
        The default builds nothing; tasks override it for checks that are cheap."""

    def resolve_static(self, **overrides) -> dict:
        unknown = set(overrides) - set(self.static_defaults)
        if unknown:
            raise ValueError(f"{self.name} has no option {sorted(unknown)[0]!r}")
        return {**self.static_defaults, **{k: v for k, v in overrides.items() if v is not None}}
