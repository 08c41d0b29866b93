"""DPO on the GPU through the shipped train activity: `train.objective: dpo` on Unsloth 4-bit, Llama-3.2-1B's shape
with random weights built on the device, the tokenizer from .device/tokenizer, preference pairs of real-looking
lengths. Measures pairs/s and real tokens/s in the steady state, and peak VRAM against the planner's DPO prediction;
checks that every step's loss is finite, and that a run stopped at a checkpoint resumes there and finishes.

The train request is bench/gpu/inputs/train-requests.json's `dpo` entry, which bench/gpu/train_requests.ts builds
with the product's own code (the spec schema's defaults, resolveTrainingSetup, the planner pricing two sequences
per pair); the activity runs under Temporal's ActivityEnvironment and validates it against the contract. The
steady-state window and the per-step token count are real_data.py's.

Device (see bench/gpu/README.md):
    python3 bench/gpu/dpo.py --tokenizer .device/tokenizer --out $OUT
CPU dry run of the same logic (tiny shape, transformers + PEFT; `npm run bench:dry-run` runs it, ~20 s):
    TUNEFLOW_DRY_RUN_ON_CPU=1 python bench/gpu/dpo.py --tokenizer <dir> --out /tmp/out
"""

import argparse
import dataclasses
import json
import math
import random
import shutil
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_data
import train_requests

CUDA = real_data.CUDA
LLAMA_3_2_1B = dict(
    hidden_size=2048,
    intermediate_size=8192,
    num_hidden_layers=16,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=64,
    vocab_size=128256,
    tie_word_embeddings=True,
    max_position_embeddings=131072,
    rope_theta=500000.0,
    rms_norm_eps=1e-5,
)
SHAPE = LLAMA_3_2_1B if CUDA else real_data.TINY
# Pairs: a prompt and two responses of log-normal word counts (medians below), enough for every planned step, long
# enough that truncation to max_seq_length makes nearly every sequence full length, the shape the planner prices.
PAIRS, VALIDATION_PAIRS = (400, 16) if CUDA else (24, 4)
PROMPT_MEDIAN, RESPONSE_MEDIAN, SIGMA = (500, 700, 0.3) if CUDA else (60, 90, 0.3)


def planned() -> dict:
    """{spec, setup, plan} of the DPO run on this device, as bench/gpu/train_requests.ts built it."""
    return train_requests.planned("dpo")


def build(work: Path, tokenizer_directory: Path) -> dict:
    """The model (random weights of the shape, built on the device) and the prepared pairs, tokenised by the
    token_statistics activity under the planned spec, as the workflow's plan stage does."""
    import torch
    from temporalio.testing import ActivityEnvironment
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    import tuneflow_activities.offline  # noqa: F401
    from tuneflow_activities.activities import token_statistics
    from tuneflow_activities.models import tokenizer_identity

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_directory)
    model_directory = work / "model"
    config = LlamaConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **SHAPE)
    torch.manual_seed(0)
    with torch.device("cuda" if CUDA else "cpu"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(model_directory)
    tokenizer.save_pretrained(model_directory)
    del model
    if CUDA:
        torch.cuda.empty_cache()

    generator = random.Random(21)

    def length(median: int) -> int:
        return max(4, int(generator.lognormvariate(math.log(median), SIGMA)))

    def pair(number: int) -> dict:
        # The two responses share their first half and differ after it, as a chosen and a rejected answer do.
        shared = real_data.text_of(generator, length(RESPONSE_MEDIAN) // 2)
        return {
            "kind": "preference",
            "source": {"file": "generated.jsonl", "row": number},
            "prompt": [{"role": "user", "content": real_data.text_of(generator, length(PROMPT_MEDIAN))}],
            "chosen": [{"role": "assistant", "content": f"{shared} {real_data.text_of(generator, length(RESPONSE_MEDIAN) // 2)}"}],
            "rejected": [{"role": "assistant", "content": f"{shared} {real_data.text_of(generator, length(RESPONSE_MEDIAN) // 2)}"}],
        }

    rows = [pair(number) for number in range(1, PAIRS + VALIDATION_PAIRS + 1)]
    dataset = work / "datasets" / "pairs"
    dataset.mkdir(parents=True)
    (dataset / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows[:PAIRS]))
    (dataset / "val.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows[PAIRS:]))
    request = planned()
    tokens = ActivityEnvironment().run(
        token_statistics,
        {
            "spec": request["spec"],
            "model_uri": model_directory.as_uri(),
            "tokenizer_identity": tokenizer_identity(model_directory),
            "train_uri": (dataset / "train.jsonl").as_uri(),
            "val_uri": (dataset / "val.jsonl").as_uri(),
        },
    )
    return {
        "spec": request["spec"],
        "setup": request["setup"],
        "model_uri": model_directory.as_uri(),
        "train_tokens_uri": tokens["train_tokens_uri"],
        "val_tokens_uri": tokens["val_tokens_uri"],
        "run_uri": (work / "run").as_uri(),
    }


def train_until(request: dict, stop_at_step: int | None, attempt: int, step_tokens: list) -> dict:
    """One train activity, as a worker runs it: to `stop_at_step` (checkpointed there) or to the end, resuming
    from the run's newest checkpoint. Returns its result with the peak memory it allocated on the GPU."""
    import torch
    from temporalio.testing import ActivityEnvironment

    from tuneflow_activities.activities import train

    environment = ActivityEnvironment()
    environment.info = dataclasses.replace(environment.info, attempt=attempt)
    if CUDA:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    step_tokens.clear()
    began = time.monotonic()
    result = environment.run(train, request | ({} if stop_at_step is None else {"stop_at_step": stop_at_step}))
    return {
        **result,
        "wall_seconds": time.monotonic() - began,
        "peak_vram_allocated_gib": torch.cuda.max_memory_allocated() / 2**30 if CUDA else None,
        "step_tokens": list(step_tokens),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokenizer", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/tuneflow-dpo"))
    arguments = parser.parse_args()
    shutil.rmtree(arguments.work, ignore_errors=True)
    arguments.work.mkdir(parents=True)

    import tuneflow_activities.offline  # noqa: F401

    if CUDA:
        import unsloth  # noqa: F401  (before transformers and peft)

    started = time.monotonic()
    request = build(arguments.work, arguments.tokenizer)
    build_seconds = time.monotonic() - started
    entry = planned()
    max_steps = request["spec"]["train"]["max_steps"]
    every = request["spec"]["checkpoint"]["every_steps"]
    stop_at = every  # the first checkpoint: the resumed attempt trains every step after it
    _, _, step_tokens = real_data.instrument_training_loop()

    stopped = train_until(request, stop_at, 1, step_tokens)
    resumed = train_until(request, None, 2, step_tokens)

    log = [json.loads(line) for line in (arguments.work / "run" / "train_log.jsonl").read_text().splitlines() if line.strip()]
    second = [record for record in log if record["attempt"] == 2]
    second = [{**record, "tokens": real, "batch_tokens": padded} for record, (real, padded) in zip(second, resumed["step_tokens"], strict=False)]
    steady = real_data.steady_state(second, every)
    # The decided split, not the spec's: micro_batch_size may be auto there.
    setup = entry["setup"]
    pairs_per_step = setup["micro_batch_size"] * setup["gradient_accumulation_steps"] * setup["processes"]
    planned_peak = entry["plan"]["peak_allocated_gib"]
    measured_peak = max(stopped["peak_vram_allocated_gib"] or 0.0, resumed["peak_vram_allocated_gib"] or 0.0) if CUDA else None
    losses = [record["loss"] for record in log]
    checks = {
        "every_loss_finite": all(math.isfinite(loss) for loss in losses),
        "stopped_at_its_checkpoint": stopped["final_step"] == stop_at,
        "resumed_from_that_checkpoint": resumed["resumed_from_step"] == stop_at,
        "no_step_trained_twice": sorted(record["step"] for record in log) == list(range(1, max_steps + 1)),
        "completed_all_steps": resumed["final_step"] == max_steps,
        "backend_is_unsloth_4bit": not CUDA or (resumed["backend"] == "unsloth" and entry["setup"]["quantization"] == "4bit"),
        "reward_accuracy_logged": all("reward_accuracy" in record for record in log),
    }
    report = {
        "benchmark": "bench/gpu/dpo.py",
        "date": datetime.now(timezone.utc).isoformat(),
        "device": real_data.versions().get("gpu") if CUDA else "cpu (dry run)",
        "versions": real_data.versions(),
        "shape": SHAPE,
        "pairs": {"train": PAIRS, "validation": VALIDATION_PAIRS, "prompt_median_tokens": PROMPT_MEDIAN, "response_median_tokens": RESPONSE_MEDIAN},
        "setup": entry["setup"],
        "objective": request["spec"]["train"]["objective"],
        "build_seconds": build_seconds,
        "steps": {"max": max_steps, "stopped_at": stop_at, "checkpoint_every": every},
        "measured": {
            "pairs_per_s": pairs_per_step / steady["median_step_seconds"],
            "real_tokens_per_s": steady["real_tokens_per_s"],
            "batch_tokens_per_s": steady["batch_tokens_per_s"],
            "median_step_seconds": steady["median_step_seconds"],
            "steady_steps": steady["steady_steps"],
            "padding_fraction": steady["padding_fraction"],
            "peak_vram_allocated_gib": measured_peak,
            "trainer_tokens_per_s": resumed["tokens_per_second"],
            "model_load_seconds": [stopped["model_load_seconds"], resumed["model_load_seconds"]],
        },
        "planned": {"peak_allocated_gib": planned_peak, "peak_vram_gib": entry["plan"]["peak_vram_gib"], "tokens_per_s": entry["plan"]["tokens_per_s"]},
        "peak_measured_over_planned": measured_peak / planned_peak if measured_peak is not None and planned_peak else None,
        "losses": [(record["step"], record["loss"], record.get("reward_accuracy")) for record in log],
        "median_loss_first_and_last_quarter": [statistics.median(losses[: max(1, len(losses) // 4)]), statistics.median(losses[-max(1, len(losses) // 4) :])],
        "checks": checks,
        "passed": all(checks.values()),
    }
    arguments.out.mkdir(parents=True, exist_ok=True)
    (arguments.out / "dpo.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({key: report[key] for key in ("measured", "planned", "peak_measured_over_planned", "checks")}, indent=2), "\npassed:", report["passed"])
    if not report["passed"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
