"""Robot parameters of the Int-Ball2-class free flyer: URDF geometry + robot.yaml numbers.

Geometry, mass and inertia come from ``data/intball2.urdf`` (fan links ``fan_0..fan_7``
on fixed joints: origin = mount point, ``<axis>`` = thrust direction, both body frame);
fan limits, lag, noise and drag from ``data/robot.yaml``. Fan table source:
jaxa/int-ball2_simulator (Apache-2.0), ``sim.yaml`` ``thr_parameter``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from intball_nav import config

DATA_DIR = Path(__file__).resolve().parent / "data"
URDF_PATH = DATA_DIR / "intball2.urdf"
ROBOT_YAML_PATH = DATA_DIR / "robot.yaml"
NUM_FANS = 8


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=float)
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class RobotParams:
    """Physical parameters of the robot (SI units, body frame ``base_link`` at the CoM).

    mass : kg
    inertia : (3,3) kg m^2, body frame
    radius : m, collision sphere
    fan_positions : (8,3) m, body frame mount points
    fan_directions : (8,3) unit, body frame; the force each fan applies to the robot
    fan_min, fan_max : N, thrust limits per fan
    fan_tau : s, first-order lag time constant
    fan_noise_sigma : N, per-fan thrust noise (applied by simulators)
    drag_linear : N/(m/s), drag on the velocity relative to the cabin air
    drag_angular : N m/(rad/s), damping of the body rate
    """

    mass: float
    inertia: np.ndarray
    radius: float
    fan_positions: np.ndarray
    fan_directions: np.ndarray
    fan_min: float
    fan_max: float
    fan_tau: float
    fan_noise_sigma: float
    drag_linear: float
    drag_angular: float
    allocation_matrix: np.ndarray = field(init=False, repr=False)
    """(6,8): ``wrench_body = allocation_matrix @ thrusts`` with wrench = [force N; torque N m]."""
    inertia_inv: np.ndarray = field(init=False, repr=False)
    """(3,3) kg^-1 m^-2, inverse of ``inertia``."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "inertia", _frozen(self.inertia))
        object.__setattr__(self, "fan_positions", _frozen(self.fan_positions))
        object.__setattr__(self, "fan_directions", _frozen(self.fan_directions))
        if self.inertia.shape != (3, 3) or self.fan_positions.shape != (NUM_FANS, 3):
            raise ValueError("inertia must be (3,3) and fan_positions (8,3)")
        if self.fan_directions.shape != (NUM_FANS, 3):
            raise ValueError("fan_directions must be (8,3)")
        if not np.allclose(np.linalg.norm(self.fan_directions, axis=1), 1.0, atol=1e-6):
            raise ValueError("fan_directions must be unit vectors")
        B = np.vstack([self.fan_directions.T, np.cross(self.fan_positions, self.fan_directions).T])
        object.__setattr__(self, "allocation_matrix", _frozen(B))
        object.__setattr__(self, "inertia_inv", _frozen(np.linalg.inv(self.inertia)))


def _vec3(text: str | None, what: str) -> np.ndarray:
    parts = (text or "").split()
    if len(parts) != 3:
        raise ValueError(f"{URDF_PATH.name}: {what}: expected 3 numbers, got {text!r}")
    return np.array([float(p) for p in parts])


def _parse_urdf(path: Path) -> tuple[float, np.ndarray, float, np.ndarray, np.ndarray]:
    """(mass kg, inertia (3,3), radius m, fan positions (8,3), fan directions (8,3))."""
    root = ET.parse(path).getroot()
    base = root.find("link[@name='base_link']")
    if base is None:
        raise ValueError(f"{path.name}: no link 'base_link'")
    mass_el = base.find("inertial/mass")
    inertia_el = base.find("inertial/inertia")
    sphere = base.find("collision/geometry/sphere")
    if mass_el is None or inertia_el is None or sphere is None:
        raise ValueError(f"{path.name}: base_link needs inertial/mass, inertial/inertia, collision sphere")
    I = {k: float(inertia_el.get(k, "0")) for k in ("ixx", "ixy", "ixz", "iyy", "iyz", "izz")}
    inertia = np.array(
        [[I["ixx"], I["ixy"], I["ixz"]], [I["ixy"], I["iyy"], I["iyz"]], [I["ixz"], I["iyz"], I["izz"]]]
    )
    positions = np.zeros((NUM_FANS, 3))
    directions = np.zeros((NUM_FANS, 3))
    for i in range(NUM_FANS):
        joint = root.find(f"joint[@name='fan_{i}_joint']")
        if joint is None:
            raise ValueError(f"{path.name}: missing joint fan_{i}_joint")
        origin, axis = joint.find("origin"), joint.find("axis")
        if origin is None or axis is None:
            raise ValueError(f"{path.name}: fan_{i}_joint needs <origin> and <axis>")
        positions[i] = _vec3(origin.get("xyz"), f"fan_{i}_joint origin")
        directions[i] = _vec3(axis.get("xyz"), f"fan_{i}_joint axis")
    return (
        float(mass_el.get("value", "nan")),
        inertia,
        float(sphere.get("radius", "nan")),
        positions,
        directions,
    )


def load_robot_params(
    urdf_path: str | Path | None = None, yaml_path: str | Path | None = None
) -> RobotParams:
    """Robot parameters from the URDF (geometry, mass, inertia) and robot.yaml (the rest).

    Raises ``config.ConfigError`` naming the YAML line and allowed range of a bad value.
    """
    urdf = Path(urdf_path) if urdf_path is not None else URDF_PATH
    ypath = Path(yaml_path) if yaml_path is not None else ROBOT_YAML_PATH
    mass, inertia, radius, positions, directions = _parse_urdf(urdf)
    root = config.compose_file(ypath)
    top = config.mapping(ypath, root, "", required=("version", "fans", "drag"), allow_unknown=True)
    config.number(ypath, top["version"], "version", 1, 1)
    fans = config.mapping(
        ypath, top["fans"], "fans", required=("min_thrust", "max_thrust", "tau", "noise_sigma")
    )
    drag = config.mapping(ypath, top["drag"], "drag", required=("linear", "angular"))
    fan_max = config.number(ypath, fans["max_thrust"], "fans.max_thrust", 1e-3, 1.0, "N")
    return RobotParams(
        mass=mass,
        inertia=inertia,
        radius=radius,
        fan_positions=positions,
        fan_directions=directions,
        fan_min=config.number(ypath, fans["min_thrust"], "fans.min_thrust", 0.0, fan_max, "N"),
        fan_max=fan_max,
        fan_tau=config.number(ypath, fans["tau"], "fans.tau", 1e-4, 1.0, "s"),
        fan_noise_sigma=config.number(ypath, fans["noise_sigma"], "fans.noise_sigma", 0.0, 1.0, "N"),
        drag_linear=config.number(ypath, drag["linear"], "drag.linear", 0.0, 10.0, "N/(m/s)"),
        drag_angular=config.number(ypath, drag["angular"], "drag.angular", 0.0, 1.0, "N m/(rad/s)"),
    )
