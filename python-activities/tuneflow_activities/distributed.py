"""One run over several processes of one machine: one per GPU (NCCL), or several on a CPU (gloo).

The setup says how many processes and how they share the work (TrainingSetup.processes / .parallelism, decided in
TypeScript); this module only carries it out:

- `launch` (in the activity's process) starts the ranks, answers rank 0's control questions with the activity's
  callbacks, forwards its progress, and turns the ranks' outcome into the activity's: a result, a stop, a typed
  failure. One rank that dies takes the others with it, and every rank dies with the activity's process.
- `World` (in each rank) is what the training engine needs of the others: agree on rank 0's decisions, sum numbers
  and gradients, gather per-rank state.

Why not torchrun: its workers outlive a SIGKILLed launcher (they would hold the GPUs after a worker crash), and the
activity has to stay the one process that talks to Temporal. torch.multiprocessing starts and watches the ranks; the
rendezvous is a file in a private directory, so no port is chosen or raced for.
"""

import contextlib
import ctypes
import logging
import os
import secrets
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Client, Connection, Listener, wait
from pathlib import Path
from typing import Any, TypeVar, cast

from .contract import FailureType
from .errors import failure, is_out_of_memory
from .payloads import TrainingSetup, TrainRequest

logger = logging.getLogger(__name__)

# How long the launcher waits, after one rank failed, for the others to report before it stops them.
FAILED_RANK_GRACE_SECONDS = 5.0
POLL_SECONDS = 0.2
PR_SET_PDEATHSIG = 1
# For the benchmark on a machine with one GPU: every rank trains on GPU 0 and they talk over gloo (NCCL refuses two
# ranks on one device). It runs the multi-rank path on a real GPU; its throughput says nothing about scaling.
RANKS_SHARE_ONE_GPU = "TUNEFLOW_RANKS_SHARE_ONE_GPU"


def _ranks_share_one_gpu() -> bool:
    return os.environ.get(RANKS_SHARE_ONE_GPU) == "1"


Agreed = TypeVar("Agreed")


@dataclass(frozen=True)
class World:
    """This process's place among the run's processes; World.single() for a run of one, where every method is free."""

    rank: int = 0
    size: int = 1
    device: str = "cpu"

    @staticmethod
    def single() -> "World":
        return World()

    @property
    def main(self) -> bool:
        """Rank 0 reports, decides and writes; the others compute."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def agree(self, value: Agreed) -> Agreed:
        """Rank 0's value on every rank: decisions that depend on time or on the workflow (stop, checkpoint now) must
        be the same everywhere, or the ranks' collective calls would no longer match."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        holder = [value if self.main else None]
        dist.broadcast_object_list(holder, src=0)
        return cast(Agreed, holder[0])

    def sum(self, *numbers: float) -> list[float]:
        """Each number summed over the ranks (float64: token counts stay exact)."""
        if not self.distributed:
            return list(numbers)
        import torch
        import torch.distributed as dist

        values = torch.tensor(numbers, dtype=torch.float64, device=self.device)
        dist.all_reduce(values)
        return values.tolist()

    def sum_gradients(self, parameters: list) -> None:
        """Data parallel: every rank's gradients become the sum over the ranks, in one all-reduce of one flat buffer.

        Each rank's loss is already divided by the trained tokens of the whole step (all ranks), so the sum is the
        gradient of the step exactly. This is what DistributedDataParallel does for the adapter; done by hand because
        only the LoRA weights train (tens of MB, one reduction per step is cheap) and because DDP's bucket hooks do
        not agree with Unsloth's offloaded gradient checkpointing.
        """
        if not self.distributed:
            return
        import torch
        import torch.distributed as dist
        from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

        gradients = [parameter.grad if parameter.grad is not None else torch.zeros_like(parameter) for parameter in parameters]
        flat = _flatten_dense_tensors(gradients)
        dist.all_reduce(flat)
        for parameter, summed in zip(parameters, _unflatten_dense_tensors(flat, gradients), strict=True):
            parameter.grad = summed

    def broadcast_parameters(self, parameters: list) -> None:
        """Rank 0's values on every rank (the adapter's initial weights: seeded alike, but made certain)."""
        if not self.distributed:
            return
        import torch.distributed as dist

        for parameter in parameters:
            dist.broadcast(parameter.data, src=0)

    def gather(self, value) -> list | None:
        """Every rank's value, in rank order, on rank 0 (None elsewhere)."""
        if not self.distributed:
            return [value]
        import torch.distributed as dist

        gathered = [None] * self.size if self.main else None
        dist.gather_object(value, gathered, dst=0)
        return gathered

    def fill_to(self, mine: list[tuple[list, bool]], step_batches: list) -> list[tuple[list, bool]]:
        """This rank's (micro-batch, counted) pairs, made as many as the busiest rank's with uncounted repeats: the
        sharded ranks all-gather in every forward, so each must run as many as the others (a short last step)."""
        busiest = -(-len(step_batches) // self.size)
        return mine + [(step_batches[0], False)] * (busiest - len(mine))


def _die_with_parent() -> None:
    """Linux: this process gets SIGKILL when the thread that started it ends (the activity worker died)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class RankLink:
    """A rank's end of the connection to the launcher. Rank 0 reports and asks; every rank reports its outcome."""

    def __init__(self, connection: Connection):
        self._connection = connection
        self._lock = threading.Lock()

    def send(self, kind: str, payload=None) -> None:
        with self._lock:
            self._connection.send((kind, payload))

    def ask(self, question: str) -> bool:
        with self._lock:
            self._connection.send(("ask", question))
            return self._connection.recv()


def _rank_main(rank: int, request: TrainRequest, size: int, directory: str, address: str, authkey: bytes) -> None:
    """One rank: join the process group, train with the engine, tell the launcher how it ended."""
    _die_with_parent()
    # Imported here: the ranks are fresh interpreters (spawn), the launcher's module globals are not theirs.
    import torch
    import torch.distributed as dist
    from temporalio.exceptions import ApplicationError

    from . import training

    setup = request.setup
    nccl = setup.device == "cuda" and not _ranks_share_one_gpu()
    if setup.device == "cuda":
        torch.cuda.set_device(rank if nccl else 0)
    dist.init_process_group(
        "nccl" if nccl else "gloo",
        init_method=Path(directory, "rendezvous").as_uri(),
        rank=rank,
        world_size=size,
        device_id=torch.device("cuda", rank) if nccl else None,
    )
    link = RankLink(Client(address, authkey=authkey))
    world = World(rank=rank, size=size, device="cuda" if setup.device == "cuda" else "cpu")
    try:
        callbacks = (
            training.Callbacks(
                report=lambda heartbeat: link.send("report", heartbeat),
                should_stop=lambda: link.ask("should_stop"),
                checkpoint_requested=lambda: link.ask("checkpoint_requested"),
                progressed=lambda message: link.send("progressed", message),
            )
            if world.main
            else training.Callbacks()
        )
        result = training.run_engine(request, callbacks, world)
        link.send("result", result if world.main else None)
    except training.StopRequested as stop:
        link.send("stopped", {"step": stop.step, "uri": stop.uri})
    except ApplicationError as error:
        link.send("failure", {"type": error.type, "message": str(error), "details": list(error.details)})
    except RuntimeError as error:
        if not is_out_of_memory(error):
            raise
        link.send("out_of_memory", f"rank {rank}: {error}")
    finally:
        with contextlib.suppress(Exception):
            dist.destroy_process_group()


class RanksFailed(RuntimeError):
    """A rank died or raised something that is not a typed failure; the message carries its traceback."""


def launch(request: TrainRequest, processes: int, callbacks) -> dict:
    """Trains `request` with `processes` ranks and returns rank 0's result; `callbacks` (training.Callbacks) answer
    rank 0's questions and receive its reports.

    A stop (pause, cancel) raises training.StopRequested once every rank has stopped at the same step; a typed failure
    of any rank (an incompatible checkpoint, bad data) is raised as that failure; out of memory on any rank is raised
    as the RuntimeError the activity turns into OUT_OF_MEMORY; anything else stops every rank and raises RanksFailed.
    """
    from torch.multiprocessing.spawn import start_processes

    require_devices(request.setup)

    with tempfile.TemporaryDirectory(prefix="tuneflow-ranks-") as directory:
        authkey = secrets.token_bytes(32)
        address = str(Path(directory, "launcher.sock"))
        with Listener(address, family="AF_UNIX", authkey=authkey) as listener:
            context = start_processes(_rank_main, args=(request, processes, directory, address, authkey), nprocs=processes, join=False, start_method="spawn")
            connections: list[Connection] = []
            accepting = threading.Thread(target=_accept, args=(listener, processes, connections), name="tuneflow-ranks-accept", daemon=True)
            accepting.start()
            try:
                outcomes = _serve(context, connections, processes, callbacks)
            finally:
                _stop_all(context)
    return _outcome_of(outcomes)


def _accept(listener: Listener, processes: int, connections: list[Connection]) -> None:
    # A rank that dies before it connects leaves this waiting until the listener closes.
    with contextlib.suppress(OSError):
        for _ in range(processes):
            connections.append(listener.accept())


def _serve(context, connections: list[Connection], processes: int, callbacks) -> list[tuple[str, Any]]:
    """Answers the ranks until each has reported how it ended, or one failed and the others had their grace."""
    # (kind, payload) as _rank_main sent it: a dict for result, failure and stopped, a string for out_of_memory.
    outcomes: list[tuple[str, Any]] = []
    failed_at: float | None = None
    while len(outcomes) < processes:
        try:
            # True once every rank exited cleanly; raises when one died or raised (and stops the others).
            exited = context.join(timeout=0)
        except Exception as error:
            if any(kind in ("failure", "out_of_memory", "stopped") for kind, _ in outcomes):
                break
            raise RanksFailed(str(error)) from None
        # wait() returns what it was given that is ready: only Connections here.
        ready = cast("list[Connection]", wait(list(connections), timeout=POLL_SECONDS)) if connections else []
        for connection in ready:
            try:
                kind, payload = connection.recv()
            except EOFError:
                connections.remove(connection)
                continue
            if kind == "ask":
                connection.send(bool(callbacks.should_stop() if payload == "should_stop" else callbacks.checkpoint_requested()))
            elif kind == "report":
                callbacks.report(payload)
            elif kind == "progressed":
                callbacks.progressed(payload)
            else:
                outcomes.append((kind, payload))
                if kind in ("failure", "out_of_memory") and failed_at is None:
                    failed_at = time.monotonic()
        if failed_at is not None and time.monotonic() - failed_at > FAILED_RANK_GRACE_SECONDS:
            break
        if exited and not connections:
            break
        if not connections:
            time.sleep(POLL_SECONDS)
    return outcomes


def _stop_all(context) -> None:
    for process in context.processes:
        if process.is_alive():
            process.kill()
    for process in context.processes:
        process.join()


def _outcome_of(outcomes: list[tuple[str, Any]]) -> dict:
    from .training import StopRequested

    by_kind = dict(outcomes)
    if "failure" in by_kind:
        typed = by_kind["failure"]
        details = typed["details"][0] if typed["details"] else {}
        raise failure(FailureType(typed["type"]), typed["message"], **details)
    if "out_of_memory" in by_kind:
        raise RuntimeError(f"CUDA out of memory on one of the ranks: {by_kind['out_of_memory']}")
    if "stopped" in by_kind:
        raise StopRequested(**by_kind["stopped"])
    results = [payload for kind, payload in outcomes if kind == "result" and payload is not None]
    if not results:
        raise RanksFailed(f"the ranks ended without a result: {outcomes}")
    return results[0]


def available_devices(setup) -> int:
    """GPUs this worker can give the run (a CPU run has as many processes as it asks for)."""
    if setup.device != "cuda":
        return setup.processes
    import torch

    return torch.cuda.device_count()


def require_devices(setup: TrainingSetup) -> None:
    available = available_devices(setup)
    if available < setup.processes and not _ranks_share_one_gpu():
        raise failure(
            FailureType.INVALID_SPEC,
            f"the run trains on {setup.processes} GPUs (device.gpu_count) but this worker has {available}",
            field="device.gpu_count",
        )
