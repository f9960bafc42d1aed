"""intball_ros.env: run-time environment defaults for ROS 2 processes."""

from __future__ import annotations

import os
import sys

from intball_ros.env import BOOTSTRAP_GUARD_VAR, DISCOVERY_RANGE_VAR, ros_environment


def test_discovery_range_defaults_to_localhost() -> None:
    env = ros_environment({"PATH": "/usr/bin"})
    assert env[DISCOVERY_RANGE_VAR] == "LOCALHOST"
    assert env["PATH"] == "/usr/bin"


def test_user_discovery_range_is_kept() -> None:
    assert ros_environment({DISCOVERY_RANGE_VAR: "SUBNET"})[DISCOVERY_RANGE_VAR] == "SUBNET"
    assert ros_environment({DISCOVERY_RANGE_VAR: "OFF"})[DISCOVERY_RANGE_VAR] == "OFF"


def test_empty_discovery_range_counts_as_unset() -> None:
    assert ros_environment({DISCOVERY_RANGE_VAR: ""})[DISCOVERY_RANGE_VAR] == "LOCALHOST"


def test_ament_prefix_path_starts_with_venv_without_duplicates() -> None:
    env = ros_environment({})
    assert env["AMENT_PREFIX_PATH"] == sys.prefix
    other = "/opt/other_ws/install"
    env = ros_environment({"AMENT_PREFIX_PATH": os.pathsep.join([other, sys.prefix])})
    assert env["AMENT_PREFIX_PATH"].split(os.pathsep) == [sys.prefix, other]
    assert ros_environment(env) == env  # idempotent


def test_base_is_not_modified() -> None:
    base = {"FOO": "1"}
    ros_environment(base)
    assert base == {"FOO": "1"}


def test_foreign_bootstrap_guard_is_dropped_own_is_kept() -> None:
    lib = os.path.join(sys.prefix, "lib")
    own = ros_environment({BOOTSTRAP_GUARD_VAR: "1", "LD_LIBRARY_PATH": f"/x:{lib}"})
    assert own[BOOTSTRAP_GUARD_VAR] == "1"
    foreign = ros_environment({BOOTSTRAP_GUARD_VAR: "1", "LD_LIBRARY_PATH": "/other/venv/lib"})
    assert BOOTSTRAP_GUARD_VAR not in foreign


def test_test_session_environment() -> None:
    """tests/conftest.py applied the environment and chose a safe domain id."""
    assert os.environ[DISCOVERY_RANGE_VAR]
    assert 1 <= int(os.environ["ROS_DOMAIN_ID"]) <= 232
    assert os.environ["AMENT_PREFIX_PATH"].split(os.pathsep)[0] == sys.prefix
