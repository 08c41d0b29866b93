"""Takes over the activity attempts that a dead worker on this machine left behind.

A SIGKILLed worker, or one on a machine that rebooted, cannot say that its attempt is gone: the server only
notices when the heartbeat timeout (two minutes by default) runs out, and retries only then. A worker that starts
on the same machine can tell for certain that its predecessor is dead, because every tuneflow worker's identity
names its machine, boot, PID namespace, PID and process start time. It fails such an attempt at once, with a
retry delay of a millisecond, so the run resumes from its last checkpoint as soon as a worker is back rather than
minutes later. Attempts held by live workers, or by workers on other machines or in other containers, are never
touched: those still wait for the heartbeat timeout.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from .contract import FailureType, TaskQueue

logger = logging.getLogger(__name__)

_IDENTITY_PREFIX = "tuneflow-gpu"
_SEPARATOR = "/"
# Zero would mean "no override": the retry policy's backoff (up to a minute) would apply instead.
_RETRY_AT_ONCE = datetime.timedelta(milliseconds=1)
# A worker that outlives a sibling on the same machine (several GPUs, several workers) notices its death too.
TAKEOVER_INTERVAL_SECONDS = 60.0


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid").removeprefix("pid:[").removesuffix("]")
    except OSError:
        return ""


def process_start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux); "" where /proc is missing; None if no such process."""
    if not Path("/proc/self/stat").exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return ""
    stat = _read_text(f"/proc/{pid}/stat")
    if not stat:
        return None
    # The command name (field 2) may hold spaces and parentheses: count fields after its closing parenthesis.
    return stat[stat.rindex(")") + 2 :].split()[19]


@dataclass(frozen=True)
class WorkerIdentity:
    """Who holds an attempt, precisely enough to tell whether that process still exists."""

    host: str
    boot: str
    pid_namespace: str
    pid: int
    started: str

    @staticmethod
    def of_this_process() -> WorkerIdentity:
        return WorkerIdentity(
            host=socket.gethostname(),
            boot=_read_text("/proc/sys/kernel/random/boot_id"),
            pid_namespace=_pid_namespace(),
            pid=os.getpid(),
            started=process_start_ticks(os.getpid()) or "",
        )

    def render(self) -> str:
        return _SEPARATOR.join([_IDENTITY_PREFIX, self.host, self.boot, self.pid_namespace, str(self.pid), self.started])

    @property
    def task_queue(self) -> str:
        """This worker's own task queue: the merge and evaluation of a run it trained are offered here first, where
        the run's files already are (sticky routing; the workflow falls back to the shared queue)."""
        return f"{TaskQueue.ACCELERATOR.value}{_SEPARATOR}{self.render()}"

    @staticmethod
    def parse(text: str) -> WorkerIdentity | None:
        """The identity of a tuneflow worker, or None for any other worker's identity."""
        parts = text.split(_SEPARATOR)
        if len(parts) != 6 or parts[0] != _IDENTITY_PREFIX or not parts[4].isdigit():
            return None
        return WorkerIdentity(host=parts[1], boot=parts[2], pid_namespace=parts[3], pid=int(parts[4]), started=parts[5])

    def is_certainly_dead(self, observer: WorkerIdentity) -> bool:
        """True only when `observer`, a process on the same machine, can prove this worker no longer runs."""
        if self.host != observer.host:
            return False
        if self.boot and observer.boot and self.boot != observer.boot:
            return True  # the machine rebooted since
        if self.pid_namespace != observer.pid_namespace:
            return False  # another container: its PIDs are not ours to look up
        started = process_start_ticks(self.pid)
        # No such process, or a newer process that reuses the PID.
        return started is None or (bool(self.started) and bool(started) and started != self.started)


async def take_over_orphaned_attempts(client: Client, observer: WorkerIdentity) -> None:
    """Fails every started attempt held by a dead tuneflow worker of this machine, and logs each one."""
    query = f'ExecutionStatus="Running" AND TaskQueue="{TaskQueue.ORCHESTRATION.value}"'
    async for execution in client.list_workflows(query):
        description = await client.get_workflow_handle(execution.id, run_id=execution.run_id).describe()
        for pending in description.raw_description.pending_activities:
            if pending.state != PendingActivityState.PENDING_ACTIVITY_STATE_STARTED:
                continue
            holder = WorkerIdentity.parse(pending.last_worker_identity)
            if holder is None or not holder.is_certainly_dead(observer):
                continue
            handle = client.get_async_activity_handle(workflow_id=execution.id, run_id=execution.run_id, activity_id=pending.activity_id)
            error = ApplicationError(
                f"worker {pending.last_worker_identity} died holding attempt {pending.attempt}; taken over by {observer.render()}",
                type=FailureType.WORKER_LOST.value,
                next_retry_delay=_RETRY_AT_ONCE,
            )
            try:
                await handle.fail(error)
            except RPCError as rpc_error:
                # The attempt ended or timed out between the describe and now: nothing left to take over.
                if rpc_error.status == RPCStatusCode.NOT_FOUND:
                    continue
                raise
            logger.warning(
                "took over %s %s attempt %d from dead worker %s", execution.id, pending.activity_type.name, pending.attempt, pending.last_worker_identity
            )


async def keep_taking_over(client: Client, observer: WorkerIdentity) -> None:
    """Runs the takeover now and then every minute for the life of the worker; a failed round is logged, not fatal."""
    while True:
        try:
            await take_over_orphaned_attempts(client, observer)
        except Exception:  # the server may be restarting: try again next round
            logger.exception("taking over orphaned attempts failed; retrying in %.0f s", TAKEOVER_INTERVAL_SECONDS)
        await asyncio.sleep(TAKEOVER_INTERVAL_SECONDS)
