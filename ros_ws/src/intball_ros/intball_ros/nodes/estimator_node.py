"""Estimator node: ground truth -> named truth-based localization -> /intball/odometry and /tf.

``localization`` is an explicit mode: ``truth-noise`` (default, truth plus seeded white noise,
intball_nav.estimation.truth_noise) or ``truth``. Visual localization will replace this node.
Publishes one estimate per ground-truth message (the simulator publishes at 100 Hz).
"""

from __future__ import annotations

from nav_msgs.msg import Odometry
from rclpy.node import Node
from tf2_msgs.msg import TFMessage

from intball_nav.estimation.truth_noise import TruthNoiseEstimator
from intball_ros import convert, names
from intball_ros.nodes import run


class EstimatorNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__(names.ESTIMATOR_NODE, **kwargs)
        mode = self.declare_parameter(names.P_LOCALIZATION, "truth-noise").value
        seed = self.declare_parameter(names.P_SEED, 0).value
        if mode not in names.LOCALIZATION_MODES:
            raise ValueError(
                f"{names.P_LOCALIZATION}={mode!r}; allowed: {', '.join(names.LOCALIZATION_MODES)}"
            )
        self._estimator = TruthNoiseEstimator(seed=int(seed) + 1, mode=mode)
        self._odom_pub = self.create_publisher(Odometry, names.ODOMETRY, names.RELIABLE_10)
        self._tf_pub = self.create_publisher(TFMessage, names.TF, names.RELIABLE_10)
        self.create_subscription(Odometry, names.GROUND_TRUTH, self._on_truth, names.RELIABLE_10)
        self.get_logger().info(f"localization mode: {mode} (ground truth -> {names.ODOMETRY})")

    def _on_truth(self, msg: Odometry) -> None:
        try:
            truth = convert.state_from_odometry(msg)
        except convert.InvalidMessage as exc:
            self.get_logger().warning(f"ignoring ground truth: {exc}", throttle_duration_sec=5.0)
            return
        t = convert.time_from_stamp(msg.header.stamp)
        estimate = self._estimator.update(truth)
        self._odom_pub.publish(convert.odometry_from_state(estimate, t))
        pose = convert.pose_from_state(estimate)
        tf = convert.transform_from_pose(pose, t, names.WORLD_FRAME, names.BODY_FRAME)
        self._tf_pub.publish(TFMessage(transforms=[tf]))


NODE_CLASS = EstimatorNode


def main() -> None:
    run(EstimatorNode)


if __name__ == "__main__":
    main()
