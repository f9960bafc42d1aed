"""The action servers of the navigation node: navigate_to, follow_route, dock, undock, camera_task.

The servers are registered here; navigate_to is executed here, the others in ``route_actions``,
``dock_actions`` and ``camera_task``, all over the goal handling of ``goals`` (ownership,
preemption, validation, the end of a goal) and the flying of ``flight``. Each ``execute``
is a coroutine that sends requests to the supervisor (``NavNode.request``) and then awaits the
supervisor's ticks (``NavNode.wait_tick``), so no executor thread is blocked and the composed
single-threaded graph works too. One motion goal at a time: a new motion goal
preempts the previous one (aborted with "preempted by ..."); cancel stops the robot (hold here).

Goals are validated when they start executing, before any motion: an invalid goal is accepted
by the action server and immediately aborted with ``success = false`` and the reason (ROS 2 goal
responses carry no text).
"""

from __future__ import annotations

import math

from intball_interfaces.action import CameraTask, Dock, FollowRoute, NavigateTo, Undock
from rclpy.action import ActionServer, CancelResponse, GoalResponse

from intball_nav.autonomy.commands import CommandRejected
from intball_nav.frames import Pose
from intball_ros import convert, names
from intball_ros.camera_task import CameraTasks
from intball_ros.dock_actions import DockActions
from intball_ros.flight import Flight
from intball_ros.goals import GoalHandling, Stopped
from intball_ros.nodes import destroy_actions
from intball_ros.route_actions import RouteActions


class NavActions(GoalHandling, Flight, RouteActions, DockActions, CameraTasks):
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

    def destroy_node(self) -> None:
        """The action servers first (``intball_ros.nodes.destroy_actions``: rclpy leaves them)."""
        destroy_actions(self)
        super().destroy_node()  # the next class in NavNode's MRO; in the end rclpy's Node

    async def _navigate(self, goal_handle):
        g, result = goal_handle.request, NavigateTo.Result()
        token = self._claim(goal_handle)
        try:
            mode = self._mode_name(g.flight_mode)
            tol = (float(g.position_tolerance), float(g.angle_tolerance))
            if not all(math.isfinite(x) and x >= 0.0 for x in tol):
                raise CommandRejected(f"tolerances must be finite and >= 0, got {tol}")
            look = self._look(g.look_at_enabled, g.look_at)
            target = self._look_pose(self._target(g.target), look)
        except CommandRejected as exc:
            return self._abort(goal_handle, result, f"navigate rejected: invalid command: {exc}")

        def feedback(est, info):
            fb = NavigateTo.Feedback(current_pose=convert.msg_from_pose(Pose(est.position, est.quat)))
            fb.distance_remaining, fb.angle_remaining, fb.state = info
            fb.pointing_error = self._pointing(est, look)
            goal_handle.publish_feedback(fb)

        try:
            await self._fly(goal_handle, token, target, mode, tol, feedback, look=look)
        except (Stopped, CommandRejected) as exc:
            return self._end(goal_handle, result, exc, target)
        result.position_error, result.angle_error, here = self._errors(target)
        result.final_pose, result.success = convert.msg_from_pose(here), True
        result.reason = (
            f"arrived: {100 * result.position_error:.1f} cm, {math.degrees(result.angle_error):.1f} deg"
        )
        if look is not None:
            pointing = math.degrees(self._pointing(self._estimate, look))
            result.reason += f"; main camera on the look-at point ({pointing:.1f} deg), held while holding"
        goal_handle.succeed()
        return result
