"""Issue 12's benchmark: tuneflow's own train activity on fixed-length and real-length rows, packing on and off,
against the seed's pipeline (Unsloth FastLanguageModel + TRL SFTTrainer, packing=True) on the same rows.

Llama-3.1-8B's shape with random weights built on the device, LoRA r=64 on all linear layers, sequence 2048,
micro-batch 8. The train activity runs under Temporal's ActivityEnvironment (as activity_kill_resume.py does);
every tuneflow run of one precision shares one worker process (one `import unsloth`), the seed pipeline has its own.

Device (see bench/gpu/README.md, "Real-data benchmark"):
    python3 bench/gpu/real_data.py --tokenizer .device/tokenizer --quantization 4bit --out $OUT
CPU dry run of the same logic (tiny shape, transformers + PEFT, TRL without Unsloth):
    TUNEFLOW_DRY_RUN_ON_CPU=1 python bench/gpu/real_data.py --tokenizer .device/tokenizer --quantization none --out /tmp/out
"""

import argparse
import dataclasses
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

REPOSITORY = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPOSITORY / "python-activities"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_requests  # noqa: E402  (beside this file)

CUDA = os.environ.get("TUNEFLOW_DRY_RUN_ON_CPU") != "1"
LLAMA_3_1_8B = dict(
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=128,
    vocab_size=128256,
    tie_word_embeddings=False,
    max_position_embeddings=131072,
    rope_theta=500000.0,
    rms_norm_eps=1e-5,
)
TINY = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    vocab_size=49152,
    tie_word_embeddings=False,
    max_position_embeddings=2048,
)
SHAPE = LLAMA_3_1_8B if CUDA else TINY
SEQUENCE = 2048 if CUDA else 256
MICRO_BATCH = 8 if CUDA else 2
# Real-length rows: log-normal token lengths, median 100, sigma 0.9 (p95 ~440), clipped to [16, 3000] before
# tokenisation; rows over the sequence length are truncated, as dataset.overlong: truncate does.
REAL_ROWS, REAL_MEDIAN, REAL_SIGMA = (4000, 100, 0.9) if CUDA else (160, 40, 0.9)
FIXED_ROWS = MICRO_BATCH * 16
DEFAULT_CHECKPOINT_EVERY = 50  # the spec's default policy (src/spec/schema.ts), for the overhead fraction
# Steps excluded from the steady-state window: the first compiles, the next ones warm caches and the allocator.
WARMUP_STEPS = 3 if CUDA else 1
# (name, data, seconds): each run's packing and max_steps are in its planned spec (train_requests.ts; unpacked real
# data takes one step per 8 rows, so it is capped). A run still going after its seconds is cancelled through the
# activity environment: it checkpoints and stops at a step boundary, as a pause would, and its train_log still
# gives the steady state.
TUNEFLOW_RUNS = [
    ("fixed-unpacked", "fixed", 100),
    ("fixed-packed", "fixed", 60),
    ("real-packed", "real", 100),
    ("real-unpacked", "real", 110),
]
SEED_MAX_STEPS, SEED_SECONDS = (40, 110) if CUDA else (6, 60)
WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "was",
    "for",
    "on",
    "that",
    "with",
    "as",
    "by",
    "at",
    "from",
    "his",
    "her",
    "they",
    "this",
    "had",
    "not",
    "are",
    "but",
    "were",
    "one",
    "all",
    "she",
    "which",
    "there",
    "can",
    "more",
    "when",
    "some",
    "time",
    "would",
    "into",
    "then",
    "only",
    "two",
    "other",
    "also",
    "after",
    "first",
    "new",
    "like",
    "over",
    "years",
    "where",
    "most",
    "used",
    "state",
    "made",
    "part",
    "such",
    "even",
    "many",
    "back",
    "year",
    "because",
    "good",
    "each",
    "those",
    "people",
    "make",
    "well",
    "way",
]


def planned(quantization: str, run: str) -> dict:
    """{spec, setup, plan} of one run, as bench/gpu/train_requests.ts built it with the product's own code."""
    return train_requests.planned("real_data", quantization if CUDA else "none", run)


def text_of(random, tokens: int) -> str:
    return " ".join(random.choice(WORDS) for _ in range(tokens))


def build(work: Path, tokenizer_directory: Path, statistics_spec: dict | None = None) -> dict:
    """The model (random weights of the real shape, built on the device) and the two prepared datasets, tokenised
    under `statistics_spec` (a whole spec as the workflow passes it; the real-packed run's when not given)."""
    import random

    import numpy as np
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_directory)
    model_directory = Path("/tmp/tf-models") / ("llama-3.1-8b" if CUDA else "tiny")
    if not (model_directory / "config.json").exists():
        started = time.monotonic()
        config = LlamaConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **SHAPE)
        torch.manual_seed(0)
        with torch.device("cuda" if CUDA else "cpu"):
            model = LlamaForCausalLM(config).to(torch.bfloat16)
        model.save_pretrained(model_directory)
        tokenizer.save_pretrained(model_directory)
        del model
        if CUDA:
            torch.cuda.empty_cache()  # this process lives on while the workers train
        print(f"built {model_directory} in {time.monotonic() - started:.1f} s", flush=True)
    generator = random.Random(12)
    lengths = np.clip(np.random.default_rng(12).lognormal(math.log(REAL_MEDIAN), REAL_SIGMA, REAL_ROWS), 16, 3000).astype(int)

    def completion_row(number: int, length: int) -> dict:
        prompt = max(4, int(length * generator.uniform(0.2, 0.5)))
        return {
            "kind": "completion",
            "source": {"file": "generated.jsonl", "row": number},
            "prompt": text_of(generator, prompt) + "\n",
            "completion": " " + text_of(generator, max(2, length - prompt - 2)),
        }

    datasets = {
        "real": [completion_row(number, int(length)) for number, length in enumerate(lengths, 1)],
        # Longer than the sequence: truncation makes every row exactly SEQUENCE tokens.
        "fixed": [completion_row(number, SEQUENCE + 64) for number in range(1, FIXED_ROWS + 1)],
    }
    from temporalio.testing import ActivityEnvironment

    import tuneflow_activities.offline  # noqa: F401
    from tuneflow_activities.activities import token_statistics
    from tuneflow_activities.models import tokenizer_identity

    uris, tokens, val_tokens, lengths = {}, {}, {}, {}
    for name, rows in datasets.items():
        directory = work / "datasets" / name
        directory.mkdir(parents=True)
        (directory / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
        (directory / "val.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows[:8]))
        uris[name] = (directory / "train.jsonl").as_uri()
        # Tokenised once, as the workflow's plan stage does; the train activity reads the ids.
        statistics = ActivityEnvironment().run(
            token_statistics,
            {
                "spec": statistics_spec or planned("none", "real-packed")["spec"],
                "model_uri": model_directory.as_uri(),
                "tokenizer_identity": tokenizer_identity(model_directory),
                "train_uri": uris[name],
                "val_uri": (directory / "val.jsonl").as_uri(),
            },
        )
        tokens[name], val_tokens[name], lengths[name] = statistics["train_tokens_uri"], statistics["val_tokens_uri"], statistics["train"]
    return {"model_uri": model_directory.as_uri(), "data": uris, "tokens": tokens, "val_tokens": val_tokens, "lengths": lengths}


def steady_state(log: list[dict], checkpoint_every: int) -> dict:
    """From train_log.jsonl: per-step intervals, real and batch tokens/s past the warm-up, checkpoint cost.

    A step's record is written before its checkpoint, so the interval of the step after a checkpoint holds the copy
    off the GPU, and the next one may share the machine with the background write: those two intervals are left out
    of the steady window, and their excess over two median steps is what the checkpoint cost in wall time."""
    intervals = [(record["step"], record["time"] - previous["time"], record["tokens"], record["batch_tokens"]) for previous, record in itertools.pairwise(log)]
    checkpointed = {step for step, *_ in intervals if (step - 1) % checkpoint_every == 0 and step > 1}
    after_checkpoint = checkpointed | {step + 1 for step in checkpointed}
    steady = [interval for interval in intervals if interval[0] > WARMUP_STEPS and interval[0] not in after_checkpoint]
    median_step = statistics.median(seconds for _, seconds, *_ in steady)
    seconds_of = {step: seconds for step, seconds, *_ in intervals}
    checkpoint_seconds = [seconds_of[step] + seconds_of[step + 1] - 2 * median_step for step in sorted(checkpointed) if step + 1 in seconds_of]
    seconds = sum(interval[1] for interval in steady)
    return {
        "steady_steps": len(steady),
        "steady_seconds": seconds,
        "real_tokens_per_s": sum(interval[2] for interval in steady) / seconds,
        "batch_tokens_per_s": sum(interval[3] for interval in steady) / seconds,
        "median_step_seconds": median_step,
        "checkpoint_seconds": checkpoint_seconds,
        "padding_fraction": 1 - sum(record["tokens"] for record in log) / sum(record["batch_tokens"] for record in log),
        "real_tokens": sum(record["tokens"] for record in log),
    }


def instrument_training_loop() -> tuple[list[float], list[float], list[tuple[int, int]]]:
    """Patches the shipped loop to record, in the lists it returns: what the step that checkpoints waits for (the copy
    off the GPU), the write on the background thread, and every step's real and padded tokens in order (the train
    log records times, the throughput these). fastest_fit.py measures the same way."""
    from tuneflow_activities import checkpoint, training

    snapshots: list[float] = []
    writes: list[float] = []
    step_tokens: list[tuple[int, int]] = []

    def timed(function, seconds: list[float]):
        def call(*arguments, **keywords):
            started = time.monotonic()
            try:
                return function(*arguments, **keywords)
            finally:
                seconds.append(time.monotonic() - started)

        return call

    training.take_snapshot = timed(training.take_snapshot, snapshots)
    checkpoint.write_checkpoint = timed(checkpoint.write_checkpoint, writes)
    record_tokens = training.Throughput.record

    def recording(throughput, real_tokens: int, padded_tokens: int) -> None:
        step_tokens.append((real_tokens, padded_tokens))
        record_tokens(throughput, real_tokens, padded_tokens)

    training.Throughput.record = recording
    return snapshots, writes, step_tokens


def run_tuneflow(work: Path, built: dict, quantization: str, budget_seconds: float, selected: set[str] | None) -> list[dict]:
    """One worker process: the real `train` activity under Temporal's ActivityEnvironment, run after run."""
    import tuneflow_activities.offline  # noqa: F401

    if CUDA:
        import unsloth  # noqa: F401  (before transformers and peft)
    import torch
    from temporalio.exceptions import CancelledError
    from temporalio.testing import ActivityEnvironment

    from tuneflow_activities.activities import train

    started_all = time.monotonic()
    records = []
    checkpoint_snapshots, checkpoint_writes, step_tokens = instrument_training_loop()
    runs = [run for run in TUNEFLOW_RUNS if selected is None or run[0] in selected]
    if CUDA and any(planned(quantization, run[0])["setup"]["packing"] for run in runs):
        check = varlen_route_check(built["model_uri"], quantization)
        records.append({"run": "packed-attention-check", "status": "ok", **check})
        print("packed attention check", json.dumps(check), flush=True)
    for name, data, seconds_cap in runs:
        request_plan = planned(quantization, name)
        packing, max_steps = request_plan["setup"]["packing"], request_plan["spec"]["train"].get("max_steps")
        if time.monotonic() - started_all > budget_seconds:
            records.append({"run": name, "status": "skipped (budget)"})
            continue
        request = {
            "spec": request_plan["spec"],
            "setup": request_plan["setup"],
            "model_uri": built["model_uri"],
            "train_tokens_uri": built["tokens"][data],
            "val_tokens_uri": built["val_tokens"][data],
            "run_uri": (work / f"{quantization}-{name}").as_uri(),
        }
        environment = ActivityEnvironment()
        environment.info = dataclasses.replace(environment.info, attempt=1)
        heartbeats = []
        environment.on_heartbeat = lambda *details, heartbeats=heartbeats: heartbeats.append(details[0] if details else None)
        if CUDA:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        checkpoint_writes.clear()
        checkpoint_snapshots.clear()
        step_tokens.clear()
        cap = threading.Timer(seconds_cap if CUDA else seconds_cap / 2, environment.cancel)
        started = time.monotonic()
        cap.start()
        try:
            result, status = environment.run(train, request), "ok"
        except CancelledError:
            result, status = None, f"stopped after {seconds_cap} s (time cap)"
        except Exception as error:
            records.append({"run": name, "status": "error", "error": repr(error)[:2000]})
            print(f"{name}: error {error!r}"[:500], flush=True)
            continue
        finally:
            cap.cancel()
        wall = time.monotonic() - started
        log_path = work / f"{quantization}-{name}" / "train_log.jsonl"
        if not log_path.exists():
            records.append({"run": name, "status": f"{status}, before its first step"})
            continue
        log = [json.loads(line) for line in log_path.read_text().splitlines()]
        log = [{**record, "tokens": real, "batch_tokens": padded} for record, (real, padded) in zip(log, step_tokens, strict=False)]
        steady = steady_state(log, request_plan["spec"]["checkpoint"]["every_steps"])
        reported = [beat["tokens_per_second"] for beat in heartbeats if isinstance(beat, dict) and beat.get("tokens_per_second")]
        record = {
            "run": name,
            "status": status,
            "data": data,
            "packing": packing,
            "quantization": quantization,
            "max_steps": max_steps,
            "steps": log[-1]["step"],
            "wall_seconds": wall,
            "model_load_seconds": result and result["model_load_seconds"],
            "seconds_to_first_step": result and result["seconds_to_first_step"],
            "checkpoint_write_seconds": list(checkpoint_writes),
            "checkpoint_snapshot_seconds": list(checkpoint_snapshots),
            # From the first step's end to the last step's end: training time after load and the first (compiling) step.
            "seconds_after_first_step": log[-1]["time"] - log[0]["time"],
            "reported_tokens_per_s_final": reported[-1] if reported else None,
            "peak_vram_allocated_gib": torch.cuda.max_memory_allocated() / 2**30 if CUDA else None,
            "peak_vram_reserved_gib": torch.cuda.max_memory_reserved() / 2**30 if CUDA else None,
            **({key: result[key] for key in ("backend", "optimizer", "gradient_checkpointing", "total_steps")} if result else {}),
            "step_intervals": [round(b["time"] - a["time"], 4) for a, b in itertools.pairwise(log)],
            **steady,
        }
        records.append(record)
        print(
            f"{name}: {record['real_tokens_per_s']:.0f} real tokens/s steady, padding {record['padding_fraction']:.1%}, "
            f"reported {record['reported_tokens_per_s_final']}, peak {record['peak_vram_allocated_gib']}, wall {wall:.0f} s",
            flush=True,
        )
    return records


def packed_attention_check(model, device: str, reference=None) -> tuple[dict, "torch.Tensor"]:
    """Row B's logits with row A perturbed, packed as one row with restarting position ids (the layout tuneflow's
    collate_packed sends): unchanged if no row attends to another."""
    import torch

    first, second = list(range(1000, 1173)), list(range(2000, 2097))
    perturbed = [token + 7 for token in first]

    def logits(rows):
        input_ids = torch.tensor([[token for row in rows for token in row]], device=device)
        position_ids = torch.tensor([[position for row in rows for position in range(len(row))]], device=device)
        with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            return model(input_ids=input_ids, position_ids=position_ids, use_cache=False).logits[0].float()

    packed, changed, alone = logits([first, second]), logits([perturbed, second]), logits([second])
    own = slice(len(first), len(first) + len(second))
    summary = {
        "row_b_max_abs_change_when_row_a_changes": (packed[own] - changed[own]).abs().max().item(),
        "row_a_max_abs_change": (packed[: len(first)] - changed[: len(first)]).abs().max().item(),
        "row_b_packed_vs_alone_max_abs_difference": (packed[own] - alone).abs().max().item(),
        "logit_max_abs": packed.abs().max().item(),
    }
    if reference is not None:
        summary["packed_vs_reference_max_abs_difference"] = (packed - reference).abs().max().item()
    return summary, packed


def varlen_route_check(model_uri: str, quantization: str) -> dict:
    """Under tuneflow's Unsloth loader: the packed check on Unsloth's per-segment SDPA route, then on the flash varlen
    route packing.route_unsloth_packed_attention_to_flash_varlen switches on (every later packed run uses it)."""
    import torch

    from tuneflow_activities.artifacts import uri_to_path
    from tuneflow_activities.loaders import TrainingSetup, load_for_training
    from tuneflow_activities.packing import route_unsloth_packed_attention_to_flash_varlen

    request = planned(quantization, "real-packed")
    loaded = load_for_training(uri_to_path(model_uri), request["spec"], TrainingSetup(**request["setup"]))
    segments, reference = packed_attention_check(loaded.model, "cuda")
    routed = route_unsloth_packed_attention_to_flash_varlen()
    varlen, _ = packed_attention_check(loaded.model, "cuda", reference)
    del loaded
    torch.cuda.empty_cache()
    return {"segments_route": segments, "varlen_route_enabled": routed, "varlen_route": varlen}


def run_seed(work: Path, built: dict, quantization: str) -> dict:
    """The seed's pipeline: Unsloth FastLanguageModel + TRL SFTTrainer, packing=True, on the real-length rows."""
    import tuneflow_activities.offline  # noqa: F401

    if CUDA:
        import unsloth  # noqa: F401
        from unsloth import FastLanguageModel
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from tuneflow_activities.artifacts import uri_to_path
    from tuneflow_activities.data import read_prepared_rows

    model_directory = str(uri_to_path(built["model_uri"]))
    started = time.monotonic()
    if CUDA:
        model, tokenizer = FastLanguageModel.from_pretrained(
            model_name=model_directory,
            max_seq_length=SEQUENCE,
            dtype=torch.bfloat16,
            load_in_4bit=quantization == "4bit",
            load_in_16bit=quantization == "none",
            local_files_only=True,
        )
        model = FastLanguageModel.get_peft_model(
            model,
            r=64,
            lora_alpha=64,
            lora_dropout=0,
            bias="none",
            random_state=42,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
            use_gradient_checkpointing="unsloth",
        )
    else:
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = get_peft_model(
            AutoModelForCausalLM.from_pretrained(model_directory), LoraConfig(r=64, lora_alpha=64, target_modules="all-linear", task_type="CAUSAL_LM")
        )
        tokenizer = AutoTokenizer.from_pretrained(model_directory)
    load_seconds = time.monotonic() - started
    attention, _ = packed_attention_check(model, "cuda" if CUDA else "cpu")
    model.train()
    rows = read_prepared_rows(uri_to_path(built["data"]["real"]))
    dataset = Dataset.from_list([{"prompt": row["prompt"], "completion": row["completion"]} for row in rows])
    config = SFTConfig(
        output_dir=str(work / f"seed-{quantization}"),
        max_length=SEQUENCE,
        packing=True,
        per_device_train_batch_size=MICRO_BATCH,
        gradient_accumulation_steps=1,
        learning_rate=1e-4,
        lr_scheduler_type="linear",
        warmup_steps=2,
        max_steps=SEED_MAX_STEPS,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        bf16=CUDA,
        optim="adamw_8bit" if CUDA else "adamw_torch",
        seed=42,
        use_cpu=not CUDA,
        dataloader_num_workers=0,
    )
    step_ends: list[float] = []

    class StepTimes(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if CUDA:
                torch.cuda.synchronize()
            step_ends.append(time.monotonic())
            # The same time cap as tuneflow's runs: the steady window needs steps, not the whole dataset.
            if step_ends[-1] - train_started > SEED_SECONDS:
                control.should_training_stop = True

    trainer = SFTTrainer(model=model, processing_class=tokenizer, train_dataset=dataset, args=config, callbacks=[StepTimes()])
    packed_rows = trainer.train_dataset
    batch_tokens: list[int] = []
    collator = trainer.data_collator

    def counting_collator(features):
        batch = collator(features)
        batch_tokens.append(int(batch["input_ids"].numel()))
        return batch

    trainer.data_collator = counting_collator
    pack_lengths = [len(ids) for ids in packed_rows["input_ids"]]
    if not CUDA:
        # TRL's fused LM-head loss is a Triton kernel (GPU only): the dry run stops at the first packed batch.
        batch = next(iter(trainer.get_train_dataloader()))
        return {
            "run": "seed-sft-packed",
            "status": "dry run: first batch only",
            "batch_keys": sorted(batch),
            "batch_tokens": batch_tokens,
            "packs": len(pack_lengths),
            "pack_fill": sum(pack_lengths) / (len(pack_lengths) * SEQUENCE),
            "packed_attention_check": attention,
        }
    if CUDA:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    train_started = time.monotonic()
    trainer.train()
    wall = time.monotonic() - train_started
    # Step i trained batch i (no accumulation); intervals past the warm-up form the steady window.
    steady = range(WARMUP_STEPS + 1, len(step_ends))
    seconds = sum(step_ends[i] - step_ends[i - 1] for i in steady)
    tokens = sum(batch_tokens[i] for i in steady)
    return {
        "run": "seed-sft-packed",
        "status": "ok",
        "quantization": quantization,
        "steps": len(step_ends),
        "load_seconds": load_seconds,
        "train_wall_seconds": wall,
        "first_step_seconds": step_ends[0] - train_started if step_ends else None,
        "real_tokens_per_s": tokens / seconds,
        "steady_steps": len(steady),
        "median_step_seconds": statistics.median(step_ends[i] - step_ends[i - 1] for i in steady),
        "packs": len(pack_lengths),
        "pack_fill": sum(pack_lengths) / (len(pack_lengths) * SEQUENCE),
        "padding_fraction": 0.0,
        "peak_vram_allocated_gib": torch.cuda.max_memory_allocated() / 2**30 if CUDA else None,
        "peak_vram_reserved_gib": torch.cuda.max_memory_reserved() / 2**30 if CUDA else None,
        "packed_attention_check": attention,
        "trl_packing": {"packing": config.packing, "packing_strategy": config.packing_strategy, "padding_free": config.padding_free},
    }


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": sys.version.split()[0]}
    for name in ("torch", "transformers", "peft", "trl", "datasets", "unsloth", "unsloth_zoo", "bitsandbytes", "temporalio", "triton"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    if CUDA:
        found["gpu"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokenizer", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quantization", choices=["4bit", "none"], required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/tuneflow-real-data"))
    parser.add_argument("--budget-seconds", type=float, default=330, help="tuneflow runs that cannot start within this many seconds are skipped")
    parser.add_argument("--skip-seed", action="store_true")
    parser.add_argument("--runs", help="comma-separated tuneflow runs to make (default: all)")
    parser.add_argument("--label", help="names the output files (default: the quantization)")
    parser.add_argument("--phase", choices=["tuneflow", "seed"])
    arguments = parser.parse_args()
    work = arguments.work / arguments.quantization
    built_path = work / "built.json"
    if arguments.phase:
        built = json.loads(built_path.read_text())
        selected = set(arguments.runs.split(",")) if arguments.runs else None
        result = (
            run_tuneflow(work, built, arguments.quantization, arguments.budget_seconds, selected)
            if arguments.phase == "tuneflow"
            else run_seed(work, built, arguments.quantization)
        )
        # Also under --out at once: a device call cut short still brings back the phases that finished.
        arguments.out.mkdir(parents=True, exist_ok=True)
        (arguments.out / f"{arguments.label or arguments.quantization}-{arguments.phase}.json").write_text(json.dumps(result, indent=2))
        return (work / f"{arguments.phase}.json").write_text(json.dumps(result, indent=2))

    import shutil

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.monotonic()
    built = build(work, arguments.tokenizer)
    built_path.write_text(json.dumps(built))
    lengths = built["lengths"]
    print("lengths", json.dumps(lengths), flush=True)
    me = [
        sys.executable,
        __file__,
        "--tokenizer",
        str(arguments.tokenizer),
        "--out",
        str(arguments.out),
        "--quantization",
        arguments.quantization,
        "--work",
        str(arguments.work),
        "--budget-seconds",
        str(arguments.budget_seconds),
        *(["--runs", arguments.runs] if arguments.runs else []),
        *(["--label", arguments.label] if arguments.label else []),
    ]
    phases = {}
    for phase in ["tuneflow"] + ([] if arguments.skip_seed else ["seed"]):
        phase_started = time.monotonic()
        completed = subprocess.run([*me, "--phase", phase])
        output = work / f"{phase}.json"
        phases[phase] = {
            "rc": completed.returncode,
            "seconds": time.monotonic() - phase_started,
            "result": json.loads(output.read_text()) if output.exists() else None,
        }
    # The planner's predictions for these runs (plan_real_data.ts): {run: {full_length_tokens_per_s, run_time, ...}}.
    plan = json.loads((REPOSITORY / "bench/gpu/results/real-data-plans.json").read_text())["plans"][arguments.quantization]
    tuneflow = {record["run"]: record for record in phases["tuneflow"]["result"] or []}
    for record in tuneflow.values():
        if "real_tokens" in record:
            # The planner's ETA for this run's tokens (dataset_tokens / tokens_per_s), against its measured wall time.
            record["planner_tokens_per_s"] = plan[record["run"]]["full_length_tokens_per_s"]
            record["planner_eta_seconds"] = record["real_tokens"] / record["planner_tokens_per_s"]
            record["planner_eta_error"] = abs(record["planner_eta_seconds"] / record["wall_seconds"] - 1)
            record["reported_tokens_per_s_error"] = (
                abs(record["reported_tokens_per_s_final"] / record["real_tokens_per_s"] - 1) if record["reported_tokens_per_s_final"] else None
            )
            if record["checkpoint_seconds"]:
                checkpoint = max(0.0, statistics.median(record["checkpoint_seconds"]))
                record["checkpoint_overhead_fraction_default_policy"] = checkpoint / (DEFAULT_CHECKPOINT_EVERY * record["median_step_seconds"] + checkpoint)
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        # The device gets a copy of the working tree without .git: the command passes the commit it ran at.
        "commit": os.environ.get("TUNEFLOW_COMMIT")
        or subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPOSITORY, capture_output=True, text=True).stdout.strip(),
        "versions": versions(),
        "device": "cuda" if CUDA else "cpu (dry run)",
        "configuration": {
            "shape": SHAPE,
            "sequence_length": SEQUENCE,
            "micro_batch_size": MICRO_BATCH,
            "lora_rank": 64,
            "quantization": arguments.quantization,
            "checkpoint_every_steps": planned(arguments.quantization, "real-packed")["spec"]["checkpoint"]["every_steps"],
            "warmup_steps_excluded": WARMUP_STEPS,
        },
        "data": {
            "real": {"rows": REAL_ROWS, "generator": f"log-normal lengths, median {REAL_MEDIAN}, sigma {REAL_SIGMA}, clipped to [16, 3000], 20-50 % prompt"},
            "lengths": lengths,
        },
        "plan": plan,
        "phases": phases,
        "total_seconds": time.monotonic() - started,
    }
    arguments.out.mkdir(parents=True, exist_ok=True)
    (arguments.out / f"real-data-{arguments.label or arguments.quantization}.json").write_text(json.dumps(report, indent=2))
    rows = [record for record in tuneflow.values() if "real_tokens" in record] + ([phases["seed"]["result"]] if phases.get("seed", {}).get("result") else [])
    print("| run | status | real tokens/s | padding | peak GiB | median step s | checkpoint write s | planner ETA error |")
    for record in rows:
        print(
            f"| {record['run']} | {record['status']} | {record.get('real_tokens_per_s', 0):.0f} | {record.get('padding_fraction', 0):.1%} | "
            f"{record.get('peak_vram_allocated_gib')} | {record.get('median_step_seconds', 0):.3f} | {record.get('checkpoint_write_seconds')} | "
            f"{record.get('planner_eta_error')} |"
        )


if __name__ == "__main__":
    main()
