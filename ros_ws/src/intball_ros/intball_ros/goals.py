"""Goal handling shared by the action goals of the navigation node (navigate_to, follow_route,
dock, undock, camera_task): ownership and preemption, validation of the target, flight mode and
look-at point, the errors and the end of a goal.

One motion goal at a time: a newer one preempts it (``_claim`` / ``_check``), cancel stops the
robot. The motion itself is flown by ``flight.Flight._fly``.
"""

from __future__ import annotations

import numpy as np

from intball_nav.autonomy import supervisor as sup
from intball_nav.autonomy.commands import CommandRejected, validate_goal
from intball_nav.autonomy.faults import Response
from intball_nav.autonomy.modes import Event, Mode
from intball_nav.camera_tasks import PointingError, look_at, pointing_error
from intball_nav.frames import Pose, quat_angle
from intball_nav.gnc import LookAtTarget
from intball_ros import convert


class Stopped(Exception):
    """A goal ended early (cancel, preemption, fault, stop); str() is the reason."""

    def __init__(self, reason: str, canceled: bool = False) -> None:
        super().__init__(reason)
        self.canceled = canceled


class GoalHandling:
    """Mixin of NavNode (needs request, _auto, _estimate, _ctx, _lock, _owner, _camera,
    _default_mode, _last_reason)."""

    def _claim(self, goal_handle) -> bytes:
        token = bytes(goal_handle.goal_id.uuid)
        self._owner = token
        return token

    def _check(self, goal_handle, token: bytes | None) -> None:
        """Raise Stopped on cancel (a motion goal, token not None, also stops the robot) or when a
        newer motion goal took over."""
        if goal_handle.is_cancel_requested:
            if token is None:
                raise Stopped("canceled", canceled=True)
            self.request(sup.Request(Event.STOP))
            raise Stopped("canceled: stopped and holding", canceled=True)
        if token is not None and self._owner != token:
            raise Stopped("preempted by a newer motion goal")

    def _target(self, msg, frame: str | None = None) -> Pose:
        """Validated kibo-frame goal pose of a PoseStamped (frame kibo or base_link)."""
        p, q = msg.pose.position, msg.pose.orientation
        with self._lock:
            return validate_goal(
                frame if frame is not None else msg.header.frame_id,
                [p.x, p.y, p.z],
                [q.x, q.y, q.z, q.w],
                estimate=self._estimate,
                keep_in=self._ctx.keep_in,
                keep_out=self._ctx.keep_out,
                radius=self._ctx.gnc.robot.radius,
            )

    def _mode_name(self, name: str) -> str:
        name = name or self._default_mode
        if name not in self._ctx.flight_modes:
            raise CommandRejected(
                f"unknown flight mode {name!r}; known: {', '.join(sorted(self._ctx.flight_modes))}"
            )
        return name

    def _why(self) -> str:
        """The last transition's reason plus, when faulted / stopped by a fault, the faults' texts."""
        s = self._auto
        if s.mode.mode not in (Mode.FAULTED, Mode.EMERGENCY_STOP):
            return self._last_reason
        texts = [f.text for f in s.faults if f.response in (Response.HOLD, Response.SAFE_PROPULSION)]
        return "; ".join([self._last_reason, *texts])

    def _errors(self, target: Pose) -> tuple[float, float, Pose]:
        est = self._estimate
        here = Pose(est.position, est.quat)
        return float(np.linalg.norm(target.position - est.position)), quat_angle(target.quat, est.quat), here

    def _look(self, enabled: bool, point) -> LookAtTarget | None:
        """The main camera's look-at target of a goal's ``look_at_enabled`` / ``look_at`` fields."""
        if not enabled:
            return None
        try:
            return LookAtTarget(convert.point_from_msg(point, "look_at"), self._camera.T_base_cam)
        except convert.InvalidMessage as exc:
            raise CommandRejected(str(exc)) from None

    def _look_pose(self, target: Pose, look: LookAtTarget | None) -> Pose:
        """target, with the look-at attitude at its position when ``look`` is set."""
        if look is None:
            return target
        try:
            est = self._estimate
            current = None if est is None else est.quat
            sol = look_at(target.position, look.point, look.T_base_cam, current_quat=current)
        except PointingError as exc:
            raise CommandRejected(f"look_at: {exc}") from None
        return Pose(target.position, sol.quat)

    def _pointing(self, est, look: LookAtTarget | None) -> float:
        """rad, main camera axis (estimate) vs the look-at point; 0 without look-at."""
        return (
            0.0 if look is None else pointing_error(Pose(est.position, est.quat), look.point, look.T_base_cam)
        )

    def _abort(self, goal_handle, result, reason: str):
        self.get_logger().warning(reason)
        result.success, result.reason = False, reason
        goal_handle.abort()
        return result

    def _end(self, goal_handle, result, exc, target: Pose | None = None):
        if target is not None and hasattr(result, "final_pose") and self._estimate is not None:
            result.position_error, result.angle_error, here = self._errors(target)
            result.final_pose = convert.msg_from_pose(here)
        result.success, result.reason = False, str(exc)
        if isinstance(exc, Stopped) and exc.canceled:
            goal_handle.canceled()
        else:
            self.get_logger().warning(f"goal ended: {exc}")
            goal_handle.abort()
        return result
