"""Navigation node: the autonomy supervisor (modes, battery, faults, docking) over the control node.

``intball_nav.autonomy.supervisor.tick`` runs on a 50 Hz sim-time timer on the state estimate
(``/intball/odometry``; ground truth never reaches this node) and the bump sensor
(``/intball/contact``: a contact -> collision fault -> faulted, stop and hold). Its GNC state
is the goal the robot should fly: whenever that goal (or the emergency stop) changes, it is sent
to the control node on ``/intball/control/command``, which flies it. Arrival, docking stages
and faults are judged here on the estimate with the same ``intball_nav.gnc`` functions the
control node runs.

Services (``std_srvs/Trigger``: stop, emergency_stop, station_keep, reset; keep-out zones;
route pause) are answered at once by ``handle_request`` (microseconds). Nothing in the node
blocks: actions (``nav_actions.NavActions``) are coroutines woken by the tick, path planning runs
in a worker thread, so a service waits at most for the callback running at that moment (the node
spins one single-threaded executor; its callback groups also allow a multi-threaded one).

This file holds the wiring (parameters, publishers, subscriptions, timer); the inputs are
``nav_inputs``, the loop ``nav_supervisor``, the services ``nav_services``, the actions
``nav_actions`` over ``goals`` and ``flight`` (+ ``route_actions``, ``dock_actions``: the dock
marker in the left nav camera while docking, ``camera_task`` over ``camera_images``).
See docs/interfaces.md and docs/autonomy.md.
"""

from __future__ import annotations

import math
import os
import threading
from collections import deque
from dataclasses import replace
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import WrenchStamped
from intball_interfaces.msg import (
    ControlCommand,
    FanCommand,
    GuidanceStatus,
    KeepOutZones,
    LocalizationHealth,
    RobotMode,
)
from intball_interfaces.srv import AddKeepOut, RemoveKeepOut
from nav_msgs.msg import Odometry
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.task import Future
from sensor_msgs.msg import BatteryState, Image
from std_srvs.srv import SetBool, Trigger

from intball_nav import gnc, safety
from intball_nav.autonomy import supervisor as sup
from intball_nav.autonomy.battery import BatteryState as CoreBattery
from intball_nav.autonomy.modes import Event
from intball_nav.autonomy.params import load_autonomy_params
from intball_nav.flight_modes import load_flight_modes
from intball_nav.module import load_module
from intball_ros import names
from intball_ros.keep_out import Zones
from intball_ros.nav_actions import NavActions
from intball_ros.nav_inputs import NavInputs
from intball_ros.nav_services import NavServices
from intball_ros.nav_supervisor import SupervisorLoop

STREAMS = ("odometry", "fan_command")  # watched here (the IMU is the estimator's input: odometry covers it)


class NavNode(NavInputs, NavActions, SupervisorLoop, NavServices, Node):
    def __init__(self, **kwargs) -> None:
        super().__init__(names.NAV_NODE, **kwargs)
        self._rate = float(self.declare_parameter(names.P_CONTROL_RATE, 50.0).value)
        self._default_mode = str(self.declare_parameter(names.P_FLIGHT_MODE, "nominal").value)
        default_dir = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local/share")) / "intball/camera"
        self._data_dir = Path(str(self.declare_parameter(names.P_DATA_DIR, str(default_dir)).value))
        level = float(self.declare_parameter(names.P_BATTERY_LEVEL, 1.0).value)
        watchdog = float(self.declare_parameter(names.P_WATCHDOG_TIMEOUT, 0.5).value)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._module = load_module()
        params = gnc.GncParams.default()
        autonomy = load_autonomy_params(module=self._module, radius=params.robot.radius)
        faults = replace(autonomy.faults, watchdog=dict.fromkeys(STREAMS, watchdog))
        self._ctx = sup.Context(
            replace(autonomy, faults=faults),
            params,
            load_flight_modes(),
            safety.keep_in_from_module(self._module),
        )
        self._zones = Zones.from_module(self._module, params.robot.radius)
        self._auto = sup.AutonomyState(battery=CoreBattery(min(max(level, 0.0), 1.0)))
        self._lock = threading.RLock()
        self._waiters: list[Future] = []
        self._odom_msg = self._converted = self._estimate_cache = self._fan_msg = None
        self._health = None  # HealthStatus once the estimator has initialised
        self._seen = dict.fromkeys(STREAMS)  # stream -> control tick of its last message
        self._ticks = 0
        self._sent_goal = None  # the supervisor goal last sent to the control node (identity)
        self._fans_off_sent = False
        self._last_reason = "start-up"
        self._last_mode_pub = -math.inf
        self._faults_key = None
        self._image = None  # latest main camera image message
        self._odom_history = deque(maxlen=300)  # (stamp s, Odometry) of the last 3 s: pose at image stamps
        self._sent_positions = deque(maxlen=20)  # (3,) m of the goals last sent to the controller
        self._foreign_since = None  # s sim time since when the controller flies a goal not ours
        self._guidance_t = 0.0
        self._bumps = []  # CollisionReports from the bump sensor since the last tick
        services = MutuallyExclusiveCallbackGroup()
        self._actions_group = ReentrantCallbackGroup()
        self._command_pub = self.create_publisher(ControlCommand, names.CONTROL_COMMAND, names.RELIABLE_10)
        self._mode_pub = self.create_publisher(RobotMode, names.MODE, names.LATCHED)
        self._battery_pub = self.create_publisher(BatteryState, names.BATTERY, names.RELIABLE_10)
        self._diag_pub = self.create_publisher(DiagnosticArray, names.DIAGNOSTICS, names.RELIABLE_10)
        self._zones_pub = self.create_publisher(KeepOutZones, names.KEEP_OUT_ZONES, names.LATCHED)
        self._snapshot_pub = self.create_publisher(Image, names.SNAPSHOT_IMAGE, names.IMAGES)
        sub = self.create_subscription
        sub(Odometry, names.ODOMETRY, self._on_odometry, names.RELIABLE_10)
        sub(FanCommand, names.FAN_COMMAND, self._on_fans, names.RELIABLE_10)
        sub(LocalizationHealth, names.LOCALIZATION_HEALTH, self._on_health, names.RELIABLE_10)
        sub(GuidanceStatus, names.GUIDANCE_STATUS, self._on_guidance, names.RELIABLE_10)
        sub(WrenchStamped, names.CONTACT, self._on_contact, names.RELIABLE_10)
        sub(Image, names.MAIN_IMAGE, self._on_image, names.IMAGES, callback_group=self._actions_group)
        for name, event in (
            (names.STOP, Event.STOP),
            (names.EMERGENCY_STOP, Event.EMERGENCY_STOP),
            (names.STATION_KEEP, Event.STATION_KEEP),
            (names.RESET, Event.RESET),
        ):
            cb = lambda req, res, e=event: self._on_trigger(e, res)  # noqa: E731
            self.create_service(Trigger, name, cb, callback_group=services)
        self.create_service(SetBool, names.ROUTE_PAUSE, self._on_pause, callback_group=services)
        self.create_service(AddKeepOut, names.ADD_KEEP_OUT, self._on_add_zone, callback_group=services)
        self.create_service(
            RemoveKeepOut, names.REMOVE_KEEP_OUT, self._on_remove_zone, callback_group=services
        )
        self.create_timer(1.0 / self._rate, self._on_tick, callback_group=MutuallyExclusiveCallbackGroup())
        self._init_actions()
        self._init_dock()
        self._set_zones(self._zones)
        self.get_logger().info(
            f"navigation at {self._rate:g} Hz sim time, battery {100 * level:.0f} %, data in {self._data_dir}"
        )


NODE_CLASS = NavNode


def main() -> None:
    from intball_ros.nodes import run

    run(NavNode)


if __name__ == "__main__":
    main()
