"""Docking trials in the headless PyBullet backend (the harness of bench/bench_docking.py).

Truth-plus-noise localization (the named ``truth-noise`` estimator mode): the dock-marker
pose estimate from vision is not wired yet; the marker-correction case below uses a synthetic
marker measurement (truth + noise when the marker is geometrically in the nav camera's view).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from intball_nav.autonomy.docking import staged_points
from intball_nav.autonomy.params import load_autonomy_params

pytest.importorskip("pybullet")

_PATH = Path(__file__).resolve().parents[1] / "bench" / "bench_docking.py"
_spec = importlib.util.spec_from_file_location("bench_docking", _PATH)
bench = importlib.util.module_from_spec(_spec)
sys.modules["bench_docking"] = bench  # dataclasses look their module up there
_spec.loader.exec_module(bench)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_docks_from_random_starts_within_1_cm_and_undocks(seed):
    r = bench.run_trial(seed)
    assert r.success, r.message
    assert r.contact_error_m <= 0.01, r
    assert r.contact_lateral_m <= 0.005
    assert r.contact_speed_mps <= 0.02  # a gentle touch
    assert r.battery_docked_delta > 0.0  # charging while docked
    assert r.undocked and r.standoff_error_m <= 0.02, r


def test_docks_without_a_contact_sensor_by_gap_and_stall():
    r = bench.run_trial(11, contact_sensor=False, undock=False)
    assert r.success and r.contact_error_m <= 0.01, r
    assert "stall at the dock face" in r.message


def test_start_beside_the_dock_goes_below_it_first():
    """A start whose straight path to the standoff passes the dock body: via point, no collision."""
    module = bench.load_module()
    params = load_autonomy_params(module=module).docking
    found = None
    for seed in range(500):
        start = bench.random_start(np.random.default_rng(seed), module, 0.1)
        if len(staged_points(start.position, params)) == 2:
            found = seed
            break
    assert found is not None
    r = bench.run_trial(found, undock=False)
    assert r.success and not r.collisions, r


def test_dock_marker_pose_removes_a_nav_bias():
    """With a 2 cm lateral bias in the nav estimate the robot touches 2 cm off and is not
    captured; the dock-marker pose (synthetic here) corrects it."""
    biased = bench.run_trial(5, bias_m=0.02, undock=False)
    assert not biased.docked
    corrected = bench.run_trial(5, bias_m=0.02, marker=True, undock=False)
    assert corrected.success and corrected.contact_error_m <= 0.01, corrected


def test_dock_marker_measured_in_rendered_nav_images_removes_a_nav_bias():
    """The same 2 cm bias, with the dock marker measured by DockMarkerSensor in rendered left nav
    camera images (the navigation node's path, no transport latency): captured, centred."""
    r = bench.run_trial(5, bias_m=0.02, marker_vision=True, undock=False)
    assert r.marker_seen >= 10, r  # the marker was in the images of align .. final
    assert r.success and r.contact_lateral_m <= 0.005, r
