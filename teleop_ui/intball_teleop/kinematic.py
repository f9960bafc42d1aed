"""A kinematic stand-in robot for the onboard bridge: no dynamics, no fans, no estimator.

For the server API tests, the browser tests and the link benchmark, which exercise the
ground station and the link, not the flight software (the ROS graph has its own tests; the
ROS backend is ``intball_ros.nodes.bridge_node``). Its telemetry says ``source:
"kinematic"`` and the console shows that label. Flies straight lines at a capped speed
with a first-order approach; battery drains linearly; the camera is a rendered status card.
Routes are flown waypoint by waypoint with their holds (pause / resume); keep-out zones are
kept here like the navigation node keeps them (module zones and the dock fixed, run-time
zones added and removed, refused within radius + margin of the robot). Camera tasks: snapshots
only (the status card over seeded sensor noise, a PNG in a temporary directory), so the file
downlink can be exercised without ROS; the other tasks fail with the reason.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from intball_nav.frames import quat_angle, quat_slerp
from intball_nav.safety import Box

from . import commands as C
from .onboard import Done, Waypoint

SPEED_M_S = {"nominal": 0.25, "precision": 0.10, "quiet": 0.12}
YAW_RATE_RAD_S = 0.5
ARRIVE_M = 0.005
ARRIVE_RAD = math.radians(1.0)
ZONE_MARGIN_M = 0.05  # as the navigation node's planning map: radius + 5 cm


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
        self.go_to_calls: list[tuple[list[float], str]] = []  # (position, flight mode) per goal flown
        self.route: list[Waypoint] | None = None  # the route being flown (follow_route)
        self.route_index = 0
        self.route_paused = False
        self.route_calls: list[int] = []  # waypoints per follow_route call (tests)
        self._hold_left = 0.0  # s of hold left at the current waypoint
        self._leg_done = False  # the current route waypoint is reached (holding there)
        self._route_mode = "nominal"
        self._task_result: str | None = None  # a camera task just done: the reason of its "arrived"
        self._files: list[str] = []
        self._data_dir: Path | None = None
        self._snapshots = 0
        dock = workspace.module.dock
        self.zones: dict[str, tuple[Box, bool]] = {b.name: (b, True) for b in workspace.keep_out}
        self.zones[C.DOCK_ZONE] = (Box(dock.box.min, dock.box.max, C.DOCK_ZONE), True)

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
        self.route = None
        self._set_goal(position, quat, flight_mode)

    def _set_goal(self, position: np.ndarray, quat: np.ndarray, flight_mode: str) -> None:
        self._task_result = None
        self.goal = (np.asarray(position, dtype=float), np.asarray(quat, dtype=float), flight_mode)
        self.go_to_calls.append((self.goal[0].tolist(), flight_mode))
        self.state, self.reason, self.stopped = "moving", "", False

    def motion(self) -> tuple[str, str]:
        if self._task_result is not None:
            return "arrived", self._task_result
        if self.route is not None:
            return ("paused" if self.route_paused else "moving"), self.reason
        if self.state == "holding" and self.goal is not None:
            return "arrived", ""
        return ("moving" if self.state == "moving" else self.state), self.reason

    def hold(self) -> None:
        self._task_result = None
        self.state, self.reason = "holding", "station keeping"
        self.velocity[:] = 0.0
        self.goal = None
        self.route = None

    def follow_route(self, waypoints: list[Waypoint], flight_mode: str) -> bool:
        for i, (pos, _q, _h) in enumerate(waypoints):
            try:
                self.workspace.check(pos)
            except C.CommandError as exc:
                self.hold()
                self.state, self.reason = "failed", f"waypoint {i}: {exc}"
                return True  # motion() says failed, with the reason
        self.route, self.route_index, self.route_paused = list(waypoints), 0, False
        self.route_calls.append(len(waypoints))
        self._route_mode = flight_mode
        self._start_leg(flight_mode)
        return True

    def _start_leg(self, flight_mode: str | None = None) -> None:
        pos, quat, hold = self.route[self.route_index]
        mode = flight_mode or self._route_mode
        self._hold_left, self._leg_done = hold, False
        self._set_goal(pos, quat, mode)

    def route_progress(self) -> tuple[int, bool] | None:
        return None if self.route is None else (self.route_index, self.route_paused)

    def pause_route(self, paused: bool, done: Done) -> None:
        if self.route is None:
            done(False, "no route is being flown")
            return
        if paused:
            self._route_mode = self.goal[2] if self.goal is not None else self._route_mode
            self.route_paused, self.goal, self.state = True, None, "holding"
            self.velocity[:] = 0.0
            done(True, "route paused: holding")
        else:
            self.route_paused = False
            self._start_leg(self._route_mode)  # the interrupted leg again, with its full hold
            done(True, "route resumed")

    def keep_out_zones(self) -> list[dict[str, Any]]:
        return [
            {"name": b.name, "min": b.min.tolist(), "max": b.max.tolist(), "fixed": fixed}
            for b, fixed in self.zones.values()
        ]

    def add_keep_out(self, box: Box, done: Done) -> None:
        if box.name in self.zones and self.zones[box.name][1]:
            done(False, f"keep-out zone rejected: zone {box.name!r} is fixed (module definition)")
            return
        clearance = self.workspace.radius + ZONE_MARGIN_M
        if box.grown(clearance).contains(self.position):
            where = np.round(self.position, 2).tolist()
            done(
                False,
                f"keep-out zone rejected: the robot (estimated at {where} m) is within "
                f"{clearance:.2f} m of zone {box.name!r}: move it away first",
            )
            return
        self.zones[box.name] = (box, False)
        self._zones_changed()
        done(True, f"keep-out zone {box.name} added")

    def remove_keep_out(self, name: str, done: Done) -> None:
        if name not in self.zones:
            done(False, f"no keep-out zone named {name!r}")
        elif self.zones[name][1]:
            done(False, f"zone {name!r} is fixed (module definition): not removable")
        else:
            del self.zones[name]
            self._zones_changed()
            done(True, f"keep-out zone {name} removed")

    def _zones_changed(self) -> None:
        """Goal checks use the new zones; a goal or route leg inside one now stops and fails."""
        self.workspace = self.workspace.with_zones(self.keep_out_zones())
        if self.goal is None:
            return
        try:
            self.workspace.check(self.goal[0])
        except C.CommandError as exc:
            self.hold()
            self.state, self.reason = "failed", f"goal now refused: {exc}"

    def resume(self) -> None:
        self.stopped = False
        self.reason = ""

    def emergency_stop(self) -> None:
        self.goal = None
        self.velocity[:] = 0.0
        self.state, self.reason, self.stopped = "idle", "emergency stop", True

    def camera_task(self, payload: dict) -> bool:
        """Snapshots only; any other task fails (motion() says why)."""
        self.hold()
        task = payload.get("task")
        if task != "snapshot":
            self.state = "failed"
            self.reason = (
                f"the kinematic stand-in takes snapshots only: {task} needs the ROS graph (CameraTask action)"
            )
            return True
        if self._data_dir is None:
            self._data_dir = Path(tempfile.mkdtemp(prefix="intball-kinematic-camera-"))
        self._snapshots += 1
        rng = np.random.default_rng(self._snapshots)  # seeded sensor noise: a photo-like JPEG size
        img = rng.integers(0, 90, (480, 640, 3), dtype=np.uint8)
        img[:, :, 2] = np.clip(img[:, :, 2].astype(int) + np.linspace(0, 120, 640).astype(int), 0, 255)
        self._draw_card(img, "main", scale=0.9)
        path = self._data_dir / f"snapshot_{int(self.clock() * 1000)}_{self._snapshots}.png"
        cv2.imwrite(str(path), img)
        self._files = [str(path)]
        self.state, self.reason = "holding", "snapshot taken"
        self._task_result = f"files: {path.name}"
        return True

    def task_files(self) -> list[str]:
        return list(self._files)

    def _draw_card(self, img: np.ndarray, camera: str, scale: float = 0.45) -> None:
        lines = [
            f"{camera} camera: kinematic stand-in",
            "(no rendered images without the ROS graph)",
            "estimate x y z [m]:",
            " ".join(f"{v:+.2f}" for v in self.position),
        ]
        for i, text in enumerate(lines):
            org = (8, int((40 + 30 * i) * scale / 0.45))
            cv2.putText(
                img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (220, 220, 220), 1 + int(scale > 0.6)
            )

    def camera_jpeg(self, camera: str) -> tuple[bytes, float] | None:
        img = np.full((240, 320, 3), 40, np.uint8)
        self._draw_card(img, camera)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 70])
        return (buf.tobytes(), self.clock()) if ok else None

    # -- model ----------------------------------------------------------------------------

    def step(self, dt: float) -> None:
        moving = self.state == "moving" and self.goal is not None
        self.battery = max(0.0, self.battery - dt * (0.02 if moving else 0.005))
        if not moving:
            self.velocity[:] = 0.0
            return
        if self.route is not None and self._leg_done:
            self._route_step(dt)
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
            if self.route is not None:  # the route goes on: its hold here, then the next waypoint
                self.state, self._leg_done = "moving", True
                self.reason = f"holding at waypoint {self.route_index + 1} of {len(self.route)}"

    def _route_step(self, dt: float) -> None:
        """Holds and the next leg of a route (called by step once the leg's goal is reached)."""
        self.velocity[:] = 0.0
        if self._hold_left > 0.0:
            self._hold_left -= dt
            return
        if self.route_index + 1 < len(self.route):
            self.route_index += 1
            self._start_leg()
            return
        self.route = None  # goal kept: motion() says arrived
        self.state, self.reason = "holding", "route complete"
