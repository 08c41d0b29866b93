"""Sequence packing: short rows share a sequence instead of being padded, each row still attending only to itself.

Rows are grouped into packs of up to `max_seq_length` tokens (`pack_rows`, a pure function of the lengths); the
schedule (data.Schedule) orders the packs per epoch by seed, and a step trains `micro_batch_size *
accumulation_steps` packs, so resume and an out-of-memory retry (smaller micro-batch, more accumulation, same
product) train every step on exactly the same rows.

A micro-batch of packs is laid end to end as ONE row (`collate_packed`): no padding at all, position ids restarting
at every row, no attention mask. That is the layout both loaders' attention reads row boundaries from:
- transformers (hf-peft; sdpa or eager) turns restarting position ids without a mask and without a KV cache into a
  block-diagonal causal mask (`masking_utils.find_packed_sequence_indices`);
- Unsloth's padding-free path takes `packed_seq_lengths` for a one-row batch only (`_sdpa_packed_segments` and its
  varlen route require batch size 1; with several rows and lengths it would build one mask over all of them), and
  on torch 2.11 needs `route_unsloth_packed_attention_to_flash_varlen` to be fast (bench/gpu/NOTES.md).
"""

import bisect
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .data import IGNORED_LABEL, TokenizedRow

if TYPE_CHECKING:
    import torch


def pack_rows(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Row indices grouped into packs of at most `capacity` tokens: best fit, longest rows first.

    A pure function of the lengths: the packs are the same in every attempt and every epoch (the schedule shuffles
    the packs per epoch, by seed), so resume and an out-of-memory retry see exactly the same sequences. Best-fit
    decreasing leaves little room unused: long rows open packs, short rows fill the gaps.
    """
    packs: list[list[int]] = []
    # (room left, pack index), sorted: the tightest pack with room for a row is found by bisection.
    room: list[tuple[int, int]] = []
    for index in sorted(range(len(lengths)), key=lambda row: (-lengths[row], row)):
        length = lengths[index]
        position = bisect.bisect_left(room, (length, -1))
        if position == len(room):
            packs.append([index])
            bisect.insort(room, (capacity - length, len(packs) - 1))
        else:
            left, pack = room.pop(position)
            packs[pack].append(index)
            bisect.insort(room, (left - length, pack))
    return [sorted(pack) for pack in packs]


def collate_packed(packs: Sequence[Sequence[TokenizedRow]]) -> dict[str, "torch.Tensor"]:
    """The rows of a micro-batch's packs end to end as one row, without padding.

    Position ids restart at every row, which tells attention where rows end; `packed_seq_lengths` carries the same
    boundaries for Unsloth's kernels (transformers does not take it: drop it for hf-peft). The first token of every
    row is unlabelled, as it is in an unpacked row: otherwise the row before would be trained to predict it. Forward
    with `use_cache=False`: with a KV cache transformers ignores packed position ids.
    """
    import torch

    rows = [row for pack in packs for row in pack]
    input_ids = torch.from_numpy(np.concatenate([row.input_ids for row in rows])).long()
    labels = torch.from_numpy(np.concatenate([np.concatenate([[IGNORED_LABEL], row.labels[1:]]) for row in rows])).long()
    position_ids = torch.cat([torch.arange(len(row.input_ids)) for row in rows])
    return {
        "input_ids": input_ids[None],
        "labels": labels[None],
        "position_ids": position_ids[None],
        "packed_seq_lengths": torch.tensor([len(row.input_ids) for row in rows], dtype=torch.int32),
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
    from unsloth.utils import attention_dispatch  # pyright: ignore[reportMissingImports]  (a GPU-only package, absent from CPU environments)

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
