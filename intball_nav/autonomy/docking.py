"""Docking and undocking as a pure step over a frozen state.

Contact geometry (decided here, documented in docs/autonomy.md): the dock face is a rigid
plane and the robot a 0.10 m sphere, so the robot centre touches the face at
``d = radius = 0.100 m``. The last approach distance of ``kibo.yaml`` (0.095 m) is the
*commanded* final point: 5 mm through the face, so the controller keeps a small preload
(``kp * 5 mm * m`` ~ 10 mN) pressing the robot onto the magnets instead of stopping short of
them. Contact therefore happens at 0.100 m, before the trajectory ends; the docked pose is the
robot touching the face centre, ``dock.approach_point(radius)``, in the docked attitude.

Sequence (``docking_step`` with ``DockingInputs`` each control tick):

1. ``via`` (only if the straight path to the standoff passes within ``radius +
   path_clearance`` of the dock body): move along the dock normal to the standoff plane;
2. ``standoff``: to ``dock.approach_point(0.30)`` in the docked attitude (``approach_mode``);
3. ``align``: the same point again in ``final_mode`` (precision: 1 cm / 1 deg, settled);
4. ``settle``: hold ``marker_settle_s``, averaging the dock-marker-relative pose estimate
   ``T_dock_base`` when the caller provides it into a correction of the goals (the nav
   estimate's error near the dock);
5. ``final``: to the contact target (0.095 m) along the normal in ``final_mode``; contact is
   the contact sensor (``dock_contact``) or, without one, the estimated gap within
   ``contact_tolerance`` of touching while the speed stays below ``stall_speed`` for
   ``stall_time_s``. At contact the magnets capture the robot if the lateral offset and the
   attitude error are within ``capture_lateral`` / ``capture_angle``: the magnets are
   energised and the fans switched off. With a latch sensor (``latch_sensor``: the magnets'
   / charging contacts' confirmation) the sequence waits up to ``latch_confirm_s`` in
   ``latching`` for it; without one it trusts the estimate. Then ``docked`` (latched, fans
   off). Otherwise (out of tolerance, no confirmation, or no contact in time): ``retreat`` to
   the standoff and back to ``settle``, up to ``max_attempts`` final approaches, then
   ``failed``.

Undocking (``start_undocking`` then ``docking_step``): ``release`` (magnets off, fans on,
holding for ``release_s``), ``backoff`` to ``undock_standoff`` along the normal in
``final_mode``, then ``undocked``.

The caller feeds ``DockingCommand.goal`` to ``gnc.set_goal`` with ``DockingCommand.flight_mode``,
zeroes the fans while ``fans_off``, and engages the magnets while ``latched``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from intball_nav.dynamics import RigidBodyState
from intball_nav.flight_modes import FlightMode
from intball_nav.frames import Pose, quat_angle, quat_from_rotvec, quat_multiply, rotvec_from_quat
from intball_nav.guidance import plan_segment
from intball_nav.module import Dock
from intball_nav.safety import segment_hits_box

Phase = Literal[
    "via",
    "standoff",
    "align",
    "settle",
    "final",
    "latching",
    "retreat",
    "docked",
    "failed",
    "release",
    "backoff",
    "undocked",
]
TERMINAL: tuple[Phase, ...] = ("docked", "failed", "undocked")


@dataclass(frozen=True)
class DockingParams:
    """Geometry and limits of the sequence (SI; see the module docstring and autonomy.yaml).

    dock : the docking station (pose, marker id, approach distances)
    radius : m, robot radius: the centre-to-face distance when touching
    q_dock_body : (4,) xyzw, docked attitude of the body in the dock frame
    approach_mode, final_mode : flight modes of the long legs and of the final approach
    """

    dock: Dock
    radius: float
    q_dock_body: np.ndarray
    approach_mode: FlightMode
    final_mode: FlightMode
    path_clearance: float = 0.05
    marker_settle_s: float = 2.0
    contact_tolerance: float = 0.004
    stall_speed: float = 0.004
    stall_time_s: float = 1.0
    capture_lateral: float = 0.010
    capture_angle: float = math.radians(5.0)
    max_attempts: int = 3
    final_timeout_margin_s: float = 20.0
    leg_timeout_margin_s: float = 60.0
    release_s: float = 1.0
    undock_standoff: float = 0.30
    latch_confirm_s: float = 0.5

    def __post_init__(self) -> None:
        if len(self.dock.approach_distances) < 2:
            raise ValueError("DockingParams: the dock needs a standoff and a contact approach distance")
        if not self.contact_target <= self.radius < self.standoff:
            raise ValueError(
                f"DockingParams: need contact target ({self.contact_target} m) <= radius ({self.radius} m) "
                f"< standoff ({self.standoff} m)"
            )
        if self.undock_standoff <= self.radius:
            raise ValueError(
                f"DockingParams.undock_standoff must exceed the radius, got {self.undock_standoff}"
            )
        if self.max_attempts < 1:
            raise ValueError(f"DockingParams.max_attempts must be >= 1, got {self.max_attempts}")

    @property
    def standoff(self) -> float:
        """m, first approach distance (dock face to robot centre)."""
        return float(self.dock.approach_distances[0])

    @property
    def contact_target(self) -> float:
        """m, commanded final distance (last approach distance; <= radius: a preload)."""
        return float(self.dock.approach_distances[-1])

    @property
    def docked_quat(self) -> np.ndarray:
        """(4,) xyzw q_kibo_body when docked."""
        return quat_multiply(self.dock.pose.quat, self.q_dock_body)

    def pose_at(self, distance: float) -> Pose:
        """Pose (kibo frame) on the dock normal, ``distance`` m from the face, docked attitude."""
        return Pose(self.dock.approach_point(distance), self.docked_quat)

    @property
    def docked_pose(self) -> Pose:
        """The robot touching the dock face centre in the docked attitude (kibo frame)."""
        return self.pose_at(self.radius)


@dataclass(frozen=True)
class DockingInputs:
    """One tick.

    t : s; estimate : nav estimate (kibo frame); arrived : ``GncStatus.arrived`` for the last
    goal sent; dock_contact : the contact sensor / simulator says the robot touches the dock
    (None: no sensor); T_dock_base : marker-relative pose of the body in the dock frame from
    the dock marker (None: not available this tick); latch_sensor : the magnets hold the
    robot / the charging contacts close (None: no sensor)
    """

    t: float
    estimate: RigidBodyState
    arrived: bool = False
    dock_contact: bool | None = None
    T_dock_base: Pose | None = None
    latch_sensor: bool | None = None


@dataclass(frozen=True)
class DockingCommand:
    """What the caller does this tick.

    goal : send it with ``gnc.set_goal`` in ``flight_mode`` (kibo frame, already expressed in
        the estimate's frame, i.e. corrected by the dock marker); None = keep the current goal
    fans_off : command 0 N to every fan; latched : the magnets hold the robot
    done : docked / undocked; failed : the sequence gave up (``message`` says why)
    """

    goal: Pose | None = None
    flight_mode: FlightMode | None = None
    fans_off: bool = False
    latched: bool = False
    done: bool = False
    failed: bool = False
    message: str = ""


@dataclass(frozen=True)
class DockingState:
    """phase, t_phase : s when it began, deadline : s, attempt : final approaches so far,
    goal : last goal (kibo frame, uncorrected), correction : T_est_true from the dock marker
    (goals are sent as ``correction.compose(goal)``), marker sums over the settle phase,
    stall_since : s, contact : (lateral m, attitude error rad) at the last contact."""

    phase: Phase
    t_phase: float
    deadline: float = math.inf
    attempt: int = 0
    goal: Pose | None = None
    correction: Pose | None = None
    marker_sum: np.ndarray = field(default_factory=lambda: np.zeros(6))
    marker_count: int = 0
    stall_since: float | None = None
    contact: tuple[float, float] | None = None
    message: str = ""

    @property
    def latched(self) -> bool:
        """The magnets hold the robot."""
        return self.phase in ("latching", "docked")


# ------------------------------------------------------------------------------------------
# geometry helpers


def segment_clear(
    a: np.ndarray, b: np.ndarray, box_min: np.ndarray, box_max: np.ndarray, margin: float
) -> bool:
    """True if the segment a -> b ((3,) m) stays outside the box (min/max (3,) m) grown by margin."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return not segment_hits_box(a, b, np.asarray(box_min) - margin, np.asarray(box_max) + margin)


def staged_points(start: np.ndarray, params: DockingParams) -> list[np.ndarray]:
    """(3,) m kibo points to fly through before the standoff (the standoff itself last)."""
    standoff = params.dock.approach_point(params.standoff)
    box = params.dock.box
    margin = params.radius + params.path_clearance
    if segment_clear(start, standoff, box.min, box.max, margin):
        return [standoff]
    n = params.dock.normal
    via = np.asarray(start, dtype=float) + float((standoff - start) @ n) * n
    return [via, standoff]


def dock_relative(estimate: RigidBodyState, correction: Pose | None, params: DockingParams) -> Pose:
    """T_dock_base from the nav estimate, corrected by the marker correction if any."""
    T_est = Pose(estimate.position, estimate.quat)
    T_true = correction.inverse().compose(T_est) if correction is not None else T_est
    return params.dock.pose.inverse().compose(T_true)


def _offsets(T_dock_base: Pose, params: DockingParams) -> tuple[float, float, float]:
    """(gap to the face along the normal - radius m, lateral offset m, attitude error rad)."""
    p = T_dock_base.position
    gap = float(p[2]) - params.radius
    lateral = math.hypot(float(p[0]), float(p[1]))
    att = quat_angle(T_dock_base.quat, params.q_dock_body)
    return gap, lateral, att


def _send(
    state: DockingState, goal: Pose, mode: FlightMode, inputs: DockingInputs, margin: float, message: str
):
    """Enter a leg: goal (kibo, true frame) sent corrected; deadline from the planned duration."""
    sent = state.correction.compose(goal) if state.correction is not None else goal
    start = Pose(inputs.estimate.position, inputs.estimate.quat)
    planned = plan_segment(start, sent, mode, inputs.t).duration
    deadline = inputs.t + planned + mode.settle_time + margin
    return replace(state, goal=goal, deadline=deadline, stall_since=None, message=message), DockingCommand(
        goal=sent, flight_mode=mode, message=message
    )


# ------------------------------------------------------------------------------------------
# the sequence


def start_docking(inputs: DockingInputs, params: DockingParams) -> tuple[DockingState, DockingCommand]:
    """Begin docking from the current estimate: the first staged leg."""
    points = staged_points(inputs.estimate.position, params)
    phase: Phase = "via" if len(points) == 2 else "standoff"
    state = DockingState(phase=phase, t_phase=inputs.t)
    goal = Pose(points[0], params.docked_quat)
    what = "via point below the dock" if phase == "via" else f"standoff {params.standoff:.2f} m"
    return _send(
        state, goal, params.approach_mode, inputs, params.leg_timeout_margin_s, f"docking: to the {what}"
    )


def start_undocking(inputs: DockingInputs, params: DockingParams) -> tuple[DockingState, DockingCommand]:
    """Begin undocking: release the magnets and hold the current pose with the fans on."""
    state = DockingState(phase="release", t_phase=inputs.t, message="undocking: magnets released, holding")
    here = Pose(inputs.estimate.position, inputs.estimate.quat)
    return replace(state, goal=here), DockingCommand(
        goal=here, flight_mode=params.final_mode, message=state.message
    )


def _enter(state: DockingState, phase: Phase, t: float, **changes) -> DockingState:
    return replace(state, phase=phase, t_phase=t, **changes)


def docking_step(
    state: DockingState, inputs: DockingInputs, params: DockingParams
) -> tuple[DockingState, DockingCommand]:
    """Advance the docking / undocking sequence by one tick (pure)."""
    t = inputs.t
    phase = state.phase
    if phase == "docked":
        return state, DockingCommand(fans_off=True, latched=True, done=True, message=state.message)
    if phase == "undocked":
        return state, DockingCommand(done=True, message=state.message)
    if phase == "failed":
        return state, DockingCommand(failed=True, message=state.message)
    if phase == "latching":
        if inputs.latch_sensor:
            msg = state.message.replace("magnets on", "latched")
            s = _enter(state, "docked", t, message=msg)
            return s, DockingCommand(fans_off=True, latched=True, done=True, message=msg)
        if t - state.t_phase >= params.latch_confirm_s:
            why = f"the magnets did not confirm the latch within {params.latch_confirm_s:.1f} s"
            return _retreat(state, inputs, params, why, state.contact)
        return state, DockingCommand(fans_off=True, latched=True, message=state.message)

    if phase == "release":
        if t - state.t_phase >= params.release_s:
            s = _enter(state, "backoff", t)
            return _send(
                s,
                params.pose_at(params.undock_standoff),
                params.final_mode,
                inputs,
                params.leg_timeout_margin_s,
                f"undocking: backing off to {params.undock_standoff:.2f} m",
            )
        return state, DockingCommand(message=state.message)

    if phase in ("via", "standoff", "align", "retreat", "backoff") and t > state.deadline:
        msg = f"{'undocking' if phase == 'backoff' else 'docking'} failed: {phase} leg not reached in time"
        return _enter(state, "failed", t, message=msg), DockingCommand(failed=True, message=msg)

    if phase == "backoff":
        if inputs.arrived:
            msg = f"undocked: holding {params.undock_standoff:.2f} m from the dock"
            return _enter(state, "undocked", t, message=msg), DockingCommand(done=True, message=msg)
        return state, DockingCommand(message=state.message)

    if phase in ("via", "standoff"):  # both legs end at the standoff pose: first reach it, then align
        if inputs.arrived:
            nxt: Phase
            if phase == "via":
                nxt, mode = "standoff", params.approach_mode
                msg = f"docking: to the standoff {params.standoff:.2f} m"
            else:
                nxt, mode, msg = "align", params.final_mode, "docking: aligning on the dock normal"
            goal, margin = params.pose_at(params.standoff), params.leg_timeout_margin_s
            return _send(_enter(state, nxt, t), goal, mode, inputs, margin, msg)
        return state, DockingCommand(message=state.message)

    if phase in ("align", "retreat"):
        if inputs.arrived:
            if phase == "retreat" and state.attempt >= params.max_attempts:
                msg = f"docking failed after {state.attempt} attempts: {state.message}"
                return _enter(state, "failed", t, message=msg), DockingCommand(failed=True, message=msg)
            msg = "docking: at the standoff, reading the dock marker"
            s = _enter(state, "settle", t, marker_sum=np.zeros(6), marker_count=0, message=msg)
            return s, DockingCommand(message=msg)
        return state, DockingCommand(message=state.message)

    if phase == "settle":
        s = state
        if inputs.T_dock_base is not None:
            T_true = params.dock.pose.compose(inputs.T_dock_base)
            C = Pose(inputs.estimate.position, inputs.estimate.quat).compose(T_true.inverse())
            sample = np.concatenate([C.position, rotvec_from_quat(C.quat)])
            s = replace(s, marker_sum=s.marker_sum + sample, marker_count=s.marker_count + 1)
        if t - s.t_phase < params.marker_settle_s:
            return s, DockingCommand(message=s.message)
        correction = s.correction
        source = "no dock marker pose: nav estimate only"
        if s.marker_count > 0:
            mean = s.marker_sum / s.marker_count
            correction = Pose(mean[:3], quat_from_rotvec(mean[3:]))
            source = f"dock-marker correction {np.linalg.norm(mean[:3]) * 1000:.1f} mm"
        s = _enter(s, "final", t, correction=correction, attempt=s.attempt + 1)
        return _send(
            s,
            params.pose_at(params.contact_target),
            params.final_mode,
            inputs,
            params.final_timeout_margin_s,
            f"docking: final approach {s.attempt}/{params.max_attempts} ({source})",
        )

    if phase == "final":
        T_db = inputs.T_dock_base if inputs.T_dock_base is not None else None
        if T_db is None:
            T_db = dock_relative(inputs.estimate, state.correction, params)
        gap, lateral, att = _offsets(T_db, params)
        speed = float(np.linalg.norm(inputs.estimate.velocity))
        stall_since = state.stall_since
        near = gap <= params.contact_tolerance and speed <= params.stall_speed
        stall_since = (stall_since if stall_since is not None else t) if near else None
        contact = inputs.dock_contact is True or (
            stall_since is not None and t - stall_since >= params.stall_time_s
        )
        if contact:
            how = "contact sensor" if inputs.dock_contact else "stall at the dock face"
            if lateral <= params.capture_lateral and att <= params.capture_angle:
                msg = (
                    f"docked ({how}): lateral {lateral * 1000:.1f} mm, attitude {math.degrees(att):.2f} deg; "
                    "magnets on, fans off"
                )
                if inputs.latch_sensor is None:  # no confirmation available: trust the estimate
                    msg = msg.replace("magnets on", "latched")
                    s = _enter(state, "docked", t, contact=(lateral, att), stall_since=None, message=msg)
                    return s, DockingCommand(fans_off=True, latched=True, done=True, message=msg)
                s = _enter(state, "latching", t, contact=(lateral, att), stall_since=None, message=msg)
                return s, DockingCommand(fans_off=True, latched=True, message=msg)
            why = (
                f"contact ({how}) outside the capture tolerance: lateral {lateral * 1000:.1f} mm, "
                f"attitude {math.degrees(att):.2f} deg"
            )
            return _retreat(state, inputs, params, why, (lateral, att))
        if t > state.deadline:
            return _retreat(state, inputs, params, "no contact before the final-leg deadline", None)
        return replace(state, stall_since=stall_since), DockingCommand(message=state.message)

    raise ValueError(f"unknown docking phase {phase!r}")


def _retreat(
    state: DockingState,
    inputs: DockingInputs,
    params: DockingParams,
    why: str,
    contact: tuple[float, float] | None,
) -> tuple[DockingState, DockingCommand]:
    s = _enter(state, "retreat", inputs.t, contact=contact)
    return _send(
        s,
        params.pose_at(params.standoff),
        params.final_mode,
        inputs,
        params.leg_timeout_margin_s,
        f"docking: {why}; back to the standoff",
    )
