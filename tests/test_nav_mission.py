"""Mission files: the example tour loads; every kind of error names the file and line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from intball_nav.flight_modes import load_flight_modes
from intball_nav.frames import quat_angle, quat_from_rpy
from intball_nav.mission import MissionError, load_mission, mission_duration_hint
from intball_nav.safety import Box

TOUR = Path(__file__).resolve().parents[1] / "examples" / "tour.yaml"
CLEAR = Box(np.array([0.0, -1.05, -1.0]), np.array([9.6, 1.05, 1.0]))
STOWAGE = Box(np.array([8.4, 0.45, -1.0]), np.array([9.3, 1.05, -0.55]), "stowage_bag")


def load(path):
    return load_mission(path, keep_in=CLEAR, radius=0.1, keep_out=[STOWAGE])


def test_example_tour_loads():
    m = load(TOUR)
    assert m.name == "kibo-tour" and m.version == 1 and m.flight_mode == "nominal"
    assert 5 <= len(m.waypoints) <= 8
    assert np.allclose(m.start.position, [1.10, 0.0, 0.43])
    assert quat_angle(m.waypoints[1].pose.quat, quat_from_rpy(0, 0, np.radians(90))) < 1e-12
    assert m.waypoints[1].hold_s == 5.0 and m.waypoints[3].flight_mode == "precision"
    assert np.allclose(m.waypoints[-1].pose.position, m.start.position)  # returns to the start
    xs = [w.pose.position[0] for w in m.waypoints]
    assert max(xs) >= 8.0  # goes along the module, to the far end
    assert 60.0 < mission_duration_hint(m, load_flight_modes()) < 600.0


def test_example_tour_with_the_module_defaults():
    assert load_mission(TOUR).name == "kibo-tour"


BASE = """\
version: 1
name: t
start: {position: [1.0, 0.0, 0.0], rpy_deg: [0, 0, 0]}
waypoints:
  - position: [2.0, 0.0, 0.0]
    rpy_deg: [0, 0, 90]
    hold_s: 3
  - {position: [3.0, 0.0, 0.0], quaternion: [0, 0, 0, 1]}
"""


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "[3.0, 0.0, 0.0], quaternion",
            "[11.0, 0.0, 0.0], quaternion",
            r"m.yaml:8: waypoints\[1\].position: x=11.00 m is beyond the keep-in limit 9.50 m",
        ),
        ("hold_s: 3", "hold_s: -1", r"m.yaml:7: waypoints\[0\].hold_s: -1 s is outside the allowed range"),
        ("hold_s: 3", "hold_s: three", r"m.yaml:7: waypoints\[0\].hold_s: expected a number, got 'three'"),
        ("hold_s: 3", "hold: 3", r"m.yaml:7: waypoints\[0\].hold: unknown key"),
        (
            "rpy_deg: [0, 0, 90]",
            "rpy_deg: [0, .nan, 90]",
            r"m.yaml:6: waypoints\[0\].rpy_deg\[1\]: must be a finite",
        ),
        (
            "rpy_deg: [0, 0, 90]",
            "rpy_deg: [0, 90]",
            r"m.yaml:6: waypoints\[0\].rpy_deg: expected a list of 3",
        ),
        (
            "    rpy_deg: [0, 0, 90]\n",
            "    rpy_deg: [0, 0, 90]\n    quaternion: [0, 0, 0, 1]\n",
            r"m.yaml:5: waypoints\[0\]: give either rpy_deg or quaternion, not both",
        ),
        ("    rpy_deg: [0, 0, 90]\n", "", r"m.yaml:5: waypoints\[0\]: missing orientation"),
        (
            "quaternion: [0, 0, 0, 1]",
            "quaternion: [0, 0, 0, 0]",
            r"m.yaml:8: waypoints\[1\].quaternion: zero",
        ),
        ("version: 1", "version: 2", r"m.yaml:1: version: unsupported version 2"),
        ("name: t\n", "name: t\nflight_mode: turbo\n", r"m.yaml:3: flight_mode: unknown flight mode 'turbo'"),
        (
            "start: {position: [1.0, 0.0, 0.0], ",
            "start: {",
            r"m.yaml:3: start: missing required key 'position'",
        ),
        (
            "[2.0, 0.0, 0.0]",
            "[8.8, 0.8, -0.8]",
            r"m.yaml:5: waypoints\[0\].position: .*keep-out zone stowage_bag",
        ),
        ("waypoints:\n", "waypoints: []\nx:\n", r"m.yaml:5: x: unknown key"),
        ("name: t", "name: [t]", r"m.yaml:2: name: expected a string"),
        ("  - {position", "  - {position: [1, 2, 3]\n", r"m.yaml:\d+: invalid YAML"),
    ],
)
def test_errors_name_file_line_and_field(tmp_path, old, new, expected):
    assert old in BASE
    path = tmp_path / "m.yaml"
    path.write_text(BASE.replace(old, new, 1))
    with pytest.raises(MissionError, match=expected):
        load(path)


def test_base_is_valid(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(BASE)
    m = load(path)
    assert [w.line for w in m.waypoints] == [5, 8]
    assert m.waypoints[1].hold_s == 0.0 and m.waypoints[1].flight_mode == "nominal"


def test_missing_file(tmp_path):
    with pytest.raises(MissionError, match="cannot read"):
        load(tmp_path / "nope.yaml")
