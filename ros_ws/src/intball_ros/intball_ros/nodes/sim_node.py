"""Simulator node: PyBullet Kibo + robot, the source of /clock.

A paced loop thread advances the physics in steps of ``1 / physics_rate`` s sim time at
``rate`` x real time and after each step publishes /clock, ground truth and the IMU; camera
images (+ CameraInfo) at their own rates. The latest fan command is applied; if none came
for ``fan_timeout`` s of sim time the fans go to zero (safe state). A simulated bump sensor
publishes on /intball/contact when a contact episode starts (``intball_ros.contact``).
Messages are stamped with sim time; this node itself does not use sim time (it makes it).
"""

from __future__ import annotations

import threading
import time

import numpy as np
from geometry_msgs.msg import WrenchStamped
from intball_interfaces.msg import FanCommand
from nav_msgs.msg import Odometry
from rclpy._rclpy_pybind11 import RCLError
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, Imu

from intball_nav.dynamics import RigidBodyState
from intball_nav.frames import Pose
from intball_nav.module import load_module
from intball_nav.robot import load_robot_params
from intball_ros import contact, convert, names
from intball_ros.nodes import run
from intball_sim.backend import PyBulletBackend
from intball_sim.imu import Imu as ImuModel

MAX_LAG_S = 0.5
"""Wall seconds the loop may fall behind its schedule before it drops the backlog."""


class SimNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__(names.SIM_NODE, **kwargs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._backend: PyBulletBackend | None = None
        param = lambda name, default: self.declare_parameter(name, default).value  # noqa: E731
        self._rate = float(param(names.P_RATE, 1.0))
        self._dt = 1.0 / float(param(names.P_PHYSICS_RATE, 100.0))
        seed = int(param(names.P_SEED, 0))
        self._fan_timeout = float(param(names.P_FAN_TIMEOUT, 0.5))
        cameras = bool(param(names.P_CAMERAS, True))
        cam_rates = {"nav": float(param(names.P_NAV_CAMERA_RATE, 10.0))}
        cam_rates["main"] = float(param(names.P_MAIN_CAMERA_RATE, 5.0))
        initial = list(param(names.P_INITIAL_POSE, [0.0]))
        if self._rate <= 0.0:
            raise ValueError(f"{names.P_RATE} must be > 0, got {self._rate}")

        self._robot = load_robot_params()
        module = load_module()
        # The backend (and its renderer: EGL on Mesa, TinyRenderer fallback) is created on the
        # loop thread, because an EGL context belongs to the thread that made it.
        make_backend = lambda: PyBulletBackend(  # noqa: E731
            self._robot, module, seed=seed, render=cameras, prefer_egl=True, visuals=cameras
        )
        self._imu = ImuModel(seed=seed + 2)
        self._fan = np.zeros(8)
        self._fan_t = -np.inf

        self._clock_pub = self.create_publisher(Clock, names.CLOCK, names.RELIABLE_10)
        self._truth_pub = self.create_publisher(Odometry, names.GROUND_TRUTH, names.RELIABLE_10)
        self._imu_pub = self.create_publisher(Imu, names.IMU, names.SENSOR)
        self._contact_pub = self.create_publisher(WrenchStamped, names.CONTACT, names.RELIABLE_10)
        self._contacts_seen = 0  # backend.collision_count already published
        self.create_subscription(FanCommand, names.FAN_COMMAND, self._on_fan_command, names.RELIABLE_10)
        self._cameras = self._setup_cameras(cam_rates) if cameras else []

        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, args=(make_backend, initial_state(module, initial), ready), daemon=True
        )
        self._thread.start()
        ready.wait()
        if self._backend is None:
            raise RuntimeError("the simulator backend failed to start (see the error above)")
        p = self._backend.state().position
        cams = ", ".join(c[0].name for c in self._cameras)
        self.get_logger().info(
            f"simulating at x{self._rate:g} real time, start {np.round(p, 2).tolist()} m, "
            + (f"cameras on ({self._backend.renderer.kind} renderer): {cams}" if cameras else "cameras off")
        )

    def _setup_cameras(self, rates: dict[str, float]) -> list:
        from intball_sim.camera import load_cameras

        cams = []
        for name, model in load_cameras().items():
            if name not in names.CAMERA_TOPICS:
                continue
            image_topic, info_topic = names.CAMERA_TOPICS[name]
            every = max(1, round(1.0 / (rates["nav" if name in names.NAV_CAMERAS else "main"] * self._dt)))
            image_pub = self.create_publisher(Image, image_topic, names.IMAGES)
            info_pub = self.create_publisher(CameraInfo, info_topic, names.LATCHED)
            cams.append((model, every, image_pub, info_pub))
        return cams

    def _on_fan_command(self, msg: FanCommand) -> None:
        try:
            self._fan = convert.thrust_from_fan_command(msg, self._robot.fan_max)
            self._fan_t = self._backend.sim_time
        except convert.InvalidMessage as exc:
            self.get_logger().warning(f"ignoring fan command: {exc}", throttle_duration_sec=2.0)

    def _loop(self, make_backend, start: RigidBodyState, ready: threading.Event) -> None:
        try:
            backend = make_backend()
            backend.reset(start)
            self._backend = backend
        finally:
            ready.set()
        wall0, sim0, k = time.monotonic(), self._backend.sim_time, 0
        while not self._stop.is_set() and self.context.ok():
            self._tick(k)
            k += 1
            delay = wall0 + (self._backend.sim_time - sim0) / self._rate - time.monotonic()
            if delay > 0.0:
                self._stop.wait(delay)
            elif delay < -MAX_LAG_S:  # cannot keep up: run as fast as possible from here on
                wall0, sim0 = time.monotonic(), self._backend.sim_time

    def _tick(self, k: int) -> None:
        backend = self._backend
        fresh = backend.sim_time - self._fan_t <= self._fan_timeout
        if not fresh and np.isfinite(self._fan_t):
            self.get_logger().warning(f"no fan command for {self._fan_timeout:g} s: fans off (safe state)")
            self._fan_t = -np.inf
        backend.step(self._fan if fresh else np.zeros(8), self._dt)
        t = backend.sim_time
        state = backend.state()
        try:
            self._clock_pub.publish(convert.clock_msg(t))
            self._truth_pub.publish(convert.odometry_from_state(state, t))
            force, omega, alpha = backend.imu_truth()
            sample = self._imu.sample(t, force, omega, alpha, self._dt)
            self._imu_pub.publish(convert.imu_msg(t, sample.specific_force, sample.angular_rate))
            if backend.collision_count > self._contacts_seen:  # a contact episode started: bump sensor
                self._contacts_seen = backend.collision_count
                self._contact_pub.publish(contact.contact_msg(backend.collisions(), t))
            pose = convert.pose_from_state(state)
            for model, every, image_pub, info_pub in self._cameras:
                if k % every == 0:
                    rgb, _depth = backend.renderer.render(model, pose.compose(model.T_base_cam))
                    image_pub.publish(convert.image_from_array(rgb, t, model.frame_id))
                    info_pub.publish(convert.camera_info_from_model(model, t))
        except RCLError as exc:  # e.g. "cannot publish data" under load, or during shutdown
            if self.context.ok() and not self._stop.is_set():
                self.get_logger().warning(f"publish failed: {exc}", throttle_duration_sec=2.0)

    def destroy_node(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        if self._backend is not None:
            self._backend.close()
        super().destroy_node()


def initial_state(module, pose: list[float]) -> RigidBodyState:
    """Start state at rest: ``pose`` = [x, y, z, qx, qy, qz, qw] (kibo), else the clear-volume centre."""
    if len(pose) == 7:
        p = Pose(np.array(pose[:3]), np.array(pose[3:]))
        return RigidBodyState(position=p.position, quat=p.quat)
    return RigidBodyState(position=0.5 * (module.clear_min + module.clear_max))


NODE_CLASS = SimNode


def main() -> None:
    run(SimNode)


if __name__ == "__main__":
    main()
