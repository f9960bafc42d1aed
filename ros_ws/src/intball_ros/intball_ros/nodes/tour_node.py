"""Tour driver: flies a mission file (intball_nav.mission) through the ROS graph.

Sends the waypoints one after another on the goal topic, sets the controller's
``flight_mode`` parameter per waypoint, waits for arrival (GuidanceStatus.arrived for that
goal), holds ``hold_s`` of sim time and prints one progress line per waypoint. With
``exit_when_done`` the node exits 0 after the last waypoint (the launcher then stops the
graph); otherwise it stays up while the controller station-keeps the last pose. A rejected
waypoint ends the node with exit code 2.
"""

from __future__ import annotations

import math

import numpy as np
from geometry_msgs.msg import PoseStamped
from intball_interfaces.msg import GuidanceStatus
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient

from intball_nav.frames import quat_angle
from intball_nav.mission import load_mission
from intball_ros import convert, names
from intball_ros.nodes import NodeFinished, run


class TourNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__(names.TOUR_NODE, **kwargs)
        path = str(self.declare_parameter(names.P_TOUR_FILE, "").value)
        self._exit_when_done = bool(self.declare_parameter(names.P_EXIT_WHEN_DONE, False).value)
        self._mission = load_mission(path)
        self._index = -1  # waypoint being flown; -1 = waiting for the controller
        self._sent_t = math.inf
        self._hold_until: float | None = None
        self._pending = None  # flight-mode parameter future of the next goal
        self._t0 = 0.0
        self._goal_pub = self.create_publisher(PoseStamped, names.GOAL_POSE, names.RELIABLE_10)
        self.create_subscription(GuidanceStatus, names.GUIDANCE_STATUS, self._on_status, names.RELIABLE_10)
        self._params = AsyncParameterClient(self, names.CONTROL_NODE)
        self.create_timer(0.1, self._on_tick)
        n = len(self._mission.waypoints)
        self._say(f"tour {self._mission.name!r}: {n} waypoints from {path}; waiting for the controller")

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _say(self, text: str) -> None:
        print(text, flush=True)

    def _on_status(self, msg: GuidanceStatus) -> None:
        if self._index < 0:
            if self._goal_pub.get_subscription_count() > 0 and self._params.services_are_ready():
                self._t0 = self._now()
                self._next()
            return
        if self._index >= len(self._mission.waypoints) or self._hold_until is not None:
            return
        wp = self._mission.waypoints[self._index]
        goal = convert.goal_from_status(msg)
        same_goal = goal is not None and np.allclose(goal.position, wp.pose.position, atol=1e-6)
        same_goal = same_goal and quat_angle(goal.quat, wp.pose.quat) < 1e-6
        if msg.state == "rejected" and same_goal:
            self._say(f"waypoint {self._index + 1}/{len(self._mission.waypoints)} {msg.message}")
            raise NodeFinished(2)
        if msg.arrived and same_goal and convert.time_from_stamp(msg.header.stamp) >= self._sent_t:
            t = self._now()
            self._say(
                f"waypoint {self._index + 1}/{len(self._mission.waypoints)} reached: "
                f"error {msg.position_error * 100:.1f} cm, {math.degrees(msg.attitude_error):.1f} deg, "
                f"t={t - self._t0:.1f} s" + (f"; holding {wp.hold_s:g} s" if wp.hold_s > 0 else "")
            )
            self._hold_until = t + wp.hold_s

    def _on_tick(self) -> None:
        if self._pending is not None and self._pending.done():
            self._pending = None
            self._send_goal()
        if self._hold_until is not None and self._now() >= self._hold_until:
            self._hold_until = None
            self._next()

    def _next(self) -> None:
        self._index += 1
        if self._index < len(self._mission.waypoints):
            wp = self._mission.waypoints[self._index]
            mode = Parameter(names.P_FLIGHT_MODE, value=wp.flight_mode)
            self._pending = self._params.set_parameters([mode])
            return
        self._say(
            f"tour complete: {len(self._mission.waypoints)} waypoints in {self._now() - self._t0:.1f} s"
        )
        if self._exit_when_done:
            raise NodeFinished(0)
        self._say("station-keeping the last waypoint (Ctrl-C to stop)")

    def _send_goal(self) -> None:
        wp = self._mission.waypoints[self._index]
        self._sent_t = self._now()
        self._goal_pub.publish(convert.pose_stamped_from_pose(wp.pose, self._sent_t))
        p = np.round(wp.pose.position, 2).tolist()
        self._say(
            f"waypoint {self._index + 1}/{len(self._mission.waypoints)}: going to {p} m ({wp.flight_mode})"
        )


NODE_CLASS = TourNode


def main() -> None:
    run(TourNode)


if __name__ == "__main__":
    main()
