"""Start one node process: ``python -m intball_ros.boot <module> [--ros-args ...]``.

The launcher starts nodes this way so that the stop flag (``stop_flag``) is in place before the
node module's imports: a Ctrl-C while a node is still importing ends it with exit code 0 and no
traceback, like one while it spins.
"""

from __future__ import annotations

import importlib
import sys

from intball_ros import stop_flag


def main() -> None:
    stop_flag.install()
    if len(sys.argv) < 2 or not sys.argv[1].isidentifier():
        raise SystemExit("usage: python -m intball_ros.boot <node module> [--ros-args ...]")
    module = importlib.import_module(f"intball_ros.nodes.{sys.argv.pop(1)}")
    module.main()


if __name__ == "__main__":
    main()
