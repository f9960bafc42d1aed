"""The dock-marker sensor (``intball_nav.autonomy.dock_marker``): the body in the dock frame from
the dock marker alone, on synthetic anti-aliased renders of the marker map (no simulator), and the
propagation of a fix to a later time with the estimate's motion."""

from __future__ import annotations

import numpy as np
import pytest

from intball_nav.autonomy.dock_marker import DockMarkerSensor, at_time
from intball_nav.autonomy.params import load_autonomy_params
from intball_nav.frames import Pose, quat_angle, quat_from_rotvec, quat_multiply
from intball_nav.module import load_marker_map, load_module
from intball_nav.vision.camera_geometry import render_planar_markers
from intball_nav.vision.markers import dictionary_from_name

pytest.importorskip("cv2")


@pytest.fixture(scope="module")
def setup():
    from intball_sim.camera import load_cameras

    module, mm = load_module(), load_marker_map()
    params = load_autonomy_params(module=module).docking
    cam = load_cameras()["nav_left"]
    return module, mm, params, cam, DockMarkerSensor(module.dock, mm, cam)


def view(mm, cam, T_kibo_base: Pose, rng) -> np.ndarray:
    markers = [(m.id, m.size, m.pose) for m in mm.markers]
    T_kibo_cam = T_kibo_base.compose(cam.T_base_cam)
    d = dictionary_from_name(mm.dictionary)
    return render_planar_markers(
        cam.K, cam.width, cam.height, T_kibo_cam, markers, d, noise_sigma=2.0, rng=rng
    )


@pytest.mark.parametrize("distance", [0.30, 0.26, 0.23])
def test_fix_at_the_standoff_is_the_true_dock_relative_pose(setup, distance):
    module, mm, params, cam, sensor = setup
    rng = np.random.default_rng(int(distance * 100))
    for _ in range(4):
        p = params.pose_at(distance)
        true = Pose(
            p.position + [*rng.normal(0.0, 0.01, 2), 0.0],
            quat_multiply(p.quat, quat_from_rotvec(rng.normal(0, 0.02, 3))),
        )
        fix = sensor.measure(view(mm, cam, true, rng), stamp=3.0)
        assert fix is not None
        T_dock_base = module.dock.pose.inverse().compose(true)
        err = fix.T_dock_base.position - T_dock_base.position
        assert np.linalg.norm(err[:2]) < 0.003 and abs(err[2]) < 0.001, err  # lateral, along the normal
        assert np.degrees(quat_angle(fix.T_dock_base.quat, T_dock_base.quat)) < 0.6
        assert fix.stamp == 3.0  # camera 0.10 m behind the centre, marker 5 mm proud of the face
        assert fix.distance == pytest.approx(distance - 0.105, abs=0.03)


def test_no_fix_without_the_dock_marker_in_view(setup):
    module, mm, params, cam, sensor = setup
    rng = np.random.default_rng(1)
    # other map markers in view (a rack face), not the dock's: no fix (the map markers are ignored)
    away = Pose(np.array([3.0, 0.0, 0.0]), quat_from_rotvec(np.array([0.0, np.pi / 2, 0.0])))
    assert sensor.measure(view(mm, cam, away, rng), 0.0) is None
    # too close: the marker fills the view
    assert sensor.measure(view(mm, cam, params.pose_at(0.12), rng), 0.0) is None


def test_at_time_moves_the_fix_by_the_estimate_motion_not_by_its_bias(setup):
    module, mm, params, cam, sensor = setup
    bias = np.array([0.02, -0.01, 0.0])
    true_then = params.pose_at(0.30)
    true_now = Pose(
        true_then.position + [0.003, 0.0, 0.02], quat_multiply(true_then.quat, quat_from_rotvec([0, 0, 0.01]))
    )
    fix = sensor.measure(view(mm, cam, true_then, np.random.default_rng(2)), 1.0)
    est_then, est_now = (Pose(T.position + bias, T.quat) for T in (true_then, true_now))
    now = at_time(fix, est_then, est_now)
    expected = module.dock.pose.inverse().compose(true_now)
    assert np.linalg.norm(now.position - expected.position) < 0.003
    assert quat_angle(now.quat, expected.quat) < np.radians(0.6)
