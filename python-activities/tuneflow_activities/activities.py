"""The Temporal activities of the Python worker: thin wrappers that give the pure modules heartbeats,
cancellation and typed failures. Names come from the contract; every request and result is validated against the
contract's schema at the boundary (validation.checked)."""

import asyncio
import concurrent.futures
import contextvars
import logging
import os
import threading
import time
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta

from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import CancelledError

from . import evaluation, exporting, merging, training
from .artifacts import RunLayout, uri_to_path
from .checkpoint import corrupt_record, scan_checkpoints
from .contract import AcceleratorActivity, FailureType, WorkflowMessage
from .data import tokenize_dataset
from .errors import failure, is_out_of_memory
from .models import model_facts, resolve_model_directory
from .object_store import activity_files, is_object_store_uri, verify_stored_checkpoints
from .payloads import ResolveModelRequest, TrainRequest, VerifyCheckpointsRequest, parse
from .takeover import WorkerIdentity
from .validation import checked

logger = logging.getLogger(__name__)

DEFAULT_HEARTBEAT_SECONDS = 10.0
CONTROL_POLL_SECONDS = 5.0
MESSAGE_TIMEOUT = timedelta(seconds=10)


class WorkflowLink:
    """Signals and queries the workflow that scheduled the running activity, from the activity's own thread.

    The worker's client lives on the worker's event loop; the training thread hands coroutines to that loop and never
    waits for them mid-training: a query needs the workflow's (TypeScript) worker, and while that worker is down or
    restarting a query takes until its timeout — a blocking poll every few seconds would stall training for as long
    as the other worker is away. Signals go out in the order they were given (the workflow learns of checkpoints
    from them), one after another in the background; `flush` waits for them where the activity ends. A message that
    fails is logged and dropped: progress reports and control polls must never stop training.
    """

    def __init__(self, client: Client, loop: asyncio.AbstractEventLoop):
        self._client = client
        self._loop = loop
        self._last_signal: concurrent.futures.Future[None] | None = None
        self._queries: dict[WorkflowMessage, concurrent.futures.Future[object | None]] = {}

    async def _logged(self, coroutine: Awaitable[object]) -> object | None:
        try:
            return await coroutine
        except Exception as error:
            logger.warning("message to workflow failed: %s", error)
            return None

    def _handle(self) -> WorkflowHandle[object, object]:
        # Read in the activity's thread: the activity context is a context variable the worker's loop does not see.
        info = activity.info()
        if info.workflow_id is None:
            raise RuntimeError(f"activity {info.activity_type} was not scheduled by a workflow: it has no workflow to signal or query")
        return self._client.get_workflow_handle(info.workflow_id, run_id=info.workflow_run_id)

    def signal(self, name: WorkflowMessage, payload: dict[str, object]) -> None:
        """Sends after every earlier signal has gone; returns at once."""
        handle, previous = self._handle(), self._last_signal

        async def send_after_previous() -> None:
            if previous is not None:
                await asyncio.wrap_future(previous)
            await self._logged(handle.signal(name.value, payload, rpc_timeout=MESSAGE_TIMEOUT))

        self._last_signal = asyncio.run_coroutine_threadsafe(send_after_previous(), self._loop)

    def ask(self, name: WorkflowMessage) -> dict[str, object] | None:
        """The query's answer, waiting for it (at most the message timeout): for what must be known before training."""
        answer = asyncio.run_coroutine_threadsafe(self._logged(self._query(name)), self._loop)
        try:
            return answer.result(MESSAGE_TIMEOUT.total_seconds() + 1)  # type: ignore[return-value]
        except concurrent.futures.TimeoutError:
            return None

    def poll(self, name: WorkflowMessage) -> dict[str, object] | None:
        """The answer to the previous poll's query if it has come (else None), and asks again; returns at once."""
        in_flight = self._queries.get(name)
        if in_flight is not None and not in_flight.done():
            return None
        self._queries[name] = asyncio.run_coroutine_threadsafe(self._logged(self._query(name)), self._loop)
        return in_flight.result() if in_flight is not None else None  # type: ignore[return-value]

    def _query(self, name: WorkflowMessage) -> Awaitable[object]:
        return self._handle().query(name.value, rpc_timeout=MESSAGE_TIMEOUT)

    def flush(self) -> None:
        """Waits (bounded) until every signal given so far has been sent or has failed."""
        if self._last_signal is not None:
            with suppress(concurrent.futures.TimeoutError):
                self._last_signal.result(MESSAGE_TIMEOUT.total_seconds() * 2)


_workflow_link: WorkflowLink | None = None


def connect_workflow_link(client: Client, loop: asyncio.AbstractEventLoop) -> None:
    """Called by the worker at start. Without it (tests, the device benchmark) activities train unlinked."""
    global _workflow_link
    _workflow_link = WorkflowLink(client, loop)


class TrainingControl:
    """Turns the workflow's control state into the training loop's callbacks: stop on cancellation (pause,
    cancel), checkpoint when the workflow's checkpoint-request counter has grown since this attempt began."""

    def __init__(self, link: WorkflowLink | None):
        self._link = link
        self._last_poll = 0.0
        self._checkpoint_requests = self._poll_requests()

    def _poll_requests(self) -> int:
        self._last_poll = time.monotonic()
        control = self._link.ask(WorkflowMessage.TRAINING_CONTROL) if self._link else None
        return int(control.get("checkpoint_requests", 0)) if control else 0  # type: ignore[call-overload]

    def should_stop(self) -> bool:
        return activity.is_cancelled()

    def checkpoint_requested(self) -> bool:
        if self._link is None or time.monotonic() - self._last_poll < CONTROL_POLL_SECONDS:
            return False
        self._last_poll = time.monotonic()
        # The answer to the previous poll (a poll interval old): a request is noticed one interval later at worst.
        control = self._link.poll(WorkflowMessage.TRAINING_CONTROL)
        if control is None:
            return False
        requests = int(control.get("checkpoint_requests", 0))  # type: ignore[call-overload]
        requested, self._checkpoint_requests = requests > self._checkpoint_requests, max(requests, self._checkpoint_requests)
        return requested

    def progressed(self, message: dict[str, object]) -> None:
        if self._link:
            self._link.signal(WorkflowMessage.TRAINING_PROGRESS, message)

    def finished(self) -> None:
        """The workflow hears every progress message (the checkpoints among them) before the activity's result."""
        if self._link:
            self._link.flush()


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


# Test hook: pretend CUDA runs out of memory whenever the micro-batch exceeds this size, so that the workflow's
# out-of-memory recovery can be exercised on a CPU. Unset (the default) in every real deployment.
INJECT_OUT_OF_MEMORY_ABOVE_MICRO_BATCH = "TUNEFLOW_TEST_OUT_OF_MEMORY_ABOVE_MICRO_BATCH"


def _raise_injected_out_of_memory(micro_batch_size: int) -> None:
    import torch

    limit = int(os.environ.get(INJECT_OUT_OF_MEMORY_ABOVE_MICRO_BATCH, "-1"))
    if limit >= 0 and micro_batch_size > limit:
        raise torch.OutOfMemoryError(f"injected: micro_batch_size {micro_batch_size} > {limit}")


@activity.defn(name=AcceleratorActivity.RESOLVE_MODEL.value)
@checked(AcceleratorActivity.RESOLVE_MODEL)
def resolve_model(payload: dict) -> dict:
    request = parse(ResolveModelRequest, payload)
    with Heartbeater({"phase": "resolving model"}).running():
        return model_facts(resolve_model_directory(request.spec.model.source))


@activity.defn(name=AcceleratorActivity.TOKEN_STATISTICS.value)
@checked(AcceleratorActivity.TOKEN_STATISTICS)
def token_statistics(request: dict) -> dict:
    with Heartbeater({"phase": "counting tokens"}).running():
        # Token ids are written beside the prepared data: on object storage, beside the cached copy, then uploaded.
        files = activity_files(request)
        return files.publish(tokenize_dataset(files.request), ("train_tokens_uri", "val_tokens_uri"))


@activity.defn(name=AcceleratorActivity.TRAIN.value)
@checked(AcceleratorActivity.TRAIN)
def train(request: dict) -> dict:
    request = {**request, "attempt": activity.info().attempt}
    # Temporal cancels a thread-pool activity by raising CancelledError asynchronously inside its thread, wherever
    # it happens to be (a checkpoint write, a lock). Training shields itself and stops at a step boundary instead,
    # after writing its checkpoint; the pending cancellation is raised when the shield ends.
    with Heartbeater({"phase": "loading model"}).running() as heartbeater, activity.shield_thread_cancel_exception():
        control = TrainingControl(_workflow_link)
        # On object storage the loop trains in a local mirror; checkpoints upload in the background as it goes.
        files = activity_files(request)
        parsed = parse(TrainRequest, files.request)
        micro_batch_size = parsed.setup.micro_batch_size
        try:
            _raise_injected_out_of_memory(micro_batch_size)
            with files.training():
                try:
                    result = training.train_request(
                        parsed,
                        training.Callbacks(
                            report=lambda heartbeat: heartbeater.update(files.heartbeat(heartbeat)),
                            should_stop=control.should_stop,
                            checkpoint_requested=control.checkpoint_requested,
                            progressed=lambda message: control.progressed(files.checkpoint_written(message)),
                        ),
                    )
                finally:
                    control.finished()
            # Where this worker's own queue is: the workflow offers the run's merge and evaluation there first.
            return {**files.publish(result, ("adapter_uri",)), "worker_task_queue": WorkerIdentity.of_this_process().task_queue}
        except training.StopRequested as stop:
            # Cancellation (pause or cancel) is acknowledged only once the checkpoint is safely on disk.
            raise CancelledError(f"training stopped at step {stop.step}, checkpoint {stop.uri}") from None
        except RuntimeError as error:
            if is_out_of_memory(error):
                raise failure(
                    FailureType.OUT_OF_MEMORY,
                    f"out of memory at micro_batch_size={micro_batch_size}: {error}",
                    micro_batch_size=micro_batch_size,
                ) from error
            raise


@activity.defn(name=AcceleratorActivity.MERGE.value)
@checked(AcceleratorActivity.MERGE)
def merge(request: dict) -> dict:
    with Heartbeater({"phase": "merging"}).running():
        files = activity_files(request)
        return files.publish(merging.merge(files.request), ("merged_uri",))


@activity.defn(name=AcceleratorActivity.EVALUATE.value)
@checked(AcceleratorActivity.EVALUATE)
def evaluate(request: dict) -> dict:
    with Heartbeater({"phase": "evaluating"}).running():
        return evaluation.evaluate(activity_files(request).request)


@activity.defn(name=AcceleratorActivity.VERIFY_CHECKPOINTS.value)
@checked(AcceleratorActivity.VERIFY_CHECKPOINTS)
def verify_checkpoints(request: dict) -> dict:
    """Every checkpoint of the run checked against its manifest's sha256s: the one place checkpoints are verified,
    for resume (training) and for the run's record (the workflow) alike."""
    with Heartbeater({"phase": "verifying checkpoints"}).running():
        run_uri = parse(VerifyCheckpointsRequest, request).run_uri
        if is_object_store_uri(run_uri):
            return verify_stored_checkpoints(run_uri)
        scan = scan_checkpoints(RunLayout(uri_to_path(run_uri)).checkpoints)
        return {"checkpoints": [checkpoint.as_record() for checkpoint in scan.valid], "corrupt": [corrupt_record(directory) for directory in scan.corrupt]}


@activity.defn(name=AcceleratorActivity.EXPORT_GGUF.value)
@checked(AcceleratorActivity.EXPORT_GGUF)
def export_gguf(request: dict) -> dict:
    with Heartbeater({"phase": "exporting gguf"}).running():
        return exporting.export_gguf(request)


ALL_ACTIVITIES = [resolve_model, token_statistics, train, merge, evaluate, verify_checkpoints, export_gguf]
# What a worker serves on its own task queue: the steps that read a run's trained files.
STICKY_ACTIVITIES = [merge, evaluate]
