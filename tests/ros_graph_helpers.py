"""Helpers for tests and benchmarks that start `intball up` and talk to it with plain rclpy."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def ensure_domain_id() -> str:
    """Per-run ROS_DOMAIN_ID (tests/conftest.py may already have set one)."""
    return os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 200))


def isolated_domain_id() -> str:
    """A domain no other graph of this module uses (tests/conftest.py gives each module an even
    offset), for a test that talks to its graph only through the launcher's output."""
    return str(int(ensure_domain_id()) + 1)


class Graph:
    """`intball up ARGS` as a child process; output goes to a log file (read with .output())."""

    def __init__(self, args: list[str], log: Path, *, domain_id: str | None = None) -> None:
        ensure_domain_id()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if domain_id is not None:  # a graph the test reaches only through its output
            env["ROS_DOMAIN_ID"] = domain_id
        env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        self.log = log
        self._file = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "intball_ros.cli", "up", *args],
            stdout=self._file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_output(self, pattern: str, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.output())
            if m:
                return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"no {pattern!r} in launcher output:\n{self.output()[-4000:]}")

    def child_pids(self, timeout: float = 30.0) -> dict[str, int]:
        m = self.wait_output(r"intball up: pids (.*)\n", timeout)
        return {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split(", "))}

    def interrupt(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.wait(timeout)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"launcher still running after {timeout} s:\n{self.output()[-4000:]}"
            ) from None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._file.close()


def pid_alive(pid: int) -> bool:
    """True if pid exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def spin_until(
    node, predicate: Callable[[], object], timeout: float, what: str | Callable[[], str], step: float = 0.05
):
    """Spin ``node`` (a node, or an executor holding several) until predicate() is truthy;
    returns its value or fails naming ``what`` (a callable is called then: e.g. the graph's output
    at the time of the failure, not at the call)."""
    import rclpy
    from rclpy.executors import Executor

    spin_once = (
        node.spin_once
        if isinstance(node, Executor)
        else lambda timeout_sec: rclpy.spin_once(node, timeout_sec=timeout_sec)
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        spin_once(timeout_sec=step)
        value = predicate()
        if value:
            return value
    raise AssertionError(f"timed out after {timeout} s waiting for {what() if callable(what) else what}")


@contextlib.contextmanager
def rclpy_initialised():
    """``rclpy.init()`` for the length of a with-block (in a fixture: around its ``yield``).

    The default context is shut down however the block ends. A set-up that fails half-way (a
    timeout waiting for a server, say) must not leave it initialised: every later
    ``rclpy.init()`` in the session would raise "Context.init() must only be called once"."""
    import rclpy

    rclpy.init()
    try:
        yield
    finally:
        rclpy.try_shutdown()


ACTION_SERVICES = ("send_goal", "cancel_goal", "get_result")


def action_server_seen(node, action: str) -> str:
    """What ``node``'s graph knows of ``action``'s five endpoints, for a failed wait: the goal,
    cancel and result services and the feedback and status publishers."""
    base = action.rstrip("/") + "/_action/"
    services = {name for name, _ in node.get_service_names_and_types()}
    parts = [
        f"{s}: {'seen' if base + s in services else 'not seen'}"
        for s in ("send_goal", "cancel_goal", "get_result")
    ]
    parts += [f"{t} publishers: {node.count_publishers(base + t)}" for t in ("feedback", "status")]
    return f"{action} ({', '.join(parts)})"
