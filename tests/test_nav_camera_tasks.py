"""Camera-task cores (intball_nav.camera_tasks): geometry, files and rates, no rendering."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

from intball_nav.camera_tasks import (
    PointingError,
    RateLimiter,
    SnapshotMeta,
    VideoRecorder,
    coverage,
    load_snapshot,
    look_at,
    look_at_along,
    plan_face_survey,
    plan_inspect,
    plan_rotation_survey,
    pointing_error,
    resize_image,
    save_snapshot,
    stitch_images,
    tile_images,
)
from intball_nav.camera_tasks.pose_history import pose_at
from intball_nav.camera_tasks.snapshot import safe_name
from intball_nav.frames import Pose, quat_angle, quat_from_rpy, quat_multiply, rotmat_from_quat
from intball_nav.module import load_module
from intball_nav.safety import GoalRejected
from intball_sim.camera import load_cameras, project_points


@pytest.fixture(scope="module")
def cam():
    return load_cameras()["main"]


@pytest.fixture(scope="module")
def module():
    return load_module()


def _image_axes(T_kibo_cam: Pose) -> tuple[np.ndarray, np.ndarray]:
    """(image right, image up) unit vectors in kibo."""
    R = rotmat_from_quat(T_kibo_cam.quat)
    return R[:, 0], -R[:, 1]


# ----------------------------------------------------------------------------------- pointing
def test_look_at_puts_target_on_the_principal_point_with_up_overhead(cam, module):
    rng = np.random.default_rng(11)
    lo, hi = module.clear_min + 0.1, module.clear_max - 0.1
    n_fallback = 0
    for _ in range(300):
        pos, target = rng.uniform(lo, hi), rng.uniform(module.clear_min, module.clear_max)
        if np.linalg.norm(target - pos) < 0.3:
            continue
        sol = look_at(pos, target, cam.T_base_cam)
        T_kibo_cam = Pose(pos, sol.quat).compose(cam.T_base_cam)
        uv, z = project_points(cam, T_kibo_cam, target[None])
        assert z[0] == pytest.approx(sol.range, abs=1e-9) and z[0] > 0
        np.testing.assert_allclose(uv[0], cam.K[:2, 2], atol=0.5)
        assert np.abs(uv[0] - cam.K[:2, 2]).max() < 1e-6  # exact, not just within 0.5 px
        assert pointing_error(Pose(pos, sol.quat), target, cam.T_base_cam) < 1e-9
        right, up = _image_axes(T_kibo_cam)
        if sol.fallback:
            n_fallback += 1
            continue
        # documented roll: image right is horizontal, image up has a positive +z component
        assert abs(right[2]) < 1e-9 and up[2] > 0.0
    assert n_fallback < 10


def test_look_at_camera_offset_matters(cam):
    """The main camera sits on the body x axis, so body x points at the target; an off-axis
    mount is solved for the camera ray, not for body x."""
    pos, target = np.array([2.0, 0.0, 0.0]), np.array([2.3, 0.3, 0.2])
    sol = look_at(pos, target, cam.T_base_cam)
    body_x = rotmat_from_quat(sol.quat)[:, 0]
    to_target = (target - pos) / np.linalg.norm(target - pos)
    assert np.linalg.norm(np.cross(body_x, to_target)) < 1e-9  # on-axis mount: same ray
    # an off-axis mount (camera 8 cm to the left) still lands exactly on the principal point
    off = Pose(cam.T_base_cam.position + [0.0, 0.08, 0.0], cam.T_base_cam.quat)
    sol2 = look_at(pos, target, off)
    uv, _ = project_points(cam, Pose(pos, sol2.quat).compose(off), target[None])
    np.testing.assert_allclose(uv[0], cam.K[:2, 2], atol=1e-6)
    assert np.arccos(np.clip(rotmat_from_quat(sol2.quat)[:, 0] @ to_target, -1, 1)) > 0.05


def test_look_at_given_up_vector_and_degenerate_cases(cam):
    pos = np.array([3.0, 0.0, 0.0])
    # looking at the port wall with image up toward the far end (+x)
    sol = look_at(pos, [3.0, 1.05, 0.0], cam.T_base_cam, up=[1.0, 0.0, 0.0])
    right, up = _image_axes(sol.T_kibo_cam)
    np.testing.assert_allclose(up, [1, 0, 0], atol=1e-9)
    np.testing.assert_allclose(right, [0, 0, -1], atol=1e-9)
    # straight overhead with the default up: singular, falls back to +x kibo, still on axis
    sol = look_at(pos, [3.0, 0.0, 1.0], cam.T_base_cam)
    assert sol.fallback
    np.testing.assert_allclose(_image_axes(sol.T_kibo_cam)[1], [1, 0, 0], atol=1e-9)
    # ... or keeps the current roll when an attitude is given
    q_cur = quat_from_rpy(0.0, -np.pi / 2, 0.3)
    sol = look_at(pos, [3.0, 0.0, 1.0], cam.T_base_cam, current_quat=q_cur)
    assert sol.fallback
    cur_up = -rotmat_from_quat(q_cur) @ rotmat_from_quat(cam.T_base_cam.quat)[:, 1]
    assert _image_axes(sol.T_kibo_cam)[1] @ cur_up > 0.99
    # target at the camera (or inside the near range): rejected with a reason
    cam_pos = Pose(pos, [0, 0, 0, 1]).compose(cam.T_base_cam).position
    with pytest.raises(PointingError, match="minimum range"):
        look_at(pos, cam_pos, cam.T_base_cam)
    with pytest.raises(PointingError, match="minimum range"):
        look_at(pos, pos, cam.T_base_cam)
    with pytest.raises(PointingError, match="non-zero"):
        look_at(pos, [5.0, 0, 0], cam.T_base_cam, up=[0, 0, 0])
    with pytest.raises(PointingError, match="finite"):
        look_at(pos, [np.nan, 0, 0], cam.T_base_cam)


def test_look_at_along_a_path_keeps_the_target_centred_and_roll_continuous(cam):
    target = np.array([5.0, 1.05, 0.2])
    xs = np.linspace(3.0, 7.0, 81)
    path = np.column_stack([xs, np.full_like(xs, -0.2), 0.3 * np.sin(xs)])
    quats = look_at_along(path, target, cam.T_base_cam)
    for p, q in zip(path, quats, strict=True):
        assert pointing_error(Pose(p, q), target, cam.T_base_cam) < 1e-9
    steps = [2 * np.arccos(min(1.0, abs(a @ b))) for a, b in zip(quats[:-1], quats[1:], strict=True)]
    assert max(steps) < np.deg2rad(5.0)
    assert all(a @ b > 0 for a, b in zip(quats[:-1], quats[1:], strict=True))


# ------------------------------------------------------------------------------------ inspect
@pytest.mark.parametrize("bay_name", ["port_3", "starboard_6", "deck_2", "overhead_5"])
def test_inspect_pose_is_in_keep_in_at_the_standoff_and_centred(cam, module, bay_name):
    plan = plan_inspect(module, bay_name, cam, 0.8)
    bay = module.bay(bay_name)
    assert module.contains(plan.T_kibo_base.position, margin=0.10)
    cam_pos = plan.T_kibo_cam.position
    # camera on the bay normal through the centre, 0.8 m out
    assert (cam_pos - bay.centre) @ bay.normal == pytest.approx(0.8, abs=1e-9)
    np.testing.assert_allclose(np.cross(cam_pos - bay.centre, bay.normal), 0.0, atol=1e-9)
    uv, z = project_points(cam, plan.T_kibo_cam, bay.centre[None])
    np.testing.assert_allclose(uv[0], cam.K[:2, 2], atol=1e-6)
    assert z[0] == pytest.approx(0.8)
    # square on and upright: image up = face-frame +y
    np.testing.assert_allclose(
        _image_axes(plan.T_kibo_cam)[1], rotmat_from_quat(bay.pose.quat)[:, 1], atol=1e-9
    )
    assert plan.footprint == pytest.approx([640 * 0.8 / 417.0, 480 * 0.8 / 417.0])
    assert 0.3 < plan.bay_fraction < 0.7


def test_inspect_default_standoff_fits_the_bay_and_rejections_name_the_reason(cam, module):
    plan = plan_inspect(module, "deck_4", cam)  # deck bay 2.1 x 1.0 m fits at ~1.6 m
    assert plan.bay_fraction == pytest.approx(1.0)
    assert module.contains(plan.T_kibo_base.position, margin=0.10 - 1e-9)
    plan = plan_inspect(module, "port_4", cam)  # 2 m tall wall bay: limited by the far wall
    assert module.contains(plan.T_kibo_base.position, margin=0.10 - 1e-9)
    assert plan.bay_fraction > 0.9
    with pytest.raises(GoalRejected, match="keep-in"):
        plan_inspect(module, "port_3", cam, 2.0)
    with pytest.raises(GoalRejected, match="stowage_bag"):  # the bag in the far deck/port corner
        plan_inspect(module, "port_9", cam, 0.4, offset=(0.0, -0.7))
    with pytest.raises(GoalRejected, match="blocked by dock"):  # the rack behind the dock
        plan_inspect(module, "overhead_1", cam, 0.6, offset=(0.0, 0.3))
    with pytest.raises(GoalRejected, match="outside bay"):
        plan_inspect(module, "port_3", cam, 1.0, offset=(0.6, 0.0))
    with pytest.raises(KeyError):
        plan_inspect(module, "overhead_7", cam, 1.0)  # the ELM-PS opening is not a bay


# ------------------------------------------------------------------------------------- survey
@pytest.mark.parametrize("overlap", [0.2, 0.4])
def test_face_survey_covers_the_region_with_the_requested_overlap(cam, module, overlap):
    region = (-2.5, 0.5, -1.0, 1.0)  # port face, x 2.3 .. 5.3 m, full height
    plan = plan_face_survey(module, "port", cam, 1.2, overlap=overlap, region=region)
    assert coverage(module, plan, cam) == pytest.approx(1.0)
    for c in plan.captures:
        assert module.contains(c.T_kibo_base.position, margin=0.10)
        uv, _ = project_points(cam, c.T_kibo_cam, c.aim[None])
        np.testing.assert_allclose(uv[0], cam.K[:2, 2], atol=1e-6)
    # neighbours overlap by at least the requested fraction of the footprint
    foot_a = 640 * 1.2 / 417.0
    row0 = sorted(c.aim[0] for c in plan.captures if c.row == 0)
    assert max(np.diff(row0)) <= foot_a * (1 - overlap) + 1e-9
    # serpentine order: consecutive captures are grid neighbours
    for a, b in zip(plan.captures[:-1], plan.captures[1:], strict=True):
        assert abs(a.row - b.row) + abs(a.col - b.col) == 1
    # the whole port face at the far standoff: one row
    full = plan_face_survey(module, "port", cam, 1.85, overlap=overlap)
    assert full.rows == 1 and coverage(module, full, cam) == pytest.approx(1.0)


def test_rotation_survey_from_one_point_covers_the_region(cam, module):
    plan = plan_rotation_survey(module, "starboard", cam, [4.0, 0.5, 0.0], region=(-1.5, 1.5, -1.0, 1.0))
    assert all(np.allclose(c.T_kibo_base.position, [4.0, 0.5, 0.0]) for c in plan.captures)
    assert coverage(module, plan, cam) >= 0.99
    with pytest.raises(GoalRejected, match="keep-in"):
        plan_rotation_survey(module, "starboard", cam, [4.0, 1.0, 0.0])


def test_stitch_falls_back_to_tiles_and_says_why():
    rng = np.random.default_rng(0)
    imgs = [np.full((48, 64, 3), v, np.uint8) for v in (40, 120, 200)]  # featureless: cannot stitch
    res = stitch_images(imgs)
    assert res.method == "tiled" and res.status != 0 and res.reason
    assert res.image.shape == (24, 3 * 32 + 2 * 2, 3)
    assert res.image[12, 16, 0] == 40 and res.image[12, 34 + 16, 0] == 120
    grid = tile_images(
        [rng.integers(0, 255, (10, 10, 3), dtype=np.uint8)] * 2, 2, 1, [(1, 0), (0, 0)], scale=1.0
    )
    assert grid.shape == (22, 10, 3)


# ----------------------------------------------------------------------------------- snapshot
def test_snapshot_metadata_round_trip(tmp_path, cam):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    T_base = Pose([1.0, 0.2, -0.3], quat_from_rpy(0.1, 0.2, 0.3))
    T_cam = T_base.compose(cam.T_base_cam)
    small, K_small = resize_image(rgb, cam.K, 320, 240)
    np.testing.assert_allclose(K_small, [[208.5, 0, 159.5], [0, 208.5, 119.5], [0, 0, 1]])
    meta = SnapshotMeta(12.345, T_base, T_cam, K_small, 320, 240, extra={"task": "inspect", "bay": "port_3"})
    files = save_snapshot(tmp_path / "snaps", small, meta, name="../port 3/inspect?")
    assert files.image.parent == tmp_path / "snaps" and files.image.name == "port_3_inspect.png"
    again = save_snapshot(tmp_path / "snaps", small, meta, name="../port 3/inspect?")
    assert again.image.name == "port_3_inspect-1.png"  # never overwrites
    img, back = load_snapshot(files.sidecar)
    np.testing.assert_array_equal(img, small)  # PNG is lossless, RGB order kept
    assert back.stamp == 12.345 and back.extra == {"task": "inspect", "bay": "port_3"}
    np.testing.assert_allclose(back.T_kibo_base.position, T_base.position)
    np.testing.assert_allclose(back.T_kibo_cam.quat, T_cam.quat)
    np.testing.assert_allclose(back.K, K_small)
    assert (back.width, back.height, back.frame_id) == (320, 240, "main_camera_optical")
    assert json.loads(files.sidecar.read_text())["schema"] == "intball.snapshot/1"
    assert not list((tmp_path / "snaps").glob(".tmp-*"))
    assert safe_name("") == "snapshot" and "/" not in safe_name("a/../../b")
    with pytest.raises(ValueError, match="metadata says"):
        save_snapshot(tmp_path, rgb, meta)


# ---------------------------------------------------------------------------------- recording
@pytest.mark.parametrize("prefer", ["avi", "frames"])
def test_recording_writes_a_playable_file_or_frame_folder(tmp_path, prefer):
    frames = []
    for k in range(12):
        f = np.zeros((96, 128, 3), np.uint8)
        cv2.rectangle(f, (8 * k, 20), (8 * k + 20, 60), (255, 255, 255), -1)
        frames.append(f)
    with VideoRecorder(tmp_path / prefer, fps=10.0, size=(128, 96), duration=1.0, prefer=prefer) as rec:
        written = [rec.write(f, 0.1 * k + 0.003 * (k % 2)) for k, f in enumerate(frames)]
    info = rec.close()
    assert written == [True] * 10 + [False] * 2  # stops once the duration has elapsed
    assert info.kind == prefer and info.frames == 10 and info.duration == pytest.approx(0.9, abs=0.01)
    rows = list(csv.DictReader(info.index.open()))
    assert [int(r["frame"]) for r in rows] == list(range(10))
    assert float(rows[3]["stamp"]) == pytest.approx(0.303)
    if prefer == "avi":
        cap = cv2.VideoCapture(str(info.path))
        decoded = []
        while True:
            ok, f = cap.read()
            if not ok:
                break
            decoded.append(f)
        cap.release()
    else:
        decoded = [cv2.imread(str(tmp_path / prefer / r["file"])) for r in rows]
    assert len(decoded) == 10
    for k in (0, 9):  # content survives JPEG: the bright box is where it was drawn
        col = decoded[k][40].astype(int).sum(axis=1) > 300
        assert abs(np.flatnonzero(col).mean() - (8 * k + 10)) < 2


def test_rate_limiter_bounds_the_frame_rate():
    rng = np.random.default_rng(5)
    for max_hz, cam_hz in ((2.0, 30.0), (5.0, 30.0), (4.0, 7.0), (10.0, 3.0)):
        lim = RateLimiter(max_hz)
        stamps = np.cumsum(rng.uniform(0.7, 1.3, 3000) / cam_hz)
        stamps = np.concatenate([stamps, stamps[-1] + 20.0 + stamps[:300]])  # a pause in the middle
        sent = np.array([s for s in stamps if lim.allow(float(s))])
        for T in (0.5, 1.0, 3.0):
            counts = np.searchsorted(sent, sent + T, side="left") - np.arange(len(sent))
            assert counts.max() <= np.ceil(T * max_hz) + 1, (max_hz, cam_hz, T)
        span = stamps[2999] - stamps[0]
        achieved = np.sum(sent <= stamps[2999]) / span
        assert achieved <= max_hz * 1.01
        assert achieved >= 0.95 * min(max_hz, cam_hz)  # and does not throttle below the limit
    with pytest.raises(ValueError):
        RateLimiter(0.0)


def test_look_at_holds_while_the_body_is_perturbed(cam):
    """pointing_error measures the miss of a perturbed attitude (station-keeping monitor)."""
    pos, target = np.array([4.0, 0.0, 0.0]), np.array([4.0, 1.05, 0.5])
    q = look_at(pos, target, cam.T_base_cam).quat
    dq = quat_from_rpy(0.0, 0.0, np.deg2rad(2.0))
    err = pointing_error(Pose(pos, quat_multiply(dq, q)), target, cam.T_base_cam)
    assert err == pytest.approx(np.deg2rad(2.0), rel=0.1)


def _track(t: float) -> Pose:
    """A robot moving at 0.2 m/s along x while turning at 0.5 rad/s about z (kibo)."""
    return Pose(np.array([1.0 + 0.2 * t, 0.0, 0.0]), quat_from_rpy(0.0, 0.0, 0.5 * t))


def test_pose_at_the_image_stamp_interpolates_between_estimates():
    samples = [(0.01 * k, _track(0.01 * k)) for k in range(100)]  # 100 Hz, 1 s
    for stamp in (0.0, 0.123, 0.4567, 0.99):
        pose = pose_at(samples, stamp, lambda p: p)
        true = _track(stamp)
        assert np.linalg.norm(pose.position - true.position) < 1e-12
        assert quat_angle(pose.quat, true.quat) < 1e-9
    latest = samples[-1][1]  # what using the latest estimate for an image 0.5 s old costs:
    assert np.linalg.norm(latest.position - _track(0.49).position) > 0.09


def test_pose_at_refuses_stamps_the_history_does_not_cover():
    samples = [(0.01 * k, _track(0.01 * k)) for k in range(100)]
    assert pose_at(samples, 1.2, lambda p: p) is None  # newer than the last estimate
    assert pose_at(samples, -0.2, lambda p: p) is None  # older than the history
    assert pose_at(samples, 1.0, lambda p: p) is not None  # 10 ms past the last: within the gap
    gap = [s for s in samples if not 0.3 < s[0] < 0.5]  # estimates missing for 0.2 s
    assert pose_at(gap, 0.4, lambda p: p) is None
    assert pose_at(samples, 0.4, lambda p: None) is None  # an invalid sample
    assert pose_at([], 0.0, lambda p: p) is None
