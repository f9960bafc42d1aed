"""Every ROS name of the stack, defined once: topics, frames, nodes, parameters, QoS.

Nodes, the launcher, the tests and the benchmarks use these constants only; a string
literal naming a topic or parameter anywhere else is a bug. ``docs/interfaces.md`` is the
human-readable table of the same names.
"""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

from intball_nav.estimation.health import LOSS_RESPONSES as _LOSS_RESPONSES
from intball_nav.frames import BASE_FRAME, KIBO_FRAME

# --- frames (ids come from intball_nav.frames; camera frame ids from cameras.yaml) -------
WORLD_FRAME = KIBO_FRAME
BODY_FRAME = BASE_FRAME

# --- topics -----------------------------------------------------------------------------
NS = "/intball"
GOAL_POSE = f"{NS}/goal_pose"  # geometry_msgs/PoseStamped, kibo frame
ODOMETRY = f"{NS}/odometry"  # nav_msgs/Odometry, state estimate
GROUND_TRUTH = f"{NS}/ground_truth"  # nav_msgs/Odometry, simulator truth
IMU = f"{NS}/imu"  # sensor_msgs/Imu, base_link
NAV_LEFT_IMAGE = f"{NS}/nav_camera/left/image_raw"  # sensor_msgs/Image rgb8
NAV_LEFT_INFO = f"{NS}/nav_camera/left/camera_info"  # sensor_msgs/CameraInfo
NAV_RIGHT_IMAGE = f"{NS}/nav_camera/right/image_raw"
NAV_RIGHT_INFO = f"{NS}/nav_camera/right/camera_info"
MAIN_IMAGE = f"{NS}/main_camera/image_raw"
MAIN_INFO = f"{NS}/main_camera/camera_info"
CAMERA_TOPICS = {  # camera name in cameras.yaml -> (image topic, camera_info topic)
    "nav_left": (NAV_LEFT_IMAGE, NAV_LEFT_INFO),
    "nav_right": (NAV_RIGHT_IMAGE, NAV_RIGHT_INFO),
    "main": (MAIN_IMAGE, MAIN_INFO),
}
NAV_CAMERAS = ("nav_left", "nav_right")
WRENCH_COMMAND = f"{NS}/wrench_command"  # geometry_msgs/WrenchStamped, base_link
FAN_COMMAND = f"{NS}/fan_command"  # intball_interfaces/FanCommand
GUIDANCE_STATUS = f"{NS}/guidance/status"  # intball_interfaces/GuidanceStatus
CLOCK = "/clock"  # rosgraph_msgs/Clock
TF = "/tf"  # tf2_msgs/TFMessage, kibo -> base_link (estimate)
LOCALIZATION_HEALTH = f"{NS}/localization/health"  # intball_interfaces/LocalizationHealth
# navigation node (#4): autonomy, actions, services
MODE = f"{NS}/mode"  # intball_interfaces/RobotMode, >= 1 Hz + on change
BATTERY = f"{NS}/battery"  # sensor_msgs/BatteryState, >= 1 Hz
DIAGNOSTICS = "/diagnostics"  # diagnostic_msgs/DiagnosticArray, one status per fault
CONTROL_COMMAND = f"{NS}/control/command"  # intball_interfaces/ControlCommand, nav -> control
CONTACT = f"{NS}/contact"  # geometry_msgs/WrenchStamped, kibo: bump sensor (simulated), one per new contact
KEEP_OUT_ZONES = f"{NS}/keep_out_zones"  # intball_interfaces/KeepOutZones, latched
SNAPSHOT_IMAGE = f"{NS}/main_camera/snapshot"  # sensor_msgs/Image, one per snapshot (camera_task)
NAVIGATE_TO = f"{NS}/navigate_to"  # action intball_interfaces/NavigateTo
FOLLOW_ROUTE = f"{NS}/follow_route"  # action intball_interfaces/FollowRoute
DOCK = f"{NS}/dock"  # action intball_interfaces/Dock
UNDOCK = f"{NS}/undock"  # action intball_interfaces/Undock
CAMERA_TASK = f"{NS}/camera_task"  # action intball_interfaces/CameraTask
STOP = f"{NS}/stop"  # std_srvs/Trigger: come to rest and hold
EMERGENCY_STOP = f"{NS}/emergency_stop"  # std_srvs/Trigger: fans to the safe state (off)
STATION_KEEP = f"{NS}/station_keep"  # std_srvs/Trigger: hold here (also re-arms after an emergency stop)
RESET = f"{NS}/reset"  # std_srvs/Trigger: emergency_stop -> idle, faulted -> station keeping
ROUTE_PAUSE = f"{NS}/route/pause"  # std_srvs/SetBool: true = pause the route, false = resume
ADD_KEEP_OUT = f"{NS}/keep_out/add"  # intball_interfaces/AddKeepOut
REMOVE_KEEP_OUT = f"{NS}/keep_out/remove"  # intball_interfaces/RemoveKeepOut
RECORD_TOPICS = (  # default topic set of `intball record`
    IMU,
    NAV_LEFT_IMAGE,
    NAV_LEFT_INFO,
    NAV_RIGHT_IMAGE,
    NAV_RIGHT_INFO,
    GROUND_TRUTH,
    ODOMETRY,
    LOCALIZATION_HEALTH,
    GUIDANCE_STATUS,
    FAN_COMMAND,
)

# --- nodes (names as they appear in the graph and in launcher output) -------------------
SIM_NODE = "intball_sim"
ESTIMATOR_NODE = "intball_estimator"
CONTROL_NODE = "intball_control"
TOUR_NODE = "intball_tour"
RECORD_NODE = "intball_record"
BRIDGE_NODE = "intball_bridge"  # onboard end of the ground link + the ground station server (#5)
NAV_NODE = "intball_nav"

# --- parameters -------------------------------------------------------------------------
P_USE_SIM_TIME = "use_sim_time"  # rclpy built-in
# sim_node
P_RATE = "rate"  # real-time factor target (sim seconds per wall second)
P_PHYSICS_RATE = "physics_rate"  # Hz of published state (clock, ground truth, IMU)
P_CAMERAS = "cameras"  # bool, render and publish camera images
P_NAV_CAMERA_RATE = "nav_camera_rate"  # Hz sim time
P_MAIN_CAMERA_RATE = "main_camera_rate"  # Hz sim time
P_SEED = "seed"  # int, seeds simulator noise
P_FAN_TIMEOUT = "fan_timeout"  # s sim time without a fan command -> fans off
P_INITIAL_POSE = "initial_pose"  # [x, y, z, qx, qy, qz, qw], kibo frame
# estimator_node
P_LOCALIZATION = "localization"  # vision | truth-noise | truth
P_FEATURES = "features"  # bool, vision mode: natural-feature localizer (needs the feature map)
P_HEALTH_RATE = "health_rate"  # Hz sim time of periodic localization health (+ one per change)
# control_node
P_CONTROL_RATE = "control_rate"  # Hz sim time
P_FLIGHT_MODE = "flight_mode"  # nominal | precision | quiet
P_STATUS_RATE = "status_rate"  # Hz sim time
P_HEALTH_TIMEOUT = "health_timeout"  # s sim time without localization health -> treated as lost
P_LOSS_RESPONSE = "loss_response"  # hold | search (LOSS_RESPONSES): what the controller does when lost
P_SEARCH_RATE = "search_rate"  # rad/s, loss_response search: turn rate in place about body z
P_SEARCH_MAX_S = "search_max_s"  # s sim time, loss_response search: longest search, then fans off
# nav_node
P_DATA_DIR = "data_dir"  # camera_task output directory (snapshots, recordings)
P_WATCHDOG_TIMEOUT = "watchdog_timeout"  # s sim time, message age that trips the watchdog faults
P_BATTERY_LEVEL = "battery_level"  # 0..1, initial state of charge; may be set at run time (tests, demos)
# tour_node
P_TOUR_FILE = "tour_file"  # path to a mission YAML (intball_nav.mission format)
P_EXIT_WHEN_DONE = "exit_when_done"  # bool, the tour node exits 0 after the last waypoint

# bridge_node (ground station, #5)
P_UI_HOST = "ui_host"  # bind address of the ground station server (default 127.0.0.1)
P_UI_PORT = "ui_port"  # its port (default 8080; 0 = any free port)
P_UI_USERS = "ui_users"  # credentials YAML ("" = one-run demo tokens, printed)
P_LINK_PROFILE = "link_profile"  # ideal | iss-nominal | iss-degraded | los-heavy | a YAML path
P_LINK_SEED = "link_seed"  # int, seeds the link emulator
P_STATION_KEEP_AFTER = "station_keep_after_s"  # s without ground contact -> station keep
P_RETURN_TO_DOCK_AFTER = "return_to_dock_after_s"  # s without ground contact -> return to dock

LOCALIZATION_VISION = "vision"  # visual-inertial pipeline (intball_nav.estimation.visual_localizer)
LOCALIZATION_MODES = (LOCALIZATION_VISION, "truth-noise", "truth")
HEALTH_LEVELS = ("ok", "degraded", "lost", "initialising")  # LocalizationHealth.level
LOSS_RESPONSES = _LOSS_RESPONSES  # values of loss_response (intball_nav.estimation.health)

# --- QoS --------------------------------------------------------------------------------
RELIABLE_10 = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
"""Commands, goals, status, odometry, tf: reliable, volatile, keep last 10."""
LATCHED = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
"""Camera info: reliable, transient local (late joiners get the last one)."""
SENSOR = qos_profile_sensor_data
"""IMU: best effort, keep last 5 (subscribe with the same profile)."""
SENSOR_DEEP = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=200, reliability=ReliabilityPolicy.BEST_EFFORT
)
"""IMU into the visual-inertial estimator: best effort, keep last 200 (2 s at 100 Hz), so no sample
is dropped while a navigation frame is processed or the process is descheduled."""
IMAGES = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=2, reliability=ReliabilityPolicy.RELIABLE)
"""Images: reliable keep last 2 (best effort loses most large messages with default Fast DDS)."""
CLOCK_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
"""/clock as rclpy's TimeSource subscribes to it (best effort, depth 1)."""
