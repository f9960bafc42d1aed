"""Fault monitor: watchdogs over message ages, collisions, localization health, battery.

``evaluate_faults(state, inputs, params) -> (state, faults)`` is pure. Each ``Fault`` has a
stable ``code``, a severity in the levels of ``diagnostic_msgs/DiagnosticStatus`` (OK 0,
WARN 1, ERROR 2, STALE 3), a clear text, and the ``Response`` it demands:

=========================  ========  ==============  ==============================================
code                       severity  response        when
=========================  ========  ==============  ==============================================
``watchdog.<stream>``      STALE     safe_propulsion the last message of a watched stream is older
                                                     than its timeout (or none arrived yet)
``localization.lost``      ERROR     hold            health ``lost``
``localization.degraded``  WARN      report          health ``degraded``
``collision``              ERROR     hold            contact with anything but the dock while the
                                                     dock is not the target; active for
                                                     ``collision_latch_s`` after the last contact
``battery.critical``       ERROR     refuse_motion   level < refuse_motion_level
``battery.low``            WARN      go_home         level < go_home_level
``battery.warn``           WARN      report          level < warn_level
=========================  ========  ==============  ==============================================

:func:`fault_events` turns two consecutive fault lists into the edge-triggered events the mode
machine takes (``fault_safe``, ``fault_hold``, ``battery_low``, ``faults_cleared``), so a fault
that stays active does not re-trigger its response every tick.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from intball_nav.autonomy.battery import BatteryBand, BatteryParams, battery_band
from intball_nav.autonomy.modes import Event, Guards
from intball_nav.estimation.health import HealthLevel


class Severity(IntEnum):
    """The levels of diagnostic_msgs/DiagnosticStatus."""

    OK = 0
    WARN = 1
    ERROR = 2
    STALE = 3


class Response(StrEnum):
    REPORT = "report"  # publish only
    HOLD = "hold"  # stop and hold (mode faulted)
    SAFE_PROPULSION = "safe_propulsion"  # fans off (mode emergency_stop)
    GO_HOME = "go_home"  # dock now
    REFUSE_MOTION = "refuse_motion"  # no new motion except docking


@dataclass(frozen=True)
class Fault:
    """One active fault. source : the part it concerns (diagnostics ``name`` suffix)."""

    code: str
    severity: Severity
    response: Response
    text: str
    source: str


@dataclass(frozen=True)
class CollisionReport:
    """A contact episode starting at t (s) with the named body (``CollisionEvent.name``)."""

    t: float
    body: str


@dataclass(frozen=True)
class FaultParams:
    """watchdog : stream name -> largest allowed message age, s; collision_latch_s : s."""

    watchdog: Mapping[str, float] = field(
        default_factory=lambda: {"odometry": 0.5, "fan_command": 0.5, "imu": 0.5}
    )
    collision_latch_s: float = 3.0
    battery: BatteryParams = field(default_factory=BatteryParams)
    dock_body: str = "dock"

    def __post_init__(self) -> None:
        for name, limit in self.watchdog.items():
            if not (isinstance(limit, int | float) and math.isfinite(limit) and limit > 0.0):
                raise ValueError(f"FaultParams.watchdog[{name!r}] must be > 0 s, got {limit!r}")
        if not (math.isfinite(self.collision_latch_s) and self.collision_latch_s >= 0.0):
            raise ValueError(f"FaultParams.collision_latch_s must be >= 0 s, got {self.collision_latch_s}")


@dataclass(frozen=True)
class FaultInputs:
    """What the monitor sees at time t (s).

    message_ages : stream name -> s since its last message (math.inf if none yet); a watched
        stream missing here counts as never received
    localization : health level and its reason (``estimation.health.HealthStatus``)
    collisions : contact episodes that started since the previous call
    battery_level : fraction 0..1
    dock_expected : contact with the dock is the goal (docking, docked, undocking)
    """

    t: float
    message_ages: Mapping[str, float]
    localization: HealthLevel = HealthLevel.OK
    localization_reason: str = "ok"
    collisions: tuple[CollisionReport, ...] = ()
    battery_level: float = 1.0
    dock_expected: bool = False


@dataclass(frozen=True)
class FaultState:
    """last_collision : the latest unexpected contact (None if none yet)."""

    last_collision: CollisionReport | None = None


def evaluate_faults(
    state: FaultState, inputs: FaultInputs, params: FaultParams
) -> tuple[FaultState, tuple[Fault, ...]]:
    """Active faults at inputs.t, worst first (pure)."""
    faults: list[Fault] = []
    for stream, limit in params.watchdog.items():
        age = inputs.message_ages.get(stream, math.inf)
        if not age <= limit:
            seen = "no message received yet" if math.isinf(age) else f"no message for {age:.2f} s"
            faults.append(
                Fault(
                    f"watchdog.{stream}",
                    Severity.STALE,
                    Response.SAFE_PROPULSION,
                    f"watchdog: {stream}: {seen} (limit {limit:.2f} s): propulsion safe, fans off",
                    stream,
                )
            )

    if inputs.localization == HealthLevel.LOST:
        text = f"localization lost ({inputs.localization_reason}): stopping and holding"
        faults.append(Fault("localization.lost", Severity.ERROR, Response.HOLD, text, "localization"))
    elif inputs.localization == HealthLevel.DEGRADED:
        text = f"localization degraded ({inputs.localization_reason})"
        faults.append(Fault("localization.degraded", Severity.WARN, Response.REPORT, text, "localization"))

    last = state.last_collision
    for c in inputs.collisions:
        if inputs.dock_expected and params.dock_body in c.body.split("+"):
            continue
        last = c
    if last is not None and inputs.t - last.t <= params.collision_latch_s:
        text = f"collision with {last.body} at t = {last.t:.2f} s: stopped, holding"
        faults.append(Fault("collision", Severity.ERROR, Response.HOLD, text, "collision"))

    b = params.battery
    pct = 100.0 * inputs.battery_level
    lo, home, warn = (100.0 * x for x in (b.refuse_motion_level, b.go_home_level, b.warn_level))
    band = battery_band(inputs.battery_level, b)
    if band == BatteryBand.CRITICAL:
        text = f"battery {pct:.1f} % below {lo:.0f} %: new motion refused (docking only)"
        faults.append(Fault("battery.critical", Severity.ERROR, Response.REFUSE_MOTION, text, "battery"))
    if band >= BatteryBand.GO_HOME:
        text = f"battery {pct:.1f} % below {home:.0f} %: returning to the dock"
        faults.append(Fault("battery.low", Severity.WARN, Response.GO_HOME, text, "battery"))
    elif band == BatteryBand.WARN:
        text = f"battery {pct:.1f} % below {warn:.0f} %: user programs need {warn:.0f} %"
        faults.append(Fault("battery.warn", Severity.WARN, Response.REPORT, text, "battery"))

    faults.sort(key=lambda f: -int(f.severity))
    return FaultState(last), tuple(faults)


def _codes(faults: tuple[Fault, ...], response: Response) -> set[str]:
    return {f.code for f in faults if f.response == response}


def fault_events(previous: tuple[Fault, ...], current: tuple[Fault, ...]) -> tuple[Event, ...]:
    """Mode-machine events for the change previous -> current (edge-triggered), in the order
    they should be applied: a new safe-propulsion fault, a new hold fault, the battery going
    low, all hold faults gone."""
    events: list[Event] = []
    if _codes(current, Response.SAFE_PROPULSION) - _codes(previous, Response.SAFE_PROPULSION):
        events.append(Event.FAULT_SAFE)
    if _codes(current, Response.HOLD) - _codes(previous, Response.HOLD):
        events.append(Event.FAULT_HOLD)
    if _codes(current, Response.GO_HOME) - _codes(previous, Response.GO_HOME):
        events.append(Event.BATTERY_LOW)
    if _codes(previous, Response.HOLD) and not _codes(current, Response.HOLD):
        events.append(Event.FAULTS_CLEARED)
    return tuple(events)


def guards_from_faults(
    faults: tuple[Fault, ...], battery_level: float, params: FaultParams, command_error: str | None = None
) -> Guards:
    """The mode-machine guards implied by the active faults and the battery level."""
    b = params.battery
    return Guards(
        battery_level=battery_level,
        warn_level=b.warn_level,
        go_home_level=b.go_home_level,
        refuse_motion_level=b.refuse_motion_level,
        blocking_faults=tuple(f.text for f in faults if f.response == Response.HOLD),
        safe_faults=tuple(f.text for f in faults if f.response == Response.SAFE_PROPULSION),
        localization_ok=not any(f.code == "localization.lost" for f in faults),
        command_error=command_error,
    )


def worst_severity(faults: tuple[Fault, ...]) -> Severity:
    """Highest severity among the faults (OK if none)."""
    return max((f.severity for f in faults), default=Severity.OK)
