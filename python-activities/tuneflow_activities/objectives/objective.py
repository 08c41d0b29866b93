"""What an objective gives the training engine (training.py): the engine owns the loop, the schedule, checkpoints,
resume and the processes; an objective owns what a training example is and what is optimised on it.

The engine normalises every objective the same way: a step's loss is the sum of its examples' losses divided by the
step's `units` (all micro-batches, all processes), so gradient accumulation and data parallelism equal one big batch
exactly. The unit is the objective's: a trained token for sft, a pair for dpo.
"""

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from ..data import TokenizedSplit, batches
from ..payloads import Overlong, Spec, TrainingSetup

if TYPE_CHECKING:
    import torch

# Rows (sft) or pairs (dpo) per forward pass when scoring validation data.
EVALUATION_BATCH_SIZE = 8

Example = TypeVar("Example")


def evaluation_batch_count(examples: int) -> int:
    return -(-examples // EVALUATION_BATCH_SIZE)


@dataclass
class MicroBatchLoss:
    """A micro-batch's share of the step's loss (already divided by the step's units) and the sums of the
    objective's own metrics over its examples (the engine sums them over the step and divides by its units)."""

    loss: "torch.Tensor"
    metric_sums: dict[str, float] = field(default_factory=dict)


class Objective(ABC, Generic[Example]):
    """One training objective of one run; built once the model and tokenizer are loaded."""

    # The names of MicroBatchLoss.metric_sums, the same for every micro-batch: processes sum them in one reduction.
    METRICS: tuple[str, ...] = ()

    def __init__(self, spec: Spec, setup: TrainingSetup, pad_token_id: int):
        self.spec, self.setup, self.pad_token_id = spec, setup, pad_token_id

    @abstractmethod
    def examples(self, split: TokenizedSplit, overlong: Overlong) -> list[Example]:
        """The split's examples under the length policy."""

    def sequences(self, examples: Sequence[Example]) -> list[list[int]]:
        """What the schedule orders: groups of example indices, one group per batch row (one example each, unless
        the objective packs)."""
        return [[index] for index in range(len(examples))]

    @abstractmethod
    def units(self, example: Example) -> int:
        """What the step's loss is averaged over, in this example."""

    @abstractmethod
    def collate(self, sequences: Sequence[Sequence[Example]]) -> dict:
        """A micro-batch on the device; its `input_ids` is what the model computes on (padding included)."""

    @abstractmethod
    def micro_batch_loss(self, model, batch: dict, step_units: int) -> MicroBatchLoss:
        """The forward pass(es) of one micro-batch, under the engine's autocast; the engine runs the backward."""

    @abstractmethod
    def summed_loss(self, model, examples: Sequence[Example]) -> float:
        """The loss of one batch of held-out examples, summed over their units, without gradients."""

    def validation_sums(self, model, examples: Sequence[Example], at_least_batches: int = 0, filler: Sequence[Example] = ()) -> tuple[float, int]:
        """The summed validation loss over `examples` and the units it is over. `at_least_batches` runs the first batch
        (or the `filler` examples) again, uncounted, until that many forward passes ran: sharded processes must all
        run as many."""
        import torch

        total_loss, total_units = 0.0, 0
        example_batches = list(batches(examples, EVALUATION_BATCH_SIZE))
        with torch.no_grad():
            for index in range(max(len(example_batches), at_least_batches)):
                counted = index < len(example_batches)
                batch_examples = example_batches[index] if counted else (example_batches[0] if example_batches else list(filler))
                loss = self.summed_loss(model, batch_examples)
                if counted:
                    total_loss += loss
                    total_units += sum(self.units(example) for example in batch_examples)
        return total_loss, total_units

    @abstractmethod
    def evaluate(self, model, examples: Sequence[Example]) -> dict:
        """Base (the adapter disabled) against tuned on the held-out examples: the evaluate result's metrics."""

    def fingerprint(self) -> dict:
        """What a checkpoint of this objective must agree with beyond the engine's fingerprint."""
        return {}
