"""Estimator node: the named localization mode -> /intball/odometry, /tf and localization health.

``localization`` is an explicit mode:

- ``vision`` (default of ``intball up`` with cameras): IMU + left nav camera through the
  visual-inertial pipeline (:mod:`intball_ros.nodes.vision_estimator`); one estimate per IMU
  sample (100 Hz) with its pose covariance, health ok / degraded / lost / initialising;
- ``truth-noise`` (truth plus seeded white noise, intball_nav.estimation.truth_noise) or
  ``truth``: one estimate per ground-truth message (100 Hz), health always ``ok``.

Health goes to ``/intball/localization/health`` at ``health_rate`` (and at once on a change of
level in vision mode); the controller stops and holds when it says ``lost``.
"""

from __future__ import annotations

from intball_interfaces.msg import LocalizationHealth
from nav_msgs.msg import Odometry
from rclpy.node import Node
from tf2_msgs.msg import TFMessage

from intball_nav.estimation.health import HealthLevel, HealthStatus
from intball_nav.estimation.truth_noise import TruthNoiseEstimator
from intball_ros import convert, names
from intball_ros.nodes import run


class EstimatorNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__(names.ESTIMATOR_NODE, **kwargs)
        mode = self.declare_parameter(names.P_LOCALIZATION, "truth-noise").value
        seed = self.declare_parameter(names.P_SEED, 0).value
        features = bool(self.declare_parameter(names.P_FEATURES, False).value)
        health_rate = float(self.declare_parameter(names.P_HEALTH_RATE, 10.0).value)
        if mode not in names.LOCALIZATION_MODES:
            raise ValueError(
                f"{names.P_LOCALIZATION}={mode!r}; allowed: {', '.join(names.LOCALIZATION_MODES)}"
            )
        if not health_rate > 0.0:
            raise ValueError(f"{names.P_HEALTH_RATE} must be > 0, got {health_rate}")
        self._mode = mode
        self._odom_pub = self.create_publisher(Odometry, names.ODOMETRY, names.RELIABLE_10)
        self._tf_pub = self.create_publisher(TFMessage, names.TF, names.RELIABLE_10)
        self._health_pub = self.create_publisher(
            LocalizationHealth, names.LOCALIZATION_HEALTH, names.RELIABLE_10
        )
        self._truth_t: float | None = None
        if mode == names.LOCALIZATION_VISION:
            from intball_ros.nodes.vision_estimator import VisionEstimator

            self._vision = VisionEstimator(self, features)
            source = f"{names.IMU} + {names.NAV_LEFT_IMAGE}" + (" (markers + features)" if features else "")
        else:
            self._vision = None
            self._estimator = TruthNoiseEstimator(seed=int(seed) + 1, mode=mode)
            self.create_subscription(Odometry, names.GROUND_TRUTH, self._on_truth, names.RELIABLE_10)
            source = "ground truth"
        self.create_timer(1.0 / health_rate, self.publish_health)
        self.get_logger().info(f"localization mode: {mode} ({source} -> {names.ODOMETRY})")

    def publish_estimate(self, t: float, state, covariance=None) -> None:
        """Odometry (with the pose covariance when given) and the kibo -> base_link transform."""
        self._odom_pub.publish(convert.odometry_from_state(state, t, covariance=covariance))
        tf = convert.transform_from_pose(
            convert.pose_from_state(state), t, names.WORLD_FRAME, names.BODY_FRAME
        )
        self._tf_pub.publish(TFMessage(transforms=[tf]))

    def publish_health(self) -> None:
        if self._vision is not None:
            msg = self._vision.health_msg()
        elif self._truth_t is None:
            msg = convert.health_msg(0.0, HealthStatus(), initialised=False)
        else:
            ok = HealthStatus(HealthLevel.OK, f"{self._mode}: ground truth")
            msg = convert.health_msg(
                self._truth_t, ok, position_std=0.0, attitude_std=0.0, time_since_update=0.0
            )
        self._health_pub.publish(msg)

    def _on_truth(self, msg: Odometry) -> None:
        try:
            truth = convert.state_from_odometry(msg)
        except convert.InvalidMessage as exc:
            self.get_logger().warning(f"ignoring ground truth: {exc}", throttle_duration_sec=5.0)
            return
        self._truth_t = convert.time_from_stamp(msg.header.stamp)
        self.publish_estimate(self._truth_t, self._estimator.update(truth))


NODE_CLASS = EstimatorNode


def main() -> None:
    run(EstimatorNode)


if __name__ == "__main__":
    main()
