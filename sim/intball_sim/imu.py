"""100 Hz IMU model: specific force and angular rate in the body frame, with noise and bias.

Model per sample (dt = 1 / rate):

- true specific force at the IMU = specific force at the CoM + alpha x r + omega x (omega x r),
  r = ``ImuParams.position_body`` (zero by default: the URDF has no IMU link, the IMU sits at
  the CoM). In free flight there is no gravity term: the specific force is the
  non-gravitational acceleration (fans + drag + contact) / mass.
- measurement = truth + bias + white noise, sigma = noise_density / sqrt(dt);
- bias = constant turn-on bias (drawn once) + random walk, step sigma = bias_random_walk * sqrt(dt);
- the output saturates at +-range.

:func:`imu_step` is pure given its standard-normal draws; :class:`Imu` owns the seeded
generator. The backend supplies the true inputs (``PyBulletBackend.imu_truth()``), taken from
the velocity change over the step, which includes contact forces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

from intball_nav.config import ConfigError


@dataclass(frozen=True)
class ImuSensorParams:
    """Noise model of one triad (gyro or accelerometer).

    noise_density : unit/sqrt(Hz) (rad/s/sqrt(Hz) gyro, m/s^2/sqrt(Hz) accel)
    bias_random_walk : unit/s/sqrt(Hz) = unit per sqrt(s)
    turn_on_bias_sigma : unit, per axis, drawn once per Imu
    range : unit, the output saturates at +-range
    """

    noise_density: float
    bias_random_walk: float
    turn_on_bias_sigma: float
    range: float


@dataclass(frozen=True)
class ImuParams:
    """IMU parameters (schema of ``intball_nav/data/imu.yaml``).

    rate_hz : Hz
    position_body : (3,) m, IMU origin in base_link (lever arm from the CoM)
    """

    rate_hz: float
    position_body: np.ndarray
    gyro: ImuSensorParams
    accel: ImuSensorParams

    @property
    def dt(self) -> float:
        """Sample period, s."""
        return 1.0 / self.rate_hz

    @staticmethod
    def noiseless(rate_hz: float = 100.0) -> ImuParams:
        """An ideal IMU at the CoM (for tests)."""
        zero = ImuSensorParams(0.0, 0.0, 0.0, math.inf)
        return ImuParams(rate_hz, np.zeros(3), zero, zero)


@dataclass(frozen=True)
class ImuBias:
    """Current biases. gyro : (3,) rad/s body; accel : (3,) m/s^2 body."""

    gyro: np.ndarray
    accel: np.ndarray


@dataclass(frozen=True)
class ImuSample:
    """One IMU measurement.

    t : s, sim time of the sample
    specific_force : (3,) m/s^2, body frame (IMU axes = base_link axes)
    angular_rate : (3,) rad/s, body frame
    """

    t: float
    specific_force: np.ndarray
    angular_rate: np.ndarray


class ImuConfigError(ConfigError):
    """Invalid IMU configuration; the message names the file, line and field."""


_RANGES = {
    "rate_hz": (1.0, 10000.0),
    "noise_density": (0.0, 1.0),
    "bias_random_walk": (0.0, 1.0),
    "turn_on_bias_sigma": (0.0, 1.0),
    "range": (1e-3, 1e4),
}


def _default_path() -> Path:
    return Path(str(resources.files("intball_nav") / "data" / "imu.yaml"))


def load_imu_params(path: str | Path | None = None) -> ImuParams:
    """Load and validate IMU parameters (default: ``intball_nav/data/imu.yaml``).

    Raises ImuConfigError naming the file, line and field, with the allowed range.
    """
    path = Path(path) if path is not None else _default_path()
    text = path.read_text()
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ImuConfigError(f"{path}: not valid YAML: {exc}") from None

    def line_of(*keys: str) -> int | None:
        node = root
        for key in keys:
            if not isinstance(node, yaml.MappingNode):
                return None
            match = [v for k, v in node.value if k.value == key]
            if not match:
                return node.start_mark.line + 1
            node = match[0]
        return node.start_mark.line + 1

    def fail(msg: str, *keys: str) -> ImuConfigError:
        line = line_of(*keys)
        where = f"{path}:{line}" if line else str(path)
        return ImuConfigError(f"{where}: {'.'.join(keys)}: {msg}")

    def number(value: object, *keys: str) -> float:
        lo, hi = _RANGES[keys[-1]]
        if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
            raise fail(f"must be a number in [{lo:g}, {hi:g}], got {value!r}", *keys)
        return float(value)

    if not isinstance(data, dict):
        raise ImuConfigError(f"{path}: expected a mapping with rate_hz, position_body, gyro, accel")
    allowed = {"rate_hz", "position_body", "gyro", "accel"}
    for key in data:
        if key not in allowed:
            raise fail(f"unknown field; allowed: {', '.join(sorted(allowed))}", str(key))
    for key in allowed:
        if key not in data:
            raise ImuConfigError(f"{path}: missing field {key!r}")
    pos = data["position_body"]
    if (
        not isinstance(pos, list)
        or len(pos) != 3
        or not all(isinstance(v, int | float) and not isinstance(v, bool) and abs(v) <= 0.2 for v in pos)
    ):
        raise fail(f"must be 3 numbers (m) within +-0.2 of the CoM, got {pos!r}", "position_body")

    def sensor(name: str) -> ImuSensorParams:
        section = data[name]
        fields = ("noise_density", "bias_random_walk", "turn_on_bias_sigma", "range")
        if not isinstance(section, dict):
            raise fail(f"must be a mapping with {', '.join(fields)}", name)
        for key in section:
            if key not in fields:
                raise fail(f"unknown field; allowed: {', '.join(fields)}", name, str(key))
        for key in fields:
            if key not in section:
                raise fail(f"missing field {key!r}", name)
        return ImuSensorParams(*(number(section[k], name, k) for k in fields))

    return ImuParams(
        rate_hz=number(data["rate_hz"], "rate_hz"),
        position_body=np.array(pos, dtype=float),
        gyro=sensor("gyro"),
        accel=sensor("accel"),
    )


def imu_initial_bias(params: ImuParams, noise: np.ndarray) -> ImuBias:
    """Turn-on bias from (6,) standard-normal draws (gyro 0:3, accel 3:6)."""
    n = np.asarray(noise, dtype=float)
    return ImuBias(params.gyro.turn_on_bias_sigma * n[0:3], params.accel.turn_on_bias_sigma * n[3:6])


def imu_step(
    bias: ImuBias,
    specific_force_body: np.ndarray,
    omega_body: np.ndarray,
    alpha_body: np.ndarray,
    params: ImuParams,
    dt: float,
    noise: np.ndarray,
) -> tuple[ImuBias, np.ndarray, np.ndarray]:
    """One IMU sample, a pure function.

    specific_force_body : (3,) m/s^2, body frame, at the CoM (non-gravitational acceleration)
    omega_body : (3,) rad/s, body frame
    alpha_body : (3,) rad/s^2, body frame (for the lever-arm term; zero at the CoM)
    dt : s, time since the previous sample
    noise : (12,) standard-normal draws (gyro white 0:3, accel white 3:6, gyro walk 6:9,
        accel walk 9:12)
    Returns (new bias, measured specific force (3,) m/s^2, measured angular rate (3,) rad/s).
    """
    n = np.asarray(noise, dtype=float)
    w = np.asarray(omega_body, dtype=float)
    f = np.asarray(specific_force_body, dtype=float)
    r = params.position_body
    if r.any():
        f = f + np.cross(alpha_body, r) + np.cross(w, np.cross(w, r))
    sqrt_dt = math.sqrt(dt)
    g, a = params.gyro, params.accel
    new_bias = ImuBias(
        bias.gyro + g.bias_random_walk * sqrt_dt * n[6:9],
        bias.accel + a.bias_random_walk * sqrt_dt * n[9:12],
    )
    gyro = np.clip(w + new_bias.gyro + (g.noise_density / sqrt_dt) * n[0:3], -g.range, g.range)
    accel = np.clip(f + new_bias.accel + (a.noise_density / sqrt_dt) * n[3:6], -a.range, a.range)
    return new_bias, accel, gyro


class Imu:
    """Seeded IMU: draws its turn-on bias at construction, then one :meth:`sample` per tick."""

    def __init__(self, params: ImuParams | None = None, *, seed: int) -> None:
        self.params = load_imu_params() if params is None else params
        self._rng = np.random.default_rng(seed)
        self.bias = imu_initial_bias(self.params, self._rng.standard_normal(6))

    def sample(
        self,
        t: float,
        specific_force_body: np.ndarray,
        omega_body: np.ndarray,
        alpha_body: np.ndarray | None = None,
        dt: float | None = None,
    ) -> ImuSample:
        """Measurement at sim time t (s) from the true CoM motion (body frame, SI).

        dt defaults to the nominal period 1 / rate_hz.
        """
        alpha = np.zeros(3) if alpha_body is None else alpha_body
        step_dt = self.params.dt if dt is None else dt
        self.bias, accel, gyro = imu_step(
            self.bias,
            specific_force_body,
            omega_body,
            alpha,
            self.params,
            step_dt,
            self._rng.standard_normal(12),
        )
        return ImuSample(t=t, specific_force=accel, angular_rate=gyro)
