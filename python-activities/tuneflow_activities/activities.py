"""The Temporal activities of the Python worker: thin wrappers that give the pure modules heartbeats,
cancellation and typed failures. Names come from the contract."""

import contextvars
import threading
from contextlib import contextmanager
from typing import Iterator

from temporalio import activity
from temporalio.exceptions import CancelledError

from . import evaluation, merging, training
from .artifacts import uri_to_path
from .contract import AcceleratorActivity, FailureType
from .data import length_statistics, read_prepared_rows, tokenize_rows
from .errors import failure
from .loaders import training_setup
from .models import (
    describe_architecture,
    describe_device,
    model_uri,
    resolve_model_directory,
    tokenizer_identity,
)

DEFAULT_HEARTBEAT_SECONDS = 10.0


class Heartbeater:
    """Heartbeats the latest details on a timer from its own thread.

    Model loading, a merge or one huge training step can outlast the heartbeat timeout without returning to
    the activity's code; the timer keeps the server informed while the activity's process is alive, and the
    moment the process dies the heartbeats stop and Temporal retries the activity elsewhere.
    """

    def __init__(self, details: dict):
        self.details = details
        timeout = activity.info().heartbeat_timeout
        self.interval = timeout.total_seconds() / 3 if timeout else DEFAULT_HEARTBEAT_SECONDS
        self._stop = threading.Event()
        # The activity context lives in a context variable, which a new thread does not inherit.
        self._context = contextvars.copy_context()
        self._thread = threading.Thread(target=self._beat, name="tuneflow-heartbeat", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            self._context.run(activity.heartbeat, self.details)

    def update(self, details: dict) -> None:
        self.details = details
        activity.heartbeat(details)

    @contextmanager
    def running(self) -> Iterator["Heartbeater"]:
        activity.heartbeat(self.details)
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()


def _out_of_memory(error: BaseException) -> bool:
    import torch

    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()


@activity.defn(name=AcceleratorActivity.RESOLVE_MODEL.value)
def resolve_model(request: dict) -> dict:
    with Heartbeater({"phase": "resolving model"}).running():
        resolved = resolve_model_directory(request["spec"]["model"]["source"])
        return {
            "training": training_setup(request["spec"]),
            "model_uri": model_uri(resolved),
            "source": resolved.source,
            "architecture": describe_architecture(resolved.directory),
            "tokenizer_identity": tokenizer_identity(resolved.directory),
            "device": describe_device(),
        }


@activity.defn(name=AcceleratorActivity.TOKEN_STATISTICS.value)
def token_statistics(request: dict) -> dict:
    from transformers import AutoTokenizer

    spec = request["spec"]
    with Heartbeater({"phase": "counting tokens"}).running():
        tokenizer = AutoTokenizer.from_pretrained(str(uri_to_path(request["model_uri"])))
        max_seq_length = spec["model"]["max_seq_length"]
        statistics = {}
        for split in ("train", "val"):
            rows = read_prepared_rows(uri_to_path(request[f"{split}_uri"]))
            untruncated = tokenize_rows(rows, tokenizer, 10**9, spec["train"]["loss_on"], "truncate")
            statistics[split] = length_statistics(untruncated, max_seq_length)
            # The policy check (fail/drop) runs here too, so a bad dataset fails before any training starts.
            kept = tokenize_rows(rows, tokenizer, max_seq_length, spec["train"]["loss_on"], spec["dataset"]["overlong"])
            statistics[split]["rows_trained"] = len(kept)
            statistics[split]["tokens_trained"] = sum(len(row.input_ids) for row in kept)
        return statistics


@activity.defn(name=AcceleratorActivity.TRAIN.value)
def train(request: dict) -> dict:
    request = {**request, "attempt": activity.info().attempt}
    with Heartbeater({"phase": "loading model"}).running() as heartbeater:
        try:
            return training.train(
                request,
                report=lambda progress: heartbeater.update(progress.as_heartbeat()),
                should_stop=activity.is_cancelled,
            )
        except training.StopRequested as stop:
            # Cancellation (pause or cancel) is acknowledged only once the checkpoint is safely on disk.
            raise CancelledError(f"training stopped at step {stop.checkpoint.step}, checkpoint {stop.checkpoint.uri}")
        except RuntimeError as error:
            if _out_of_memory(error):
                raise failure(
                    FailureType.OUT_OF_MEMORY,
                    f"out of memory at micro_batch_size={request['spec']['train']['micro_batch_size']}: {error}",
                    micro_batch_size=request["spec"]["train"]["micro_batch_size"],
                ) from error
            raise


@activity.defn(name=AcceleratorActivity.MERGE.value)
def merge(request: dict) -> dict:
    with Heartbeater({"phase": "merging"}).running():
        return merging.merge(request)


@activity.defn(name=AcceleratorActivity.EVALUATE.value)
def evaluate(request: dict) -> dict:
    with Heartbeater({"phase": "evaluating"}).running():
        return evaluation.evaluate(request)


ALL_ACTIVITIES = [resolve_model, token_statistics, train, merge, evaluate]
