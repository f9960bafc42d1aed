"""The `intball` command exposes every documented tool, and bad input fails cleanly."""

import subprocess
import sys

import pytest

from intball_ros.cli import build_parser

DOCUMENTED = ["up", "sim", "goal", "record", "replay", "eval-loc", "map", "compete"]


def test_every_documented_subcommand_parses():
    parser = build_parser()
    assert parser.parse_args(["sim", "--mission", "m.yaml", "--out", "o"]).command == "sim"
    assert parser.parse_args(["eval-loc", "--mission", "m.yaml", "--out", "o"]).command == "eval-loc"
    assert parser.parse_args(["map", "build"]).map_command == "build"
    choices = next(a for a in parser._actions if a.dest == "command").choices
    assert sorted(choices) == sorted(DOCUMENTED)


@pytest.mark.parametrize("argv", [["sim", "--out", "o"], ["map"], ["launch-rockets"]])
def test_bad_arguments_exit_2(argv):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2


def test_missing_mission_file_is_a_clear_error(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "intball_ros.cli",
            "sim",
            "--mission",
            str(tmp_path / "nope.yaml"),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "mission file not found" in proc.stderr
    assert "Traceback" not in proc.stderr
