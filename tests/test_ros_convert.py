"""intball_ros.convert: message <-> core-type round trips and validation (pure, no processes)."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("rclpy")

from geometry_msgs.msg import PoseStamped  # noqa: E402

from intball_nav.dynamics import RigidBodyState  # noqa: E402
from intball_nav.frames import Pose, quat_from_rpy  # noqa: E402
from intball_ros import convert, launcher, names  # noqa: E402

RNG = np.random.default_rng(7)


def random_state() -> RigidBodyState:
    q = RNG.standard_normal(4)
    q /= np.linalg.norm(q)
    q = q if q[3] >= 0 else -q
    return RigidBodyState(RNG.uniform(-2, 5, 3), q, RNG.uniform(-0.2, 0.2, 3), RNG.uniform(-0.5, 0.5, 3))


@pytest.mark.parametrize("t", [0.0, 1e-9, 0.5, 12.345678901, 86400.25])
def test_stamp_round_trip(t):
    stamp = convert.stamp_from_time(t)
    assert 0 <= stamp.nanosec < 1_000_000_000
    assert convert.time_from_stamp(stamp) == pytest.approx(t, abs=1e-9)


def test_odometry_round_trip_rotates_velocity_into_body_frame():
    for _ in range(20):
        s = random_state()
        msg = convert.odometry_from_state(s, 3.25)
        assert msg.header.frame_id == names.WORLD_FRAME and msg.child_frame_id == names.BODY_FRAME
        # twist.linear is the body-frame velocity (REP-105): |v| is preserved, direction rotated
        v_body = np.array([msg.twist.twist.linear.x, msg.twist.twist.linear.y, msg.twist.twist.linear.z])
        assert np.linalg.norm(v_body) == pytest.approx(np.linalg.norm(s.velocity))
        back = convert.state_from_odometry(msg)
        np.testing.assert_allclose(back.position, s.position, atol=1e-12)
        np.testing.assert_allclose(back.quat, s.quat, atol=1e-12)
        np.testing.assert_allclose(back.velocity, s.velocity, atol=1e-12)
        np.testing.assert_allclose(back.omega, s.omega, atol=1e-12)


def test_pose_and_transform_round_trip():
    pose = Pose(np.array([1.0, -0.2, 0.3]), quat_from_rpy(0.1, -0.2, 2.5))
    back = convert.pose_from_msg(convert.msg_from_pose(pose))
    np.testing.assert_allclose(back.position, pose.position)
    np.testing.assert_allclose(back.quat, pose.quat)
    tf = convert.transform_from_pose(pose, 1.0, names.WORLD_FRAME, names.BODY_FRAME)
    assert tf.header.frame_id == names.WORLD_FRAME and tf.child_frame_id == names.BODY_FRAME
    np.testing.assert_allclose(convert.pose_from_transform(tf).matrix(), pose.matrix(), atol=1e-12)


def _goal(frame=names.WORLD_FRAME, position=(1.0, 0.0, 0.0), quat=(0.0, 0.0, 0.0, 1.0)) -> PoseStamped:
    msg = PoseStamped()
    msg.header.frame_id = frame
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = position
    o = msg.pose.orientation
    o.x, o.y, o.z, o.w = quat
    return msg


def test_goal_accepts_valid_and_normalizes():
    goal = convert.goal_from_msg(_goal(quat=(0.0, 0.0, 0.0, 1.02)))
    np.testing.assert_allclose(goal.quat, [0, 0, 0, 1])


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (_goal(frame="map"), "frame_id"),
        (_goal(frame=""), "frame_id"),
        (_goal(position=(math.nan, 0.0, 0.0)), "not finite"),
        (_goal(position=(0.0, math.inf, 0.0)), "not finite"),
        (_goal(quat=(0.0, 0.0, 0.0, 0.0)), "cannot be normalized"),
        (_goal(quat=(0.0, math.nan, 0.0, 1.0)), "not finite"),
        (_goal(quat=(0.0, 0.0, 3.0, 0.0)), "not a unit quaternion"),
    ],
)
def test_goal_rejections_name_the_reason(msg, reason):
    with pytest.raises(convert.InvalidMessage, match=reason):
        convert.goal_from_msg(msg)


def test_image_round_trip():
    rgb = RNG.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    msg = convert.image_from_array(rgb, 0.1, "cam")
    assert (msg.width, msg.height, msg.step, msg.encoding) == (32, 24, 96, "rgb8")
    np.testing.assert_array_equal(convert.array_from_image(msg), rgb)
    rgba = np.dstack([rgb, np.full((24, 32), 255, np.uint8)])
    np.testing.assert_array_equal(convert.array_from_image(convert.image_from_array(rgba, 0.1, "cam")), rgb)


def test_camera_info_from_model():
    camera = pytest.importorskip("intball_sim.camera")
    models = camera.load_cameras()
    right = models["nav_right"]
    msg = convert.camera_info_from_model(right, 2.0)
    assert (msg.width, msg.height, msg.header.frame_id) == (right.width, right.height, right.frame_id)
    np.testing.assert_allclose(np.reshape(msg.k, (3, 3)), right.K)
    assert msg.p[3] == pytest.approx(right.Tx)
    assert msg.distortion_model == "plumb_bob" and len(msg.d) == 5


def test_fan_command_round_trip_and_validation():
    thrust = np.linspace(0.0, 0.07, 8)
    msg = convert.fan_command_msg(thrust, 1.5)
    np.testing.assert_allclose(convert.thrust_from_fan_command(msg), thrust)
    np.testing.assert_allclose(convert.thrust_from_fan_command(msg, fan_max=0.06), np.clip(thrust, 0, 0.06))
    msg.thrust[2] = math.nan
    with pytest.raises(convert.InvalidMessage, match="finite"):
        convert.thrust_from_fan_command(msg)


def test_wrench_and_imu_messages():
    w = convert.wrench_msg(np.arange(6.0), 1.0)
    assert w.header.frame_id == names.BODY_FRAME
    assert (w.wrench.force.z, w.wrench.torque.x) == (2.0, 3.0)
    imu = convert.imu_msg(1.0, np.array([0.1, 0.2, 0.3]), np.array([0.0, 0.0, 1.0]))
    assert imu.orientation_covariance[0] == -1.0 and imu.angular_velocity.z == 1.0


def test_params_cli_args():
    args = launcher.params_cli_args({"rate": 5.0, "cameras": False, "mode": "truth", "pose": [1, 2]})
    assert args == ["--ros-args", "-p", "rate:=5.0", "-p", "cameras:=false", "-p", "mode:=truth"] + [
        "-p",
        "pose:=[1.0, 2.0]",
    ]
