"""Flying a motion goal of the navigation node (navigate_to, follow_route, camera_task): path
planning in a worker thread, flying the legs with re-planning when keep-out zones change, the
look-at target, arrival (settled within the tolerances).

Each motion goal is a coroutine awaiting the supervisor's ticks (``NavNode.wait_tick``); every
tick ``goals.GoalHandling._check`` ends it on cancel or preemption (raises ``Stopped``).
"""

from __future__ import annotations

import math
import threading

import numpy as np
from rclpy.task import Future

from intball_nav.autonomy import supervisor as sup
from intball_nav.autonomy.commands import CommandRejected
from intball_nav.autonomy.modes import Event, Mode
from intball_nav.frames import KIBO_FRAME, Pose, quat_angle
from intball_nav.gnc import LookAtTarget
from intball_nav.planning import PlanningFailed, plan_path
from intball_ros import names
from intball_ros.goals import Stopped

SETTLE_TIMEOUT_S = 60.0  # s sim time after the planned end of a leg before giving up


class Flight:
    """Mixin of NavNode (needs request, wait_tick, _auto, _estimate, _zones, _ctx, _lock,
    foreign_goal_for, and GoalHandling's _check and _why)."""

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
