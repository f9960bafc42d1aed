"""Message <-> core-type conversions: the only module that builds or reads ROS messages' fields.

Names follow ``x_from_y``: ``pose_from_msg`` reads a message, ``msg_from_pose`` builds one.
Incoming commands are validated here; a bad one raises :class:`InvalidMessage` whose text
is the reason reported to the operator (nodes catch it, log it and publish it).

Velocity conventions: ``RigidBodyState.velocity`` is in the kibo frame, but
``nav_msgs/Odometry.twist`` is in ``child_frame_id`` (REP-105), so linear velocity is rotated
into the body frame on the way out and back into kibo on the way in. ``omega`` is body
frame on both sides.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import (
    Point,
    PoseStamped,
    Quaternion,
    TransformStamped,
    Vector3,
    WrenchStamped,
)
from geometry_msgs.msg import Pose as PoseMsg
from intball_interfaces.msg import ControlCommand, FanCommand, GuidanceStatus, LocalizationHealth
from nav_msgs.msg import Odometry
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, Imu
from std_msgs.msg import Header

from intball_nav.dynamics import RigidBodyState
from intball_nav.estimation.health import HealthLevel, HealthStatus
from intball_nav.frames import Pose, quat_conjugate, quat_normalize, quat_rotate, rotmat_from_quat
from intball_ros import names


class InvalidMessage(ValueError):
    """An incoming message cannot be used; ``str(exc)`` is the reason for the operator."""


# --- time -------------------------------------------------------------------------------
def stamp_from_time(t: float) -> Time:
    """builtin_interfaces/Time of t : s (sim time, >= 0)."""
    ns = int(round(t * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def time_from_stamp(stamp: Time) -> float:
    """Seconds (float) of a builtin_interfaces/Time."""
    return stamp.sec + stamp.nanosec * 1e-9


def header(t: float, frame_id: str) -> Header:
    return Header(stamp=stamp_from_time(t), frame_id=frame_id)


def clock_msg(t: float) -> Clock:
    return Clock(clock=stamp_from_time(t))


# --- vectors, poses ---------------------------------------------------------------------
def _vec3(msg: Point | Vector3) -> np.ndarray:
    return np.array([msg.x, msg.y, msg.z], dtype=float)


def _point(v: Sequence[float]) -> Point:
    return Point(x=float(v[0]), y=float(v[1]), z=float(v[2]))


def _vector3(v: Sequence[float]) -> Vector3:
    return Vector3(x=float(v[0]), y=float(v[1]), z=float(v[2]))


def _quaternion(q: Sequence[float]) -> Quaternion:
    return Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3]))


def msg_from_pose(pose: Pose) -> PoseMsg:
    return PoseMsg(position=_point(pose.position), orientation=_quaternion(pose.quat))


def pose_from_msg(msg: PoseMsg) -> Pose:
    """Validated Pose of a geometry_msgs/Pose; raises InvalidMessage with the reason."""
    p = _vec3(msg.position)
    o = msg.orientation
    q = np.array([o.x, o.y, o.z, o.w], dtype=float)
    if not np.all(np.isfinite(p)):
        raise InvalidMessage(f"position {p.tolist()} is not finite")
    if not np.all(np.isfinite(q)):
        raise InvalidMessage(f"orientation {q.tolist()} is not finite")
    norm = float(np.linalg.norm(q))
    if norm < 1e-6:
        raise InvalidMessage(f"orientation {q.tolist()} cannot be normalized (norm {norm:.3g})")
    if abs(norm - 1.0) > 0.1:
        raise InvalidMessage(f"orientation norm {norm:.3f} is not ~1: not a unit quaternion")
    return Pose(p, quat_normalize(q))


def goal_from_msg(msg: PoseStamped, frame_id: str = names.WORLD_FRAME) -> Pose:
    """Goal pose (kibo frame) of a PoseStamped; rejects other frames, NaN/inf, bad quaternions."""
    if msg.header.frame_id != frame_id:
        raise InvalidMessage(f"goal frame_id {msg.header.frame_id!r} is not {frame_id!r}")
    return pose_from_msg(msg.pose)


def point_from_msg(msg: Point, what: str = "point") -> np.ndarray:
    """(3,) m of a geometry_msgs/Point; InvalidMessage when not finite."""
    p = _vec3(msg)
    if not np.all(np.isfinite(p)):
        raise InvalidMessage(f"{what} must be 3 finite numbers, got {p.tolist()}")
    return p


def control_command_msg(
    goal: Pose, flight_mode: str, t: float, look_at: np.ndarray | None = None
) -> ControlCommand:
    """ControlCommand ``goal``; with ``look_at`` ((3,) m, kibo) the camera is kept on that point."""
    msg = ControlCommand(header=header(t, names.WORLD_FRAME), command="goal")
    msg.goal, msg.flight_mode = msg_from_pose(goal), flight_mode
    if look_at is not None:
        msg.look_at_enabled, msg.look_at = True, _point(look_at)
    return msg


def look_at_from_command(msg: ControlCommand) -> np.ndarray | None:
    """(3,) m kibo look-at point of a ControlCommand, None when not enabled (InvalidMessage: not finite)."""
    return point_from_msg(msg.look_at, "look_at") if msg.look_at_enabled else None


def pose_stamped_from_pose(pose: Pose, t: float, frame_id: str = names.WORLD_FRAME) -> PoseStamped:
    return PoseStamped(header=header(t, frame_id), pose=msg_from_pose(pose))


def transform_from_pose(pose: Pose, t: float, parent: str, child: str) -> TransformStamped:
    """TransformStamped T_parent_child (the pose of child in parent)."""
    msg = TransformStamped(header=header(t, parent), child_frame_id=child)
    msg.transform.translation = _vector3(pose.position)
    msg.transform.rotation = _quaternion(pose.quat)
    return msg


def pose_from_transform(msg: TransformStamped) -> Pose:
    tr, r = msg.transform.translation, msg.transform.rotation
    return Pose(_vec3(tr), np.array([r.x, r.y, r.z, r.w]))


# --- rigid body state <-> odometry -------------------------------------------------------
def odometry_from_state(
    state: RigidBodyState,
    t: float,
    frame_id: str = names.WORLD_FRAME,
    child_frame_id: str = names.BODY_FRAME,
    covariance: np.ndarray | None = None,
) -> Odometry:
    """nav_msgs/Odometry of a RigidBodyState (velocity kibo -> body frame, omega body).

    covariance : optional (6,6) pose covariance of the core, [dp m kibo, dtheta rad body]; it is
    rotated to the message convention (both blocks in ``frame_id`` = kibo). Without it the pose
    covariance is all zero (truth modes); the twist covariance is not estimated (all zero).
    """
    msg = Odometry(header=header(t, frame_id), child_frame_id=child_frame_id)
    if covariance is not None:
        msg.pose.covariance = ros_pose_covariance(covariance, state.quat).ravel()
    msg.pose.pose.position = _point(state.position)
    msg.pose.pose.orientation = _quaternion(state.quat)
    v_body = quat_rotate(quat_conjugate(np.asarray(state.quat)), state.velocity)
    msg.twist.twist.linear = _vector3(v_body)
    msg.twist.twist.angular = _vector3(state.omega)
    return msg


def state_from_odometry(msg: Odometry) -> RigidBodyState:
    """RigidBodyState of a nav_msgs/Odometry (twist in child frame -> kibo velocity)."""
    pose = pose_from_msg(msg.pose.pose)
    v_body = _vec3(msg.twist.twist.linear)
    omega = _vec3(msg.twist.twist.angular)
    if not (np.all(np.isfinite(v_body)) and np.all(np.isfinite(omega))):
        raise InvalidMessage("odometry twist is not finite")
    return RigidBodyState(
        position=pose.position, quat=pose.quat, velocity=quat_rotate(pose.quat, v_body), omega=omega
    )


def ros_pose_covariance(covariance: np.ndarray, quat: np.ndarray) -> np.ndarray:
    """(6,6) [dp m kibo, dtheta rad kibo] of a core pose covariance [dp m kibo, dtheta rad body]
    at attitude quat (4,) xyzw q_kibo_body: J P J^T with J = diag(I, R_kibo_body)."""
    J = np.eye(6)
    J[3:, 3:] = rotmat_from_quat(np.asarray(quat, dtype=float))
    return J @ np.asarray(covariance, dtype=float).reshape(6, 6) @ J.T


def pose_from_state(state: RigidBodyState) -> Pose:
    return Pose(np.asarray(state.position), np.asarray(state.quat))


# --- sensors ----------------------------------------------------------------------------
def imu_msg(t: float, accel: np.ndarray, gyro: np.ndarray, frame_id: str = names.BODY_FRAME) -> Imu:
    """sensor_msgs/Imu: accel (3,) m/s^2 specific force, gyro (3,) rad/s, both body frame.

    Orientation is not measured: covariance[0] = -1 (REP-145).
    """
    msg = Imu(header=header(t, frame_id))
    msg.linear_acceleration = _vector3(accel)
    msg.angular_velocity = _vector3(gyro)
    msg.orientation_covariance[0] = -1.0
    return msg


def imu_from_msg(msg: Imu) -> tuple[float, np.ndarray, np.ndarray]:
    """(t s, gyro (3,) rad/s body, accel (3,) m/s^2 body specific force) of a sensor_msgs/Imu."""
    gyro, accel = _vec3(msg.angular_velocity), _vec3(msg.linear_acceleration)
    if not (np.all(np.isfinite(gyro)) and np.all(np.isfinite(accel))):
        raise InvalidMessage("IMU sample is not finite")
    return time_from_stamp(msg.header.stamp), gyro, accel


def image_from_array(rgb: np.ndarray, t: float, frame_id: str) -> Image:
    """sensor_msgs/Image (rgb8) of rgb : (H, W, 3) uint8 (or (H, W, 4) rgba: alpha dropped)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        raise ValueError(f"image must be (H, W, 3|4), got {rgb.shape}")
    rgb = np.ascontiguousarray(rgb[:, :, :3], dtype=np.uint8)
    h, w = rgb.shape[:2]
    msg = Image(header=header(t, frame_id), height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3)
    msg.data = rgb.tobytes()
    return msg


def array_from_image(msg: Image) -> np.ndarray:
    """(H, W, 3) uint8 view of an rgb8 sensor_msgs/Image."""
    if msg.encoding != "rgb8":
        raise InvalidMessage(f"image encoding {msg.encoding!r} is not rgb8")
    return np.frombuffer(msg.data, dtype=np.uint8).reshape(msg.height, msg.step // 3, 3)[:, : msg.width]


def gray_from_image(msg: Image) -> np.ndarray:
    """(H, W) uint8 gray image of an rgb8 sensor_msgs/Image (cv2 RGB2GRAY weights, as the
    headless vision loop converts its renders)."""
    import cv2

    if msg.width * msg.height == 0 or len(msg.data) < msg.step * msg.height or msg.step < 3 * msg.width:
        raise InvalidMessage(f"image {msg.width}x{msg.height} step {msg.step} has {len(msg.data)} bytes")
    return cv2.cvtColor(np.ascontiguousarray(array_from_image(msg)), cv2.COLOR_RGB2GRAY)


def camera_info_msg(info, t: float) -> CameraInfo:
    """sensor_msgs/CameraInfo of an ``intball_sim.camera.CameraInfo`` (K, D, R, P, size, frame)."""
    msg = CameraInfo(header=header(t, info.frame_id), width=int(info.width), height=int(info.height))
    msg.distortion_model = info.distortion_model
    msg.d = [float(x) for x in np.ravel(info.D)]
    msg.k = np.asarray(info.K, dtype=float).ravel()
    msg.r = np.asarray(info.R, dtype=float).ravel()
    msg.p = np.asarray(info.P, dtype=float).ravel()
    return msg


def camera_info_from_model(model, t: float) -> CameraInfo:
    """sensor_msgs/CameraInfo of an ``intball_sim.camera.CameraModel`` (P[0,3] = Tx for stereo)."""
    from intball_sim.camera import camera_info

    return camera_info_msg(camera_info(model), t)


# --- commands ---------------------------------------------------------------------------
def fan_command_msg(thrust: np.ndarray, t: float) -> FanCommand:
    """intball_interfaces/FanCommand of thrust : (8,) N."""
    thrust = np.asarray(thrust, dtype=float)
    if thrust.shape != (8,):
        raise ValueError(f"fan thrust must have shape (8,), got {thrust.shape}")
    return FanCommand(header=header(t, names.BODY_FRAME), thrust=thrust)


def thrust_from_fan_command(msg: FanCommand, fan_max: float = math.inf) -> np.ndarray:
    """(8,) N of a FanCommand; raises InvalidMessage on NaN/inf, clips to [0, fan_max]."""
    thrust = np.asarray(msg.thrust, dtype=float)
    if thrust.shape != (8,) or not np.all(np.isfinite(thrust)):
        raise InvalidMessage(f"fan command {thrust.tolist()} is not 8 finite numbers")
    return np.clip(thrust, 0.0, fan_max)


def wrench_msg(wrench: np.ndarray, t: float, frame_id: str = names.BODY_FRAME) -> WrenchStamped:
    """geometry_msgs/WrenchStamped of wrench : (6,) [force N; torque N m], body frame."""
    msg = WrenchStamped(header=header(t, frame_id))
    msg.wrench.force = _vector3(wrench[:3])
    msg.wrench.torque = _vector3(wrench[3:6])
    return msg


def guidance_status_msg(status, t: float, flight_mode: str, goal: Pose | None) -> GuidanceStatus:
    """intball_interfaces/GuidanceStatus of an ``intball_nav.gnc.GncStatus`` plus mode and goal."""
    msg = GuidanceStatus(
        header=header(t, names.WORLD_FRAME), state=str(status.state), flight_mode=flight_mode
    )
    if goal is not None:
        msg.goal = msg_from_pose(goal)
    msg.position_error = float(status.position_error)
    msg.attitude_error = float(status.attitude_error)
    msg.arrived = bool(status.arrived)
    msg.message = str(status.message)
    return msg


def paused_status_msg(message: str, t: float, flight_mode: str, goal: Pose | None) -> GuidanceStatus:
    """GuidanceStatus while the loss-of-localization response holds the mission (state
    'paused', ``message`` names the response mode and the health reason)."""
    msg = GuidanceStatus(header=header(t, names.WORLD_FRAME), state="paused", flight_mode=flight_mode)
    if goal is not None:
        msg.goal = msg_from_pose(goal)
    msg.position_error = math.nan
    msg.attitude_error = math.nan
    msg.message = message
    return msg


def goal_from_status(msg: GuidanceStatus) -> Pose | None:
    """Goal pose of a GuidanceStatus, None if it carries none (all-zero quaternion)."""
    try:
        return pose_from_msg(msg.goal)
    except InvalidMessage:
        return None


def rejection_status_msg(
    reason: str, t: float, flight_mode: str = "", goal: Pose | None = None
) -> GuidanceStatus:
    """GuidanceStatus reporting a rejected goal (state 'rejected', message = the reason)."""
    msg = GuidanceStatus(header=header(t, names.WORLD_FRAME), state="rejected", flight_mode=flight_mode)
    if goal is not None:
        msg.goal = msg_from_pose(goal)
    msg.position_error = math.nan
    msg.attitude_error = math.nan
    msg.message = f"goal rejected: {reason}"
    return msg


# --- localization health -----------------------------------------------------------------
INITIALISING = "initialising"
"""LocalizationHealth.level before the first estimate (the core's LOST, "not initialised")."""


def health_msg(
    t: float,
    health: HealthStatus,
    *,
    initialised: bool = True,
    markers_used: int = 0,
    features_used: int = 0,
    position_std: float = math.nan,
    attitude_std: float = math.nan,
    time_since_update: float = math.inf,
    rejected: int = 0,
) -> LocalizationHealth:
    """intball_interfaces/LocalizationHealth of a core HealthStatus (level ok | degraded | lost,
    or ``initialising`` when there is no estimate yet) and the filter figures (m, rad, s)."""
    level = HealthLevel(health.level).name.lower() if initialised else INITIALISING
    return LocalizationHealth(
        header=header(t, names.WORLD_FRAME),
        level=level,
        reason=str(health.reason),
        markers_used=int(markers_used),
        features_used=int(features_used),
        position_std=float(position_std),
        attitude_std=float(attitude_std),
        time_since_update=float(time_since_update),
        rejected=int(rejected),
    )


def health_from_msg(msg: LocalizationHealth) -> HealthStatus:
    """Core HealthStatus of a LocalizationHealth (``initialising`` is LOST); raises InvalidMessage
    on an unknown level."""
    if msg.level == INITIALISING:
        return HealthStatus(HealthLevel.LOST, msg.reason or "not initialised")
    try:
        level = HealthLevel[msg.level.upper()]
    except KeyError:
        raise InvalidMessage(f"unknown localization health level {msg.level!r}") from None
    return HealthStatus(level, msg.reason)


# --- navigation node: mode, battery, diagnostics, keep-out zones ---------------------------
def robot_mode_msg(mode: str, detail: str, t: float):
    """intball_interfaces/RobotMode (mode name of ``intball_nav.autonomy.modes.Mode``)."""
    from intball_interfaces.msg import RobotMode

    return RobotMode(stamp=stamp_from_time(t), mode=str(mode), detail=str(detail))


def battery_msg(level: float, t: float, mode: str):
    """sensor_msgs/BatteryState of the model's state of charge level (fraction 0..1); charging
    while docked (``mode``), other electrical fields unknown (NaN)."""
    from sensor_msgs.msg import BatteryState

    msg = BatteryState(header=header(t, names.BODY_FRAME))
    msg.percentage = float(level)
    for field in ("voltage", "temperature", "current", "charge", "capacity", "design_capacity"):
        setattr(msg, field, math.nan)
    docked = str(mode) == "docked"
    msg.power_supply_status = (
        BatteryState.POWER_SUPPLY_STATUS_CHARGING if docked else BatteryState.POWER_SUPPLY_STATUS_DISCHARGING
    )
    msg.power_supply_technology = BatteryState.POWER_SUPPLY_TECHNOLOGY_LION
    msg.present = True
    return msg


def diagnostics_msg(faults, t: float):
    """diagnostic_msgs/DiagnosticArray: one status per active ``autonomy.faults.Fault`` (name
    ``intball/<source>``, level = severity, message = the text, values code and response), or one
    OK status ``intball/autonomy`` when there is none."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    msg = DiagnosticArray(header=header(t, names.WORLD_FRAME))
    for f in faults:
        msg.status.append(
            DiagnosticStatus(
                level=bytes([int(f.severity)]),
                name=f"intball/{f.source}",
                message=f.text,
                hardware_id="intball",
                values=[KeyValue(key="code", value=f.code), KeyValue(key="response", value=str(f.response))],
            )
        )
    if not faults:
        msg.status.append(
            DiagnosticStatus(
                level=bytes([0]), name="intball/autonomy", message="no fault", hardware_id="intball"
            )
        )
    return msg


def keep_out_zones_msg(zones, fixed: set[str], t: float):
    """intball_interfaces/KeepOutZones of boxes (min, max m, kibo, name); ``fixed`` names."""
    from intball_interfaces.msg import KeepOutZone, KeepOutZones

    msg = KeepOutZones(header=header(t, names.WORLD_FRAME))
    for z in zones:
        msg.zones.append(
            KeepOutZone(name=z.name, min=_point(z.min), max=_point(z.max), fixed=z.name in fixed)
        )
    return msg


def zones_from_keep_out_zones(msg) -> list[dict]:
    """The zones of a KeepOutZones message as the ground station's ``keep_out`` telemetry: one
    ``{"name", "min", "max", "fixed"}`` dict per zone (min, max : 3 floats, m, kibo frame).

    Not validated here: the ground station's ``Workspace.with_zones`` checks every zone."""
    return [
        {"name": z.name, "min": _vec3(z.min).tolist(), "max": _vec3(z.max).tolist(), "fixed": bool(z.fixed)}
        for z in msg.zones
    ]


def keep_out_from_box(box):
    """intball_interfaces/AddKeepOut request of a ``safety.Box`` (name, min, max m, kibo frame)."""
    from intball_interfaces.srv import AddKeepOut

    return AddKeepOut.Request(name=box.name, min=_point(box.min), max=_point(box.max))


def box_from_keep_out(req):
    """safety.Box of an AddKeepOut request; raises ValueError naming the field (name, a
    non-finite ``min.x`` .. ``max.z``, or an axis where min is not below max)."""
    from intball_nav.safety import Box

    name = str(req.name).strip()
    if not name:
        raise ValueError("the zone needs a name")
    lo, hi = _vec3(req.min), _vec3(req.max)
    for field, v in (("min", lo), ("max", hi)):
        for axis, x in zip("xyz", v, strict=True):
            if not math.isfinite(x):
                raise ValueError(f"zone {name!r}: {field}.{axis} = {x} must be a finite number (m)")
    for axis, a, b in zip("xyz", lo, hi, strict=True):
        if a >= b:
            raise ValueError(f"zone {name!r}: min.{axis} = {a:g} m must be below max.{axis} = {b:g} m")
    return Box(lo, hi, name)
