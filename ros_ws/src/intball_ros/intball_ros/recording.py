"""``intball record`` and ``intball replay``: MCAP recordings of the graph and offline localization.

**record** subscribes to the selected topics of a running graph with raw subscriptions (the
serialized CDR bytes, no decoding) and writes one ``.mcap`` file in the rosbag2 storage format:
profile ``ros2``, one schema per type in ``ros2msg`` text with its dependencies (from the
``rosbags`` Kilted type store; our own packages' ``.msg`` files from the install share
directory), message encoding ``cdr``, channel metadata ``offered_qos_profiles`` (YAML, as
rosbag2), lz4 chunks. Foxglove, ``rosbags`` (``AnyReader`` / ``rosbag2.Reader``) and
``ros2 bag`` read it. Log and publish times are the receive time on the graph's clock (sim
time when ``/clock`` is published, else system time). Topics that appear later are picked up
(polled every 0.5 s); ``--duration`` counts seconds of that clock from the first message.

**replay** reads a recording, feeds ``/intball/imu`` and the left nav images in stamp order
(IMU first at equal stamps) through the same pipeline as the live estimator
(:func:`intball_ros.nodes.vision_estimator.make_localizer`), one estimate per IMU sample, and
scores it and the recorded live ``/intball/odometry`` against the recorded
``/intball/ground_truth`` with :mod:`intball_nav.evaluation`. Outputs in ``--out``:
``ground_truth.tum``, ``estimate.tum`` (replay), ``live_estimate.tum`` and ``eval.json``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from intball_ros import names

QOS_YAML = (
    "- history: keep_last\n  depth: {depth}\n  reliability: {reliability}\n  durability: {durability}\n"
    "  deadline: {{sec: 2147483647, nsec: 4294967295}}\n  lifespan: {{sec: 2147483647, nsec: 4294967295}}\n"
    "  liveliness: automatic\n  liveliness_lease_duration: {{sec: 2147483647, nsec: 4294967295}}\n"
    "  avoid_ros_namespace_conventions: false\n"
)
"""rosbag2's ``offered_qos_profiles`` channel metadata (one profile, infinite times)."""


class RecordingError(Exception):
    """A recording cannot be written or read; ``str(exc)`` names the file and the problem."""


# ================================================================================ schemas
def typestore() -> Any:
    """rosbags Kilted type store plus our interface packages (``.msg`` files under the share
    directories of ``AMENT_PREFIX_PATH``, as installed by ``make install``)."""
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    for pkg in ("intball_interfaces",):
        try:
            share = Path(get_package_share_directory(pkg))
        except PackageNotFoundError:
            continue
        types: dict = {}
        for path in sorted((share / "msg").glob("*.msg")):
            types.update(get_types_from_msg(path.read_text(), f"{pkg}/msg/{path.stem}"))
        store.register(types)
    return store


def msgdef(store: Any, msgtype: str) -> str:
    """``ros2msg`` schema text of ``msgtype`` (``pkg/msg/Name``) with its dependencies."""
    return store.generate_msgdef(msgtype, ros_version=2)[0]


# ================================================================================ record
def check_output(path: Path) -> None:
    """Raise RecordingError unless ``path`` is a writable ``.mcap`` file path."""
    if path.suffix != ".mcap":
        raise RecordingError(f"{path}: the output file name must end in .mcap")
    if path.is_dir():
        raise RecordingError(f"{path}: is a directory")
    if not path.parent.is_dir():
        raise RecordingError(f"{path}: directory {path.parent} does not exist")
    try:
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise RecordingError(f"{path}: cannot write: {exc.strerror}") from None


class Recorder:
    """Raw subscriptions of ``topics`` on ``node`` written to an MCAP ``writer`` (mcap.Writer)."""

    def __init__(self, node: Any, writer: Any, topics: list[str], use_sim_clock: bool) -> None:
        self.node, self.writer, self.topics = node, writer, topics
        self.store = typestore()
        self.counts: dict[str, int] = {}
        self.t0: int | None = None
        self.t_last = 0
        self.wall_last = time.monotonic()
        self._sim = use_sim_clock
        self._subs: dict[str, Any] = {}
        self._schemas: dict[str, int] = {}

    def now_ns(self) -> int:
        return self.node.get_clock().now().nanoseconds if self._sim else time.time_ns()

    def discover(self) -> None:
        """Subscribe to the selected topics that have publishers now (once per topic)."""
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        for topic, types in self.node.get_topic_names_and_types():
            if topic not in self.topics or topic in self._subs:
                continue
            msgtype = types[0]
            pkg, _, name = msgtype.split("/")
            cls = getattr(importlib.import_module(f"{pkg}.msg"), name)
            pubs = self.node.get_publishers_info_by_topic(topic)
            if not pubs:  # QoS not discovered yet: next poll
                continue
            reliable = all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in pubs)
            latched = any(p.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in pubs)
            qos = QoSProfile(
                depth=20 if "image" in topic else 200,
                reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
            )
            if msgtype not in self._schemas:
                data = msgdef(self.store, msgtype).encode()
                self._schemas[msgtype] = self.writer.register_schema(msgtype, "ros2msg", data)
            meta = QOS_YAML.format(
                depth=qos.depth,
                reliability="reliable" if reliable else "best_effort",
                durability="transient_local" if latched else "volatile",
            )
            channel = self.writer.register_channel(
                topic, "cdr", self._schemas[msgtype], {"offered_qos_profiles": meta}
            )
            self.counts[topic] = 0
            callback = lambda data, c=channel, t=topic: self._write(c, t, data)  # noqa: E731
            self._subs[topic] = self.node.create_subscription(cls, topic, callback, qos, raw=True)

    def _write(self, channel: int, topic: str, data: bytes) -> None:
        t = self.now_ns()
        if self._sim and t == 0:  # the clock has not started: nothing to place in time
            return
        if self.t0 is None:
            self.t0 = t
        self.t_last = max(self.t_last, t)
        self.wall_last = time.monotonic()
        self.writer.add_message(
            channel, log_time=t, data=bytes(data), publish_time=t, sequence=self.counts[topic]
        )
        self.counts[topic] += 1

    def elapsed(self) -> float:
        return 0.0 if self.t0 is None else (self.t_last - self.t0) * 1e-9


def record(out: Path, topics: list[str], duration: float | None, wait: float = 10.0) -> int:
    """Record until ``duration`` s (of the graph clock) or Ctrl-C; returns the exit code."""
    import rclpy
    from mcap.writer import CompressionType, Writer
    from rclpy.executors import ExternalShutdownException
    from rclpy.parameter import Parameter

    from intball_ros.env import ros_environment

    os.environ.update(ros_environment())
    rclpy.init()
    node = rclpy.create_node(names.RECORD_NODE)
    stream = open(out, "wb")  # noqa: SIM115 - closed in finally
    writer = Writer(stream, compression=CompressionType.LZ4)
    writer.start(profile="ros2", library="intball record")
    rec: Recorder | None = None
    try:
        deadline = time.monotonic() + wait
        sim = False
        while time.monotonic() < deadline:
            if any(t == names.CLOCK for t, _ in node.get_topic_names_and_types()):
                sim = True
                break
            rclpy.spin_once(node, timeout_sec=0.1)
        if sim:
            node.set_parameters([Parameter(names.P_USE_SIM_TIME, value=True)])
        rec = Recorder(node, writer, topics, sim)
        rclpy.spin_once(node, timeout_sec=0.2)  # the first /clock
        while time.monotonic() < deadline and not rec.counts:
            rec.discover()
            rclpy.spin_once(node, timeout_sec=0.1)
        if not rec.counts:
            domain = os.environ.get("ROS_DOMAIN_ID", "0")
            print(
                f"intball record: error: none of the topics has a publisher after {wait:g} s "
                f"(is `intball up` running with ROS_DOMAIN_ID={domain}?): {', '.join(topics)}",
                file=sys.stderr,
            )
        else:
            clock = "sim time" if sim else "system time"
            print(f"intball record: recording to {out} ({clock}); Ctrl-C to stop", flush=True)
            next_poll = time.monotonic() + 0.5
            while duration is None or rec.elapsed() < duration:
                rclpy.spin_once(node, timeout_sec=0.05)
                if time.monotonic() >= next_poll:
                    rec.discover()
                    next_poll = time.monotonic() + 0.5
                if time.monotonic() - rec.wall_last > wait:
                    print(f"intball record: no message for {wait:g} s (graph stopped?); stopping", flush=True)
                    break
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        writer.finish()
        stream.close()
        node.destroy_node()
        rclpy.try_shutdown()
    counts = rec.counts if rec is not None else {}
    missing = [t for t in topics if t not in counts]
    total = sum(counts.values())
    size = out.stat().st_size / 1e6
    print(
        f"intball record: {total} messages on {len(counts)} topics, "
        f"{rec.elapsed() if rec is not None else 0.0:.1f} s, "
        f"{size:.1f} MB -> {out}",
        flush=True,
    )
    for topic in missing:
        print(f"intball record: warning: no publisher seen on {topic}", flush=True)
    return 0 if total else 1


# ================================================================================ replay
def read_recording(path: Path, topics: set[str]) -> dict[str, list[Any]]:
    """Decoded messages of ``topics`` (``rosbags.highlevel.AnyReader``, schemas from the file),
    in file order; raises RecordingError naming the problem for a missing, corrupt or truncated
    file."""
    from rosbags.highlevel import AnyReader, AnyReaderError
    from rosbags.rosbag2 import ReaderError

    if not path.is_file():
        raise RecordingError(f"{path}: no such file")
    out: dict[str, list[Any]] = {t: [] for t in topics}
    try:
        with AnyReader([path]) as reader:
            conns = [c for c in reader.connections if c.topic in topics]
            for conn, _t, raw in reader.messages(connections=conns):
                out[conn.topic].append(reader.deserialize(raw, conn.msgtype))
    except (AnyReaderError, ReaderError) as exc:
        if "end magic" in str(exc):
            raise RecordingError(
                f"{path}: truncated MCAP: the file does not end with the MCAP footer ({exc}); "
                "was the recording interrupted before it finished?"
            ) from None
        raise RecordingError(f"{path}: not a readable MCAP recording: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - damaged records fail anywhere in the readers/decoders
        raise RecordingError(f"{path}: corrupt or truncated MCAP ({type(exc).__name__}: {exc})") from None
    return out


def _tum(stamped: list[tuple[float, Any]]) -> Any:
    from intball_nav.evaluation import Trajectory

    t = np.array([s for s, _ in stamped])
    p = np.array([x.position for _, x in stamped]).reshape(-1, 3)
    q = np.array([x.quat for _, x in stamped]).reshape(-1, 4)
    order = np.argsort(t, kind="stable")
    return Trajectory(t[order], p[order], q[order])


def replay(path: Path, out_dir: Path, features: bool = False, rpe_delta: float = 1.0) -> dict[str, Any]:
    """Run the localization pipeline over a recording; writes the outputs, returns eval.json."""
    from intball_nav.evaluation import evaluate
    from intball_nav.trajectory_io import write_tum
    from intball_ros import convert
    from intball_ros.nodes.vision_estimator import make_localizer

    topics = {names.IMU, names.NAV_LEFT_IMAGE, names.GROUND_TRUTH, names.ODOMETRY}
    msgs = read_recording(path, topics)
    for topic in (names.IMU, names.NAV_LEFT_IMAGE, names.GROUND_TRUTH):
        if not msgs[topic]:
            raise RecordingError(f"{path}: no messages on {topic} (record it to replay)")
    stamp = lambda m: convert.time_from_stamp(m.header.stamp)  # noqa: E731
    events = [(stamp(m), 0, k, m) for k, m in enumerate(msgs[names.IMU])]
    events += [(stamp(m), 1, k, m) for k, m in enumerate(msgs[names.NAV_LEFT_IMAGE])]
    events.sort(key=lambda e: e[:3])
    localizer = make_localizer(features)
    estimates, levels = [], {}
    c0 = time.process_time()
    for t, kind, _, m in events:
        if kind == 1:
            localizer.add_nav_frame(t, convert.gray_from_image(m))
            continue
        _, gyro, accel = convert.imu_from_msg(m)
        localizer.add_imu(t, gyro, accel)
        state, _, health = localizer.estimate(t)
        level = convert.health_msg(t, health, initialised=state is not None).level
        levels[level] = levels.get(level, 0) + 1
        if state is not None:
            estimates.append((t, state))
    cpu = time.process_time() - c0
    if not estimates:
        raise RecordingError(f"{path}: the pipeline never initialised (no usable visual fix)")
    truth = _tum([(stamp(m), convert.state_from_odometry(m)) for m in msgs[names.GROUND_TRUTH]])
    est = _tum(estimates)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_tum(out_dir / "ground_truth.tum", truth.t, truth.position, truth.quat)
    write_tum(out_dir / "estimate.tum", est.t, est.position, est.quat)
    result: dict[str, Any] = {
        "recording": str(path),
        "inputs": {t: len(v) for t, v in sorted(msgs.items())},
        "replay": evaluate(truth, est, delta_m=rpe_delta),
        "health_samples": levels,
        "pipeline": localizer.stats(),
        "cpu_s": cpu,
        "sim_span_s": float(events[-1][0] - events[0][0]),
    }
    if msgs[names.ODOMETRY]:
        live = _tum([(stamp(m), convert.state_from_odometry(m)) for m in msgs[names.ODOMETRY]])
        write_tum(out_dir / "live_estimate.tum", live.t, live.position, live.quat)
        result["live"] = evaluate(truth, live, delta_m=rpe_delta)
    (out_dir / "eval.json").write_text(json.dumps(_finite(result), indent=2) + "\n")
    return result


def _finite(x: Any) -> Any:
    """JSON-safe copy: nan/inf -> None."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _line(name: str, m: dict[str, Any]) -> str:
    return (
        f"{name}: ATE {m['ate_rmse_cm']:.2f} cm / {m['ate_rmse_deg']:.3f} deg RMSE ({m['pairs']} poses, "
        f"no alignment); RPE {m['rpe_position_m_per_m']['rmse'] * 100:.2f} cm/m, "
        f"{m['rpe_attitude_deg_per_m']['rmse']:.3f} deg/m ({m['rpe_segments']} segments)"
    )


# ================================================================================ CLI
def add_record_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output file (.mcap)")
    parser.add_argument("--topics", nargs="+", default=list(names.RECORD_TOPICS), help="topics to record")
    parser.add_argument("--duration", type=float, help="stop after S s of graph time (default: Ctrl-C)")
    parser.add_argument("--wait", type=float, default=10.0, help="s to wait for publishers (default 10)")


def add_replay_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recording", type=Path, help="an .mcap file from `intball record`")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument(
        "--features",
        choices=("auto", "on", "off"),
        default="auto",
        help="natural-feature localizer too, as `intball up` (auto: when the feature map is cached)",
    )
    parser.add_argument("--rpe-delta", type=float, default=1.0, help="RPE segment length, m (default 1)")


def run_record(args: argparse.Namespace) -> int:
    if args.duration is not None and not args.duration > 0.0:
        print(f"intball record: error: --duration must be > 0, got {args.duration}", file=sys.stderr)
        return 2
    try:
        check_output(args.out)
    except RecordingError as exc:
        print(f"intball record: error: {exc}", file=sys.stderr)
        return 2
    return record(args.out, list(dict.fromkeys(args.topics)), args.duration, args.wait)


def run_replay(args: argparse.Namespace) -> int:
    try:
        from intball_ros.launcher import use_features

        result = replay(args.recording, args.out, use_features(args.features), args.rpe_delta)
    except (RecordingError, ValueError) as exc:
        print(f"intball replay: error: {exc}", file=sys.stderr)
        return 2
    print(_line("replay", result["replay"]))
    if "live" in result:
        print(_line("live (recorded /intball/odometry)", result["live"]))
    print(f"outputs in {args.out}")
    return 0
