"""`python -m tuneflow_activities.worker`: the activity-only worker on task queue tuneflow-gpu.

It runs no workflows: the TypeScript workflow schedules these activities by name (see contract.py).
"""

# isort: off
from . import offline  # noqa: F401  (must precede every Hugging Face import)

# isort: on
import argparse
import asyncio
import datetime
import logging
import os
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from temporalio.client import Client
from temporalio.envconfig import ClientConfig
from temporalio.worker import Worker

from .contract import TaskQueue
from .loaders import unsloth_available
from .takeover import WorkerIdentity, keep_taking_over


def import_heavy_modules() -> None:
    """Imports what activities need before the worker polls.

    Importing transformers and peft takes 7-9 s on a small CPU and holds the GIL, so done inside an activity it
    starves the heartbeat thread (a heartbeat timeout) and a cancellation landing mid-import leaves a module
    half-imported for the life of the process. Unsloth patches transformers and peft at import, so it goes first.
    """
    import torch

    if torch.cuda.is_available() and unsloth_available():
        import unsloth  # noqa: F401  # pyright: ignore[reportMissingImports]  (GPU-only, absent from CPU environments)
    import peft  # noqa: F401
    import transformers  # noqa: F401
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401  (resolves the lazy modules)


def connect_config(address: str | None, namespace: str | None) -> dict:
    """Temporal's standard environment configuration (TEMPORAL_CONFIG_FILE's TEMPORAL_PROFILE, TEMPORAL_ADDRESS,
    TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*), as the TypeScript side and the temporal CLI read it;
    --address and --namespace override it. Address and namespace default to a local dev server."""
    config = dict(ClientConfig.load_client_connect_config())
    config.setdefault("target_host", "localhost:7233")
    config.setdefault("namespace", "default")
    if address:
        config["target_host"] = address
    if namespace:
        config["namespace"] = namespace
    return config


async def run(address: str | None, namespace: str | None, max_concurrent: int) -> None:
    import_heavy_modules()
    from .activities import ALL_ACTIVITIES, STICKY_ACTIVITIES, connect_workflow_link

    identity = WorkerIdentity.of_this_process()
    config = connect_config(address, namespace)
    address = config["target_host"]
    client = await Client.connect(**config, identity=identity.render())
    connect_workflow_link(client, asyncio.get_running_loop())
    # Training holds the whole accelerator, so by default one activity runs at a time.
    with ThreadPoolExecutor(max_workers=2 * max_concurrent + 1) as executor:

        def worker_on(task_queue: str, activities: Sequence[Callable[..., Any]]) -> Worker:
            return Worker(
                client,
                task_queue=task_queue,
                activities=activities,
                activity_executor=executor,
                max_concurrent_activities=max_concurrent,
                graceful_shutdown_timeout=datetime.timedelta(seconds=5),
                # Cancellation (pause, cancel) reaches an activity only in a heartbeat's reply: heartbeats go out at
                # least every 5 s whatever the heartbeat timeout, so a pause takes effect within a step or two.
                max_heartbeat_throttle_interval=datetime.timedelta(seconds=5),
                default_heartbeat_throttle_interval=datetime.timedelta(seconds=5),
            )

        worker = worker_on(TaskQueue.ACCELERATOR.value, ALL_ACTIVITIES)
        # The worker's own queue: merge and evaluation of the runs it trained, whose files it holds.
        sticky = worker_on(identity.task_queue, STICKY_ACTIVITIES)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signal_number, stop.set)
        async with worker, sticky:
            print(f"tuneflow gpu-worker ready on task queue {TaskQueue.ACCELERATOR.value} at {address}", flush=True)
            # Polling already: an attempt taken over from a dead predecessor can come straight back to this worker.
            takeover = asyncio.create_task(keep_taking_over(client, identity))
            await stop.wait()
            takeover.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", help="overrides the environment configuration's address")
    parser.add_argument("--namespace", help="overrides the environment configuration's namespace")
    parser.add_argument("--max-concurrent", type=int, default=int(os.environ.get("TUNEFLOW_GPU_WORKER_CONCURRENCY", "1")))
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run(arguments.address, arguments.namespace, arguments.max_concurrent))


if __name__ == "__main__":
    main()
