"""CPU calibration for tuneflow's planner.

Builds randomly initialised Llama-shaped models (no download: the weights do not matter for speed or memory),
loads them through tuneflow's own loader (tuneflow_activities.loaders: PEFT LoRA on every linear layer, fp32 on the
CPU), trains a few steps with the product's optimizer and training step (tuneflow_activities.training) and records
tokens/s and peak resident memory for each setting: what is measured is what ships. The planner's CPU throughput efficiency and CPU memory terms are fitted
to these numbers, and test/planner/calibration.test.ts checks the planner against them.

Each setting runs in its own child process: peak RSS (VmHWM) only ever grows within a process, and the allocator
keeps freed memory, so sharing one process would make every setting after the first report the largest so far.

Each setting's spec and training setup come from bench/cpu/inputs/calibration-requests.json, which
bench/cpu/calibration_requests.ts writes with the product's own code (spec schema defaults, resolveTrainingSetup on a
CPU worker); they are parsed here into the worker's typed payloads, as a train request is.

Usage (about 5 minutes):
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 ~/.cache/tuneflow/python-*/bin/python bench/cpu/calibrate.py
CPU dry run (`npm run bench:dry-run`: the tiny setting, one measured step, written under --out, not the results):
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONPATH=python-activities python bench/cpu/calibrate.py --dry-run --out /tmp/out
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python-activities"))

RESULTS_PATH = Path(__file__).parent / "results" / "cpu-calibration.json"
REQUESTS = json.loads((Path(__file__).parent / "inputs" / "calibration-requests.json").read_text())

# Llama-shaped models. smollm2-135m is SmolLM2-135M's published config.json; tiny-random-llama is tuneflow's test
# model; the middle shape fills the gap so the fit sees three very different ratios of vocabulary to body.
SHAPES = {
    "tiny-random-llama": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=49152,
        tie_word_embeddings=True,
    ),
    "llama-mini-256": dict(
        hidden_size=256,
        intermediate_size=768,
        num_hidden_layers=8,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=49152,
        tie_word_embeddings=True,
    ),
    "smollm2-135m": dict(
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        vocab_size=49152,
        tie_word_embeddings=True,
    ),
}

WARMUP_STEPS = 1
MINIMUM_MEASURED_STEPS = 3
MAXIMUM_MEASURED_STEPS = 6
MINIMUM_MEASURED_SECONDS = 4.0
# The machine that recorded the committed numbers was shared with other busy processes: wall-clock steps varied
# four-fold. Torch therefore runs one thread and each step is timed in process CPU seconds, which other processes
# do not inflate (with several threads they do, through OpenMP's spin-waiting). The result is throughput per core;
# the planner multiplies by the core count and a parallel efficiency.
TORCH_THREADS = 1
# glibc's malloc serves allocations below its (growing, up to 32 MiB) mmap threshold from heaps it never returns,
# so activations freed in one step stay resident and peak RSS ratchets up step after step (SmolLM2-135M shape,
# micro-batch 4 × 256, checkpointed: 4.06 GiB after five steps, still growing, against 2.04 GiB live). A fixed
# 64 KiB threshold maps every tensor separately and unmaps it when freed, so RSS follows what is actually alive.
# tuneflow's CPU worker should run with the same setting; the planner models live memory.
CHILD_ENVIRONMENT = {"MALLOC_MMAP_THRESHOLD_": "65536"}


def _word_tokenizer(vocabulary_size: int):
    """A word-level tokenizer of the right vocabulary size: the loader loads one beside the weights; its words are never used."""
    from tokenizers import Tokenizer, models

    return Tokenizer(models.WordLevel({f"w{index}": index for index in range(vocabulary_size)}, unk_token="w0"))


def _save_random_model(config, directory: Path) -> None:
    import torch
    import transformers

    transformers.LlamaForCausalLM(config).to(torch.float32).save_pretrained(directory)
    transformers.PreTrainedTokenizerFast(tokenizer_object=_word_tokenizer(config.vocab_size)).save_pretrained(directory)


def resident_memory_bytes() -> tuple[int, int]:
    """(current RSS, peak RSS) of this process from /proc, in bytes."""
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) * 1024
    return fields["VmRSS"], fields["VmHWM"]


def measure_one(entry: dict, measured_steps: tuple[int, int] = (MINIMUM_MEASURED_STEPS, MAXIMUM_MEASURED_STEPS)) -> dict:
    import tempfile

    import torch
    import transformers
    from transformers import get_scheduler

    from tuneflow_activities.loaders import load_for_training
    from tuneflow_activities.objectives import objective_for
    from tuneflow_activities.payloads import Spec, TrainingSetup, parse
    from tuneflow_activities.training import apply_gradients, autocast_for, build_optimizer, forward_backward

    shape_name, sequence_length = entry["shape"], entry["sequence_length"]
    spec, setup = parse(Spec, entry["spec"]), parse(TrainingSetup, entry["setup"])
    micro_batch_size, gradient_checkpointing = setup.micro_batch_size, setup.gradient_checkpointing
    minimum_steps, maximum_steps = measured_steps

    torch.manual_seed(0)
    torch.set_num_threads(TORCH_THREADS)
    rss_after_import, _ = resident_memory_bytes()

    config = transformers.LlamaConfig(**SHAPES[shape_name], max_position_embeddings=4096)
    # The product's loader reads a model directory: the random model is saved (and freed) first, then loaded as
    # training loads it.
    with tempfile.TemporaryDirectory(prefix="tuneflow-calibrate-") as directory:
        _save_random_model(config, Path(directory))
        model = load_for_training(Path(directory), spec, setup).model
    model.train()
    total_parameters = sum(p.numel() for p in model.parameters())
    trainable = [p for p in model.parameters() if p.requires_grad]
    trainable_parameters = sum(p.numel() for p in trainable)
    optimizer = build_optimizer(setup.optimizer, trainable, spec.train)
    scheduler = get_scheduler(spec.train.lr_scheduler, optimizer)
    autocast = autocast_for(setup)
    objective = objective_for(spec, setup, pad_token_id=0)
    rss_after_model, _ = resident_memory_bytes()

    input_ids = torch.randint(0, config.vocab_size, (micro_batch_size, sequence_length))
    batch = {"input_ids": input_ids, "labels": input_ids, "attention_mask": torch.ones_like(input_ids)}
    trained_tokens = micro_batch_size * (sequence_length - 1)

    def step() -> float:
        loss = forward_backward(objective, model, batch, trained_tokens, autocast)
        apply_gradients(optimizer, scheduler, trainable, spec.train.max_grad_norm)
        return loss

    for _ in range(WARMUP_STEPS):
        step()
    load_average_before = os.getloadavg()[0]
    wall_seconds: list[float] = []
    cpu_seconds: list[float] = []
    while len(cpu_seconds) < maximum_steps and (len(cpu_seconds) < minimum_steps or sum(cpu_seconds) < MINIMUM_MEASURED_SECONDS):
        wall_started, cpu_started = time.perf_counter(), time.process_time()
        step()
        wall_seconds.append(time.perf_counter() - wall_started)
        cpu_seconds.append(time.process_time() - cpu_started)
    _, peak_rss = resident_memory_bytes()

    tokens_per_step = micro_batch_size * sequence_length
    median_cpu_seconds = sorted(cpu_seconds)[len(cpu_seconds) // 2]
    return {
        "shape": shape_name,
        "architecture": {
            "num_layers": config.num_hidden_layers,
            "hidden_size": config.hidden_size,
            "intermediate_size": config.intermediate_size,
            "num_attention_heads": config.num_attention_heads,
            "num_key_value_heads": config.num_key_value_heads,
            "head_dim": config.hidden_size // config.num_attention_heads,
            "vocab_size": config.vocab_size,
            "tie_word_embeddings": config.tie_word_embeddings,
        },
        "backend": "hf-peft",
        "quantization": "none",
        "dtype": "float32",
        "attention_implementation": model.config._attn_implementation,
        "lora_rank": spec.lora.r,
        "target_modules": spec.lora.target_modules,
        "optimizer": "adamw_torch",
        "micro_batch_size": micro_batch_size,
        "sequence_length": sequence_length,
        "gradient_checkpointing": gradient_checkpointing,
        "total_parameters": total_parameters,
        "trainable_parameters": trainable_parameters,
        "torch_threads": torch.get_num_threads(),
        "step_cpu_seconds": cpu_seconds,
        "step_wall_seconds": wall_seconds,
        "tokens_per_s": tokens_per_step / median_cpu_seconds,
        "wall_tokens_per_s": tokens_per_step / min(wall_seconds),
        "load_average_before": load_average_before,
        "rss_after_import_bytes": rss_after_import,
        "rss_after_model_bytes": rss_after_model,
        "peak_rss_bytes": peak_rss,
        "peak_rss_gib": peak_rss / 2**30,
        "peak_rss_growth_gib": (peak_rss - rss_after_import) / 2**30,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", type=int, help="(internal) measure setting N (-1: the dry run's) and print it as JSON")
    parser.add_argument("--dry-run", action="store_true", help="the tiny dry-run setting, one measured step, written under --out")
    parser.add_argument("--out", type=Path, help="directory for cpu-calibration.json (default: the committed results)")
    arguments = parser.parse_args()
    if arguments.child is not None:
        dry_run = arguments.child == -1
        result = measure_one(REQUESTS["dry_run"], measured_steps=(1, 1)) if dry_run else measure_one(REQUESTS["settings"][arguments.child])
        print(json.dumps(result))
        return

    # Versions from the installed metadata: the parent imports no torch (each setting runs in its own child).
    from importlib.metadata import version

    started = time.perf_counter()
    measurements = []
    for index in [-1] if arguments.dry_run else range(len(REQUESTS["settings"])):
        child = subprocess.run(
            [sys.executable, __file__, "--child", str(index)],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, **CHILD_ENVIRONMENT},
        )
        measurement = json.loads(child.stdout.strip().splitlines()[-1])
        shape_name, micro_batch_size, sequence_length = measurement["shape"], measurement["micro_batch_size"], measurement["sequence_length"]
        gradient_checkpointing = measurement["gradient_checkpointing"]
        print(
            f"{shape_name:18} b={micro_batch_size} s={sequence_length} ckpt={int(gradient_checkpointing)}: "
            f"{measurement['tokens_per_s']:8.1f} tokens per CPU second (wall {measurement['wall_tokens_per_s']:.1f}/s, load {measurement['load_average_before']:.1f}), peak RSS {measurement['peak_rss_gib']:.3f} GiB "
            f"(+{measurement['peak_rss_growth_gib']:.3f} over imports)",
            flush=True,
        )
        measurements.append(measurement)

    results_path = RESULTS_PATH if arguments.out is None else arguments.out / RESULTS_PATH.name
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(
        json.dumps(
            {
                "kind": "cpu-calibration",
                "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "command": "HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 ~/.cache/tuneflow/python-*/bin/python bench/cpu/calibrate.py"
                + (" --dry-run" if arguments.dry_run else ""),
                "versions": {
                    "python": platform.python_version(),
                    "torch": version("torch"),
                    "transformers": version("transformers"),
                    "peft": version("peft"),
                },
                "nproc": os.cpu_count(),
                "torch_threads": TORCH_THREADS,
                "environment": CHILD_ENVIRONMENT,
                "tokens_per_s_unit": "tokens per CPU-second of one torch thread (median step)",
                "cpu_model": next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), platform.processor()),
                "system_memory_gib": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
                "wall_seconds": time.perf_counter() - started,
                "measurements": measurements,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {results_path}")


if __name__ == "__main__":
    main()
