"""Loss-spike and NaN rollback (issue 23): the rule on its own (rollback.py), then the engine rolling back on the tiny
model on CPU, skipping the step's rows, lowering the learning rate, resuming exactly after a crash, failing with a
typed error once the rollbacks run out, under two processes (DDP, FSDP) as under one, and for DPO."""

import copy
import hashlib
import json
import math

import pytest
from conftest import CPU_SETUP, TINY_SPEC, request_for
from temporalio.exceptions import ApplicationError

from tuneflow_activities import fault_injection
from tuneflow_activities.artifacts import uri_to_path
from tuneflow_activities.contract import FailureType
from tuneflow_activities.fault_injection import NAN_LOSS_AT_STEPS
from tuneflow_activities.payloads import RollbackSpec
from tuneflow_activities.rollback import RollbackRecord, Rollbacks, observed, robust_z_score
from tuneflow_activities.training import train


def rule(**overrides: float | int | bool | None) -> Rollbacks:
    values: dict[str, float | int | bool | None] = {
        "enabled": True,
        "window_steps": 10,
        "min_history_steps": 5,
        "z_threshold": 6,
        "max_rollbacks": 2,
        "learning_rate_factor": 1,
        "gradient_norm_z_threshold": 6,
    }
    return Rollbacks(RollbackSpec(**{**values, **overrides}))  # type: ignore[arg-type]


def with_history(rollbacks: Rollbacks, losses: list[float], norm: float = 1.0) -> Rollbacks:
    for loss in losses:
        rollbacks.record(loss, norm)
    return rollbacks


NOISY = [2.0, 2.1, 1.9, 2.05, 1.95, 2.02, 1.98]


def record(step: int) -> RollbackRecord:
    return {
        "step": step,
        "reason": "loss_not_finite",
        "loss": "NaN",
        "gradient_norm": "NaN",
        "loss_median": None,
        "gradient_norm_median": None,
        "z_score": None,
        "restored_step": 0,
        "rows": [{"file": "data.jsonl", "row": step}],
        "learning_rate_scale": 1.0,
        "attempt": 1,
    }


def test_a_nan_or_infinite_value_is_refused_at_once_without_history():
    assert rule().judge(math.nan, 1.0).reason == "loss_not_finite"
    assert rule().judge(1.0, math.inf).reason == "gradient_norm_not_finite"
    assert rule().judge(1.0, 1.0).reason is None


def test_a_spike_needs_the_minimum_history():
    rollbacks = with_history(rule(), NOISY[:4])
    assert rollbacks.judge(50.0, 1.0).reason is None
    rollbacks.record(2.0, 1.0)
    verdict = rollbacks.judge(50.0, 1.0)
    assert verdict.reason == "loss_spike"
    assert verdict.loss_median == 2.0
    assert verdict.z_score is not None and verdict.z_score > 6


def test_the_robust_z_score_tells_noise_from_a_spike():
    rollbacks = with_history(rule(), NOISY)
    assert rollbacks.judge(2.2, 1.0).reason is None
    assert rollbacks.judge(4.0, 1.0).reason == "loss_spike"
    # A lower loss is never a spike.
    assert rollbacks.judge(0.1, 1.0).reason is None


def test_one_earlier_spike_in_the_window_does_not_hide_the_next():
    rollbacks = with_history(rule(), [*NOISY, 30.0])
    assert rollbacks.judge(30.0, 1.0).reason == "loss_spike"


def test_a_flat_window_does_not_make_every_wobble_a_spike():
    # Equal losses have no deviation: the scale is at least a tenth of the median.
    z_score, median = robust_z_score(1.05, [1.0] * 8, 0.1)
    assert median == 1.0 and z_score == pytest.approx(0.5)
    rollbacks = with_history(rule(), [1.0] * 8)
    assert rollbacks.judge(1.05, 1.0).reason is None
    assert rollbacks.judge(3.0, 1.0).reason == "loss_spike"


def test_a_gradient_norm_spike_is_refused_with_a_steady_loss():
    rollbacks = rule()
    for norm in [0.5, 0.52, 0.48, 0.51, 0.49, 0.5]:
        rollbacks.record(2.0, norm)
    verdict = rollbacks.judge(2.0, 40.0)
    assert verdict.reason == "gradient_norm_spike"
    assert verdict.gradient_norm_median == 0.5
    # Gradient norms grow early in LoRA training and wobble more than the loss: a few times the median is no spike.
    assert rollbacks.judge(2.0, 2.5).reason is None
    # Without a gradient-norm threshold (the default) only a NaN or infinite norm is refused.
    unwatched = rule(gradient_norm_z_threshold=None)
    for norm in [0.5, 0.52, 0.48, 0.51, 0.49, 0.5]:
        unwatched.record(2.0, norm)
    assert unwatched.judge(2.0, 40.0).reason is None
    assert unwatched.judge(2.0, math.inf).reason == "gradient_norm_not_finite"


def test_the_window_keeps_the_latest_steps_only():
    rollbacks = with_history(rule(window_steps=5), [100.0] * 5 + [1.0] * 5)
    assert list(rollbacks.losses) == [1.0] * 5
    assert rollbacks.judge(20.0, 1.0).reason == "loss_spike"


def test_turned_off_it_refuses_nothing():
    rollbacks = with_history(rule(enabled=False), NOISY)
    assert rollbacks.judge(math.nan, math.nan).reason is None


def test_rollbacks_are_bounded_then_the_run_fails_naming_step_rows_and_values():
    rollbacks = rule(max_rollbacks=2, learning_rate_factor=0.5)
    rollbacks.rolled_back(record(3), [3, 4])
    rollbacks.rolled_back(record(7), [7])
    assert rollbacks.skipped_rows == {3, 4, 7}
    assert rollbacks.learning_rate_scale == 0.25
    with pytest.raises(ApplicationError) as raised:
        rollbacks.rolled_back(record(9), [9])
    error = raised.value
    assert error.type == FailureType.TRAINING_DIVERGED.value
    assert error.non_retryable
    assert "step 9" in str(error) and "data.jsonl:9" in str(error) and "loss NaN" in str(error)
    (details,) = error.details
    assert details["rollback"]["step"] == 9
    assert [entry["step"] for entry in details["rollbacks"]] == [3, 7]
    # JSON carries the details: no NaN in them.
    json.loads(json.dumps(details, allow_nan=False))


def test_the_state_survives_a_checkpoint_round_trip():
    rollbacks = with_history(rule(), NOISY)
    rollbacks.rolled_back(record(3), [3, 4])
    saved = rollbacks.as_checkpoint()
    restored = rule()
    restored.restore(saved)
    assert list(restored.losses) == list(rollbacks.losses)
    assert restored.skipped_rows == {3, 4}
    assert restored.records == rollbacks.records
    # A rollback takes only the window of the checkpoint it returns to.
    later = rule()
    later.rolled_back(record(3), [3, 4])
    later.rolled_back(record(8), [8])
    later.restore_window({"losses": [1.0], "gradient_norms": [2.0], "skipped_rows": [], "records": []})
    assert list(later.losses) == [1.0] and later.skipped_rows == {3, 4, 8} and len(later.records) == 2


def test_values_travel_as_json_numbers_or_names():
    assert observed(1.5) == 1.5
    assert observed(math.nan) == "NaN"
    assert observed(-math.inf) == "-Infinity"


# --- the engine ---------------------------------------------------------------------------------------------------


def adapter_digest(result: dict) -> str:
    return hashlib.sha256((uri_to_path(result["adapter_uri"]) / "adapter_model.safetensors").read_bytes()).hexdigest()


def train_log(result: dict) -> list[dict]:
    run = uri_to_path(result["adapter_uri"]).parent
    return [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]


class Crash(Exception):
    """Stands in for a SIGKILL: the engine dies where it stands, without a checkpoint."""


def test_a_nan_step_rolls_back_skips_its_rows_and_resumes_exactly_after_a_crash(train_request, monkeypatch):
    monkeypatch.setenv(NAN_LOSS_AT_STEPS, "6")
    uninterrupted = train(train_request("straight"))

    (rollback,) = uninterrupted["rollbacks"]
    assert rollback["step"] == 6 and rollback["reason"] == "loss_not_finite"
    assert rollback["loss"] == "NaN" and rollback["gradient_norm"] == "NaN"
    # Checkpoints every 4 steps: back to step 4; the step's 8 rows (micro-batch 4 × accumulation 2) skipped.
    assert rollback["restored_step"] == 4
    assert len(rollback["rows"]) == 8 and uninterrupted["rows_skipped"] == 8
    assert all(row["file"] == "data.jsonl" for row in rollback["rows"])
    assert uninterrupted["final_step"] == 12
    log = train_log(uninterrupted)
    # Step 5 was trained twice (before and after the rollback), step 6 once, without rows.
    assert [record["step"] for record in log] == [1, 2, 3, 4, 5, 5, 6, 7, 8, 9, 10, 11, 12]
    assert next(record for record in log if record["step"] == 6)["loss"] is None
    assert all(record["loss"] is not None and math.isfinite(record["loss"]) for record in log if record["step"] != 6)
    assert uninterrupted["steps_redone"] == 1

    # A crash after the rollback, before the next checkpoint: the newest checkpoint (step 4) predates the rollback, so
    # the resumed run meets the NaN again, rolls back again, and ends byte-identical with one rollback on record.
    request = train_request("crashed")
    rolled_back = {"seen": False}

    def crash_after_the_rollback(heartbeat: dict) -> None:
        rolled_back["seen"] = rolled_back["seen"] or heartbeat.get("rollbacks", 0) > 0
        if rolled_back["seen"] and heartbeat["step"] == 5:
            raise Crash

    with pytest.raises(Crash):
        train(request, report=crash_after_the_rollback)
    resumed = train(request)
    assert resumed["resumed_from_step"] == 4
    assert [entry["step"] for entry in resumed["rollbacks"]] == [6]
    assert adapter_digest(resumed) == adapter_digest(uninterrupted)
    assert resumed["train_loss"] == uninterrupted["train_loss"]


def test_a_nan_before_the_first_checkpoint_returns_to_the_start_and_the_learning_rate_drops(train_request, spec, monkeypatch):
    monkeypatch.setenv(NAN_LOSS_AT_STEPS, "2")
    spec["train"]["rollback"]["learning_rate_factor"] = 0.5
    spec["train"]["lr_scheduler"] = "constant"
    spec["train"]["warmup_steps"] = 0
    messages: list[dict] = []
    result = train(train_request(), progressed=messages.append)

    (rollback,) = result["rollbacks"]
    assert rollback["restored_step"] == 0 and rollback["learning_rate_scale"] == 0.5
    log = train_log(result)
    first, again = (record for record in log if record["step"] == 1)
    assert again["learning_rate"] == pytest.approx(first["learning_rate"] / 2)
    assert all(record["learning_rate"] == pytest.approx(0.01) for record in log[1:])
    # The workflow hears of it at once, with the record.
    rolled_back = next(message for message in messages if message["event"] == "rolled_back")
    assert rolled_back["step"] == 0 and rolled_back["rollbacks"] == 1
    assert rolled_back["rollback_records"][0]["step"] == 2


def test_after_max_rollbacks_the_run_fails_with_a_typed_error(train_request, spec, monkeypatch):
    monkeypatch.setenv(NAN_LOSS_AT_STEPS, "3,5")
    spec["train"]["rollback"]["max_rollbacks"] = 1
    with pytest.raises(ApplicationError) as raised:
        train(train_request())
    error = raised.value
    assert error.type == FailureType.TRAINING_DIVERGED.value and error.non_retryable
    (details,) = error.details
    assert details["rollback"]["step"] == 5 and len(details["rollback"]["rows"]) == 8
    assert [entry["step"] for entry in details["rollbacks"]] == [3]


def test_the_test_only_spike_applies_to_rows_of_the_named_file_only(monkeypatch):
    class Row:
        def __init__(self, file: str):
            self.source = {"file": file, "row": 1}

    assert fault_injection.loss_factor([[Row("poisoned.jsonl")]]) == 1.0
    monkeypatch.setenv(fault_injection.LOSS_SPIKE_FILE, "poisoned.jsonl")
    assert fault_injection.loss_factor([[Row("data.jsonl")], [Row("poisoned.jsonl")]]) == fault_injection.SPIKE_FACTOR
    assert fault_injection.loss_factor([[Row("data.jsonl")]]) == 1.0


def adapter_tensors(result: dict) -> dict:
    from safetensors.torch import load_file

    return load_file(uri_to_path(result["adapter_uri"]) / "adapter_model.safetensors")


@pytest.fixture(scope="module")
def one_process_with_two_nans(tokens, tiny_model_uri, tmp_path_factory) -> dict:
    """8 steps in one process, 4 rows × 2 accumulation, NaN losses at steps 3 and 6: the run both parallelisms are
    compared with."""
    spec = copy.deepcopy(TINY_SPEC)
    spec["train"] |= {"max_steps": 8, "gradient_accumulation_steps": 2}
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv(NAN_LOSS_AT_STEPS, "3,6")
        return train(request_for(spec, dict(CPU_SETUP), tokens, tiny_model_uri, tmp_path_factory.mktemp("rollback-single") / "run"))


@pytest.mark.parametrize("parallelism", ["ddp", "fsdp"])
def test_two_processes_roll_back_together_and_train_what_one_process_trains(train_request, spec, setup, monkeypatch, parallelism, one_process_with_two_nans):
    """A NaN before the first checkpoint (back to each rank's start, held in memory) and one after it (back to the
    checkpoint on disk): every rank rolls back at the same step and skips the same rows, as one process does."""
    import torch

    monkeypatch.setenv(NAN_LOSS_AT_STEPS, "3,6")
    single = one_process_with_two_nans
    spec["train"] |= {"max_steps": 8, "gradient_accumulation_steps": 1}
    setup.update(processes=2, parallelism=parallelism)
    distributed = train(train_request(f"two-{parallelism}"))

    rollbacks = [(entry["step"], entry["restored_step"], entry["rows"]) for entry in single["rollbacks"]]
    assert [(step, restored) for step, restored, _ in rollbacks] == [(3, 0), (6, 4)]
    assert [(entry["step"], entry["restored_step"], entry["rows"]) for entry in distributed["rollbacks"]] == rollbacks
    assert single["final_step"] == 8
    assert distributed["final_step"] == 8 and distributed["rows_skipped"] == single["rows_skipped"] == 16
    assert distributed["train_loss"] == pytest.approx(single["train_loss"], rel=1e-5)
    single_adapter, distributed_adapter = adapter_tensors(single), adapter_tensors(distributed)
    for name, tensor in single_adapter.items():
        torch.testing.assert_close(distributed_adapter[name], tensor, rtol=1e-4, atol=1e-5)


def test_a_dpo_run_rolls_back_a_nan_step_and_skips_its_pairs(train_request, spec, preference_tokens, monkeypatch):
    monkeypatch.setenv(NAN_LOSS_AT_STEPS, "5")
    spec["train"].update(
        objective={"kind": "dpo", "beta": 0.1, "loss_type": "sigmoid", "label_smoothing": 0.0},
        epochs=6,
        max_steps=8,
        micro_batch_size=2,
        gradient_accumulation_steps=2,
        warmup_steps=0,
    )
    tokens = {"train_tokens_uri": preference_tokens["train_tokens_uri"], "val_tokens_uri": preference_tokens["val_tokens_uri"]}
    result = train(train_request("dpo", **tokens))

    (rollback,) = result["rollbacks"]
    assert (rollback["step"], rollback["restored_step"], len(rollback["rows"])) == (5, 4, 4)
    # 8 pairs, 4 a step: the skipped pairs are gone from every later epoch, so later steps train the other 4 only.
    assert result["final_step"] == 8 and result["rows_skipped"] == 4
    log = train_log(result)
    assert all(math.isfinite(record["loss"]) for record in log if record["loss"] is not None)
