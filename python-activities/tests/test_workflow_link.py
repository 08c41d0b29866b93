"""The train activity's line to its workflow must never hold training up: while the workflow's (TypeScript) worker
is away a query waits until its timeout, and polling it every few seconds from the training thread would stall every
step. Signals still go out in order (the workflow learns of checkpoints from them) and are all sent before the
activity returns. The Temporal client is replaced by a slow stand-in; the link itself is the code under test."""

import asyncio
import threading
import time
from datetime import timedelta

import pytest
from temporalio.testing import ActivityEnvironment

from tuneflow_activities.activities import WorkflowLink
from tuneflow_activities.contract import WorkflowMessage


class AwayWorkerHandle:
    """A workflow whose worker is down: queries hang until their timeout; signals reach the server, slowly."""

    def __init__(self, query_seconds: float):
        self.query_seconds = query_seconds
        self.signals: list[int] = []

    async def query(self, name: str, *, rpc_timeout: timedelta) -> dict:
        await asyncio.sleep(min(self.query_seconds, rpc_timeout.total_seconds()))
        return {"checkpoint_requests": 1}

    async def signal(self, name: str, payload: dict, *, rpc_timeout: timedelta) -> None:
        # Later signals finish faster: only the link's chaining keeps them in order.
        await asyncio.sleep(0.05 / (1 + payload["step"]))
        self.signals.append(payload["step"])


class Client:
    def __init__(self, handle: AwayWorkerHandle):
        self.handle = handle

    def get_workflow_handle(self, workflow_id: str, *, run_id: str | None) -> AwayWorkerHandle:
        return self.handle


@pytest.fixture
def worker_loop():
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join()


def in_activity(function):
    return ActivityEnvironment().run(function)


def test_a_poll_returns_at_once_while_the_workflow_worker_is_away(worker_loop):
    link = WorkflowLink(Client(AwayWorkerHandle(query_seconds=0.5)), worker_loop)  # type: ignore[arg-type]

    def poll_six_times() -> list[tuple[float, dict | None]]:
        answers = []
        for _ in range(6):
            began = time.monotonic()
            answer = link.poll(WorkflowMessage.TRAINING_CONTROL)
            answers.append((time.monotonic() - began, answer))
        return answers

    answers = in_activity(poll_six_times)
    assert all(seconds < 0.05 for seconds, _ in answers), answers
    assert all(answer is None for _, answer in answers)  # the query is still out: no answer yet, and no wait
    time.sleep(0.6)
    assert in_activity(lambda: link.poll(WorkflowMessage.TRAINING_CONTROL)) == {"checkpoint_requests": 1}


def test_ask_waits_for_the_answer_but_no_longer_than_the_timeout(worker_loop):
    answered = WorkflowLink(Client(AwayWorkerHandle(query_seconds=0.1)), worker_loop)  # type: ignore[arg-type]
    assert in_activity(lambda: answered.ask(WorkflowMessage.TRAINING_CONTROL)) == {"checkpoint_requests": 1}


def test_signals_go_in_order_without_blocking_and_flush_waits_for_all(worker_loop):
    handle = AwayWorkerHandle(query_seconds=0)
    link = WorkflowLink(Client(handle), worker_loop)  # type: ignore[arg-type]

    def send_ten() -> float:
        began = time.monotonic()
        for step in range(10):
            link.signal(WorkflowMessage.TRAINING_PROGRESS, {"step": step})
        return time.monotonic() - began

    assert in_activity(send_ten) < 0.05
    link.flush()
    assert handle.signals == list(range(10))
