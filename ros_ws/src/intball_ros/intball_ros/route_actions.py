"""The follow_route action of the navigation node: 1..20 waypoints flown in turn (``Flight._fly``),
holding ``hold_times[i]`` s at each, paused and resumed by ``/intball/route/pause`` (the robot
holds where it is), optionally with the main camera kept on a look-at point all the way.
"""

from __future__ import annotations

import math

from intball_interfaces.action import FollowRoute

from intball_nav.autonomy import supervisor as sup
from intball_nav.autonomy.commands import CommandRejected
from intball_nav.autonomy.modes import Event
from intball_nav.frames import Pose
from intball_ros import convert
from intball_ros.goals import Stopped

MAX_WAYPOINTS = 20


class RouteActions:
    """Mixin of NavNode (uses GoalHandling: _claim, _check, _target, _look, _look_pose, _abort, _end;
    Flight: _fly)."""

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
            look = self._look(g.look_at_enabled, g.look_at)
            targets = []
            for i, wp in enumerate(g.waypoints):
                try:
                    targets.append(self._look_pose(self._target(wp), look))
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
                        look=look,
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
