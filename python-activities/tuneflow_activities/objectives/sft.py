"""Supervised fine-tuning: next-token loss on the responses (or on every token, `train.loss_on`), rows packed into
sequences when the setup says so (packing.py)."""

import logging
import math
from collections.abc import Sequence

from ..data import TokenizedRow, TokenizedSplit, bucketed_width, collate, rows_for_training
from ..packing import collate_packed, pack_rows, route_unsloth_packed_attention_to_flash_varlen
from ..payloads import Overlong
from .objective import MicroBatchLoss, Objective

logger = logging.getLogger(__name__)


class SupervisedFineTuning(Objective[TokenizedRow]):
    def __init__(self, spec, setup, pad_token_id):
        super().__init__(spec, setup, pad_token_id)
        if setup.packing and setup.backend == "unsloth" and route_unsloth_packed_attention_to_flash_varlen():
            logger.info("packed rows attend through flash-attention varlen (one call per layer)")

    def examples(self, split: TokenizedSplit, overlong: Overlong) -> list[TokenizedRow]:
        return rows_for_training(split, self.spec.model.max_seq_length, self.spec.train.loss_on, overlong)

    def sequences(self, examples: Sequence[TokenizedRow]) -> list[list[int]]:
        """A pack of rows per sequence under packing, else one row."""
        if self.setup.packing:
            return pack_rows([row.tokens for row in examples], self.spec.model.max_seq_length)
        return super().sequences(examples)

    def units(self, example: TokenizedRow) -> int:
        return example.trainable_tokens

    def collate(self, sequences: Sequence[Sequence[TokenizedRow]]) -> dict:
        """Packs end to end as one unpadded row (collate_packed), or rows padded to the longest (collate; to a few
        bucketed widths under Unsloth, which compiles per shape)."""
        if self.setup.packing:
            # Unsloth leaves packed decoder blocks uncompiled, so a new length per micro-batch costs no compile.
            batch = collate_packed(sequences)
            if self.setup.backend != "unsloth":
                # transformers reads the boundaries from the position ids; only Unsloth's kernels take the lengths.
                del batch["packed_seq_lengths"]
        else:
            longest = max(row.tokens for (row,) in sequences)
            width = bucketed_width(longest, self.spec.model.max_seq_length) if self.setup.pads_to_fixed_shapes else None
            batch = collate([row for (row,) in sequences], self.pad_token_id, width)
        return {key: value.to(self.setup.device) for key, value in batch.items()}

    def micro_batch_loss(self, model, batch: dict, step_units: int) -> MicroBatchLoss:
        # The model sums the token losses and divides by num_items_in_batch, the step's trained tokens. Training never
        # reads a KV cache, and with one transformers ignores packed position ids (the rows of a pack would attend to
        # each other).
        return MicroBatchLoss(model(**batch, num_items_in_batch=step_units, use_cache=False).loss)

    def summed_loss(self, model, examples: Sequence[TokenizedRow]) -> float:
        batch = {key: value.to(self.setup.device) for key, value in collate(examples, self.pad_token_id).items()}
        # num_items_in_batch=1 makes the model return the summed token loss, so the mean is over all tokens.
        return model(**batch, num_items_in_batch=1).loss.item()

    def evaluate(self, model, examples: Sequence[TokenizedRow]) -> dict:
        """Loss and perplexity on the held-out rows, base and tuned."""
        with model.disable_adapter():
            base_loss = self._mean_loss(model, examples)
        tuned_loss = self._mean_loss(model, examples)
        return {
            "val_rows": len(examples),
            "val_tokens": sum(row.trainable_tokens for row in examples),
            "base_val_loss": base_loss,
            "tuned_val_loss": tuned_loss,
            "base_perplexity": math.exp(base_loss) if base_loss is not None else None,
            "tuned_perplexity": math.exp(tuned_loss) if tuned_loss is not None else None,
        }

    def _mean_loss(self, model, examples) -> float | None:
        total_loss, total_tokens = self.validation_sums(model, examples)
        return total_loss / total_tokens if total_tokens else None
