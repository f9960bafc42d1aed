"""The inputs of the navigation node: the state estimate, fan commands, localization health,
guidance status (a goal not sent by this node), the bump sensor and the main camera image;
the estimates of the last 3 s (``_odom_history``) give the pose at an image's stamp.

Messages are kept as they come and converted when used (odometry 100 Hz in, 50 Hz used);
stream ages for the watchdog are counted in the node's own ticks (``_mark``), so a stalled node
does not see its inputs as stale. Ground truth never reaches this node.
"""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import WrenchStamped
from intball_interfaces.msg import FanCommand, GuidanceStatus, LocalizationHealth
from nav_msgs.msg import Odometry
from sensor_msgs.msg import Image

from intball_nav.camera_tasks.pose_history import pose_at
from intball_nav.frames import Pose
from intball_ros import contact, convert


def _pose_of(msg: Odometry) -> Pose | None:
    try:
        return convert.pose_from_state(convert.state_from_odometry(msg))
    except convert.InvalidMessage:
        return None


class NavInputs:
    """Mixin of NavNode (its __init__ creates the subscriptions and the fields used here)."""

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _mark(self, stream: str) -> None:
        self._seen[stream] = self._ticks

    def _on_odometry(self, msg: Odometry) -> None:
        self._odom_msg = msg  # converted when used (100 Hz in, 50 Hz used)
        self._odom_history.append((convert.time_from_stamp(msg.header.stamp), msg))
        self._mark("odometry")

    def _on_fans(self, msg: FanCommand) -> None:
        self._fan_msg = msg
        self._mark("fan_command")

    @property
    def _estimate(self):
        """Latest state estimate (RigidBodyState, kibo frame), None before the first odometry."""
        msg = self._odom_msg
        if msg is not None and msg is not self._converted:
            self._converted = msg
            try:
                self._estimate_cache = convert.state_from_odometry(msg)
            except convert.InvalidMessage as exc:
                self.get_logger().warning(f"ignoring odometry: {exc}", throttle_duration_sec=2.0)
        return self._estimate_cache

    def _estimate_at(self, stamp: float) -> Pose | None:
        """The estimated pose (kibo) at ``stamp`` (s sim time), interpolated between the odometry
        messages around it (``camera_tasks.pose_history.pose_at``); None when the history (the
        last 3 s) does not cover it."""
        return pose_at(tuple(self._odom_history), stamp, _pose_of)

    def _estimate_covers(self, stamp: float) -> bool:
        """True once an estimate stamped at or after ``stamp`` has arrived."""
        return bool(self._odom_history) and self._odom_history[-1][0] >= stamp

    def _fan_thrust(self) -> np.ndarray:
        if self._fan_msg is None:
            return np.zeros(8)
        try:
            return convert.thrust_from_fan_command(self._fan_msg)
        except convert.InvalidMessage:
            return np.zeros(8)

    def _on_health(self, msg: LocalizationHealth) -> None:
        if msg.level == convert.INITIALISING and self._health is None:
            return  # the supervisor starts once the estimator has initialised
        try:
            self._health = convert.health_from_msg(msg)
        except convert.InvalidMessage as exc:
            self.get_logger().warning(f"ignoring localization health: {exc}", throttle_duration_sec=2.0)

    def _on_guidance(self, msg: GuidanceStatus) -> None:
        """Notes since when the controller flies a goal this node did not send (``_foreign_since``)."""
        goal = convert.goal_from_status(msg) if msg.state != "rejected" else None
        if goal is None:
            return  # rejection events and idle statuses carry no goal being flown
        ours = any(np.linalg.norm(goal.position - p) < 1e-3 for p in self._sent_positions)
        t = convert.time_from_stamp(msg.header.stamp)
        self._foreign_since = (
            None if ours else (self._foreign_since if self._foreign_since is not None else t)
        )
        self._guidance_t = t

    def foreign_goal_for(self) -> float:
        """s sim time the controller has been flying a goal not sent by this node (0 if none)."""
        return 0.0 if self._foreign_since is None else self._guidance_t - self._foreign_since

    def _on_contact(self, msg: WrenchStamped) -> None:
        """Bump sensor: a contact started. Near the dock it is named ``dock`` (no collision while
        docking, decided by the fault monitor), else ``obstacle``."""
        with self._lock:
            est, dock = self._estimate, self._ctx.autonomy.docking
            gap = np.inf if est is None else np.linalg.norm(est.position - dock.docked_pose.position)
            near = bool(gap <= dock.standoff)
            report = contact.collision_from_msg(msg, near)
            self._bumps.append(report)
        self.get_logger().info(f"bump sensor: contact with {report.body}: {contact.describe(msg)}")

    def _on_image(self, msg: Image) -> None:
        self._image = msg
