"""Operator command kinds and their payloads: one schema, checked on the ground (before a
command is queued, so the operator gets the error at once) and again onboard (the robot
never trusts the ground's checks).

Pure: no I/O, no clock. Positions in m, kibo frame; angles only as ``*_deg`` (UI edge).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from intball_nav.frames import quat_from_rpy, quat_normalize
from intball_nav.module import ModuleGeometry, load_module
from intball_nav.robot import load_robot_params
from intball_nav.safety import Box, GoalRejected, check_goal, keep_in_from_module

GOAL = "goal"  # fly to a pose (replaces the current motion unless append)
JOG = "jog"  # small relative move with a short lifetime
STOP = "stop"  # stop the current motion, drop queued motions, hold position
STATION_KEEP = "station_keep"  # hold the current estimated pose
DOCK = "dock"
UNDOCK = "undock"
RESUME = "resume"  # leave the emergency-stop latch (and a latched return to dock)
CAMERA_STREAM = "camera_stream"  # choose the downlinked camera and its rate
CAMERA_TASK = "camera_task"  # snapshot, look_at, survey, inspect, record, read_codes (ROS CameraTask action)
EMERGENCY_STOP = "emergency_stop"  # == link.protocol.EMERGENCY_STOP
ROUTE = "route"  # 1..20 waypoints flown in order as one command (ROS: the FollowRoute action)
ROUTE_PAUSE = "route_pause"  # pause the route being flown (hold where it is)
ROUTE_RESUME = "route_resume"  # resume a paused route from the waypoint it was flying to
KEEP_OUT_ADD = "keep_out_add"  # add (or replace) a run-time keep-out box
KEEP_OUT_REMOVE = "keep_out_remove"  # remove a run-time keep-out box
FILE_RESEND = (
    "file_resend"  # chunks of a downlinked camera-task file the ground is missing (sent by the ground)
)

KINDS = (
    GOAL,
    ROUTE,
    JOG,
    STOP,
    STATION_KEEP,
    DOCK,
    UNDOCK,
    RESUME,
    ROUTE_PAUSE,
    ROUTE_RESUME,
    KEEP_OUT_ADD,
    KEEP_OUT_REMOVE,
    FILE_RESEND,
    CAMERA_STREAM,
    CAMERA_TASK,
    EMERGENCY_STOP,
)
MOTION_KINDS = (GOAL, ROUTE, JOG, DOCK, UNDOCK, CAMERA_TASK)
CAMERA_TASKS = ("snapshot", "look_at", "survey", "inspect", "record", "read_codes")
MAX_RECORD_S = 120.0
FLIGHT_MODES = ("nominal", "precision", "quiet")
CAMERAS = ("main", "nav_left", "nav_right")
MAX_JOG_STEP_M = 0.25
MAX_JOG_YAW_DEG = 20.0
MAX_JOG_LIFETIME_S = 3.0
MAX_CAMERA_RATE_HZ = 5.0
MAX_ROUTE_WAYPOINTS = 20
MAX_HOLD_S = 600.0  # per route waypoint
ZONE_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]{1,32}")
FILE_ID_RE = re.compile(r"[0-9a-f]{12}")
MAX_RESEND_CHUNKS = 2000
DOCK_ZONE = "dock"  # the dock body: a fixed zone of the planning map, not a goal check


class CommandError(ValueError):
    """A command payload is unusable; ``str()`` names the field and the problem."""


@dataclass(frozen=True)
class Workspace:
    """Where goals may go. keep_in : clear volume (kibo, m); keep_out : boxes; radius : m."""

    module: ModuleGeometry
    radius: float
    zones: tuple[Box, ...] | None = None  # keep-out boxes in force (None: the module's own)
    fixed: frozenset[str] | None = None  # names of zones that cannot be removed (None: the module's)

    @classmethod
    def default(cls) -> Workspace:
        return cls(load_module(), load_robot_params().radius)

    @property
    def keep_out(self) -> tuple[Box, ...]:
        """Every keep-out box in force (kibo, m; not grown), the dock body included when known."""
        if self.zones is not None:
            return self.zones
        return tuple(Box(k.min, k.max, k.name) for k in self.module.keep_out)

    @property
    def fixed_zones(self) -> frozenset[str]:
        if self.fixed is not None:
            return self.fixed
        return frozenset(k.name for k in self.module.keep_out) | {DOCK_ZONE}

    def with_zones(self, zones: list[dict[str, Any]]) -> Workspace:
        """This workspace with the zones reported by the robot (``keep_out`` of its telemetry:
        name, min, max, fixed). Raises CommandError for an unusable zone."""
        boxes, fixed = [], set()
        for z in zones:
            try:
                boxes.append(Box(np.asarray(z["min"], float), np.asarray(z["max"], float), str(z["name"])))
            except (KeyError, TypeError, ValueError) as exc:
                raise CommandError(f"keep_out: bad zone {z!r}: {exc}") from None
            if z.get("fixed"):
                fixed.add(str(z["name"]))
        return replace(self, zones=tuple(boxes), fixed=frozenset(fixed) | {DOCK_ZONE})

    def check(self, position: np.ndarray) -> None:
        """Raise CommandError (with the safety reason) unless the robot fits at position."""
        goal_boxes = [b for b in self.keep_out if b.name != DOCK_ZONE]
        try:
            check_goal(position, keep_in_from_module(self.module), self.radius, goal_boxes)
        except GoalRejected as exc:
            raise CommandError(str(exc)) from None

    def describe(self) -> dict[str, Any]:
        """Geometry for the console's 3D view (JSON-ready)."""
        m = self.module
        dock = m.dock
        return {
            "frame": "kibo",
            "clear_volume": {"min": m.clear_min.tolist(), "max": m.clear_max.tolist()},
            "robot_radius": self.radius,
            "keep_out": [
                {
                    "name": b.name,
                    "min": b.min.tolist(),
                    "max": b.max.tolist(),
                    "fixed": b.name in self.fixed_zones,
                }
                for b in self.keep_out
                if b.name != DOCK_ZONE
            ],
            "bays": [  # rectangles on the rack faces: centre, face-frame quat (x, y in the face), size
                {
                    "name": b.name,
                    "face": b.face,
                    "centre": b.centre.tolist(),
                    "quat": b.pose.quat.tolist(),
                    "size": b.size.tolist(),
                }
                for b in m.bays
            ],
            "dock": {
                "position": dock.pose.position.tolist(),
                "quat": dock.pose.quat.tolist(),
                "box": {"min": dock.box.min.tolist(), "max": dock.box.max.tolist()},
                "approach": dock.approach_point(float(dock.approach_distances[0])).tolist(),
            },
        }


def _number(payload: dict, key: str, lo: float, hi: float, unit: str, default: float | None = None) -> float:
    if key not in payload:
        if default is None:
            raise CommandError(f"{key}: missing")
        return default
    value = payload[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CommandError(f"{key}: expected a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise CommandError(f"{key}: {value} is not finite")
    if not lo <= value <= hi:
        raise CommandError(f"{key}: {value:g} {unit} is outside the allowed range {lo:g} .. {hi:g} {unit}")
    return value


def _vector(payload: dict, key: str, n: int, default: list[float] | None = None) -> np.ndarray:
    if key not in payload:
        if default is None:
            raise CommandError(f"{key}: missing")
        return np.asarray(default, dtype=float)
    value = payload[key]
    if not isinstance(value, list) or len(value) != n:
        raise CommandError(f"{key}: expected a list of {n} numbers")
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value):
        raise CommandError(f"{key}: expected a list of {n} numbers")
    arr = np.asarray(value, dtype=float)
    if not np.isfinite(arr).all():
        raise CommandError(f"{key}: {value} contains a non-finite number")
    return arr


def _only(payload: Any, kind: str, allowed: set[str]) -> dict:
    if not isinstance(payload, dict):
        raise CommandError(f"{kind}: payload must be an object")
    extra = set(payload) - allowed
    if extra:
        raise CommandError(f"{kind}: unknown field(s) {', '.join(sorted(extra))}")
    return payload


def goal_quat(payload: dict) -> np.ndarray:
    """(4,) xyzw from ``rpy_deg`` (default level, facing +x) or ``quat``."""
    if "quat" in payload and "rpy_deg" in payload:
        raise CommandError("give either rpy_deg or quat, not both")
    if "quat" in payload:
        q = _vector(payload, "quat", 4)
        if float(np.linalg.norm(q)) < 1e-6:
            raise CommandError("quat: zero norm")
        return quat_normalize(q)
    rpy = _vector(payload, "rpy_deg", 3, [0.0, 0.0, 0.0])
    if np.any(np.abs(rpy) > 360.0):
        raise CommandError(f"rpy_deg: {rpy.tolist()} outside -360 .. 360 deg")
    return quat_from_rpy(*np.radians(rpy))


def validate(kind: str, payload: Any, workspace: Workspace) -> dict:
    """Check a command; returns the payload (unchanged) or raises CommandError naming the problem."""
    if kind not in KINDS:
        raise CommandError(f"unknown command kind {kind!r} (known: {', '.join(KINDS)})")
    if kind == GOAL:
        p = _only(payload, kind, {"position", "rpy_deg", "quat", "flight_mode", "append", "label"})
        workspace.check(_vector(p, "position", 3))
        goal_quat(p)
        if p.get("flight_mode", "nominal") not in FLIGHT_MODES:
            raise CommandError(f"flight_mode: {p['flight_mode']!r} is not one of {', '.join(FLIGHT_MODES)}")
        if not isinstance(p.get("append", False), bool):
            raise CommandError("append: expected true or false")
        if not isinstance(p.get("label", ""), str) or len(p.get("label", "")) > 64:
            raise CommandError("label: expected a string of at most 64 characters")
    elif kind == ROUTE:
        p = _only(payload, kind, {"waypoints", "flight_mode", "label"})
        route_waypoints(p, workspace)
    elif kind == KEEP_OUT_ADD:
        p = _only(payload, kind, {"name", "min", "max"})
        keep_out_box(p, workspace)
    elif kind == KEEP_OUT_REMOVE:
        p = _only(payload, kind, {"name"})
        name = _zone_name(p)
        if name in workspace.fixed_zones:
            raise CommandError(f"zone {name!r} is fixed (module definition): not removable")
        if name not in {b.name for b in workspace.keep_out}:
            raise CommandError(f"no keep-out zone named {name!r}")
    elif kind == FILE_RESEND:
        p = _only(payload, kind, {"id", "chunks"})
        if not isinstance(p.get("id"), str) or not FILE_ID_RE.fullmatch(p["id"]):
            raise CommandError(f"id: {p.get('id')!r} is not a file id (12 hex digits)")
        chunks = p.get("chunks")
        if (
            not isinstance(chunks, list)
            or not 1 <= len(chunks) <= MAX_RESEND_CHUNKS
            or any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in chunks)
        ):
            raise CommandError(f"chunks: expected a list of 1 .. {MAX_RESEND_CHUNKS} chunk numbers >= 0")
    elif kind == JOG:
        p = _only(payload, kind, {"delta", "dyaw_deg", "lifetime_s"})
        d = _vector(p, "delta", 3, [0.0, 0.0, 0.0])
        if float(np.linalg.norm(d)) > MAX_JOG_STEP_M:
            raise CommandError(f"delta: {np.linalg.norm(d):.3f} m is longer than {MAX_JOG_STEP_M} m")
        _number(p, "dyaw_deg", -MAX_JOG_YAW_DEG, MAX_JOG_YAW_DEG, "deg", 0.0)
        _number(p, "lifetime_s", 0.2, MAX_JOG_LIFETIME_S, "s", 1.0)
    elif kind == CAMERA_STREAM:
        p = _only(payload, kind, {"camera", "rate_hz"})
        if p.get("camera", "main") not in CAMERAS:
            raise CommandError(f"camera: {p.get('camera')!r} is not one of {', '.join(CAMERAS)}")
        _number(p, "rate_hz", 0.0, MAX_CAMERA_RATE_HZ, "Hz", 1.0)
    elif kind == CAMERA_TASK:
        p = _only(payload, kind, {"task", "point", "bay", "duration_s"})
        task = p.get("task")
        if task not in CAMERA_TASKS:
            raise CommandError(f"task: {task!r} is not one of {', '.join(CAMERA_TASKS)}")
        if task == "look_at":
            point = _vector(p, "point", 3)
            m = workspace.module
            if np.any(point < m.clear_min - 0.01) or np.any(point > m.clear_max + 0.01):
                raise CommandError(f"point: {point.tolist()} is outside the module")
        if task == "inspect":
            bay = p.get("bay")
            if not isinstance(bay, str) or bay not in {b.name for b in workspace.module.bays}:
                raise CommandError(f"bay: {bay!r} is not a rack bay of the module (e.g. port_3)")
        if task == "record":
            _number(p, "duration_s", 0.5, MAX_RECORD_S, "s")
    else:
        p = _only(payload, kind, set())
    return p


def route_waypoints(payload: dict, workspace: Workspace) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """(position (3,) m kibo, quat (4,) xyzw, hold s) per waypoint of a ``route`` payload;
    raises CommandError naming the waypoint and the problem."""
    wps = payload.get("waypoints")
    if not isinstance(wps, list) or not 1 <= len(wps) <= MAX_ROUTE_WAYPOINTS:
        got = f"{len(wps)}" if isinstance(wps, list) else type(wps).__name__
        raise CommandError(f"waypoints: expected a list of 1 .. {MAX_ROUTE_WAYPOINTS} waypoints, got {got}")
    if payload.get("flight_mode", "nominal") not in FLIGHT_MODES:
        raise CommandError(f"flight_mode: {payload['flight_mode']!r} is not one of {', '.join(FLIGHT_MODES)}")
    label = payload.get("label", "")
    if not isinstance(label, str) or len(label) > 64:
        raise CommandError("label: expected a string of at most 64 characters")
    out = []
    for i, wp in enumerate(wps):
        try:
            w = _only(wp, "waypoint", {"position", "rpy_deg", "quat", "hold_s"})
            pos = _vector(w, "position", 3)
            workspace.check(pos)
            quat = goal_quat(w)
            hold = _number(w, "hold_s", 0.0, MAX_HOLD_S, "s", 0.0)
        except CommandError as exc:
            raise CommandError(f"waypoints[{i}]: {exc}") from None
        out.append((pos, quat, hold))
    return out


def _zone_name(payload: dict) -> str:
    name = payload.get("name")
    if not isinstance(name, str) or not ZONE_NAME_RE.fullmatch(name):
        raise CommandError(f"name: {name!r} is not 1-32 letters, digits, '_', '-' or '.'")
    return name


def keep_out_box(payload: dict, workspace: Workspace) -> Box:
    """The keep-out box of a ``keep_out_add`` payload (name, min, max in m, kibo frame), inside
    the module and not a fixed zone's name; raises CommandError naming the problem."""
    name = _zone_name(payload)
    if name in workspace.fixed_zones:
        raise CommandError(f"name: zone {name!r} is fixed (module definition): choose another name")
    lo, hi = _vector(payload, "min", 3), _vector(payload, "max", 3)
    for i, axis in enumerate("xyz"):
        if lo[i] >= hi[i]:
            raise CommandError(f"min {axis}={lo[i]:g} m must be below max {axis}={hi[i]:g} m")
    m = workspace.module
    if np.any(lo < m.clear_min - 0.01) or np.any(hi > m.clear_max + 0.01):
        raise CommandError(
            f"box {lo.tolist()} .. {hi.tolist()} m is not inside the module clear volume "
            f"{m.clear_min.tolist()} .. {m.clear_max.tolist()} m"
        )
    return Box(lo, hi, name)
