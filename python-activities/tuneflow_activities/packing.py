"""Sequence packing: short rows share a sequence instead of being padded, each row still attending only to itself.

A pack holds up to `max_seq_length` tokens of whole rows. With packing on, the unit a step counts is a pack:
a step trains the next `micro_batch_size * accumulation_steps` packs of its epoch, and a micro-batch is
`micro_batch_size` packs laid end to end as one row of at most `micro_batch_size * max_seq_length` tokens
(no padding at all). The packs are a pure function of (seed, epoch, row lengths, max_seq_length), never of the
micro-batch size, so an exact resume trains the same packs and an out-of-memory retry (smaller micro-batch, more
accumulation, same product) trains every step on exactly the same rows.

Row boundaries reach attention through `position_ids`, which restart at 0 for every row:
- transformers (hf-peft loader; sdpa or eager) turns restarting position ids with no attention mask into a
  block-diagonal causal mask (`masking_utils.find_packed_sequence_indices`);
- Unsloth infers `packed_seq_lengths` from them for a one-row batch without a mask and runs its padding-free
  attention (one causal SDPA call per run of equal-length rows on torch 2.11; see bench/gpu/NOTES.md).
Labels: a row's first token is never a target (nothing of the row precedes it), exactly as in an unpadded row,
so the flattened shift never asks a row to predict the next row's first token.
"""

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .data import IGNORED_LABEL, TokenizedRow, epoch_order

if TYPE_CHECKING:
    import torch


def pack_rows(
    order: Sequence[int], lengths: Sequence[int], capacity: int
) -> list[list[int]]:
    """Best fit in the given order: each row goes into the open pack it fills most tightly, else a new pack.

    Deterministic (ties go to the older pack). Rows are at most `capacity` long (tokenisation truncates or drops
    longer ones). Packs are returned in the order they were opened.
    """
    packs: list[list[int]] = []
    # (free tokens, pack index) of every pack with room left, sorted: bisect finds the tightest fit.
    free: list[tuple[int, int]] = []
    for row in order:
        length = lengths[row]
        if length > capacity:
            raise ValueError(
                f"row {row} has {length} tokens, more than a pack holds ({capacity})"
            )
        position = bisect.bisect_left(free, (length, -1))
        if position == len(free):
            packs.append([row])
            pack, remaining = len(packs) - 1, capacity - length
        else:
            remaining, pack = free.pop(position)
            packs[pack].append(row)
            remaining -= length
        if remaining > 0:
            bisect.insort(free, (remaining, pack))
    return packs


@dataclass
class PackedSchedule:
    """Which rows each optimizer step trains on when rows are packed; the interface of data.Schedule."""

    lengths: Sequence[int]
    max_seq_length: int
    micro_batch_size: int
    accumulation_steps: int
    seed: int
    epochs: float
    max_steps: int | None
    _packs: dict = field(default_factory=dict, init=False, repr=False)

    @property
    def packs_per_step(self) -> int:
        return self.micro_batch_size * self.accumulation_steps

    def packs_of_epoch(self, epoch: int) -> list[list[int]]:
        if epoch not in self._packs:
            order = epoch_order(self.seed, epoch, len(self.lengths))
            self._packs[epoch] = pack_rows(
                order.tolist(), self.lengths, self.max_seq_length
            )
        return self._packs[epoch]

    def steps_in_epoch(self, epoch: int) -> int:
        return math.ceil(len(self.packs_of_epoch(epoch)) / self.packs_per_step)

    @property
    def total_steps(self) -> int:
        # Each epoch shuffles differently, so its pack count (and step count) can differ by a pack or two.
        whole, fraction = divmod(self.epochs, 1)
        steps = sum(self.steps_in_epoch(epoch) for epoch in range(int(whole)))
        if fraction:
            steps += math.ceil(fraction * self.steps_in_epoch(int(whole)))
        return min(steps, self.max_steps) if self.max_steps else steps

    def _locate(self, step: int) -> tuple[int, int]:
        epoch = 0
        while step >= self.steps_in_epoch(epoch):
            step -= self.steps_in_epoch(epoch)
            epoch += 1
        return epoch, step

    def epoch_of_step(self, step: int) -> int:
        return self._locate(step)[0]

    def micro_batches_for_step(self, step: int) -> list[list[int]]:
        """Row indices of each micro-batch of the 0-based optimizer step: the rows of its packs, pack by pack."""
        epoch, step_in_epoch = self._locate(step)
        packs = self.packs_of_epoch(epoch)[
            step_in_epoch * self.packs_per_step : (step_in_epoch + 1)
            * self.packs_per_step
        ]
        return [
            [
                row
                for pack in packs[start : start + self.micro_batch_size]
                for row in pack
            ]
            for start in range(0, len(packs), self.micro_batch_size)
        ]


def collate_packed(rows: Sequence[TokenizedRow]) -> dict[str, "torch.Tensor"]:
    """The rows of a micro-batch end to end as one row: position ids restart per row, each row's first label is
    ignored (it would be predicted from the previous row), and there is no attention mask and no padding.

    Forward it with `use_cache=False`: transformers builds the block-diagonal mask only without a KV cache, and a
    model in eval mode (or training without gradient checkpointing) creates one by default."""
    import torch

    input_ids: list[int] = []
    labels: list[int] = []
    position_ids: list[int] = []
    for row in rows:
        input_ids.extend(row.input_ids)
        labels.append(IGNORED_LABEL)
        labels.extend(row.labels[1:])
        position_ids.extend(range(len(row.input_ids)))
    return {
        "input_ids": torch.tensor([input_ids], dtype=torch.long),
        "labels": torch.tensor([labels], dtype=torch.long),
        "position_ids": torch.tensor([position_ids], dtype=torch.long),
    }


def route_unsloth_packed_attention_to_flash_varlen() -> bool:
    """One flash-attention varlen call per layer for packed rows under Unsloth, instead of one SDPA call per run of
    equal-length rows. Returns whether the route was changed.

    Unsloth 2026.10.9 sends packed rows to torch's varlen kernel only when `torch.nn.attention.varlen.varlen_attn`
    takes `enable_gqa` (torch 2.12+, `utils/attention_dispatch.py:_load_torch_varlen_attn`); on torch 2.11 it falls
    back to `_sdpa_packed_segments`, which at ~100-token rows is 2.5 s of a 4 s step (8B, 8 packs of 2048 tokens;
    bench/gpu/NOTES.md). Its own lean path (`_LeanFlashVarlen`) calls aten's flash varlen kernel directly, which takes
    grouped key/value heads natively and exists in torch 2.11 with the same signature, so it is switched on here. The
    cuDNN route is kept off: torch 2.11's cuDNN varlen has no grouped heads.
    """
    import torch

    if not torch.cuda.is_available() or not torch.backends.cuda.is_flash_attention_available():
        return False
    from unsloth.utils import attention_dispatch

    if attention_dispatch._TORCH_VARLEN_ATTN is not None:
        return False
    from torch.nn.attention.varlen import varlen_attn

    def varlen_attn_with_grouped_heads(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, scale=None, window_size=(-1, -1), enable_gqa=False):
        # Only reached under torch.compile (Unsloth leaves packed decoder blocks uncompiled): the eager route is
        # _LeanFlashVarlen. torch 2.11's varlen_attn has no enable_gqa, so grouped heads are expanded here.
        if enable_gqa:
            groups = query.shape[1] // key.shape[1]
            key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
        return varlen_attn(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, scale=scale, window_size=window_size)

    attention_dispatch._TORCH_VARLEN_ATTN = varlen_attn_with_grouped_heads
    attention_dispatch._LEAN_VARLEN = True
    attention_dispatch._varlen_can_use_cudnn = lambda *arguments, **keywords: False
    return True
