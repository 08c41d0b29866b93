"""Training over several processes, on the CPU (gloo) with the tiny model: the same launcher, World and recipe the
GPUs run (NCCL is the only difference). Data parallel and fully sharded: two processes train the step one process
trains; a rank killed mid-run takes the others with it and the run resumes exactly; a checkpoint of another process
count is refused; the ranks die with the process that launched them."""

import hashlib
import json
import signal
import subprocess
import sys

import psutil
import pytest
import torch
from safetensors.torch import load_file
from temporalio.exceptions import ApplicationError

from tuneflow_activities.artifacts import RunLayout, uri_to_path
from tuneflow_activities.contract import FailureType
from tuneflow_activities.distributed import RanksFailed
from tuneflow_activities.training import train

STEPS = 8


def adapter_file(result: dict):
    return uri_to_path(result["adapter_uri"]) / "adapter_model.safetensors"


def digest(result: dict) -> str:
    return hashlib.sha256(adapter_file(result).read_bytes()).hexdigest()


@pytest.fixture
def distributed_request(train_request, spec, setup):
    """A request for `processes` processes training 8 rows a step: 4 rows × 2 accumulation in one process, 4 rows × 1
    accumulation in each of two, so both train exactly the same rows per step."""

    def build(run_name: str, processes: int, parallelism: str) -> dict:
        spec["train"] |= {"max_steps": STEPS, "gradient_accumulation_steps": 2 // processes}
        spec["checkpoint"] |= {"every_steps": 4}
        # The setup carries the decided split (resolveTrainingSetup's), the spec the same numbers.
        setup.update(processes=processes, parallelism=parallelism, gradient_accumulation_steps=2 // processes)
        return train_request(run_name)

    return build


def ranks_of(process: psutil.Process) -> list[psutil.Process]:
    """The training ranks among a process's children (multiprocessing's resource tracker is not one)."""
    return [child for child in process.children() if "spawn_main" in " ".join(child.cmdline()) and "resource_tracker" not in " ".join(child.cmdline())]


def kill_a_rank_at_step(step: int):
    """A should_stop for the launcher: at `step` it SIGKILLs one rank (a crashed GPU process) and answers no."""
    calls = {"count": 0}

    def should_stop() -> bool:
        calls["count"] += 1
        if calls["count"] == step + 1:
            ranks_of(psutil.Process())[-1].send_signal(signal.SIGKILL)
        return False

    return should_stop


# One uninterrupted two-process run per parallelism, shared by the tests below (each launch costs two interpreters),
# and one single-process run, the reference both parallelisms are compared with.
_uninterrupted: dict[str, dict] = {}
_single_process: dict[str, dict] = {}


def single_process_run(distributed_request) -> dict:
    if "single" not in _single_process:
        _single_process["single"] = train(distributed_request("single", 1, "single"))
    return _single_process["single"]


def uninterrupted_run(distributed_request, parallelism: str) -> dict:
    if parallelism not in _uninterrupted:
        _uninterrupted[parallelism] = train(distributed_request(f"straight-{parallelism}", 2, parallelism))
    return _uninterrupted[parallelism]


@pytest.mark.parametrize("parallelism", ["ddp", "fsdp"])
def test_two_processes_train_what_one_process_trains(distributed_request, parallelism):
    single = single_process_run(distributed_request)
    distributed = uninterrupted_run(distributed_request, parallelism)

    assert (distributed["processes"], distributed["parallelism"], distributed["final_step"]) == (2, parallelism, STEPS)
    # The same rows, the same per-token loss: only the order of the floating-point sums differs.
    assert distributed["train_loss"] == pytest.approx(single["train_loss"], rel=1e-5)
    single_adapter, distributed_adapter = load_file(adapter_file(single)), load_file(adapter_file(distributed))
    assert single_adapter.keys() == distributed_adapter.keys()
    for name, tensor in single_adapter.items():
        torch.testing.assert_close(distributed_adapter[name], tensor, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("parallelism", ["ddp", "fsdp"])
def test_a_killed_rank_stops_the_run_which_then_resumes_bit_for_bit(distributed_request, parallelism):
    uninterrupted = uninterrupted_run(distributed_request, parallelism)

    request = distributed_request("killed", 2, parallelism)
    with pytest.raises(RanksFailed):
        train(request, should_stop=kill_a_rank_at_step(6))
    assert ranks_of(psutil.Process()) == [], "every rank is gone once the launcher gives up"

    resumed = train(request)
    assert (resumed["resumed_from_step"], resumed["steps_trained"]) == (4, 4)
    # Rank 0 logged the steps it trained: 5 and 6 were lost with the killed attempt and trained again.
    logged = [json.loads(line)["step"] for line in RunLayout(uri_to_path(request["run_uri"])).train_log.read_text().splitlines()]
    assert logged == [1, 2, 3, 4, 5, 6, 5, 6, 7, 8]
    assert digest(resumed) == digest(uninterrupted)
    assert resumed["train_loss"] == uninterrupted["train_loss"]

    # The run's checkpoints belong to two processes: one process would train other steps, and is refused by name.
    with pytest.raises(ApplicationError) as refused:
        train(distributed_request("killed", 1, "single"))
    assert refused.value.type == FailureType.INCOMPATIBLE_CHECKPOINT.value
    assert "processes was 2" in str(refused.value)


LAUNCHER = """
import json, sys, time
import tuneflow_activities.offline
from tuneflow_activities.training import train

def wait_forever():
    print("ranks asked", flush=True)
    time.sleep(600)
    return False

train(json.loads(sys.argv[1]), should_stop=wait_forever)
"""


def test_the_ranks_die_with_the_process_that_launched_them(distributed_request):
    request = distributed_request("orphans", 2, "ddp")
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, json.dumps(request)], stdout=subprocess.PIPE, text=True)
    try:
        assert launcher.stdout.readline().strip() == "ranks asked"
        ranks = ranks_of(psutil.Process(launcher.pid))
        assert len(ranks) == 2
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        _, alive = psutil.wait_procs(ranks, timeout=20)
        assert alive == [], f"ranks outlived their launcher: {alive}"
    finally:
        launcher.kill()
        for rank in ranks_of(psutil.Process()):
            rank.kill()


def test_a_worker_with_fewer_gpus_than_the_setup_refuses_by_name(distributed_request, setup):
    # Before the request is built: the request carries a copy of the setup.
    setup.update(device="cuda", dtype="bfloat16")
    request = distributed_request("too-many", 2, "ddp")
    if torch.cuda.device_count() >= 2:
        pytest.skip("this machine has two GPUs")
    with pytest.raises(ApplicationError) as refused:
        train(request)
    assert refused.value.type == FailureType.INVALID_SPEC.value
    assert "device.gpu_count" in str(refused.value)
