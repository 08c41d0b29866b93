"""The train activity itself on the GPU, through Temporal's activity test environment (no server needed):
Unsloth loader, checkpoints, SIGKILL mid-run, a new process resumes from the newest checkpoint; then the adapter
loads in plain PEFT, the merge activity produces a directory transformers loads, and the resumed adapter is
compared with an uninterrupted run's.

Run on the device (see bench/gpu/README.md, "Activity kill and resume"):
    python3 bench/gpu/activity_kill_resume.py --tokenizer .device/tokenizer --out $OUT
Each phase is its own process, as a worker's would be: `import unsloth` must precede transformers and peft.
"""

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPOSITORY / "python-activities"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_requests  # noqa: E402  (beside this file)

# The planned spec's max_steps and checkpoint.every_steps (40 and 5 on the device, 8 and 2 on the CPU); the kill
# comes once this step's checkpoint is on disk.
KILL_AFTER_CHECKPOINT = 15 if os.environ.get("TUNEFLOW_DRY_RUN_ON_CPU") != "1" else 4
# Off the device (TUNEFLOW_DRY_RUN_ON_CPU=1) the same script runs on the CPU with transformers + PEFT, to check
# its logic before spending device time.
CUDA = os.environ.get("TUNEFLOW_DRY_RUN_ON_CPU") != "1"
DEVICE = "cuda" if CUDA else "cpu"
# SmolLM2-135M's architecture (a Llama): real kernels and shapes, random weights built on the device; the CPU dry
# run checks the same logic on a tiny Llama (a 135M step takes minutes on a shared CPU).
SHAPE = (
    dict(
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        tie_word_embeddings=True,
        max_position_embeddings=2048,
    )
    if CUDA
    else dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16, tie_word_embeddings=False)
)


def planned() -> dict:
    """{spec, setup, plan} of this benchmark's run, as bench/gpu/train_requests.ts built it with the product's code."""
    return train_requests.planned("activity_kill_resume")


def build(work: Path, tokenizer_directory: Path) -> dict:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    import tuneflow_activities.offline  # noqa: F401

    model_directory = work / "model"
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_directory)
    config = LlamaConfig(
        vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **SHAPE
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(model_directory)
    tokenizer.save_pretrained(model_directory)
    rows = [json.loads(line) for line in (REPOSITORY / "examples/quickstart/data.jsonl").read_text().splitlines()]
    prepared = [
        {
            "kind": "chat",
            "source": {"file": "data.jsonl", "row": n},
            "messages": [{"role": "user", "content": f"{r['instruction']}\n\n{r['input']}"}, {"role": "assistant", "content": r["output"]}],
        }
        for n, r in enumerate(rows, 1)
    ]
    dataset = work / "datasets" / "quickstart"
    dataset.mkdir(parents=True)
    (dataset / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in prepared[:288]))
    (dataset / "val.jsonl").write_text("".join(json.dumps(row) + "\n" for row in prepared[288:]))
    from temporalio.testing import ActivityEnvironment

    from tuneflow_activities.activities import token_statistics
    from tuneflow_activities.models import tokenizer_identity

    tokens = ActivityEnvironment().run(
        token_statistics,
        {
            "spec": planned()["spec"],
            "model_uri": model_directory.as_uri(),
            "tokenizer_identity": tokenizer_identity(model_directory),
            "train_uri": (dataset / "train.jsonl").as_uri(),
            "val_uri": (dataset / "val.jsonl").as_uri(),
        },
    )
    request = planned()
    return {
        "spec": request["spec"],
        "setup": request["setup"],
        "model_uri": model_directory.as_uri(),
        "train_tokens_uri": tokens["train_tokens_uri"],
        "val_tokens_uri": tokens["val_tokens_uri"],
    }


def run_train_activity(request_path: Path, run_name: str, attempt: int) -> None:
    """One worker process: the real `train` activity under Temporal's ActivityEnvironment."""
    import tuneflow_activities.offline  # noqa: F401

    if CUDA:
        import unsloth  # noqa: F401  (before transformers and peft)
    from temporalio.testing import ActivityEnvironment

    from tuneflow_activities.activities import train

    request = json.loads(request_path.read_text())
    request["run_uri"] = (request_path.parent / run_name).as_uri()
    environment = ActivityEnvironment()
    environment.info = dataclasses.replace(environment.info, attempt=attempt)
    heartbeats = []
    environment.on_heartbeat = lambda *details: heartbeats.append(details[0] if details else None)
    started = time.monotonic()
    result = environment.run(train, request)
    result["wall_seconds"] = time.monotonic() - started
    result["heartbeats"] = len(heartbeats)
    (request_path.parent / f"{run_name}-attempt{attempt}.json").write_text(json.dumps(result, indent=2))


def load_and_merge(request_path: Path) -> dict:
    """A fresh process without Unsloth: plain PEFT loads the adapter, the merge activity's output loads in transformers."""
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import tuneflow_activities.offline  # noqa: F401
    from tuneflow_activities.evaluation import evaluate
    from tuneflow_activities.merging import merge

    work = request_path.parent
    request = json.loads(request_path.read_text())
    resumed = json.loads((work / "interrupted-attempt2.json").read_text())
    straight = json.loads((work / "straight-attempt1.json").read_text())
    model_directory = Path(request["model_uri"].removeprefix("file://"))
    tokenizer = AutoTokenizer.from_pretrained(model_directory)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Describe Anna, 52, a baker in Gdansk, as JSON."}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    ).to(DEVICE)
    base = AutoModelForCausalLM.from_pretrained(model_directory, dtype=torch.bfloat16).to(DEVICE)
    adapter_directory = Path(resumed["adapter_uri"].removeprefix("file://"))
    peft_model = PeftModel.from_pretrained(base, adapter_directory).eval()
    adapter_generation = peft_model.generate(**prompt, max_new_tokens=12, do_sample=False)
    # Each activity gets exactly its own contract's fields (the typed requests refuse any other).
    merge_request = {key: request[key] for key in ("spec", "setup", "model_uri")}
    merged = merge(merge_request | {"adapter_uri": resumed["adapter_uri"], "run_uri": (work / "interrupted").as_uri()})
    merged_model = AutoModelForCausalLM.from_pretrained(Path(merged["merged_uri"].removeprefix("file://")), dtype=torch.bfloat16).to(DEVICE).eval()
    merged_generation = merged_model.generate(**prompt, max_new_tokens=12, do_sample=False)
    evaluation = evaluate({key: request[key] for key in ("spec", "setup", "model_uri", "val_tokens_uri")} | {"adapter_uri": resumed["adapter_uri"]})

    resumed_tensors = load_file(adapter_directory / "adapter_model.safetensors")
    straight_tensors = load_file(Path(straight["adapter_uri"].removeprefix("file://")) / "adapter_model.safetensors")
    differences = [(resumed_tensors[name].float() - straight_tensors[name].float()).abs().max().item() for name in straight_tensors]
    scale = max(straight_tensors[name].float().abs().max().item() for name in straight_tensors)
    return {
        "straight": straight,
        "resumed": resumed,
        "adapter_generation_tokens": adapter_generation.shape[1] - prompt["input_ids"].shape[1],
        "merged_generation_tokens": merged_generation.shape[1] - prompt["input_ids"].shape[1],
        "merged": merged,
        "evaluation": {key: value for key, value in evaluation.items() if key != "samples"},
        "adapter_max_abs_difference_resumed_vs_straight": max(differences),
        "adapter_max_abs_value": scale,
        "identical_adapters": max(differences) == 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokenizer", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/tuneflow-activity-kill"))
    parser.add_argument("--phase")
    parser.add_argument("--run-name")
    parser.add_argument("--attempt", type=int, default=1)
    arguments = parser.parse_args()
    request_path = arguments.work / "request.json"
    if arguments.phase == "train":
        return run_train_activity(request_path, arguments.run_name, arguments.attempt)
    if arguments.phase == "check":
        return print(json.dumps(load_and_merge(request_path)))

    import shutil

    shutil.rmtree(arguments.work, ignore_errors=True)
    arguments.work.mkdir(parents=True)
    request_path.write_text(json.dumps(build(arguments.work, arguments.tokenizer)))
    me = [sys.executable, __file__, "--tokenizer", str(arguments.tokenizer), "--out", str(arguments.out), "--work", str(arguments.work)]
    timings = {}

    started = time.monotonic()
    subprocess.run([*me, "--phase", "train", "--run-name", "straight"], check=True)
    timings["straight_seconds"] = time.monotonic() - started

    # The crash: SIGKILL the worker process once a checkpoint past KILL_AFTER_CHECKPOINT steps is on disk.
    victim = subprocess.Popen([*me, "--phase", "train", "--run-name", "interrupted"])
    checkpoints = arguments.work / "interrupted" / "checkpoints"
    while victim.poll() is None and not (checkpoints / f"step-{KILL_AFTER_CHECKPOINT:08d}" / "manifest.json").exists():
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    killed_log = (arguments.work / "interrupted" / "train_log.jsonl").read_text().splitlines()
    timings["steps_done_when_killed"] = max(json.loads(line)["step"] for line in killed_log if line.strip().endswith("}"))

    started = time.monotonic()
    subprocess.run([*me, "--phase", "train", "--run-name", "interrupted", "--attempt", "2"], check=True)
    timings["resume_process_seconds"] = time.monotonic() - started

    check = json.loads(subprocess.run([*me, "--phase", "check"], check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    log = [json.loads(line) for line in (arguments.work / "interrupted" / "train_log.jsonl").read_text().splitlines() if line.strip().endswith("}")]
    resumed_from = check["resumed"]["resumed_from_step"]
    report = {
        **timings,
        **check,
        "checks": {
            "resumed_from_a_checkpoint_at_or_after_kill_checkpoint": resumed_from >= KILL_AFTER_CHECKPOINT,
            "no_step_before_the_checkpoint_retrained": all(sum(1 for r in log if r["step"] == step) == 1 for step in range(1, resumed_from + 1)),
            "attempt_2_started_right_after_checkpoint": next(r["step"] for r in log if r["attempt"] == 2) == resumed_from + 1,
            # max_steps caps the run; one epoch of 288 rows at 8 per step is 36 steps.
            "completed_all_steps": check["resumed"]["final_step"] == check["resumed"]["total_steps"] == check["straight"]["total_steps"],
            "resumed_adapter_equals_uninterrupted_within_tolerance": check["adapter_max_abs_difference_resumed_vs_straight"]
            <= 1e-3 * check["adapter_max_abs_value"],
            "backend_is_unsloth": not CUDA or (check["resumed"]["backend"] == "unsloth" and check["straight"]["backend"] == "unsloth"),
            "adapter_loads_and_generates_in_plain_peft": check["adapter_generation_tokens"] > 0,
            "merged_loads_and_generates_in_transformers": check["merged_generation_tokens"] > 0,
        },
    }
    report["passed"] = all(report["checks"].values())
    arguments.out.mkdir(parents=True, exist_ok=True)
    (arguments.out / "activity-kill-resume.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report["checks"], indent=2), "\npassed:", report["passed"])


if __name__ == "__main__":
    main()
