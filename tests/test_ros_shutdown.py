"""How nodes and the launcher stop.

A node stops on SIGINT or SIGTERM with exit code 0 and no traceback (the signal only sets a
flag that the spin loop reads; ``intball_ros.nodes.spin_until_signal``). A child that ignores
both is asked for its stacks (SIGUSR1) before the launcher kills it, so a hang is reported with
its place instead of a bare "-9".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from ros_graph_helpers import ensure_domain_id

from intball_ros import launcher, names


def _wait_line(proc: subprocess.Popen, needle: str, timeout: float) -> str:
    """Read the child's output until a line contains ``needle``; returns what was read."""
    seen, deadline = [], time.monotonic() + timeout
    os.set_blocking(proc.stdout.fileno(), False)
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line:
            seen.append(line)
            if needle in line:
                return "".join(seen)
        elif proc.poll() is not None:
            break
        else:
            time.sleep(0.05)
    raise AssertionError(f"no {needle!r} from the child; it printed:\n{''.join(seen)}")


def _start_node(module: str) -> subprocess.Popen:
    """A node process started the way the launcher starts it (through intball_ros.boot)."""
    ensure_domain_id()
    env = dict(os.environ, PYTHONUNBUFFERED="1", ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    return subprocess.Popen(
        [sys.executable, "-m", "intball_ros.boot", module, "--ros-args", "-r", "__node:=probe"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )


@pytest.mark.ros
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_node_stops_on_a_signal_with_exit_code_0_and_no_traceback(sig):
    proc = _start_node("control_node")
    try:
        before = _wait_line(proc, "control at", 60.0)  # spinning
        proc.send_signal(sig)
        rest, _ = proc.communicate(timeout=20.0)
        assert proc.returncode == 0, before + rest
        assert "Traceback" not in before + rest and "KeyboardInterrupt" not in rest, before + rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.ros
def test_a_ctrl_c_while_the_node_is_still_importing_ends_it_quietly():
    proc = _start_node("control_node")
    try:
        time.sleep(0.3)  # the imports (rclpy, scipy, ...) take seconds
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60.0)
        assert proc.returncode == 0, out
        assert "Traceback" not in out and "KeyboardInterrupt" not in out, out
        assert "control at" not in out  # it never started spinning
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


STUBBORN = textwrap.dedent(
    """
    import faulthandler, signal, sys, time
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    def stuck_in_shutdown():
        while True:
            time.sleep(0.01)
    print("ready", flush=True)
    stuck_in_shutdown()
    """
)


def test_a_child_that_ignores_sigint_and_sigterm_reports_its_stacks_then_is_killed(tmp_path, capfd):
    log = tmp_path / "child.log"
    with open(log, "wb") as out:
        child = subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20.0
        while b"ready" not in log.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.05)
        launcher.stop_processes({names.CONTROL_NODE: child}, timeout=0.5)
    assert child.returncode == -signal.SIGKILL
    printed = capfd.readouterr().out
    assert f"intball up: {names.CONTROL_NODE} ignored SIGINT and SIGTERM; its stacks follow" in printed
    stacks = log.read_text()
    assert "stuck_in_shutdown" in stacks and "Current thread" in stacks, stacks
