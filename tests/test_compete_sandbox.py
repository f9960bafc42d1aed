"""Hostile behaviors end with a clear status and score 0, and harm nothing (issue #6).

Each case runs through ``evaluate_run`` (real mission session, real sandboxed child). Where a
case has an OS-level layer behind the audit hook (uid drop, network namespace, NPROC), a second
run with the hook switched off checks that layer on its own.
"""

from __future__ import annotations

import os
import socket
import textwrap
from pathlib import Path

import pytest

from intball_compete.evaluate import RunSpec, evaluate_run

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="the uid/netns layers need root (CI runs as root)")
FAST = {"think_wall_s": 3.0, "run_wall_s": 60.0, "cpu_s": 20}


def _run(source: str, **limits) -> dict:
    code = textwrap.dedent(source).encode()
    return evaluate_run(RunSpec(code, "behavior.py", seed=3, limits={**FAST, **limits}))


def _assert_zero(result: dict, status: str, reason_part: str = "") -> None:
    assert result["status"] == status, (result["status"], result["reason"], result.get("log", "")[-500:])
    assert result["total"] == 0.0
    if reason_part:
        assert reason_part in result["reason"], result["reason"]


HOSTILE = {
    "infinite_loop": (
        "def run(api):\n    api.start_mission()\n    while True:\n        pass\n",
        "timeout",
        "wall-time",
    ),
    "hang_before_start": ("import time\ndef run(api):\n    time.sleep(3600)\n", "timeout", "wall-time"),
    "fork_bomb": ("import os\ndef run(api):\n    while True:\n        os.fork()\n", "violation", "os.fork"),
    "subprocess": (
        "def run(api):\n    import subprocess\n    subprocess.run(['ls'])\n",
        "violation",
        "subprocess",
    ),
    "os_system": ("import os\ndef run(api):\n    os.system('echo hi')\n", "violation", "os.system"),
    "memory_bomb": (
        "def run(api):\n    api.start_mission()\n    blocks = []\n    while True:\n"
        "        blocks.append(bytearray(16 * 1024 * 1024))\n",
        "memory",
        "MemoryError",
    ),
    "read_etc_passwd": ("def run(api):\n    open('/etc/passwd').read()\n", "violation", "/etc/passwd"),
    "socket": (
        "import socket\ndef run(api):\n    socket.socket().connect(('1.1.1.1', 80))\n",
        "violation",
        "socket",
    ),
    "import_pybullet": ("def run(api):\n    import pybullet\n", "violation", "pybullet"),
    "import_simulator": ("def run(api):\n    import intball_sim.backend\n", "violation", "intball_sim"),
    "import_evaluator": (
        "def run(api):\n    import intball_compete.session\n",
        "violation",
        "intball_compete.session",
    ),
    "ctypes": ("def run(api):\n    import ctypes\n    ctypes.CDLL(None).getpid()\n", "violation", "ctypes"),
    "walk_gc": ("def run(api):\n    import gc\n    gc.get_objects()\n", "violation", "gc"),
    "parent_memory": (
        "import os\ndef run(api):\n    open(f'/proc/{os.getppid()}/mem', 'rb').read(1)\n",
        "violation",
        "/proc/",
    ),
    "kill_parent": ("import os\ndef run(api):\n    os.kill(os.getppid(), 9)\n", "violation", "os.kill"),
    "write_outside": (
        "def run(api):\n    open('/tmp/evil.txt', 'w').write('x')\n",
        "violation",
        "write access",
    ),
    "crash": ("def run(api):\n    api.start_mission()\n    raise RuntimeError('boom')\n", "crashed", "boom"),
    "exit_nonzero": ("import sys\ndef run(api):\n    sys.exit(3)\n", "crashed", "SystemExit"),
    "output_flood": (
        "def run(api):\n    while True:\n        print('x' * 10000)\n",
        "output_limit",
        "output",
    ),
    "no_entry_point_at_runtime": ("def run(api):\n    pass\nrun = None\n", "crashed", "neither run"),
    "no_entry_point_upload": ("x = 1\n", "rejected", "defines neither run"),
    "list_root": ("import os\ndef run(api):\n    os.listdir('/')\n", "violation", "os.listdir"),
    "exec_import": ("def run(api):\n    exec('import intball_sim')\n", "violation", "intball_sim"),
    "channel_garbage": (
        "def run(api):\n    api._sock.sendall(b'\\x00\\x00\\x00\\x05hello')\n    api.get_state()\n",
        "protocol",
        "not JSON",
    ),
    "channel_flood": (
        "def run(api):\n    api._sock.sendall(b'\\x7f\\xff\\xff\\xff')\n    api.get_state()\n",
        "protocol",
        "exceeds",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_behavior_ends_with_status_and_zero(case):
    source, status, reason = HOSTILE[case]
    result = _run(source, memory_bytes=700 * 1024**2)  # the memory bomb touches at most ~250 MB
    _assert_zero(result, status, reason)


def test_output_is_truncated_to_its_head():
    result = _run(
        "def run(api):\n    for i in range(20000):\n        print(f'line {i}')\n    api.start_mission()\n"
    )
    assert result["status"] == "ok"
    assert result["log"].startswith("line 0\nline 1\n")
    assert len(result["log"].encode()) <= 64 * 1024 and result["log_truncated_bytes"] > 0


def test_cpu_limit_ends_a_busy_behavior():
    result = _run("def run(api):\n    while True:\n        pass\n", think_wall_s=60.0, cpu_s=2)
    _assert_zero(result, "timeout", "CPU")


def test_a_normal_run_still_works_after_hostile_ones_and_keeps_scratch_private(tmp_path):
    """Behaviors may use their scratch directory; nothing is left behind."""
    result = _run(
        """
        import json
        def run(api):
            info = api.start_mission()
            with open('notes.json', 'w') as f:
                json.dump({'targets': len(info.targets)}, f)
            print(open('notes.json').read())
            api.finish()
        """
    )
    assert result["status"] == "ok", result["reason"]
    assert '{"targets": 5}' in result["log"]
    assert result["measures"]["end_reason"] == "finished"


@ROOT_ONLY
def test_os_layers_hold_without_the_audit_hook(tmp_path):
    """uid drop, network namespace and NPROC on their own (audit hook off)."""
    secret_dir = tmp_path / "other_submission"
    secret_dir.mkdir(mode=0o700)
    (secret_dir / "behavior.py").write_text("SECRET = 1\n")
    os.chmod(tmp_path, 0o755)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        result = _run(
            f"""
            import os, socket
            def attempt(what, fn):
                try:
                    fn()
                    print(what, 'ALLOWED')
                except Exception as exc:
                    print(what, 'blocked', type(exc).__name__)
            def run(api):
                attempt('read other submission', lambda: open({str(secret_dir / "behavior.py")!r}).read())
                attempt('read parent memory', lambda: open(f'/proc/{{os.getppid()}}/mem', 'rb').read(1))
                attempt('connect loopback', lambda: socket.create_connection(('127.0.0.1', {port}), 1))
                attempt('fork', lambda: os.fork() or os._exit(0))
                attempt('thread', lambda: __import__('threading').Thread(target=print).start())
                api.start_mission()
            """,
            audit=False,
        )
    finally:
        listener.close()
    assert result["status"] == "ok", result["reason"]
    log = result["log"]
    assert "ALLOWED" not in log, log
    for what in ("read other submission", "read parent memory", "connect loopback", "fork", "thread"):
        assert f"{what} blocked" in log, log
    assert result["sandbox"]["isolation"]["network"] == "netns"
    assert result["sandbox"]["isolation"]["user"].startswith("uid ")


def test_bad_requests_get_reasons_and_the_run_goes_on():
    result = _run(
        """
        import math
        def run(api):
            info = api.start_mission()
            print('nan:', api.move_to([math.nan, 0, 0]).reason)
            print('outside:', api.move_to([20.0, 0, 0]).reason)
            zone = [z for z in info.keep_out if z[0] == 'zone_1'][0]
            print('zone:', api.move_to((zone[1] + zone[2]) / 2).reason)
            try:
                api.report_target(99, 'x')
            except Exception as exc:
                print('id:', exc)
            try:
                api.move_to([1, 2])
            except Exception as exc:
                print('shape:', exc)
            api.finish()
        """
    )
    assert result["status"] == "ok", result["reason"]
    log = result["log"]
    assert "nan: move_to refused: position [nan, 0.0, 0.0] is not finite" in log, log
    assert "outside: goal rejected: x=20.00 m is beyond the keep-in limit" in log, log
    assert "zone: goal rejected:" in log and "zone_1" in log, log
    assert "id: target id 99 unknown" in log, log
    assert "shape: position must be 3 numbers" in log, log


def test_child_imports_no_simulator():
    """The child-side modules load without pybullet / intball_sim (checked in a fresh interpreter)."""
    import subprocess
    import sys

    code = (
        "import sys, intball_compete.api, intball_compete.child, intball_compete.channel; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('pybullet', 'intball_sim', 'intball_nav')]; "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_evaluator_failure_is_an_error_status_not_an_exception(monkeypatch):
    import intball_compete.session as session_module

    def broken(*args, **kwargs):
        raise RuntimeError("simulated evaluator failure")

    monkeypatch.setattr(session_module, "MissionSession", broken)
    result = _run("def run(api):\n    api.start_mission()\n")
    assert result["status"] == "error" and "simulated evaluator failure" in result["reason"]
    assert Path("/tmp").exists()


def test_behavior_environment_is_the_same_every_run():
    """PYTHONHASHSEED is fixed in the child: str hashes and set order repeat (determinism)."""
    source = "def run(api):\n    print(hash('kibo'), list({'a', 'b', 'c', 'd'}))\n    api.start_mission()\n"
    logs = {_run(source)["log"] for _ in range(2)}
    assert len(logs) == 1 and logs.pop().strip()
