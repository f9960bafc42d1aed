"""The mode state machine: every row of the transition table, every guard, every rejection."""

from __future__ import annotations

import pytest

from intball_nav.autonomy.modes import (
    REQUESTS,
    STAY,
    TRANSITIONS,
    Action,
    Event,
    Guards,
    Mode,
    ModeState,
    is_request,
    transition,
)

OK = Guards()


def _first_row(event: Event, mode: Mode):
    for row in TRANSITIONS:
        if row[0] == event and mode in row[1]:
            return row
    return None


ROW_CASES = [(event, mode) for event in Event for mode in Mode if _first_row(event, mode) is not None]


@pytest.mark.parametrize(("event", "mode"), ROW_CASES, ids=[f"{e}-from-{m}" for e, m in ROW_CASES])
def test_every_table_row_with_passing_guards(event: Event, mode: Mode):
    _, _, target, action, _, note = _first_row(event, mode)
    state = ModeState(mode, 1.0, "before")
    new, tr = transition(state, event, OK, 5.0)
    assert tr.accepted, tr.reason
    assert tr.source == mode
    expected = mode if target is STAY else target
    assert new.mode == tr.target == expected
    assert tr.action == action
    assert note in tr.reason
    if expected != mode:
        assert new.since == 5.0 and new.reason == tr.reason
    if target is STAY:
        assert new == state  # an accepted no-op changes nothing


def test_emergency_stop_from_every_mode_turns_the_fans_off():
    for mode in Mode:
        new, tr = transition(ModeState(mode), Event.EMERGENCY_STOP, Guards(battery_level=0.0), 0.0)
        assert tr.accepted and new.mode == Mode.EMERGENCY_STOP and tr.action == Action.FANS_OFF


@pytest.mark.parametrize("event", [Event.STOP, Event.STATION_KEEP, Event.EMERGENCY_STOP])
def test_stop_services_are_answered_in_every_mode(event):
    for mode in Mode:
        _, tr = transition(ModeState(mode), event, OK, 0.0)
        assert tr.accepted, (mode, tr.reason)


def test_stop_while_moving_holds_here():
    for mode in (Mode.IDLE, Mode.NAVIGATING, Mode.STATION_KEEPING, Mode.DOCKING, Mode.UNDOCKING):
        new, tr = transition(ModeState(mode), Event.STOP, OK, 0.0)
        assert new.mode == Mode.STATION_KEEPING and tr.action == Action.HOLD_HERE


REJECTED = [
    (Mode.DOCKED, Event.NAVIGATE, "undock first"),
    (Mode.UNDOCKING, Event.NAVIGATE, "undocking in progress"),
    (Mode.FAULTED, Event.NAVIGATE, "faulted"),
    (Mode.EMERGENCY_STOP, Event.NAVIGATE, "emergency stop latched"),
    (Mode.FAULTED, Event.DOCK, "faulted"),
    (Mode.EMERGENCY_STOP, Event.DOCK, "emergency stop latched"),
    (Mode.IDLE, Event.UNDOCK, "not docked"),
    (Mode.NAVIGATING, Event.UNDOCK, "not docked"),
    (Mode.STATION_KEEPING, Event.ARRIVED, "ignored"),
    (Mode.IDLE, Event.DOCK_COMPLETE, "ignored"),
    (Mode.NAVIGATING, Event.UNDOCK_COMPLETE, "ignored"),
    (Mode.DOCKED, Event.BATTERY_LOW, "ignored"),
    (Mode.STATION_KEEPING, Event.FAULTS_CLEARED, "ignored"),
]


@pytest.mark.parametrize(("mode", "event", "why"), REJECTED, ids=[f"{e}-in-{m}" for m, e, _ in REJECTED])
def test_requests_without_a_row_are_rejected_with_a_reason(mode, event, why):
    state = ModeState(mode, 2.0, "kept")
    new, tr = transition(state, event, OK, 9.0)
    assert not tr.accepted and new == state and tr.action == Action.NONE
    assert why in tr.reason and tr.reason.startswith(f"{event} rejected")


def test_every_mode_answers_every_request():
    for mode in Mode:
        for event in REQUESTS:
            _, tr = transition(ModeState(mode), event, OK, 0.0)
            assert tr.reason, (mode, event)


GUARDS = [
    (
        Event.NAVIGATE,
        Mode.IDLE,
        Guards(command_error="x=9.70 m is beyond the keep-in limit"),
        "invalid command: x=9.70",
    ),
    (Event.NAVIGATE, Mode.STATION_KEEPING, Guards(blocking_faults=("collision with port_3",)), "port_3"),
    (Event.NAVIGATE, Mode.IDLE, Guards(localization_ok=False), "localization is lost"),
    (Event.NAVIGATE, Mode.IDLE, Guards(battery_level=0.04), "below 5 %: new motion refused"),
    (Event.NAVIGATE, Mode.IDLE, Guards(battery_level=0.10), "go-home level 12 %"),
    (Event.DOCK, Mode.IDLE, Guards(localization_ok=False), "localization is lost"),
    (Event.DOCK, Mode.NAVIGATING, Guards(blocking_faults=("collision",)), "active fault"),
    (Event.UNDOCK, Mode.DOCKED, Guards(battery_level=0.11), "only docking is accepted"),
    (Event.UNDOCK, Mode.DOCKED, Guards(safe_faults=("watchdog: imu",)), "watchdog fault active"),
    (Event.UNDOCK, Mode.DOCKED, Guards(blocking_faults=("localization lost",)), "active fault"),
    (Event.STATION_KEEP, Mode.EMERGENCY_STOP, Guards(safe_faults=("watchdog: odometry",)), "watchdog"),
    (Event.RESET, Mode.EMERGENCY_STOP, Guards(safe_faults=("watchdog: odometry",)), "watchdog"),
    (Event.RESET, Mode.FAULTED, Guards(blocking_faults=("localization lost",)), "active fault"),
    (Event.BATTERY_LOW, Mode.STATION_KEEPING, Guards(localization_ok=False), "localization is lost"),
]


@pytest.mark.parametrize(
    ("event", "mode", "guards", "why"), GUARDS, ids=[f"{e}-{m}-{w[:18]}" for e, m, _, w in GUARDS]
)
def test_each_guard_rejects_with_its_reason(event, mode, guards, why):
    state = ModeState(mode)
    new, tr = transition(state, event, guards, 0.0)
    assert not tr.accepted and new == state
    assert why in tr.reason


def test_docking_is_allowed_below_the_motion_threshold():
    """Going home is the way out of a flat battery: dock is not refused below 5 %."""
    new, tr = transition(ModeState(Mode.STATION_KEEPING), Event.DOCK, Guards(battery_level=0.01), 0.0)
    assert tr.accepted and new.mode == Mode.DOCKING and tr.action == Action.START_DOCKING


def test_navigate_below_the_warn_level_is_accepted_with_a_warning():
    new, tr = transition(ModeState(Mode.IDLE), Event.NAVIGATE, Guards(battery_level=0.15), 0.0)
    assert tr.accepted and new.mode == Mode.NAVIGATING and "warning: battery 15.0 %" in tr.reason


def test_battery_low_sends_the_robot_home():
    for mode in (Mode.IDLE, Mode.NAVIGATING, Mode.STATION_KEEPING, Mode.UNDOCKING):
        new, tr = transition(ModeState(mode), Event.BATTERY_LOW, Guards(battery_level=0.1), 0.0)
        assert new.mode == Mode.DOCKING and tr.action == Action.START_DOCKING


def test_a_full_session():
    s = ModeState()
    steps = [
        (Event.DOCK, Mode.DOCKING),
        (Event.DOCK_COMPLETE, Mode.DOCKED),
        (Event.UNDOCK, Mode.UNDOCKING),
        (Event.UNDOCK_COMPLETE, Mode.STATION_KEEPING),
        (Event.NAVIGATE, Mode.NAVIGATING),
        (Event.FAULT_HOLD, Mode.FAULTED),
        (Event.FAULTS_CLEARED, Mode.STATION_KEEPING),
        (Event.FAULT_SAFE, Mode.EMERGENCY_STOP),
        (Event.RESET, Mode.IDLE),
    ]
    for k, (event, mode) in enumerate(steps):
        s, tr = transition(s, event, OK, float(k))
        assert tr.accepted and s.mode == mode and s.since == float(k), (event, tr.reason)


def test_request_classification_and_string_events():
    assert all(is_request(e) for e in REQUESTS)
    assert not is_request(Event.ARRIVED)
    new, tr = transition(ModeState(), "emergency_stop", OK, 0.0)  # type: ignore[arg-type]
    assert new.mode == Mode.EMERGENCY_STOP
    with pytest.raises(ValueError):
        transition(ModeState(), "fly_to_the_moon", OK, 0.0)  # type: ignore[arg-type]
