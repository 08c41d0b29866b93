"""Issue 16 on the one GPU this project is lent: the multi-process training path on a real GPU, against one process.

Llama-3.1-8B's shape with random weights (real_data.build), rows of exactly 2048 tokens, LoRA r=64 on all linear
layers, 8 rows per optimizer step. Each configuration runs tuneflow's own training (training.train, or
distributed.launch, what the train activity calls) in a fresh process; the parent samples nvidia-smi for every
process's GPU memory (context + allocator reserve: what decides an out-of-memory).

    unsloth-1            Unsloth, 16-bit, one process, micro-batch 4 × 2 accumulation
    unsloth-ddp-2        Unsloth, 16-bit, two ranks (DDP), micro-batch 4 × 1 each: the same 8 rows per step
    qlora-1              transformers + PEFT, 4-bit, one process, micro-batch 4 × 2
    qlora-fsdp-1         the same through the FSDP path (bf16 quant storage, fully_shard) with one rank, over NCCL
    qlora-fsdp-2         FSDP, two ranks, micro-batch 4 × 1 each

The two-rank runs share the one GPU (TUNEFLOW_RANKS_SHARE_ONE_GPU: gloo, since NCCL refuses two ranks on one
device): they check that two ranks train what one trains on a GPU; their tokens/s is not a scaling figure.

Device (bench/gpu/README.md for the wheel install line):
    python3 bench/gpu/multi_process.py --tokenizer .device/tokenizer --out $OUT
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import real_data

# Specs parsed and setups checked by the product's TypeScript contract (bench/gpu/multi_process_requests.ts); the CPU
# dry run's are decided there too (resolveTrainingSetup on a CPU worker).
_REQUESTS = json.loads((Path(__file__).resolve().parent / "inputs" / "multi-process-requests.json").read_text())
REQUESTS = _REQUESTS["requests"] if real_data.CUDA else _REQUESTS["cpu_requests"]


def request_for(name: str, work: Path, built: dict) -> dict:
    spec, setup = REQUESTS[name]["spec"], REQUESTS[name]["setup"]
    return {
        "spec": spec,
        "setup": setup,
        "model_uri": built["model_uri"],
        "train_tokens_uri": built["tokens"]["fixed"],
        "val_tokens_uri": built["val_tokens"]["fixed"],
        "run_uri": (work / name).as_uri(),
    }


def train_one(request_path: Path, result_path: Path) -> None:
    """In the configuration's own process: train as the activity would, write the result."""
    import tuneflow_activities.offline  # noqa: F401

    request = json.loads(request_path.read_text())
    if request["setup"]["backend"] == "unsloth":
        import unsloth  # noqa: F401  (before transformers and peft)
    from tuneflow_activities import distributed, training
    from tuneflow_activities.payloads import TrainRequest, parse

    heartbeats: list[dict] = []
    callbacks = training.Callbacks(report=heartbeats.append)
    if request["setup"]["processes"] == 1 and request["setup"]["parallelism"] == "fsdp":
        # One rank through the launcher: FSDP's sharding machinery (and NCCL) on a real GPU.
        result = distributed.launch(parse(TrainRequest, request), 1, callbacks)
    else:
        result = training.train(request, report=heartbeats.append)
    result_path.write_text(json.dumps({"result": result, "last_heartbeat": heartbeats[-1] if heartbeats else None}))


class MemorySampler:
    """The most GPU memory each process held (nvidia-smi, every 0.5 s)."""

    def __init__(self):
        self.peak_mib: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        if not real_data.CUDA:
            return
        while not self._stop.wait(0.5):
            listing = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"], capture_output=True, text=True)
            for line in listing.stdout.splitlines():
                pid, used = (int(part) for part in line.split(","))
                self.peak_mib[pid] = max(self.peak_mib.get(pid, 0), used)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exception):
        self._stop.set()
        self._thread.join()


def run(name: str, work: Path, built: dict, timeout: float) -> dict:
    request_path, result_path = work / f"{name}.request.json", work / f"{name}.result.json"
    environment = dict(os.environ)
    request = request_for(name, work, built)
    if request["setup"]["processes"] > 1 and request["setup"]["device"] == "cuda":
        environment["TUNEFLOW_RANKS_SHARE_ONE_GPU"] = "1"
    request_path.write_text(json.dumps(request))
    started = time.monotonic()
    with MemorySampler() as memory:
        completed = subprocess.run(
            [sys.executable, __file__, "--train-one", str(request_path), str(result_path)], env=environment, capture_output=True, text=True, timeout=timeout
        )
    wall = time.monotonic() - started
    record = {"run": name, "setup": request["setup"], "ranks_share_one_gpu": "TUNEFLOW_RANKS_SHARE_ONE_GPU" in environment}
    record |= {"wall_seconds": wall, "peak_gpu_memory_mib_per_process": sorted(memory.peak_mib.values(), reverse=True)}
    if completed.returncode != 0:
        return record | {"status": "error", "stderr_tail": completed.stderr[-4000:]}
    log = [json.loads(line) for line in (work / name / "train_log.jsonl").read_text().splitlines()]
    outcome = json.loads(result_path.read_text())
    steady = log[2:]  # after the first steps' compile and warm-up
    seconds_per_step = (steady[-1]["time"] - steady[0]["time"]) / (len(steady) - 1)
    return record | {
        "status": "ok",
        "losses": [entry["loss"] for entry in log],
        "steady_seconds_per_step": seconds_per_step,
        "tokens_per_second": 8 * real_data.SEQUENCE / seconds_per_step,
        "reported_tokens_per_second": outcome["result"]["tokens_per_second"],
        "result": {
            key: outcome["result"][key]
            for key in ("processes", "parallelism", "backend", "final_step", "train_loss", "model_load_seconds", "seconds_to_first_step")
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokenizer", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--runs", default=",".join(REQUESTS))
    parser.add_argument("--train-one", nargs=2, type=Path)
    arguments = parser.parse_args()
    if arguments.train_one:
        train_one(*arguments.train_one)
        return
    # A folder of its own per call: a run folder left by an earlier call holds checkpoints of other data, which the
    # train activity rightly refuses to resume from.
    work = Path("/tmp/tf-multi-process") / f"call-{time.time_ns()}"
    work.mkdir(parents=True)
    statistics_spec = REQUESTS[next(iter(REQUESTS))]["spec"]
    built = real_data.build(work / f"built-{time.time_ns()}", arguments.tokenizer, statistics_spec)
    records = []
    for name in arguments.runs.split(","):
        # Five minutes a run on the device; a shared CPU running the dry run gets more.
        record = run(name, work, built, timeout=300 if real_data.CUDA else 900)
        print(json.dumps({key: record[key] for key in record if key not in ("losses", "stderr_tail")}), flush=True)
        if record["status"] != "ok":
            print(record["stderr_tail"][-1500:], flush=True)
        records.append(record)
    arguments.out.mkdir(parents=True, exist_ok=True)
    report = {
        "date": datetime.now(timezone.utc).isoformat(),
        "command": "python3 bench/gpu/multi_process.py --tokenizer .device/tokenizer --out $OUT"
        + (f" --runs {arguments.runs}" if arguments.runs != ",".join(REQUESTS) else ""),
        "versions": real_data.versions(),
        "steps": next(iter(REQUESTS.values()))["spec"]["train"]["max_steps"],
        "rows_per_step": 8,
        "sequence": real_data.SEQUENCE,
        "runs": records,
    }
    (arguments.out / "multi-process.json").write_text(json.dumps(report, indent=2) + "\n")
    # A run that failed fails the call (and the CPU dry run), after the report of every run is written.
    if any(record["status"] != "ok" for record in records):
        raise SystemExit(f"failed: {', '.join(record['run'] for record in records if record['status'] != 'ok')}")


if __name__ == "__main__":
    main()
