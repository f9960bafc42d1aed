"""Run-time environment for ROS 2 processes of the stack (no sourcing needed).

The ROS 2 wheels need almost nothing: their ``.pth`` bootstrapper re-executes the
interpreter once with ``LD_LIBRARY_PATH`` covering ``<venv>/lib`` (where our
``intball_interfaces`` / ``tf2_msgs`` libraries are installed) and sets
``_ROS_WHEELS_BOOTSTRAP_COMPLETE=1``. What this module adds:

- ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` unless the user set a range (the default
  SUBNET multicasts off the machine; ``ROS_LOCALHOST_ONLY`` does nothing in Kilted);
- ``AMENT_PREFIX_PATH`` starting with the venv, for ``ament_index_python`` lookups
  (``get_package_share_directory("intball_interfaces")``) and CMake builds;
- dropping an inherited ``_ROS_WHEELS_BOOTSTRAP_COMPLETE`` whose ``LD_LIBRARY_PATH`` does
  not cover this venv (set by a process of another venv): with it a child skips its own
  bootstrap and cannot load the ROS libraries.

This module imports nothing from ROS, so it can run before ``rclpy`` is imported.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

DISCOVERY_RANGE_VAR = "ROS_AUTOMATIC_DISCOVERY_RANGE"
DEFAULT_DISCOVERY_RANGE = "LOCALHOST"
BOOTSTRAP_GUARD_VAR = "_ROS_WHEELS_BOOTSTRAP_COMPLETE"


def venv_prefix() -> str:
    """Install prefix of the running interpreter (the project venv)."""
    return sys.prefix


def _split(value: str | None) -> list[str]:
    return [part for part in (value or "").split(os.pathsep) if part]


def _prepend_unique(value: str | None, entry: str) -> str:
    """``entry`` first, then the other entries of the path list ``value`` (no duplicates)."""
    parts = [entry] + [part for part in _split(value) if os.path.normpath(part) != os.path.normpath(entry)]
    return os.pathsep.join(parts)


def ros_environment(base: Mapping[str, str] | None = None, *, prefix: str | None = None) -> dict[str, str]:
    """Return a copy of ``base`` (default ``os.environ``) ready for a ROS 2 process.

    Parameters
    ----------
    base : environment to start from; never modified.
    prefix : install prefix holding the ROS wheels and our interfaces; default: this
        interpreter's ``sys.prefix``.
    """
    env = dict(os.environ if base is None else base)
    prefix = prefix or venv_prefix()
    if not env.get(DISCOVERY_RANGE_VAR):
        env[DISCOVERY_RANGE_VAR] = DEFAULT_DISCOVERY_RANGE
    env["AMENT_PREFIX_PATH"] = _prepend_unique(env.get("AMENT_PREFIX_PATH"), prefix)
    if BOOTSTRAP_GUARD_VAR in env:
        lib = os.path.normpath(os.path.join(prefix, "lib"))
        ld_parts = {os.path.normpath(p) for p in _split(env.get("LD_LIBRARY_PATH"))}
        if lib not in ld_parts:
            del env[BOOTSTRAP_GUARD_VAR]
    return env


def apply_ros_environment(*, reexec: bool = True) -> dict[str, str]:
    """Apply :func:`ros_environment` to ``os.environ`` of this process; return the result.

    Call it first thing in a process's ``main`` (before ``import rclpy``: the discovery
    range is read at ``rclpy.init``); child processes then inherit it. If this process
    inherited another venv's bootstrap guard, its library path misses our ROS libraries
    and ``import rclpy`` would fail: with ``reexec`` the interpreter is re-executed with
    the same arguments so the wheels' bootstrapper runs (as it does on every start).
    """
    foreign_guard = BOOTSTRAP_GUARD_VAR in os.environ
    env = ros_environment()
    foreign_guard = foreign_guard and BOOTSTRAP_GUARD_VAR not in env
    if foreign_guard and reexec:
        os.execve(sys.executable, sys.orig_argv, env)
    for key in set(os.environ) - set(env):
        del os.environ[key]
    os.environ.update(env)
    return env
