"""The ``intball`` command: ``up`` (ROS graph), ``sim`` (headless), ``goal``, ``record``, ``replay``."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from intball_ros import goal_client, launcher, recording
    from intball_sim import headless

    parser = argparse.ArgumentParser(prog="intball", description="Open Int-Ball stack")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the ROS 2 graph (simulator, estimator, controller)")
    launcher.add_arguments(up)
    up.set_defaults(func=launcher.main)
    sim = sub.add_parser("sim", help="run a mission in the headless simulator (no ROS)")
    headless.add_arguments(sim)
    sim.set_defaults(func=headless.run)
    goal = sub.add_parser("goal", help="send one goal pose to a running graph")
    goal_client.add_arguments(goal)
    goal.set_defaults(func=goal_client.main)
    rec = sub.add_parser("record", help="record topics of a running graph to an MCAP file")
    recording.add_record_arguments(rec)
    rec.set_defaults(func=recording.run_record)
    rep = sub.add_parser("replay", help="run the localization pipeline over a recording and score it")
    recording.add_replay_arguments(rep)
    rep.set_defaults(func=recording.run_replay)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    code = args.func(args)
    sys.exit(int(code or 0))


if __name__ == "__main__":
    main()
