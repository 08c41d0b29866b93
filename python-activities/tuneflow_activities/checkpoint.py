"""Checkpoints: taken at a step, written in the background whole or not at all, verified before use, pruned by policy.

A checkpoint is one directory `step-NNNNNNNN/` holding the adapter in PEFT's own format, `training_state.pt`
(one dict: optimizer, LR scheduler, RNG states, step, epoch, the spec fingerprint) and `manifest.json` with the
sha256 of every file. It is built under a temporary name, fsynced and renamed, so a directory with a valid
manifest is always complete; one that fails verification (a disk that lied) is skipped with a warning.
"""

import copy
import json
import logging
import queue
import random
import shutil
import threading
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .artifacts import (
    RunLayout,
    atomic_directory,
    path_to_uri,
    remove_stale_temporaries,
    sha256_of_file,
)
from .contract import FailureType
from .errors import failure

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
TRAINING_STATE = "training_state.pt"
ADAPTER, ADAPTER_WEIGHTS = "adapter", "adapter_model.safetensors"
FORMAT_VERSION = 1
# Fingerprint fields recorded only when they differ from these (training.fingerprint): absent means this value.
FINGERPRINT_DEFAULTS = {"packing": False, "processes": 1, "parallelism": "single"}


@dataclass(frozen=True)
class Checkpoint:
    step: int
    directory: Path
    manifest: dict

    @property
    def uri(self) -> str:
        return path_to_uri(self.directory)

    @property
    def val_loss(self) -> float | None:
        return self.manifest.get("val_loss")

    def as_record(self) -> dict:
        """The checkpoint as the workflow and run.json list it (a CheckpointRecord)."""
        return {"step": self.step, "uri": self.uri, "verified": True, "train_loss": self.manifest.get("train_loss"), "val_loss": self.val_loss}


def capture_rng_state() -> dict:
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def detached_copy(value: Any) -> Any:
    """A copy of a state dict (nested dicts, lists, tuples of tensors and plain values) whose tensors are new CPU
    tensors: training can go on changing the originals while the copy is written."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {key: detached_copy(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(detached_copy(item) for item in value)
    return copy.deepcopy(value)


@dataclass(frozen=True)
class CheckpointSnapshot:
    """A checkpoint as taken at its step, off the accelerator: everything the background writer needs."""

    step: int
    adapter: dict  # the LoRA weights, PEFT's key names
    adapter_config: Any  # the PeftConfig, as PEFT's save_pretrained would write it
    training_state: dict  # one dict: optimizer, scheduler, rng, step, epoch, fingerprint, optimizer name, validation
    summary: dict  # manifest fields: train_loss, val_loss, total_steps, written_at


class HostStaging:
    """Pinned host buffers that a snapshot's GPU tensors are copied into, allocated once and reused.

    A run's first checkpoint used to pay for allocating (and first touching) a gigabyte of pageable host memory for
    the 8B adapter and its optimizer state: 1.1-2.7 s against ~0.4 s for later ones (issue 25). `reserve` pays that
    after the first step instead, and the copies then run into pinned memory on a side stream, at full PCIe speed.
    Two sets alternate: the background writer may still be reading the previous snapshot's while the next is taken
    (CheckpointWriter.submit waits for it before starting another write, so a third is never needed).
    """

    def __init__(self):
        self._sets: list[dict] = [{}, {}]
        self._next = 0
        self._stream = None

    def reserve(self, *states: Any) -> None:
        """Allocates both sets for these states' tensors (the adapter, the training state), copying nothing."""
        for buffers in self._sets:
            for index, state in enumerate(states):
                self._copy(state, buffers, (index,), allocate_only=True)

    def copy(self, *states: Any) -> list:
        """Copies of `states` whose CUDA tensors live in this snapshot's pinned buffers, complete when this returns."""
        import torch

        buffers, self._next = self._sets[self._next], 1 - self._next
        if not torch.cuda.is_available():
            return [detached_copy(state) for state in states]
        self._stream = self._stream or torch.cuda.Stream()
        # The side stream copies what the training stream has computed so far, and nothing it computes later.
        self._stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self._stream):
            copies = [self._copy(state, buffers, (index,), allocate_only=False) for index, state in enumerate(states)]
        self._stream.synchronize()
        return copies

    def _copy(self, value: Any, buffers: dict, path: tuple, allocate_only: bool) -> Any:
        import torch

        if isinstance(value, torch.Tensor):
            if not value.is_cuda:
                return None if allocate_only else value.detach().clone()
            buffer = buffers.get(path)
            if buffer is None or buffer.shape != value.shape or buffer.dtype != value.dtype:
                buffer = buffers[path] = torch.empty(value.shape, dtype=value.dtype, device="cpu", pin_memory=True)
            if not allocate_only:
                buffer.copy_(value.detach(), non_blocking=True)
            return buffer
        if isinstance(value, dict):
            return {key: self._copy(item, buffers, (*path, key), allocate_only) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self._copy(item, buffers, (*path, index), allocate_only) for index, item in enumerate(value))
        return None if allocate_only else copy.deepcopy(value)


def take_snapshot(model, step: int, training_state: dict, summary: dict, adapter: dict, staging: HostStaging | None = None) -> CheckpointSnapshot:
    """`adapter` is the LoRA weights with PEFT's key names (sharding.adapter_state_dict); with `staging`, the copies
    land in its reused pinned buffers."""
    config = copy.deepcopy(model.peft_config["default"])
    config.inference_mode = True  # what PeftModel.save_pretrained records
    adapter_copy, state_copy = staging.copy(adapter, training_state) if staging is not None else (detached_copy(adapter), detached_copy(training_state))
    return CheckpointSnapshot(step, adapter_copy, config, state_copy, summary)


def write_checkpoint(layout: RunLayout, snapshot: CheckpointSnapshot) -> Checkpoint:
    """Writes the snapshot as `step-NNNNNNNN/`, whole or not at all (a kill mid-write leaves only a .tmp- directory)."""
    import torch
    from safetensors.torch import save_file

    target = layout.checkpoint(snapshot.step)
    with atomic_directory(target, replace=True) as building:
        snapshot.adapter_config.save_pretrained(building / ADAPTER)
        save_file(snapshot.adapter, building / ADAPTER / ADAPTER_WEIGHTS, metadata={"format": "pt"})
        torch.save(snapshot.training_state, building / TRAINING_STATE)
        files = {str(path.relative_to(building)): sha256_of_file(path) for path in sorted(building.rglob("*")) if path.is_file()}
        manifest = {"format_version": FORMAT_VERSION, "step": snapshot.step, "files": files, **snapshot.summary}
        (building / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return Checkpoint(step=snapshot.step, directory=target, manifest=manifest)


class CheckpointWriter:
    """Writes checkpoints on a background thread so that training does not wait for disk.

    One write at a time: a new checkpoint waits for the previous one, so checkpoints land in step order and at most
    one snapshot is held in memory besides the live state. A write that failed raises in the training thread at
    the next submit, wait or poll. After each write, old checkpoints are pruned by the run's policy.
    """

    def __init__(self, layout: RunLayout, keep_last: int):
        self._layout = layout
        self._keep_last = keep_last
        self._thread: threading.Thread | None = None
        self._written: Checkpoint | None = None
        self._error: BaseException | None = None
        # Filled by the writer thread, drained by the training thread.
        self._finished: queue.SimpleQueue[tuple[Checkpoint, Any]] = queue.SimpleQueue()

    def submit(self, snapshot: CheckpointSnapshot, keep: set[int], announcement: Any = None) -> None:
        """Starts writing `snapshot` (after the previous write); `announcement` comes back from `finished()` with it."""
        self.wait()

        def write() -> None:
            try:
                checkpoint = write_checkpoint(self._layout, snapshot)
                prune_checkpoints(self._layout.checkpoints, self._keep_last, keep)
                self._written = checkpoint
                self._finished.put((checkpoint, announcement))
            except BaseException as error:
                self._error = error

        self._thread = threading.Thread(target=write, name=f"tuneflow-checkpoint-{snapshot.step}", daemon=True)
        self._thread.start()

    def wait(self) -> Checkpoint | None:
        """Blocks until the write in progress is on disk; returns the newest checkpoint written."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._raise_failure()
        return self._written

    def finished(self) -> list[tuple[Checkpoint, Any]]:
        """Checkpoints that reached disk since the last call, with their announcements (never blocks)."""
        self._raise_failure()
        done = []
        while not self._finished.empty():
            done.append(self._finished.get())
        return done

    def _raise_failure(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error


def verify_checkpoint(directory: Path) -> Checkpoint | None:
    """The checkpoint if its manifest lists files that all exist with the recorded hashes, else None."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
        for relative, expected in manifest["files"].items():
            if sha256_of_file(directory / relative) != expected:
                logger.warning("checkpoint %s: %s does not match its manifest hash", directory, relative)
                return None
        return Checkpoint(step=int(manifest["step"]), directory=directory, manifest=manifest)
    except (OSError, ValueError, KeyError) as error:
        logger.warning("checkpoint %s is unreadable and is skipped: %s", directory, error)
        return None


@dataclass(frozen=True)
class CheckpointScan:
    valid: list[Checkpoint]
    corrupt: list[Path]


def corrupt_record(directory: Path) -> dict:
    """A checkpoint directory that failed verification, as a CheckpointRecord: its step is its name's."""
    return {"step": int(directory.name.removeprefix("step-")), "uri": path_to_uri(directory), "verified": False, "train_loss": None, "val_loss": None}


def scan_checkpoints(checkpoints_directory: Path) -> CheckpointScan:
    """Every verified checkpoint, oldest first, and the directories that failed verification."""
    remove_stale_temporaries(checkpoints_directory)
    if not checkpoints_directory.is_dir():
        return CheckpointScan(valid=[], corrupt=[])
    valid, corrupt = [], []
    for directory in sorted(checkpoints_directory.glob("step-*")):
        checkpoint = verify_checkpoint(directory)
        (valid.append(checkpoint) if checkpoint else corrupt.append(directory))
    return CheckpointScan(valid=sorted(valid, key=lambda checkpoint: checkpoint.step), corrupt=corrupt)


def load_training_state(checkpoint: Checkpoint, expected_fingerprint: dict) -> dict:
    """Loads the training state, refusing one written for a spec that changes what is being trained."""
    import torch

    state = torch.load(checkpoint.directory / TRAINING_STATE, weights_only=False)
    recorded = state["fingerprint"]

    # Both sides' keys: a field recorded only when it is not its default must not be set on one side only.
    def value(fingerprint: dict, key: str):
        return fingerprint.get(key, FINGERPRINT_DEFAULTS.get(key))

    differences = {
        key: {"checkpoint": value(recorded, key), "spec": value(expected_fingerprint, key)}
        for key in sorted(set(recorded) | set(expected_fingerprint))
        if value(recorded, key) != value(expected_fingerprint, key)
    }
    if differences:
        raise failure(
            FailureType.INCOMPATIBLE_CHECKPOINT,
            f"checkpoint {checkpoint.directory} was written for a different run: "
            + ", ".join(f"{key} was {value['checkpoint']!r}, spec says {value['spec']!r}" for key, value in differences.items())
            + ". Start a new run (new id) or restore the spec.",
            differences=differences,
        )
    return state


def prune_checkpoints(checkpoints_directory: Path, keep_last: int, keep: AbstractSet[int] = frozenset()) -> list[int]:
    """Deletes all but the newest keep_last checkpoints (and those in keep); returns the deleted steps."""
    directories = sorted(checkpoints_directory.glob("step-*"))
    deleted = []
    for directory in directories[: max(0, len(directories) - keep_last)]:
        step = int(directory.name.removeprefix("step-"))
        if step not in keep:
            shutil.rmtree(directory)
            deleted.append(step)
    return deleted
