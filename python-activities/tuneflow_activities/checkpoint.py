"""Checkpoints: written whole or not at all, verified before use, pruned by policy.

A checkpoint is one directory `step-NNNNNNNN/` holding the adapter in PEFT's own format, `training_state.pt`
(one dict: optimizer, LR scheduler, RNG states, step, epoch, the spec fingerprint) and `manifest.json` with the
sha256 of every file. It is built under a temporary name, fsynced and renamed, so a directory with a valid
manifest is always complete; one that fails verification (a disk that lied) is skipped with a warning.
"""

import json
import logging
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .artifacts import atomic_directory, path_to_uri, remove_stale_temporaries, sha256_of_file
from .contract import FailureType
from .errors import failure

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
TRAINING_STATE = "training_state.pt"
FORMAT_VERSION = 1


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


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


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


def write_checkpoint(
    checkpoints_directory: Path, step: int, model, training_state: dict[str, Any], summary: dict[str, Any]
) -> Checkpoint:
    import torch

    target = checkpoints_directory / checkpoint_name(step)
    with atomic_directory(target, replace=True) as building:
        model.save_pretrained(building / "adapter", safe_serialization=True)
        torch.save(training_state, building / TRAINING_STATE)
        files = {
            str(path.relative_to(building)): sha256_of_file(path) for path in sorted(building.rglob("*")) if path.is_file()
        }
        manifest = {"format_version": FORMAT_VERSION, "step": step, "files": files, **summary}
        (building / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return Checkpoint(step=step, directory=target, manifest=manifest)


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
    differences = {
        key: {"checkpoint": recorded.get(key), "spec": value}
        for key, value in expected_fingerprint.items()
        if recorded.get(key) != value
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


def prune_checkpoints(checkpoints_directory: Path, keep_last: int, keep: set[int] = frozenset()) -> list[int]:
    """Deletes all but the newest keep_last checkpoints (and those in keep); returns the deleted steps."""
    directories = sorted(checkpoints_directory.glob("step-*"))
    deleted = []
    for directory in directories[: max(0, len(directories) - keep_last)]:
        step = int(directory.name.removeprefix("step-"))
        if step not in keep:
            shutil.rmtree(directory)
            deleted.append(step)
    return deleted
