"""Packing's promises on the tiny model on CPU (the hf-peft loader, transformers' block-diagonal mask from the
restarting position ids): packs are deterministic and independent of the micro-batch split, a packed step's loss
equals the unpacked step's, no row attends to another, and an interrupted packed run resumes bit for bit."""

import hashlib
from collections import Counter

import pytest
import torch

from tuneflow_activities.artifacts import uri_to_path
from tuneflow_activities.data import (
    IGNORED_LABEL,
    Schedule,
    collate,
    read_prepared_rows,
    tokenize_rows,
)
from tuneflow_activities.loaders import load_for_training
from tuneflow_activities.packing import PackedSchedule, collate_packed, pack_rows
from tuneflow_activities.training import StopRequested, train

# Packed and unpacked forwards run the same float32 arithmetic on differently shaped matrices, so sums are
# reordered: the losses agree to rounding (measured |relative difference| ~1e-7 on this model), not bit for bit.
LOSS_RELATIVE_TOLERANCE = 1e-5


def schedule(lengths, micro_batch_size, accumulation_steps, epochs=2, seed=7):
    return PackedSchedule(
        lengths=lengths,
        max_seq_length=128,
        micro_batch_size=micro_batch_size,
        accumulation_steps=accumulation_steps,
        seed=seed,
        epochs=epochs,
        max_steps=None,
    )


LENGTHS = [(37 * index) % 120 + 3 for index in range(200)]


def test_packs_hold_every_row_once_within_capacity_and_are_a_function_of_seed_and_epoch():
    packed = schedule(LENGTHS, 4, 2)
    for epoch in (0, 1):
        packs = packed.packs_of_epoch(epoch)
        assert sorted(row for pack in packs for row in pack) == list(
            range(len(LENGTHS))
        )
        assert all(sum(LENGTHS[row] for row in pack) <= 128 for pack in packs)
        assert packs == schedule(LENGTHS, 4, 2).packs_of_epoch(epoch)
    assert packed.packs_of_epoch(0) != packed.packs_of_epoch(1)
    assert packed.packs_of_epoch(0) != schedule(LENGTHS, 4, 2, seed=8).packs_of_epoch(0)
    # Best fit wastes little even with rows up to 122 tokens in packs of 128 (no packing can beat 96.4 packs).
    assert sum(LENGTHS) / (128 * len(packed.packs_of_epoch(0))) > 0.9


def test_a_step_trains_the_same_rows_whatever_the_micro_batch_split():
    reference = schedule(LENGTHS, 4, 2)
    for micro_batch_size, accumulation_steps in ((2, 4), (1, 8), (8, 1)):
        split = schedule(LENGTHS, micro_batch_size, accumulation_steps)
        assert split.total_steps == reference.total_steps
        for step in range(reference.total_steps):
            rows = [
                row for batch in split.micro_batches_for_step(step) for row in batch
            ]
            assert rows == [
                row for batch in reference.micro_batches_for_step(step) for row in batch
            ]
            assert len(split.micro_batches_for_step(step)) <= accumulation_steps


def test_steps_cover_each_epoch_and_respect_max_steps_and_fractional_epochs():
    packed = schedule(LENGTHS, 2, 2, epochs=2)
    counts = Counter(
        row
        for step in range(packed.total_steps)
        for batch in packed.micro_batches_for_step(step)
        for row in batch
    )
    assert set(counts.values()) == {2}
    assert packed.epoch_of_step(packed.steps_in_epoch(0)) == 1
    assert schedule(LENGTHS, 2, 2, epochs=0.5).total_steps == -(
        -packed.steps_in_epoch(0) // 2
    )
    assert PackedSchedule(LENGTHS, 128, 2, 2, 7, 2, max_steps=5).total_steps == 5


def test_pack_rows_is_best_fit_in_order():
    assert pack_rows([0, 1, 2, 3], [60, 70, 50, 10], 128) == [[0, 3], [1, 2]]
    with pytest.raises(ValueError, match="row 0 has 129 tokens"):
        pack_rows([0], [129], 128)


@pytest.fixture(scope="module")
def model_and_rows(tiny_model_uri, prepared):
    from tests.conftest import TINY_SPEC

    torch.manual_seed(0)
    loaded = load_for_training(uri_to_path(tiny_model_uri), TINY_SPEC)
    # LoRA's B matrices start at zero; random ones make the adapter part of what is compared.
    for name, parameter in loaded.model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.05)
    rows = tokenize_rows(
        read_prepared_rows(uri_to_path(prepared["train_uri"])),
        loaded.tokenizer,
        128,
        "responses",
        "truncate",
    )
    return loaded, rows[:6]


def unpacked_step(model, rows, pad_token_id):
    batch = collate(rows, pad_token_id)
    trainable = sum(row.trainable_tokens for row in rows)
    return model(**batch, num_items_in_batch=trainable, use_cache=False)


def test_a_packed_step_has_the_unpacked_steps_loss_and_gradients(model_and_rows):
    loaded, rows = model_and_rows
    model = loaded.model
    trainable = sum(row.trainable_tokens for row in rows)
    parameter = next(
        parameter for name, parameter in model.named_parameters() if "lora_A" in name
    )

    model.zero_grad()
    unpacked = unpacked_step(model, rows, loaded.tokenizer.pad_token_id).loss
    unpacked.backward()
    unpacked_gradient = parameter.grad.clone()
    model.zero_grad()
    packed = model(
        **collate_packed(rows), num_items_in_batch=trainable, use_cache=False
    ).loss
    packed.backward()

    assert packed.item() == pytest.approx(unpacked.item(), rel=LOSS_RELATIVE_TOLERANCE)
    assert torch.allclose(parameter.grad, unpacked_gradient, rtol=1e-4, atol=1e-7)
    model.zero_grad()


def test_the_packed_labels_keep_the_response_masks_and_never_cross_a_boundary(
    model_and_rows,
):
    _, rows = model_and_rows
    batch = collate_packed(rows)
    labels, positions = batch["labels"][0], batch["position_ids"][0]
    assert (labels[positions == 0] == IGNORED_LABEL).all()
    assert int((labels[1:] != IGNORED_LABEL).sum()) == sum(
        row.trainable_tokens for row in rows
    )
    start = 0
    for row in rows:
        assert labels[start + 1 : start + len(row.labels)].tolist() == row.labels[1:]
        start += len(row.labels)
    assert batch["input_ids"].shape == (1, start)


def test_no_row_attends_to_another(model_and_rows):
    loaded, rows = model_and_rows
    model = loaded.model
    first, second = rows[0], rows[1]
    vocabulary = loaded.tokenizer.vocab_size
    perturbed = type(first)(
        [(token + 17) % vocabulary for token in first.input_ids],
        first.labels,
        first.source,
        first.original_length,
    )
    with torch.no_grad():
        logits = model(**collate_packed([first, second]), use_cache=False).logits[0]
        changed = model(**collate_packed([perturbed, second]), use_cache=False).logits[
            0
        ]
        alone = model(
            **collate([second], loaded.tokenizer.pad_token_id), use_cache=False
        ).logits[0]
    own = slice(len(first.input_ids), len(first.input_ids) + len(second.input_ids))
    assert not torch.allclose(
        logits[: len(first.input_ids)], changed[: len(first.input_ids)]
    )
    assert torch.equal(logits[own], changed[own])
    # And the second row, packed behind another, sees exactly what it sees alone (its positions restart at 0).
    assert torch.allclose(logits[own], alone, atol=1e-5)


def adapter_digest(result: dict) -> str:
    return hashlib.sha256(
        (uri_to_path(result["adapter_uri"]) / "adapter_model.safetensors").read_bytes()
    ).hexdigest()


def test_an_interrupted_packed_run_ends_with_the_same_adapter_bit_for_bit(
    train_request, spec
):
    spec["train"]["max_steps"] = 6
    spec["checkpoint"]["every_steps"] = 2
    packed = {"setup": {"packing": True}}
    uninterrupted = train(train_request("straight", **packed))
    assert uninterrupted["steps_trained"] == 6

    request = train_request("interrupted", **packed)
    calls = {"count": 0}

    def stop_after_three() -> bool:
        calls["count"] += 1
        return calls["count"] > 3

    with pytest.raises(StopRequested) as stopped:
        train(request, should_stop=stop_after_three)
    assert stopped.value.checkpoint.step == 3
    resumed = train(request)
    assert resumed["resumed_from_step"] == 3
    assert adapter_digest(resumed) == adapter_digest(uninterrupted)
    assert resumed["train_loss"] == uninterrupted["train_loss"]
    # Packed steps hold more rows than unpacked ones: 8 packs of up to 128 tokens, several rows each.
    unpacked = Schedule(
        row_count=uninterrupted["train_rows"],
        micro_batch_size=4,
        accumulation_steps=2,
        seed=42,
        epochs=1,
        max_steps=None,
    )
    assert uninterrupted["total_steps"] == 6 and unpacked.total_steps > 6
