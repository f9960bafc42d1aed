"""Goal execution shared by the motion actions of the navigation node (navigate_to, follow_route,
camera_task): ownership and preemption, validation, path planning in a worker thread, flying the
legs with re-planning when keep-out zones change, arrival, the look-at target, the end of a goal.

Each motion goal is a coroutine awaiting the supervisor's ticks (``NavNode.wait_tick``); one motion
goal at a time: a newer one preempts it (``_claim`` / ``_check``), cancel stops the robot.
"""

from __future__ import annotations

import math
import threading

import numpy as np
from rclpy.task import Future

from intball_nav.autonomy import supervisor as sup
from intball_nav.autonomy.commands import CommandRejected, validate_goal
from intball_nav.autonomy.faults import Response
from intball_nav.autonomy.modes import Event, Mode
from intball_nav.camera_tasks import PointingError, look_at, pointing_error
from intball_nav.frames import KIBO_FRAME, Pose, quat_angle
from intball_nav.gnc import LookAtTarget
from intball_nav.planning import PlanningFailed, plan_path
from intball_ros import convert, names
from intball_ros.camera_task import Stopped

SETTLE_TIMEOUT_S = 60.0  # s sim time after the planned end of a leg before giving up


class Flight:
    """Mixin of NavNode (needs request, wait_tick, _auto, _estimate, _zones, _ctx, _lock, _now,
    _owner, _camera, _default_mode, foreign_goal_for, _last_reason)."""

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

    async def _legs(self, target: Pose) -> list[Pose]:
        """Poses to fly through to target: the planned path's corners (target attitude), then target.

        Planned in a worker thread (a grid search on a new map can take a second on a loaded
        machine) so that services and ticks go on meanwhile."""
        with self._lock:
            start, pmap = self._estimate.position, self._zones.pmap
        done = Future()

        def work() -> None:
            try:
                done.set_result(plan_path(start, target.position, pmap))
            except Exception as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                done.set_exception(exc)

        threading.Thread(target=work, name="plan_path", daemon=True).start()
        try:
            path = await done
        except PlanningFailed as exc:
            if not pmap.point_free(start):  # e.g. next to the dock: fly straight if the GNC accepts it
                return [target]
            raise CommandRejected(f"no path: {exc}") from exc
        return [Pose(p, target.quat) for p in path.points[1:-1]] + [target]

    def _send(self, pose: Pose, mode: str, look: LookAtTarget | None = None):
        request = sup.Request(Event.NAVIGATE, KIBO_FRAME, pose.position, pose.quat, mode, look_at=look)
        tr = self.request(request)
        if not tr.accepted:
            raise Stopped(tr.reason)
        return self._auto.gnc.goal

    async def _fly(
        self,
        goal_handle,
        token,
        target: Pose,
        mode: str,
        tol=(0.0, 0.0),
        feedback=None,
        paused=None,
        look: LookAtTarget | None = None,
    ) -> None:
        """Fly to target (kibo) through a planned path; returns on arrival, raises Stopped. With
        ``look`` the camera is kept on its point (target: a pose from ``_look_pose``)."""
        legs = await self._legs(target)
        fm = self._ctx.flight_modes[mode]
        pos_tol, ang_tol = tol[0] or fm.pos_tolerance, tol[1] or fm.att_tolerance
        version, leg, inside_since = self._zones.version, 0, None
        sent = self._send(legs[0], mode, look)
        while True:
            t = await self.wait_tick()
            self._check(goal_handle, token)
            s, est = self._auto, self._estimate
            if s.gnc.goal is not sent or s.mode.mode not in (Mode.NAVIGATING, Mode.STATION_KEEPING):
                raise Stopped(f"interrupted: {s.mode.mode}: {self._why()}")
            if self.foreign_goal_for() >= 1.0:  # the user's newer goal wins: the robot is not stopped here
                raise Stopped(f"interrupted: the controller was sent another goal on {names.GOAL_POSE}")
            if paused is not None and paused():
                raise Stopped("paused")
            if version != self._zones.version:  # keep-out zones changed: re-plan if the rest is blocked
                version = self._zones.version
                rest = np.array([est.position] + [p.position for p in legs[leg:]])
                if not self._zones.pmap.path_free(rest):
                    self._send(Pose(est.position, est.quat), mode)  # brake and hold while planning
                    legs, leg, inside_since = await self._legs(target), 0, None
                    self.get_logger().info(f"keep-out zones changed: re-planned ({len(legs)} legs)")
                    sent = self._send(legs[0], mode, look)
                    continue
            pos_err = float(np.linalg.norm(target.position - est.position))
            ang_err = quat_angle(target.quat, est.quat)
            traj = s.gnc.trajectory
            done = traj is not None and t >= traj.t_end
            if feedback is not None:
                feedback(est, (pos_err, ang_err, "settling" if done else "moving"))
            if leg < len(legs) - 1:
                if s.mode.mode == Mode.STATION_KEEPING and s.arrived:
                    leg += 1
                    sent = self._send(legs[leg], mode, look)
                continue
            inside = done and pos_err <= pos_tol and ang_err <= ang_tol
            inside_since = (inside_since if inside_since is not None else t) if inside else None
            if inside_since is not None and t - inside_since >= fm.settle_time:
                return
            if traj is not None and t > traj.t_end + SETTLE_TIMEOUT_S:
                raise Stopped(f"did not settle within {pos_tol:.3f} m / {math.degrees(ang_tol):.1f} deg")

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
