"""Test-session setup shared by every subsystem.

- The ROS environment of :func:`intball_ros.env.ros_environment` is applied to this
  process before any test module imports rclpy, so tests and the processes they start
  discover only on localhost (``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` unless set).
- Every pytest run gets its own ``ROS_DOMAIN_ID`` (derived from its pid, or from the run id
  that pytest-xdist gives all its workers, in 1..101, a range whose Fast DDS ports are valid
  on Linux) so parallel runs and other developers' stacks on the same machine do not see
  each other. Set ``INTBALL_TEST_DOMAIN_ID`` to choose one (e.g. to watch a test with
  external tools). Each module, in each xdist worker, then gets a domain of its own
  (:func:`ros_domain_per_module`).
"""

from __future__ import annotations

import itertools
import os
import sys

import pytest

from intball_ros.env import BOOTSTRAP_GUARD_VAR, apply_ros_environment, ros_environment

DOMAIN_ID_MIN = 1
DOMAIN_ID_MAX = 101


def domain_id_for_pid(pid: int) -> int:
    """``ROS_DOMAIN_ID`` for the pytest process ``pid``: in ``DOMAIN_ID_MIN..DOMAIN_ID_MAX``."""
    return DOMAIN_ID_MIN + pid % (DOMAIN_ID_MAX - DOMAIN_ID_MIN + 1)


if BOOTSTRAP_GUARD_VAR in os.environ and BOOTSTRAP_GUARD_VAR not in ros_environment():
    # Re-executing here would write the new run into pytest's capture files: fail instead.
    raise pytest.UsageError(
        f"{BOOTSTRAP_GUARD_VAR} was inherited from another venv, so rclpy cannot load its "
        f"libraries here. Run `env -u {BOOTSTRAP_GUARD_VAR} .venv/bin/python -m pytest ...` or `make test`."
    )
apply_ros_environment(reexec=False)
_xdist_run = os.environ.get("PYTEST_XDIST_TESTRUNUID")  # the same in all workers of a run
_run_key = int(_xdist_run, 16) if _xdist_run else os.getpid()
os.environ["ROS_DOMAIN_ID"] = os.environ.get("INTBALL_TEST_DOMAIN_ID") or str(domain_id_for_pid(_run_key))


@pytest.fixture
def ros_env() -> dict[str, str]:
    """Environment for child processes of a test (a fresh copy; edit freely)."""
    return dict(os.environ)


_SESSION_DOMAIN_ID = int(os.environ["ROS_DOMAIN_ID"])
_module_index = itertools.count()
# pytest-xdist: worker "gwN" of PYTEST_XDIST_WORKER_COUNT takes every N-th slot
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:])
DOMAIN_SLOTS = 60


def domain_id_for_module(session: int, module_index: int, worker: int = 0, workers: int = 1) -> int:
    """The session's domain + 2 x slot, slot < 60 (so at most 101 + 119 < 232); xdist workers
    take disjoint slots, so two modules running at once never share a domain."""
    slot = worker % workers + workers * (module_index % (DOMAIN_SLOTS // workers))
    return session + 2 * slot


@pytest.fixture(scope="module", autouse=True)
def ros_domain_per_module():
    """Each test module runs in its own ROS_DOMAIN_ID (:func:`domain_id_for_module`), so a graph
    one module leaves behind cannot disturb the next one;
    ``ros_graph_helpers.isolated_domain_id()`` (+1) is free for a test's self-contained graph."""
    os.environ["ROS_DOMAIN_ID"] = str(
        domain_id_for_module(_SESSION_DOMAIN_ID, next(_module_index), _WORKER, _WORKERS)
    )
    yield
    os.environ["ROS_DOMAIN_ID"] = str(_SESSION_DOMAIN_ID)


@pytest.fixture(scope="module", autouse=True)
def rclpy_context_released(request):
    """A module must not leave rclpy's default context initialised: the next module's
    ``rclpy.init()`` would fail with "Context.init() must only be called once", far from the
    cause. The context is shut down here and the module's last test gets an error naming it
    (``ros_graph_helpers.rclpy_initialised`` avoids the leak)."""
    yield
    rclpy = sys.modules.get("rclpy")
    if rclpy is not None and rclpy.ok():
        rclpy.try_shutdown()
        pytest.fail(f"{request.module.__name__} left rclpy's default context initialised", pytrace=False)
