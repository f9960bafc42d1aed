"""``intball up``: our own launcher (there is no ros2 launch in the PyPI wheels).

Starts the graph (simulator, estimator, controller, navigation, optionally a tour driver) either as one
process per node (default: ``python -m intball_ros.boot <node> --ros-args -p ...``, output
prefixed with the node name) or composed in this process on one SingleThreadedExecutor
(``--composed``; under the GIL a MultiThreadedExecutor only adds contention: it delivered
about 1.4x fewer messages in our measurements).

Lifecycle rules:
- Ctrl-C / SIGTERM: SIGINT to every child, wait, then SIGTERM, then SIGKILL; exit 0.
- A node that exits on its own (crash, kill) is reported by name and exit code, the rest
  are stopped and the launcher exits 1.
- The tour driver exiting 0 with ``--exit-when-done`` means "tour complete": stop, exit 0.
"""

from __future__ import annotations

import argparse
import ctypes
import math
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from intball_ros import names, stop_flag

REPO_ROOT = Path(__file__).resolve().parents[4]
DEMO_TOUR = REPO_ROOT / "examples" / "tour.yaml"
STOP_TIMEOUT_S = 5.0
"""Seconds a child gets after SIGINT (then again after SIGTERM) before the next signal."""


@dataclass(frozen=True)
class NodeSpec:
    """One node of the graph: its name, module (``intball_ros.nodes.<module>``) and parameters."""

    name: str
    module: str
    params: dict = field(default_factory=dict)
    finite: bool = False  # may exit 0 when its job is done (the tour driver)


def params_cli_args(params: dict) -> list[str]:
    """``--ros-args -p name:=value ...`` for a parameter dict (bools lower-case, lists as YAML)."""
    args = ["--ros-args"]
    for key, value in params.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (list, tuple)):
            text = "[" + ", ".join(repr(float(v)) for v in value) + "]"
        else:
            text = str(value)
        args += ["-p", f"{key}:={text}"]
    return args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--composed", action="store_true", help="run all nodes in this process")
    parser.add_argument("--rate", type=float, default=1.0, help="real-time factor target (default 1)")
    parser.add_argument("--no-cameras", action="store_true", help="do not render camera images")
    parser.add_argument(
        "--localization",
        choices=names.LOCALIZATION_MODES,
        help=f"estimator mode (default {names.LOCALIZATION_VISION}; truth-noise with --no-cameras)",
    )
    parser.add_argument(
        "--features",
        choices=("auto", "on", "off"),
        default="auto",
        help="vision: natural-feature localizer too (auto: when the feature map is cached)",
    )
    parser.add_argument("--tour", type=Path, help="fly this mission YAML through the graph")
    parser.add_argument("--demo", action="store_true", help=f"fly the demo tour ({DEMO_TOUR.name})")
    parser.add_argument("--exit-when-done", action="store_true", help="exit 0 once the tour is flown")
    parser.add_argument("--seed", type=int, default=0, help="simulator and estimator noise seed")
    parser.add_argument("--flight-mode", default="nominal", help="nominal | precision | quiet")
    parser.add_argument(
        "--loss-response",
        choices=names.LOSS_RESPONSES,
        default="hold",
        help="when localization is lost: brake and hold with the fans off (hold, default) or brake, "
        "then turn in place until a view brings it back (search)",
    )
    ui = parser.add_argument_group("ground station (--ui)")
    ui.add_argument("--ui", action="store_true", help="also start the bridge node + web console")
    ui.add_argument("--ui-host", default="127.0.0.1", help="console bind address (default 127.0.0.1)")
    ui.add_argument("--ui-port", type=int, default=8080, help="console port (default 8080)")
    ui.add_argument("--ui-users", default="", help="credentials YAML (default: one-run tokens, printed)")
    ui.add_argument(
        "--link-profile", default="iss-nominal", help="emulated link profile (default iss-nominal)"
    )
    ui.add_argument(
        "--station-keep-after-s",
        type=_positive_seconds,
        default=10.0,
        help="onboard: no ground contact for this long -> station keep (default 10 s)",
    )
    ui.add_argument(
        "--return-to-dock-after-s",
        type=_positive_seconds,
        default=900.0,
        help="onboard: no ground contact for this long -> return to dock (default 900 s)",
    )
    parser.add_argument("--no-nav", action="store_true", help="do not start the navigation node")
    parser.add_argument("--data-dir", type=Path, help="camera_task output directory (navigation node)")
    parser.add_argument(
        "--battery", type=float, default=1.0, help="initial battery level of the model, 0..1 (default 1)"
    )


def graph_specs(args: argparse.Namespace) -> list[NodeSpec]:
    """The nodes `intball up` starts, with their parameters, from the parsed arguments."""
    if args.rate <= 0.0:
        raise SystemExit(f"intball up: --rate must be > 0, got {args.rate}")
    if args.localization is None:
        args.localization = "truth-noise" if args.no_cameras else names.LOCALIZATION_VISION
    if args.localization == names.LOCALIZATION_VISION and args.no_cameras:
        raise SystemExit("intball up: --localization vision needs the cameras (drop --no-cameras)")
    sim_time = {names.P_USE_SIM_TIME: True}
    estimator = {**sim_time, names.P_LOCALIZATION: args.localization, names.P_SEED: args.seed}
    if args.localization == names.LOCALIZATION_VISION:
        estimator[names.P_FEATURES] = use_features(getattr(args, "features", "auto"))
    specs = [
        NodeSpec(
            names.SIM_NODE,
            "sim_node",
            {names.P_RATE: args.rate, names.P_CAMERAS: not args.no_cameras, names.P_SEED: args.seed},
        ),
        NodeSpec(names.ESTIMATOR_NODE, "estimator_node", estimator),
        NodeSpec(
            names.CONTROL_NODE,
            "control_node",
            {
                **sim_time,
                names.P_FLIGHT_MODE: args.flight_mode,
                names.P_LOSS_RESPONSE: getattr(args, "loss_response", "hold"),
            },
        ),
    ]
    if not getattr(args, "no_nav", False):
        if not 0.0 <= args.battery <= 1.0:
            raise SystemExit(f"intball up: --battery must be in [0, 1], got {args.battery}")
        nav = {**sim_time, names.P_FLIGHT_MODE: args.flight_mode, names.P_BATTERY_LEVEL: float(args.battery)}
        # the watchdog counts sim time; on a loaded 2-core machine a node is sometimes descheduled for
        # ~1 s of wall time: allow 2 s of wall time (the simulator zeroes the fans itself 0.5 s sim
        # after the last fan command)
        nav[names.P_WATCHDOG_TIMEOUT] = max(0.5, 2.0 * args.rate)
        if args.data_dir is not None:
            nav[names.P_DATA_DIR] = str(Path(args.data_dir).resolve())
        specs.append(NodeSpec(names.NAV_NODE, "nav_node", nav))
    if getattr(args, "ui", False):
        if args.composed:
            raise SystemExit("intball up: --ui runs the bridge in its own process; drop --composed")
        ui = {names.P_UI_HOST: args.ui_host, names.P_UI_PORT: args.ui_port}
        if args.ui_users:
            ui[names.P_UI_USERS] = str(Path(args.ui_users).resolve())
        ui[names.P_LINK_PROFILE] = args.link_profile
        from intball_teleop.link.supervisor import SupervisorConfig  # noqa: PLC0415 - only with --ui

        try:  # the bridge's own check, before any process starts
            SupervisorConfig(args.station_keep_after_s, args.return_to_dock_after_s)
        except ValueError as exc:
            raise SystemExit(
                "intball up: --station-keep-after-s / --return-to-dock-after-s: "
                f"{exc} (recover_below_s is the link's contact threshold)"
            ) from None
        ui[names.P_STATION_KEEP_AFTER] = args.station_keep_after_s
        ui[names.P_RETURN_TO_DOCK_AFTER] = args.return_to_dock_after_s
        specs.append(NodeSpec(names.BRIDGE_NODE, "bridge_node", {**sim_time, **ui}))
    tour = args.tour if args.tour is not None else (DEMO_TOUR if args.demo else None)
    if tour is not None:
        if not Path(tour).is_file():
            raise SystemExit(f"intball up: tour file {tour} not found")
        from intball_nav.mission import MissionError, load_mission

        try:
            start = load_mission(tour).start
        except MissionError as exc:
            raise SystemExit(f"intball up: {exc}") from None
        specs[0].params[names.P_INITIAL_POSE] = [*start.position, *start.quat]
        params = {**sim_time, names.P_TOUR_FILE: str(Path(tour).resolve())}
        params[names.P_EXIT_WHEN_DONE] = bool(args.exit_when_done)
        specs.append(NodeSpec(names.TOUR_NODE, "tour_node", params, finite=True))
    return specs


def use_features(choice: str) -> bool:
    """``--features``: on, off, or auto = when the default feature map is in the cache
    (``intball map build`` makes it; without it the markers are the only visual source)."""
    if choice != "auto":
        return choice == "on"
    from intball_sim.mapping import default_map_path

    return default_map_path().exists()


def child_environment() -> dict[str, str]:
    """Environment for node processes: intball_ros.env.ros_environment(), unbuffered output."""
    from intball_ros.env import ros_environment

    return {**ros_environment(), "PYTHONUNBUFFERED": "1"}


def print_banner(specs: list[NodeSpec], args: argparse.Namespace) -> None:
    mode = "composed (one process)" if args.composed else "one process per node"
    cams = "off" if args.no_cameras else "on"
    print(f"intball up: {len(specs)} nodes, {mode}, rate x{args.rate:g}, cameras {cams}", flush=True)
    print(f"  nodes:      {', '.join(s.name for s in specs)}")
    print(f"  goal:       {names.GOAL_POSE} (geometry_msgs/PoseStamped, frame '{names.WORLD_FRAME}')")
    tf = f"{names.TF} {names.WORLD_FRAME}->{names.BODY_FRAME}"
    mode = args.localization
    if mode == names.LOCALIZATION_VISION:
        est = {s.name: s for s in specs}[names.ESTIMATOR_NODE]
        mode += (
            " markers + features" if est.params[names.P_FEATURES] else " markers only (no feature map cached)"
        )
    print(f"  estimate:   {names.ODOMETRY} ({mode}), {tf}, {names.LOCALIZATION_HEALTH}")
    print(f"  truth:      {names.GROUND_TRUTH}, {names.IMU}, {names.CLOCK}")
    print(f"  commands:   {names.FAN_COMMAND}, {names.WRENCH_COMMAND}; status {names.GUIDANCE_STATUS}")
    if not args.no_cameras:
        cams = ", ".join(image for image, _info in names.CAMERA_TOPICS.values())
        print(f"  cameras:    {cams} (+ camera_info)")
    print(f"  ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID', '0')}")
    if any(s.name == names.NAV_NODE for s in specs):
        actions = (names.NAVIGATE_TO, names.FOLLOW_ROUTE, names.DOCK, names.UNDOCK, names.CAMERA_TASK)
        print(f"  actions:    {', '.join(actions)}")
        print(f"  services:   {names.STOP}, {names.EMERGENCY_STOP}, {names.STATION_KEEP}, {names.RESET}")
        print(f"  autonomy:   {names.MODE}, {names.BATTERY}, {names.DIAGNOSTICS}, {names.KEEP_OUT_ZONES}")
    if getattr(args, "ui", False):
        host = args.ui_host if ":" not in args.ui_host else f"[{args.ui_host}]"
        print(
            f"  ground station: http://{host}:{args.ui_port or '<free port>'}/ "
            f"(link {args.link_profile}; the bridge prints the URL and log-in tokens)"
        )
    else:
        print("  ground station: add --ui", flush=True)


def _positive_seconds(text: str) -> float:
    """argparse type: a finite number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0.0:
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds > 0, got {text!r}")
    return value


def _die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM if the launcher dies without cleaning up (Linux)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _pump(name: str, stream) -> None:
    for line in iter(stream.readline, b""):
        sys.stdout.write(f"[{name}] {line.decode(errors='replace')}")
        sys.stdout.flush()
    stream.close()


def stop_processes(procs: dict[str, subprocess.Popen], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGINT every live child, then SIGTERM, then SIGKILL, each after ``timeout`` s.

    Before SIGKILL a child still alive gets SIGUSR1: our nodes print every thread's Python stack
    on it (``faulthandler``, see ``intball_ros.nodes.run``), so a hang is reported with its place.
    """
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        live = [p for p in procs.values() if p.poll() is None]
        if not live:
            return
        if sig == signal.SIGKILL:
            for name, p in procs.items():
                if p.poll() is None:
                    print(f"intball up: {name} ignored SIGINT and SIGTERM; its stacks follow", flush=True)
                    _signal(p, signal.SIGUSR1)
            time.sleep(1.0)
        for p in live:
            _signal(p, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(p.poll() is None for p in live):
            time.sleep(0.05)


def _signal(p: subprocess.Popen, sig: int) -> None:
    try:
        p.send_signal(sig)
    except ProcessLookupError:
        pass


def run_processes(specs: list[NodeSpec]) -> int:
    env = child_environment()
    stop_flag.install()  # the launcher's own Ctrl-C / SIGTERM, forwarded by stop_processes
    procs: dict[str, subprocess.Popen] = {}
    for spec in specs:
        # through intball_ros.boot: a Ctrl-C during the node's imports ends it quietly too
        cmd = [sys.executable, "-m", "intball_ros.boot", spec.module, *params_cli_args(spec.params)]
        cmd += ["-r", f"__node:={spec.name}"]
        procs[spec.name] = subprocess.Popen(
            cmd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches only the launcher, which forwards it
            preexec_fn=_die_with_parent,
        )
    pumps = [threading.Thread(target=_pump, args=(n, p.stdout), daemon=True) for n, p in procs.items()]
    for t in pumps:
        t.start()
    print("intball up: pids " + ", ".join(f"{n}={p.pid}" for n, p in procs.items()), flush=True)
    finite = {s.name for s in specs if s.finite}
    code = 0
    while not stop_flag.STOP.wait(0.1):
        ended = [(n, p.returncode) for n, p in procs.items() if p.poll() is not None]
        if not ended:
            continue
        name, rc = ended[0]
        if rc == 0 and name in finite:
            print(f"intball up: {name} finished; stopping the graph", flush=True)
        else:
            print(f"intball up: node {name} died (exit code {rc}); stopping the rest", flush=True)
            code = 1
        break
    else:
        print("intball up: interrupted; stopping nodes", flush=True)
    stop_processes(procs)
    for t in pumps:
        t.join(timeout=1.0)
    failed = [f"{n} ({p.returncode})" for n, p in procs.items() if p.returncode not in (0, -signal.SIGINT)]
    if code == 0 and failed:
        print(f"intball up: unclean exit of {', '.join(failed)}", flush=True)
    print(f"intball up: exit {code}", flush=True)
    return code


def run_composed(specs: list[NodeSpec]) -> int:
    import importlib

    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    from intball_ros.nodes import NodeFinished, spin_until, stop_on_signals

    os.environ.update(child_environment())
    nodes = []
    code = 0
    with stop_on_signals() as stop:
        rclpy.init(signal_handler_options=SignalHandlerOptions.NO)  # see nodes.stop_on_signals
        executor = SingleThreadedExecutor()
        try:
            for spec in specs:
                module = importlib.import_module(f"intball_ros.nodes.{spec.module}")
                node = module.NODE_CLASS(cli_args=params_cli_args(spec.params))
                nodes.append(node)
                executor.add_node(node)
            spin_until(executor, stop)
            print("intball up: interrupted; stopping nodes", flush=True)
        except ExternalShutdownException:
            print("intball up: interrupted; stopping nodes", flush=True)
        except NodeFinished as done:
            code = done.code
            print(f"intball up: tour finished (code {code}); stopping the graph", flush=True)
        except Exception as exc:  # a node crashed: report it, stop the rest
            print(f"intball up: a node failed: {type(exc).__name__}: {exc}", flush=True)
            code = 1
        finally:
            executor.shutdown(timeout_sec=2.0)
            for node in reversed(nodes):
                node.destroy_node()
            rclpy.try_shutdown()
    print(f"intball up: exit {code}", flush=True)
    return code


def main(args: argparse.Namespace) -> int:
    specs = graph_specs(args)
    print_banner(specs, args)
    return run_composed(specs) if args.composed else run_processes(specs)
