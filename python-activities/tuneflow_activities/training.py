"""The training engine: setup → resume → train (step, save_checkpoint) → finish, one loop for every objective and
both model loaders. What is optimised is the objective's (objectives/: sft, dpo, chosen by `train.objective.kind`);
the engine knows no loss, only that a step's loss is averaged over the step's units.

Resume is one switch: if the run's checkpoint directory holds a verified checkpoint, the adapter, optimizer,
LR scheduler, RNG states and validation record are restored from the newest one and training continues at its step,
on exactly the rows that step would have seen (data order is a pure function of seed and epoch; see data.Schedule).
Temporal is kept out of this module: progress goes to callbacks (`Callbacks`), so the engine runs the same under a
worker, a test or the device benchmark. The request is parsed into a TrainRequest once, by `train`.
"""

import contextlib
import copy
import json
import logging
import os
import shutil
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import fault_injection, sharding
from .artifacts import RunLayout, atomic_directory, path_to_uri, uri_to_path
from .checkpoint import (
    ADAPTER,
    ADAPTER_WEIGHTS,
    Checkpoint,
    CheckpointWriter,
    HostStaging,
    capture_rng_state,
    load_training_state,
    restore_rng_state,
    scan_checkpoints,
    take_snapshot,
)
from .data import Schedule, read_tokenized_split
from .distributed import World, launch
from .loaders import load_for_training
from .objectives import Objective, objective_for
from .objectives.objective import MicroBatchLoss, evaluation_batch_count
from .payloads import TrainingSetup, TrainRequest, TrainSpec, parse
from .rollback import RollbackRecord, Rollbacks, Verdict, observed

if TYPE_CHECKING:
    from torch.optim import Optimizer
    from torch.optim.lr_scheduler import LRScheduler

logger = logging.getLogger(__name__)


class StopRequested(Exception):
    """Raised after the loop checkpointed because `should_stop` said so (pause, cancel): where it stopped."""

    def __init__(self, step: int, uri: str):
        super().__init__(f"stopped at step {step}")
        self.step, self.uri = step, uri


def fingerprint(request: TrainRequest, objective: Objective) -> dict:
    """What a checkpoint must agree with to be resumed: changing any of these changes what is being trained."""
    spec, setup = request.spec, request.setup
    # A worker on object storage reads its own cached copy of the data: the run is about the URI in the store.
    stored = request.stored_uris
    # Packing changes every step's rows, and more processes mean more rows per step (each runs the whole
    # accumulation): recorded only when on, so the checkpoints of earlier versions resume. A checkpoint of another
    # process count is refused by name: the steps would no longer be the same steps.
    distributed = {"processes": setup.processes, "parallelism": setup.parallelism} if setup.processes > 1 else {}
    # The objective's own terms (none for sft, so the checkpoints of earlier versions resume).
    return (
        ({"packing": True} if setup.packing else {})
        | distributed
        | objective.fingerprint()
        | {
            "model": request.model_uri,
            "train_data": stored.get("train_tokens_uri", request.train_tokens_uri),
            "lora_r": spec.lora.r,
            "lora_alpha": spec.lora.alpha,
            "lora_target_modules": spec.lora.target_modules,
            "use_rslora": spec.lora.use_rslora,
            "rows_per_step": setup.micro_batch_size * setup.gradient_accumulation_steps * setup.processes,
            "seed": spec.train.seed,
            "max_seq_length": spec.model.max_seq_length,
            "loss_on": spec.train.loss_on,
        }
    )


def build_optimizer(name: str, parameters, train_spec: TrainSpec):
    import torch

    if name == "adamw_torch":
        return torch.optim.AdamW(parameters, lr=train_spec.learning_rate, weight_decay=train_spec.weight_decay)
    import bitsandbytes  # pyright: ignore[reportMissingImports]  (a GPU-only package, absent from CPU environments)

    optimizer_class = bitsandbytes.optim.PagedAdamW8bit if name == "paged_adamw_8bit" else bitsandbytes.optim.AdamW8bit
    return optimizer_class(parameters, lr=train_spec.learning_rate, weight_decay=train_spec.weight_decay)


class Throughput:
    """Steady-state speed of this attempt: tokens per second over a moving window of recent steps, leaving out the
    first WARMUP_STEPS (torch.compile and Unsloth compile per shape, allocator warm-up: 40-50 s for one step on an 8B
    model, which an average since the start would spread over the whole run). Real tokens are the rows' own; padded
    tokens are what the model computed on, padding included."""

    WARMUP_STEPS = 2
    WINDOW_STEPS = 20

    def __init__(self):
        self._steps_seen = 0
        # (time the step ended, real tokens, padded tokens), the oldest entry only marks the window's start.
        self._window: deque[tuple[float, int, int]] = deque(maxlen=self.WINDOW_STEPS + 1)

    def record(self, real_tokens: int, padded_tokens: int) -> None:
        self._steps_seen += 1
        if self._steps_seen >= self.WARMUP_STEPS:
            self._window.append((time.monotonic(), real_tokens, padded_tokens))

    @property
    def steady(self) -> bool:
        return len(self._window) >= 2

    def _rate(self, index: int) -> float | None:
        if not self.steady:
            return None
        seconds = self._window[-1][0] - self._window[0][0]
        return sum(entry[index] for entry in list(self._window)[1:]) / seconds if seconds > 0 else None

    @property
    def real_tokens_per_second(self) -> float | None:
        return self._rate(1)

    @property
    def padded_tokens_per_second(self) -> float | None:
        return self._rate(2)

    def eta_seconds(self, remaining_steps: int) -> float | None:
        """Remaining steps at the window's seconds per step (checkpoints and validation in the window included)."""
        if not self.steady:
            return None
        return remaining_steps * (self._window[-1][0] - self._window[0][0]) / (len(self._window) - 1)


@dataclass
class Progress:
    step: int
    total_steps: int
    epoch: int
    loss: float | None
    last_checkpoint: dict | None
    resumed_from_step: int
    steps_redone: int
    val_loss: float | None = None
    best: dict | None = None
    throughput: Throughput = field(default_factory=Throughput)
    # (step, loss) pairs since the last checkpoint: the workflow keeps a downsampled history from them.
    recent_losses: list = field(default_factory=list)
    # Every rollback of the run so far (rollback.py), in the order they happened.
    rollbacks: list[RollbackRecord] = field(default_factory=list[RollbackRecord])

    def as_heartbeat(self) -> dict:
        real, padded = self.throughput.real_tokens_per_second, self.throughput.padded_tokens_per_second
        return {
            "step": self.step,
            "total_steps": self.total_steps,
            "epoch": self.epoch,
            "loss": self.loss,
            "val_loss": self.val_loss,
            # Steady state only (None until the warm-up steps are past): the figure a user can plan with.
            "tokens_per_second": real,
            "padded_tokens_per_second": padded,
            "padding_fraction": 1 - real / padded if real is not None and padded else None,
            "eta_seconds": self.throughput.eta_seconds(self.total_steps - self.step),
            "last_checkpoint": self.last_checkpoint,
            "resumed_from_step": self.resumed_from_step,
            "steps_redone": self.steps_redone,
            "rollbacks": len(self.rollbacks),
        }

    def as_message(self, event: str, attempt: int) -> dict:
        """What the workflow hears at a checkpoint, a resume or a rollback: few events, so no history growth per step."""
        return {
            **self.as_heartbeat(),
            "event": event,
            "attempt": attempt,
            "best": self.best,
            "losses": self.recent_losses,
            "rollback_records": list(self.rollbacks),
        }


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

    def as_dict(self) -> dict | None:
        return {"val_loss": self.best_val_loss, "step": self.best_step} if self.best_step is not None else None


def autocast_for(setup: TrainingSetup) -> Callable[[], contextlib.AbstractContextManager]:
    """16-bit autocast on a GPU (the LoRA weights stay fp32); on a CPU everything is fp32 and exact."""
    import torch

    if setup.device == "cuda":
        return lambda: torch.autocast("cuda", dtype=setup.torch_dtype)
    return contextlib.nullcontext


def forward_backward(objective: Objective, model, batch: dict, step_units: int, autocast, gradient_scale: float = 1) -> MicroBatchLoss:
    """One micro-batch's forward (the objective's) and backward; the objective divides the loss by step_units (the
    units of the whole optimizer step, on every process), so accumulated micro-batches equal one big batch exactly.
    `gradient_scale` multiplies the gradients only: the process count under FSDP, whose reduction averages over the
    ranks where the engine wants the sum; 0 for a micro-batch that runs only so that the sharded ranks call the same
    collectives (World.fill_to)."""
    with autocast():
        computed = objective.micro_batch_loss(model, batch, step_units)
    (computed.loss * gradient_scale if gradient_scale != 1 else computed.loss).backward()
    return computed


def clip_gradients(trainable: list, max_grad_norm: float) -> float:
    """Clips the gradients to max_grad_norm; returns their total norm before clipping (over every shard under FSDP)."""
    import torch

    norm = torch.nn.utils.clip_grad_norm_(trainable, max_grad_norm)
    full_tensor = getattr(norm, "full_tensor", None)  # a DTensor under FSDP: the norm of the whole gradient
    return float((full_tensor() if full_tensor is not None else norm).item())


def step_optimizer(optimizer, scheduler) -> None:
    """Applies the clipped gradients: steps the optimizer and the learning rate, drops the gradients."""
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)


def apply_gradients(optimizer, scheduler, trainable: list, max_grad_norm: float) -> None:
    """The end of an optimizer step without judging it (the benchmarks' loops): clip, step, drop the gradients."""
    clip_gradients(trainable, max_grad_norm)
    step_optimizer(optimizer, scheduler)


def scale_learning_rate(optimizer, scheduler, factor: float) -> None:
    """Multiplies the learning rate from here on by `factor`: the schedule's base rates and the rate the next step
    uses. Both are in the optimizer's and scheduler's state dicts, so a checkpoint carries the lowered rate."""
    if factor == 1:
        return
    scheduler.base_lrs = [rate * factor for rate in scheduler.base_lrs]
    for group in optimizer.param_groups:
        group["lr"] *= factor
        if "initial_lr" in group:
            group["initial_lr"] *= factor


@dataclass(frozen=True)
class InitialState:
    """A fresh run's state before its first step, held in memory (the LoRA weights of this process, an optimizer
    without state, the schedule at zero, the random generators): what a rollback restores before the first checkpoint."""

    adapter: list
    optimizer: dict
    scheduler: dict
    rng: dict


@dataclass
class Callbacks:
    """How the engine talks to whoever runs it (the activity, a test, a benchmark)."""

    report: Callable[[dict], None] = lambda heartbeat: None
    should_stop: Callable[[], bool] = lambda: False
    checkpoint_requested: Callable[[], bool] = lambda: False
    progressed: Callable[[dict], None] = lambda message: None


@dataclass
class TrainingState:
    """What changes as training goes, besides the weights: a checkpoint is `as_checkpoint()`, one dict, and resuming
    is `restore()` of that dict. Under several processes every rank calls both (the optimizer state and the random
    generators of all ranks are collected on rank 0); the dict exists on rank 0 only."""

    model: Any  # as LoadedModel.model
    optimizer: "Optimizer"
    scheduler: "LRScheduler"
    optimizer_name: str
    fingerprint: dict
    world: World
    sharded: bool
    rollbacks: Rollbacks
    step: int = 0
    validation: ValidationState = field(default_factory=ValidationState)

    def as_checkpoint(self, epoch: int) -> dict | None:
        rng = capture_rng_state()
        rng_by_rank = self.world.gather(rng)
        optimizer = sharding.optimizer_state_dict(self.model, self.optimizer, self.sharded)
        if not self.world.main:
            return None
        return {
            "step": self.step,
            "epoch": epoch,
            "optimizer": optimizer,
            "scheduler": self.scheduler.state_dict(),
            "rng": rng,
            # Each rank draws its own dropout masks: an exact resume restores every rank's generators.
            **({"rng_by_rank": rng_by_rank} if self.world.distributed else {}),
            "fingerprint": self.fingerprint,
            "optimizer_name": self.optimizer_name,
            "validation": self.validation.__dict__.copy(),
            # The rollback rule's window, skipped rows and rollbacks: a resume judges and skips as this run would.
            "rollback": self.rollbacks.as_checkpoint(),
        }

    def restore(self, checkpoint: dict, rolling_back: bool = False) -> None:
        """Resume from `checkpoint`; `rolling_back` keeps this run's skipped rows and rollbacks (they are newer than the
        checkpoint) and takes only its window of judged steps."""
        sharding.load_optimizer_state_dict(self.model, self.optimizer, checkpoint["optimizer"], self.sharded)
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        restore_rng_state(checkpoint["rng_by_rank"][self.world.rank] if self.world.distributed else checkpoint["rng"])
        self.validation = ValidationState(**checkpoint["validation"])
        self.step = checkpoint["step"]
        (self.rollbacks.restore_window if rolling_back else self.rollbacks.restore)(checkpoint.get("rollback"))

    def capture_initial(self, trainable: list) -> InitialState:
        """This process's state before the first step (see InitialState)."""
        return InitialState(
            adapter=[parameter.detach().clone() for parameter in trainable],
            optimizer=copy.deepcopy(self.optimizer.state_dict()),
            scheduler=copy.deepcopy(self.scheduler.state_dict()),
            rng=capture_rng_state(),
        )

    def restore_initial(self, initial: InitialState, trainable: list) -> None:
        import torch

        with torch.no_grad():
            for parameter, saved in zip(trainable, initial.adapter, strict=True):
                parameter.copy_(saved)
        # Copies: loading a state dict may keep its tensors, and a second rollback to the start needs them unchanged.
        self.optimizer.load_state_dict(copy.deepcopy(initial.optimizer))
        self.scheduler.load_state_dict(copy.deepcopy(initial.scheduler))
        restore_rng_state(initial.rng)
        self.validation = ValidationState()
        self.step = 0
        self.rollbacks.restore_window(None)


class TrainingEngine:
    """The engine of one process. Under several (World.distributed) every rank runs all of it in lockstep on its own
    micro-batches; rank 0 alone decides what depends on time or the workflow (World.agree), reports and writes."""

    def __init__(self, request: TrainRequest, callbacks: Callbacks, world: World | None = None):
        self.request = request
        self.spec = request.spec
        self.setup: TrainingSetup = request.setup
        self.layout = RunLayout(uri_to_path(request.run_uri))
        self.attempt = request.attempt
        self.callbacks = callbacks
        self.world = world or World.single()
        self.sharded = self.setup.parallelism == "fsdp"

    # --- setup ---------------------------------------------------------------------------------------------------
    def set_up(self) -> None:
        from transformers import get_scheduler, set_seed

        train_spec = self.spec.train
        self.layout.checkpoints.mkdir(parents=True, exist_ok=True)
        # Every rank seeds alike, so that the fresh adapter is the same everywhere.
        set_seed(train_spec.seed)
        loaded_at = time.monotonic()
        loaded = load_for_training(uri_to_path(self.request.model_uri), self.spec, self.setup)
        self.model, self.tokenizer = loaded.model, loaded.tokenizer
        if self.sharded:
            sharding.fully_shard_model(self.model, self.setup.device)
        # The adapter's weights as the optimizer sees them (sharded ones under FSDP).
        self.trainable = [parameter for parameter in self.model.parameters() if parameter.requires_grad]
        if not self.sharded:
            self.world.broadcast_parameters(self.trainable)
        if self.world.distributed:
            # From here each rank draws its own dropout masks.
            set_seed(train_spec.seed + self.world.rank)
        self.loaded_at, self.model_load_seconds = loaded_at, time.monotonic() - loaded_at
        pad_token_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        self.objective = objective_for(self.spec, self.setup, pad_token_id)

        # The objective's examples: rows (sft) or preference pairs (dpo).
        self.examples = self.objective.examples(read_tokenized_split(uri_to_path(self.request.train_tokens_uri)), self.spec.dataset.overlong)
        validation_examples = self.objective.examples(read_tokenized_split(uri_to_path(self.request.val_tokens_uri)), "truncate")
        self.validation_examples = validation_examples[: self.spec.validation.max_rows]
        # What the schedule orders and the model sees one of per batch row: a pack of rows, or one example.
        self.sequences = self.objective.sequences(self.examples)
        # A step is every process's whole accumulation: rank r trains the step's micro-batches r, r + N, ...
        self.schedule = Schedule(
            row_count=len(self.sequences),
            micro_batch_size=self.setup.micro_batch_size,
            accumulation_steps=self.setup.gradient_accumulation_steps * self.world.size,
            seed=train_spec.seed,
            epochs=train_spec.epochs,
            max_steps=train_spec.max_steps,
        )
        optimizer = build_optimizer(self.setup.optimizer, self.trainable, train_spec)
        scheduler = get_scheduler(train_spec.lr_scheduler, optimizer, num_warmup_steps=train_spec.warmup_steps, num_training_steps=self.schedule.total_steps)
        self.state = TrainingState(
            self.model,
            optimizer,
            scheduler,
            self.setup.optimizer,
            fingerprint(self.request, self.objective),
            self.world,
            self.sharded,
            Rollbacks(train_spec.rollback),
        )
        self.autocast = autocast_for(self.setup)
        self.writer = CheckpointWriter(self.layout, self.spec.checkpoint.keep_last)
        self.staging = HostStaging()

    # --- resume ----------------------------------------------------------------------------------------------------
    def resume(self) -> None:
        from safetensors.torch import load_file

        # Rank 0 verifies; every rank resumes from the checkpoint it chose.
        scan = self.world.agree(scan_checkpoints(self.layout.checkpoints) if self.world.main else None)
        assert scan is not None, "rank 0 scanned the checkpoints"
        self.corrupt_checkpoints_skipped = len(scan.corrupt)
        if scan.corrupt and self.world.main:
            logger.warning("skipping %d checkpoints that fail verification: %s", len(scan.corrupt), scan.corrupt)
        self.last_checkpoint = scan.valid[-1] if scan.valid else None
        if self.last_checkpoint:
            # The fingerprint check comes first: a checkpoint of another run is refused by name, not by a shape error.
            saved = load_training_state(self.last_checkpoint, self.state.fingerprint)
            sharding.load_adapter_state_dict(self.model, load_file(self.last_checkpoint.directory / ADAPTER / ADAPTER_WEIGHTS), self.sharded)
            self.state.restore(saved)
            logger.info("resuming at step %d from %s", self.state.step, self.last_checkpoint.directory)
        self.resumed_from_step = self.state.step
        self.progress = Progress(
            step=self.state.step,
            total_steps=self.schedule.total_steps,
            epoch=self.schedule.epoch_of_step(self.state.step),
            loss=self.last_checkpoint.manifest.get("train_loss") if self.last_checkpoint else None,
            last_checkpoint=self._reference(self.last_checkpoint),
            resumed_from_step=self.state.step,
            steps_redone=steps_redone_so_far(self.layout.train_log),
            val_loss=self.last_checkpoint.val_loss if self.last_checkpoint else None,
            best=self.state.validation.as_dict(),
            rollbacks=list(self.state.rollbacks.records),
        )
        self.callbacks.report(self.progress.as_heartbeat())
        if self.resumed_from_step > 0:
            self.callbacks.progressed(self.progress.as_message("resumed", self.attempt))

    # --- train -----------------------------------------------------------------------------------------------------
    def train(self) -> None:
        checkpoint_spec, validation_spec = self.spec.checkpoint, self.spec.validation
        self.model.train()
        self.first_step_at = None
        self.stopped_early = False
        last_checkpoint_at = time.monotonic()
        # A sweep's rung stops early at stop_at_step, checkpointed; the schedule (learning-rate decay) still spans the run.
        last_step = min(self.schedule.total_steps, self.request.stop_at_step or self.schedule.total_steps)
        # Before the first checkpoint, a rollback returns to the start, held in memory.
        self.initial_state = self.state.capture_initial(self.trainable) if self.state.step == 0 and self.spec.train.rollback.enabled else None
        step = self.state.step
        while step < last_step:
            if self.world.agree(self.callbacks.should_stop()):
                self.stop_at(step)
            trained = self.step(step)
            if trained is None:
                # Rolled back: training goes on from the restored checkpoint, without the offending step's rows.
                step = self.state.step
                continue
            loss, metrics = trained
            completed = self.state.step = step + 1
            if self.first_step_at is None:
                self.first_step_at = time.monotonic()
                self.prepare_checkpoints()
            self.progress.step, self.progress.epoch = completed, self.schedule.epoch_of_step(step)
            # A step whose rows were all skipped after a rollback trained nothing: it has no loss.
            if loss is not None:
                self.progress.loss = loss
                self.progress.recent_losses.append([completed, loss])
            if self.world.main:
                append_log(
                    self.layout.train_log,
                    {"attempt": self.attempt, "step": completed, "loss": loss, "learning_rate": self.state.scheduler.get_last_lr()[0], "time": time.time()}
                    | metrics,
                )

            # Checkpoint policy: every N steps, every M minutes, on request, at the end; validation with each.
            every_minutes = checkpoint_spec.every_minutes
            checkpoint_due = self.world.agree(
                completed % checkpoint_spec.every_steps == 0
                or completed == last_step
                or (every_minutes is not None and time.monotonic() - last_checkpoint_at >= every_minutes * 60)
                or self.callbacks.checkpoint_requested()
            )
            validation_due = validation_spec.every_steps is not None and completed % validation_spec.every_steps == 0
            if checkpoint_due or validation_due:
                self.progress.val_loss = self.validate(completed)
            patience = validation_spec.early_stopping_patience
            self.stopped_early = patience is not None and self.state.validation.evaluations_without_improvement >= patience
            if checkpoint_due or self.stopped_early:
                self.save_checkpoint()
                last_checkpoint_at = time.monotonic()
            self.announce_written_checkpoints()
            self.callbacks.report(self.progress.as_heartbeat())
            if self.stopped_early:
                logger.info("early stopping at step %d: no improvement in %d evaluations", completed, patience)
                break
            step = completed

    def rows_for_step(self, step: int) -> list[list[list[int]]]:
        """The examples `step` trains on, as micro-batches of sequences of example indices: the schedule's, less the
        rows skipped after rollbacks (a sequence or micro-batch left empty is dropped)."""
        skipped = self.state.rollbacks.skipped_rows
        micro_batches = []
        for indices in self.schedule.micro_batches_for_step(step):
            sequences = [kept for index in indices if (kept := [row for row in self.sequences[index] if row not in skipped])]
            if sequences:
                micro_batches.append(sequences)
        return micro_batches

    def step(self, step: int) -> tuple[float | None, dict[str, float]] | None:
        """One optimizer step on the schedule's sequences for `step`; returns the step's loss and its metrics for the
        train log: the gradient norm before clipping and the objective's metrics, each a mean over the step's units
        (over all processes). The step is judged before it is applied (rollback.py): None when it was refused and the
        run rolled back. A step whose rows were all skipped trains nothing (loss None); its learning rate is still
        spent, so the schedule stays a function of the step."""
        rows = self.rows_for_step(step)
        if not rows:
            self.state.scheduler.step()
            return None, {}
        step_batches = [[[self.examples[row] for row in sequence] for sequence in micro_batch] for micro_batch in rows]
        # The loss is averaged over every unit (trained token, pair) of the whole step, not per micro-batch: gradient
        # accumulation then equals one big batch exactly (and a packed step one unpacked step, N processes one).
        step_units = sum(self.objective.units(example) for batch in step_batches for sequence in batch for example in sequence)
        micro_batches = [(batch, True) for batch in step_batches[self.world.rank :: self.world.size]]
        if self.sharded:
            micro_batches = self.world.fill_to(micro_batches, step_batches)
        step_loss, real_tokens, padded_tokens = 0.0, 0, 0
        metric_sums = dict.fromkeys(self.objective.METRICS, 0.0)
        for index, (sequences, counted) in enumerate(micro_batches):
            batch = self.objective.collate(sequences)
            if self.sharded:
                # Gradients are reduced across the shards once, after the step's last micro-batch.
                self.model.set_requires_gradient_sync(index == len(micro_batches) - 1)
            # 1 unless a test-only variable of the worker spikes this micro-batch's rows (fault_injection.py).
            injected = fault_injection.loss_factor(sequences)
            computed = forward_backward(
                self.objective, self.model, batch, step_units, self.autocast, injected * (self.world.size if self.sharded else 1) if counted else 0
            )
            if counted:
                step_loss += computed.loss.item() * injected
                for name, value in computed.metric_sums.items():
                    metric_sums[name] += value
                real_tokens += sum(example.tokens for sequence in sequences for example in sequence)
                padded_tokens += batch["input_ids"].numel()
        if not self.sharded:
            self.world.sum_gradients(self.trainable)
        step_loss, real_tokens, padded_tokens, *metric_values = self.world.sum(step_loss, real_tokens, padded_tokens, *metric_sums.values())
        if fault_injection.poisons_step(step + 1):
            step_loss = fault_injection.poison_gradients(self.trainable)
        gradient_norm = clip_gradients(self.trainable, self.spec.train.max_grad_norm)
        # Every rank judges the same sums; rank 0's verdict stands, so all roll back or step together.
        verdict = self.world.agree(self.state.rollbacks.judge(step_loss, gradient_norm))
        if verdict.reason is not None:
            self.roll_back(step, rows, step_loss, gradient_norm, verdict)
            return None
        self.state.rollbacks.record(step_loss, gradient_norm)
        step_optimizer(self.state.optimizer, self.state.scheduler)
        self.progress.throughput.record(int(real_tokens), int(padded_tokens))
        metrics = {name: value / step_units for name, value in zip(metric_sums, metric_values, strict=True)}
        return step_loss, {"gradient_norm": gradient_norm} | metrics

    def roll_back(self, step: int, rows: list[list[list[int]]], loss: float, gradient_norm: float, verdict: Verdict) -> None:
        """Restores the last checkpoint (or the start, before the first one), skips the step's rows from now on and
        lowers the learning rate by train.rollback.learning_rate_factor; fails the run after max_rollbacks.
        The checkpoint on disk is exact (resume reads the same files), and every rank reads it."""
        from safetensors.torch import load_file

        self.state.optimizer.zero_grad(set_to_none=True)
        self.writer.wait()
        self.announce_written_checkpoints()
        # Rank 0 alone knows which checkpoints its writer finished.
        checkpoint = self.world.agree(self.last_checkpoint)
        reason, initial_state = verdict.reason, self.initial_state
        if reason is None:
            raise ValueError(f"step {step + 1} was not refused: there is nothing to roll back")
        if checkpoint is None and initial_state is None:
            # Resumed past the start with no checkpoint to return to cannot happen (resume needs one); be loud if it does.
            raise RuntimeError(f"step {step + 1} must roll back but there is neither a checkpoint nor the initial state")
        step_rows = sorted({row for micro_batch in rows for sequence in micro_batch for row in sequence})
        rollbacks = self.state.rollbacks
        record: RollbackRecord = {
            "step": step + 1,
            "reason": reason,
            "loss": observed(loss),
            "gradient_norm": observed(gradient_norm),
            "loss_median": verdict.loss_median,
            "gradient_norm_median": verdict.gradient_norm_median,
            "z_score": verdict.z_score,
            "restored_step": checkpoint.step if checkpoint else 0,
            "rows": [self.examples[row].source for row in step_rows],
            "learning_rate_scale": rollbacks.spec.learning_rate_factor ** (len(rollbacks.records) + 1),
            "attempt": self.attempt,
        }
        rollbacks.rolled_back(record, step_rows)
        if checkpoint is not None:
            saved = load_training_state(checkpoint, self.state.fingerprint)
            sharding.load_adapter_state_dict(self.model, load_file(checkpoint.directory / ADAPTER / ADAPTER_WEIGHTS), self.sharded)
            self.state.restore(saved, rolling_back=True)
            saved_rollbacks = len(saved.get("rollback", {}).get("records", []))
        else:
            assert initial_state is not None  # refused above, before anything changed
            self.state.restore_initial(initial_state, self.trainable)
            saved_rollbacks = 0
        # The restored state carries the learning rate of its own rollbacks; this run has made more since.
        scale_learning_rate(self.state.optimizer, self.state.scheduler, rollbacks.spec.learning_rate_factor ** (len(rollbacks.records) - saved_rollbacks))
        logger.warning(
            "step %d refused (%s: loss %s, gradient norm %s): rolled back to step %d, skipping %d rows from now on",
            step + 1,
            verdict.reason,
            record["loss"],
            record["gradient_norm"],
            record["restored_step"],
            len(step_rows),
        )
        restored = self.state.step
        # The steps after the checkpoint, up to the refused one, will be trained again (as after a crash).
        self.progress.steps_redone += step - restored
        self.progress.step, self.progress.epoch = restored, self.schedule.epoch_of_step(restored)
        self.progress.loss = checkpoint.manifest.get("train_loss") if checkpoint else None
        self.progress.val_loss = checkpoint.val_loss if checkpoint else None
        self.progress.best = self.state.validation.as_dict()
        self.progress.recent_losses = [entry for entry in self.progress.recent_losses if entry[0] <= restored]
        self.progress.rollbacks = list(rollbacks.records)
        self.callbacks.report(self.progress.as_heartbeat())
        self.callbacks.progressed(self.progress.as_message("rolled_back", self.attempt))

    def validate(self, step: int) -> float | None:
        """The objective's validation loss over all validation examples, each process scoring its share, recorded for
        early stopping and the best checkpoint."""
        val_loss = self.validation_loss()
        if val_loss is not None:
            self.state.validation.record(step, val_loss, self.spec.validation.early_stopping_min_delta)
        return val_loss

    def validation_loss(self) -> float | None:
        if not self.validation_examples:
            return None
        self.model.eval()
        examples = self.validation_examples[self.world.rank :: self.world.size]
        # Sharded ranks must run the same number of forward passes: the longest share's.
        at_least = evaluation_batch_count(len(self.validation_examples[:: self.world.size])) if self.sharded else 0
        with self.autocast():
            loss_sum, units = self.objective.validation_sums(self.model, examples, at_least, self.validation_examples[:1])
        self.model.train()
        loss_sum, units = self.world.sum(loss_sum, units)
        return loss_sum / units if units else None

    # --- save_checkpoint ---------------------------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        """Copies the state off the accelerator now and writes it in the background (CheckpointWriter); the workflow
        hears of the checkpoint once it is on disk. Every rank takes part (the state is collected on rank 0)."""
        step, validation = self.state.step, self.state.validation
        adapter = sharding.adapter_state_dict(self.model, self.sharded)
        training_state = self.state.as_checkpoint(self.schedule.epoch_of_step(step))
        self.progress.best = validation.as_dict()
        if not self.world.main:
            self.progress.recent_losses = []
            return
        assert training_state is not None, "rank 0 holds the training state"
        summary = {"train_loss": self.progress.loss, "val_loss": self.progress.val_loss, "total_steps": self.schedule.total_steps, "written_at": time.time()}
        snapshot = take_snapshot(self.model, step, training_state, summary, adapter, self.staging)
        keep = {validation.best_step} if self.spec.checkpoint.keep_best and validation.best_step is not None else set()
        # What the workflow hears once the write is done, as things stand at this step.
        announcement = self.progress.as_message("checkpoint", self.attempt)
        announcement["last_checkpoint"] = {"step": step, "uri": path_to_uri(self.layout.checkpoint(step))}
        self.progress.recent_losses = []
        self.writer.submit(snapshot, keep, announcement)

    def prepare_checkpoints(self) -> None:
        """After the first step, when the optimizer state exists, what the run's first checkpoint would otherwise pay
        on top of the others (1.1-2.7 s against ~0.2 s on an H100, issue 25): the pinned host buffers every snapshot
        copies into (HostStaging), and a first validation pass, whose eval-mode kernels (Unsloth's compiled decoder
        blocks among them) are built once. Its loss is not recorded. On a CPU there is nothing to build, so no pass."""
        adapter = sharding.adapter_state_dict(self.model, self.sharded)
        training_state = self.state.as_checkpoint(self.schedule.epoch_of_step(self.state.step))
        if self.world.main:
            self.staging.reserve(adapter, training_state)
        if self.setup.device == "cuda":
            self.validation_loss()

    def announce_written_checkpoints(self) -> None:
        for checkpoint, announcement in self.writer.finished():
            self.last_checkpoint = checkpoint
            self.progress.last_checkpoint = self._reference(checkpoint)
            self.callbacks.progressed(announcement)

    def stop_at(self, step: int) -> None:
        """Pause or cancel: checkpoint where training stands (unless that step is on disk already), wait for it, stop."""
        if self.world.agree(self.last_checkpoint is None or self.last_checkpoint.step < step):
            self.save_checkpoint()
        self.writer.wait()
        self.announce_written_checkpoints()
        reference = self.world.agree(self._reference(self.last_checkpoint))
        assert reference is not None, "a checkpoint was written or was already on disk at this step"
        raise StopRequested(reference["step"], reference["uri"])

    # --- finish ------------------------------------------------------------------------------------------------------
    def finish(self) -> dict | None:
        """The final adapter (rank 0 writes it) and the result; None on the other ranks."""
        import torch

        self.writer.wait()
        self.announce_written_checkpoints()
        validation = self.state.validation
        if self.world.main:
            with atomic_directory(self.layout.adapter, replace=True) as building:
                # Patience ran out because the later evaluations were worse: the adapter to keep is the best one. Several
                # processes or a sharded model: the last step's checkpoint is the final adapter, already collected on rank 0.
                collected = self.world.distributed or self.sharded
                if collected and not self.stopped_early and self.last_checkpoint is None:
                    raise RuntimeError("a run over several processes or sharded ends with its last step checkpointed, and no checkpoint was written")
                kept = validation.best_step if self.stopped_early else (self.last_checkpoint.step if collected and self.last_checkpoint else None)
                if kept is not None:
                    for path in (self.layout.checkpoint(kept) / ADAPTER).iterdir():
                        shutil.copy2(path, building / path.name)
                else:
                    self.model.save_pretrained(building, safe_serialization=True)
                self.tokenizer.save_pretrained(building)
        result = {
            "adapter_uri": path_to_uri(self.layout.adapter),
            "final_step": self.progress.step,
            "total_steps": self.schedule.total_steps,
            "stopped_early": self.stopped_early,
            "train_loss": self.progress.loss,
            "val_loss": self.progress.val_loss,
            "best": validation.as_dict(),
            "resumed_from_step": self.resumed_from_step,
            "steps_trained": self.progress.step - self.resumed_from_step,
            "steps_redone": self.progress.steps_redone,
            "corrupt_checkpoints_skipped": self.corrupt_checkpoints_skipped,
            "rollbacks": list(self.state.rollbacks.records),
            "rows_skipped": len(self.state.rollbacks.skipped_rows),
            "last_checkpoint_uri": self.last_checkpoint.uri if self.last_checkpoint else None,
            "backend": self.setup.backend,
            "device": self.setup.device,
            "dtype": self.setup.dtype,
            "optimizer": self.setup.optimizer,
            "gradient_checkpointing": self.setup.gradient_checkpointing,
            "train_rows": len(self.examples),
            "packing": self.setup.packing,
            "train_sequences": len(self.sequences),
            "processes": self.setup.processes,
            "parallelism": self.setup.parallelism,
            "tokens_per_second": self.progress.throughput.real_tokens_per_second,
            "model_load_seconds": self.model_load_seconds,
            "seconds_to_first_step": (self.first_step_at - self.loaded_at) if self.first_step_at else None,
        }
        del self.model, self.state
        if self.setup.device == "cuda":
            torch.cuda.empty_cache()
        return result if self.world.main else None

    @staticmethod
    def _reference(checkpoint: Checkpoint | None) -> dict | None:
        return {"step": checkpoint.step, "uri": checkpoint.uri} if checkpoint else None


def run_engine(request: TrainRequest, callbacks: Callbacks, world: World | None = None) -> dict | None:
    """The engine top to bottom; raises StopRequested after checkpointing when `should_stop` says so."""
    engine = TrainingEngine(request, callbacks, world)
    engine.set_up()
    engine.resume()
    engine.train()
    return engine.finish()


def train(
    payload: dict,
    report: Callable[[dict], None] = lambda heartbeat: None,
    should_stop: Callable[[], bool] = lambda: False,
    checkpoint_requested: Callable[[], bool] = lambda: False,
    progressed: Callable[[dict], None] = lambda message: None,
) -> dict:
    """`train_request` on a train payload as decoded JSON (tests, the device benchmark)."""
    return train_request(parse(TrainRequest, payload), Callbacks(report, should_stop, checkpoint_requested, progressed))


def train_request(request: TrainRequest, callbacks: Callbacks) -> dict:
    """Trains the request in this process, or in one process per GPU when its setup says several (distributed.launch)."""
    if request.setup.processes > 1:
        return launch(request, request.setup.processes, callbacks)
    result = run_engine(request, callbacks)
    assert result is not None, "a single process is rank 0, which returns the result"
    return result
