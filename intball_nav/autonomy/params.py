"""``data/autonomy.yaml`` -> battery, fault and docking parameters, validated on load.

Errors name the file, line, field and allowed range (``intball_nav.config``), e.g.
``autonomy.yaml:17: battery.go_home_level: must be below warn_level (0.2), got 0.25``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from intball_nav import config
from intball_nav.autonomy.battery import BatteryParams
from intball_nav.autonomy.docking import DockingParams
from intball_nav.autonomy.faults import FaultParams
from intball_nav.flight_modes import FlightMode, load_flight_modes
from intball_nav.module import ModuleGeometry, load_module
from intball_nav.robot import DATA_DIR, load_robot_params

AUTONOMY_PATH = DATA_DIR / "autonomy.yaml"

_BATTERY = (  # key, lo, hi, unit
    ("capacity_wh", 1.0, 1000.0, "Wh"),
    ("base_power_w", 0.0, 200.0, "W"),
    ("fan_power_w_per_n", 0.0, 1000.0, "W/N"),
    ("charge_power_w", 0.0, 500.0, "W"),
    ("warn_level", 0.0, 1.0, ""),
    ("go_home_level", 0.0, 1.0, ""),
    ("refuse_motion_level", 0.0, 1.0, ""),
)
_DOCKING = (  # key, attribute, lo, hi, unit, factor to SI
    ("path_clearance", "path_clearance", 0.0, 0.5, "m", 1.0),
    ("marker_settle_s", "marker_settle_s", 0.0, 60.0, "s", 1.0),
    ("contact_tolerance", "contact_tolerance", 1e-4, 0.05, "m", 1.0),
    ("stall_speed", "stall_speed", 1e-4, 0.05, "m/s", 1.0),
    ("stall_time_s", "stall_time_s", 0.0, 30.0, "s", 1.0),
    ("capture_lateral", "capture_lateral", 1e-3, 0.1, "m", 1.0),
    ("capture_angle_deg", "capture_angle", 0.1, 45.0, "deg", math.pi / 180.0),
    ("latch_confirm_s", "latch_confirm_s", 0.0, 10.0, "s", 1.0),
    ("max_attempts", "max_attempts", 1, 20, "", 1.0),
    ("final_timeout_margin_s", "final_timeout_margin_s", 0.0, 600.0, "s", 1.0),
    ("leg_timeout_margin_s", "leg_timeout_margin_s", 0.0, 600.0, "s", 1.0),
    ("release_s", "release_s", 0.0, 30.0, "s", 1.0),
    ("undock_standoff", "undock_standoff", 0.11, 1.0, "m", 1.0),
)


@dataclass(frozen=True)
class AutonomyParams:
    """Everything in autonomy.yaml, resolved against the module, robot and flight modes."""

    battery: BatteryParams
    faults: FaultParams
    docking: DockingParams


def load_autonomy_params(
    path: str | Path | None = None, *, module: ModuleGeometry | None = None, radius: float | None = None
) -> AutonomyParams:
    """Load and validate autonomy.yaml (default: the packaged one).

    module : dock geometry (default ``load_module()``); radius : m, robot radius (default URDF).
    Raises ``config.ConfigError`` naming file, line and field.
    """
    path = Path(path) if path is not None else AUTONOMY_PATH
    root = config.compose_file(path)
    top = config.mapping(path, root, "", required=("version", "battery", "faults", "docking"))
    config.number(path, top["version"], "version", 1, 1)

    b = config.mapping(path, top["battery"], "battery", required=tuple(k for k, *_ in _BATTERY))
    values = {k: config.number(path, b[k], f"battery.{k}", lo, hi, u) for k, lo, hi, u in _BATTERY}
    for lower, upper in (("refuse_motion_level", "go_home_level"), ("go_home_level", "warn_level")):
        if not 0.0 < values[lower] < values[upper] < 1.0:
            raise config.fail(
                path,
                b[lower],
                f"battery.{lower}",
                f"must be above 0 and below {upper} ({values[upper]:g}), got {values[lower]:g}",
            )
    battery = BatteryParams(**values)

    f = config.mapping(path, top["faults"], "faults", required=("watchdog", "collision_latch_s"))
    wd = config.mapping(path, f["watchdog"], "faults.watchdog", allow_unknown=True)
    if not wd:
        raise config.fail(path, f["watchdog"], "faults.watchdog", "expected at least one stream: timeout")
    watchdog = {k: config.number(path, v, f"faults.watchdog.{k}", 0.01, 60.0, "s") for k, v in wd.items()}
    latch = config.number(path, f["collision_latch_s"], "faults.collision_latch_s", 0.0, 600.0, "s")
    faults = FaultParams(watchdog=watchdog, collision_latch_s=latch, battery=battery)

    keys = tuple(k for k, *_ in _DOCKING)
    d = config.mapping(
        path,
        top["docking"],
        "docking",
        required=("docked_quat_dock_body", "approach_mode", "final_mode", *keys),
    )
    q = config.vector(path, d["docked_quat_dock_body"], "docking.docked_quat_dock_body", 4)
    if abs(float(np.linalg.norm(q)) - 1.0) > 1e-3:
        raise config.fail(
            path,
            d["docked_quat_dock_body"],
            "docking.docked_quat_dock_body",
            "must be a unit quaternion (x, y, z, w)",
        )
    modes = load_flight_modes()
    chosen: dict[str, FlightMode] = {}
    for key in ("approach_mode", "final_mode"):
        name = config.string(path, d[key], f"docking.{key}")
        if name not in modes:
            raise config.fail(path, d[key], f"docking.{key}", f"{name!r} is not one of {sorted(modes)}")
        chosen[key] = modes[name]
    numbers: dict[str, Any] = {
        attr: factor * config.number(path, d[key], f"docking.{key}", lo, hi, unit)
        for key, attr, lo, hi, unit, factor in _DOCKING
    }
    numbers["max_attempts"] = int(numbers["max_attempts"])
    module = module if module is not None else load_module()
    radius = radius if radius is not None else load_robot_params().radius
    try:
        docking = DockingParams(
            module.dock,
            radius,
            q / np.linalg.norm(q),
            chosen["approach_mode"],
            chosen["final_mode"],
            **numbers,
        )
    except ValueError as exc:
        raise config.fail(path, top["docking"], "docking", str(exc)) from exc
    return AutonomyParams(battery, faults, docking)
