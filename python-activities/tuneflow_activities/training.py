"""The training loop: setup → train → save_checkpoint → cleanup, one loop for both model loaders.

Resume is one switch: if the run's checkpoint directory holds a verified checkpoint, the adapter, optimizer,
LR scheduler and RNG states are restored from the newest one and training continues at its step, on exactly
the rows that step would have seen (data order is a pure function of seed and epoch; see data.Schedule).
Temporal is kept out of this module: progress goes to a `report` callback and a `should_stop` callback asks
whether to checkpoint and stop, so the loop runs the same under a worker, a test or the device benchmark.
"""

import contextlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .artifacts import atomic_directory, path_to_uri, uri_to_path
from .checkpoint import (
    Checkpoint,
    capture_rng_state,
    checkpoint_name,
    load_training_state,
    prune_checkpoints,
    restore_rng_state,
    scan_checkpoints,
    write_checkpoint,
)
from .data import Schedule, bucketed_width, collate, read_prepared_rows, tokenize_rows
from .evaluation import validation_loss
from .loaders import choose_optimizer, load_for_training

logger = logging.getLogger(__name__)

# Test hook: pretend CUDA runs out of memory whenever the micro-batch exceeds this size, so that the workflow's
# out-of-memory recovery can be exercised on a CPU. Unset (the default) in every real deployment.
INJECT_OUT_OF_MEMORY_ABOVE_MICRO_BATCH = "TUNEFLOW_TEST_OUT_OF_MEMORY_ABOVE_MICRO_BATCH"


class StopRequested(Exception):
    """Raised after the loop checkpointed because `should_stop` said so (pause, cancel)."""

    def __init__(self, checkpoint: Checkpoint):
        super().__init__(f"stopped at step {checkpoint.step}")
        self.checkpoint = checkpoint


@dataclass
class RunDirectories:
    root: Path

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def adapter(self) -> Path:
        return self.root / "adapter"

    @property
    def train_log(self) -> Path:
        return self.root / "train_log.jsonl"


def fingerprint(request: dict) -> dict:
    """What a checkpoint must agree with to be resumed: changing any of these changes what is being trained."""
    spec = request["spec"]
    # A worker on object storage reads its own cached copy of the data: the run is about the URI in the store.
    stored = request.get("stored_uris", {})
    return {
        "model": request["model_uri"],
        "train_data": stored.get("train_uri", request["train_uri"]),
        "lora_r": spec["lora"]["r"],
        "lora_alpha": spec["lora"]["alpha"],
        "lora_target_modules": spec["lora"]["target_modules"],
        "use_rslora": spec["lora"]["use_rslora"],
        "rows_per_step": spec["train"]["micro_batch_size"] * spec["train"]["gradient_accumulation_steps"],
        "seed": spec["train"]["seed"],
        "max_seq_length": spec["model"]["max_seq_length"],
        "loss_on": spec["train"]["loss_on"],
    }


def build_optimizer(name: str, parameters, spec: dict):
    import torch

    arguments = {"lr": spec["train"]["learning_rate"], "weight_decay": spec["train"]["weight_decay"]}
    if name == "adamw_torch":
        return torch.optim.AdamW(parameters, **arguments)
    import bitsandbytes

    optimizer_class = bitsandbytes.optim.PagedAdamW8bit if name == "paged_adamw_8bit" else bitsandbytes.optim.AdamW8bit
    return optimizer_class(parameters, **arguments)


@dataclass
class Progress:
    step: int
    total_steps: int
    epoch: int
    loss: float | None
    tokens_per_second: float
    last_checkpoint: dict | None
    resumed_from_step: int
    steps_redone: int
    val_loss: float | None = None
    best: dict | None = None
    # (step, loss) pairs since the last checkpoint: the workflow keeps a downsampled history from them.
    recent_losses: list = field(default_factory=list)

    def as_heartbeat(self) -> dict:
        return {
            "step": self.step,
            "total_steps": self.total_steps,
            "epoch": self.epoch,
            "loss": self.loss,
            "val_loss": self.val_loss,
            "tokens_per_second": self.tokens_per_second,
            "last_checkpoint": self.last_checkpoint,
            "resumed_from_step": self.resumed_from_step,
            "steps_redone": self.steps_redone,
        }

    def as_message(self, event: str, attempt: int) -> dict:
        """What the workflow hears at a checkpoint or a resume: few events, so no history growth per step."""
        return {**self.as_heartbeat(), "event": event, "attempt": attempt, "best": self.best, "losses": self.recent_losses}


def append_log(path: Path, record: dict) -> None:
    # One line per step, flushed: the log is the record of which steps were trained by which attempt.
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def steps_redone_so_far(log_path: Path) -> int:
    """Steps trained more than once across all attempts: records minus distinct steps (a torn last line is skipped)."""
    if not log_path.exists():
        return 0
    steps = []
    for line in log_path.read_text(encoding="utf-8").splitlines():
        try:
            steps.append(json.loads(line)["step"])
        except (ValueError, KeyError):
            continue
    return len(steps) - len(set(steps))


@dataclass
class ValidationState:
    """Best validation loss so far and the patience counter: saved in every checkpoint, so early stopping and
    best-checkpoint retention survive a resume."""

    best_val_loss: float | None = None
    best_step: int | None = None
    evaluations_without_improvement: int = 0

    def record(self, step: int, val_loss: float, min_delta: float) -> None:
        if self.best_val_loss is None or val_loss < self.best_val_loss - min_delta:
            self.best_val_loss, self.best_step, self.evaluations_without_improvement = val_loss, step, 0
        else:
            self.evaluations_without_improvement += 1

    def as_dict(self) -> dict:
        return {"val_loss": self.best_val_loss, "step": self.best_step} if self.best_step is not None else None


def train(
    request: dict,
    report: Callable[[Progress], None] = lambda progress: None,
    should_stop: Callable[[], bool] = lambda: False,
    checkpoint_requested: Callable[[], bool] = lambda: False,
    progressed: Callable[[dict], None] = lambda message: None,
) -> dict:
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file
    from transformers import get_scheduler, set_seed

    spec = request["spec"]
    train_spec, checkpoint_spec, validation_spec = spec["train"], spec["checkpoint"], spec["validation"]
    directories = RunDirectories(uri_to_path(request["run_uri"]))
    directories.checkpoints.mkdir(parents=True, exist_ok=True)
    attempt = request.get("attempt", 1)

    # --- setup ---------------------------------------------------------------------------------------------
    set_seed(train_spec["seed"])
    loaded_at = time.monotonic()
    loaded = load_for_training(uri_to_path(request["model_uri"]), spec)
    model, tokenizer, device = loaded.model, loaded.tokenizer, loaded.device
    model_load_seconds = time.monotonic() - loaded_at
    max_seq_length = spec["model"]["max_seq_length"]

    def tokenized(uri: str, overlong: str):
        return tokenize_rows(read_prepared_rows(uri_to_path(uri)), tokenizer, max_seq_length, train_spec["loss_on"], overlong)

    rows = tokenized(request["train_uri"], spec["dataset"]["overlong"])
    validation_rows = tokenized(request["val_uri"], "truncate")[: validation_spec.get("max_rows") or None] if request.get("val_uri") else []
    schedule = Schedule(
        row_count=len(rows),
        micro_batch_size=train_spec["micro_batch_size"],
        accumulation_steps=train_spec["gradient_accumulation_steps"],
        seed=train_spec["seed"],
        epochs=train_spec["epochs"],
        max_steps=train_spec.get("max_steps"),
    )
    total_steps = schedule.total_steps
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer_name = choose_optimizer(spec, device)
    optimizer = build_optimizer(optimizer_name, trainable, spec)
    scheduler = get_scheduler(train_spec["lr_scheduler"], optimizer, num_warmup_steps=train_spec["warmup_steps"], num_training_steps=total_steps)
    run_fingerprint = fingerprint(request)
    validation = ValidationState()
    # bf16 autocast on a GPU (the LoRA weights stay fp32); on a CPU everything is fp32 and exact.
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device == "cuda" else contextlib.nullcontext
    pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    scan = scan_checkpoints(directories.checkpoints)
    if scan.corrupt:
        logger.warning("skipping %d checkpoints that fail verification: %s", len(scan.corrupt), scan.corrupt)
    start_step = 0
    last_checkpoint: Checkpoint | None = None
    if scan.valid:
        last_checkpoint = scan.valid[-1]
        state = load_training_state(last_checkpoint, run_fingerprint)
        set_peft_model_state_dict(model, load_file(last_checkpoint.directory / "adapter" / "adapter_model.safetensors"))
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        restore_rng_state(state["rng"])
        validation = ValidationState(**state["validation"])
        start_step = last_checkpoint.step
        logger.info("resuming at step %d from %s", start_step, last_checkpoint.directory)

    def validate(step: int) -> float | None:
        if not validation_rows:
            return None
        model.eval()
        with autocast():
            val_loss = validation_loss(model, validation_rows, pad_token_id, device)
        model.train()
        validation.record(step, val_loss, validation_spec["early_stopping_min_delta"])
        return val_loss

    def save(step: int) -> Checkpoint:
        checkpoint = write_checkpoint(
            directories.checkpoints,
            step,
            model,
            {
                "step": step,
                "epoch": schedule.epoch_of_step(step),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": capture_rng_state(),
                "fingerprint": run_fingerprint,
                "optimizer_name": optimizer_name,
                "validation": validation.__dict__.copy(),
            },
            {"train_loss": progress.loss, "val_loss": progress.val_loss, "total_steps": total_steps, "written_at": time.time()},
        )
        keep = {validation.best_step} if checkpoint_spec["keep_best"] and validation.best_step is not None else set()
        prune_checkpoints(directories.checkpoints, checkpoint_spec["keep_last"], keep)
        progress.last_checkpoint = {"step": step, "uri": checkpoint.uri}
        progress.best = validation.as_dict()
        progressed(progress.as_message("checkpoint", attempt))
        progress.recent_losses = []
        return checkpoint

    progress = Progress(
        step=start_step,
        total_steps=total_steps,
        epoch=schedule.epoch_of_step(start_step),
        loss=last_checkpoint.manifest.get("train_loss") if last_checkpoint else None,
        tokens_per_second=0.0,
        last_checkpoint={"step": last_checkpoint.step, "uri": last_checkpoint.uri} if last_checkpoint else None,
        resumed_from_step=start_step,
        steps_redone=steps_redone_so_far(directories.train_log),
        val_loss=last_checkpoint.val_loss if last_checkpoint else None,
        best=validation.as_dict(),
    )
    report(progress)
    if start_step > 0:
        progressed(progress.as_message("resumed", attempt))

    # --- train ---------------------------------------------------------------------------------------------
    injected_limit = int(os.environ.get(INJECT_OUT_OF_MEMORY_ABOVE_MICRO_BATCH, "-1"))
    if injected_limit >= 0 and train_spec["micro_batch_size"] > injected_limit:
        raise torch.OutOfMemoryError(f"injected: micro_batch_size {train_spec['micro_batch_size']} > {injected_limit}")
    model.train()
    first_step_at = None
    tokens_since_start = 0
    started_at = time.monotonic()
    last_checkpoint_at = started_at
    stopped_early = False
    for step in range(start_step, total_steps):
        if should_stop():
            if last_checkpoint is None or last_checkpoint.step < step:
                last_checkpoint = save(step)
            raise StopRequested(last_checkpoint)
        micro_batches = [[rows[index] for index in indices] for indices in schedule.micro_batches_for_step(step)]
        # The loss is averaged over every trained token of the whole step, not per micro-batch: gradient
        # accumulation then equals one big batch exactly.
        step_tokens = sum(row.trainable_tokens for batch in micro_batches for row in batch)
        step_loss = 0.0
        for batch_rows in micro_batches:
            width = bucketed_width(max(len(row.input_ids) for row in batch_rows), max_seq_length) if loaded.pads_to_fixed_shapes else None
            batch = {key: value.to(device) for key, value in collate(batch_rows, pad_token_id, width).items()}
            with autocast():
                outputs = model(**batch, num_items_in_batch=step_tokens)
            outputs.loss.backward()
            step_loss += outputs.loss.item()
            tokens_since_start += int(batch["attention_mask"].sum())
        torch.nn.utils.clip_grad_norm_(trainable, train_spec["max_grad_norm"])
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        completed = step + 1
        first_step_at = first_step_at or time.monotonic()
        elapsed = time.monotonic() - started_at
        progress.step, progress.epoch, progress.loss = completed, schedule.epoch_of_step(step), step_loss
        progress.tokens_per_second = tokens_since_start / elapsed if elapsed > 0 else 0.0
        progress.recent_losses.append([completed, step_loss])
        append_log(
            directories.train_log,
            {"attempt": attempt, "step": completed, "loss": step_loss, "learning_rate": scheduler.get_last_lr()[0], "time": time.time()},
        )

        # --- checkpoint policy: every N steps, every M minutes, on request, at the end; validation with each ---
        every_minutes = checkpoint_spec.get("every_minutes")
        checkpoint_due = (
            completed % checkpoint_spec["every_steps"] == 0
            or completed == total_steps
            or (every_minutes is not None and time.monotonic() - last_checkpoint_at >= every_minutes * 60)
            or checkpoint_requested()
        )
        validation_due = validation_spec["every_steps"] is not None and completed % validation_spec["every_steps"] == 0
        if checkpoint_due or validation_due:
            progress.val_loss = validate(completed)
        patience = validation_spec["early_stopping_patience"]
        stopped_early = patience is not None and validation.evaluations_without_improvement >= patience
        if checkpoint_due or stopped_early:
            last_checkpoint = save(completed)
            last_checkpoint_at = time.monotonic()
        report(progress)
        if stopped_early:
            logger.info("early stopping at step %d: no improvement in %d evaluations", completed, patience)
            break

    # --- save the final adapter and clean up ----------------------------------------------------------------
    with atomic_directory(directories.adapter, replace=True) as building:
        if stopped_early:
            # Patience ran out because the later evaluations were worse: the adapter to keep is the best one.
            best_adapter = directories.checkpoints / checkpoint_name(validation.best_step) / "adapter"
            for path in best_adapter.iterdir():
                shutil.copy2(path, building / path.name)
        else:
            model.save_pretrained(building, safe_serialization=True)
        tokenizer.save_pretrained(building)
    result = {
        "adapter_uri": path_to_uri(directories.adapter),
        "final_step": progress.step,
        "total_steps": total_steps,
        "stopped_early": stopped_early,
        "train_loss": progress.loss,
        "val_loss": progress.val_loss,
        "best": validation.as_dict(),
        "resumed_from_step": start_step,
        "steps_trained": progress.step - start_step,
        "steps_redone": progress.steps_redone,
        "corrupt_checkpoints_skipped": len(scan.corrupt),
        "last_checkpoint_uri": last_checkpoint.uri if last_checkpoint else None,
        "backend": loaded.backend,
        "device": device,
        "dtype": loaded.dtype,
        "optimizer": optimizer_name,
        "gradient_checkpointing": loaded.gradient_checkpointing,
        "train_rows": len(rows),
        "tokens_per_second": progress.tokens_per_second,
        "model_load_seconds": model_load_seconds,
        "seconds_to_first_step": (first_step_at - loaded_at) if first_step_at else None,
    }
    del model, optimizer
    if device == "cuda":
        torch.cuda.empty_cache()
    return result
