"""Mission files: a start pose and a list of waypoints, validated with file:line errors.

Format (YAML, version 1; see examples/README.md)::

    version: 1
    name: tour                        # optional (default: file stem)
    flight_mode: nominal              # optional (default: nominal)
    start: {position: [x, y, z], rpy_deg: [roll, pitch, yaw]}
    waypoints:
      - {position: [x, y, z], rpy_deg: [r, p, y], hold_s: 5, flight_mode: precision}
      - {position: [x, y, z], quaternion: [qx, qy, qz, qw]}

Positions in m, kibo frame; orientation either ``rpy_deg`` (ROS roll/pitch/yaw in degrees)
or ``quaternion`` (x, y, z, w; normalized on load), exactly one of them. ``hold_s``
(s, default 0) is the time to hold after arriving. Unknown keys, missing fields, wrong
types, non-finite numbers and positions outside the keep-in volume raise
:class:`MissionError` with ``file:line: field: reason``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from intball_nav import config
from intball_nav.flight_modes import DEFAULT_MODE, FlightMode, load_flight_modes
from intball_nav.frames import Pose, quat_from_rpy
from intball_nav.guidance import plan_segment
from intball_nav.module import load_module
from intball_nav.robot import load_robot_params
from intball_nav.safety import Box, GoalRejected, as_box, check_goal, keep_in_from_module

MISSION_VERSION = 1
MAX_HOLD_S = 3600.0


class MissionError(config.ConfigError):
    """Invalid mission file; the message starts with ``file:line:``."""


@dataclass(frozen=True)
class Waypoint:
    """One waypoint: pose (kibo frame), hold time (s) after arrival, flight mode name."""

    pose: Pose
    hold_s: float
    flight_mode: str
    line: int


@dataclass(frozen=True)
class Mission:
    """A validated mission. start and waypoint poses are in the kibo frame."""

    name: str
    version: int
    flight_mode: str
    start: Pose
    waypoints: tuple[Waypoint, ...]
    source: str


def _pose(
    path: Path, node: yaml.Node, field: str, extra: tuple[str, ...]
) -> tuple[Pose, dict[str, yaml.Node]]:
    fields = config.mapping(
        path, node, field, required=("position",), optional=("rpy_deg", "quaternion") + extra
    )
    position = config.vector(path, fields["position"], f"{field}.position", 3)
    has_rpy, has_quat = "rpy_deg" in fields, "quaternion" in fields
    if has_rpy and has_quat:
        raise config.fail(path, node, field, "give either rpy_deg or quaternion, not both")
    if has_rpy:
        rpy = np.radians(config.vector(path, fields["rpy_deg"], f"{field}.rpy_deg", 3))
        quat = quat_from_rpy(*rpy)
    elif has_quat:
        quat = config.vector(path, fields["quaternion"], f"{field}.quaternion", 4)
        if float(np.linalg.norm(quat)) < 1e-6:
            raise config.fail(path, fields["quaternion"], f"{field}.quaternion", "zero quaternion")
    else:
        raise config.fail(
            path, node, field, "missing orientation: give rpy_deg [r, p, y] or quaternion [x, y, z, w]"
        )
    return Pose(position, quat), fields


def load_mission(
    path: str | Path,
    keep_in: Box | None = None,
    radius: float | None = None,
    keep_out: Iterable[Any] | None = None,
    flight_modes: Mapping[str, FlightMode] | None = None,
) -> Mission:
    """Load and validate a mission file.

    keep_in : module clear volume (kibo frame); default: ``intball_nav.module.load_module()``
    radius : m, robot radius; default: from ``load_robot_params()``
    keep_out : boxes with ``min``, ``max`` (3,) m (and optional ``name``); default: the module's
    flight_modes : known modes by name; default: ``load_flight_modes()``
    """
    path = Path(path)
    if keep_in is None or keep_out is None:
        module = load_module()
        keep_in = keep_in if keep_in is not None else keep_in_from_module(module)
        keep_out = keep_out if keep_out is not None else module.keep_out
    if radius is None:
        radius = load_robot_params().radius
    zones = tuple(as_box(z) for z in keep_out)
    modes = flight_modes if flight_modes is not None else load_flight_modes()
    try:
        return _parse(path, keep_in, radius, zones, modes)
    except MissionError:
        raise
    except config.ConfigError as exc:
        raise MissionError(str(exc)) from exc


def _parse(
    path: Path, keep_in: Box, radius: float, zones: tuple[Box, ...], modes: Mapping[str, FlightMode]
) -> Mission:
    root = config.compose_file(path)
    top = config.mapping(
        path, root, "", required=("version", "start", "waypoints"), optional=("name", "flight_mode")
    )
    version = config.number(path, top["version"], "version")
    if version != MISSION_VERSION:
        raise config.fail(path, top["version"], "version", f"unsupported version {version:g} (supported: 1)")

    def mode_of(node: yaml.Node, field: str) -> str:
        name = config.string(path, node, field)
        if name not in modes:
            raise config.fail(
                path, node, field, f"unknown flight mode {name!r} (known: {', '.join(sorted(modes))})"
            )
        return name

    def check_position(pose: Pose, node: yaml.Node, field: str) -> None:
        try:
            check_goal(pose.position, keep_in, radius, zones)
        except GoalRejected as exc:
            raise config.fail(path, node, f"{field}.position", str(exc)) from exc

    default_mode = mode_of(top["flight_mode"], "flight_mode") if "flight_mode" in top else DEFAULT_MODE
    name = config.string(path, top["name"], "name") if "name" in top else path.stem
    start, start_fields = _pose(path, top["start"], "start", ())
    check_position(start, start_fields["position"], "start")

    waypoints: list[Waypoint] = []
    items = config.sequence(path, top["waypoints"], "waypoints")
    if not items:
        raise config.fail(path, top["waypoints"], "waypoints", "at least one waypoint is required")
    for i, item in enumerate(items):
        field = f"waypoints[{i}]"
        pose, fields = _pose(path, item, field, ("hold_s", "flight_mode"))
        check_position(pose, fields["position"], field)
        hold = (
            config.number(path, fields["hold_s"], f"{field}.hold_s", 0.0, MAX_HOLD_S, "s")
            if "hold_s" in fields
            else 0.0
        )
        mode = (
            mode_of(fields["flight_mode"], f"{field}.flight_mode")
            if "flight_mode" in fields
            else default_mode
        )
        waypoints.append(Waypoint(pose, hold, mode, item.start_mark.line + 1))
    return Mission(name, int(version), default_mode, start, tuple(waypoints), str(path))


def mission_duration_hint(mission: Mission, modes: Mapping[str, FlightMode]) -> float:
    """Lower bound (s) of the mission time: planned segment durations plus holds."""
    total, here = 0.0, mission.start
    for wp in mission.waypoints:
        total += plan_segment(here, wp.pose, modes[wp.flight_mode]).duration + wp.hold_s
        here = wp.pose
    return total
