"""Sandboxed child runtime: confine this process, then run the participant's behavior.

Started by :mod:`intball_compete.sandbox` as ``python -P -s -m intball_compete.child CONFIG_JSON``
(no cwd on sys.path, no user site; the environment is the sandbox's own, with
``PYTHONHASHSEED=0`` so set iteration order is the same in every run) with the channel socket
inherited as file descriptor ``config["fd"]``. Order (each layer is
documented in docs/compete.md, "Sandbox"):

1. new network namespace (``unshare(CLONE_NEWNET)`` through libc; only loopback, down) when
   privileged, else a user + network namespace when the kernel allows it;
2. preload the modules a behavior may use (numpy, OpenCV, a stdlib set): after step 4 the
   interpreter's own stdlib may be unreadable (it lives under /root here);
3. resource limits (``setrlimit``): CPU s, address space, no new processes or threads,
   file size, open files, no core dumps;
4. drop to the unprivileged sandbox uid/gid (when started as root): file permissions then
   protect other submissions, the store and ``/proc/<parent>/mem``;
5. chdir to the scratch directory and install the audit hook (``sys.addaudithook``) that ends
   the process with status ``violation`` on sockets, processes, ctypes, gc walking, signals,
   opening files outside the allowed roots, writing outside scratch, or importing simulator /
   forbidden modules;
6. run ``behavior.py``: ``run(api)`` or the ``on_step(obs)`` loop; report the exit status.

Only stdlib, numpy and ``intball_compete.api`` / ``.channel`` are imported before the behavior.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import sys
import sysconfig
import traceback
from typing import Any

EXIT_VIOLATION = 86
"""Process exit code of a sandbox violation (the reason goes over the channel first)."""
FORBIDDEN_IMPORTS = frozenset(
    {
        "intball_sim",
        "intball_ros",
        "intball_teleop",
        "pybullet",
        "pybullet_data",
        "pybullet_envs",
        "pybullet_utils",
        "eglRenderer",
        "ctypes",
        "_ctypes",
        "cffi",
        "subprocess",
        "_posixsubprocess",
        "multiprocessing",
        "_multiprocessing",
        "concurrent",
        "asyncio",
        "ssl",
        "http",
        "urllib",
        "ftplib",
        "smtplib",
        "socketserver",
        "pty",
        "mmap",
        "sqlite3",
        "_sqlite3",
        "ray",
        "aiohttp",
        "rclpy",
        "importlib.machinery",
        "gc",
        "resource",
        "signal",
        "_signal",
        "threading",
        "_thread",
        "faulthandler",
        "tracemalloc",
        "shutil",
    }
)
"""Top-level (or dotted) module names a behavior may not import."""
ALLOWED_COMPETE = frozenset({"intball_compete", "intball_compete.api", "intball_compete.channel"})
BLOCKED_EVENTS = (
    "socket.",
    "subprocess.",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "os.forkpty",
    "os.kill",
    "os.killpg",
    "os.putenv",
    "os.unsetenv",
    "os.symlink",
    "os.link",
    "os.chmod",
    "os.chown",
    "os.chdir",
    "os.chroot",
    "os.mknod",
    "os.setxattr",
    "os.removexattr",
    "ctypes.",
    "gc.",
    "mmap.",
    "signal.",
    "sys._current_frames",
    "sys.setprofile",
    "sys.settrace",
    "sys.remote_exec",
    "pty.",
    "resource.",
    "syslog.",
    "fcntl.",
    "winreg.",
    "webbrowser.",
    "urllib.",
    "ftplib.",
    "http.",
    "smtplib.",
    "socketserver.",
    "sqlite3.",
    "_thread.",
    "threading.",
)
WRITE_PATH_EVENTS = ("os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.truncate", "os.utime", "shutil.")
READ_PATH_EVENTS = ("os.listdir", "os.scandir", "glob.glob")
"""Events with paths: allowed under the write roots (scratch) / the read roots."""
PRELOAD = (
    "numpy",
    "numpy.linalg",
    "numpy.random",
    "numpy.fft",
    "cv2",
    "math",
    "cmath",
    "json",
    "collections",
    "collections.abc",
    "itertools",
    "functools",
    "heapq",
    "bisect",
    "dataclasses",
    "typing",
    "enum",
    "re",
    "random",
    "statistics",
    "copy",
    "operator",
    "string",
    "textwrap",
    "fractions",
    "decimal",
    "io",
    "struct",
    "base64",
    "hashlib",
    "zlib",
    "time",
    "datetime",
    "array",
    "queue",
    "pprint",
    "abc",
    "contextlib",
    "numbers",
    "types",
    "warnings",
    "weakref",
    "csv",
    "difflib",
    "uuid",
    "zipfile",
)
"""Modules imported before privileges are dropped (a behavior may import these, its own files in
scratch and any other allowed site-packages module that needs no further stdlib)."""


class _Violation(BaseException):
    pass


class ActionsRefused(Exception):
    """A loop-style behavior's ``on_step`` returned actions the API or the simulator refused; the
    run ends ``crashed`` with this reason (a loop behavior cannot catch the refusal itself)."""


def _network_namespace() -> str:
    """Move this process into a new network namespace; returns how (or why not)."""
    import ctypes  # noqa: PLC0415 - only here, before the audit hook forbids it

    libc = ctypes.CDLL(None, use_errno=True)
    clone_newnet, clone_newuser = 0x40000000, 0x10000000
    if libc.unshare(clone_newnet) == 0:
        how = "netns"
    elif libc.unshare(clone_newuser | clone_newnet) == 0:
        how = "userns+netns"
    else:
        how = f"unavailable (errno {ctypes.get_errno()})"
    sys.modules.pop("ctypes", None)
    return how


def _set_limits(limits: dict[str, int]) -> None:
    r = resource
    cpu = limits["cpu_s"]
    r.setrlimit(r.RLIMIT_CPU, (cpu, cpu + 2))  # SIGXCPU at the soft limit, SIGKILL 2 s later
    for name, value in (
        ("RLIMIT_AS", limits["memory_bytes"]),
        ("RLIMIT_FSIZE", limits["file_bytes"]),
        ("RLIMIT_NOFILE", limits["open_files"]),
        ("RLIMIT_CORE", 0),
        ("RLIMIT_NPROC", limits["processes"]),
    ):
        r.setrlimit(getattr(r, name), (value, value))


def _drop_privileges(uid: int, gid: int) -> str:
    if os.geteuid() != 0:
        return f"unchanged (uid {os.geteuid()}, not root)"
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    return f"uid {uid} gid {gid}"


def _roots(scratch: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(read roots, write roots): directories with a trailing separator."""
    paths = sysconfig.get_paths()
    read = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    import intball_compete  # noqa: PLC0415

    read.add(os.path.dirname(intball_compete.__file__))
    try:  # the ROS-free core is public code and data (frames, pointing, module geometry)
        import importlib.util  # noqa: PLC0415

        spec = importlib.util.find_spec("intball_nav")
        if spec is not None and spec.origin:
            read.add(os.path.dirname(spec.origin))
    except ImportError:
        pass
    read.add(scratch)
    norm = tuple(sorted(os.path.realpath(p).rstrip(os.sep) + os.sep for p in read))
    return norm, (os.path.realpath(scratch).rstrip(os.sep) + os.sep,)


def _install_audit_hook(sock: socket.socket, roots: tuple[tuple[str, ...], tuple[str, ...]]) -> None:
    read_roots, write_roots = roots
    forbidden, allowed_compete = FORBIDDEN_IMPORTS, ALLOWED_COMPETE
    blocked, write_events, read_events = BLOCKED_EVENTS, WRITE_PATH_EVENTS, READ_PATH_EVENTS
    realpath, fspath, isinstance_, str_, bytes_, int_ = (
        os.path.realpath,
        os.fspath,
        isinstance,
        str,
        bytes,
        int,
    )
    send = sock.sendall
    dumps = json.dumps
    exit_ = os._exit
    state = {"dead": False}

    def violate(reason: str) -> None:
        if not state["dead"]:
            state["dead"] = True
            try:
                data = dumps({"op": "exit", "status": "violation", "reason": reason}).encode()
                send(len(data).to_bytes(4, "big") + data)
            finally:
                exit_(EXIT_VIOLATION)
        raise _Violation(reason)

    def inside(path: Any, roots: tuple[str, ...]) -> bool:
        if isinstance_(path, int_):
            return True  # an already open descriptor (stdio, the channel)
        try:
            p = fspath(path)
            if isinstance_(p, bytes_):
                p = p.decode(errors="replace")
            p = realpath(p)
        except (TypeError, ValueError):
            return False
        return any((p + "/").startswith(r) for r in roots)

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode = args[0], args[1]
            flags = args[2] if len(args) > 2 else 0
            writing = (isinstance_(mode, str_) and any(c in mode for c in "wax+")) or (
                isinstance_(flags, int_) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC)
            )
            if not inside(path, write_roots if writing else read_roots):
                violate(f"{'write' if writing else 'read'} access to {path!r} outside the sandbox")
        elif event == "import":
            name = args[0]
            top = name.split(".")[0]
            if top == "intball_compete" and name not in allowed_compete:
                violate(f"import of {name} is forbidden")
            if top in forbidden or name in forbidden:
                violate(f"import of {name} is forbidden")
        elif event.startswith(write_events) or event.startswith(read_events):
            roots = write_roots if event.startswith(write_events) else read_roots
            for a in args:
                if isinstance_(a, str_ | bytes_) and not inside(a, roots):
                    violate(f"{event} on {a!r} outside the sandbox")
        elif event.startswith(blocked):
            violate(f"{event} is not allowed in a behavior")

    sys.addaudithook(hook)


def _load_behavior(scratch: str, entry: str) -> dict[str, object]:
    path = os.path.join(scratch, entry)
    with open(path, encoding="utf-8") as f:
        source = f.read()
    code = compile(source, path, "exec")
    namespace: dict[str, object] = {"__name__": "behavior", "__file__": path}
    exec(code, namespace)  # noqa: S102 - the participant's code, inside the sandbox
    return namespace


def _run_loop(api: object, on_step: object, hz: float) -> None:
    from intball_compete.api import ApiError, MissionOver  # noqa: PLC0415

    api.start_mission()  # type: ignore[attr-defined]
    obs = api.step(0.0, {})  # type: ignore[attr-defined]
    while True:
        actions = on_step(obs)  # type: ignore[operator]
        t = obs.get("t", 0.0) if isinstance(obs, dict) else 0.0
        if actions is not None and not isinstance(actions, dict):
            raise ActionsRefused(
                f"on_step (t={t:.1f} s) must return a dict of actions or None, got {type(actions).__name__}"
            )
        try:
            obs = api.step(1.0 / hz, actions or {})  # type: ignore[attr-defined]
        except MissionOver:
            return
        except ApiError as exc:
            raise ActionsRefused(f"on_step (t={t:.1f} s) returned actions that were refused: {exc}") from None
        if actions and actions.get("finish"):
            return


def main() -> None:
    config = json.loads(sys.argv[1])
    sock = socket.socket(fileno=int(config["fd"]))
    scratch = config["scratch"]
    isolation = {"network": _network_namespace()}
    for name in PRELOAD:
        __import__(name)
    import numpy  # noqa: PLC0415

    from intball_compete import api as api_module  # noqa: PLC0415

    roots = _roots(scratch)  # before the uid drop: the stdlib paths may become unreadable
    _set_limits(config["limits"])
    isolation["limits"] = "set"
    isolation["user"] = _drop_privileges(int(config["uid"]), int(config["gid"]))
    os.chdir(scratch)
    sys.path.insert(0, scratch)
    if config.get("audit", True):
        _install_audit_hook(sock, roots)
        isolation["audit_hook"] = "installed"
    del numpy
    status, reason = "ok", "behavior returned"
    api = api_module.Api(sock)
    channel = api_module.channel
    channel.send(sock, {"op": "hello", "api_version": api_module.API_VERSION, "isolation": isolation})
    try:
        namespace = _load_behavior(scratch, config.get("entry", "behavior.py"))
        run, on_step = namespace.get("run"), namespace.get("on_step")
        if callable(run):
            run(api)
        elif callable(on_step):
            hz = float(namespace.get("STEP_HZ", 2.0))  # type: ignore[arg-type]
            if not 0.1 <= hz <= 10.0:
                raise ValueError(f"STEP_HZ {hz} out of range [0.1, 10]")
            _run_loop(api, on_step, hz)
        else:
            raise NameError("behavior.py defines neither run(api) nor on_step(obs)")
    except api_module.MissionOver as exc:
        reason = f"mission over: {exc}"
    except SystemExit as exc:
        if exc.code not in (None, 0):
            status, reason = "crashed", f"SystemExit({exc.code!r})"
    except MemoryError:
        status, reason = "memory", "MemoryError: the behavior exceeded its memory limit"
    except RecursionError:
        status, reason = "crashed", "RecursionError: " + traceback.format_exc(limit=-3)[-1500:]
    except channel.ChannelClosed:
        status, reason = "crashed", "the simulator closed the channel"
    except ActionsRefused as exc:
        status, reason = "crashed", str(exc)[:3000]
    except BaseException:  # noqa: BLE001 - report any failure of participant code
        status, reason = "crashed", traceback.format_exc(limit=-6)[-3000:]
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        channel.send(sock, {"op": "exit", "status": status, "reason": reason})
    finally:
        os._exit(0)


if __name__ == "__main__":
    main()
