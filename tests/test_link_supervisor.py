"""Onboard safety supervisor: thresholds, hysteresis, latching."""

from __future__ import annotations

import math

import pytest

from intball_teleop.link.supervisor import SafetyAction, SupervisorConfig, SupervisorState, supervise

CFG = SupervisorConfig(
    station_keep_after_s=10.0, return_to_dock_after_s=100.0, recover_below_s=2.0, recover_hold_s=5.0
)


def _run(ages, dt=1.0, resume_at=None, config=CFG):
    state, actions = SupervisorState(), []
    for i, age in enumerate(ages):
        state = supervise(state, age, i * dt, config, resume=resume_at is not None and i >= resume_at)
        actions.append(state.action)
    return actions


def test_escalates_with_silence():
    silence = [float(i) for i in range(150)]  # contact lost at t = 0
    actions = _run(silence)
    assert actions[10] is SafetyAction.NOMINAL and actions[11] is SafetyAction.STATION_KEEP
    assert actions[100] is SafetyAction.STATION_KEEP and actions[101] is SafetyAction.RETURN_TO_DOCK
    assert supervise(SupervisorState(), math.inf, 0.0, CFG).action is SafetyAction.RETURN_TO_DOCK


def test_station_keep_needs_sustained_fresh_contact_to_recover():
    lost = [float(i) for i in range(20)]  # station keep from t = 11
    flapping = [0.5 if i % 3 == 0 else 2.5 for i in range(20)]  # a heartbeat now and then
    actions = _run(lost + flapping)
    assert all(a is SafetyAction.STATION_KEEP for a in actions[11:])
    steady = _run(lost + [0.5] * 10)
    assert steady[20 + 4] is SafetyAction.STATION_KEEP  # held fresh for 4 s: not yet
    assert steady[20 + 5] is SafetyAction.NOMINAL


def test_return_to_dock_is_latched_until_resume():
    lost = [float(i) for i in range(110)]
    back = [0.5] * 20
    assert _run(lost + back)[-1] is SafetyAction.RETURN_TO_DOCK
    assert _run(lost + back, resume_at=len(lost) + 10)[-1] is SafetyAction.NOMINAL
    unlatched = SupervisorConfig(
        station_keep_after_s=10.0, return_to_dock_after_s=100.0, latch_return_to_dock=False
    )
    assert _run(lost + back, config=unlatched)[-1] is SafetyAction.NOMINAL


def test_config_validation():
    with pytest.raises(ValueError, match="recover_below_s < station_keep_after_s < return_to_dock_after_s"):
        SupervisorConfig(station_keep_after_s=100.0, return_to_dock_after_s=50.0)
