"""What the onboard bridge needs from the robot: the :class:`RobotBackend` protocol (the ROS graph
through ``intball_ros.ros_robot.RosRobot``, or the kinematic stand-in of ``kinematic.py``).
Positions m, kibo frame; quaternions x, y, z, w."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from intball_nav.safety import Box

Waypoint = tuple[np.ndarray, np.ndarray, float]  # position (3,) m kibo, quat (4,) xyzw, hold s
Done = Callable[[bool, str], None]  # (ok, reason) of a request answered later


class RobotBackend(Protocol):
    """What the onboard bridge needs from the robot. Positions m, kibo frame; quat xyzw.

    The methods after ``camera_jpeg`` are optional: the bridge checks for them and fails the
    command with the reason when the robot has none. So are ``dock(undock) -> bool`` and
    ``camera_task(payload) -> bool`` (the robot's own procedures; False when unavailable) and
    ``resume()`` (release an emergency stop)."""

    source: str  # "ros" (the graph's state estimate) or "kinematic" (stand-in, no dynamics)

    def telemetry(self) -> dict[str, Any] | None:
        """Latest estimate and status (keys: pose, velocity, angular_velocity, localization,
        battery, fan_effort, guidance, mode, faults); None before the first estimate."""

    def go_to(self, position: np.ndarray, quat: np.ndarray, flight_mode: str) -> None:
        """Start flying to a pose (replaces any previous goal). Raises CommandError if refused."""

    def motion(self) -> tuple[str, str]:
        """State of the last go_to: ("moving" | "arrived" | "failed" | "paused" | "idle", reason)."""

    def hold(self) -> None:
        """Station-keep the current estimated pose."""

    def emergency_stop(self) -> None:
        """Stop now (the backend's safest stop)."""

    def camera_jpeg(self, camera: str) -> tuple[bytes, float] | None:
        """Latest frame of a camera as JPEG and its stamp (s), or None. Called from a worker
        thread (encoding stays off the event loop): read shared state under a lock or atomically."""

    def follow_route(self, waypoints: list[Waypoint], flight_mode: str) -> bool:
        """Start flying waypoints in order (replaces any motion), holding at each for its hold
        time; False if this robot cannot fly routes. The end shows in ``motion()``: "arrived"
        after the last hold, "failed" with the reason."""

    def route_progress(self) -> tuple[int, bool] | None:
        """(index of the waypoint being flown to or held at, paused) of the route started last
        by follow_route; None when no route runs (finished, replaced, or dropped by hold())."""

    def pause_route(self, paused: bool, done: Done) -> None:
        """Pause (stop and hold) or resume the running route; calls done(ok, reason) once,
        from any thread."""

    def keep_out_zones(self) -> list[dict[str, Any]] | None:
        """Keep-out zones in force (name, min, max m kibo, fixed), the dock body included; None
        when unknown yet."""

    def add_keep_out(self, box: Box, done: Done) -> None:
        """Add (or replace) a run-time keep-out zone; calls done(ok, reason) once, from any thread."""

    def remove_keep_out(self, name: str, done: Done) -> None:
        """Remove a run-time keep-out zone; calls done(ok, reason) once, from any thread."""

    def task_files(self) -> list[str]:
        """Paths of the files the last completed camera task wrote (read once it is "arrived")."""
