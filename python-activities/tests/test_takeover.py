"""A worker may take over another's attempt only when it can prove that worker is dead."""

import dataclasses
import subprocess
import sys

from tuneflow_activities.takeover import WorkerIdentity, process_start_ticks


def identity_of(pid: int) -> WorkerIdentity:
    me = WorkerIdentity.of_this_process()
    return dataclasses.replace(me, pid=pid, started=process_start_ticks(pid) or "")


def test_identity_round_trips_and_ignores_other_workers():
    me = WorkerIdentity.of_this_process()
    assert me.started, "Linux gives every process a start time"
    assert WorkerIdentity.parse(me.render()) == me
    assert WorkerIdentity.parse("12345@some-host") is None  # a default SDK identity: never ours to judge
    assert WorkerIdentity.parse("tuneflow-gpu/host/boot/ns/not-a-pid/1") is None


def test_a_killed_process_is_dead_and_a_live_one_is_not():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        holder = identity_of(child.pid)
        me = WorkerIdentity.of_this_process()
        assert not holder.is_certainly_dead(me)
        assert not me.is_certainly_dead(me)
    finally:
        child.kill()
        child.wait()
    assert holder.is_certainly_dead(WorkerIdentity.of_this_process())


def test_a_reused_pid_is_dead():
    me = WorkerIdentity.of_this_process()
    # Same PID, earlier start: the process that held the attempt is gone and a newer one has its number.
    predecessor = dataclasses.replace(me, started=str(int(me.started) - 1))
    assert predecessor.is_certainly_dead(me)


def test_other_machines_and_containers_are_left_to_the_heartbeat_timeout():
    me = WorkerIdentity.of_this_process()
    gone = dataclasses.replace(me, pid=2**22 + 7, started="1")  # no such PID on Linux (pid_max ≤ 2^22)
    assert gone.is_certainly_dead(me)
    assert not dataclasses.replace(gone, host="another-host").is_certainly_dead(me)
    assert not dataclasses.replace(gone, pid_namespace="4026530000").is_certainly_dead(me)
    # A reboot ends every process of the machine, whatever container it ran in.
    assert dataclasses.replace(gone, boot="00000000-0000-0000-0000-000000000000", pid_namespace="4026530000").is_certainly_dead(me)
