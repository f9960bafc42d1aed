"""The mode state machine: a pure transition function over events, with guards.

``transition(state, event, guards, t) -> (state, Transition)``. Every request is answered at
once (accepted or rejected, with a reason); nothing is queued. The caller carries out the
returned ``Action`` (plan the goal, hold here, fans off, start or stop the docking sequence).

Modes: ``idle`` (no goal, fans at their minimum), ``navigating``, ``station_keeping``,
``docking``, ``docked`` (latched on the dock, fans off, charging), ``undocking``, ``faulted``
(a fault demanded stop-and-hold; holding), ``emergency_stop`` (fans in their safe state: off).

The full table (``TRANSITIONS`` below, rendered in docs/autonomy.md) is the specification;
``tests/test_nav_autonomy_modes.py`` checks every row. Rules that hold everywhere:

- ``emergency_stop`` is accepted in every mode and always ends in ``emergency_stop``;
- ``stop`` and ``station_keep`` are accepted in every mode (in ``docked`` and
  ``emergency_stop`` ``stop`` changes nothing: the robot is at rest / the fans are off);
- a rejected request changes nothing but ``state.reason`` is untouched too (the
  ``Transition.reason`` says why).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class Mode(StrEnum):
    IDLE = "idle"
    NAVIGATING = "navigating"
    STATION_KEEPING = "station_keeping"
    DOCKING = "docking"
    DOCKED = "docked"
    UNDOCKING = "undocking"
    FAULTED = "faulted"
    EMERGENCY_STOP = "emergency_stop"


class Event(StrEnum):
    # requests (services / actions)
    NAVIGATE = "navigate"
    STATION_KEEP = "station_keep"
    STOP = "stop"
    EMERGENCY_STOP = "emergency_stop"
    DOCK = "dock"
    UNDOCK = "undock"
    RESET = "reset"
    # internal (from the GNC, the docking sequence and the fault monitor)
    ARRIVED = "arrived"
    DOCK_COMPLETE = "dock_complete"
    DOCK_FAILED = "dock_failed"
    UNDOCK_COMPLETE = "undock_complete"
    FAULT_HOLD = "fault_hold"
    FAULT_SAFE = "fault_safe"
    FAULTS_CLEARED = "faults_cleared"
    BATTERY_LOW = "battery_low"


REQUESTS = (
    Event.NAVIGATE,
    Event.STATION_KEEP,
    Event.STOP,
    Event.EMERGENCY_STOP,
    Event.DOCK,
    Event.UNDOCK,
    Event.RESET,
)


class Action(StrEnum):
    """What the caller does after an accepted transition."""

    NONE = "none"
    PLAN_GOAL = "plan_goal"  # gnc.set_goal(goal of the request)
    HOLD_HERE = "hold_here"  # gnc.hold_position(estimate): brake and hold; cancels docking
    FANS_OFF = "fans_off"  # fans to the safe state (0 N); cancels goals and docking
    START_DOCKING = "start_docking"  # docking.start_docking(...)
    START_UNDOCKING = "start_undocking"  # docking.start_undocking(...)
    IDLE_FANS = "idle_fans"  # drop the goal: fans at their minimum (gnc.initial_state)


@dataclass(frozen=True)
class Guards:
    """What the guards look at, gathered by the caller at the time of the event.

    battery_level : fraction 0..1; the thresholds are fractions too
    blocking_faults : texts of active faults whose response is hold (collision, localization)
    safe_faults : texts of active faults whose response is the propulsion safe state (watchdogs)
    localization_ok : the estimate is usable for motion (health ok or degraded)
    command_error : why the request's goal is invalid (``commands.validate_goal``), None if valid
    """

    battery_level: float = 1.0
    warn_level: float = 0.20
    go_home_level: float = 0.12
    refuse_motion_level: float = 0.05
    blocking_faults: tuple[str, ...] = ()
    safe_faults: tuple[str, ...] = ()
    localization_ok: bool = True
    command_error: str | None = None


@dataclass(frozen=True)
class ModeState:
    """mode, since : s (time it was entered), reason : why it was entered."""

    mode: Mode = Mode.IDLE
    since: float = 0.0
    reason: str = "start-up"


@dataclass(frozen=True)
class Transition:
    """The answer to one event: accepted or not, the mode after it, the action, the reason."""

    event: Event
    accepted: bool
    source: Mode
    target: Mode
    action: Action
    reason: str


M, E, A = Mode, Event, Action
_ANY = tuple(Mode)
_FLYING = (M.IDLE, M.NAVIGATING, M.STATION_KEEPING)

# (event, from modes, to mode, action, guard names, note). First matching row wins; a mode
# with no row for a request rejects it. Guards are checked in order; each names its check.
STAY = None
"""Target of rows that keep the current mode (an accepted no-op)."""

TRANSITIONS: tuple[tuple[Event, tuple[Mode, ...], Mode | None, Action, tuple[str, ...], str], ...] = (
    (E.EMERGENCY_STOP, _ANY, M.EMERGENCY_STOP, A.FANS_OFF, (), "emergency stop: fans off"),
    (E.STOP, (M.DOCKED,), M.DOCKED, A.NONE, (), "already at rest, latched on the dock"),
    (E.STOP, (M.EMERGENCY_STOP,), M.EMERGENCY_STOP, A.NONE, (), "fans already off"),
    (E.STOP, (M.FAULTED,), M.FAULTED, A.HOLD_HERE, (), "holding (faulted)"),
    (E.STOP, _ANY, M.STATION_KEEPING, A.HOLD_HERE, (), "stopping: brake and hold here"),
    (E.STATION_KEEP, (M.DOCKED,), M.DOCKED, A.NONE, (), "docked: the magnets hold the robot"),
    (E.STATION_KEEP, (M.FAULTED,), M.FAULTED, A.HOLD_HERE, (), "holding (faulted)"),
    (E.STATION_KEEP, (M.EMERGENCY_STOP,), M.STATION_KEEPING, A.HOLD_HERE, ("no_safe_fault",), "re-armed"),
    (E.STATION_KEEP, _ANY, M.STATION_KEEPING, A.HOLD_HERE, (), "station keeping here"),
    (
        E.NAVIGATE,
        (*_FLYING, M.DOCKING),
        M.NAVIGATING,
        A.PLAN_GOAL,
        ("command_valid", "no_blocking_fault", "localization_ok", "battery_motion", "battery_not_low"),
        "navigating",
    ),
    (E.DOCK, (M.DOCKING,), M.DOCKING, A.NONE, (), "already docking"),
    (E.DOCK, (M.DOCKED,), M.DOCKED, A.NONE, (), "already docked"),
    (
        E.DOCK,
        (*_FLYING, M.UNDOCKING),
        M.DOCKING,
        A.START_DOCKING,
        ("no_blocking_fault", "localization_ok"),
        "docking",
    ),
    (
        E.UNDOCK,
        (M.DOCKED,),
        M.UNDOCKING,
        A.START_UNDOCKING,
        ("no_blocking_fault", "no_safe_fault", "localization_ok", "battery_not_low"),
        "undocking",
    ),
    (E.RESET, (M.EMERGENCY_STOP,), M.IDLE, A.IDLE_FANS, ("no_safe_fault",), "reset: idle"),
    (E.RESET, (M.FAULTED,), M.STATION_KEEPING, A.HOLD_HERE, ("no_blocking_fault",), "reset: holding"),
    (E.RESET, _ANY, STAY, A.NONE, (), "nothing to reset"),
    (E.ARRIVED, (M.NAVIGATING,), M.STATION_KEEPING, A.NONE, (), "arrived: holding the goal"),
    (E.DOCK_COMPLETE, (M.DOCKING,), M.DOCKED, A.FANS_OFF, (), "docked: latched, fans off, charging"),
    (E.DOCK_FAILED, (M.DOCKING,), M.STATION_KEEPING, A.HOLD_HERE, (), "docking failed: holding"),
    (E.UNDOCK_COMPLETE, (M.UNDOCKING,), M.STATION_KEEPING, A.NONE, (), "undocked: holding the standoff"),
    (E.FAULT_SAFE, (M.DOCKED, M.EMERGENCY_STOP), STAY, A.NONE, (), "fans already off"),
    (E.FAULT_SAFE, _ANY, M.EMERGENCY_STOP, A.FANS_OFF, (), "watchdog: propulsion safe"),
    (E.FAULT_HOLD, (M.DOCKED, M.EMERGENCY_STOP, M.FAULTED), STAY, A.NONE, (), "fault recorded"),
    (E.FAULT_HOLD, _ANY, M.FAULTED, A.HOLD_HERE, (), "fault: stop and hold"),
    (E.FAULTS_CLEARED, (M.FAULTED,), M.STATION_KEEPING, A.NONE, (), "faults cleared: holding"),
    (
        E.BATTERY_LOW,
        (*_FLYING, M.UNDOCKING),
        M.DOCKING,
        A.START_DOCKING,
        ("no_blocking_fault", "localization_ok"),
        "battery low: going home to dock",
    ),
)


def _guard(name: str, g: Guards) -> str | None:
    """None if the guard passes, else the reason it fails."""
    pct = 100.0 * g.battery_level
    if name == "command_valid":
        return None if g.command_error is None else f"invalid command: {g.command_error}"
    if name == "no_blocking_fault":
        return None if not g.blocking_faults else "active fault: " + "; ".join(g.blocking_faults)
    if name == "no_safe_fault":
        return None if not g.safe_faults else "watchdog fault active: " + "; ".join(g.safe_faults)
    if name == "localization_ok":
        return None if g.localization_ok else "localization is lost: no motion until it recovers"
    if name == "battery_motion":
        if g.battery_level < g.refuse_motion_level:
            return f"battery {pct:.1f} % is below {100 * g.refuse_motion_level:.0f} %: new motion refused"
        return None
    if name == "battery_not_low":
        if g.battery_level < g.go_home_level:
            return (
                f"battery {pct:.1f} % is below the go-home level {100 * g.go_home_level:.0f} %: "
                "only docking is accepted"
            )
        return None
    raise KeyError(f"unknown guard {name!r}")


def _no_row_reason(event: Event, mode: Mode) -> str:
    if event in (E.NAVIGATE, E.UNDOCK, E.DOCK):
        hints = {
            M.DOCKED: "docked: undock first",
            M.UNDOCKING: "undocking in progress: wait for it to end, or stop",
            M.FAULTED: "faulted: reset after the fault clears",
            M.EMERGENCY_STOP: "emergency stop latched: reset or station_keep first",
        }
        if event == E.UNDOCK:
            return f"not docked (mode {mode})"
        return hints.get(mode, f"not allowed in mode {mode}")
    return f"ignored in mode {mode}"


def transition(state: ModeState, event: Event, guards: Guards, t: float) -> tuple[ModeState, Transition]:
    """Apply one event at time t (s). Pure: returns the new state and the answer."""
    event = Event(event)
    for row_event, sources, target, action, guard_names, note in TRANSITIONS:
        if row_event != event or state.mode not in sources:
            continue
        for name in guard_names:
            why = _guard(name, guards)
            if why is not None:
                return state, _rejected(state, event, why)
        reason = note
        if event == E.NAVIGATE and guards.battery_level < guards.warn_level:
            pct, warn = 100 * guards.battery_level, 100 * guards.warn_level
            reason += f" (warning: battery {pct:.1f} % below {warn:.0f} %)"
        if target is None or (target == state.mode and action == A.NONE):
            return state, Transition(event, True, state.mode, state.mode, action, reason)
        new = ModeState(target, t, reason) if target != state.mode else replace(state, reason=reason)
        return new, Transition(event, True, state.mode, target, action, reason)
    return state, _rejected(state, event, _no_row_reason(event, state.mode))


def _rejected(state: ModeState, event: Event, why: str) -> Transition:
    return Transition(event, False, state.mode, state.mode, A.NONE, f"{event} rejected: {why}")


def is_request(event: Event) -> bool:
    """True for events that come from outside (services and actions)."""
    return Event(event) in REQUESTS


def transition_table_markdown() -> str:
    """The transition table as Markdown (docs/autonomy.md holds this text; a test checks it)."""
    lines = ["| event | from | to | action | guards | reason |", "| --- | --- | --- | --- | --- | --- |"]
    for event, sources, target, action, guards, note in TRANSITIONS:
        src = "any" if sources == _ANY else ", ".join(sources)
        dst = "(stays)" if target is STAY else str(target)
        g = ", ".join(guards) if guards else "-"
        lines.append(f"| {event} | {src} | {dst} | {action} | {g} | {note} |")
    return "\n".join(lines)
