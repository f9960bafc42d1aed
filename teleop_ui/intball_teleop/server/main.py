"""Start the ground station: link + onboard bridge + HTTP/WebSocket server.

``python -m intball_teleop.server [--backend kinematic]`` runs it without ROS (kinematic
stand-in robot); ``intball up --ui`` runs it against the ROS graph (``bridge_node``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from .. import commands as C
from ..ground import GroundConfig
from ..link.config import available_profiles
from ..onboard import OnboardConfig, RobotBackend
from .app import create_app, load_compete_app
from .auth import AuthError, Credentials, users_file_from_env
from .stack import Stack, StackConfig, supervisor_config

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


@dataclass(frozen=True)
class UiOptions:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    profile: str = "iss-nominal"
    seed: int = 0
    users: str | None = None
    allow_origins: tuple[str, ...] = ()
    station_keep_after_s: float = 10.0
    return_to_dock_after_s: float = 900.0
    telemetry_rate_hz: float = 5.0
    camera_rate_hz: float = 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=DEFAULT_HOST, help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (0 = any free port)")
    parser.add_argument(
        "--link-profile",
        default="iss-nominal",
        help=f"one of {', '.join(available_profiles())} or a YAML path",
    )
    parser.add_argument("--link-seed", type=int, default=0)
    parser.add_argument("--users", help="credentials YAML (else INTBALL_UI_USERS, else one-run demo tokens)")
    parser.add_argument("--allow-origin", action="append", default=[], help="extra allowed browser origin")
    parser.add_argument(
        "--station-keep-after-s", type=float, default=10.0, help="LOS -> station keep after (s)"
    )
    parser.add_argument(
        "--return-to-dock-after-s", type=float, default=900.0, help="LOS -> return to dock after (s)"
    )


def options_from_args(args: argparse.Namespace) -> UiOptions:
    return UiOptions(
        host=args.host,
        port=args.port,
        profile=args.link_profile,
        seed=args.link_seed,
        users=args.users,
        allow_origins=tuple(args.allow_origin),
        station_keep_after_s=args.station_keep_after_s,
        return_to_dock_after_s=args.return_to_dock_after_s,
    )


def load_credentials(users: str | None) -> tuple[Credentials, bool]:
    path = users or users_file_from_env()
    if path:
        return Credentials.from_file(path), False
    return Credentials.demo_tokens(), True


def stack_config(opts: UiOptions) -> StackConfig:
    onboard = OnboardConfig(
        telemetry_rate_hz=opts.telemetry_rate_hz,
        camera_rate_hz=opts.camera_rate_hz,
        supervisor=supervisor_config(opts.station_keep_after_s, opts.return_to_dock_after_s),
    )
    return StackConfig(profile=opts.profile, seed=opts.seed, onboard=onboard, ground=GroundConfig())


async def serve(
    backend: RobotBackend,
    opts: UiOptions,
    stop: asyncio.Event,
    announce: Callable[[str], None] = print,
    credentials: Credentials | None = None,
) -> None:
    """Run until ``stop`` is set. Prints the URL (and demo tokens) through ``announce``."""
    demo = False
    if credentials is None:
        credentials, demo = load_credentials(opts.users)
    stack = Stack(backend, stack_config(opts))
    stack.start()
    compete = load_compete_app()
    if compete is not None:
        announce("ground station: competition API mounted at /api/compete (INTBALL_COMPETE_DATA)")
    app = create_app(stack, credentials, allowed_origins=opts.allow_origins, compete=compete)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, opts.host, opts.port)
    await site.start()
    port = runner.addresses[0][1]
    host = opts.host if ":" not in opts.host else f"[{opts.host}]"
    announce(
        f"ground station: http://{host}:{port}/  "
        f"(link profile {stack.link.profile.name}, robot {backend.source})"
    )
    if demo:
        for user in credentials.users.values():
            announce(f"ground station: one-run {user.role} token (log in with it): {user.token}")
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await stack.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m intball_teleop.server", description=__doc__)
    add_arguments(parser)
    parser.add_argument(
        "--backend", choices=("kinematic",), default="kinematic", help="robot stand-in (ROS: intball up --ui)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    opts = options_from_args(args)
    from ..kinematic import KinematicRobot

    backend = KinematicRobot(C.Workspace.default())

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(backend, opts, stop, lambda s: print(s, flush=True))

    try:
        asyncio.run(run())
    except (AuthError, OSError) as exc:
        print(f"ground station: error: {exc}", file=sys.stderr)
        return 2
    return 0
