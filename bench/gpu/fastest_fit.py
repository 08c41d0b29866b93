"""Issue 25's benchmark: `auto` (micro_batch_size and gradient_checkpointing: the fastest setting that fits, over an
effective batch of 8) against checkpointing on and off at micro-batch 8, and the seed's pipeline (Unsloth + TRL
SFTTrainer, packing=True), on the same real-length rows in one call.

Llama-3.1-8B's shape with random weights built on the device, LoRA r=64 on all linear layers, sequence 2048,
effective batch 8, packed, 4-bit and 16-bit. Every train request comes from bench/gpu/inputs/train-requests.json,
which bench/gpu/train_requests.ts writes through the product's own code (spec schema defaults,
resolveTrainingSetup and the planner's fastest-fit choice, for each card the device may lend); the train activity runs
under Temporal's ActivityEnvironment and validates each request against the contract. The rows, the model build, the
steady-state window and the seed pipeline are real_data.py's.

Device (see bench/gpu/README.md):
    python3 bench/gpu/fastest_fit.py --tokenizer <dir> --out $OUT
CPU dry run of the same logic (tiny shape, transformers + PEFT, TRL without Unsloth; .ci/run runs it):
    TUNEFLOW_DRY_RUN_ON_CPU=1 python bench/gpu/fastest_fit.py --tokenizer <dir> --out /tmp/out
"""

import argparse
import dataclasses
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_data
import train_requests

REPOSITORY = real_data.REPOSITORY
CUDA = real_data.CUDA
DEFAULT_CHECKPOINT_EVERY = real_data.DEFAULT_CHECKPOINT_EVERY
# Enough packed rows for 60 steps of micro-batch 8 (six checkpoints every 10 steps: five with a step after them).
REAL_ROWS = 10000 if CUDA else 200
# (variant, max_steps, seconds cap) by precision. Checkpointing off is run only where auto did not choose it.
RUNS = {
    "4bit": [("auto", 60, 100), ("checkpointing-on", 30, 60), ("checkpointing-off", 30, 50)],
    "none": [("auto", 40, 70), ("checkpointing-on", 20, 45), ("checkpointing-off", 20, 40)],
}
if not CUDA:
    RUNS = {"none": [("auto", 5, 120), ("checkpointing-on", 3, 120), ("checkpointing-off", 3, 120)]}
real_data.SEED_MAX_STEPS, real_data.SEED_SECONDS = (30, 60) if CUDA else (6, 60)


def requests_for(quantization: str) -> dict:
    return train_requests.planned("fastest_fit", quantization)


def run_tuneflow(work: Path, built: dict, quantization: str, budget_seconds: float, variants: set[str] | None = None) -> list[dict]:
    """One worker process: the real `train` activity under ActivityEnvironment, variant after variant."""
    import tuneflow_activities.offline  # noqa: F401

    if CUDA:
        import unsloth  # noqa: F401  (before transformers and peft)
    import torch
    from temporalio.exceptions import CancelledError
    from temporalio.testing import ActivityEnvironment

    from tuneflow_activities.activities import train

    planned = requests_for(quantization)
    started_all = time.monotonic()
    records: list[dict] = []
    snapshots, writes, step_tokens = real_data.instrument_training_loop()
    auto_setup = planned["auto"]["setup"]
    for variant, max_steps, seconds_cap in RUNS[quantization]:
        if variants is not None and variant not in variants:
            continue
        entry = planned[variant]
        if variant != "auto" and entry["setup"] == auto_setup:
            records.append({"run": variant, "status": "same setup as auto: measured there", "setup": entry["setup"], "plan": entry["plan"]})
            continue
        if time.monotonic() - started_all > budget_seconds:
            records.append({"run": variant, "status": "skipped (budget)"})
            continue
        spec = json.loads(json.dumps(entry["spec"]))
        spec["train"]["max_steps"] = max_steps
        checkpoint_every = spec["checkpoint"]["every_steps"]
        request = {
            "spec": spec,
            "setup": entry["setup"],
            "model_uri": built["model_uri"],
            "train_tokens_uri": built["tokens"]["real"],
            "val_tokens_uri": built["val_tokens"]["real"],
            "run_uri": (work / f"{quantization}-{variant}").as_uri(),
        }
        environment = ActivityEnvironment()
        environment.info = dataclasses.replace(environment.info, attempt=1)
        heartbeats: list = []
        environment.on_heartbeat = lambda *details, heartbeats=heartbeats: heartbeats.append(details[0] if details else None)
        if CUDA:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        writes.clear()
        snapshots.clear()
        step_tokens.clear()
        cap = threading.Timer(seconds_cap, environment.cancel)
        began = time.monotonic()
        cap.start()
        try:
            result, status = environment.run(train, request), "ok"
        except CancelledError:
            result, status = None, f"stopped after {seconds_cap} s (time cap)"
        except Exception as error:
            records.append({"run": variant, "status": "error", "error": repr(error)[:2000], "setup": entry["setup"]})
            print(f"{quantization} {variant}: error {error!r}"[:800], flush=True)
            continue
        finally:
            cap.cancel()
        wall = time.monotonic() - began
        log_path = work / f"{quantization}-{variant}" / "train_log.jsonl"
        if not log_path.exists():
            records.append({"run": variant, "status": f"{status}, before its first step"})
            continue
        log = [json.loads(line) for line in log_path.read_text().splitlines()]
        log = [{**record, "tokens": real, "batch_tokens": padded} for record, (real, padded) in zip(log, step_tokens, strict=False)]
        steady = real_data.steady_state(log, checkpoint_every)
        # Every checkpoint with a step after it, the first included: what the default policy pays per checkpoint.
        checkpoint_seconds = [max(0.0, seconds) for seconds in steady["checkpoint_seconds"]]
        mean_checkpoint = statistics.mean(checkpoint_seconds) if checkpoint_seconds else None
        record = {
            "run": variant,
            "status": status,
            "quantization": quantization,
            "setup": entry["setup"],
            "plan": entry["plan"],
            "max_steps": max_steps,
            "steps": log[-1]["step"],
            "wall_seconds": wall,
            "total_steps": result and result["total_steps"],
            "train_sequences": result and result["train_sequences"],
            "model_load_seconds": result and result["model_load_seconds"],
            "checkpoint_write_seconds": list(writes),
            "checkpoint_snapshot_seconds": list(snapshots),
            "peak_vram_allocated_gib": torch.cuda.max_memory_allocated() / 2**30 if CUDA else None,
            "peak_vram_reserved_gib": torch.cuda.max_memory_reserved() / 2**30 if CUDA else None,
            "reported_tokens_per_s_final": next(
                (beat["tokens_per_second"] for beat in reversed(heartbeats) if isinstance(beat, dict) and beat.get("tokens_per_second")), None
            ),
            **steady,
            "checkpoints_measured": len(checkpoint_seconds),
            "checkpoint_overhead_fraction_default_policy": (
                mean_checkpoint / (DEFAULT_CHECKPOINT_EVERY * steady["median_step_seconds"] + mean_checkpoint) if mean_checkpoint is not None else None
            ),
        }
        records.append(record)
        print(
            f"{quantization} {variant}: {record['real_tokens_per_s']:.0f} real tokens/s (planned {entry['plan']['tokens_per_s']:.0f}), "
            f"peak {record['peak_vram_allocated_gib']} GiB (planned {entry['plan']['peak_allocated_gib']}), checkpoints {checkpoint_seconds}, "
            f"snapshots {[round(seconds, 3) for seconds in snapshots]}, wall {wall:.0f} s",
            flush=True,
        )
    return records


def summary(phases: dict, command: str, primary: str) -> dict:
    """The issue's figures: auto against checkpointing on and the seed in the primary precision (4-bit on the
    device), planned against measured; the 16-bit runs beside them."""
    main = {record["run"]: record for record in (phases.get(f"tuneflow-{primary}") or {}).get("result") or []}
    auto, on = main.get("auto", {}), main.get("checkpointing-on", {})
    seed = (phases.get(f"seed-{primary}") or {}).get("result") or {}

    def number(record: dict, key: str):
        value = record.get(key)
        return float(value) if isinstance(value, (int, float)) else None

    auto_tokens, on_tokens, seed_tokens = number(auto, "real_tokens_per_s"), number(on, "real_tokens_per_s"), number(seed, "real_tokens_per_s")
    plan = auto.get("plan", {})
    auto_setup, on_setup = auto.get("setup") or {}, on.get("setup") or {}
    figures = {
        "auto_gradient_checkpointing": auto_setup.get("gradient_checkpointing"),
        # micro_batch_size auto may split the effective batch differently from the fixed runs: both are stated, so a
        # comparison says whether it is like with like (the seed pipeline trains real_data.MICRO_BATCH per step).
        "auto_micro_batch_size": auto_setup.get("micro_batch_size"),
        "auto_gradient_accumulation_steps": auto_setup.get("gradient_accumulation_steps"),
        "checkpointing_on_micro_batch_size": on_setup.get("micro_batch_size"),
        "checkpointing_on_gradient_accumulation_steps": on_setup.get("gradient_accumulation_steps"),
        "seed_pipeline_micro_batch_size": real_data.MICRO_BATCH,
        "auto_choice": plan.get("auto_choice"),
        "auto_real_tokens_per_s": auto_tokens,
        "checkpointing_on_real_tokens_per_s": on_tokens,
        "seed_pipeline_packed_real_tokens_per_s": seed_tokens,
        "auto_peak_gib": number(auto, "peak_vram_allocated_gib"),
        "planned_auto_peak_gib": plan.get("peak_allocated_gib"),
        "planned_auto_tokens_per_s": plan.get("tokens_per_s"),
        "checkpoint_overhead_fraction": number(auto, "checkpoint_overhead_fraction_default_policy"),
        "checkpoints_measured": auto.get("checkpoints_measured"),
    }
    ratio = lambda a, b: a / b if a is not None and b else None  # noqa: E731
    figures["auto_over_checkpointing_on"] = ratio(auto_tokens, on_tokens)
    figures["auto_over_seed_pipeline"] = ratio(auto_tokens, seed_tokens)
    figures["planned_peak_error"] = (
        ratio(figures["planned_auto_peak_gib"], figures["auto_peak_gib"]) and figures["planned_auto_peak_gib"] / figures["auto_peak_gib"] - 1
    )
    figures["planned_tokens_per_s_error"] = ratio(figures["planned_auto_tokens_per_s"], auto_tokens) and figures["planned_auto_tokens_per_s"] / auto_tokens - 1
    sixteen = {record["run"]: record for record in (phases.get("tuneflow-none") or {}).get("result") or []} if primary != "none" else {}
    figures["sixteen_bit"] = {
        variant: {
            key: record.get(key) for key in ("status", "real_tokens_per_s", "peak_vram_allocated_gib", "plan", "checkpoint_overhead_fraction_default_policy")
        }
        for variant, record in sixteen.items()
    }
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        # The device gets a copy of the working tree without .git: the command passes the commit it ran at.
        "commit": os.environ.get("TUNEFLOW_COMMIT")
        or subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPOSITORY, capture_output=True, text=True).stdout.strip(),
        "gpu": real_data.versions().get("gpu") if CUDA else "cpu (dry run)",
        **figures,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokenizer", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/tuneflow-fastest-fit"))
    parser.add_argument("--quantizations", default="4bit,none" if CUDA else "none")
    parser.add_argument("--budget-seconds", type=float, default=250, help="variants that cannot start within this many seconds of their phase are skipped")
    parser.add_argument("--skip-seed", action="store_true")
    parser.add_argument("--variants", help="comma-separated variants to run (default: auto, checkpointing-on, checkpointing-off)")
    parser.add_argument("--phase", choices=["tuneflow", "seed"])
    parser.add_argument("--quantization", choices=["4bit", "none"])
    arguments = parser.parse_args()
    work = arguments.work
    if arguments.phase:
        built = json.loads((work / "built.json").read_text())
        result = (
            run_tuneflow(work, built, arguments.quantization, arguments.budget_seconds, set(arguments.variants.split(",")) if arguments.variants else None)
            if arguments.phase == "tuneflow"
            else real_data.run_seed(work, built, arguments.quantization)
        )
        name = f"{arguments.phase}-{arguments.quantization}"
        arguments.out.mkdir(parents=True, exist_ok=True)
        # Under --out at once: a device call cut short still brings back the phases that finished.
        (arguments.out / f"fastest-fit-{name}.json").write_text(json.dumps(result, indent=2))
        (work / f"{name}.json").write_text(json.dumps(result, indent=2))
        return

    import shutil

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.monotonic()
    real_data.REAL_ROWS = REAL_ROWS
    statistics_spec = requests_for("none" if not CUDA else arguments.quantizations.split(",")[0])["auto"]["spec"]
    built = real_data.build(work, arguments.tokenizer, statistics_spec)
    (work / "built.json").write_text(json.dumps(built))
    print("lengths", json.dumps(built["lengths"]["real"]), flush=True)
    quantizations = arguments.quantizations.split(",")
    phases = {}
    # The seed pipeline needs TRL and datasets, which the product's own Python environment (where CI's dry run
    # runs) does not carry; the device has them.
    seed = not arguments.skip_seed and all(importlib.util.find_spec(name) is not None for name in ("trl", "datasets"))
    order = [("tuneflow", quantizations[0])] + ([("seed", quantizations[0])] if seed else []) + [("tuneflow", q) for q in quantizations[1:]]
    for phase, quantization in order:
        began = time.monotonic()
        me = [sys.executable, __file__, "--tokenizer", str(arguments.tokenizer), "--out", str(arguments.out), "--work", str(work)]
        variants = ["--variants", arguments.variants] if arguments.variants else []
        completed = subprocess.run([*me, "--budget-seconds", str(arguments.budget_seconds), *variants, "--phase", phase, "--quantization", quantization])
        output = work / f"{phase}-{quantization}.json"
        phases[f"{phase}-{quantization}"] = {
            "rc": completed.returncode,
            "seconds": time.monotonic() - began,
            "result": json.loads(output.read_text()) if output.exists() else None,
        }
        # After every phase: a call cut short still brings back a report of what finished.
        report = {
            "summary": {**summary(phases, " ".join(sys.argv), quantizations[0]), "seed_pipeline_run": seed},
            "versions": real_data.versions(),
            "data": {"real": {"rows": REAL_ROWS, "lengths": built["lengths"]["real"]}},
            "phases": phases,
            "total_seconds": time.monotonic() - started,
        }
        arguments.out.mkdir(parents=True, exist_ok=True)
        (arguments.out / "fastest-fit.json").write_text(json.dumps(report, indent=2))
        (arguments.out / "fastest-fit-summary.json").write_text(json.dumps(report["summary"], indent=2))
    print(json.dumps(report["summary"], indent=2))


if __name__ == "__main__":
    main()
