"""Prepared rows → token ids, loss masks and micro-batches, in an order that is a pure function of (seed, epoch).

The TypeScript prepare stage writes one normalised JSON object per line (`kind`: chat, text or completion for
supervised rows; preference for a prompt with a chosen and a rejected response). The dataset is tokenised once per
tokenizer, by the token_statistics activity (`write_tokenized_split`): the ids of every row at full length and a mask
of the tokens in responses go beside the prepared data, memory-mapped by every later reader; a preference row is
stored as two consecutive rows, prompt + chosen and prompt + rejected. Training and evaluation read them and apply
the length policy and loss masking when reading (`rows_for_training`, `pairs_for_training`), so a row counts,
truncates and trains the same way everywhere.
"""

import errno
import json
import math
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from .artifacts import DatasetLayout, atomic_directory, path_to_uri, uri_to_path
from .contract import FailureType
from .errors import failure
from .models import tokenizer_identity
from .payloads import LossOn, Overlong, TokenStatisticsRequest, parse

IGNORED_LABEL = -100
# Bumped whenever tokenisation (segments, special tokens) or the files below change: older ids stop matching.
TOKENS_FORMAT_VERSION = 1
_INPUT_IDS, _RESPONSES, _OFFSETS, _SOURCES = "input_ids.npy", "responses.npy", "offsets.npy", "sources.json"
# Present for preference data only (ids written before preference data existed have none): rows come in pairs.
_PAIRED = "paired"


@dataclass(frozen=True)
class TokenizedRow:
    input_ids: np.ndarray
    labels: np.ndarray
    source: dict
    original_length: int

    @property
    def trainable_tokens(self) -> int:
        """Tokens the loss is computed on: causal models predict token t+1 from t, so the first label never counts."""
        return int(np.count_nonzero(self.labels[1:] != IGNORED_LABEL))

    @property
    def tokens(self) -> int:
        return len(self.input_ids)


@dataclass(frozen=True)
class PreferencePair:
    """A prompt with its chosen and its rejected response, as two rows labelled on their response only."""

    chosen: TokenizedRow
    rejected: TokenizedRow
    source: dict
    # The longer of the two sequences at full length: what the length policy and the planner look at.
    original_length: int

    @property
    def tokens(self) -> int:
        return self.chosen.tokens + self.rejected.tokens

    @property
    def longer(self) -> TokenizedRow:
        return self.chosen if self.chosen.tokens >= self.rejected.tokens else self.rejected


def read_prepared_rows(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _segments(row: dict, tokenizer) -> list[tuple[str, bool]]:
    """The row as consecutive text pieces, each flagged as trained on (a response) or not (a prompt)."""
    kind = row["kind"]
    if kind == "text":
        return [(row["text"] + tokenizer.eos_token, True)]
    if kind == "completion":
        return [(row["prompt"], False), (row["completion"] + tokenizer.eos_token, True)]
    if kind == "chat":
        # Each assistant turn is trained on; everything before it is prompt. Rendering growing prefixes of the
        # conversation through the model's own chat template finds where each turn starts and ends.
        messages = row["messages"]
        pieces: list[tuple[str, bool]] = []
        rendered = ""
        for index, message in enumerate(messages):
            if message["role"] == "assistant":
                prompt = tokenizer.apply_chat_template(messages[:index], tokenize=False, add_generation_prompt=True)
                pieces.append((prompt[len(rendered) :], False))
                rendered = prompt
            full = tokenizer.apply_chat_template(messages[: index + 1], tokenize=False)
            pieces.append((full[len(rendered) :], message["role"] == "assistant"))
            rendered = full
        return [(text, trained) for text, trained in pieces if text]
    raise failure(FailureType.INVALID_DATASET, f"prepared row has unknown kind {kind!r}", source=row.get("source"))


def _preference_segments(row: dict, tokenizer) -> list[list[tuple[str, bool]]]:
    """A preference row as two rows of segments: the prompt through the chat template with the generation prompt,
    then each response as the template of prompt + response minus the prompt's text."""
    prompt = tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
    sequences = []
    for side in ("chosen", "rejected"):
        whole = tokenizer.apply_chat_template(row["prompt"] + row[side], tokenize=False)
        if not whole.startswith(prompt) or len(whole) == len(prompt):
            raise failure(
                FailureType.INVALID_DATASET,
                f"the chat template does not render the {side} response of {row.get('source')} after its prompt",
                source=row.get("source"),
                field=side,
            )
        sequences.append([(prompt, False), (whole[len(prompt) :], True)])
    return sequences


@dataclass(frozen=True)
class TokenizedSplit:
    """Every row of a split at full length: the ids end to end, a per-token response flag, and row offsets."""

    input_ids: np.ndarray  # int32, all rows concatenated
    responses: np.ndarray  # bool, True where the token belongs to a response (an assistant turn, a completion)
    offsets: np.ndarray  # int64, len(rows) + 1: row i is [offsets[i], offsets[i + 1])
    sources: list[dict]
    # Preference data: rows 2i and 2i + 1 are pair i's prompt + chosen and prompt + rejected.
    paired: bool = False

    def __len__(self) -> int:
        return len(self.sources)

    def row(self, index: int, max_seq_length: int | None, loss_on: str) -> TokenizedRow:
        """Row `index` truncated to max_seq_length (None: whole), labelled on responses or on all tokens."""
        start, end = int(self.offsets[index]), int(self.offsets[index + 1])
        kept = end if max_seq_length is None else min(end, start + max_seq_length)
        input_ids = self.input_ids[start:kept].astype(np.int64)
        trained = np.ones(kept - start, dtype=bool) if loss_on == "all" else self.responses[start:kept]
        return TokenizedRow(
            input_ids=input_ids,
            labels=np.where(trained, input_ids, IGNORED_LABEL),
            source=self.sources[index],
            original_length=end - start,
        )

    def rows(self, max_seq_length: int | None, loss_on: str) -> list[TokenizedRow]:
        return [self.row(index, max_seq_length, loss_on) for index in range(len(self))]


def tokenize_split(rows: Sequence[dict], tokenizer) -> TokenizedSplit:
    paired = any(row["kind"] == "preference" for row in rows)
    mixed = next((row for row in rows if (row["kind"] == "preference") != paired), None)
    if mixed is not None:
        raise failure(FailureType.INVALID_DATASET, f"preference and supervised rows in one split: {mixed.get('source')}", source=mixed.get("source"))
    ids: list[int] = []
    responses: list[bool] = []
    offsets = [0]
    sources = []
    for row in rows:
        for segments in _preference_segments(row, tokenizer) if paired else [_segments(row, tokenizer)]:
            for text, trained in segments:
                piece = tokenizer(text, add_special_tokens=False)["input_ids"]
                ids.extend(piece)
                responses.extend([trained] * len(piece))
            offsets.append(len(ids))
            sources.append(row.get("source", {}))
    return TokenizedSplit(
        input_ids=np.asarray(ids, dtype=np.int32),
        responses=np.asarray(responses, dtype=bool),
        offsets=np.asarray(offsets, dtype=np.int64),
        sources=sources,
        paired=paired,
    )


def tokenized_split_directory(split_path: Path, tokenizer_identity: str) -> Path:
    """Where the token ids of a prepared split file go: beside it, keyed by tokenizer (artifacts.DatasetLayout)."""
    return DatasetLayout.of_split(split_path).tokens(tokenizer_identity, TOKENS_FORMAT_VERSION) / split_path.stem


def write_tokenized_split(split: TokenizedSplit, directory: Path) -> None:
    """Writes the split's arrays (plain .npy, memory-mappable) atomically. Ids already there are the same bytes
    (same prepared data, same tokenizer), so another writer that got there first wins."""
    if directory.is_dir():
        return
    try:
        with atomic_directory(directory) as building:
            np.save(building / _INPUT_IDS, split.input_ids)
            np.save(building / _RESPONSES, split.responses)
            np.save(building / _OFFSETS, split.offsets)
            (building / _SOURCES).write_text(json.dumps(split.sources))
            if split.paired:
                (building / _PAIRED).touch()
    except OSError as error:
        if error.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not directory.is_dir():
            raise


def read_tokenized_split(directory: Path) -> TokenizedSplit:
    if not (directory / _OFFSETS).is_file():
        raise failure(
            FailureType.DATASET_NOT_FOUND,
            f"no token ids at {directory}: token_statistics writes them for this dataset and tokenizer before training",
        )
    return TokenizedSplit(
        input_ids=np.load(directory / _INPUT_IDS, mmap_mode="r"),
        responses=np.load(directory / _RESPONSES, mmap_mode="r"),
        offsets=np.load(directory / _OFFSETS),
        sources=json.loads((directory / _SOURCES).read_text()),
        paired=(directory / _PAIRED).is_file(),
    )


def _refuse_overlong(overlong_rows: Sequence[TokenizedRow | PreferencePair], max_seq_length: int) -> None:
    raise failure(
        FailureType.INVALID_DATASET,
        f"{len(overlong_rows)} rows are longer than model.max_seq_length={max_seq_length} tokens "
        f"(dataset.overlong is 'fail'); first: {overlong_rows[0].source} with {overlong_rows[0].original_length} tokens",
        rows=[{"source": row.source, "tokens": row.original_length} for row in overlong_rows[:100]],
    )


def rows_for_training(split: TokenizedSplit, max_seq_length: int, loss_on: LossOn, overlong: Overlong) -> list[TokenizedRow]:
    """The split's rows under the length policy (truncate, drop, or fail naming the rows) and loss masking."""
    if split.paired:
        raise failure(FailureType.INVALID_DATASET, "the dataset holds preference pairs: train it with the dpo objective (train.objective.kind)")
    tokenized = split.rows(max_seq_length, loss_on)
    overlong_rows = [row for row in tokenized if row.original_length > max_seq_length]
    if overlong_rows and overlong == "fail":
        _refuse_overlong(overlong_rows, max_seq_length)
    if overlong == "drop":
        tokenized = [row for row in tokenized if row.original_length <= max_seq_length]
    # A row whose every response token was truncated away teaches nothing and would divide by zero.
    return [row for row in tokenized if row.trainable_tokens > 0]


def _pair(split: TokenizedSplit, index: int, max_seq_length: int | None) -> PreferencePair:
    """Pair `index` within max_seq_length (None: whole). Over it, the prompt loses tokens from its start (down to half
    the length at most), then each response from its end: what is kept is the end of the prompt, next to the
    responses, and the start of the responses, where chosen and rejected first differ."""
    full = [split.row(2 * index + side, None, "responses") for side in (0, 1)]
    prompt_length = int(np.argmax(full[0].labels != IGNORED_LABEL))
    prompt = full[0].input_ids[:prompt_length]
    responses = [row.input_ids[prompt_length:] for row in full]
    original_length = prompt_length + max(len(response) for response in responses)
    if max_seq_length is not None and original_length > max_seq_length:
        kept_prompt = min(prompt_length, max(max_seq_length - max(len(response) for response in responses), max_seq_length // 2))
        prompt = prompt[prompt_length - kept_prompt :]
        responses = [response[: max_seq_length - kept_prompt] for response in responses]
    chosen, rejected = (
        TokenizedRow(
            input_ids=np.concatenate([prompt, response]),
            labels=np.concatenate([np.full(len(prompt), IGNORED_LABEL), response]),
            source=split.sources[2 * index],
            original_length=row.original_length,
        )
        for row, response in zip(full, responses, strict=True)
    )
    return PreferencePair(chosen=chosen, rejected=rejected, source=split.sources[2 * index], original_length=original_length)


def pairs_for_training(split: TokenizedSplit, max_seq_length: int, overlong: Overlong) -> list[PreferencePair]:
    """The split's preference pairs under the length policy (truncate, drop, or fail naming the rows)."""
    if not split.paired:
        raise failure(FailureType.INVALID_DATASET, "the dpo objective trains on preference pairs (prompt, chosen, rejected): the dataset has none")
    pairs = [_pair(split, index, max_seq_length) for index in range(len(split) // 2)]
    overlong_pairs = [pair for pair in pairs if pair.original_length > max_seq_length]
    if overlong_pairs and overlong == "fail":
        _refuse_overlong(overlong_pairs, max_seq_length)
    if overlong == "drop":
        pairs = [pair for pair in pairs if pair.original_length <= max_seq_length]
    # A pair with a response truncated away compares nothing.
    return [pair for pair in pairs if pair.chosen.trainable_tokens > 0 and pair.rejected.trainable_tokens > 0]


def tokenize_dataset(payload: dict) -> dict:
    """The token_statistics activity's body (the payload is parsed into a TokenStatisticsRequest here, once):
    tokenises each split once, writes the ids beside the prepared data (keyed by tokenizer identity) for training and
    evaluation to read, and counts them for the planner. For preference data the counts describe each pair's longer
    sequence (prompt + the longer response)."""
    from transformers import AutoTokenizer

    from .packing import pack_rows  # packing imports this module's row types

    request = parse(TokenStatisticsRequest, payload)
    spec = request.spec
    loss_on, max_seq_length, overlong = spec.train.loss_on, spec.model.max_seq_length, spec.dataset.overlong
    model_directory = uri_to_path(request.model_uri)
    identity = request.tokenizer_identity
    if identity != tokenizer_identity(model_directory):
        raise failure(FailureType.INVALID_SPEC, f"tokenizer_identity {identity} is not the identity of the tokenizer in {model_directory}")
    tokenizer = AutoTokenizer.from_pretrained(str(model_directory))
    result = {}
    for split, split_uri in (("train", request.train_uri), ("val", request.val_uri)):
        split_path = uri_to_path(split_uri)
        tokenized = tokenize_split(read_prepared_rows(split_path), tokenizer)
        directory = tokenized_split_directory(split_path, identity)
        write_tokenized_split(tokenized, directory)
        if tokenized.paired:
            full_length = [pair.longer for pair in (_pair(tokenized, index, None) for index in range(len(tokenized) // 2))]
            # The policy check (fail/drop) runs here too, so a bad dataset fails before any training starts.
            kept = [pair.longer for pair in pairs_for_training(tokenized, max_seq_length, overlong)]
        else:
            full_length = [row for row in tokenized.rows(None, loss_on) if row.trainable_tokens > 0]
            kept = rows_for_training(tokenized, max_seq_length, loss_on, overlong)
        statistics = length_statistics(full_length, max_seq_length)
        statistics["rows_trained"] = len(kept)
        statistics["tokens_trained"] = sum(len(row.input_ids) for row in kept)
        statistics["length_histogram"] = length_histogram([len(row.input_ids) for row in kept])
        # The sequences a packed run trains (the train activity packs the same rows by the same rule): the planner's
        # steps, not an estimate of its own.
        statistics["packed_sequences"] = len(pack_rows([len(row.input_ids) for row in kept], max_seq_length))
        result[split] = statistics
        result[f"{split}_tokens_uri"] = path_to_uri(directory)
    return result


def length_statistics(rows: Sequence[TokenizedRow], max_seq_length: int) -> dict:
    lengths = sorted(row.original_length for row in rows)
    if not lengths:
        return {"rows": 0, "total_tokens": 0, "trainable_tokens": 0}
    return {
        "rows": len(lengths),
        "total_tokens": sum(len(row.input_ids) for row in rows),
        "trainable_tokens": sum(row.trainable_tokens for row in rows),
        "min": lengths[0],
        "median": statistics.median(lengths),
        "p95": lengths[min(len(lengths) - 1, math.ceil(0.95 * len(lengths)) - 1)],
        "max": lengths[-1],
        "over_max_seq_length": sum(1 for length in lengths if length > max_seq_length),
    }


def length_histogram(lengths: Sequence[int]) -> list[dict]:
    """The trained rows' lengths for the planner (padded widths, packs, compiled shapes): bins of about 9 % width,
    upper edges floor(2^(i/8)) so every power of two is an edge (Unsloth's bucketed widths fall on edges); each bin
    counts its rows and their tokens (so its mean length is exact). Empty bins are left out."""
    bins: dict[int, list[int]] = {}
    for length in lengths:
        index = math.ceil(8 * math.log2(length))
        while math.floor(2 ** (index / 8)) < length:
            index += 1
        while index > 0 and math.floor(2 ** ((index - 1) / 8)) >= length:
            index -= 1
        counts = bins.setdefault(math.floor(2 ** (index / 8)), [0, 0])
        counts[0] += 1
        counts[1] += length
    return [{"up_to": up_to, "rows": rows, "tokens": tokens} for up_to, (rows, tokens) in sorted(bins.items())]


@dataclass(frozen=True)
class Schedule:
    """Which rows each optimizer step trains on. Pure arithmetic on (row count, batch sizes, epochs, seed).

    A step takes the next `micro_batch_size * accumulation_steps` rows of its epoch's order, whatever the split
    into micro-batches: after an out-of-memory retry with a smaller micro-batch and more accumulation, every
    step still trains on exactly the same rows.
    """

    row_count: int
    micro_batch_size: int
    accumulation_steps: int
    seed: int
    epochs: float
    max_steps: int | None

    @property
    def rows_per_step(self) -> int:
        return self.micro_batch_size * self.accumulation_steps

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.row_count / self.rows_per_step)

    @property
    def total_steps(self) -> int:
        steps = math.ceil(self.epochs * self.steps_per_epoch)
        return min(steps, self.max_steps) if self.max_steps else steps

    def epoch_order(self, epoch: int) -> np.ndarray:
        # A fresh generator per epoch keyed by (seed, epoch): resuming at any step needs no replay of earlier draws.
        return np.random.default_rng([self.seed, epoch]).permutation(self.row_count)

    def epoch_of_step(self, step: int) -> int:
        return step // self.steps_per_epoch

    def micro_batches_for_step(self, step: int) -> list[np.ndarray]:
        """Row indices of each micro-batch of the 0-based optimizer step."""
        epoch, step_in_epoch = divmod(step, self.steps_per_epoch)
        rows = self.epoch_order(epoch)[step_in_epoch * self.rows_per_step : (step_in_epoch + 1) * self.rows_per_step]
        return [rows[start : start + self.micro_batch_size] for start in range(0, len(rows), self.micro_batch_size)]


def bucketed_width(longest: int, max_seq_length: int, smallest: int = 64) -> int:
    """The next power of two at least as long as the longest row, capped at max_seq_length: a handful of shapes."""
    return min(max_seq_length, max(smallest, 1 << (longest - 1).bit_length()))


def collate(rows: Sequence[TokenizedRow], pad_token_id: int, width: int | None = None) -> dict:
    """Right-pads a micro-batch to its longest row (or to width); padding is masked out of attention and loss."""
    import torch

    width = width or max(len(row.input_ids) for row in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORED_LABEL, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        length = len(row.input_ids)
        input_ids[index, :length] = torch.from_numpy(row.input_ids)
        labels[index, :length] = torch.from_numpy(row.labels)
        attention_mask[index, :length] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}


Row = TypeVar("Row")


def batches(rows: Sequence[Row], size: int) -> Iterator[Sequence[Row]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]
