"""Our ROS interface packages: built into the venv by `make install`, usable with no sourcing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros

SUBSCRIBER = textwrap.dedent(
    """
    import sys
    import rclpy
    from intball_interfaces.msg import FanCommand
    from tf2_msgs.msg import TFMessage

    rclpy.init()
    node = rclpy.create_node("infra_probe_sub")
    got = {}
    node.create_subscription(FanCommand, "infra_probe/fans", lambda m: got.setdefault("fans", m), 10)
    node.create_subscription(TFMessage, "infra_probe/tf", lambda m: got.setdefault("tf", m), 10)
    print("ready", flush=True)
    while len(got) < 2:
        rclpy.spin_once(node, timeout_sec=0.1)
    fans, tf = got["fans"], got["tf"]
    print("fans", fans.header.frame_id, " ".join(repr(float(x)) for x in fans.thrust))
    t = tf.transforms[0]
    print("tf", t.header.frame_id, t.child_frame_id, t.transform.translation.x, t.transform.rotation.w)
    """
)

PUBLISHER = textwrap.dedent(
    """
    import sys
    import rclpy
    from geometry_msgs.msg import TransformStamped
    from intball_interfaces.msg import FanCommand
    from tf2_msgs.msg import TFMessage

    rclpy.init()
    node = rclpy.create_node("infra_probe_pub")
    fans_pub = node.create_publisher(FanCommand, "infra_probe/fans", 10)
    tf_pub = node.create_publisher(TFMessage, "infra_probe/tf", 10)
    fans = FanCommand(thrust=[0.0, 0.005, 0.01, 0.015, 0.02, 0.03, 0.045, 0.06])
    fans.header.frame_id = "base_link"
    t = TransformStamped()
    t.header.frame_id, t.child_frame_id = "kibo", "base_link"
    t.transform.translation.x, t.transform.rotation.w = 1.25, 1.0
    while True:  # until the test kills us
        fans_pub.publish(fans)
        tf_pub.publish(TFMessage(transforms=[t]))
        rclpy.spin_once(node, timeout_sec=0.05)
    """
)


def _clean_env(ros_env: dict[str, str]) -> dict[str, str]:
    """The test environment minus anything a `source setup.bash` would have provided."""
    env = dict(ros_env)
    for var in ("AMENT_PREFIX_PATH", "PYTHONPATH", "LD_LIBRARY_PATH", "_ROS_WHEELS_BOOTSTRAP_COMPLETE"):
        env.pop(var, None)
    return env


def test_interfaces_import_without_sourcing(ros_env: dict[str, str], tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        from intball_interfaces.msg import FanCommand, GuidanceStatus
        from tf2_msgs.msg import TFMessage
        assert FanCommand().thrust.shape == (8,)
        status = GuidanceStatus(state="holding", flight_mode="nominal", arrived=True)
        assert status.goal.orientation.w == 1.0
        assert TFMessage().transforms == []
        print(FanCommand.__module__, TFMessage.__module__)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=_clean_env(ros_env), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["intball_interfaces.msg._fan_command", "tf2_msgs.msg._tf_message"]


def test_publish_subscribe_round_trip_between_processes(ros_env: dict[str, str], tmp_path: Path) -> None:
    env = _clean_env(ros_env)
    sub = subprocess.Popen(
        [sys.executable, "-c", SUBSCRIBER],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pub = None
    try:
        assert sub.stdout is not None
        assert sub.stdout.readline().strip() == "ready"
        pub = subprocess.Popen(
            [sys.executable, "-c", PUBLISHER],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        out, err = sub.communicate(timeout=60)
    finally:
        for proc in (sub, pub):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert sub.returncode == 0, err
    lines = dict(line.split(" ", 1) for line in out.splitlines())
    frame, *thrust = lines["fans"].split()
    assert frame == "base_link"
    assert [float(x) for x in thrust] == [0.0, 0.005, 0.01, 0.015, 0.02, 0.03, 0.045, 0.06]
    assert lines["tf"].split() == ["kibo", "base_link", "1.25", "1.0"]
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == env["ROS_AUTOMATIC_DISCOVERY_RANGE"]


def test_ament_index_finds_our_packages_with_ros_environment(ros_env: dict[str, str], tmp_path: Path) -> None:
    """ament_index lookups need AMENT_PREFIX_PATH, which ros_environment() provides."""
    code = textwrap.dedent(
        """
        from ament_index_python.packages import get_package_share_directory
        from intball_ros.env import ros_environment
        import os
        os.environ.update(ros_environment())
        print(get_package_share_directory("intball_interfaces"))
        print(get_package_share_directory("tf2_msgs"))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=_clean_env(ros_env), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    shares = [Path(line) for line in result.stdout.split()]
    assert shares == [
        Path(sys.prefix) / "share" / "intball_interfaces",
        Path(sys.prefix) / "share" / "tf2_msgs",
    ]
    assert all((share / "package.xml").is_file() for share in shares)
