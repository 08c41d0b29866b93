"""The training loop's promises, on the tiny model on CPU: exact resume, verified checkpoints written in the
background, refusal of a checkpoint written for another spec."""

import hashlib
import json
import subprocess
import sys

import pytest
from conftest import copied_run
from temporalio.exceptions import ApplicationError

from tuneflow_activities.artifacts import uri_to_path
from tuneflow_activities.contract import FailureType
from tuneflow_activities.training import StopRequested, train


def adapter_digest(result: dict) -> str:
    return hashlib.sha256((uri_to_path(result["adapter_uri"]) / "adapter_model.safetensors").read_bytes()).hexdigest()


def stop_after(steps: int):
    """A should_stop that asks to stop once `steps` steps are done (a pause or a cancel)."""
    calls = {"count": 0}

    def should_stop() -> bool:
        calls["count"] += 1
        return calls["count"] > steps

    return should_stop


def train_log(request: dict) -> list[dict]:
    return [json.loads(line) for line in (uri_to_path(request["run_uri"]) / "train_log.jsonl").read_text().splitlines()]


def test_interrupted_run_ends_with_the_same_adapter_bit_for_bit_and_logs_each_step_once_per_attempt(train_request, straight_run):
    _, uninterrupted = straight_run
    assert uninterrupted["steps_trained"] == 12

    request = train_request("interrupted")
    with pytest.raises(StopRequested) as stopped:
        train({**request, "attempt": 1}, should_stop=stop_after(5))
    # Stopping checkpoints where it stands, even between the every-4-steps checkpoints.
    assert stopped.value.step == 5
    with pytest.raises(StopRequested):
        train({**request, "attempt": 2}, should_stop=stop_after(4))
    resumed = train({**request, "attempt": 3})

    assert resumed["resumed_from_step"] == 9
    assert resumed["steps_trained"] == 3
    assert adapter_digest(resumed) == adapter_digest(uninterrupted)
    assert resumed["train_loss"] == uninterrupted["train_loss"]
    # Each step logged once, by the attempt that trained it.
    expected = [(1, step) for step in range(1, 6)] + [(2, step) for step in range(6, 10)] + [(3, step) for step in range(10, 13)]
    assert [(record["attempt"], record["step"]) for record in train_log(request)] == expected


def test_a_corrupt_newest_checkpoint_is_skipped_and_counted(straight_run, tmp_path):
    request = copied_run(straight_run[0], tmp_path / "run")
    checkpoints = uri_to_path(request["run_uri"]) / "checkpoints"
    newest = checkpoints / "step-00000012" / "adapter" / "adapter_model.safetensors"
    newest.write_bytes(b"\0" * newest.stat().st_size)

    result = train(request)
    assert result["corrupt_checkpoints_skipped"] == 1
    assert result["resumed_from_step"] == 8
    # Steps 9 to 12 trained again from step 8's checkpoint: the run's adapter, bit for bit.
    assert adapter_digest(result) == adapter_digest(straight_run[1])


def test_a_half_written_checkpoint_left_by_a_crash_is_ignored(train_request):
    request = train_request()
    with pytest.raises(StopRequested):
        train(request, should_stop=stop_after(4))
    checkpoints = uri_to_path(request["run_uri"]) / "checkpoints"
    # What a process killed in the middle of write_checkpoint leaves: a temporary directory, never renamed.
    partial = checkpoints / ".tmp-step-00000008-0123456789ab"
    (partial / "adapter").mkdir(parents=True)
    (partial / "adapter" / "adapter_model.safetensors").write_bytes(b"partial")

    result = train(request)
    assert result["resumed_from_step"] == 4
    assert not partial.exists()


def test_a_checkpoint_from_a_different_lora_rank_is_refused(straight_run, tmp_path):
    changed = copied_run(straight_run[0], tmp_path / "run")
    changed["spec"]["lora"]["r"] = 16

    with pytest.raises(ApplicationError) as refused:
        train(changed)
    assert refused.value.type == FailureType.INCOMPATIBLE_CHECKPOINT.value
    assert refused.value.non_retryable
    assert "lora_r was 8, spec says 16" in refused.value.message


def test_checkpoint_on_request_and_messages_to_the_workflow(train_request, spec):
    spec["checkpoint"]["every_steps"] = 100
    requests = iter([False, False, True] + [False] * 20)
    messages = []
    request = train_request()
    with pytest.raises(StopRequested):
        train(request, should_stop=stop_after(6), checkpoint_requested=lambda: next(requests), progressed=messages.append)
    # Requested after step 3, then the stop at step 6: two checkpoints although every_steps is 100.
    assert [(message["event"], message["step"]) for message in messages] == [("checkpoint", 3), ("checkpoint", 6)]
    assert [step for step, _ in messages[0]["losses"]] == [1, 2, 3]
    assert messages[1]["val_loss"] is not None

    train(request, progressed=messages.append)
    resumed = [message for message in messages if message["event"] == "resumed"]
    assert [(message["step"], message["resumed_from_step"]) for message in resumed] == [(6, 6)]


def test_early_stopping_keeps_the_best_checkpoint_and_returns_its_adapter(train_request, spec):
    # Improvements below min_delta do not count: after the first evaluation sets the best, two more without
    # a 1.0 drop in validation loss exhaust the patience.
    spec["train"].update(max_steps=40, epochs=4)
    spec["checkpoint"].update(every_steps=2, keep_last=1)
    spec["validation"].update(early_stopping_patience=2, early_stopping_min_delta=1.0)
    result = train(train_request())

    assert result["stopped_early"]
    best_step = result["best"]["step"]
    assert (best_step, result["final_step"]) == (2, 6)
    checkpoints = sorted(path.name for path in (uri_to_path(train_request()["run_uri"]) / "checkpoints").iterdir())
    # keep_last 1 plus the best one.
    assert checkpoints == sorted({f"step-{best_step:08d}", f"step-{result['final_step']:08d}"})
    best_adapter = uri_to_path(train_request()["run_uri"]) / "checkpoints" / f"step-{best_step:08d}" / "adapter" / "adapter_model.safetensors"
    assert adapter_digest(result) == hashlib.sha256(best_adapter.read_bytes()).hexdigest()


DIE_DURING_BACKGROUND_WRITE = """
import json, os, sys
import tuneflow_activities.offline
from tuneflow_activities import checkpoint
from tuneflow_activities.training import train

hash_file = checkpoint.sha256_of_file

def dying_hash(path):
    # The process dies (as under SIGKILL: no cleanup, no finally) while the writer thread hashes step 8's files.
    if "step-00000008" in str(path):
        os._exit(137)
    return hash_file(path)

checkpoint.sha256_of_file = dying_hash
train(json.loads(sys.argv[1]))
"""


def test_a_kill_during_the_background_checkpoint_write_leaves_the_previous_checkpoint_newest(train_request):
    request = train_request()
    killed = subprocess.run([sys.executable, "-c", DIE_DURING_BACKGROUND_WRITE, json.dumps(request)], capture_output=True)
    assert killed.returncode == 137
    checkpoints = uri_to_path(request["run_uri"]) / "checkpoints"
    assert sorted(path.name for path in checkpoints.iterdir() if not path.name.startswith(".")) == ["step-00000004"]
    assert any(path.name.startswith(".tmp-step-00000008") for path in checkpoints.iterdir())

    result = train(request)
    assert result["resumed_from_step"] == 4
    assert result["corrupt_checkpoints_skipped"] == 0
    assert not any(path.name.startswith(".tmp-") for path in checkpoints.iterdir())
