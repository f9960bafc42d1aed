"""Battery model: drain with fan effort plus a base load, charging when docked; thresholds.

State of charge ``level`` is a fraction of capacity, 0..1. Power (W, positive = drawn):

    P = base_power_w + fan_power_w_per_n * sum(thrust) - (charge_power_w if docked else 0)

and ``level' = -P / (3600 * capacity_wh)``, clamped to [0, 1]. Fans are off while docked (the
magnets hold the robot), so docked the pack charges at ``charge_power_w - base_power_w``.

Thresholds (``BatteryParams``), highest first: ``warn_level`` (a warning; user programs need
at least this much), ``go_home_level`` (the robot returns to the dock by itself; undocking is
refused below it), ``refuse_motion_level`` (no new motion except docking).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np


class BatteryBand(IntEnum):
    """Where the level sits among the thresholds; larger is worse."""

    OK = 0
    WARN = 1
    GO_HOME = 2
    CRITICAL = 3


@dataclass(frozen=True)
class BatteryParams:
    """capacity_wh : Wh; base_power_w, charge_power_w : W; fan_power_w_per_n : W per N of
    summed fan thrust; warn_level > go_home_level > refuse_motion_level, fractions 0..1."""

    capacity_wh: float = 40.0
    base_power_w: float = 10.0
    fan_power_w_per_n: float = 20.0
    charge_power_w: float = 25.0
    warn_level: float = 0.20
    go_home_level: float = 0.12
    refuse_motion_level: float = 0.05

    def __post_init__(self) -> None:
        for name in ("capacity_wh", "base_power_w", "fan_power_w_per_n", "charge_power_w"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"BatteryParams.{name} must be a finite number >= 0, got {value}")
        if self.capacity_wh <= 0.0:
            raise ValueError(f"BatteryParams.capacity_wh must be > 0, got {self.capacity_wh}")
        if not 0.0 < self.refuse_motion_level < self.go_home_level < self.warn_level < 1.0:
            raise ValueError(
                "BatteryParams: need 0 < refuse_motion_level < go_home_level < warn_level < 1, got "
                f"{self.refuse_motion_level}, {self.go_home_level}, {self.warn_level}"
            )


@dataclass(frozen=True)
class BatteryState:
    """level : state of charge, fraction of capacity 0..1."""

    level: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.level) and 0.0 <= self.level <= 1.0):
            raise ValueError(f"BatteryState.level must be in [0, 1], got {self.level}")


def battery_power(fan_thrust: np.ndarray, docked: bool, params: BatteryParams) -> float:
    """Net power drawn from the pack, W (negative while charging).

    fan_thrust : (8,) N, actual (or commanded) fan thrusts
    docked : latched on the dock (charging)
    """
    thrust = float(np.sum(np.clip(np.asarray(fan_thrust, dtype=float), 0.0, None)))
    power = params.base_power_w + params.fan_power_w_per_n * thrust
    if docked:
        power -= params.charge_power_w
    return power


def battery_step(
    state: BatteryState, fan_thrust: np.ndarray, docked: bool, dt: float, params: BatteryParams
) -> BatteryState:
    """Advance the state of charge by dt (s) at the power of :func:`battery_power`."""
    if not (math.isfinite(dt) and dt >= 0.0):
        raise ValueError(f"dt must be a finite time step >= 0 s, got {dt}")
    power = battery_power(fan_thrust, docked, params)
    level = state.level - power * dt / (3600.0 * params.capacity_wh)
    return BatteryState(min(1.0, max(0.0, level)))


def battery_band(level: float, params: BatteryParams) -> BatteryBand:
    """The band of a level (fraction 0..1): below a threshold means in its band."""
    if level < params.refuse_motion_level:
        return BatteryBand.CRITICAL
    if level < params.go_home_level:
        return BatteryBand.GO_HOME
    if level < params.warn_level:
        return BatteryBand.WARN
    return BatteryBand.OK


def time_to_level(level: float, target: float, power_w: float, params: BatteryParams) -> float:
    """Seconds until ``level`` reaches ``target`` at a constant net power (W); inf if never."""
    if power_w == 0.0 or (target - level) * -power_w <= 0.0:
        return 0.0 if target == level else math.inf
    return abs(target - level) * 3600.0 * params.capacity_wh / abs(power_w)
