"""Goal -> first fan command latency through the real ROS graph, in real time.

Starts `intball up --rate 1` (one process per node), then a plain rclpy client publishes
goals on /intball/goal_pose and times the first /intball/fan_command that follows each
goal (client wall clock, publish -> receive). The controller publishes fan commands
periodically (50 Hz) too, so each goal is sent ~5 ms after a periodic command arrives;
a reply within 14 ms is then the goal-triggered command (the next periodic one is due
~15 ms after the send). Replies later than that are counted as "late" and not timed.

Usage: .venv/bin/python bench/bench_ros_latency.py [--runs 3] [--goals 60] [--cameras]
Prints per-run and pooled median / p99 (ms) for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from ros_graph_helpers import Graph, ensure_domain_id, spin_until  # noqa: E402

WINDOW_S = 0.014
OFFSET_S = 0.005


def one_run(node, args: argparse.Namespace, log: Path) -> tuple[list[float], int]:
    import rclpy
    from geometry_msgs.msg import PoseStamped
    from intball_interfaces.msg import FanCommand
    from nav_msgs.msg import Odometry

    from intball_nav.frames import Pose
    from intball_ros import convert, names

    graph = Graph(["--rate", "1"] + ([] if args.cameras else ["--no-cameras"]), log)
    arrivals: list[float] = []
    odom: list = []
    subs = [
        node.create_subscription(
            FanCommand, names.FAN_COMMAND, lambda m: arrivals.append(time.perf_counter()), 10
        ),
        node.create_subscription(Odometry, names.ODOMETRY, lambda m: odom.append(m), 10),
    ]
    pub = node.create_publisher(PoseStamped, names.GOAL_POSE, names.RELIABLE_10)
    latencies: list[float] = []
    late = 0
    try:
        spin_until(node, lambda: odom and pub.get_subscription_count() > 0, 60.0, "the graph")
        spin_until(node, lambda: len(arrivals) > 20, 30.0, "periodic fan commands")
        start = convert.pose_from_msg(odom[-1].pose.pose).position
        for i in range(args.goals):
            n = len(arrivals)
            spin_until(node, lambda n=n: len(arrivals) > n, 5.0, "a periodic fan command")
            t_periodic = arrivals[-1]
            while time.perf_counter() < t_periodic + OFFSET_S:
                pass
            goal = Pose(start + np.array([0.05 * (i % 2), 0.0, 0.0]))
            n = len(arrivals)
            t_send = time.perf_counter()
            pub.publish(convert.pose_stamped_from_pose(goal, 0.0))
            spin_until(node, lambda n=n: len(arrivals) > n, 5.0, "a fan command after the goal")
            dt = arrivals[n] - t_send
            if dt <= WINDOW_S:
                latencies.append(dt)
            else:
                late += 1
            end = time.perf_counter() + 0.2
            while time.perf_counter() < end:
                rclpy.spin_once(node, timeout_sec=0.01)
    finally:
        for s in subs:
            node.destroy_subscription(s)
        node.destroy_publisher(pub)
        graph.stop()
    return latencies, late


def summary(ms: np.ndarray) -> str:
    p50, p99 = np.median(ms), np.percentile(ms, 99)
    return f"median {p50:.2f} ms, p99 {p99:.2f} ms, max {ms.max():.2f} ms (n={ms.size})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--goals", type=int, default=60)
    parser.add_argument("--cameras", action="store_true", help="also render the cameras (default off)")
    args = parser.parse_args()
    ensure_domain_id()
    import rclpy

    rclpy.init()
    node = rclpy.create_node("bench_ros_latency")
    pooled: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            lat, late = one_run(node, args, Path(tmp) / f"up{run}.log")
            pooled += lat
            print(f"run {run + 1}: {summary(np.array(lat) * 1e3)}, late/ambiguous {late}", flush=True)
    print(f"goal -> first fan command, {args.runs} runs, cameras {'on' if args.cameras else 'off'}:")
    print(f"  pooled: {summary(np.array(pooled) * 1e3)}")
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == "__main__":
    main()
