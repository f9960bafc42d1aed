"""Fault rules (watchdogs, localization, collisions, battery), their events and guards."""

from __future__ import annotations

import math

import pytest

from intball_nav.autonomy.faults import (
    CollisionReport,
    FaultInputs,
    FaultParams,
    FaultState,
    Response,
    Severity,
    evaluate_faults,
    fault_events,
    guards_from_faults,
    worst_severity,
)
from intball_nav.autonomy.modes import Event
from intball_nav.estimation.health import HealthLevel

P = FaultParams()
FRESH = {"odometry": 0.02, "fan_command": 0.02, "imu": 0.01}


def _faults(**kw):
    state = kw.pop("state", FaultState())
    inputs = FaultInputs(t=kw.pop("t", 10.0), message_ages=kw.pop("ages", FRESH), **kw)
    return evaluate_faults(state, inputs, P)


def _codes(faults):
    return [f.code for f in faults]


def test_nominal_has_no_faults():
    _, faults = _faults()
    assert faults == () and worst_severity(faults) == Severity.OK


@pytest.mark.parametrize("stream", ["odometry", "fan_command", "imu"])
def test_a_stale_stream_demands_the_propulsion_safe_state(stream):
    ages = dict(FRESH, **{stream: 0.8})
    _, faults = _faults(ages=ages)
    (f,) = faults
    assert f.code == f"watchdog.{stream}" and f.severity == Severity.STALE
    assert f.response == Response.SAFE_PROPULSION
    assert f"{stream}: no message for 0.80 s (limit 0.50 s)" in f.text and "fans off" in f.text


def test_a_stream_never_received_counts_as_stale():
    _, faults = _faults(ages={"odometry": 0.0, "imu": 0.0})
    assert _codes(faults) == ["watchdog.fan_command"] and "no message received yet" in faults[0].text
    _, faults = _faults(ages=dict(FRESH, imu=math.inf))
    assert _codes(faults) == ["watchdog.imu"]


def test_age_at_the_limit_is_fresh():
    _, faults = _faults(ages=dict(FRESH, odometry=0.5))
    assert faults == ()


def test_localization_lost_stops_and_holds_degraded_is_reported():
    _, faults = _faults(localization=HealthLevel.LOST, localization_reason="no visual update for 3.20 s")
    (f,) = faults
    assert (f.code, f.severity, f.response) == ("localization.lost", Severity.ERROR, Response.HOLD)
    assert "no visual update for 3.20 s" in f.text and "holding" in f.text
    _, faults = _faults(localization=HealthLevel.DEGRADED, localization_reason="position std 0.030 m")
    assert [(f.code, f.response) for f in faults] == [("localization.degraded", Response.REPORT)]


def test_collision_stops_and_reports_then_clears_after_the_latch():
    state, faults = _faults(t=10.0, collisions=(CollisionReport(9.98, "port_3"),))
    (f,) = faults
    assert (f.code, f.severity, f.response) == ("collision", Severity.ERROR, Response.HOLD)
    assert "collision with port_3 at t = 9.98 s" in f.text
    state, faults = _faults(state=state, t=12.9)
    assert _codes(faults) == ["collision"]
    _, faults = _faults(state=state, t=13.0)
    assert faults == ()


def test_dock_contact_is_expected_only_while_docking():
    hit = (CollisionReport(5.0, "dock"),)
    _, faults = _faults(t=5.0, collisions=hit, dock_expected=True)
    assert faults == ()
    _, faults = _faults(t=5.0, collisions=hit, dock_expected=False)
    assert _codes(faults) == ["collision"]
    _, faults = _faults(t=5.0, collisions=(CollisionReport(5.0, "dock+overhead_1"),), dock_expected=True)
    assert faults == ()  # touching the dock and a neighbouring rack in one episode
    _, faults = _faults(t=5.0, collisions=(CollisionReport(5.0, "overhead_1"),), dock_expected=True)
    assert _codes(faults) == ["collision"]


@pytest.mark.parametrize(
    ("level", "codes"),
    [
        (0.5, []),
        (0.20, []),
        (0.19, ["battery.warn"]),
        (0.12, ["battery.warn"]),
        (0.11, ["battery.low"]),
        (0.05, ["battery.low"]),
        (0.049, ["battery.critical", "battery.low"]),
    ],
)
def test_battery_thresholds(level, codes):
    _, faults = _faults(battery_level=level)
    assert _codes(faults) == codes
    responses = {f.code: f.response for f in faults}
    assert responses.get("battery.low", Response.GO_HOME) == Response.GO_HOME
    assert responses.get("battery.critical", Response.REFUSE_MOTION) == Response.REFUSE_MOTION


def test_faults_are_sorted_worst_first():
    _, faults = _faults(ages=dict(FRESH, imu=2.0), localization=HealthLevel.DEGRADED, battery_level=0.15)
    assert [f.severity for f in faults] == sorted((f.severity for f in faults), reverse=True)
    assert faults[0].code == "watchdog.imu" and worst_severity(faults) == Severity.STALE


def test_events_are_edge_triggered():
    _, lost = _faults(localization=HealthLevel.LOST)
    _, stale = _faults(ages=dict(FRESH, odometry=1.0))
    _, low = _faults(battery_level=0.1)
    assert fault_events((), lost) == (Event.FAULT_HOLD,)
    assert fault_events(lost, lost) == ()  # still active: no new event
    assert fault_events(lost, ()) == (Event.FAULTS_CLEARED,)
    assert fault_events((), stale) == (Event.FAULT_SAFE,)
    assert fault_events(stale, ()) == ()  # a watchdog needs an explicit reset
    assert fault_events((), low) == (Event.BATTERY_LOW,)
    assert fault_events((), stale + lost) == (Event.FAULT_SAFE, Event.FAULT_HOLD)


def test_guards_from_faults():
    _, faults = _faults(localization=HealthLevel.LOST, ages=dict(FRESH, imu=1.0), battery_level=0.3)
    g = guards_from_faults(faults, 0.3, P, command_error="bad")
    assert not g.localization_ok and g.battery_level == 0.3 and g.command_error == "bad"
    assert len(g.blocking_faults) == 1 and "localization lost" in g.blocking_faults[0]
    assert len(g.safe_faults) == 1 and "imu" in g.safe_faults[0]
    assert (g.warn_level, g.go_home_level, g.refuse_motion_level) == (0.20, 0.12, 0.05)


def test_fault_params_validation():
    with pytest.raises(ValueError, match="watchdog"):
        FaultParams(watchdog={"imu": 0.0})
    with pytest.raises(ValueError, match="collision_latch_s"):
        FaultParams(collision_latch_s=-1.0)
