"""The worker zygote, on real processes: a server on a temporary socket forks a small probe module (not the worker,
whose imports the server skips: --no-preload), and each test checks what a supervisor of the connect process sees."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tuneflow_activities.zygote import READY_MESSAGE

PYTHON_ACTIVITIES = Path(__file__).resolve().parents[1]

# python -m probe ACTION PID_FILE [EXIT_CODE]: writes its pid, then does ACTION.
PROBE = """
import os, signal, sys, time
from pathlib import Path

action, pid_file = sys.argv[1], Path(sys.argv[2])
pid_file.write_text(str(os.getpid()))
if action == "exit":
    print(f"probe in {os.getcwd()} greets {os.environ['PROBE_GREETING']}", flush=True)
    sys.exit(int(sys.argv[3]))
if action == "kill-itself":
    os.kill(os.getpid(), signal.SIGKILL)
if action == "exit-on-sigterm":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(7))
print("waiting", flush=True)
time.sleep(60)
"""


@dataclass
class Zygote:
    socket: Path
    environment: dict[str, str]
    server: subprocess.Popen[str]
    workspace: Path

    def connect(self, *probe_arguments: str, environment: dict[str, str] | None = None) -> subprocess.Popen[str]:
        command = [sys.executable, "-m", "tuneflow_activities.zygote", "connect", str(self.socket), "--", "-m", "probe", *probe_arguments]
        return subprocess.Popen(command, cwd=self.workspace, env=environment or self.environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def zygote(tmp_path: Path) -> Iterator[Zygote]:
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "probe.py").write_text(PROBE)
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    environment = {**os.environ, "PYTHONPATH": f"{PYTHON_ACTIVITIES}{os.pathsep}{modules}", "PROBE_GREETING": "the client"}
    socket = tmp_path / "zygote.sock"
    command = [sys.executable, "-m", "tuneflow_activities.zygote", "serve", str(socket), "--no-preload"]
    server = subprocess.Popen(command, cwd=PYTHON_ACTIVITIES, env=environment, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    assert server.stdout.readline().strip() == READY_MESSAGE
    yield Zygote(socket=socket, environment=environment, server=server, workspace=workspace)
    server.terminate()
    server.wait(10)


def worker_pid(pid_file: Path) -> int:
    deadline = time.monotonic() + 10
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the probe never wrote its pid"
        time.sleep(0.05)
    return int(pid_file.read_text())


def wait_until_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} still runs")


def test_the_worker_runs_in_the_clients_directory_and_environment_and_its_exit_code_is_the_clients(zygote: Zygote, tmp_path: Path) -> None:
    client = zygote.connect("exit", str(tmp_path / "pid"), "3")
    stdout, stderr = client.communicate(timeout=30)
    assert (client.returncode, stdout) == (3, f"probe in {zygote.workspace} greets the client\n"), stderr
    assert worker_pid(tmp_path / "pid") != client.pid  # forked by the server, not the client itself


def test_a_worker_killed_by_a_signal_kills_its_client_with_the_same_signal(zygote: Zygote, tmp_path: Path) -> None:
    client = zygote.connect("kill-itself", str(tmp_path / "pid"))
    assert client.wait(30) == -signal.SIGKILL


def test_sigterm_to_the_client_reaches_the_worker(zygote: Zygote, tmp_path: Path) -> None:
    client = zygote.connect("exit-on-sigterm", str(tmp_path / "pid"))
    assert client.stdout is not None
    assert client.stdout.readline() == "waiting\n"
    client.terminate()
    assert client.wait(30) == 7


def test_a_sigkilled_client_takes_its_worker_with_it(zygote: Zygote, tmp_path: Path) -> None:
    client = zygote.connect("sleep", str(tmp_path / "pid"))
    pid = worker_pid(tmp_path / "pid")
    client.kill()
    client.wait(10)
    wait_until_gone(pid)


def test_a_stopped_server_kills_its_workers_and_removes_its_socket(zygote: Zygote, tmp_path: Path) -> None:
    client = zygote.connect("sleep", str(tmp_path / "pid"))
    pid = worker_pid(tmp_path / "pid")
    zygote.server.terminate()
    zygote.server.wait(10)
    wait_until_gone(pid)
    assert client.wait(10) == -signal.SIGKILL
    assert not zygote.socket.exists()


def test_a_different_import_time_variable_starts_the_worker_without_the_zygote(zygote: Zygote, tmp_path: Path) -> None:
    client = zygote.connect("exit", str(tmp_path / "pid"), "0", environment={**zygote.environment, "MALLOC_ARENA_MAX": "3"})
    stdout, stderr = client.communicate(timeout=60)
    assert (client.returncode, stdout) == (0, f"probe in {zygote.workspace} greets the client\n"), stderr
    assert "import-time variables differ from the zygote's: MALLOC_ARENA_MAX" in stderr
    assert worker_pid(tmp_path / "pid") == client.pid  # the client became the worker
