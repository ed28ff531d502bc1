"""What a run decides between chunks, as pure functions of its state and the host values
(:class:`Policy`): where the decision points are, how long each chunk is, whether stopped members
are compacted between chunks, and what happens at a decision point. The base class is a sweep's
(no decision point but the budget; compaction); a search's policies are in
:mod:`jaxlabs.search.policies`."""
from __future__ import annotations

from typing import TYPE_CHECKING

from jaxlabs.engine.options import EngineOptions
from jaxlabs.engine.state import RunState
from jaxlabs.train import Trainer

if TYPE_CHECKING:  # the loop that calls a policy
    from jaxlabs.engine.run import Built, Run


class Policy:
    """What a run decides, as pure functions of its state and the host values. The base is a sweep's."""

    holds = False  # a unit whose members all stopped: True holds its values to the next decision point
    compacts = True  # stopped members are moved / repacked between chunks (EngineOptions.compaction)

    def first_chunk(self, trainer: Trainer, options: EngineOptions) -> int:
        """The chunk length auto probes with and the memory check sizes."""
        n = self.chunks(trainer, options)
        return -(-trainer.max_epochs // n)

    def chunks(self, trainer: Trainer, options: EngineOptions) -> int:
        # equal chunks that cover max_epochs with the least overshoot: epochs past the budget in the
        # last chunk are computed (masked) too, so 300 epochs in chunks of 250 would cost 500
        return -(-trainer.max_epochs // max(1, options.chunk_for(100)))

    def stops(self, budget: int) -> list[int]:
        """The decision points before the budget."""
        return []

    def lengths(self, built: Built, epoch: int, stop: int) -> list[int]:
        """The chunks from ``epoch`` to ``stop``."""
        return [built.chunk] * -(-(stop - epoch) // built.chunk)

    def decide(self, state: RunState, run: Run) -> RunState:
        """The state after the decision point ``state.stop`` (every unit is at that epoch)."""
        return state


SweepPolicy = Policy
