"""Thin ROS 2 nodes: each wires topics, timers and parameters around an intball_nav/intball_sim core.

Every node module has a ``main()`` (started as ``python -m intball_ros.boot <name> --ros-args ...``) and
a node class that the launcher can also instantiate in one process (``intball up --composed``).
"""

from __future__ import annotations

import contextlib
import faulthandler
import signal
import sys
import threading
from collections.abc import Callable, Iterator

import rclpy
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from intball_ros import stop_flag


class NodeFinished(Exception):
    """Raised from a callback to end a node's process with exit code ``code`` (e.g. tour done)."""

    def __init__(self, code: int = 0) -> None:
        super().__init__(code)
        self.code = code


@contextlib.contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """SIGINT and SIGTERM set the process's stop flag (``stop_flag.STOP``, yielded) instead of
    raising, until the block ends. A signal that came earlier (``intball_ros.boot`` installs the
    flag before the node's imports) is kept: the spin loop then returns at once.

    rclpy's own handlers are not used (``rclpy.init(signal_handler_options=NO)``): with them a
    SIGINT raises KeyboardInterrupt at an arbitrary point of the executor's Python code while a
    C++ thread shuts the context down, a race that once left a node hung in its shutdown until
    SIGKILL. Here the flag is read between callbacks and the one main thread shuts down in order.
    """
    previous = stop_flag.install()
    try:
        yield stop_flag.STOP
    finally:
        stop_flag.restore(previous)


def destroy_actions(node: Node) -> None:
    """Destroy ``node``'s action servers and clients. rclpy's ``Node.destroy_node`` leaves them
    (waitables) alone, and each one keeps the node, and with it the process's DDS participant,
    alive until garbage collection: a node made later in the same process then still discovered
    the dead servers besides the live ones, and its clients' ``server_is_ready`` could stay false
    (an in-process test waited 30 s, about 1 run in 8). Call it before ``destroy_node``."""
    from rclpy.action import ActionClient, ActionServer

    for waitable in [w for w in node.waitables if isinstance(w, ActionServer | ActionClient)]:
        waitable.destroy()


def spin_until(executor: Executor, stop: threading.Event, poll_s: float = 0.1) -> None:
    """Spin until ``stop`` is set (read every ``poll_s`` s at the latest) or the context ends."""
    while not stop.is_set() and executor.context.ok():
        executor.spin_once(timeout_sec=poll_s)


def run(make_node: Callable[[], Node]) -> None:
    """Standard main: init, spin until Ctrl-C / SIGTERM / NodeFinished, clean shutdown, exit code.

    A signal during start-up (imports aside) or while spinning ends the node the same quiet way.
    SIGUSR1 prints every thread's Python stack to stderr (the launcher sends it to a node that
    does not stop, before killing it).
    """
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    code = 0
    with stop_on_signals() as stop:
        rclpy.init(args=sys.argv, signal_handler_options=SignalHandlerOptions.NO)
        node = None
        executor = SingleThreadedExecutor()
        try:
            if not stop.is_set():  # a Ctrl-C during the imports: do not even start
                node = make_node()
                executor.add_node(node)
                spin_until(executor, stop)
        except ExternalShutdownException:
            pass
        except NodeFinished as done:
            code = done.code
        finally:
            executor.shutdown()
            if node is not None:
                node.destroy_node()
            rclpy.try_shutdown()
    sys.exit(code)
