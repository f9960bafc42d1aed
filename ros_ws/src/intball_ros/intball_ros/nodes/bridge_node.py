"""Bridge node: the onboard end of the space-to-ground link, over the ROS graph.

The robot side is :class:`intball_ros.ros_robot.RosRobot` (estimate only, never ground truth;
actions and services of the navigation node). The process also runs the ground station
(``intball_teleop.server``): the onboard bridge and the ground end share nothing but the
emulated link. rclpy spins in a thread; the link, the bridge logic and the web server run on
the asyncio loop of the main thread.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from intball_ros import names, stop_flag
from intball_ros.nodes import spin_until
from intball_ros.ros_robot import RosRobot
from intball_teleop import commands as C
from intball_teleop.server.main import UiOptions, serve


class BridgeNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__(names.BRIDGE_NODE, **kwargs)
        p = self.declare_parameter
        self.opts = UiOptions(
            host=str(p(names.P_UI_HOST, "127.0.0.1").value),
            port=int(p(names.P_UI_PORT, 8080).value),
            users=str(p(names.P_UI_USERS, "").value) or None,
            profile=str(p(names.P_LINK_PROFILE, "iss-nominal").value),
            seed=int(p(names.P_LINK_SEED, 0).value),
            station_keep_after_s=float(p(names.P_STATION_KEEP_AFTER, 10.0).value),
            return_to_dock_after_s=float(p(names.P_RETURN_TO_DOCK_AFTER, 900.0).value),
        )


def main() -> None:
    # asyncio owns SIGINT/SIGTERM here (it stops the server, then ROS); rclpy's own handlers would
    # shut the context down under the spinning thread
    rclpy.init(args=sys.argv, signal_handler_options=SignalHandlerOptions.NO)
    node = BridgeNode()
    robot = RosRobot(node, C.Workspace.default())
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    stop_spinning = threading.Event()
    spinner = threading.Thread(target=spin_until, args=(executor, stop_spinning), name="rclpy", daemon=True)
    spinner.start()

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if stop_flag.STOP.is_set():  # a signal during start-up (intball_ros.boot caught it)
            stop.set()
        await serve(robot, node.opts, stop, lambda line: print(line, flush=True))

    code = 0
    try:
        asyncio.run(run())
    except Exception as exc:
        print(f"bridge: {type(exc).__name__}: {exc}", flush=True)
        code = 1
    finally:
        # the spin thread leaves the executor before it is shut down: shut down under a running
        # callback, it destroyed the guard condition the callback then triggered (a traceback at
        # exit, once in a full test run); a thread still inside rclpy at exit aborts the process
        stop_spinning.set()
        spinner.join(timeout=2.0)
        executor.shutdown(timeout_sec=2.0)
        node.destroy_node()
        rclpy.try_shutdown()
    sys.exit(code)


if __name__ == "__main__":
    main()
