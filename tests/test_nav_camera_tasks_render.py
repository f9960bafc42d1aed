"""Camera tasks against rendered images: targets placed with intball_sim.targets, images from
the Renderer (EGL, or TinyRenderer where EGL is missing), main camera 640x480."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pybullet as p
import pytest

from intball_nav.camera_tasks import (
    ReaderConfig,
    config_for_map,
    coverage,
    look_at,
    plan_face_survey,
    plan_inspect,
    read_codes,
    stitch_images,
)
from intball_nav.camera_tasks.survey import mosaic_on_face
from intball_nav.frames import Pose, quat_from_rotvec, quat_multiply, rotmat_from_quat
from intball_nav.module import face_rotation, load_marker_map, load_module
from intball_sim.camera import Renderer, load_cameras
from intball_sim.targets import TargetSpec, place_targets
from intball_sim.world import build_world

SPECS = [
    TargetSpec("qr", "KIBO-T1", "port_3", (-0.2, 0.0), 0.16),
    TargetSpec("aruco", 210, "port_3", (0.2, 0.0), 0.12),
    TargetSpec("qr", "DECK-7", "deck_6", (0.1, 0.0), 0.18, roll=0.4),
    TargetSpec("aruco", 222, "starboard_5", (0.0, -0.2), 0.15, roll=-0.3),
]
CONFIG = ReaderConfig(
    marker_sizes={210: 0.12, 222: 0.15},
    qr_sizes={"KIBO-T1": 0.16, "DECK-7": 0.18},
    aruco_ids=frozenset(range(200, 250)),
)


@pytest.fixture(scope="module")
def scene():
    cid = p.connect(p.DIRECT)
    renderer = Renderer(cid)  # before the world (EGL textures)
    module, markers = load_module(), load_marker_map()
    build_world(cid, module, markers)
    placed = place_targets(cid, module, SPECS, marker_map=markers)
    yield renderer, module, markers, placed, load_cameras()["main"]
    renderer.close()
    p.disconnect(cid)


def _perturbed(T: Pose, rng: np.random.Generator, dp: float, dth: float) -> Pose:
    return Pose(
        T.position + rng.normal(0, dp, 3), quat_multiply(T.quat, quat_from_rotvec(rng.normal(0, dth, 3)))
    )


def test_read_codes_ids_text_and_3d_positions(scene):
    renderer, module, _, placed, cam = scene
    rng = np.random.default_rng(4)
    errors = {"pnp": [], "depth": []}
    for bay, standoff in (("port_3", 0.6), ("port_3", 1.0), ("deck_6", 0.8), ("starboard_5", 1.2)):
        T = _perturbed(plan_inspect(module, bay, cam, standoff).T_kibo_cam, rng, 0.04, 0.06)
        rgb, depth = renderer.render(cam, T)
        expected = {n: t for n, t in placed.items() if t.spec.bay == bay}
        for d in (None, depth):
            readings = read_codes(rgb, cam, T, depth=d, config=CONFIG)
            got = {f"{r.kind}:{r.value}": r for r in readings}
            assert set(got) == set(expected), (bay, standoff, sorted(got))  # no phantoms, none missed
            for name, target in expected.items():
                r = got[name]
                err = float(np.linalg.norm(r.position - target.position))
                errors[r.method].append(err)
                assert err < 0.02, (name, standoff, r.method, err)
                assert err < 4.0 * r.sigma + 0.002, (name, r.method, err, r.sigma)  # honest covariance
                if r.method == "pnp":  # orientation: the code normal faces the camera along the bay normal
                    assert (
                        np.degrees(np.arccos(rotmat_from_quat(r.quat)[:, 2] @ module.bay(bay).normal)) < 10.0
                    )
    # corners refined by aligning the code pattern (ECC): sub-mm on EGL images, a few mm on Tiny
    assert np.median(errors["depth"]) < 0.002 and np.median(errors["pnp"]) < 0.004


def test_read_codes_adds_the_camera_pose_covariance(scene):
    renderer, module, _, placed, cam = scene
    T = plan_inspect(module, "port_3", cam, 0.8).T_kibo_cam
    rgb, _ = renderer.render(cam, T)
    base = {r.value: r for r in read_codes(rgb, cam, T, config=CONFIG)}
    cov_pose = np.diag([1e-4] * 3 + [1e-4] * 3)  # 1 cm, 10 mrad
    more = {r.value: r for r in read_codes(rgb, cam, T, config=CONFIG, pose_covariance=cov_pose)}
    for v, r in base.items():
        # position noise + range^2 * angle noise across the ray
        assert more[v].sigma > np.sqrt(r.sigma**2 + 1e-4) * 0.99
        np.testing.assert_allclose(more[v].position, r.position)


def test_look_at_centres_the_target_in_the_rendered_image_with_up_overhead(scene):
    renderer, _, _, placed, cam = scene
    target = placed["aruco:222"]
    rng = np.random.default_rng(8)
    for _ in range(3):
        pos = target.position + np.array([0.0, 1.0, 0.0]) + rng.normal(0, [0.4, 0.2, 0.3])
        sol = look_at(pos, target.position, cam.T_base_cam)
        rgb, _ = renderer.render(cam, sol.T_kibo_cam)
        r = [r for r in read_codes(rgb, cam, sol.T_kibo_cam, config=CONFIG, qr=False) if r.value == 222][0]
        a, b, c, d = r.corners  # TL, TR, BR, BL as printed
        l1, l2 = np.cross([*a, 1], [*c, 1]), np.cross([*b, 1], [*d, 1])
        centre = np.cross(l1, l2)[:2] / np.cross(l1, l2)[2]
        # EGL matches K to ~0.2 px; TinyRenderer (no antialiasing) to ~0.5 px (docs/module.md)
        tol = 0.5 if renderer.kind == "egl" else 1.0
        assert np.abs(centre - cam.K[:2, 2]).max() < tol, centre - cam.K[:2, 2]
        # image up = +z kibo: the wall point 5 cm above the target (mapped through the homography
        # of the detected corners) is straight above the image centre
        R_t = rotmat_from_quat(target.pose.quat)
        local = (target.corners() - target.position) @ R_t  # (4,3), z = 0: in the marker plane
        H, _ = cv2.findHomography(local[:, :2], r.corners)
        above = R_t.T @ np.array([0.0, 0.0, 0.05])  # kibo +z lies in the starboard wall
        x = H @ np.array([above[0], above[1], 1.0])
        x = x[:2] / x[2]
        assert abs(x[0] - cam.K[0, 2]) < 0.5 and x[1] < cam.K[1, 2] - 5.0, x - cam.K[:2, 2]


def test_inspect_pose_renders_the_bay_square_on_at_the_standoff(scene):
    renderer, module, _, _, cam = scene
    for bay_name, standoff in (("port_4", 0.9), ("overhead_3", 0.7)):
        plan = plan_inspect(module, bay_name, cam, standoff)
        _, depth = renderer.render(cam, plan.T_kibo_cam)
        # bay centres carry no marker: the optical axis hits the rack face at the standoff
        assert depth[240, 320] == pytest.approx(standoff, abs=3e-3)
        # square on: depth is the same at the left/right and top/bottom of the image
        assert depth[240, 100] == pytest.approx(depth[240, 540], abs=3e-3)
        assert depth[60, 320] == pytest.approx(depth[420, 320], abs=3e-3)


def test_survey_of_a_rack_face_stitches_into_a_metric_overview(scene):
    renderer, module, markers, _, cam = scene
    region = (-2.5, 0.5, -1.0, 1.0)  # port face, x 2.3 .. 5.3 m (bays port_3 .. port_5)
    plan = plan_face_survey(module, "port", cam, 1.2, overlap=0.5, region=region)
    assert coverage(module, plan, cam) >= 0.99
    images = [renderer.render(cam, c.T_kibo_cam)[0] for c in plan.captures]
    res = stitch_images(images, plan=plan, module=module, camera=cam)
    assert res.method in ("stitched", "mosaic")
    if res.method == "stitched":  # one panorama wider than tall, larger than one image
        h, w = res.image.shape[:2]
        assert w > 1.3 * 640 and w > h
    # the known-pose mosaic is metric: map markers appear where the map puts them
    s = 120.0
    mosaic = mosaic_on_face(module, plan, images, cam, px_per_m=s)
    assert mosaic.shape == (240, 360, 3) and (mosaic.sum(axis=2) > 0).mean() > 0.9  # black: code cells
    det = cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_250))
    corners, ids, _ = det.detectMarkers(cv2.cvtColor(mosaic, cv2.COLOR_RGB2GRAY))
    R = face_rotation("port")
    p0, _ = module.face_plane("port")
    found = 0
    for c, i in zip(corners, ids.ravel(), strict=True):
        if int(i) not in markers.ids:
            continue
        m = markers.by_id(int(i))
        a, b = (m.pose.position - p0) @ R[:, 0], (m.pose.position - p0) @ R[:, 1]
        expected = np.array([(a - region[0]) * s - 0.5, (region[3] - b) * s - 0.5])
        assert np.linalg.norm(c.reshape(4, 2).mean(axis=0) - expected) < 2.0
        found += 1
    assert found >= 10  # 12 map markers on three port bays


def test_map_markers_are_read_at_their_map_positions(scene):
    renderer, module, markers, placed, cam = scene
    cfg = config_for_map(markers, {210: 0.12, 222: 0.15}, qr_sizes={"KIBO-T1": 0.16, "DECK-7": 0.18})
    T = plan_inspect(module, "port_3", cam, 1.1).T_kibo_cam
    rgb, _ = renderer.render(cam, T)
    readings = read_codes(rgb, cam, T, config=cfg)
    map_reads = [r for r in readings if r.kind == "aruco" and r.value in set(markers.ids.tolist())]
    assert len(map_reads) >= 4  # the four markers of port_3 at least
    for r in map_reads:  # up to 1.4 m away, some at the image edge
        err = np.linalg.norm(r.position - markers.by_id(r.value).pose.position)
        assert err < 0.02 and err < 4.0 * r.sigma + 0.002, (r.value, err, r.sigma)
    assert {"KIBO-T1", 210} <= {r.value for r in readings}


def _centre_views(n: int, seed: int = 0) -> list[Pose]:
    """Main camera poses of the robot at the module centre looking at the far end (the ROS
    read_codes test's view), jittered by 2 mm / 0.5 mrad as the start-up transient does."""
    cam = load_cameras()["main"]
    rng = np.random.default_rng(seed)
    views = []
    for _ in range(n):
        dq = np.r_[rng.normal(0, 0.0005, 3), 1.0]
        views.append(Pose(np.array([4.8, 0, 0]) + rng.normal(0, 0.002, 3), dq / np.linalg.norm(dq)))
    return [T.compose(cam.T_base_cam) for T in views]


def _map_read_errors(renderer, cam, markers, cfg, views) -> list[tuple[int, float, float]]:
    """[(id, error m, allowed m)] of the map markers read in each view."""
    out = []
    for T in views:
        rgb, _ = renderer.render(cam, T)
        for r in read_codes(rgb, cam, T, config=cfg):
            if r.kind == "aruco" and r.value in set(markers.ids.tolist()):
                true = markers.by_id(r.value).pose.position
                allowed = 0.02 + 0.015 * float(np.linalg.norm(true - T.position))
                out.append((r.value, float(np.linalg.norm(r.position - true)), allowed))
    return out


def test_far_oblique_markers_are_not_reported_as_phantoms_or_gross_errors(scene):
    """From the module centre, deck and overhead markers 3-4.5 m ahead are seen at grazing angles
    as ~20 x 4 px quads: sub-pixel cells. Read anyway, they gave phantom ids placed 4 m off
    (17, 127) and 9-18 cm errors, depending on mm of pose. The cell-size gate drops them and the
    1-sigma gate drops what the reader itself rates poor; the rest are within 2 cm + 1.5 % of range."""
    renderer, module, markers, placed, cam = scene
    views = _centre_views(20)
    cfg = config_for_map(markers, {210: 0.12, 222: 0.15})
    ungated = _map_read_errors(renderer, cam, markers, replace(cfg, min_cell_px=0.0), views)
    assert any(e > a for _, e, a in ungated)  # the failure this guards against is in these views
    gated = _map_read_errors(renderer, cam, markers, replace(cfg, max_sigma=0.05), views)
    assert len(gated) >= 15 * len(views)  # ~20 markers per view remain
    bad = [(i, round(e, 3), round(a, 3)) for i, e, a in gated if e >= a]
    assert not bad, bad
