"""The action servers of the navigation node: navigate_to, follow_route, dock, undock, camera_task.

Each ``execute`` is a coroutine that sends requests to the supervisor (``NavNode.request``) and
then awaits the supervisor's ticks (``NavNode.wait_tick``), so no executor thread is blocked
and the composed single-threaded graph works too. One motion goal at a time: a new motion goal
preempts the previous one (aborted with "preempted by ..."); cancel stops the robot (hold here).

Goals are validated when they start executing, before any motion: an invalid goal is accepted
by the action server and immediately aborted with ``success = false`` and the reason (ROS 2 goal
responses carry no text).
"""

from __future__ import annotations

import math
import threading

import numpy as np
from intball_interfaces.action import CameraTask, Dock, FollowRoute, NavigateTo, Undock
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.task import Future

from intball_nav.autonomy import supervisor as sup
from intball_nav.autonomy.commands import CommandRejected, validate_goal
from intball_nav.autonomy.faults import Response
from intball_nav.autonomy.modes import Event, Mode
from intball_nav.frames import KIBO_FRAME, Pose, quat_angle
from intball_nav.planning import PlanningFailed, plan_path
from intball_ros import convert, names
from intball_ros.camera_task import CameraTasks, Stopped

DOCKED_HOLD = "on the dock, held by the controller's preload (the simulator has no magnets yet), charging"

MAX_WAYPOINTS = 20
SETTLE_TIMEOUT_S = 60.0  # s sim time after the planned end of a leg before giving up


class NavActions(CameraTasks):
    """Mixin of NavNode (needs request, wait_tick, _auto, _estimate, _zones, _ctx, _lock, _now)."""

    def _init_actions(self) -> None:
        self._owner = None  # goal id of the motion goal in charge
        self._route_paused = None  # None: no route; else bool
        group = self._actions_group
        accept = lambda _g: GoalResponse.ACCEPT  # noqa: E731 - validation in execute (reason in the result)
        cancel = lambda _g: CancelResponse.ACCEPT  # noqa: E731
        for kind, name, cb in (
            (NavigateTo, names.NAVIGATE_TO, self._navigate),
            (FollowRoute, names.FOLLOW_ROUTE, self._route),
            (Dock, names.DOCK, self._dock),
            (Undock, names.UNDOCK, self._undock),
            (CameraTask, names.CAMERA_TASK, self._camera_task),
        ):
            ActionServer(
                self, kind, name, cb, goal_callback=accept, cancel_callback=cancel, callback_group=group
            )
        self._init_camera()

    # -- helpers --------------------------------------------------------------------------------
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

    def _send(self, pose: Pose, mode: str):
        tr = self.request(sup.Request(Event.NAVIGATE, KIBO_FRAME, pose.position, pose.quat, mode))
        if not tr.accepted:
            raise Stopped(tr.reason)
        return self._auto.gnc.goal

    async def _fly(
        self, goal_handle, token, target: Pose, mode: str, tol=(0.0, 0.0), feedback=None, paused=None
    ) -> None:
        """Fly to target (kibo) through a planned path; returns on arrival, raises Stopped."""
        legs = await self._legs(target)
        fm = self._ctx.flight_modes[mode]
        pos_tol, ang_tol = tol[0] or fm.pos_tolerance, tol[1] or fm.att_tolerance
        version, leg, inside_since = self._zones.version, 0, None
        sent = self._send(legs[0], mode)
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
                    sent = self._send(legs[0], mode)
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
                    sent = self._send(legs[leg], mode)
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

    # -- navigate_to ------------------------------------------------------------------------------
    async def _navigate(self, goal_handle):
        g, result = goal_handle.request, NavigateTo.Result()
        token = self._claim(goal_handle)
        try:
            mode = self._mode_name(g.flight_mode)
            tol = (float(g.position_tolerance), float(g.angle_tolerance))
            if not all(math.isfinite(x) and x >= 0.0 for x in tol):
                raise CommandRejected(f"tolerances must be finite and >= 0, got {tol}")
            target = self._target(g.target)
        except CommandRejected as exc:
            return self._abort(goal_handle, result, f"navigate rejected: invalid command: {exc}")

        def feedback(est, info):
            fb = NavigateTo.Feedback(current_pose=convert.msg_from_pose(Pose(est.position, est.quat)))
            fb.distance_remaining, fb.angle_remaining, fb.state = info
            goal_handle.publish_feedback(fb)

        try:
            await self._fly(goal_handle, token, target, mode, tol, feedback)
        except (Stopped, CommandRejected) as exc:
            return self._end(goal_handle, result, exc, target)
        result.position_error, result.angle_error, here = self._errors(target)
        result.final_pose, result.success = convert.msg_from_pose(here), True
        result.reason = (
            f"arrived: {100 * result.position_error:.1f} cm, {math.degrees(result.angle_error):.1f} deg"
        )
        goal_handle.succeed()
        return result

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

    # -- follow_route -------------------------------------------------------------------------------
    async def _route(self, goal_handle):
        g, result = goal_handle.request, FollowRoute.Result()
        token = self._claim(goal_handle)
        try:
            mode = self._mode_name(g.flight_mode)
            n = len(g.waypoints)
            if not 1 <= n <= MAX_WAYPOINTS:
                raise CommandRejected(f"a route has 1..{MAX_WAYPOINTS} waypoints, got {n}")
            holds = list(g.hold_times) or [0.0] * n
            if len(holds) != n or not all(math.isfinite(h) and h >= 0.0 for h in holds):
                raise CommandRejected(f"hold_times must be empty or {n} finite values >= 0 s")
            targets = []
            for i, wp in enumerate(g.waypoints):
                try:
                    targets.append(self._target(wp))
                except CommandRejected as exc:
                    raise CommandRejected(f"waypoint {i}: {exc}") from None
        except CommandRejected as exc:
            return self._abort(goal_handle, result, f"route rejected: invalid command: {exc}")
        self._route_paused = False
        state = {"i": 0}

        def feedback(est, info):
            fb = FollowRoute.Feedback(current_waypoint=state["i"], paused=bool(self._route_paused))
            fb.current_pose = convert.msg_from_pose(Pose(est.position, est.quat))
            fb.distance_remaining = float(info[0]) if info else 0.0
            goal_handle.publish_feedback(fb)

        try:
            i = 0
            while i < n:
                state["i"] = i
                if self._route_paused:
                    await self.wait_tick()
                    self._check(goal_handle, token)
                    feedback(self._estimate, None)
                    continue
                try:
                    await self._fly(
                        goal_handle,
                        token,
                        targets[i],
                        mode,
                        feedback=feedback,
                        paused=lambda: self._route_paused,
                    )
                except Stopped as exc:
                    if str(exc) == "paused":
                        self.request(sup.Request(Event.STOP))
                        continue
                    raise
                t_end = self._now() + holds[i]
                while self._now() < t_end:
                    await self.wait_tick()
                    self._check(goal_handle, token)
                    feedback(self._estimate, (0.0,))
                i += 1
                result.waypoints_completed = i
        except (Stopped, CommandRejected) as exc:
            return self._end(
                goal_handle, result, Stopped(f"waypoint {state['i']}: {exc}", getattr(exc, "canceled", False))
            )
        finally:
            self._route_paused = None
        result.success, result.reason = True, f"route complete: {n} waypoints"
        goal_handle.succeed()
        return result

    def _on_pause(self, req, res):
        if self._route_paused is None:
            res.success, res.message = False, "no route is being flown"
            return res
        self._route_paused = bool(req.data)
        res.success = True
        res.message = "route paused: holding" if req.data else "route resumed"
        self.get_logger().info(res.message)
        return res

    # -- dock / undock ------------------------------------------------------------------------------
    async def _dock(self, goal_handle):
        return await self._docking(goal_handle, Dock, Event.DOCK, Mode.DOCKED, Mode.DOCKING)

    async def _undock(self, goal_handle):
        return await self._docking(goal_handle, Undock, Event.UNDOCK, Mode.STATION_KEEPING, Mode.UNDOCKING)

    async def _docking(self, goal_handle, kind, event, done_mode, active_mode):
        result = kind.Result()
        token = self._claim(goal_handle)
        if goal_handle.request.dock_id not in ("", "dock"):
            return self._abort(
                goal_handle, result, f"unknown dock {goal_handle.request.dock_id!r}; known: dock"
            )
        tr = self.request(sup.Request(event))
        if not tr.accepted:
            return self._abort(goal_handle, result, tr.reason)
        params = self._ctx.autonomy.docking
        goal = params.docked_pose if event == Event.DOCK else params.pose_at(params.standoff)
        if tr.target == done_mode:  # already docked
            result.success, result.reason = True, tr.reason
            result.position_error = self._errors(goal)[0]
            goal_handle.succeed()
            return result
        try:
            while True:
                await self.wait_tick()
                self._check(goal_handle, token)
                s = self._auto
                dist = self._errors(goal)[0]
                if s.mode.mode == done_mode:
                    break
                if s.mode.mode != active_mode:
                    raise Stopped(f"{event} failed: {s.mode.mode}: {self._why()}")
                phase = s.docking.phase if s.docking is not None else ""
                goal_handle.publish_feedback(kind.Feedback(stage=phase, distance_remaining=dist))
        except Stopped as exc:
            return self._end(goal_handle, result, exc)
        result.position_error = self._errors(goal)[0]
        result.success, result.reason = True, f"{self._last_reason} ({100 * result.position_error:.2f} cm)"
        if event == Event.DOCK:
            result.reason = (
                f"docked ({100 * result.position_error:.2f} cm from the docked pose): {DOCKED_HOLD}"
            )
        goal_handle.succeed()
        return result
