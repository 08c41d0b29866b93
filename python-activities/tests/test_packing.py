"""Packing: rows share a sequence without seeing each other, the loss is the unpacked loss, and packed training
resumes bit for bit."""

import copy
import hashlib
import random

import pytest
import torch
from conftest import TINY_SPEC

from tuneflow_activities.artifacts import uri_to_path
from tuneflow_activities.data import IGNORED_LABEL, collate, read_tokenized_split, rows_for_training
from tuneflow_activities.loaders import TrainingSetup, load_for_training
from tuneflow_activities.packing import collate_packed, pack_rows
from tuneflow_activities.payloads import Spec, parse
from tuneflow_activities.training import StopRequested, train

# fp32 on a CPU: the packed forward runs the same arithmetic on differently shaped matrices, so sums are reordered;
# measured differences are ~1e-7 relative, the bound leaves a hundredfold margin.
LOSS_RELATIVE_TOLERANCE = 1e-5


def test_packs_hold_every_row_once_within_capacity_and_depend_only_on_lengths():
    generator = random.Random(7)
    lengths = [generator.randint(1, 128) for _ in range(500)]
    packs = pack_rows(lengths, 128)
    assert sorted(index for pack in packs for index in pack) == list(range(500))
    assert all(sum(lengths[index] for index in pack) <= 128 for pack in packs)
    assert pack_rows(lengths, 128) == packs
    # Best fit, longest first: within a few percent of the ideal number of packs.
    assert len(packs) <= 1.05 * sum(lengths) / 128 + 1


@pytest.fixture(scope="module")
def model_and_rows(tiny_model_uri, tokens):
    setup = TrainingSetup(
        device="cpu",
        backend="hf-peft",
        quantization="none",
        dtype="float32",
        gradient_checkpointing=False,
        micro_batch_size=TINY_SPEC["train"]["micro_batch_size"],
        gradient_accumulation_steps=TINY_SPEC["train"]["gradient_accumulation_steps"],
        optimizer="adamw_torch",
        packing=True,
        processes=1,
        parallelism="single",
    )
    spec = copy.deepcopy(TINY_SPEC)
    spec["model"]["max_seq_length"] = 512
    spec["train"]["seed"] = 0
    loaded = load_for_training(uri_to_path(tiny_model_uri), parse(Spec, spec), setup)
    rows = rows_for_training(read_tokenized_split(uri_to_path(tokens["train_tokens_uri"])), 512, "responses", "truncate")[:12]
    return loaded.model, loaded.tokenizer.pad_token_id, rows


def test_a_packed_step_has_the_unpacked_loss_and_gradients(model_and_rows):
    model, pad_token_id, rows = model_and_rows
    trained_tokens = sum(row.trainable_tokens for row in rows)
    packs = [[rows[index] for index in pack] for pack in pack_rows([len(row.input_ids) for row in rows], 512)]
    assert len(packs) < len(rows), "the rows must share packs for the test to mean anything"

    def loss_and_gradients(batch: dict) -> tuple[float, list]:
        model.zero_grad(set_to_none=True)
        loss = model(**batch, num_items_in_batch=trained_tokens, use_cache=False).loss
        loss.backward()
        return loss.item(), [parameter.grad.clone() for parameter in model.parameters() if parameter.requires_grad]

    unpacked_loss, unpacked_gradients = loss_and_gradients(collate(rows, pad_token_id))
    packed_batch = collate_packed(packs)
    del packed_batch["packed_seq_lengths"]
    assert "attention_mask" not in packed_batch
    packed_loss, packed_gradients = loss_and_gradients(packed_batch)

    assert packed_loss == pytest.approx(unpacked_loss, rel=LOSS_RELATIVE_TOLERANCE)
    for packed, unpacked in zip(packed_gradients, unpacked_gradients, strict=True):
        assert torch.allclose(packed, unpacked, rtol=1e-4, atol=1e-7)


def test_rows_in_a_pack_do_not_see_each_other(model_and_rows):
    model, pad_token_id, rows = model_and_rows
    first, second = rows[0], rows[1]
    with torch.no_grad():
        alone = model(**collate([second], pad_token_id)).logits[0, : len(second.input_ids)]
        packed_batch = {key: value for key, value in collate_packed([[first, second]]).items() if key != "packed_seq_lengths"}
        packed = model(**packed_batch, use_cache=False).logits
    assert torch.allclose(packed[0, len(first.input_ids) :], alone, atol=1e-5)


def test_row_b_is_unchanged_when_row_a_changes(model_and_rows):
    """The same check bench/gpu/real_data.py makes under Unsloth on the H200: perturb one row, the other's logits stay."""
    model, _, rows = model_and_rows
    first, second = rows[0], rows[1]
    perturbed = type(first)((first.input_ids + 17) % 1000, first.labels, first.source, first.original_length)

    def logits(pack) -> torch.Tensor:
        batch = {key: value for key, value in collate_packed([pack]).items() if key != "packed_seq_lengths"}
        with torch.no_grad():
            return model(**batch, use_cache=False).logits[0]

    packed, changed = logits([first, second]), logits([perturbed, second])
    own = slice(len(first.input_ids), None)
    assert not torch.allclose(packed[: len(first.input_ids)], changed[: len(first.input_ids)])
    assert torch.equal(packed[own], changed[own])


def test_a_micro_batch_of_packs_is_one_unpadded_row_with_the_response_masks_kept(model_and_rows):
    _, _, rows = model_and_rows
    packs = [rows[:3], rows[3:5]]
    batch = collate_packed(packs)
    total = sum(len(row.input_ids) for row in rows[:5])
    assert batch["input_ids"].shape == batch["labels"].shape == batch["position_ids"].shape == (1, total)
    assert batch["packed_seq_lengths"].tolist() == [len(row.input_ids) for row in rows[:5]]
    labels, positions = batch["labels"][0], batch["position_ids"][0]
    assert (labels[positions == 0] == IGNORED_LABEL).all()
    start = 0
    for row in rows[:5]:
        assert labels[start + 1 : start + len(row.labels)].tolist() == row.labels[1:].tolist()
        start += len(row.labels)


def adapter_digest(result: dict) -> str:
    return hashlib.sha256((uri_to_path(result["adapter_uri"]) / "adapter_model.safetensors").read_bytes()).hexdigest()


def test_packed_training_resumes_bit_for_bit(train_request, spec, setup):
    # Packs of up to 512 tokens: four per step keeps the test to seconds a step on two CPU cores.
    spec["train"].update(packing=True, epochs=3, max_steps=4, gradient_accumulation_steps=1)
    setup["packing"] = True
    spec["model"]["max_seq_length"] = 512
    spec["checkpoint"]["every_steps"] = 2
    straight = train(train_request("straight"))
    assert straight["packing"] and straight["train_sequences"] < straight["train_rows"]

    request = train_request("interrupted")
    calls = {"count": 0}

    def stop_after_three() -> bool:
        calls["count"] += 1
        return calls["count"] > 3

    with pytest.raises(StopRequested):
        train(request, should_stop=stop_after_three)
    resumed = train(request)
    assert resumed["resumed_from_step"] == 3
    assert adapter_digest(resumed) == adapter_digest(straight)
    assert resumed["train_loss"] == straight["train_loss"]


def test_token_statistics_count_the_packs_the_train_activity_trains(train_request, spec, setup, tokens):
    # One packing rule: the planner's packed sequences (token_statistics) are the train activity's, at the spec's
    # max_seq_length, so the plan's steps are the run's.
    spec["train"].update(packing=True, max_steps=1)
    setup["packing"] = True
    trained = train(train_request("packed"))
    assert trained["packing"] and trained["train_sequences"] == tokens["train"]["packed_sequences"]
