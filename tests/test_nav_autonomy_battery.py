"""Battery model: drain with fan effort plus base load, charge when docked, thresholds; YAML."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from intball_nav.autonomy.battery import (
    BatteryBand,
    BatteryParams,
    BatteryState,
    battery_band,
    battery_power,
    battery_step,
    time_to_level,
)
from intball_nav.autonomy.params import AUTONOMY_PATH, load_autonomy_params
from intball_nav.config import ConfigError

P = BatteryParams()


def test_power_is_base_plus_fan_effort_minus_charging():
    assert battery_power(np.zeros(8), False, P) == pytest.approx(10.0)
    assert battery_power(np.full(8, 0.06), False, P) == pytest.approx(10.0 + 20.0 * 0.48)
    assert battery_power(np.zeros(8), True, P) == pytest.approx(10.0 - 25.0)


def test_drain_matches_energy_balance():
    """One hour at 20 W drains 20 Wh of a 40 Wh pack: exactly half."""
    thrust = np.full(8, 10.0 / 20.0 / 8)  # 0.5 N in total -> 10 W of fans
    s = BatteryState(1.0)
    for _ in range(3600):
        s = battery_step(s, thrust, False, 1.0, P)
    assert s.level == pytest.approx(0.5, abs=1e-9)


def test_more_fan_effort_drains_faster_and_docking_charges():
    s0 = BatteryState(0.5)
    idle = battery_step(s0, np.zeros(8), False, 60.0, P)
    busy = battery_step(s0, np.full(8, 0.03), False, 60.0, P)
    docked = battery_step(s0, np.zeros(8), True, 60.0, P)
    assert busy.level < idle.level < s0.level < docked.level


def test_level_stays_in_bounds():
    assert battery_step(BatteryState(0.999), np.zeros(8), True, 3600.0, P).level == 1.0
    assert battery_step(BatteryState(0.001), np.full(8, 0.06), False, 3600.0, P).level == 0.0
    with pytest.raises(ValueError):
        BatteryState(1.2)
    with pytest.raises(ValueError):
        battery_step(BatteryState(0.5), np.zeros(8), False, -1.0, P)


def test_bands():
    assert [battery_band(x, P) for x in (0.9, 0.2, 0.19, 0.12, 0.11, 0.05, 0.049)] == [
        BatteryBand.OK,
        BatteryBand.OK,
        BatteryBand.WARN,
        BatteryBand.WARN,
        BatteryBand.GO_HOME,
        BatteryBand.GO_HOME,
        BatteryBand.CRITICAL,
    ]


def test_time_to_level():
    # 20 W from 50 % to 20 %: 12 Wh -> 36 min
    assert time_to_level(0.5, 0.2, 20.0, P) == pytest.approx(36 * 60)
    assert time_to_level(0.5, 0.2, -15.0, P) == math.inf  # charging never gets lower
    assert time_to_level(0.2, 0.9, -15.0, P) == pytest.approx(0.7 * 40 / 15 * 3600)


def test_params_validation():
    with pytest.raises(ValueError, match="refuse_motion_level < go_home_level < warn_level"):
        BatteryParams(go_home_level=0.3)
    with pytest.raises(ValueError, match="capacity_wh"):
        BatteryParams(capacity_wh=0.0)


def test_packaged_yaml_loads():
    params = load_autonomy_params()
    assert params.battery == BatteryParams()  # the YAML and the dataclass defaults agree
    assert params.faults.watchdog == {"odometry": 0.5, "fan_command": 0.5, "imu": 0.5}
    d = params.docking
    assert (d.standoff, d.contact_target, d.radius) == (0.30, 0.095, pytest.approx(0.10))
    assert d.approach_mode.name == "nominal" and d.final_mode.name == "precision"
    assert d.capture_angle == pytest.approx(math.radians(5.0))


def _edited(tmp_path: Path, old: str, new: str) -> Path:
    text = AUTONOMY_PATH.read_text()
    assert old in text
    path = tmp_path / "autonomy.yaml"
    path.write_text(text.replace(old, new))
    return path


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "go_home_level: 0.12",
            "go_home_level: 0.25",
            r"autonomy.yaml:\d+: battery.go_home_level: must be above 0",
        ),
        ("capacity_wh: 40.0", "capacity_wh: -1", r"battery.capacity_wh: -1 Wh is outside the allowed range"),
        ("imu: 0.5 ", "imu: fast ", r"faults.watchdog.imu: expected a number"),
        ("final_mode: precision", "final_mode: turbo", r"docking.final_mode: 'turbo' is not one of"),
        ("capture_angle_deg: 5.0", "capture_angle_deg: 90", r"capture_angle_deg: 90 deg is outside"),
        ("[0.70710678, 0.0, 0.70710678, 0.0]", "[1, 1, 0, 0]", r"docked_quat_dock_body: must be a unit"),
        ("max_attempts: 3", "max_attempts: 3\n  colour: red", r"docking.colour: unknown key"),
        ("undock_standoff: 0.30", "undock_standoff: .nan", r"undock_standoff: must be a finite number"),
    ],
)
def test_yaml_errors_name_file_line_and_field(tmp_path, old, new, message):
    with pytest.raises(ConfigError, match=message):
        load_autonomy_params(_edited(tmp_path, old, new))
