"""Thin ROS 2 nodes: each wires topics, timers and parameters around an intball_nav/intball_sim core.

Every node module has a ``main()`` (``python -m intball_ros.nodes.<name> --ros-args ...``) and
a node class that the launcher can also instantiate in one process (``intball up --composed``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


class NodeFinished(Exception):
    """Raised from a callback to end a node's process with exit code ``code`` (e.g. tour done)."""

    def __init__(self, code: int = 0) -> None:
        super().__init__(code)
        self.code = code


def run(make_node: Callable[[], Node]) -> None:
    """Standard main: init, spin until Ctrl-C / SIGTERM / NodeFinished, clean shutdown, exit code."""
    rclpy.init(args=sys.argv)
    code = 0
    node = None
    try:
        node = make_node()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except NodeFinished as done:
        code = done.code
    except Exception:
        if rclpy.ok():
            raise
        # rclpy can raise from a half-taken message while SIGINT shuts the context down
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    sys.exit(code)
