"""Headless mission runner: outputs, waypoint sequencing, determinism, localization path, CLI."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

import intball_sim.headless as headless
from intball_nav.trajectory_io import read_tum
from intball_sim.headless import add_arguments, run, run_mission

SHORT = """\
version: 1
name: short
start: {position: [2.0, 0.0, 0.0], rpy_deg: [0, 0, 0]}
waypoints:
  - {position: [2.4, 0.1, 0.0], rpy_deg: [0, 0, 20], hold_s: 1}
  - {position: [2.2, -0.1, 0.1], rpy_deg: [0, 0, 0]}
"""


@pytest.fixture
def short_mission(tmp_path) -> Path:
    path = tmp_path / "short.yaml"
    path.write_text(SHORT)
    return path


def _without_wall_time(summary: dict) -> dict:
    timing = ("wall_time_s", "real_time_factor", "cpu_time_s", "real_time_factor_cpu")
    return {k: v for k, v in summary.items() if k not in timing}


def test_short_mission_outputs_and_accuracy(short_mission, tmp_path):
    out = tmp_path / "out"
    summary = run_mission(short_mission, out, seed=3)
    for name in ("ground_truth.tum", "estimate.tum", "summary.json", "trajectory.png"):
        assert (out / name).is_file(), name
    assert summary["all_reached"] and summary["collisions"] == 0
    assert summary["localization"] == "truth-noise" and summary["seed"] == 3
    assert summary["flight_mode"] == "nominal"
    for w in summary["waypoints"]:
        assert w["reached"] and w["position_error_m"] < 0.03 and w["attitude_error_deg"] < 2.0
        assert w["t_arrival_s"] > w["t_start_s"]
    w0, w1 = summary["waypoints"]
    assert w1["t_start_s"] >= w0["t_arrival_s"] + 1.0 - 1e-9  # hold_s respected
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["waypoints_reached"] == 2 and on_disk["sim_time_s"] == pytest.approx(summary["sim_time_s"])
    t, p, q = read_tum(out / "ground_truth.tum")
    te, pe, _ = read_tum(out / "estimate.tum")
    np.testing.assert_array_equal(t, te)
    assert np.all(np.diff(t) > 0) and t[-1] == pytest.approx(summary["sim_time_s"])
    assert np.median(np.diff(t)) == pytest.approx(1.0 / headless.LOG_HZ)
    np.testing.assert_allclose(p[0], [2.0, 0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-6)
    assert 0.0 < np.abs(pe - p).max() < 0.01  # estimate = truth + mm-level noise


def test_same_seed_same_run(short_mission, tmp_path):
    a = run_mission(short_mission, tmp_path / "a", seed=5, plot=False)
    b = run_mission(short_mission, tmp_path / "b", seed=5, plot=False)
    assert _without_wall_time(a) == _without_wall_time(b)
    truth = {k: (tmp_path / k / "ground_truth.tum").read_text() for k in ("a", "b")}
    assert truth["a"] == truth["b"]
    run_mission(short_mission, tmp_path / "c", seed=6, plot=False)
    assert (tmp_path / "c" / "ground_truth.tum").read_text() != truth["a"]


@pytest.mark.parametrize("mode", ["truth", "truth-noise"])
def test_controller_sees_only_the_named_estimate(short_mission, tmp_path, monkeypatch, mode):
    """Ground truth reaches gnc_step only through the estimator of the named mode."""
    seen: list[tuple] = []
    real_gnc_step = headless.gnc_step
    real_update = headless.TruthNoiseEstimator.update

    def update(self, truth):
        estimate = real_update(self, truth)
        seen.append(("estimate", estimate, truth))
        return estimate

    def gnc_step(gnc, estimate, t, params):
        seen.append(("gnc", estimate, None))
        return real_gnc_step(gnc, estimate, t, params)

    monkeypatch.setattr(headless.TruthNoiseEstimator, "update", update)
    monkeypatch.setattr(headless, "gnc_step", gnc_step)
    summary = run_mission(short_mission, tmp_path / mode, localization=mode, plot=False, max_time=5.0)
    assert summary["localization"] == mode
    estimates = {id(e) for kind, e, _ in seen if kind == "estimate"}
    given = [e for kind, e, _ in seen if kind == "gnc"]
    assert given and all(id(e) in estimates for e in given)
    offsets = [np.abs(e.position - tr.position).max() for kind, e, tr in seen if kind == "estimate"]
    if mode == "truth":
        assert max(offsets) == 0.0
    else:
        assert min(offsets) > 0.0


def test_waypoint_timeout_is_recorded_and_mission_goes_on(short_mission, tmp_path, monkeypatch):
    monkeypatch.setattr(headless, "TIMEOUT_FACTOR", 0.2)
    monkeypatch.setattr(headless, "TIMEOUT_MARGIN_S", 0.0)
    summary = run_mission(short_mission, tmp_path / "out", plot=False)
    assert not summary["all_reached"] and summary["waypoints_reached"] == 0
    assert len(summary["waypoints"]) == 2
    for w in summary["waypoints"]:
        assert not w["reached"] and w["message"].startswith("not reached within")
        assert w["position_error_m"] is None


def test_max_time_stops_and_marks_the_rest(short_mission, tmp_path):
    summary = run_mission(short_mission, tmp_path / "out", plot=False, max_time=3.0)
    assert summary["end"] == "max_time 3 s reached"
    assert summary["sim_time_s"] == pytest.approx(3.0)
    assert [w["reached"] for w in summary["waypoints"]] == [False, False]
    assert all("max_time" in w["message"] for w in summary["waypoints"])


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="intball sim")
    add_arguments(parser)
    return run(parser.parse_args(argv))


def test_cli_bad_mission_names_file_and_line_without_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SHORT.replace("[2.4, 0.1, 0.0]", "[2.4, 0.1]"))
    assert _cli(["--mission", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:5:" in err and "position" in err and "Traceback" not in err
    assert _cli(["--mission", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "o")]) == 2
    assert "not found" in capsys.readouterr().err


def test_cli_runs_and_reports(short_mission, tmp_path, capsys):
    code = _cli(["--mission", str(short_mission), "--out", str(tmp_path / "o"), "--seed", "2", "--fast"])
    assert code == 0
    out = capsys.readouterr().out
    assert "2/2 waypoints reached, 0 collisions" in out
    with pytest.raises(SystemExit):
        _cli(["--mission", "x", "--out", "y", "--realtime", "--fast"])  # mutually exclusive


def test_unknown_localization_rejected(short_mission, tmp_path):
    with pytest.raises(ValueError, match="not available headless"):
        run_mission(short_mission, tmp_path / "o", localization="vio")
