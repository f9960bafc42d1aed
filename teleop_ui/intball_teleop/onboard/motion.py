"""Motion commands as :class:`Motion` records: what a goal, jog, dock / undock, route or camera
task flies, planned from the (validated) payload, the estimate and the workspace; refusals
carry the ack's reason. Also a motion's timeout and a route's progress for the telemetry."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from intball_nav.frames import quat_from_rpy, quat_multiply

from .. import commands as C
from .backend import RobotBackend, Waypoint

Goal = tuple[np.ndarray, np.ndarray, str]  # position (3,) m kibo, quat (4,) xyzw, flight mode
DOCKED_RPY_DEG = (0.0, 90.0, 0.0)  # robot back (-x body) toward the dock (see examples/tour.yaml)


class Refused(Exception):
    """A motion command this robot cannot fly now; the message is the ack's reason."""


@dataclass
class Motion:
    """A motion command being executed: a list of goals flown in order."""

    command_id: str | None  # None: an onboard-initiated motion (return to dock)
    kind: str
    goals: list[Goal]
    lifetime_s: float | None = None  # jog: hold when it runs out
    native: bool = False  # dock / undock / camera task by the backend's own procedure (no goals here)
    payload: dict | None = None
    index: int = 0  # goals: the one being flown; route: the waypoint the backend's route started at
    started: float | None = None
    route: list[Waypoint] | None = None  # a route's waypoints (flown by the backend's follow_route)
    progress: int = 0  # route: waypoint index within the backend's current route
    paused: bool = False  # route: paused by the operator
    suspended: bool = False  # route: dropped by a hold (LOS), flown again from where it was


def plan_motion(command_id: str, kind: str, payload: dict, backend: RobotBackend, ws: C.Workspace) -> Motion:
    """The motion of a goal, route, camera_task, jog, dock or undock command; raises Refused."""
    if kind == C.GOAL:
        pos = np.asarray(payload["position"], dtype=float)
        return Motion(command_id, kind, [(pos, C.goal_quat(payload), payload.get("flight_mode", "nominal"))])
    if kind == C.ROUTE:
        if not hasattr(backend, "follow_route"):
            raise Refused("this robot cannot fly routes")
        return Motion(
            command_id, kind, [], native=True, payload=payload, route=C.route_waypoints(payload, ws)
        )
    if kind == C.CAMERA_TASK:
        if not hasattr(backend, "camera_task"):
            raise Refused("camera tasks need the ROS graph (CameraTask action)")
        return Motion(command_id, kind, [], native=True, payload=payload)
    if kind == C.JOG:
        tm = backend.telemetry()
        if tm is None:
            raise Refused("no state estimate yet")
        pos = np.asarray(tm["pose"]["position"]) + np.asarray(payload.get("delta", [0.0, 0.0, 0.0]))
        dyaw = math.radians(float(payload.get("dyaw_deg", 0.0)))
        quat = quat_multiply(quat_from_rpy(0.0, 0.0, dyaw), np.asarray(tm["pose"]["quat"]))
        try:
            ws.check(pos)
        except C.CommandError as exc:
            raise Refused(f"jog refused: {exc}") from None
        return Motion(command_id, kind, [(pos, quat, "precision")], float(payload.get("lifetime_s", 1.0)))
    return dock_motion(command_id, kind, backend, ws)


def dock_motion(command_id: str | None, kind: str, backend: RobotBackend, ws: C.Workspace) -> Motion:
    """The robot's own docking procedure when it has one (ROS: the Dock / Undock actions),
    else the approach and contact points flown as goals."""
    native = hasattr(backend, "dock")
    goals = [] if native else dock_goals(ws, undock=kind == C.UNDOCK)
    return Motion(command_id, kind, goals, native=native)


def dock_goals(ws: C.Workspace, undock: bool) -> list[Goal]:
    """Docking as goals: the approach point, then the contact point (precision mode).
    The magnetic capture of intball_nav.autonomy.docking is not run by this bridge."""
    dock = ws.module.dock
    q = quat_from_rpy(*np.radians(DOCKED_RPY_DEG))
    approach = dock.approach_point(float(dock.approach_distances[0]))
    contact = dock.approach_point(float(dock.approach_distances[-1]))
    if undock:
        return [(approach, q, "precision")]
    return [(approach, q, "nominal"), (contact, q, "precision")]


def timeout_s(m: Motion, per_goal_s: float) -> float:
    """per_goal_s per goal; a route gets it per waypoint, plus its holds."""
    if m.route is None:
        return per_goal_s
    return per_goal_s * len(m.route) + sum(w[2] for w in m.route)


def route_status(m: Motion | None) -> dict[str, Any] | None:
    """A route's progress for the telemetry (``route``); None when no route is flown."""
    if m is None or m.route is None:
        return None
    i = min(m.index + m.progress, len(m.route) - 1)
    return {
        "command": m.command_id,
        "index": i,
        "n": len(m.route),
        "paused": m.paused,
        "suspended": m.suspended,
        "waypoint": [round(float(v), 4) for v in m.route[i][0]],
        "label": str((m.payload or {}).get("label", "")),
    }
