"""The process-wide stop flag of a node process: SIGINT/SIGTERM set it instead of raising.

Tiny on purpose (no ROS imports): ``intball_ros.boot`` installs it before a node's imports,
which take seconds on a loaded machine, so a Ctrl-C during start-up is remembered and the node
then ends quietly instead of printing a KeyboardInterrupt traceback from the middle of an import.
"""

from __future__ import annotations

import signal
import threading

STOP = threading.Event()
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def install() -> dict:
    """SIGINT and SIGTERM set STOP from now on; returns the previous handlers."""
    return {s: signal.signal(s, lambda *_: STOP.set()) for s in SIGNALS}


def restore(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
