"""Target panels (intball_sim.targets): where they are placed, what is rejected, and that the
rendered panels are where their poses say (QR and ArUco detected on the projected corners)."""

from __future__ import annotations

import cv2
import numpy as np
import pybullet as p
import pytest

from intball_nav.frames import rotmat_from_quat
from intball_nav.module import load_marker_map, load_module
from intball_sim.camera import Renderer, load_cameras, project_points
from intball_sim.make_markers import STANDOFF
from intball_sim.targets import TARGET_ID_RANGE, TargetSpec, panel_image, place_targets, qr_image
from intball_sim.world import build_world


@pytest.fixture(scope="module")
def module():
    return load_module()


def test_target_specs_are_validated():
    with pytest.raises(ValueError, match="target id range"):
        TargetSpec("aruco", 12, "port_3")  # a map id
    with pytest.raises(ValueError, match="allowed: qr, aruco"):
        TargetSpec("apriltag", 1, "port_3")
    with pytest.raises(ValueError, match="non-empty text"):
        TargetSpec("qr", "", "port_3")
    assert TargetSpec("qr", "A1", "deck_2").name == "qr:A1"
    assert 200 in TARGET_ID_RANGE and 146 not in TARGET_ID_RANGE


def test_panel_images_decode_and_have_quiet_zones():
    img, modules = qr_image("KIBO-T1")
    assert modules == 21  # version 1
    ok, text, pts, _ = cv2.QRCodeDetector().detectAndDecodeMulti(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY))
    assert ok and text == ("KIBO-T1",)
    # the code spans modules * 12 px inside a 4-module white border
    np.testing.assert_allclose(pts.reshape(4, 2).min(axis=0), [48, 48], atol=1.5)
    assert np.all(img[:48] == 255) and np.all(img[:, :48] == 255)
    _, side = panel_image(TargetSpec("qr", "KIBO-T1", "port_3", size=0.21))
    assert side == pytest.approx(0.21 * 29 / 21)
    _, side = panel_image(TargetSpec("aruco", 210, "port_3", size=0.12))
    assert side == pytest.approx(0.12 * 8 / 6)


def test_place_targets_poses_and_rejections(module):
    cid = p.connect(p.DIRECT)
    try:
        specs = [
            TargetSpec("qr", "KIBO-T1", "port_3", (-0.2, 0.1), 0.16),
            TargetSpec("aruco", 210, "deck_5", (0.0, 0.1), 0.12, roll=np.pi / 2),
        ]
        placed = place_targets(cid, module, specs, marker_map=load_marker_map())
        assert set(placed) == {"qr:KIBO-T1", "aruco:210"}
        qr = placed["qr:KIBO-T1"]
        bay = module.bay("port_3")
        # 5 mm proud of the rack face, at the offset along the face axes (port: x = +x, y = +z)
        np.testing.assert_allclose(qr.position, bay.centre + [-0.2, 0.0, 0.1] + STANDOFF * bay.normal)
        np.testing.assert_allclose(rotmat_from_quat(qr.pose.quat)[:, 2], bay.normal, atol=1e-12)
        pos, orn = p.getBasePositionAndOrientation(qr.body_id, physicsClientId=cid)
        np.testing.assert_allclose(pos, qr.position, atol=1e-6)
        corners = qr.corners()
        np.testing.assert_allclose(corners[0], qr.position + [-0.08, 0, 0.08], atol=1e-12)  # top-left
        # rolled 90 deg on the deck: the marker's "up" is the deck face's -x axis (= +y kibo)
        ar = placed["aruco:210"]
        np.testing.assert_allclose(rotmat_from_quat(ar.pose.quat)[:, 1], [0, 1, 0], atol=1e-12)
        assert p.getNumBodies(physicsClientId=cid) == 2
        with pytest.raises(ValueError, match="does not fit"):
            place_targets(cid, module, [TargetSpec("qr", "X", "port_3", (0.45, 0.0), 0.2)])
        with pytest.raises(ValueError, match="may overlap map marker"):
            place_targets(
                cid,
                module,
                [TargetSpec("qr", "X", "port_3", (0.25, 0.45), 0.1)],
                marker_map=load_marker_map(),
            )
        with pytest.raises(ValueError, match="may overlap qr:A"):
            place_targets(
                cid, module, [TargetSpec("qr", "A", "port_3"), TargetSpec("qr", "B", "port_3", (0.1, 0))]
            )
        with pytest.raises(ValueError, match="duplicate"):
            place_targets(cid, module, [TargetSpec("qr", "A", "port_3"), TargetSpec("qr", "A", "port_4")])
    finally:
        p.disconnect(cid)


def test_rendered_targets_sit_on_their_projected_corners(module):
    """Geometry end to end: the detected corners of a rendered target match the projection of
    PlacedTarget.corners() through K (ArUco sub-pixel; QR corners come on a ~1 px grid)."""
    cid = p.connect(p.DIRECT)
    try:
        renderer = Renderer(cid)
        build_world(cid, module, load_marker_map())
        specs = [
            TargetSpec("qr", "KIBO-T1", "port_3", (-0.2, 0.0), 0.2),
            TargetSpec("aruco", 210, "port_3", (0.2, 0.0), 0.12),
        ]
        placed = place_targets(cid, module, specs)
        cam = load_cameras()["main"]
        from intball_nav.camera_tasks import plan_inspect

        T = plan_inspect(module, "port_3", cam, 0.7).T_kibo_cam
        rgb, _ = renderer.render(cam, T)
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        ok, texts, pts, _ = cv2.QRCodeDetectorAruco().detectAndDecodeMulti(gray)
        assert ok and "KIBO-T1" in texts
        uv, _ = project_points(cam, T, placed["qr:KIBO-T1"].corners())
        assert np.abs(pts.reshape(-1, 4, 2)[list(texts).index("KIBO-T1")] - uv).max() < 1.5
        params = cv2.aruco.DetectorParameters()
        params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
        det = cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_250), params)
        corners, ids, _ = det.detectMarkers(gray)
        k = list(ids.ravel()).index(210)
        uv, _ = project_points(cam, T, placed["aruco:210"].corners())
        assert np.abs(corners[k].reshape(4, 2) - uv).max() < 0.8
    finally:
        p.disconnect(cid)
