"""``intball eval-loc`` (sim/intball_sim/eval_loc.py): argument checking and one end-to-end run."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from intball_nav.evaluation import Trajectory
from intball_sim import eval_loc

ONE_WAYPOINT = """\
version: 1
name: eval-loc-smoke
flight_mode: nominal
start: {position: [1.10, 0.00, 0.43], rpy_deg: [0, 90, 0]}
waypoints:
  - {position: [1.50, 0.00, 0.25], rpy_deg: [0, 0, 0], hold_s: 1}
"""


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="intball eval-loc")
    eval_loc.add_arguments(parser)
    return parser.parse_args(["--mission", "m.yaml", "--out", "o", *argv])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--lighting", "0"), "argument --lighting: must be in (0, 10], got 0"),
        (("--lighting", "dark"), "argument --lighting: not a number: 'dark'"),
        (("--occlude-markers", "1.5"), "argument --occlude-markers: must be in [0, 1], got 1.5"),
        (("--occlude-markers", "0.5", "--no-markers"), "not allowed with argument --occlude-markers"),
        (("--camera-noise", "-1"), "argument --camera-noise: must be in [0, 100] gray levels"),
        (("--blur", "50"), "argument --blur: must be in [0, 20] px"),
        (("--camera-hz", "100"), "argument --camera-hz: must be in [0.5, 60] Hz"),
        (("--initial-pose-error", "0.3"), "expected M,DEG with two numbers >= 0"),
        (("--initial-pose-error", "0.3,-5"), "expected M,DEG with two numbers >= 0"),
        (("--cover-lens", "5:3"), "expected START:END in s with 0 <= START < END"),
        (("--features", "maybe"), "invalid choice: 'maybe'"),
        (("--main-camera", "yes"), "argument --main-camera: invalid choice: 'yes'"),
    ],
)
def test_bad_arguments_are_rejected_with_a_clear_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        parse(*argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_good_arguments_become_vision_options():
    pytest.importorskip("pybullet")
    args = parse(
        "--lighting", "0.6", "--occlude-markers", "0.5", "--camera-noise", "3", "--blur", "1.2",
        "--initial-pose-error", "0.2,15", "--cover-lens", "4:6", "--cover-lens", "10:11", "--features", "off",
        "--camera-hz", "8", "--seed", "4",
    )  # fmt: skip
    o = eval_loc.vision_options(args)
    assert (o.lighting, o.camera_noise_sigma, o.blur_px, o.camera_hz) == (0.6, 3.0, 1.2, 8.0)
    assert o.initial_pose_error == (0.2, 15.0) and o.lens_covered == ((4.0, 6.0), (10.0, 11.0))
    assert o.features is False
    assert len(o.marker_ids) == 147 - 74  # half of the 147 markers removed, seeded
    assert eval_loc.vision_options(args).marker_ids == o.marker_ids
    assert eval_loc.vision_options(parse("--no-markers")).marker_ids == ()
    assert o.main_camera and not eval_loc.vision_options(parse("--main-camera", "off")).main_camera


def test_missing_mission_file(tmp_path, capsys):
    rc = eval_loc.main(["--mission", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "mission file not found" in capsys.readouterr().err


def test_no_markers_without_a_feature_localizer_is_an_input_error(tmp_path, capsys):
    pytest.importorskip("pybullet")
    mission = tmp_path / "m.yaml"
    mission.write_text(ONE_WAYPOINT)
    rc = eval_loc.main(
        ["--mission", str(mission), "--out", str(tmp_path / "o"), "--no-markers", "--features", "off"]
    )
    assert rc == 2
    assert (
        "natural-feature localization requested (or no markers) but not available" in capsys.readouterr().err
    )


@pytest.mark.slow
def test_eval_loc_writes_its_outputs_with_perturbations(tmp_path, capsys):
    """Wrong confident prior (must relocalize), darker noisy blurred frames, 10 % markers covered."""
    pytest.importorskip("pybullet")
    mission = tmp_path / "m.yaml"
    mission.write_text(ONE_WAYPOINT)
    out = tmp_path / "out"
    argv = [
        "--mission", str(mission), "--out", str(out), "--seed", "2", "--features", "off",
        "--initial-pose-error", "0.3,10", "--lighting", "0.7", "--camera-noise", "2", "--blur", "0.6",
        "--occlude-markers", "0.1",
    ]  # fmt: skip
    rc = eval_loc.main(argv)
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "ATE" in printed and "target 1.0 cm / 0.5 deg (markers): met" in printed
    for name in (
        "ground_truth.tum",
        "estimate.tum",
        "eval.json",
        "summary.json",
        "error_over_time.png",
        "trajectory_overlay.png",
    ):
        assert (out / name).stat().st_size > 0, name
    ev = json.loads((out / "eval.json").read_text())
    assert ev["alignment"] == "none" and ev["targets"]["met"] and ev["targets"]["met_over_whole_run"]
    assert ev["while_localized"]["share_of_samples"] > 0.95
    assert ev["ate_rmse_cm"] < 1.0 and ev["ate_rmse_deg"] < 0.5
    assert ev["rpe_segments"] == 0 or ev["rpe_position_m_per_m"]["rmse"] < 0.02
    assert ev["perturbations"]["lighting"] == 0.7 and ev["perturbations"]["marker_ids"] == 147 - 15
    # the prior was wrong by 30 cm / 10 deg: rejected by the gate, then re-initialised from markers
    assert ev["prior"]["status"] == "initialised"
    assert (
        ev["outcomes"]["markers"].get("rejected", 0)
        + ev["outcomes"].get("single_marker", {}).get("rejected", 0)
        >= 10
    )
    assert ev["loss_response"]["initialised_s"] > 1.0
    gt, est = Trajectory.from_tum(out / "ground_truth.tum"), Trajectory.from_tum(out / "estimate.tum")
    assert len(gt) == len(est) > 50 and np.all(gt.t == est.t)
