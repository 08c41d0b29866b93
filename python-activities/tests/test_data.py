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
    pairs_for_training,
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


PAIR = {
    "kind": "preference",
    "source": {"file": "pairs.jsonl", "row": 7},
    "prompt": [{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": "Who is Anna?"}],
    "chosen": [{"role": "assistant", "content": '{"name": "Anna"}'}],
    "rejected": [{"role": "assistant", "content": '{"name": "Ben", "age": 12, "city": "Oslo"}'}],
}


def test_a_preference_pair_trains_on_each_response_after_the_shared_prompt(tokenizer):
    split = tokenize_split([PAIR], tokenizer)
    assert split.paired and len(split) == 2
    (pair,) = pairs_for_training(split, 512, "fail")
    prompt = tokenizer.apply_chat_template(PAIR["prompt"], tokenize=False, add_generation_prompt=True)
    assert trained_text(tokenizer, pair.chosen) == '{"name": "Anna"}<|im_end|>\n'
    assert trained_text(tokenizer, pair.rejected) == '{"name": "Ben", "age": 12, "city": "Oslo"}<|im_end|>\n'
    for row, side in ((pair.chosen, "chosen"), (pair.rejected, "rejected")):
        assert tokenizer.decode(row.input_ids) == tokenizer.apply_chat_template(PAIR["prompt"] + PAIR[side], tokenize=False)
        assert tokenizer.decode(row.input_ids[row.labels == IGNORED_LABEL]) == prompt
    assert pair.original_length == len(pair.rejected.input_ids) and pair.source == PAIR["source"]


def test_an_overlong_pair_loses_the_start_of_its_prompt_then_the_end_of_its_responses(tokenizer):
    long_prompt = {**PAIR, "prompt": [{"role": "user", "content": "word " * 100}]}
    split = tokenize_split([long_prompt], tokenizer)
    (whole,) = pairs_for_training(split, 10_000, "fail")
    (pair,) = pairs_for_training(split, 48, "truncate")
    prompt_length = int((whole.rejected.labels == IGNORED_LABEL).sum())
    rejected_response = len(whole.rejected.input_ids) - prompt_length
    # The prompt keeps its end (next to the responses); both responses are whole, as they fit beside it.
    kept_prompt = 48 - rejected_response
    assert pair.rejected.input_ids.tolist() == whole.rejected.input_ids[prompt_length - kept_prompt :].tolist()
    assert pair.chosen.input_ids.tolist() == whole.chosen.input_ids[prompt_length - kept_prompt :].tolist()
    # Responses longer than half the length: the prompt keeps half, the responses lose their ends.
    (short,) = pairs_for_training(split, 16, "truncate")
    assert len(short.rejected.input_ids) == 16 and (short.rejected.labels == IGNORED_LABEL).sum() == 8
    assert short.rejected.input_ids[8:].tolist() == whole.rejected.input_ids[prompt_length : prompt_length + 8].tolist()
    assert pairs_for_training(split, 48, "drop") == []
    with pytest.raises(ApplicationError) as failed:
        pairs_for_training(split, 48, "fail")
    assert "{'file': 'pairs.jsonl', 'row': 7}" in failed.value.message


def test_preference_ids_are_stored_as_pairs_and_counted_by_their_longer_sequence(preference_tokens, tokenizer):
    split = read_tokenized_split(uri_to_path(preference_tokens["train_tokens_uri"]))
    # The fixture's 8 training pairs: 16 stored rows, prompt + chosen then prompt + rejected.
    assert split.paired and len(split) == 16
    pairs = pairs_for_training(split, 128, "truncate")
    statistics = preference_tokens["train"]
    assert statistics["rows"] == statistics["rows_trained"] == len(pairs) == 8
    assert statistics["tokens_trained"] == sum(max(pair.chosen.tokens, pair.rejected.tokens) for pair in pairs)
    with pytest.raises(ApplicationError) as refused:
        rows_for_training(split, 128, "responses", "truncate")
    assert "dpo" in refused.value.message
