"""The autonomy supervisor: modes + faults + battery + docking + GNC as two pure functions.

This is what the ROS control node calls (and what the headless docking harness calls):

- ``handle_request(state, request, estimate, ctx) -> (state, Transition)`` for services and
  actions (navigate, station_keep, stop, emergency_stop, dock, undock, reset): validated and
  answered at once, never queued;
- ``tick(state, inputs, ctx) -> (state, TickOutputs)`` every control period: battery, fault
  monitor, GNC step, docking step, internal events; returns the fan command, whether the
  magnets hold the robot, the GNC status, the transitions of this tick and the active faults.

Order within a tick: battery -> faults (their edge events are applied first) -> GNC step with
the goal of the previous tick -> docking step (may send the next goal) -> internal events
(arrived, dock complete / failed, undock complete, battery low) -> fan override (0 N when
docked or in emergency stop).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from intball_nav.autonomy.battery import BatteryBand, BatteryState, battery_band, battery_step
from intball_nav.autonomy.commands import CommandRejected, validate_goal
from intball_nav.autonomy.docking import (
    DockingInputs,
    DockingState,
    docking_step,
    start_docking,
    start_undocking,
)
from intball_nav.autonomy.faults import (
    CollisionReport,
    Fault,
    FaultInputs,
    FaultState,
    evaluate_faults,
    fault_events,
    guards_from_faults,
)
from intball_nav.autonomy.modes import Action, Event, Mode, ModeState, Transition, transition
from intball_nav.autonomy.params import AutonomyParams
from intball_nav.dynamics import RigidBodyState
from intball_nav.estimation.health import HealthLevel
from intball_nav.flight_modes import FlightMode
from intball_nav.frames import KIBO_FRAME, Pose
from intball_nav.gnc import (
    GncParams,
    GncState,
    GncStatus,
    LookAtTarget,
    gnc_step,
    hold_position,
    initial_state,
    set_goal,
)
from intball_nav.safety import Box

_FLYING = (Mode.IDLE, Mode.NAVIGATING, Mode.STATION_KEEPING, Mode.UNDOCKING)


@dataclass(frozen=True)
class Context:
    """Fixed parameters: autonomy, GNC, flight modes by name, keep-in / keep-out boxes."""

    autonomy: AutonomyParams
    gnc: GncParams
    flight_modes: Mapping[str, FlightMode]
    keep_in: Box
    keep_out: tuple[Box, ...] = ()


@dataclass(frozen=True)
class AutonomyState:
    """Everything the supervisor remembers; ``faults`` are those of the last tick."""

    mode: ModeState = field(default_factory=ModeState)
    gnc: GncState = field(default_factory=initial_state)
    docking: DockingState | None = None
    battery: BatteryState = field(default_factory=BatteryState)
    fault_state: FaultState = field(default_factory=FaultState)
    faults: tuple[Fault, ...] = ()
    arrived: bool = False


@dataclass(frozen=True)
class Request:
    """A service / action request. position (3,) m and quat (4,) xyzw in ``frame_id`` for
    ``navigate``; flight_mode : name of the flight mode to fly it in; look_at : keep a camera
    pointed at a point on the way and while holding (``navigate``; the quat is then ignored)."""

    event: Event
    frame_id: str = KIBO_FRAME
    position: Any = None
    quat: Any = None
    flight_mode: str = "nominal"
    look_at: LookAtTarget | None = None


@dataclass(frozen=True)
class TickInputs:
    """One control period.

    t, dt : s; estimate : nav estimate (kibo frame); fan_thrust : (8,) N applied over the last
    period (battery drain); message_ages : stream -> s since its last message; localization :
    health level and reason; collisions : contact episodes since the last tick; dock_contact :
    contact sensor (None: none); T_dock_base : dock-marker-relative pose (None: not available);
    latch_sensor : the magnets / charging contacts confirm the latch (None: no sensor)
    """

    t: float
    dt: float
    estimate: RigidBodyState
    fan_thrust: np.ndarray
    message_ages: Mapping[str, float]
    localization: HealthLevel = HealthLevel.OK
    localization_reason: str = "ok"
    collisions: tuple[CollisionReport, ...] = ()
    dock_contact: bool | None = None
    T_dock_base: Pose | None = None
    latch_sensor: bool | None = None


@dataclass(frozen=True)
class TickOutputs:
    """fan_command : (8,) N; latched : energise the magnets; status : GNC status (None if the GNC
    did not run); transitions : of this tick, in order; faults : active, worst first."""

    fan_command: np.ndarray
    latched: bool
    status: GncStatus | None
    transitions: tuple[Transition, ...]
    faults: tuple[Fault, ...]
    docking_message: str = ""


def _guards(state: AutonomyState, ctx: Context, command_error: str | None = None):
    return guards_from_faults(state.faults, state.battery.level, ctx.autonomy.faults, command_error)


def _apply(
    state: AutonomyState,
    event: Event,
    estimate: RigidBodyState,
    t: float,
    ctx: Context,
    goal: tuple[Pose, FlightMode] | None = None,
    command_error: str | None = None,
    look_at: LookAtTarget | None = None,
) -> tuple[AutonomyState, Transition]:
    """Run the mode machine on one event and carry out the action."""
    mode, tr = transition(state.mode, event, _guards(state, ctx, command_error), t)
    s = replace(state, mode=mode)
    if not tr.accepted:
        return s, tr
    radius = ctx.gnc.robot.radius
    a = tr.action
    if a == Action.PLAN_GOAL and goal is not None:
        s = replace(s, docking=None, arrived=False)
        gnc = set_goal(
            s.gnc, goal[0], goal[1], t, estimate, ctx.keep_in, ctx.keep_out, radius=radius, look_at=look_at
        )
        s = replace(s, gnc=gnc)
    elif a == Action.HOLD_HERE:
        s = replace(s, docking=None, arrived=False, gnc=hold_position(s.gnc, estimate, t))
    elif a in (Action.FANS_OFF, Action.IDLE_FANS):
        keep = s.docking if event == Event.DOCK_COMPLETE else None
        s = replace(s, docking=keep, arrived=False, gnc=initial_state(s.gnc.mode))
    elif a in (Action.START_DOCKING, Action.START_UNDOCKING):
        start = start_docking if a == Action.START_DOCKING else start_undocking
        dstate, cmd = start(DockingInputs(t, estimate), ctx.autonomy.docking)
        s = replace(s, docking=dstate, arrived=False)
        if cmd.goal is not None and cmd.flight_mode is not None:
            gnc = set_goal(
                s.gnc, cmd.goal, cmd.flight_mode, t, estimate, ctx.keep_in, ctx.keep_out, radius=radius
            )
            s = replace(s, gnc=gnc)
    return s, tr


def handle_request(
    state: AutonomyState, request: Request, estimate: RigidBodyState, t: float, ctx: Context
) -> tuple[AutonomyState, Transition]:
    """Validate and apply a request at time t (s); the Transition says accepted or why not."""
    event = Event(request.event)
    goal = None
    error = None
    if event == Event.NAVIGATE:
        try:
            if request.flight_mode not in ctx.flight_modes:
                known = ", ".join(sorted(ctx.flight_modes))
                raise CommandRejected(f"unknown flight mode {request.flight_mode!r}; known: {known}")
            pose = validate_goal(
                request.frame_id,
                request.position,
                request.quat,
                estimate=estimate,
                keep_in=ctx.keep_in,
                keep_out=ctx.keep_out,
                radius=ctx.gnc.robot.radius,
            )
            goal = (pose, ctx.flight_modes[request.flight_mode])
        except CommandRejected as exc:
            error = str(exc)
    return _apply(state, event, estimate, t, ctx, goal, error, request.look_at)


def tick(state: AutonomyState, inputs: TickInputs, ctx: Context) -> tuple[AutonomyState, TickOutputs]:
    """One control period (see the module docstring for the order)."""
    t, est = inputs.t, inputs.estimate
    docked = state.mode.mode == Mode.DOCKED
    s = replace(
        state, battery=battery_step(state.battery, inputs.fan_thrust, docked, inputs.dt, ctx.autonomy.battery)
    )
    transitions: list[Transition] = []

    dock_expected = s.mode.mode in (Mode.DOCKING, Mode.DOCKED, Mode.UNDOCKING)
    fault_in = FaultInputs(
        t,
        inputs.message_ages,
        inputs.localization,
        inputs.localization_reason,
        inputs.collisions,
        s.battery.level,
        dock_expected,
    )
    fstate, faults = evaluate_faults(s.fault_state, fault_in, ctx.autonomy.faults)
    previous = s.faults
    s = replace(s, fault_state=fstate, faults=faults)
    for event in fault_events(previous, faults):
        if event == Event.BATTERY_LOW:
            continue  # level-triggered below
        s, tr = _apply(s, event, est, t, ctx)
        transitions.append(tr)

    status = None
    fans = np.zeros(8)
    if s.mode.mode not in (Mode.DOCKED, Mode.EMERGENCY_STOP):
        gnc, fans, status = gnc_step(s.gnc, est, t, ctx.gnc)
        s = replace(s, gnc=gnc, arrived=s.arrived or status.arrived)

    message = ""
    fans_off = False
    if s.docking is not None and s.mode.mode in (Mode.DOCKING, Mode.UNDOCKING):
        dinputs = DockingInputs(
            t, est, s.arrived, inputs.dock_contact, inputs.T_dock_base, inputs.latch_sensor
        )
        dstate, cmd = docking_step(s.docking, dinputs, ctx.autonomy.docking)
        s = replace(s, docking=dstate)
        message = cmd.message
        fans_off = cmd.fans_off
        if cmd.goal is not None and cmd.flight_mode is not None:
            r = ctx.gnc.robot.radius
            gnc = set_goal(s.gnc, cmd.goal, cmd.flight_mode, t, est, ctx.keep_in, ctx.keep_out, radius=r)
            s = replace(s, gnc=gnc, arrived=False)
            if gnc.status == "rejected":
                s, tr = _apply(s, Event.DOCK_FAILED, est, t, ctx)
                transitions.append(tr)
        if cmd.done:
            event = Event.DOCK_COMPLETE if s.mode.mode == Mode.DOCKING else Event.UNDOCK_COMPLETE
            s, tr = _apply(s, event, est, t, ctx)
            transitions.append(tr)
        elif cmd.failed:
            s, tr = _apply(s, Event.DOCK_FAILED if s.mode.mode == Mode.DOCKING else Event.STOP, est, t, ctx)
            transitions.append(tr)

    if s.mode.mode == Mode.NAVIGATING and s.arrived:
        s, tr = _apply(s, Event.ARRIVED, est, t, ctx)
        transitions.append(tr)
    if s.mode.mode in _FLYING and battery_band(s.battery.level, ctx.autonomy.battery) >= BatteryBand.GO_HOME:
        if not _guards(s, ctx).blocking_faults:
            s, tr = _apply(s, Event.BATTERY_LOW, est, t, ctx)
            transitions.append(tr)

    latched = s.mode.mode == Mode.DOCKED or (s.docking is not None and s.docking.phase == "latching")
    if latched or fans_off or s.mode.mode == Mode.EMERGENCY_STOP:
        fans = np.zeros(8)
    return s, TickOutputs(fans, latched, status, tuple(transitions), faults, message)
