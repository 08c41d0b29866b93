"""`python -m tuneflow_activities.zygote`: a worker zygote, so that the test suite's many worker starts are cheap.

Each start of the activity worker spends ~5 s of CPU importing torch, transformers and peft, and the tests start
dozens of workers. `serve SOCKET` imports them once and forks a ready worker for every `connect SOCKET -- -m MODULE
ARGS...`, which stands in for `python -m MODULE ARGS...` in every way its supervisor can see: the worker reads and
writes the connect process's stdin, stdout and stderr; SIGTERM, SIGINT and SIGHUP sent to the connect process reach
the worker; the worker's exit code, or its death by a signal, becomes the connect process's own; and a connect
process that dies however it dies (SIGKILL included) takes its worker with it.

A forked worker inherits what the server imported, and modules read some variables once, at import: a request whose
import-time variables (IMPORT_TIME_VARIABLE_PREFIXES) differ from the server's is refused, and the connect process
becomes the plain `python -m MODULE ARGS...` instead. Linux only (SOCK_SEQPACKET, pidfds, the parent-death signal).

This module imports the standard library only, at module level: `connect` runs at every worker start and must stay
cheap; `serve` imports the heavy modules itself.
"""

import argparse
import contextlib
import ctypes
import importlib
import json
import os
import runpy
import selectors
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any, NoReturn, cast

READY_MESSAGE = "tuneflow worker zygote ready"

# Variables read while modules are imported (allocator, threading, cache and offline switches, Python's own start-up
# options such as PYTHONUNBUFFERED and PYTHONPATH, where the server's modules came from): a forked worker lives with
# the server's values, so a request whose values differ is refused. A name matching a prefix only needlessly costs
# that request the plain start; a name missing here gives a worker stale settings. object_store reads its two
# TUNEFLOW_ variables into module constants.
IMPORT_TIME_VARIABLE_PREFIXES = (
    "HF_",
    "TRANSFORMERS_",
    "OMP_",
    "MKL_",
    "MALLOC_",
    "PYTHON",
    "TORCH",
    "CUDA",
    "UNSLOTH_",
    "TOKENIZERS_",
    "HOME",
    "TMPDIR",
    "XDG_CACHE_HOME",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "TUNEFLOW_UPLOAD_PATIENCE_SECONDS",
    "TUNEFLOW_CACHE_LIMIT_GB",
)

# The signals a supervisor stops a process with: the connect process passes them on to its worker, and the server
# stops on them (killing its workers).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

# A request carries the whole environment; a SOCK_SEQPACKET message arrives whole or not at all.
_MESSAGE_BYTES = 1 << 20
_STANDARD_STREAMS = (0, 1, 2)
_PR_SET_PDEATHSIG = 1


class ZygoteRequestError(Exception):
    """A request the server cannot read: not one JSON message with argv, cwd, environ and three file descriptors."""


class UnsafeToForkError(Exception):
    """The server runs threads besides its main one: a forked child would inherit their locks but not the threads."""


def import_time_environment(environ: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in environ.items() if name.startswith(IMPORT_TIME_VARIABLE_PREFIXES)}


@dataclass(frozen=True)
class WorkerRequest:
    """`python -m module *arguments`, run in cwd with environ."""

    module: str
    arguments: list[str]
    cwd: str
    environ: dict[str, str]

    def command(self) -> list[str]:
        return ["-m", self.module, *self.arguments]

    def encode(self) -> bytes:
        return json.dumps({"argv": self.command(), "cwd": self.cwd, "environ": self.environ}).encode()

    @staticmethod
    def decode(message: bytes) -> "WorkerRequest":
        try:
            fields: object = json.loads(message)
        except ValueError as error:
            raise ZygoteRequestError(f"not JSON: {error}") from error
        if not isinstance(fields, dict):
            raise ZygoteRequestError("not a JSON object")
        request = cast(dict[str, object], fields)
        argv, cwd, environ = request.get("argv"), request.get("cwd"), request.get("environ")
        if not (isinstance(argv, list) and all(isinstance(part, str) for part in cast(list[object], argv))):
            raise ZygoteRequestError("argv is not a list of strings")
        if not isinstance(cwd, str):
            raise ZygoteRequestError("cwd is not a string")
        if not (isinstance(environ, dict) and all(isinstance(item, str) for pair in cast(dict[object, object], environ).items() for item in pair)):
            raise ZygoteRequestError("environ is not an object of strings")
        return WorkerRequest.from_command(cast(list[str], argv), cwd, cast(dict[str, str], environ))

    @staticmethod
    def from_command(command: Sequence[str], cwd: str, environ: Mapping[str, str]) -> "WorkerRequest":
        if len(command) < 2 or command[0] != "-m":
            raise ZygoteRequestError(f"the command is not `-m MODULE ARGS...`: {list(command)}")
        return WorkerRequest(module=command[1], arguments=list(command[2:]), cwd=cwd, environ=dict(environ))


# ---------------------------------------------------------------------------------------------------------------
# The server.


@dataclass
class _Worker:
    pid: int
    pidfd: int
    # The connect process's connection; None once the connect process is gone or told how the worker ended.
    connection: socket.socket | None


class _Server:
    """One thread, one selector: the listening socket, each connect process's connection, each worker's pidfd, and
    the stop signals."""

    def __init__(self, listener: socket.socket, own_import_time_environment: dict[str, str]) -> None:
        self.listener = listener
        self.own_import_time_environment = own_import_time_environment
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, selectors.EVENT_READ, self._accept)
        self.workers: dict[int, _Worker] = {}
        # A stop signal arrives as a byte on this pair (signal.set_wakeup_fd): the server stops between two events,
        # never in the middle of one (a worker half reaped). The supervisor stops the server with SIGTERM, and its
        # parent-death signal (processes.ts) is SIGTERM too.
        self.signals, self.signal_writer = socket.socketpair()
        self.signal_writer.setblocking(False)
        self.selector.register(self.signals, selectors.EVENT_READ, self._stop)
        signal.set_wakeup_fd(self.signal_writer.fileno())
        for signal_number in STOP_SIGNALS:
            signal.signal(signal_number, _ignore_signal)
        self.stopping = False

    def serve_until_stopped(self) -> None:
        while not self.stopping:
            for key, _ in self.selector.select():
                on_readable: Callable[[], None] = key.data
                on_readable()

    def _stop(self) -> None:
        self.signals.recv(64)
        self.stopping = True

    def kill_workers(self) -> None:
        for worker in self.workers.values():
            signal.pidfd_send_signal(worker.pidfd, signal.SIGKILL)
        for worker in list(self.workers.values()):
            self._reap(worker)

    def _accept(self) -> None:
        connection, _ = self.listener.accept()
        self.selector.register(connection, selectors.EVENT_READ, lambda: self._receive_request(connection))

    def _receive_request(self, connection: socket.socket) -> None:
        self.selector.unregister(connection)
        try:
            message, fds, flags, _ = socket.recv_fds(connection, _MESSAGE_BYTES, len(_STANDARD_STREAMS))
        except OSError:
            connection.close()  # the connect process died mid-request
            return
        try:
            if not message:
                connection.close()  # the connect process left before asking
                return
            if flags & socket.MSG_TRUNC or len(fds) != len(_STANDARD_STREAMS):
                raise ZygoteRequestError(f"a message of {_MESSAGE_BYTES} bytes at most and {len(_STANDARD_STREAMS)} descriptors expected")
            request = WorkerRequest.decode(message)
            refusal = self._refusal(request)
            if refusal:
                _tell(connection, {"refused": refusal})
                connection.close()
                return
            pid = self._fork_worker(request, fds, connection)
        except ZygoteRequestError as error:
            print(f"worker zygote: request refused: {error}", file=sys.stderr, flush=True)
            connection.close()
            return
        finally:
            for fd in fds:
                os.close(fd)
        worker = _Worker(pid=pid, pidfd=os.pidfd_open(pid), connection=connection)
        self.workers[pid] = worker
        self.selector.register(worker.pidfd, selectors.EVENT_READ, lambda: self._reap(worker))
        # The connect process sends nothing more: its connection turns readable when it is gone.
        self.selector.register(connection, selectors.EVENT_READ, lambda: self._connect_process_gone(worker))
        _tell(connection, {"pid": pid})

    def _refusal(self, request: WorkerRequest) -> str | None:
        theirs = import_time_environment(request.environ)
        ours = self.own_import_time_environment
        differing = sorted(name for name in theirs.keys() | ours.keys() if theirs.get(name) != ours.get(name))
        return f"import-time variables differ from the zygote's: {', '.join(differing)}" if differing else None

    def _fork_worker(self, request: WorkerRequest, fds: list[int], connection: socket.socket) -> int:
        if threading.active_count() != 1:
            raise UnsafeToForkError(f"threads running: {threading.enumerate()}")
        server_pid = os.getpid()
        # Until the child has its own handlers, a stop signal would run the server's (kill every worker) in the child.
        server_mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        pid = os.fork()
        if pid == 0:
            self._close_in_worker(connection)
            _become_worker(request, fds, server_pid, server_mask)
        signal.pthread_sigmask(signal.SIG_SETMASK, server_mask)
        return pid

    def _close_in_worker(self, connection: socket.socket) -> None:
        """Closes the server's descriptors in a forked worker, its request's connection and the other workers' among
        them: neither the connect processes nor the workers must be kept from seeing the server go."""
        connection.close()
        signal.set_wakeup_fd(-1)
        self.signal_writer.close()
        for key in list(self.selector.get_map().values()):
            fileobj = key.fileobj
            if isinstance(fileobj, socket.socket):
                fileobj.close()
            elif isinstance(fileobj, int):
                os.close(fileobj)
        self.selector.close()

    def _connect_process_gone(self, worker: _Worker) -> None:
        """Kills the worker and waits for it: once its supervisor has seen the connect process die, the next worker it
        starts (forked in a fraction of a second) must find this one gone, as the takeover of its attempt requires."""
        self._drop_connection(worker)
        signal.pidfd_send_signal(worker.pidfd, signal.SIGKILL)
        self._reap(worker)

    def _reap(self, worker: _Worker) -> None:
        _, status = os.waitpid(worker.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if worker.connection is not None:
            _tell(worker.connection, {"signal": -code} if code < 0 else {"exit_code": code})
            self._drop_connection(worker)
        self.selector.unregister(worker.pidfd)
        os.close(worker.pidfd)
        del self.workers[worker.pid]

    def _drop_connection(self, worker: _Worker) -> None:
        if worker.connection is None:
            return
        self.selector.unregister(worker.connection)
        worker.connection.close()
        worker.connection = None


def _tell(connection: socket.socket, message: dict[str, Any]) -> None:
    """Sends a message to a connect process, if it is still there; if it is not, the end of its connection tells the
    server's loop (its worker, if any, is killed then)."""
    with contextlib.suppress(OSError):
        connection.send(json.dumps(message).encode())


def _become_worker(request: WorkerRequest, fds: list[int], server_pid: int, server_mask: Iterable[int]) -> NoReturn:
    """Runs in the forked child: `python -m module *arguments` as it would start, minus the imports. Ends with
    os._exit, so that none of the server's atexit handlers or finalizers run here."""
    code = 1
    try:
        # A worker never outlives its zygote (SIGKILLed, a server cannot kill its workers).
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != server_pid:
            os._exit(code)
        for target, fd in zip(_STANDARD_STREAMS, fds, strict=True):
            os.dup2(fd, target)
        for fd in fds:
            os.close(fd)
        os.chdir(request.cwd)
        os.environ.clear()
        os.environ.update(request.environ)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for signal_number in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(signal_number, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, server_mask)
        # random reseeds itself in a forked child (os.register_at_fork); the offline switch reads the environment.
        from . import offline

        importlib.reload(offline)
        # As `python -m` has it: the working directory first on the path, the module run as __main__ only.
        sys.path[0] = request.cwd
        sys.argv = [request.module, *request.arguments]
        sys.modules.pop(request.module, None)
        runpy.run_module(request.module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exit_request:
        code = _exit_code(exit_request)
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # the reader is gone; the exit code still tells
                stream.flush()
        os._exit(code)


def _ignore_signal(_signal_number: int, _frame: FrameType | None) -> None:
    """The Python-level handler that makes a signal a byte on the wakeup fd (the server reads it in its loop)."""


def _exit_code(exit_request: SystemExit) -> int:
    """What the interpreter makes of `sys.exit(value)`: None is 0, an int is itself, anything else is printed and is 1."""
    if exit_request.code is None:
        return 0
    if isinstance(exit_request.code, int):
        return exit_request.code
    print(exit_request.code, file=sys.stderr)
    return 1


def serve(socket_path: str, preload: bool) -> NoReturn:
    own_import_time_environment = import_time_environment(os.environ)  # before offline sets its variables
    importlib.import_module(".offline", __package__)  # its switches, before every Hugging Face import
    if preload:
        from . import worker

        worker.import_heavy_modules()
        importlib.import_module(".activities", __package__)  # what the worker imports next, before it polls
        # Temporal's Worker hashes the bytecode of every loaded module into its default build id (0.5 s of CPU) and
        # memoizes it: hashed here once, every forked worker reuses it.
        from temporalio.worker._worker import load_default_build_id

        load_default_build_id()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(socket_path)
    server = _Server(listener, own_import_time_environment)
    listener.listen(64)
    print(READY_MESSAGE, flush=True)
    try:
        server.serve_until_stopped()
    finally:
        server.kill_workers()
        os.unlink(socket_path)
    os._exit(0)  # nothing of the imported libraries' finalization is needed


# ---------------------------------------------------------------------------------------------------------------
# The client.


def connect(socket_path: str, request: WorkerRequest) -> NoReturn:
    """Becomes the worker as far as its supervisor can tell (see the module's description)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as connection:
        connection.connect(socket_path)
        socket.send_fds(connection, [request.encode()], list(_STANDARD_STREAMS))
        reply = _receive(connection)
        if "refused" in reply:
            print(f"worker zygote: {reply['refused']}; starting the worker without it", file=sys.stderr, flush=True)
            connection.close()
            os.execv(sys.executable, [sys.executable, *request.command()])
        pid: int = reply["pid"]

        def forward(signal_number: int, _frame: FrameType | None) -> None:
            os.kill(pid, signal_number)

        for signal_number in STOP_SIGNALS:
            signal.signal(signal_number, forward)
        outcome = _receive(connection)
    if "signal" in outcome:
        signal_number: int = outcome["signal"]
        with contextlib.suppress(OSError):  # SIGKILL and SIGSTOP have no handler to reset
            signal.signal(signal_number, signal.SIG_DFL)
        os.kill(os.getpid(), signal_number)
        sys.exit(128 + signal_number)  # a signal that does not end a process (SIGCHLD, SIGWINCH)
    sys.exit(outcome["exit_code"])


def _receive(connection: socket.socket) -> dict[str, Any]:
    message = connection.recv(_MESSAGE_BYTES)
    if not message:
        print("worker zygote: the server went away, and its workers with it", file=sys.stderr, flush=True)
        sys.exit(1)
    return json.loads(message)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    serving = commands.add_parser("serve", help="import the worker's modules once, then fork a worker for each connect")
    serving.add_argument("socket")
    # Only the zygote's own tests skip the heavy imports: they fork small test modules, and pay seconds per server.
    serving.add_argument("--no-preload", dest="preload", action="store_false", help="skip importing torch, transformers, peft and the activities")
    connecting = commands.add_parser("connect", help="run `python -m MODULE ARGS...` as a worker forked by the zygote")
    connecting.add_argument("socket")
    connecting.add_argument("worker_command", nargs=argparse.REMAINDER, metavar="-- -m MODULE ARGS...")
    arguments = parser.parse_args()
    if arguments.command == "serve":
        serve(arguments.socket, arguments.preload)
    command: list[str] = arguments.worker_command
    if command[:1] == ["--"]:
        command = command[1:]
    try:
        request = WorkerRequest.from_command(command, os.getcwd(), os.environ)
    except ZygoteRequestError as error:
        parser.error(str(error))
    connect(arguments.socket, request)


if __name__ == "__main__":
    main()
