"""Parent side of the sandbox: start the behavior in its own confined process and serve its calls.

``run_sandboxed(files, serve, limits)`` writes the behavior's files into a fresh scratch
directory (mode 0700, owned by the sandbox uid when we are root), starts
``python -P -s -m intball_compete.child`` (:mod:`intball_compete.child` confines itself: network
namespace, rlimits, uid drop, audit hook) with one end of a socketpair, and answers each request
with ``serve(request) -> (reply, blob)`` until the child exits, ends the mission or breaks a
limit. The parent enforces what the child cannot be trusted with:

- wall time: a budget for the behavior's own thinking (time spent waiting for its next request)
  and one for the whole run; on expiry the process group is killed -> ``timeout``;
- output: stdout+stderr drained by a thread; the head (``log_bytes``) is kept, and more than
  ``output_limit_bytes`` in total kills the child -> ``output_limit``;
- protocol: malformed or oversized frames -> ``protocol``; the child never gets more than its
  replies.

Statuses: ``ok`` | ``crashed`` | ``timeout`` | ``violation`` | ``memory`` | ``output_limit`` |
``protocol`` | ``error`` (our side failed; the message says so).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from intball_compete import channel
from intball_compete.child import EXIT_VIOLATION

SANDBOX_UID_BASE = 61000
"""Sandbox uids are SANDBOX_UID_BASE + (worker pid % 2000): distinct for concurrent workers on
one machine, no passwd entry needed, owning nothing outside their scratch directory."""
STATUSES = ("ok", "crashed", "timeout", "violation", "memory", "output_limit", "protocol", "error")


@dataclass(frozen=True)
class Limits:
    """Resource limits of one behavior process.

    think_wall_s : s of wall time the behavior may spend between its calls (in total)
    run_wall_s : s of wall time for the whole run, simulation included
    cpu_s : s of CPU time of the child (RLIMIT_CPU)
    memory_bytes : address space of the child (RLIMIT_AS)
    file_bytes : largest file the child may write (RLIMIT_FSIZE)
    open_files : file descriptors (RLIMIT_NOFILE)
    processes : RLIMIT_NPROC of the sandbox uid (0: no fork, no threads)
    log_bytes : head of stdout+stderr kept; output_limit_bytes : total output before the kill
    audit : install the audit hook (tests of the OS layers alone turn it off)
    """

    think_wall_s: float = 60.0
    run_wall_s: float = 900.0
    cpu_s: int = 120
    memory_bytes: int = 2 * 1024**3
    file_bytes: int = 16 * 1024**2
    open_files: int = 64
    processes: int = 0
    log_bytes: int = 64 * 1024
    output_limit_bytes: int = 4 * 1024**2
    audit: bool = True


@dataclass
class SandboxResult:
    """How the behavior process ended. log : head of its output; isolation : layers in force."""

    status: str
    reason: str
    log: str = ""
    log_truncated_bytes: int = 0
    exit_code: int | None = None
    wall_s: float = 0.0
    think_s: float = 0.0
    isolation: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _OutputReader(threading.Thread):
    """Drains the child's stdout+stderr, keeps the head, counts the rest."""

    def __init__(self, stream: Any, keep: int, limit: int, on_flood: Callable[[], None]) -> None:
        super().__init__(daemon=True)
        self.stream, self.keep, self.limit, self.on_flood = stream, keep, limit, on_flood
        self.head = bytearray()
        self.total = 0
        self.flooded = False

    def run(self) -> None:
        while True:
            chunk = self.stream.read1(65536) if hasattr(self.stream, "read1") else self.stream.read(65536)
            if not chunk:
                return
            self.total += len(chunk)
            room = self.keep - len(self.head)
            if room > 0:
                self.head += chunk[:room]
            if self.total > self.limit and not self.flooded:
                self.flooded = True
                self.on_flood()


def _sandbox_ids() -> tuple[int, int]:
    uid = SANDBOX_UID_BASE + os.getpid() % 2000
    return uid, uid


def _write_files(scratch: Path, files: dict[str, bytes], uid: int, gid: int) -> None:
    for name, data in files.items():
        path = scratch / name
        if path.resolve().parent != scratch.resolve() and scratch.resolve() not in path.resolve().parents:
            raise ValueError(f"file name {name!r} leaves the scratch directory")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    if os.geteuid() == 0:
        for root, dirs, names in os.walk(scratch):
            for n in [*dirs, *names]:
                os.chown(os.path.join(root, n), uid, gid)
        os.chown(scratch, uid, gid)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_sandboxed(
    files: dict[str, bytes],
    serve: Callable[[dict[str, Any]], tuple[dict[str, Any], bytes]],
    limits: Limits | None = None,
    *,
    is_done: Callable[[], bool] = lambda: False,
    entry: str = "behavior.py",
    scratch_root: str | Path | None = None,
) -> SandboxResult:
    """Run a behavior (``files``: relative name -> bytes, with ``entry``) against ``serve``.

    ``is_done()`` True means the mission has ended: the child gets ``over`` replies (via serve)
    and is given 2 s to exit before it is killed. Never raises for anything the behavior does.
    """
    limits = limits or Limits()
    uid, gid = _sandbox_ids()
    root = Path(scratch_root) if scratch_root is not None else Path(tempfile.gettempdir()) / "intball-compete"
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o711)  # traversable, not listable: runs cannot find each other's scratch
    scratch = Path(tempfile.mkdtemp(prefix="run-", dir=root))
    os.chmod(scratch, 0o700)
    parent_sock, child_sock = socket.socketpair()
    t_start = time.monotonic()
    result = SandboxResult("error", "not started")
    proc = None
    reader = None
    try:
        _write_files(scratch, files, uid, gid)
        config = {
            "fd": child_sock.fileno(),
            "scratch": str(scratch),
            "uid": uid,
            "gid": gid,
            "entry": entry,
            "audit": limits.audit,
            "limits": {
                "cpu_s": int(limits.cpu_s),
                "memory_bytes": int(limits.memory_bytes),
                "file_bytes": int(limits.file_bytes),
                "open_files": int(limits.open_files),
                "processes": int(limits.processes),
            },
        }
        env = {
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": str(scratch),
            "TMPDIR": str(scratch),
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "OPENCV_FOR_THREADS_NUM": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONHASHSEED": "0",
        }
        proc = subprocess.Popen(
            [sys.executable, "-P", "-s", "-m", "intball_compete.child", json.dumps(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=scratch,
            env=env,
            pass_fds=(child_sock.fileno(),),
            start_new_session=True,
        )
        child_sock.close()
        reader = _OutputReader(proc.stdout, limits.log_bytes, limits.output_limit_bytes, lambda: _kill(proc))
        reader.start()
        result = _serve_loop(proc, parent_sock, serve, is_done, limits, t_start, reader)
    except Exception as exc:  # noqa: BLE001 - our side failed: report, never crash the evaluator
        result = SandboxResult("error", f"sandbox error: {type(exc).__name__}: {exc}")
    finally:
        if proc is not None:
            _kill(proc)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            result.exit_code = proc.returncode
        if reader is not None:
            reader.join(timeout=5)
            result.log = reader.head.decode("utf-8", errors="replace")
            result.log_truncated_bytes = max(0, reader.total - len(reader.head))
            if reader.flooded and result.status in ("ok", "crashed", "timeout"):
                result.status = "output_limit"
                result.reason = f"output exceeded {limits.output_limit_bytes} bytes (printed {reader.total}+)"
        parent_sock.close()
        child_sock.close()
        shutil.rmtree(scratch, ignore_errors=True)
        result.wall_s = round(time.monotonic() - t_start, 3)
    return result


def _serve_loop(
    proc: subprocess.Popen[bytes],
    sock: socket.socket,
    serve: Callable[[dict[str, Any]], tuple[dict[str, Any], bytes]],
    is_done: Callable[[], bool],
    limits: Limits,
    t_start: float,
    reader: _OutputReader,
) -> SandboxResult:
    think = 0.0
    isolation: dict[str, Any] = {}
    hello = False
    grace_until: float | None = None
    while True:
        now = time.monotonic()
        budget = min(limits.think_wall_s - think, limits.run_wall_s - (now - t_start))
        if grace_until is not None:
            budget = min(budget, grace_until - now)
        if budget <= 0:
            return _timeout(proc, limits, think, isolation, grace_until is not None)
        sock.settimeout(budget)
        try:
            request, _ = channel.recv(sock, max_blob=0)
        except TimeoutError:
            think += time.monotonic() - now
            continue
        except channel.ChannelClosed:
            return _ended(proc, think, isolation, reader)
        except (channel.ProtocolError, ConnectionError, OSError) as exc:
            if reader.flooded:
                return SandboxResult(
                    "output_limit", "output limit exceeded", think_s=think, isolation=isolation
                )
            return SandboxResult(
                "protocol", f"protocol violation: {exc}", think_s=round(think, 3), isolation=isolation
            )
        think += time.monotonic() - now
        op = request.get("op")
        if op == "hello" and not hello:
            hello = True
            isolation = request.get("isolation", {}) if isinstance(request.get("isolation"), dict) else {}
            continue
        if op == "exit":
            status = request.get("status")
            reason = str(request.get("reason", ""))[:4000]
            if status not in STATUSES or status in ("error", "timeout", "output_limit", "protocol"):
                return SandboxResult(
                    "protocol",
                    f"protocol violation: exit status {status!r}",
                    think_s=think,
                    isolation=isolation,
                )
            _wait_exit(proc)
            return SandboxResult(status, reason, think_s=round(think, 3), isolation=isolation)
        if not hello:
            return SandboxResult(
                "protocol", "protocol violation: no hello", think_s=think, isolation=isolation
            )
        reply, blob = serve(request)
        try:
            channel.send(sock, reply, blob)
        except OSError:
            return _ended(proc, think, isolation, reader)
        if is_done() and grace_until is None:
            grace_until = time.monotonic() + 2.0
        if reader.flooded:
            return SandboxResult("output_limit", "output limit exceeded", think_s=think, isolation=isolation)


def _wait_exit(proc: subprocess.Popen[bytes]) -> None:
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        _kill(proc)


def _timeout(
    proc: subprocess.Popen[bytes], limits: Limits, think: float, isolation: dict[str, Any], grace: bool
) -> SandboxResult:
    _kill(proc)
    if grace:
        return SandboxResult(
            "ok",
            "mission over; the behavior did not return and was stopped",
            think_s=round(think, 3),
            isolation=isolation,
        )
    return SandboxResult(
        "timeout",
        f"wall-time limit: behavior thinking {think:.1f} s (limit {limits.think_wall_s:g} s) "
        f"or run limit {limits.run_wall_s:g} s",
        think_s=round(think, 3),
        isolation=isolation,
    )


def _ended(
    proc: subprocess.Popen[bytes], think: float, isolation: dict[str, Any], reader: _OutputReader
) -> SandboxResult:
    """The channel closed without an exit message: classify by the exit code."""
    try:
        code = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        _kill(proc)
        code = proc.wait()
    if reader.flooded:
        return SandboxResult("output_limit", "output limit exceeded", think_s=think, isolation=isolation)
    if code == EXIT_VIOLATION:
        return SandboxResult("violation", "sandbox violation", think_s=think, isolation=isolation)
    if code == -signal.SIGXCPU:
        return SandboxResult("timeout", "CPU-time limit (SIGXCPU)", think_s=think, isolation=isolation)
    if code == -signal.SIGKILL:
        return SandboxResult(
            "crashed", "killed (SIGKILL: CPU hard limit or out of memory)", think_s=think, isolation=isolation
        )
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        return SandboxResult("crashed", f"killed by signal {name}", think_s=think, isolation=isolation)
    return SandboxResult(
        "crashed", f"exited with code {code} without finishing", think_s=think, isolation=isolation
    )
