"""A kinematic stand-in robot for the onboard bridge: no dynamics, no fans, no estimator.

For the server API tests, the browser tests and the link benchmark, which exercise the
ground station and the link, not the flight software (the ROS graph has its own tests; the
ROS backend is ``intball_ros.nodes.bridge_node``). Its telemetry says ``source:
"kinematic"`` and the console shows that label. Flies straight lines at a capped speed
with a first-order approach; battery drains linearly; the camera is a rendered status card.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from intball_nav.frames import quat_angle, quat_slerp

from . import commands as C

SPEED_M_S = {"nominal": 0.25, "precision": 0.10, "quiet": 0.12}
YAW_RATE_RAD_S = 0.5
ARRIVE_M = 0.005
ARRIVE_RAD = math.radians(1.0)


class KinematicRobot:
    """Point robot with attitude, stepped by ``step(dt)`` (call it from a timer)."""

    source = "kinematic"

    def __init__(
        self,
        workspace: C.Workspace,
        position=(1.6, 0.0, 0.2),
        quat=(0.0, 0.0, 0.0, 1.0),
        speed_scale: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.workspace = workspace
        self.position = np.asarray(position, dtype=float)
        self.quat = np.asarray(quat, dtype=float)
        self.velocity = np.zeros(3)
        self.speed_scale = speed_scale
        self.clock = clock
        self.goal: tuple[np.ndarray, np.ndarray, str] | None = None
        self.state = "idle"
        self.reason = ""
        self.battery = 100.0
        self.stopped = False
        self.faults: list[str] = []
        self.localization = ("ok", "")
        self.go_to_calls: list[tuple[list[float], str]] = []  # (position, flight mode) per go_to

    # -- RobotBackend ---------------------------------------------------------------------

    def telemetry(self) -> dict[str, Any]:
        speed = float(np.linalg.norm(self.velocity))
        return {
            "stamp": self.clock(),
            "pose": {"position": self.position.tolist(), "quat": self.quat.tolist()},
            "velocity": self.velocity.tolist(),
            "angular_velocity": [0.0, 0.0, 0.0],
            "localization": {"level": self.localization[0], "reason": self.localization[1]},
            "battery": {"percent": round(self.battery, 2), "charging": False},
            "fan_effort": min(1.0, speed / 0.25),
            "guidance": {
                "state": self.state,
                "message": self.reason,
                "goal": None if self.goal is None else self.goal[0].tolist(),
            },
            "mode": "stopped" if self.stopped else ("flying" if self.state == "moving" else "holding"),
            "faults": list(self.faults),
        }

    def go_to(self, position: np.ndarray, quat: np.ndarray, flight_mode: str) -> None:
        self.workspace.check(position)
        self.goal = (np.asarray(position, dtype=float), np.asarray(quat, dtype=float), flight_mode)
        self.go_to_calls.append((self.goal[0].tolist(), flight_mode))
        self.state, self.reason, self.stopped = "moving", "", False

    def motion(self) -> tuple[str, str]:
        if self.state == "holding" and self.goal is not None:
            return "arrived", ""
        return ("moving" if self.state == "moving" else self.state), self.reason

    def hold(self) -> None:
        self.state, self.reason = "holding", "station keeping"
        self.velocity[:] = 0.0
        self.goal = None

    def resume(self) -> None:
        self.stopped = False
        self.reason = ""

    def emergency_stop(self) -> None:
        self.goal = None
        self.velocity[:] = 0.0
        self.state, self.reason, self.stopped = "idle", "emergency stop", True

    def camera_jpeg(self, camera: str) -> tuple[bytes, float] | None:
        img = np.full((240, 320, 3), 40, np.uint8)
        lines = [
            f"{camera} camera: kinematic stand-in",
            "(no rendered images without the ROS graph)",
            "estimate x y z [m]:",
            " ".join(f"{v:+.2f}" for v in self.position),
        ]
        for i, text in enumerate(lines):
            cv2.putText(img, text, (8, 40 + 30 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (220, 220, 220), 1)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 70])
        return (buf.tobytes(), self.clock()) if ok else None

    # -- model ----------------------------------------------------------------------------

    def step(self, dt: float) -> None:
        moving = self.state == "moving" and self.goal is not None
        self.battery = max(0.0, self.battery - dt * (0.02 if moving else 0.005))
        if not moving:
            self.velocity[:] = 0.0
            return
        target, q_target, mode = self.goal
        delta = target - self.position
        dist = float(np.linalg.norm(delta))
        vmax = SPEED_M_S.get(mode, 0.2) * self.speed_scale
        step = min(dist, vmax * dt)
        self.velocity = (delta / dist * step / dt) if dist > 1e-12 and dt > 0 else np.zeros(3)
        self.position = self.position + (delta / dist * step if dist > 1e-12 else 0.0)
        angle = quat_angle(self.quat, q_target)
        if angle > 1e-9:
            s = min(1.0, YAW_RATE_RAD_S * self.speed_scale * dt / angle)
            self.quat = quat_slerp(self.quat, q_target, s)
        if (
            float(np.linalg.norm(target - self.position)) < ARRIVE_M
            and quat_angle(self.quat, q_target) < ARRIVE_RAD
        ):
            self.position, self.quat = target.copy(), q_target.copy()
            self.velocity[:] = 0.0
            self.state, self.reason = "holding", "arrived"
