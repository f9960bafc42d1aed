"""Flight modes: named presets of motion limits and arrival tolerances (nominal/precision/quiet).

Data in ``data/flight_modes.yaml``; :func:`load_flight_modes` validates every field with
its allowed range and the YAML line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from intball_nav import config
from intball_nav.robot import DATA_DIR

FLIGHT_MODES_PATH = DATA_DIR / "flight_modes.yaml"
DEFAULT_MODE = "nominal"


@dataclass(frozen=True)
class FlightMode:
    """Motion limits and arrival tolerances of one flight mode (SI units).

    v_max : m/s; a_max : m/s^2; w_max : rad/s; alpha_max : rad/s^2
    pos_tolerance : m; att_tolerance : rad
    settle_time : s, time inside both tolerances after which the robot has arrived
    """

    name: str
    v_max: float
    a_max: float
    w_max: float
    alpha_max: float
    pos_tolerance: float
    att_tolerance: float
    settle_time: float

    def __post_init__(self) -> None:
        for key in ("v_max", "a_max", "w_max", "alpha_max", "pos_tolerance", "att_tolerance"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f"flight mode {self.name!r}: {key} must be > 0, got {value}")
        if not (math.isfinite(self.settle_time) and self.settle_time >= 0.0):
            raise ValueError(f"flight mode {self.name!r}: settle_time must be >= 0")


# (yaml key, field, lo, hi, unit, factor to SI)
_FIELDS = (
    ("v_max", "v_max", 1e-3, 0.5, "m/s", 1.0),
    ("a_max", "a_max", 1e-4, 0.05, "m/s^2", 1.0),
    ("w_max_deg", "w_max", 0.1, 45.0, "deg/s", math.pi / 180.0),
    ("alpha_max_deg", "alpha_max", 0.01, 10.0, "deg/s^2", math.pi / 180.0),
    ("pos_tolerance", "pos_tolerance", 1e-3, 0.5, "m", 1.0),
    ("att_tolerance_deg", "att_tolerance", 0.05, 30.0, "deg", math.pi / 180.0),
    ("settle_time", "settle_time", 0.0, 60.0, "s", 1.0),
)


def load_flight_modes(path: str | Path | None = None) -> dict[str, FlightMode]:
    """All flight modes of the YAML file by name (the file's ``default`` is checked to exist)."""
    path = Path(path) if path is not None else FLIGHT_MODES_PATH
    root = config.compose_file(path)
    top = config.mapping(path, root, "", required=("version", "default", "modes"))
    config.number(path, top["version"], "version", 1, 1)
    modes_node = top["modes"]
    if not isinstance(modes_node, yaml.MappingNode) or not modes_node.value:
        raise config.fail(path, modes_node, "modes", "expected a mapping of mode name -> limits")
    modes: dict[str, FlightMode] = {}
    keys = tuple(f[0] for f in _FIELDS)
    for key_node, value_node in modes_node.value:
        name = str(key_node.value)
        fields = config.mapping(path, value_node, f"modes.{name}", required=keys)
        values = {
            attr: factor * config.number(path, fields[key], f"modes.{name}.{key}", lo, hi, unit)
            for key, attr, lo, hi, unit, factor in _FIELDS
        }
        modes[name] = FlightMode(name=name, **values)
    default = config.string(path, top["default"], "default")
    if default not in modes:
        raise config.fail(path, top["default"], "default", f"{default!r} is not one of {sorted(modes)}")
    return modes


def get_flight_mode(name: str = DEFAULT_MODE, path: str | Path | None = None) -> FlightMode:
    """One flight mode by name; ValueError listing the known names otherwise."""
    modes = load_flight_modes(path)
    if name not in modes:
        raise ValueError(f"unknown flight mode {name!r} (known: {', '.join(sorted(modes))})")
    return modes[name]
