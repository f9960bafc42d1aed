"""The ``intball`` command: one subcommand per tool, each module owning its arguments."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from intball_compete import cli as compete
    from intball_ros import goal_client, launcher, recording
    from intball_sim import eval_loc, headless, mapping

    # (name, help, add_arguments, run): every run(args) returns the process exit code.
    commands = [
        (
            "up",
            "start the ROS 2 graph (simulator, estimator, controller)",
            launcher.add_arguments,
            launcher.main,
        ),
        ("sim", "run a mission in the headless simulator (no ROS)", headless.add_arguments, headless.run),
        ("goal", "send one goal pose to a running graph", goal_client.add_arguments, goal_client.main),
        (
            "record",
            "record topics of a running graph to an MCAP file",
            recording.add_record_arguments,
            recording.run_record,
        ),
        (
            "replay",
            "run the localization pipeline over a recording and score it",
            recording.add_replay_arguments,
            recording.run_replay,
        ),
        ("compete", "programming competition: run and serve behaviors", compete.add_arguments, compete.run),
        (
            "eval-loc",
            "fly a mission headless with vision in the loop and score the localization",
            eval_loc.add_arguments,
            eval_loc.run,
        ),
    ]
    parser = argparse.ArgumentParser(prog="intball", description="Open Int-Ball stack")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text, add_arguments, run in commands:
        command = sub.add_parser(name, help=help_text)
        add_arguments(command)
        command.set_defaults(func=run)

    map_command = sub.add_parser("map", help="localization map tools")
    map_sub = map_command.add_subparsers(dest="map_command", required=True)
    build = map_sub.add_parser("build", help="survey the module and build the natural-feature map")
    mapping.add_arguments(build)
    build.set_defaults(func=mapping.run)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    code = args.func(args)
    sys.exit(int(code or 0))


if __name__ == "__main__":
    main()
