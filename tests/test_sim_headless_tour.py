"""End to end: the example tour flies completely in the headless simulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from intball_sim.headless import run_mission

TOUR = Path(__file__).resolve().parents[1] / "examples" / "tour.yaml"


@pytest.mark.slow
@pytest.mark.skipif(not TOUR.is_file(), reason="examples/tour.yaml not present")
def test_tour_reaches_every_waypoint_without_collision(tmp_path):
    summary = run_mission(TOUR, tmp_path, seed=0)
    assert summary["collisions"] == 0, summary["collision_events"]
    assert summary["all_reached"], [w["message"] for w in summary["waypoints"]]
    for w in summary["waypoints"]:
        assert w["position_error_m"] < 0.03, w
        assert w["attitude_error_deg"] < 2.0, w
    assert (tmp_path / "trajectory.png").stat().st_size > 10_000
