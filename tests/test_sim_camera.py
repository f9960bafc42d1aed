"""Camera models, CameraInfo and the renderer: rendered images must match K exactly."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pybullet as p
import pytest

from intball_nav.frames import Pose, quat_from_rotmat, quat_from_rotvec, quat_multiply, rotmat_from_quat
from intball_nav.module import ModuleConfigError, load_marker_map, load_module
from intball_sim.camera import (
    Renderer,
    camera_info,
    load_cameras,
    project_points,
    projection_matrix,
    view_matrix,
)
from intball_sim.world import build_world

DATA = Path(__file__).resolve().parents[1] / "intball_nav" / "data"


@pytest.fixture(scope="module")
def cams():
    return load_cameras()


def test_camera_models_and_mounts(cams):
    main, left, right = cams["main"], cams["nav_left"], cams["nav_right"]
    assert (main.width, main.height) == (640, 480) and (left.width, left.height) == (320, 240)
    assert np.rad2deg(left.hfov) == pytest.approx(90.0, abs=0.5)
    assert 70.0 <= np.rad2deg(main.hfov) <= 80.0
    # optical z (forward) along body +x for the main camera, body -x for the rear nav pair
    np.testing.assert_allclose(rotmat_from_quat(main.T_base_cam.quat)[:, 2], [1, 0, 0], atol=1e-12)
    for cam in (left, right):
        R = rotmat_from_quat(cam.T_base_cam.quat)
        np.testing.assert_allclose(R[:, 2], [-1, 0, 0], atol=1e-12)
        np.testing.assert_allclose(R[:, 1], [0, 0, -1], atol=1e-12)  # image y down = body -z
    # stereo: right camera 5 cm along the left camera's optical x axis
    rel = left.T_base_cam.inverse().compose(right.T_base_cam)
    np.testing.assert_allclose(rel.position, [0.05, 0.0, 0.0], atol=1e-12)
    info = camera_info(right)
    assert info.P[0, 3] == pytest.approx(-right.K[0, 0] * 0.05)
    assert camera_info(left).P[0, 3] == 0.0
    np.testing.assert_array_equal(info.R, np.eye(3))
    assert info.D.shape == (5,) and not info.D.any()
    assert info.frame_id == "nav_right_camera_optical" and info.distortion_model == "plumb_bob"


def test_camera_loader_errors_name_the_field(tmp_path):
    text = (DATA / "cameras.yaml").read_text().replace("fx: 417.0", "fx: -417.0")
    (tmp_path / "cameras.yaml").write_text(text)
    with pytest.raises(ModuleConfigError, match=r"cameras\.yaml: cameras\.main\.fx"):
        load_cameras(tmp_path / "cameras.yaml")


def test_gl_matrices_reproduce_k(cams):
    """Pure math: the OpenGL view + projection map points to the pixel K predicts."""
    rng = np.random.default_rng(3)
    for model in cams.values():
        T = Pose(rng.normal(size=3), rng.normal(size=4))
        V = np.array(view_matrix(T)).reshape(4, 4).T
        P = np.array(projection_matrix(model)).reshape(4, 4).T
        pts = T.transform_points(np.column_stack([rng.uniform(-1, 1, (20, 2)), rng.uniform(0.5, 5, 20)]))
        clip = (P @ V @ np.column_stack([pts, np.ones(20)]).T).T
        ndc = clip[:, :3] / clip[:, 3:]
        u = (ndc[:, 0] + 1) * model.width / 2 - 0.5
        v = (1 - ndc[:, 1]) * model.height / 2 - 0.5
        uv, z = project_points(model, T, pts)
        np.testing.assert_allclose(np.column_stack([u, v]), uv, atol=1e-9)
        assert np.all(z > 0)


def _renderer_kinds():
    kinds = ["tiny"]
    cid = p.connect(p.DIRECT)
    try:
        if Renderer(cid, prefer_egl=True).kind == "egl":
            kinds.append("egl")
    finally:
        p.disconnect(cid)
    return kinds


@pytest.fixture(scope="module", params=_renderer_kinds())
def scene(request, monkeypatch_module):
    if request.param == "tiny":
        monkeypatch_module.setenv("INTBALL_RENDERER", "tiny")
    else:
        monkeypatch_module.delenv("INTBALL_RENDERER", raising=False)
    cid = p.connect(p.DIRECT)
    renderer = Renderer(cid)
    assert renderer.kind == request.param
    markers = load_marker_map()
    build_world(cid, load_module(), markers)
    yield renderer, markers
    renderer.close()
    p.disconnect(cid)


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _facing(position: np.ndarray, R_target: np.ndarray, distance: float, tilt: np.ndarray) -> Pose:
    """Optical-frame pose ``distance`` m in front of a surface frame, looking at it upright."""
    Rc = np.column_stack([R_target[:, 0], -R_target[:, 1], -R_target[:, 2]])
    return Pose(
        position + distance * R_target[:, 2], quat_multiply(quat_from_rotmat(Rc), quat_from_rotvec(tilt))
    )


@pytest.mark.parametrize("cam_name", ["nav_left", "main"])
def test_rendered_markers_match_projection_through_k(scene, cams, cam_name):
    renderer, markers = scene
    model = cams[cam_name]
    params = cv2.aruco.DetectorParameters()
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    detector = cv2.aruco.ArucoDetector(
        cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, markers.dictionary)), params
    )
    rng = np.random.default_rng(7)
    errors = []
    for marker_id in (5, 42, 77, 120, 141, 145, 99):  # overhead, deck, port, starboard, ends, dock
        m = markers.by_id(marker_id)
        distance = 0.5 if m.surface == "dock" else 1.0
        T = _facing(m.pose.position, rotmat_from_quat(m.pose.quat), distance, rng.normal(0, 0.1, 3))
        rgb, _ = renderer.render(model, T)
        assert rgb.shape == (model.height, model.width, 3) and rgb.dtype == np.uint8
        corners, ids, _ = detector.detectMarkers(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        assert ids is not None and marker_id in ids.ravel(), f"marker {marker_id} not detected"
        for c, i in zip(corners, ids.ravel(), strict=True):
            if int(i) not in markers.ids:
                continue
            uv, _ = project_points(model, T, markers.by_id(int(i)).corners())
            errors.append(c.reshape(4, 2) - uv)
    err = np.concatenate(errors)
    assert np.abs(err).max() < 2.0, f"max corner error {np.abs(err).max():.2f} px"
    assert np.all(np.abs(err.mean(axis=0)) < 0.25), f"principal point bias {err.mean(axis=0)} px"


def test_depth_is_metres_along_the_optical_axis(scene, cams):
    renderer, _ = scene
    module = load_module()
    model = cams["nav_left"]
    bay = module.bay("port_4")  # bay centres carry no marker: the ray hits the rack face
    for distance in (0.6, 1.5):
        T = _facing(bay.centre, rotmat_from_quat(bay.pose.quat), distance, np.zeros(3))
        _, depth = renderer.render(model, T)
        assert depth.dtype == np.float32
        assert depth[model.height // 2, model.width // 2] == pytest.approx(distance, abs=2e-3)
    # looking down the module from the entrance: the far wall is 9.6 m away on the axis
    T = Pose([0.0, 0.0, 0.0], quat_from_rotmat(np.column_stack([[0, -1, 0], [0, 0, -1], [1, 0, 0]])))
    _, depth = renderer.render(cams["main"], T)
    assert depth[240, 320] == pytest.approx(9.6, abs=0.02)
