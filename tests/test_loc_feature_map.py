"""Natural-feature map: file format and its errors (fast), and localization on rendered frames of the
module WITHOUT fiducial markers (slow: the default map is built into the cache on first use,
4-6 min on a 2-core machine; later runs load it in < 1 s).

Accuracy frames: the robot centre uniform in the keep-in box (clear volume shrunk by 0.1 m, clear of
the cargo bag and the dock) with a uniformly random attitude, rendered by EGL for the left nav
camera (320x240). Error of a pose: position of base_link (m) and rotation angle (deg) against the
rendered ground truth.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
import zipfile

import cv2
import numpy as np
import pybullet as p
import pytest
from scipy.spatial import cKDTree

from intball_nav.frames import Pose, quat_angle, quat_from_rotvec, quat_multiply
from intball_nav.module import load_marker_map, load_module
from intball_nav.vision.feature_map import (
    FORMAT_VERSION,
    FeatureLocalizer,
    FeatureMap,
    FeatureMapError,
    OrbParams,
    hamming,
    load_feature_map,
    save_feature_map,
)
from intball_nav.vision.markers import PoseMeasurement
from intball_sim.camera import Renderer, load_cameras
from intball_sim.world import build_world

ROBOT_RADIUS = 0.10
# a pose is "correct" within these (the issue #3 ATE targets are 3 cm / 1.5 deg)
OK_POS = 0.05
OK_DEG = 2.0


# ------------------------------------------------------------------------------ file format
def tiny_map(n: int = 50, k: int = 4, seed: int = 0) -> FeatureMap:
    rng = np.random.default_rng(seed)
    ids = [rng.choice(n, 10, replace=False).astype(np.int32) for _ in range(k)]
    dirs = rng.normal(size=(n, 3))
    return FeatureMap(
        points=rng.uniform(-1, 1, (n, 3)),
        descriptors=rng.integers(0, 256, (n, 32), dtype=np.uint8),
        n_obs=rng.integers(3, 9, n).astype(np.int32),
        view_dirs=(dirs / np.linalg.norm(dirs, axis=1, keepdims=True)).astype(np.float32),
        dist_range=np.tile(np.array([0.5, 2.0], np.float32), (n, 1)),
        kf_poses=np.column_stack([rng.normal(size=(k, 3)), np.tile([0.0, 0.0, 0.0, 1.0], (k, 1))]),
        kf_offsets=np.arange(0, 10 * k + 1, 10, dtype=np.int64),
        kf_point_ids=np.concatenate(ids),
        meta={
            "detector": {"type": "ORB", "params": {"n_features": 1500}},
            "camera": {"name": "nav_left", "width": 320, "height": 240},
        },
    )


def test_map_file_round_trip(tmp_path):
    fmap = tiny_map()
    path = save_feature_map(fmap, tmp_path / "m.npz")
    back = load_feature_map(path)
    for name in ("points", "descriptors", "n_obs", "view_dirs", "dist_range", "kf_poses", "kf_offsets"):
        np.testing.assert_array_equal(getattr(back, name), getattr(fmap, name))
    np.testing.assert_array_equal(back.keyframe_points(2), fmap.keyframe_points(2))
    assert back.meta["version"] == FORMAT_VERSION and back.meta["format"] == "intball-feature-map"
    assert back.meta["camera"]["name"] == "nav_left"
    assert back.orb_params() == OrbParams(n_features=1500)
    with zipfile.ZipFile(path) as z:  # plain arrays, no pickles
        assert all(name.endswith(".npy") for name in z.namelist())


def test_truncated_file_names_the_problem(tmp_path):
    path = save_feature_map(tiny_map(), tmp_path / "m.npz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FeatureMapError, match=r"m\.npz: not a readable feature map \(truncated or corrupt"):
        load_feature_map(path)
    path.write_bytes(b"")
    with pytest.raises(FeatureMapError, match="truncated or corrupt"):
        load_feature_map(path)


def _rewrite_meta(path, **changes):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("meta")))
    meta.update(changes)
    np.savez(path, meta=np.array(json.dumps(meta)), **arrays)


def test_wrong_version_or_format_is_refused(tmp_path):
    path = save_feature_map(tiny_map(), tmp_path / "old.npz")
    _rewrite_meta(path, version=0)
    with pytest.raises(FeatureMapError, match=r"old\.npz: meta\.version is 0, this code reads version 1"):
        load_feature_map(path)
    _rewrite_meta(path, version=FORMAT_VERSION, format="something-else")
    with pytest.raises(FeatureMapError, match=r"meta\.format is 'something-else'"):
        load_feature_map(path)
    np.savez(path, points=np.zeros((3, 3)))
    with pytest.raises(FeatureMapError, match="no 'meta' entry"):
        load_feature_map(path)


def test_bad_arrays_are_named(tmp_path):
    path = save_feature_map(tiny_map(), tmp_path / "m.npz")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    bad = dict(arrays, descriptors=arrays["descriptors"][:, :16])
    np.savez(path, **bad)
    with pytest.raises(FeatureMapError, match=r"m\.npz: array 'descriptors' has shape \(50, 16\)"):
        load_feature_map(path)
    bad = dict(arrays, kf_point_ids=arrays["kf_point_ids"] + 1000)
    np.savez(path, **bad)
    with pytest.raises(FeatureMapError, match="kf_point_ids references points outside"):
        load_feature_map(path)
    bad = {k: v for k, v in arrays.items() if k != "view_dirs"}
    np.savez(path, **bad)
    with pytest.raises(FeatureMapError, match="array 'view_dirs' is missing"):
        load_feature_map(path)


def test_hamming_matches_opencv():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (20, 32), dtype=np.uint8)
    b = rng.integers(0, 256, (20, 32), dtype=np.uint8)
    expected = [cv2.norm(x, y, cv2.NORM_HAMMING) for x, y in zip(a, b, strict=True)]
    np.testing.assert_array_equal(hamming(a, b), expected)


def test_hamming_broadcasts_rows():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (7, 32), dtype=np.uint8)
    expected = [[cv2.norm(x, y, cv2.NORM_HAMMING) for y in a] for x in a]
    np.testing.assert_array_equal(hamming(a[:, None, :], a[None, :, :]), expected)


def _test_camera(f: float = 160.0):
    """A 320x240 camera model with focal length f px, mounted at the base_link origin."""
    from types import SimpleNamespace

    K = np.array([[f, 0.0, 159.5], [0.0, f, 119.5], [0.0, 0.0, 1.0]])
    return SimpleNamespace(K=K, width=320, height=240, T_base_cam=Pose(np.zeros(3), np.array([0, 0, 0, 1.0])))


def _synthetic_scene(seed: int, n: int = 3000):
    """(rng, map, camera): a seeded random map of n points 0.5-4 m in front of the identity pose of
    ``_test_camera()``, all facing it, and the generator that drew them (for the test's own draws)."""
    rng = np.random.default_rng(seed)
    fmap = tiny_map(n=n, seed=seed)
    points = rng.uniform([-2.0, -1.5, 0.5], [2.0, 1.5, 4.0], (n, 3))
    fmap = dataclasses.replace(
        fmap,
        points=points,
        view_dirs=np.tile(np.array([0.0, 0.0, -1.0], np.float32), (n, 1)),
        dist_range=np.tile(np.array([0.3, 5.0], np.float32), (n, 1)),
    )
    return rng, fmap, _test_camera()


def _pool_test_localizer(rng: np.random.Generator) -> FeatureLocalizer:
    """A localizer of a seeded random map of 4000 points within 3 m of the origin, mostly facing it."""
    fmap = tiny_map(n=4000, seed=3)
    n = fmap.n_points
    points = rng.uniform(-3.0, 3.0, (n, 3))
    dirs = -points + rng.normal(0.0, 0.5, (n, 3))  # mostly facing the origin
    near = np.linalg.norm(points, axis=1)
    lo = near * rng.uniform(0.3, 1.0, n)
    fmap = dataclasses.replace(
        fmap,
        points=points,
        view_dirs=(dirs / np.linalg.norm(dirs, axis=1, keepdims=True)).astype(np.float32),
        dist_range=np.column_stack([lo, lo * rng.uniform(1.0, 3.0, n)]).astype(np.float32),
    )
    return FeatureLocalizer(fmap, _test_camera())


def test_candidate_pool_is_exact_for_nearby_poses():
    """The per-frame candidate pool (``_pool``) gives exactly the candidates of the whole map for
    every camera pose within POOL_SHIFT_M / POOL_TURN_RAD of its own, including points close to the
    camera and at the image border (seeded random map around the camera, random nearby poses)."""
    from intball_nav.vision.feature_map import POOL_SHIFT_M, POOL_TURN_RAD

    rng = np.random.default_rng(3)
    loc = _pool_test_localizer(rng)
    n = loc.map.n_points
    checked = 0
    for _ in range(20):
        q = rng.normal(size=4)
        T0 = Pose(rng.normal(0.0, 0.2, 3), q / np.linalg.norm(q))
        pool = loc._pool(T0, 20.0)
        assert len(pool.ids) < n
        for _ in range(10):
            shift = rng.normal(size=3)
            shift *= rng.uniform(0, POOL_SHIFT_M) / np.linalg.norm(shift)
            axis = rng.normal(size=3)
            turn = axis / np.linalg.norm(axis) * rng.uniform(0, POOL_TURN_RAD)
            T = Pose(T0.position + shift, quat_multiply(quat_from_rotvec(turn), T0.quat))
            assert pool.covers(T, 4.0)
            for margin in (20.0, 4.0, 0.0):
                ids_full, uv_full = loc._candidates(T, margin)
                ids_pool, uv_pool = loc._candidates(T, margin, pool)
                np.testing.assert_array_equal(ids_pool, ids_full)
                np.testing.assert_allclose(uv_pool, uv_full)
                checked += len(ids_full)
    assert checked > 1000  # the poses did see points
    far = Pose(T0.position + [2 * POOL_SHIFT_M, 0, 0], T0.quat)
    assert not pool.covers(far, 4.0) and not pool.covers(T0, 30.0)


def _near_pose(rng: np.random.Generator, T0: Pose, shift_m: float, turn_rad: float) -> Pose:
    shift = rng.normal(size=3)
    shift *= shift_m / np.linalg.norm(shift)
    axis = rng.normal(size=3)
    turn = axis / np.linalg.norm(axis) * turn_rad
    return Pose(T0.position + shift, quat_multiply(quat_from_rotvec(turn), T0.quat))


def test_frame_pool_is_reused_only_within_its_room_and_gives_the_same_candidates():
    """``_frame_pool`` keeps the previous frame's pool while the new prior lies within
    POOL_REUSE_SHARE of its bounds and needs no wider margin; the reused pool gives exactly the
    candidates of a new pool and of the whole map at every pass pose near the new prior; beyond
    those bounds, with a wider margin, or for another camera (``for_camera``) a new pool is built."""
    from intball_nav.vision.feature_map import POOL_REUSE_SHARE, POOL_SHIFT_M, POOL_TURN_RAD

    rng = np.random.default_rng(11)
    loc = _pool_test_localizer(rng)
    share = POOL_REUSE_SHARE
    checked = reused = 0
    for _ in range(15):
        q = rng.normal(size=4)
        T0 = Pose(rng.normal(0.0, 0.2, 3), q / np.linalg.norm(q))
        pool = loc._frame_pool(T0, 20.0)
        assert loc._frame_pool(T0, 4.0) is pool  # a narrower margin: same pool
        assert loc._frame_pool(T0, 30.0) is not pool  # a wider one: a new pool
        pool = loc._frame_pool(T0, 20.0)
        assert pool.T_kibo_cam is T0
        for _ in range(6):
            # the next frame's prior, inside the room: the pool is kept
            shift, turn = rng.uniform(0, share * POOL_SHIFT_M), rng.uniform(0, share * POOL_TURN_RAD)
            T1 = _near_pose(rng, T0, shift, turn)
            assert loc._frame_pool(T1, 20.0) is pool
            reused += 1
            fresh = loc._pool(T1, 20.0)
            for _ in range(3):  # the passes' poses, a few cm / tenths of a degree from the prior
                T = _near_pose(rng, T1, rng.uniform(0, 0.04), rng.uniform(0, np.radians(1.0)))
                for margin in (20.0, 4.0):
                    ids_full, uv_full = loc._candidates(T, margin)
                    for candidate_pool in (pool, fresh):
                        ids, uv = loc._candidates(T, margin, candidate_pool)
                        np.testing.assert_array_equal(ids, ids_full)
                        np.testing.assert_allclose(uv, uv_full, rtol=0, atol=1e-9)
                    checked += len(ids_full)
        # beyond the room (shift or turn): a new pool at the new prior
        T2 = _near_pose(rng, T0, 1.01 * share * POOL_SHIFT_M, 0.0)
        new = loc._frame_pool(T2, 20.0)
        assert new is not pool and new.T_kibo_cam is T2
        T3 = _near_pose(rng, T2, 0.0, 1.01 * share * POOL_TURN_RAD)
        assert loc._frame_pool(T3, 20.0) is not new
    assert reused == 90 and checked > 1000
    # another camera on the same localizer object (a wider field of view): never the other's pool
    T0 = Pose(np.zeros(3), np.array([0.0, 0.0, 0.0, 1.0]))
    pool = loc._frame_pool(T0, 20.0)
    wide = loc.for_camera(_test_camera(f=80.0))
    wide_pool = wide._frame_pool(T0, 20.0)
    assert wide_pool is not pool and loc._frame_pool(T0, 20.0) is pool
    ids_full, _ = wide._candidates(T0, 20.0)
    assert len(ids_full) > len(loc._candidates(T0, 20.0)[0])  # the wide camera sees more
    np.testing.assert_array_equal(wide._candidates(T0, 20.0, wide_pool)[0], ids_full)


def test_rematch_equals_a_new_search_while_the_pose_moves_little():
    """A tight guided pass that re-matches the previous pass's candidates from its (wider) neighbour
    search (``_rematch``) gives the matches of a new search at the new projections; the wider search
    does not change the pass that made it; a larger move asks for a new search (returns None).
    Seeded synthetic frame: keypoints at the projections of half the visible map points (0.5 px
    noise, descriptors with 0-20 flipped bits), look-alikes 2-6 px from half of those (10-30 bits)
    and random distractors."""
    from intball_nav.vision.feature_map import REMATCH_SLACK_PX, _Frame

    rng, fmap, cam = _synthetic_scene(5)
    loc = FeatureLocalizer(fmap, cam)
    T0 = Pose(np.zeros(3), np.array([0.0, 0.0, 0.0, 1.0]))
    ids, uv = loc._candidates(T0, 4.0)
    seen = rng.choice(len(ids), len(ids) // 2, replace=False)
    # look-alikes 2-6 px from half of them (the ratio test then depends on the window)
    alike = seen[: len(seen) // 2]
    angle = rng.uniform(0.0, 2 * np.pi, len(alike))
    offset = rng.uniform(2.0, 6.0, len(alike))[:, None] * np.column_stack([np.cos(angle), np.sin(angle)])
    kuv = np.vstack(
        [
            uv[seen] + rng.normal(0.0, 0.5, (len(seen), 2)),
            uv[alike] + offset,
            rng.uniform([0, 0], [319, 239], (400, 2)),
        ]
    )

    def flipped(desc: np.ndarray, lo: int, hi: int) -> np.ndarray:
        bits = np.unpackbits(desc, axis=1)
        for row, nflip in zip(bits, rng.integers(lo, hi, len(desc)), strict=True):
            row[rng.choice(256, nflip, replace=False)] ^= 1
        return np.packbits(bits, axis=1)

    kdesc = np.vstack(
        [
            flipped(fmap.descriptors[ids[seen]], 0, 21),
            flipped(fmap.descriptors[ids[alike]], 10, 31),
            rng.integers(0, 256, (400, 32), dtype=np.uint8),
        ]
    )
    feats = _Frame(kuv, np.zeros(len(kuv), int), kdesc, cKDTree(kuv))
    pid, kj, _ = loc._match_window(feats, ids, uv, 4.0)
    pid_w, kj_w, window = loc._match_window(feats, ids, uv, 4.0, 4.0 + REMATCH_SLACK_PX)
    assert len(pid) > 300 and window is not None
    np.testing.assert_array_equal(pid_w, pid)
    np.testing.assert_array_equal(kj_w, kj)
    compared = 0
    for shift_m in (0.0, 0.002, 0.004, 0.05):
        T = Pose(
            np.array([shift_m, -0.5 * shift_m, 0.0]), quat_from_rotvec(np.array([0.0, shift_m / 4, 0.0]))
        )
        again = loc._rematch(feats, window, T, 4.0)
        uv_new = loc._candidates(T, 1e3)[1][np.searchsorted(loc._candidates(T, 1e3)[0], ids)]
        moved = np.max(np.linalg.norm(uv_new - uv, axis=1))
        if moved > REMATCH_SLACK_PX:
            assert again is None, moved
            continue
        assert again is not None, moved
        pid_r, kj_r, uv_r = again
        np.testing.assert_allclose(uv_r, uv_new, atol=1e-9)
        pid_n, kj_n, _ = loc._match_window(feats, ids, uv_r, 4.0)  # a new search, same candidates
        np.testing.assert_array_equal(pid_r, pid_n)
        np.testing.assert_array_equal(kj_r, kj_n)
        compared += 1
    assert compared >= 2 and moved > REMATCH_SLACK_PX  # small moves re-matched, the largest refused


def test_rematch_searches_again_only_the_candidates_that_moved():
    """When some projections moved more than REMATCH_SLACK_PX (the near points after a small camera
    shift), ``_rematch`` returns None, and with the candidates at the new pose it searches again only
    those the previous search cannot answer (moved, or new candidates) and gives the matches of a
    new search over those candidates. Seeded synthetic frame: 85 % of the map points 2-4 m in front
    of the camera, 15 % at 0.3-0.6 m; keypoints at the projections of half the candidates from the
    true pose (1.5 cm from the pose of the neighbour search: the near points moved 4-8 px, beyond
    that search), 0.5 px noise, 0-20 flipped descriptor bits, and random distractors."""
    from intball_nav.vision.feature_map import REMATCH_SLACK_PX, _Frame

    rng = np.random.default_rng(7)
    n = 3000
    fmap = tiny_map(n=n, seed=7)
    depth = np.where(rng.random(n) < 0.15, rng.uniform(0.3, 0.6, n), rng.uniform(2.0, 4.0, n))
    ray = np.column_stack([rng.uniform(-1.05, 1.05, n), rng.uniform(-0.8, 0.8, n), np.ones(n)])
    fmap = dataclasses.replace(
        fmap,
        points=ray * depth[:, None],
        view_dirs=np.tile(np.array([0.0, 0.0, -1.0], np.float32), (n, 1)),
        dist_range=np.tile(np.array([0.2, 5.0], np.float32), (n, 1)),
    )
    loc = FeatureLocalizer(fmap, _test_camera())

    def pose(shift_m: float) -> Pose:
        return Pose(np.array([shift_m, -0.5 * shift_m, 0.0]), np.array([0.0, 0.0, 0.0, 1.0]))

    ids, uv = loc._candidates(pose(0.0), 4.0)
    true_ids, true_uv = loc._candidates(pose(0.015), 4.0)
    seen = rng.choice(len(true_ids), len(true_ids) // 2, replace=False)
    kuv = np.vstack(
        [true_uv[seen] + rng.normal(0.0, 0.5, (len(seen), 2)), rng.uniform([0, 0], [319, 239], (400, 2))]
    )
    bits = np.unpackbits(fmap.descriptors[true_ids[seen]], axis=1)
    for row, nflip in zip(bits, rng.integers(0, 21, len(seen)), strict=True):
        row[rng.choice(256, nflip, replace=False)] ^= 1
    kdesc = np.vstack([np.packbits(bits, axis=1), rng.integers(0, 256, (400, 32), dtype=np.uint8)])
    feats = _Frame(kuv, np.zeros(len(kuv), int), kdesc, cKDTree(kuv))
    _, _, window = loc._match_window(feats, ids, uv, 4.0, 4.0 + REMATCH_SLACK_PX)
    assert window is not None
    searched_again = 0
    for shift_m in (0.0, 0.008, 0.015, 0.05):
        T = pose(shift_m)
        cand_ids, cand_uv = loc._candidates(T, 4.0)
        pid_r, kj_r, uv_r = loc._rematch(feats, window, T, 4.0, (cand_ids, cand_uv))
        np.testing.assert_array_equal(uv_r, cand_uv)
        pid_n, kj_n, _ = loc._match_window(feats, cand_ids, cand_uv, 4.0)  # a new search
        np.testing.assert_array_equal(pid_r, pid_n)
        np.testing.assert_array_equal(kj_r, kj_n)
        common = np.isin(cand_ids, ids)
        moved = np.linalg.norm(cand_uv[common] - uv[np.searchsorted(ids, cand_ids[common])], axis=1)
        if np.any(moved > REMATCH_SLACK_PX):
            searched_again += 1
            assert loc._rematch(feats, window, T, 4.0) is None  # without the candidates: search again
            near = cand_ids[common][moved > REMATCH_SLACK_PX]
            if shift_m == 0.015:  # at the true pose the near points that moved found their keypoints
                assert np.isin(near, pid_r).sum() > 50
        else:
            assert np.array_equal(cand_ids, ids) and loc._rematch(feats, window, T, 4.0) is not None
    assert searched_again >= 2


# ------------------------------------------------------------------------------ rendered frames
@pytest.fixture(scope="module")
def feature_map() -> FeatureMap:
    """The default map; built in a child process when missing, so that this process renders
    its test frames from the same EGL state whether the map was cached or not."""
    from intball_sim.mapping import default_feature_map, default_map_path

    if not default_map_path().exists():
        build = "from intball_sim.mapping import default_feature_map as f; f(True)"
        subprocess.run([sys.executable, "-c", build], check=True, timeout=1800)
    return default_feature_map(build_if_missing=False)


@pytest.fixture(scope="module")
def scene():
    """EGL (or Tiny) renderer over the module without markers; yields (render, camera model)."""
    cid = p.connect(p.DIRECT)
    renderer = Renderer(cid)
    build_world(cid, load_module(), load_marker_map(), marker_ids=())
    cam = load_cameras()["nav_left"]

    def render(T_kibo_base: Pose) -> tuple[np.ndarray, np.ndarray]:
        rgb, depth = renderer.render(cam, T_kibo_base.compose(cam.T_base_cam))
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), depth

    yield render, cam
    p.disconnect(cid)


def random_pose(rng: np.random.Generator) -> Pose:
    """Robot pose uniform where the robot fits (keep-in box, clear of the cargo bag and the dock)
    with a uniformly random attitude."""
    module = load_module()
    obstacles = [*module.keep_out, module.dock.box]
    q = rng.normal(size=4)
    position = rng.uniform(module.clear_min + ROBOT_RADIUS, module.clear_max - ROBOT_RADIUS)
    while any(box.contains(position, ROBOT_RADIUS) for box in obstacles):
        position = rng.uniform(module.clear_min + ROBOT_RADIUS, module.clear_max - ROBOT_RADIUS)
    return Pose(position, q / np.linalg.norm(q))


def errors(meas: PoseMeasurement, truth: Pose) -> tuple[float, float]:
    """(position error m, angle error deg) of base_link."""
    return (
        float(np.linalg.norm(meas.T_kibo_base.position - truth.position)),
        float(np.degrees(quat_angle(meas.T_kibo_base.quat, truth.quat))),
    )


@pytest.mark.slow
def test_tracking_accuracy_on_rendered_frames(feature_map, scene):
    """Prior = truth + (3 cm, 1.5 deg) noise: accuracy well inside 3 cm / 1.5 deg, and a pose on
    nearly every frame whose view reaches >= 0.6 m (closer views of a blank wall may fail)."""
    render, cam = scene
    loc = FeatureLocalizer(feature_map, cam)
    rng = np.random.default_rng(11)
    pos_err, ang_err, far_total, far_ok = [], [], 0, 0
    for _ in range(40):
        truth = random_pose(rng)
        gray, depth = render(truth)
        prior = Pose(
            truth.position + rng.normal(0.0, 0.03, 3),
            quat_multiply(truth.quat, quat_from_rotvec(rng.normal(0.0, np.radians(1.5), 3))),
        )
        meas = loc.localize(gray, 1.0, prior)
        far = float(np.median(depth)) >= 0.6
        far_total += far
        if meas is None:
            continue
        far_ok += far
        e_p, e_a = errors(meas, truth)
        pos_err.append(e_p)
        ang_err.append(e_a)
        assert meas.stamp == 1.0 and meas.marker_ids == ()
        assert meas.covariance.shape == (6, 6) and np.all(np.linalg.eigvalsh(meas.covariance) > 0.0)
    pos_err, ang_err = np.array(pos_err), np.array(ang_err)
    print(
        f"tracking: {len(pos_err)}/40 frames, far {far_ok}/{far_total}; position median "
        f"{1e3 * np.median(pos_err):.1f} mm p95 {1e3 * np.percentile(pos_err, 95):.1f} mm; angle median "
        f"{np.median(ang_err):.2f} deg p95 {np.percentile(ang_err, 95):.2f} deg"
    )
    assert far_ok >= 0.9 * far_total
    # Per-frame errors have a tail (rendering varies run to run; over nine runs the p95 of ~34
    # frames was 16-31 mm before the octave-weighted refinement, 18-19 mm after), and a known limit
    # (docs/localization.md, "Tracking outliers without the filter"): without the IMU and the
    # filter's gate, a few close views return a pose 10-25 cm off, 1-5 of ~750 random frames,
    # which ones varying with the rendering. On these frames: frame 2 (0.49 m median depth) came
    # out 16 and 35 cm off in two full-suite runs with the old refinement; with the new one, 60
    # pixel-noise perturbations of each frame gave one pose beyond 10 cm (frame 3, 11 cm). So the
    # bulk and the tail are bounded, and of the gross errors at most one frame is allowed.
    assert np.median(pos_err) < 0.009
    assert np.mean(pos_err < 0.03) >= 0.9
    assert np.mean(pos_err > OK_POS) <= 0.1 and np.sum(pos_err > 0.10) <= 1
    assert np.median(ang_err) < 0.5
    assert np.mean(ang_err < 1.0) >= 0.9
    assert np.mean(ang_err > OK_DEG) <= 0.1 and np.sum(ang_err > 5.0) <= 1


def _noisy(rng: np.random.Generator, truth: Pose, pos_std: float, deg_std: float) -> Pose:
    """truth with Gaussian position (m) and attitude (deg) noise per axis."""
    turn = quat_from_rotvec(rng.normal(0.0, np.radians(deg_std), 3))
    return Pose(truth.position + rng.normal(0.0, pos_std, 3), quat_multiply(truth.quat, turn))


@pytest.mark.slow
def test_tight_prior_covariance_skips_the_wide_pass(feature_map, scene):
    """A prior 3 mm / 0.1 deg off per axis with a covariance saying so (the filter's prediction at
    5 Hz): tracking starts with the tight passes (``last.tight_start``) and is as accurate as the
    wide start; a 1 cm / 0.5 deg covariance keeps the wide pass; a covariance that lies (prior
    4 cm / 2 deg off, 1 mm claimed) falls back to the wide pass and still gives accurate poses; an
    unusable covariance bounds nothing."""
    render, cam = scene
    loc = FeatureLocalizer(feature_map, cam)
    rng = np.random.default_rng(23)
    tight_cov = np.diag([0.003**2] * 3 + [np.radians(0.1) ** 2] * 3)
    loose_cov = np.diag([0.01**2] * 3 + [np.radians(0.5) ** 2] * 3)
    assert loc.prior_radius_px(tight_cov) <= loc.params.refine_radius_px < loc.prior_radius_px(loose_cov)
    asymmetric = tight_cov.copy()
    asymmetric[0, 1] = 1e-3
    for bad in (np.full((6, 6), np.nan), np.eye(3), -np.eye(6) * 1e-6, asymmetric):
        assert loc.prior_radius_px(bad) == math.inf
    tight_err, wide_err, lied_err, frames = [], [], [], 0
    while frames < 12:
        truth = random_pose(rng)
        gray, depth = render(truth)
        if float(np.median(depth)) < 0.6:
            continue
        frames += 1

        good = _noisy(rng, truth, 0.003, 0.1)
        meas = loc.localize(gray, 1.0, good, tight_cov)
        if meas is not None:
            assert loc.last.tight_start
            tight_err.append(errors(meas, truth)[0])
        meas = loc.localize(gray, 1.0, good)
        if meas is not None:
            assert not loc.last.tight_start
            wide_err.append(errors(meas, truth)[0])
        loc.localize(gray, 1.0, good, loose_cov)
        assert not loc.last.tight_start
        meas = loc.localize(gray, 1.0, _noisy(rng, truth, 0.04, 2.0), np.eye(6) * 1e-6)
        if meas is not None:
            lied_err.append(errors(meas, truth)[0])
    print(
        f"tight start {len(tight_err)}/12 median {1e3 * np.median(tight_err):.1f} mm, wide "
        f"{len(wide_err)}/12 median {1e3 * np.median(wide_err):.1f} mm, lying covariance "
        f"{len(lied_err)}/12 max {1e3 * max(lied_err):.1f} mm"
    )
    assert len(tight_err) >= len(wide_err) - 1 and len(wide_err) >= 9
    assert np.median(tight_err) < 0.009 and np.median(tight_err) < 1.5 * np.median(wide_err) + 0.001
    assert len(lied_err) >= 9 and np.median(lied_err) < 0.009 and max(lied_err) < 0.05


@pytest.mark.slow
def test_covariance_is_consistent_with_errors(feature_map, scene):
    """Position NEES (3 dof) over accepted frames: median near chi2(3)'s 2.37 (neither over- nor
    grossly underconfident)."""
    render, cam = scene
    loc = FeatureLocalizer(feature_map, cam)
    rng = np.random.default_rng(12)
    nees = []
    for _ in range(30):
        truth = random_pose(rng)
        gray, _ = render(truth)
        meas = loc.localize(gray, 0.0, truth)
        if meas is not None:
            d = meas.T_kibo_base.position - truth.position
            nees.append(float(d @ np.linalg.solve(meas.covariance[:3, :3], d)))
    print(f"position NEES over {len(nees)} frames: mean {np.mean(nees):.2f}, median {np.median(nees):.2f}")
    assert len(nees) >= 15
    assert 0.7 < np.median(nees) < 2 * 2.37  # chi2(3) median is 2.37


@pytest.mark.slow
def test_relocalization_from_unknown_poses(feature_map, scene):
    """No prior (kidnapped robot): single-frame success rate on random poses and zero false accepts.
    (The 2 s success rate with a slowly rotating robot is measured by bench/bench_reloc.py.)"""
    render, cam = scene
    loc = FeatureLocalizer(feature_map, cam)
    rng = np.random.default_rng(13)
    n, ok, far_total, far_ok, wrong = 40, 0, 0, 0, []
    for _ in range(n):
        truth = random_pose(rng)
        gray, depth = render(truth)
        meas = loc.localize(gray, 0.0, None)
        far = float(np.median(depth)) >= 0.6
        far_total += far
        if meas is None:
            continue
        e_p, e_a = errors(meas, truth)
        if e_p > OK_POS or e_a > OK_DEG:
            wrong.append((e_p, e_a))
        else:
            ok += 1
            far_ok += far
    print(f"relocalization: {ok}/{n} frames ({far_ok}/{far_total} with median depth >= 0.6 m), wrong {wrong}")
    assert not wrong
    assert far_ok >= 0.85 * far_total
    assert ok >= 0.55 * n


@pytest.mark.slow
def test_featureless_frames_return_none(feature_map, scene):
    render, cam = scene
    loc = FeatureLocalizer(feature_map, cam)
    module = load_module()
    # camera 6 cm from the middle of a rack face (the near plane is 5 cm), looking at it: a blurred
    # close-up of one rack
    q_face_port = quat_from_rotvec(np.array([0.0, 0.0, -np.pi / 2]))  # body -x (nav camera) -> +y
    near_wall = Pose(np.array([4.3, module.clear_max[1] - 0.06 - 0.10, 0.0]), q_face_port)
    gray, depth = render(near_wall)
    assert float(np.median(depth)) < 0.1
    assert loc.localize(gray, 0.0, None) is None
    assert loc.localize(gray, 0.0, near_wall) is None
    # a well-textured frame, then the same frame heavily blurred, a flat grey frame, noise
    rng = np.random.default_rng(14)
    good = Pose(np.array([4.0, 0.0, 0.0]), quat_from_rotvec(np.array([0.0, 0.0, np.pi / 2])))
    gray, _ = render(good)
    assert loc.localize(gray, 0.0, None) is not None
    blurred = cv2.GaussianBlur(gray, (0, 0), 6.0)
    flat = np.full_like(gray, 128)
    noise = rng.integers(0, 256, gray.shape, dtype=np.uint8)
    for img in (blurred, flat, noise):
        assert loc.localize(img, 0.0, None) is None
        assert loc.localize(img, 0.0, good) is None


@pytest.mark.slow
def test_map_build_cli_writes_a_valid_map(tmp_path):
    """A 108-view survey of one metre of the module through the CLI entry point: a valid file."""
    import argparse

    from intball_sim import mapping

    parser = argparse.ArgumentParser()
    mapping.add_arguments(parser)
    out = tmp_path / "small.npz"
    assert (
        mapping.run(
            parser.parse_args(["--out", str(out), "--views", "108", "--seed", "3", "--x-range", "4", "5"])
        )
        == 0
    )
    fmap = load_feature_map(out)
    module = load_module()
    assert fmap.n_keyframes == len(mapping.survey_poses(module, 108, 3, (4.0, 5.0))) == 108 + 120
    assert fmap.n_points > 500
    assert fmap.meta["survey"] == {
        "seed": 3,
        "views": 108,
        "markers": False,
        "renderer": fmap.meta["survey"]["renderer"],
        "margin_m": mapping.SURVEY_MARGIN,
        "directions_per_station": 18,
        "x_range": [4.0, 5.0],
    }
    assert fmap.meta["camera"]["name"] == "nav_left" and fmap.meta["counts"]["points"] == fmap.n_points
    # every point on or near the module surfaces (the survey sees only the cabin)
    assert np.all(fmap.points > module.clear_min - 0.05) and np.all(fmap.points < module.clear_max + 0.6)
    # the Open3D map of the module is a product of the same command
    from intball_nav.vision.geometry import load_geometry_map, module_content_hash

    gmap_path = tmp_path / "small.geometry.ply"
    gmap = load_geometry_map(gmap_path, expected_module_hash=module_content_hash(module))
    assert len(gmap.cloud.points) > 10_000 and gmap.cloud.has_normals()


# ------------------------------------------------------------------------------ pose refinement
def test_pose_refinement_weights_octaves_and_bounds_wrong_matches():
    """``_gauss_newton``: exact on exact data from a 5 cm / 3 deg start; with noisy high-octave
    keypoints (std 3 px) among precise ones (0.5 px) and 10 % wrong matches (8-20 px off), the
    octave-weighted Huber solution is several times closer to the truth than OpenCV's unweighted
    LM on the same correspondences."""
    from intball_nav.vision.camera_geometry import (
        pose_from_rvec_tvec,
        project_with_jacobian,
        rvec_tvec_from_pose,
    )
    from intball_nav.vision.feature_map import _gauss_newton

    rng, fmap, cam = _synthetic_scene(21, n=300)
    truth = Pose(np.array([0.05, -0.02, 0.1]), quat_from_rotvec(np.radians([2.0, -1.0, 3.0])))
    start = Pose(
        truth.position + [0.03, -0.04, 0.0],
        quat_multiply(truth.quat, quat_from_rotvec(np.radians([0, 3.0, 0]))),
    )
    uv, _, z = project_with_jacobian(cam.K, truth, fmap.points)
    keep = (z > 0.3) & (uv[:, 0] > 0) & (uv[:, 0] < 319) & (uv[:, 1] > 0) & (uv[:, 1] < 239)
    obj, uv = fmap.points[keep], uv[keep]
    sig = np.where(rng.random(len(obj)) < 0.3, 1.2**6, 1.0)
    exact = _gauss_newton(cam.K, start, obj, uv, sig, 2.0)
    assert (
        np.linalg.norm(exact.position - truth.position) < 1e-6 and quat_angle(exact.quat, truth.quat) < 1e-6
    )

    img = uv + rng.normal(0.0, 1.0, uv.shape) * np.where(sig > 1.0, 3.0, 0.5)[:, None]
    wrong = rng.choice(len(obj), len(obj) // 10, replace=False)
    angle = rng.uniform(0.0, 2 * np.pi, len(wrong))
    img[wrong] += rng.uniform(8.0, 20.0, len(wrong))[:, None] * np.column_stack(
        [np.cos(angle), np.sin(angle)]
    )
    robust = _gauss_newton(cam.K, start, obj, img, sig, 2.0)
    rvec, tvec = rvec_tvec_from_pose(start)
    rvec, tvec = cv2.solvePnPRefineLM(obj, img, cam.K, None, rvec, tvec)
    plain = pose_from_rvec_tvec(rvec, tvec)
    e_robust = np.linalg.norm(robust.position - truth.position)
    e_plain = np.linalg.norm(plain.position - truth.position)
    print(f"position error: weighted Huber {1e3 * e_robust:.2f} mm, unweighted LM {1e3 * e_plain:.2f} mm")
    assert e_robust < 0.3 * e_plain


def test_pose_refinement_is_bit_identical_to_the_pose_per_iteration_form():
    """``_gauss_newton`` (pose carried as arrays, in-place projection) gives the poses of the
    straightforward form (a ``Pose`` per iteration, ``project_with_jacobian``) bit for bit, noisy
    data with wrong matches, from seeded starts 1-5 cm / 0.5-3 deg off."""
    from intball_nav.vision.camera_geometry import project_with_jacobian
    from intball_nav.vision.feature_map import _gauss_newton

    def reference(K, T, obj, img, sig, k, iters=10):
        for _ in range(iters):
            uv, J, _ = project_with_jacobian(K, T, obj)
            r = img - uv
            e = np.linalg.norm(r, axis=1) / sig
            w = np.where(e <= k, 1.0, k / np.maximum(e, 1e-12)) / sig**2
            wr = np.repeat(w, 2)
            delta = np.linalg.solve(J.T @ (J * wr[:, None]), J.T @ (wr * r.ravel()))
            T = Pose(T.position + delta[:3], quat_multiply(T.quat, quat_from_rotvec(delta[3:])))
            if np.linalg.norm(delta[:3]) < 1e-5 and np.linalg.norm(delta[3:]) < 1e-5:
                break
        return T

    rng, fmap, cam = _synthetic_scene(22, n=300)
    for trial in range(12):
        truth = Pose(rng.normal(0.0, 0.05, 3), quat_from_rotvec(rng.normal(0.0, np.radians(2.0), 3)))
        uv, _, z = project_with_jacobian(cam.K, truth, fmap.points)
        keep = (z > 0.3) & (uv[:, 0] > 0) & (uv[:, 0] < 319) & (uv[:, 1] > 0) & (uv[:, 1] < 239)
        obj, uv = fmap.points[keep], uv[keep]
        sig = 1.2 ** rng.integers(0, 5, len(obj)).astype(float)
        img = uv + rng.normal(0.0, 1.0, uv.shape) * sig[:, None]
        wrong = rng.choice(len(obj), len(obj) // 10, replace=False)
        img[wrong] += rng.uniform(-20.0, 20.0, (len(wrong), 2))
        d = rng.normal(size=3)
        turn = rng.normal(size=3)
        start = Pose(
            truth.position + d / np.linalg.norm(d) * rng.uniform(0.01, 0.05),
            quat_multiply(
                truth.quat, quat_from_rotvec(turn / np.linalg.norm(turn) * np.radians(rng.uniform(0.5, 3)))
            ),
        )
        for iters in (10, 2):
            got, ref = (
                _gauss_newton(cam.K, start, obj, img, sig, 2.0, iters),
                reference(cam.K, start, obj, img, sig, 2.0, iters),
            )
            np.testing.assert_array_equal(got.position, ref.position, err_msg=f"trial {trial}")
            np.testing.assert_array_equal(got.quat, ref.quat, err_msg=f"trial {trial}")
            assert not np.array_equal(got.position, start.position)


def test_tight_passes_continue_until_the_pose_settles():
    """The tight passes go on while the last one still moved the pose (at most
    ``extra_refine_passes`` more): here the first pass lands 4 cm off and each tight pass only
    goes half way back (a creeping correction, as when the few matches found around a wrong pose
    pull it back a little per pass). Two passes stop 1 cm off; the added passes end within the
    convergence tolerance. Seeded synthetic frame: keypoints at the projections of the visible map
    points (0.5 px noise, 0-20 flipped descriptor bits) and random distractors."""
    from intball_nav.vision.feature_map import _Frame

    rng, fmap, cam = _synthetic_scene(23)
    truth = Pose(np.zeros(3), np.array([0.0, 0.0, 0.0, 1.0]))
    ids, uv = FeatureLocalizer(fmap, cam)._candidates(truth, 0.0)
    kuv = np.vstack([uv + rng.normal(0.0, 0.5, uv.shape), rng.uniform([0, 0], [319, 239], (400, 2))])
    bits = np.unpackbits(fmap.descriptors[ids], axis=1)
    for row, nflip in zip(bits, rng.integers(0, 21, len(ids)), strict=True):
        row[rng.choice(256, nflip, replace=False)] ^= 1
    kdesc = np.vstack([np.packbits(bits, axis=1), rng.integers(0, 256, (400, 32), dtype=np.uint8)])
    feats = _Frame(kuv, np.zeros(len(kuv), int), kdesc, cKDTree(kuv))
    off = np.array([0.04, 0.0, 0.0])

    def creeping(localizer: FeatureLocalizer) -> tuple[FeatureLocalizer, list[int]]:
        solve, passes = localizer._solve, []

        def wrapped(obj, img, sig, T0, iters):
            res = solve(obj, img, sig, T0, iters)
            passes.append(iters)
            if res is None:
                return None
            if iters:  # the first pass lands off
                return Pose(res[0].position + off, res[0].quat), res[1]
            return Pose(0.5 * (T0.position + res[0].position), res[0].quat), res[1]

        localizer._solve = wrapped
        return localizer, passes

    params = FeatureLocalizer(fmap, cam).params
    errs, n_passes = {}, {}
    for extra in (0, params.extra_refine_passes):
        loc, passes = creeping(
            FeatureLocalizer(fmap, cam, dataclasses.replace(params, extra_refine_passes=extra))
        )
        sol = loc._guided(feats, truth, 20.0)
        errs[extra], n_passes[extra] = float(np.linalg.norm(sol.T_kibo_cam.position)), len(passes)
    print(f"position error (m) by extra passes: {errs}; passes: {n_passes}")
    assert n_passes[0] == 1 + params.refine_passes and errs[0] > 0.008
    assert (
        1 + params.refine_passes
        < n_passes[params.extra_refine_passes]
        <= 1 + params.refine_passes + params.extra_refine_passes
    )
    assert errs[params.extra_refine_passes] < params.converged_m
