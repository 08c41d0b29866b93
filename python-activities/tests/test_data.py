"""Tokenisation masks exactly the prompt, the token ids are written once beside the prepared data, and the
schedule is a pure function of (seed, epoch, step)."""

import numpy as np
import pytest
from temporalio.exceptions import ApplicationError
from transformers import AutoTokenizer

from tuneflow_activities.artifacts import uri_to_path
from tuneflow_activities.data import (
    IGNORED_LABEL,
    TOKENS_FORMAT_VERSION,
    Schedule,
    length_histogram,
    read_prepared_rows,
    read_tokenized_split,
    rows_for_training,
    tokenize_split,
)
from tuneflow_activities.models import tokenizer_identity


@pytest.fixture(scope="module")
def tokenizer(tiny_model_uri):
    return AutoTokenizer.from_pretrained(uri_to_path(tiny_model_uri))


def tokenize_row(row: dict, tokenizer, max_seq_length: int, loss_on: str):
    return tokenize_split([row], tokenizer).row(0, max_seq_length, loss_on)


def trained_text(tokenizer, tokenized) -> str:
    return tokenizer.decode([token for token, label in zip(tokenized.input_ids, tokenized.labels, strict=True) if label != IGNORED_LABEL])


def test_only_assistant_turns_are_trained_on(tokenizer):
    row = {
        "kind": "chat",
        "messages": [
            {"role": "system", "content": "Answer in JSON."},
            {"role": "user", "content": "Who is Anna?"},
            {"role": "assistant", "content": '{"name": "Anna"}'},
            {"role": "user", "content": "And Ben?"},
            {"role": "assistant", "content": '{"name": "Ben"}'},
        ],
    }
    tokenized = tokenize_row(row, tokenizer, 512, "responses")
    assert trained_text(tokenizer, tokenized) == '{"name": "Anna"}<|im_end|>\n{"name": "Ben"}<|im_end|>\n'
    whole = tokenizer.apply_chat_template(row["messages"], tokenize=False)
    assert tokenizer.decode(tokenized.input_ids) == whole
    assert trained_text(tokenizer, tokenize_row(row, tokenizer, 512, "all")) == whole


def test_completion_rows_train_on_the_completion_and_its_end(tokenizer):
    tokenized = tokenize_row({"kind": "completion", "prompt": "2+2=", "completion": "4"}, tokenizer, 64, "responses")
    assert trained_text(tokenizer, tokenized) == "4" + tokenizer.eos_token


def test_overlong_policy(tokenizer):
    rows = [{"kind": "text", "text": "word " * 200, "source": {"file": "d.jsonl", "row": 3}}, {"kind": "text", "text": "short"}]
    split = tokenize_split(rows, tokenizer)
    assert [len(row.input_ids) for row in rows_for_training(split, 32, "all", "truncate")] == [32, 2]
    assert len(rows_for_training(split, 32, "all", "drop")) == 1
    with pytest.raises(ApplicationError) as failed:
        rows_for_training(split, 32, "all", "fail")
    assert "{'file': 'd.jsonl', 'row': 3}" in failed.value.message


def test_schedule_covers_each_row_once_per_epoch_and_keeps_rows_per_step_across_micro_batch_sizes():
    schedule = Schedule(row_count=50, micro_batch_size=4, accumulation_steps=2, seed=3, epochs=2, max_steps=None)
    assert schedule.steps_per_epoch == 7 and schedule.total_steps == 14
    for epoch in range(2):
        seen = np.concatenate([np.concatenate(schedule.micro_batches_for_step(step)) for step in range(epoch * 7, epoch * 7 + 7)])
        assert sorted(seen.tolist()) == list(range(50))
    assert not np.array_equal(schedule.epoch_order(0), schedule.epoch_order(1))
    # After an out-of-memory retry with half the micro-batch and twice the accumulation, each step trains on
    # exactly the same rows.
    halved = Schedule(row_count=50, micro_batch_size=2, accumulation_steps=4, seed=3, epochs=2, max_steps=None)
    for step in range(14):
        assert np.array_equal(np.concatenate(schedule.micro_batches_for_step(step)), np.concatenate(halved.micro_batches_for_step(step)))


def test_token_statistics_writes_the_ids_once_beside_the_prepared_data_keyed_by_tokenizer(tokens, prepared, tiny_model_uri, tokenizer):
    train_path = uri_to_path(prepared["train_uri"])
    identity = tokenizer_identity(uri_to_path(tiny_model_uri))
    directory = uri_to_path(tokens["train_tokens_uri"])
    assert directory == train_path.parent / "tokens" / f"v{TOKENS_FORMAT_VERSION}-{identity}" / "train"
    split = read_tokenized_split(directory)
    assert isinstance(split.input_ids, np.memmap)
    # The stored ids are the rows tokenised at full length; the statistics count them after the length policy.
    expected = tokenize_split(read_prepared_rows(train_path), tokenizer)
    assert np.array_equal(split.input_ids, expected.input_ids) and np.array_equal(split.responses, expected.responses)
    assert len(split) == tokens["train"]["rows"] == 96
    assert tokens["train"]["tokens_trained"] == sum(len(row.input_ids) for row in rows_for_training(split, 128, "responses", "truncate"))


def test_token_statistics_bins_the_trained_lengths_for_the_planner(tokens):
    histogram = tokens["train"]["length_histogram"]
    assert sum(bin["rows"] for bin in histogram) == tokens["train"]["rows_trained"]
    assert sum(bin["tokens"] for bin in histogram) == tokens["train"]["tokens_trained"]


def test_length_histogram_bins_are_about_nine_percent_wide_with_every_power_of_two_an_edge():
    histogram = length_histogram([1, 64, 65, 69, 70, 100, 128, 129, 2048])
    assert histogram == [
        {"up_to": 1, "rows": 1, "tokens": 1},
        {"up_to": 64, "rows": 1, "tokens": 64},
        {"up_to": 69, "rows": 2, "tokens": 134},
        {"up_to": 76, "rows": 1, "tokens": 70},
        {"up_to": 107, "rows": 1, "tokens": 100},
        {"up_to": 128, "rows": 1, "tokens": 128},
        {"up_to": 139, "rows": 1, "tokens": 129},
        {"up_to": 2048, "rows": 1, "tokens": 2048},
    ]
