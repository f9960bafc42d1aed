"""Natural-feature map of the module and localization against it (ORB features, known-pose survey).

The map (``FeatureMap``) is a sparse set of 3-D points in the kibo frame, each with one ORB
descriptor, built from survey images whose camera poses are known (``build_feature_map_from_views``;
the simulator renders them in ``intball_sim.mapping``). Keyframes (every survey view) keep their
pose and the ids of the points they observed, for relocalization retrieval.

Map building (``build_feature_map_from_views``):

1. ORB keypoints and descriptors in every view (``OrbParams``).
2. Candidate view pairs: camera centres within ``max_pair_distance`` and optical axes within
   ``max_pair_angle``, ranked by overlap (the share of one view's keypoints, lifted to 3-D with
   the view's depth image when given, that project inside the other image in front of it); the
   ``pairs_per_view`` best per view are matched.
3. Pair matching. With depth (the rendered survey): guided by the known geometry, each keypoint
   of one view, lifted to 3-D with its depth, is projected into the other view and matched to
   the keypoints within ``guided_radius_px`` (Hamming <= ``max_hamming``, ratio test, one-to-one,
   both lifted points within the depth tolerance). Without depth: brute-force Hamming 2-NN with
   Lowe's ratio test, then the epipolar constraint of the known relative pose (distance to the
   epipolar line <= ``max_epipolar_px`` times the keypoint's octave scale).
4. Tracks: union-find over the pair matches; a track holding two different keypoints of one view
   is dropped (ambiguous).
5. Triangulation with the known poses: multi-view linear DLT (``cv2.triangulatePoints`` for two
   views, its SVD generalisation for more), then Gauss-Newton on the reprojection error. Checks:
   in front of every camera, every observation's reprojection error <= ``max_reproj_px`` times its
   octave scale (offending observations are dropped and the point re-solved), largest parallax
   angle >= ``min_parallax_deg``, at least ``min_track`` views.
6. Optional depth validation (the survey renders depth): the triangulated point must agree with
   the depth image at its keypoint in the median over its views, within ``depth_tol_abs +
   depth_tol_rel * depth``; this removes the rare consistent-but-wrong repeated-texture tracks.
7. Per point: the medoid descriptor of its track, observation count, mean viewing direction
   (unit, point -> cameras) and the range of observation distances.

Localization (``FeatureLocalizer.localize``):

- **Tracking** (a prior pose is given): map points that face the predicted camera, lie in its
  image and were seen at a comparable distance are projected; each is matched to the query
  keypoints within ``track_radius_px`` (Hamming distance and ratio test, one-to-one), the pose
  is solved (PnP RANSAC, then Gauss-Newton on the octave-weighted reprojection error with a
  Huber loss), and guided passes with ``refine_radius_px`` around the refined projection give the
  final correspondence set; tight passes continue (at most ``extra_refine_passes`` more) while a
  pass still moves the pose by more than ``converged_m`` / ``converged_rad``. The visibility tests run once
  per frame over the whole map (``_pool``: a superset valid within 10 cm / 5 deg of the prior),
  or not at all while the prior stays within 5 cm / 2.5 deg of the previous pool's pose (the
  same pool: consecutive tracking frames); the passes test only that pool, with a k-d tree of
  the keypoints built once.
- **Relocalization** (no prior, or tracking failed): every query descriptor is matched to all map
  descriptors (LSH index, 2-NN, ratio test); each match votes for the keyframes that saw its
  point; for the best ``reloc_keyframes`` keyframes the matches of their points go to PnP RANSAC
  (SQPnP); a surviving hypothesis is refined by the guided tracking pass above.
- **Acceptance gates** (both modes): at least ``min_inliers`` inliers, inlier share of the guided
  matches >= ``min_inlier_ratio``, reprojection RMS (octave-normalised) <= ``max_rms_px``, inliers
  spread over >= ``min_spread`` of the image (bounding box area share), camera inside the map's
  bounding box, and position standard deviation <= ``max_position_std``. A frame that fails any
  gate returns None: a blank wall, a blurred frame or too few features give no pose rather than
  a wrong one.
- **Covariance** as ``markers.py``: ``sigma^2 (J^T W J)^-1`` from the analytic projection Jacobian
  at the solution, ``W`` the inverse octave variances, ``sigma^2`` the residual variance blended
  with the prior ``keypoint_sigma_px`` over ``prior_dof`` pseudo-observations and floored at
  ``min_sigma_px``, then multiplied by ``cov_inflation`` (3, calibrated by the position NEES on
  rendered frames: map points carry a few mm of error that is the same in consecutive frames).
  Ordering ``[dp (3) m kibo frame, dtheta (3) rad local frame]`` (optical frame for
  ``covariance_cam``, base_link for ``covariance``): the ``PoseMeasurement`` of ``markers.py``,
  with ``marker_ids = ()``.

File format (``save_feature_map`` / ``load_feature_map``; docs/localization.md): one ``.npz``
without pickles holding the arrays below and ``meta``, a JSON string with ``format`` =
``intball-feature-map`` and ``version`` = ``FORMAT_VERSION``.
"""

from __future__ import annotations

import copy
import json
import math
import time
import zipfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from scipy.spatial import cKDTree

from intball_nav.frames import (
    Pose,
    quat_angle,
    quat_from_rotvec,
    quat_multiply,
    quat_normalize,
    rotmat_from_quat,
)
from intball_nav.vision.camera_geometry import (
    pose_covariance_to_child,
    pose_from_rvec_tvec,
    project_with_jacobian,
    project_with_jacobian_at,
)
from intball_nav.vision.markers import CameraLike, PoseMeasurement

FORMAT_NAME = "intball-feature-map"
FORMAT_VERSION = 1
DESCRIPTOR_BYTES = 32  # ORB


class FeatureMapError(ValueError):
    """A feature-map file or object is invalid; the message names the file and the problem."""


# ---------------------------------------------------------------------------------------- params
@dataclass(frozen=True)
class OrbParams:
    """ORB detector parameters (OpenCV names). Defaults suit the 320x240 nav cameras: a smaller
    border than OpenCV's 31 px keeps features near the image edge, 1500 features per frame."""

    n_features: int = 1500
    scale_factor: float = 1.2
    n_levels: int = 8
    edge_threshold: int = 15
    patch_size: int = 31
    fast_threshold: int = 10

    def create(self) -> cv2.ORB:
        return cv2.ORB_create(  # type: ignore[attr-defined]  # missing from OpenCV's stubs
            nfeatures=self.n_features,
            scaleFactor=self.scale_factor,
            nlevels=self.n_levels,
            edgeThreshold=self.edge_threshold,
            patchSize=self.patch_size,
            fastThreshold=self.fast_threshold,
        )


@dataclass(frozen=True)
class MapBuildParams:
    """Map-builder parameters (module docstring, steps 2-6). Distances m, angles deg, pixels px."""

    orb: OrbParams = field(default_factory=OrbParams)
    max_pair_distance: float = 1.6
    max_pair_angle_deg: float = 60.0
    min_pair_overlap: float = 0.15
    pairs_per_view: int = 10
    ratio: float = 0.8
    max_hamming: int = 64
    max_epipolar_px: float = 1.5
    guided_radius_px: float = 3.0
    max_reproj_px: float = 2.0
    min_parallax_deg: float = 2.0
    min_track: int = 3
    depth_tol_abs: float = 0.01
    depth_tol_rel: float = 0.01


@dataclass(frozen=True)
class FeatureLocalizerParams:
    """Localizer parameters (module docstring). Pixels px, distances m.

    keypoint_sigma_px : prior keypoint noise std at octave 0 (scaled by ``scale_factor**octave``).
    prior_dof : weight of that prior in pseudo-observations. min_sigma_px : floor of the fitted std.
    cov_inflation : variance factor on the PnP covariance, calibrated on rendered frames (position
        NEES median 6.8 without it vs 2.37 for chi2(3)): map-point and keypoint errors are not
        independent white noise (same points, same texture in consecutive frames).
    track_radius_px, refine_radius_px : search windows of the first and the later guided passes.
    max_candidates : most map points projected per pass (uniform thinning of those in the image);
        first_pass_candidates : most of them matched in the wide first pass (its pose only seeds
        the tight passes, which use all); refine_passes : tight passes after the first (each ~4 ms
        on the 2-core machine; 1 instead of 2 raised the tracking p95 from 9.9 to 10.6 mm).
    max_hamming, ratio : descriptor acceptance (absolute and Lowe ratio).
    max_view_angle_deg : a map point is a candidate only if the camera sees it within this angle
        of its mean survey viewing direction; scale_margin : and from a distance within
        [d_min / margin, d_max * margin] of its survey distances.
    reloc_keyframes : keyframes tried per relocalization; reloc_ransac_iters, ransac_reproj_px :
        PnP RANSAC settings; reloc_min_matches : fewest matches of a keyframe worth a RANSAC.
    min_inliers, min_inlier_ratio, max_rms_px, min_spread, max_position_std : acceptance gates;
        reloc_min_inliers replaces min_inliers without a prior (50, ORB-SLAM's relocalization
        threshold: a wrong pose from a self-consistent set of repeated-texture matches on one
        small patch had 46).
    planar_ratio, planar_alt_factor : an inlier set thinner than ``planar_ratio`` of its extent is
        planar; if the other planar (IPPE) solution fits within ``planar_alt_factor`` of the RMS
        (+ 0.2 px) the pose is ambiguous: refused without a prior, kept with a prior only when the
        prior is clearly closer to it than to the other solution.
    robust_k : Huber threshold of the pose refinement, in units of a keypoint's octave scale
        (``_gauss_newton``).
    extra_refine_passes, converged_m, converged_rad : tight passes added after ``refine_passes``
        while the last one moved the pose by more than converged_m (m) or its optical axis by more
        than converged_rad (rad): a first pass off the optimum is pulled back a few cm per pass.
    fallback_reloc : relocalize when tracking with a prior fails.
    prior_sigmas, prior_near_m : with a prior covariance (``localize(..., prior_covariance=)``),
        the prior's reprojection error is bounded by ``prior_sigmas`` standard deviations of its
        attitude plus its position seen at ``prior_near_m``; within ``refine_radius_px`` the wide
        RANSAC pass is skipped (the tight passes start from the prior), else it runs as without a
        covariance; a tight start that fails falls back to the wide pass.
    """

    keypoint_sigma_px: float = 0.7
    prior_dof: float = 4.0
    min_sigma_px: float = 0.5
    cov_inflation: float = 3.0
    track_radius_px: float = 20.0
    refine_radius_px: float = 4.0
    max_hamming: int = 64
    ratio: float = 0.85
    max_view_angle_deg: float = 65.0
    scale_margin: float = 2.0
    window_neighbours: int = 10
    max_candidates: int = 6000
    first_pass_candidates: int = 2000
    refine_passes: int = 2
    track_ransac_iters: int = 50
    reloc_keyframes: int = 5
    reloc_ratio: float = 0.8
    reloc_ransac_iters: int = 300
    reloc_min_matches: int = 12
    ransac_reproj_px: float = 4.0
    min_inliers: int = 30
    reloc_min_inliers: int = 50
    min_inlier_ratio: float = 0.4
    max_rms_px: float = 1.5
    min_spread: float = 0.08
    max_position_std: float = 0.05
    min_depth: float = 0.05
    planar_ratio: float = 0.1
    planar_alt_factor: float = 1.5
    robust_k: float = 2.0
    extra_refine_passes: int = 4
    converged_m: float = 0.005
    converged_rad: float = 0.005
    fallback_reloc: bool = True
    prior_sigmas: float = 3.0
    prior_near_m: float = 0.5

    def __post_init__(self) -> None:
        positive = (
            "keypoint_sigma_px",
            "min_sigma_px",
            "track_radius_px",
            "refine_radius_px",
            "ratio",
            "reloc_ratio",
            "ransac_reproj_px",
            "max_rms_px",
            "max_position_std",
            "min_depth",
            "robust_k",
            "converged_m",
            "converged_rad",
            "prior_sigmas",
            "prior_near_m",
        )
        for name in positive:
            if not getattr(self, name) > 0.0:
                raise ValueError(f"FeatureLocalizerParams.{name}={getattr(self, name)!r} must be > 0")
        if self.refine_passes < 0 or self.extra_refine_passes < 0:
            raise ValueError("FeatureLocalizerParams.refine_passes and extra_refine_passes must be >= 0")
        if self.min_inliers < 6:
            raise ValueError(f"FeatureLocalizerParams.min_inliers={self.min_inliers} must be >= 6")
        if not 0.0 <= self.min_inlier_ratio <= 1.0 or not 0.0 <= self.min_spread <= 1.0:
            raise ValueError("FeatureLocalizerParams.min_inlier_ratio and min_spread must be in [0, 1]")


# ---------------------------------------------------------------------------------------- map
@dataclass(frozen=True)
class FeatureMap:
    """Sparse natural-feature map (N points, K keyframes). All positions m, kibo frame.

    points : (N,3) float64 point positions.
    descriptors : (N,32) uint8 ORB descriptor (medoid of the point's track).
    n_obs : (N,) int32 number of survey views that observed the point.
    view_dirs : (N,3) float32 unit mean direction from the point toward the observing cameras.
    dist_range : (N,2) float32 m, smallest and largest survey observation distance.
    kf_poses : (K,7) float64 keyframe camera poses T_kibo_cam as (x, y, z, qx, qy, qz, qw).
    kf_offsets : (K+1,) int64 and kf_point_ids : (M,) int32, CSR lists: keyframe k observed points
        ``kf_point_ids[kf_offsets[k]:kf_offsets[k+1]]``; its descriptor set is theirs.
    meta : JSON-serialisable metadata (format, version, detector, camera, seed, date, counts, ...).
    """

    points: np.ndarray
    descriptors: np.ndarray
    n_obs: np.ndarray
    view_dirs: np.ndarray
    dist_range: np.ndarray
    kf_poses: np.ndarray
    kf_offsets: np.ndarray
    kf_point_ids: np.ndarray
    meta: dict[str, Any]

    def __post_init__(self) -> None:
        _validate_arrays({name: getattr(self, name) for name in _ARRAY_SPECS}, "FeatureMap")

    @property
    def n_points(self) -> int:
        return int(self.points.shape[0])

    @property
    def n_keyframes(self) -> int:
        return int(self.kf_poses.shape[0])

    def keyframe_pose(self, k: int) -> Pose:
        """T_kibo_cam of keyframe k."""
        return Pose(self.kf_poses[k, :3], self.kf_poses[k, 3:])

    def keyframe_points(self, k: int) -> np.ndarray:
        """(n,) int32 ids of the points keyframe k observed."""
        return self.kf_point_ids[self.kf_offsets[k] : self.kf_offsets[k + 1]]

    def orb_params(self) -> OrbParams:
        """Detector parameters the map was built with (use the same at run time)."""
        return OrbParams(**self.meta["detector"]["params"])


# name -> (dtype kind, trailing shape, leading dimension: "N" points, "K" keyframes, "K+1", "M")
_ARRAY_SPECS: dict[str, tuple[str, tuple[int, ...], str]] = {
    "points": ("f", (3,), "N"),
    "descriptors": ("u", (DESCRIPTOR_BYTES,), "N"),
    "n_obs": ("i", (), "N"),
    "view_dirs": ("f", (3,), "N"),
    "dist_range": ("f", (2,), "N"),
    "kf_poses": ("f", (7,), "K"),
    "kf_offsets": ("i", (), "K+1"),
    "kf_point_ids": ("i", (), "M"),
}
_DTYPES = {
    "points": np.float64,
    "descriptors": np.uint8,
    "n_obs": np.int32,
    "view_dirs": np.float32,
    "dist_range": np.float32,
    "kf_poses": np.float64,
    "kf_offsets": np.int64,
    "kf_point_ids": np.int32,
}


def _validate_arrays(arrays: dict[str, np.ndarray], where: str) -> None:
    """Check kinds, shapes and cross-references; raise FeatureMapError naming the array."""
    for name in _ARRAY_SPECS:
        if name not in arrays:
            raise FeatureMapError(f"{where}: array {name!r} is missing")
    n = arrays["points"].shape[0] if arrays["points"].ndim == 2 else -1
    k = arrays["kf_poses"].shape[0] if arrays["kf_poses"].ndim == 2 else -1
    sizes = {"N": n, "K": k, "K+1": k + 1, "M": arrays["kf_point_ids"].shape[0]}
    for name, (kind, tail, lead) in _ARRAY_SPECS.items():
        a = arrays[name]
        if a.dtype.kind != kind or a.shape != (sizes[lead], *tail):
            expected = f"({lead}{''.join(', ' + str(t) for t in tail)}{',' if not tail else ''}) {kind}-kind"
            raise FeatureMapError(
                f"{where}: array {name!r} has shape {a.shape} dtype {a.dtype}, expected {expected} "
                f"with N={n}, K={k}"
            )
    if n < 1 or k < 1:
        raise FeatureMapError(f"{where}: empty map (N={n} points, K={k} keyframes)")
    if not np.all(np.isfinite(arrays["points"])) or not np.all(np.isfinite(arrays["kf_poses"])):
        raise FeatureMapError(f"{where}: non-finite point or keyframe pose values")
    off = arrays["kf_offsets"]
    if off[0] != 0 or off[-1] != sizes["M"] or np.any(np.diff(off) < 0):
        raise FeatureMapError(f"{where}: kf_offsets is not a CSR index into kf_point_ids")
    ids = arrays["kf_point_ids"]
    if ids.size and (ids.min() < 0 or ids.max() >= n):
        raise FeatureMapError(f"{where}: kf_point_ids references points outside 0..{n - 1}")


def save_feature_map(fmap: FeatureMap, path: str | Path) -> Path:
    """Write ``fmap`` to ``path`` (.npz, compressed, no pickles); returns the path written.

    Writes to a temporary file and renames, so a reader never sees a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(fmap.meta)
    meta["format"] = FORMAT_NAME
    meta["version"] = FORMAT_VERSION
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        arrays = {
            name: np.ascontiguousarray(getattr(fmap, name), dtype=_DTYPES[name]) for name in _ARRAY_SPECS
        }
        # numpy's stub types **kwds like its bool allow_pickle
        np.savez_compressed(fh, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)  # type: ignore[arg-type]
    tmp.replace(path)
    return path


def load_feature_map(path: str | Path) -> FeatureMap:
    """Read a feature map written by ``save_feature_map``.

    Raises FeatureMapError naming the file and the problem: not an npz / truncated, missing or
    unparsable ``meta``, wrong ``format``, unsupported ``version``, arrays of the wrong shape."""
    path = Path(path)
    name = path.name
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise FeatureMapError(
            f"{name}: not a readable feature map (truncated or corrupt .npz: {exc}); "
            "rebuild it with `intball map build`"
        ) from exc
    if "meta" not in arrays:
        raise FeatureMapError(f"{name}: no 'meta' entry: not a feature map file")
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except (json.JSONDecodeError, TypeError) as exc:
        raise FeatureMapError(f"{name}: 'meta' is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise FeatureMapError(f"{name}: meta.format is {meta.get('format')!r}, expected {FORMAT_NAME!r}")
    version = meta.get("version")
    if version != FORMAT_VERSION:
        raise FeatureMapError(
            f"{name}: meta.version is {version!r}, this code reads version {FORMAT_VERSION}; "
            "rebuild the map with `intball map build`"
        )
    for key in ("detector", "camera"):
        if not isinstance(meta.get(key), dict):
            raise FeatureMapError(f"{name}: meta.{key} is missing")
    _validate_arrays(arrays, name)
    return FeatureMap(meta=meta, **{k: arrays[k].astype(_DTYPES[k], copy=False) for k in _ARRAY_SPECS})


# ---------------------------------------------------------------------------------------- helpers
def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Hamming distances of (n,32) uint8 descriptor arrays a and b (broadcasting rows).

    Counted on 64-bit words (``np.bitwise_count``): ~10x fewer element operations than a byte
    lookup table."""
    a64 = np.ascontiguousarray(a, dtype=np.uint8).view(np.uint64)
    b64 = np.ascontiguousarray(b, dtype=np.uint8).view(np.uint64)
    return np.bitwise_count(a64 ^ b64).sum(axis=-1, dtype=np.int32)


def _pose_vec(T: Pose) -> np.ndarray:
    return np.concatenate([T.position, T.quat])


def _orb(gray: np.ndarray, detector: cv2.ORB) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(uv (n,2) px, octave (n,) int, descriptors (n,32) uint8) of a grey or RGB image."""
    if gray.ndim == 3:
        gray = cv2.cvtColor(gray, cv2.COLOR_RGB2GRAY)
    kps, desc = detector.detectAndCompute(gray, None)
    if desc is None or not kps:
        return np.zeros((0, 2)), np.zeros(0, dtype=int), np.zeros((0, DESCRIPTOR_BYTES), np.uint8)
    uv = cv2.KeyPoint_convert(kps).astype(float).reshape(-1, 2)  # type: ignore[attr-defined]
    octave = np.array([k.octave & 0xFF for k in kps], dtype=int)
    return uv, octave, desc


@dataclass(frozen=True)
class SurveyView:
    """One survey image with its known pose.

    gray : (H,W) uint8 image. T_kibo_cam : optical-frame pose. depth : optional (H,W) float32 m
    along the optical axis (z-depth) for overlap ranking and point validation.
    """

    gray: np.ndarray
    T_kibo_cam: Pose
    depth: np.ndarray | None = None


@dataclass
class _ViewFeatures:
    uv: np.ndarray
    octave: np.ndarray
    desc: np.ndarray
    R: np.ndarray  # R_kibo_cam
    c: np.ndarray  # camera centre, kibo
    kp_depth: np.ndarray | None  # (n,) m, depth image at each keypoint (None without depth)
    xyz: np.ndarray | None  # (n,3) kibo, keypoints lifted with depth (None without depth)


def _view_features(v: SurveyView, K: np.ndarray, orb: cv2.ORB) -> _ViewFeatures:
    """Keypoints of one view; only the depth at the keypoints is kept (not the images)."""
    uv, octave, desc = _orb(v.gray, orb)
    R = rotmat_from_quat(v.T_kibo_cam.quat)
    c = v.T_kibo_cam.position.copy()
    if v.depth is None:
        return _ViewFeatures(uv, octave, desc, R, c, None, None)
    ij = np.clip(np.rint(uv).astype(int), 0, [v.depth.shape[1] - 1, v.depth.shape[0] - 1]).reshape(-1, 2)
    z = v.depth[ij[:, 1], ij[:, 0]].astype(float)
    rays = np.column_stack([(uv[:, 0] - K[0, 2]) / K[0, 0], (uv[:, 1] - K[1, 2]) / K[1, 1], np.ones(len(z))])
    return _ViewFeatures(uv, octave, desc, R, c, z, (rays * z[:, None]) @ R.T + c)


def _fundamental(K: np.ndarray, a: _ViewFeatures, b: _ViewFeatures) -> np.ndarray:
    """F with x_b^T F x_a = 0 for pixels of view a and b (known poses)."""
    R_ba = b.R.T @ a.R
    t_ba = b.R.T @ (a.c - b.c)
    tx = np.array([[0.0, -t_ba[2], t_ba[1]], [t_ba[2], 0.0, -t_ba[0]], [-t_ba[1], t_ba[0], 0.0]])
    Ki = np.linalg.inv(K)
    return Ki.T @ tx @ R_ba @ Ki


def _epipolar_dist(F: np.ndarray, ua: np.ndarray, ub: np.ndarray) -> np.ndarray:
    """Symmetric point-to-epipolar-line distance (px) of matched pixels ua, ub (n,2)."""
    xa = np.column_stack([ua, np.ones(len(ua))])
    xb = np.column_stack([ub, np.ones(len(ub))])
    la = xa @ F.T  # lines in b
    lb = xb @ F  # lines in a
    num = np.abs(np.sum(xb * la, axis=1))
    da = num / np.maximum(np.hypot(la[:, 0], la[:, 1]), 1e-12)
    db = num / np.maximum(np.hypot(lb[:, 0], lb[:, 1]), 1e-12)
    return np.maximum(da, db)


def _match_pair(
    K: np.ndarray, a: _ViewFeatures, b: _ViewFeatures, bf: cv2.BFMatcher, p: MapBuildParams, scale: float
) -> np.ndarray:
    """(m,2) int index pairs (kp in a, kp in b) of ratio-tested, epipolar-consistent matches."""
    if len(a.desc) < 2 or len(b.desc) < 2:
        return np.zeros((0, 2), dtype=int)
    knn = bf.knnMatch(a.desc, b.desc, k=2)
    pairs = [
        (m[0].queryIdx, m[0].trainIdx)
        for m in knn
        if len(m) == 2 and m[0].distance <= p.max_hamming and m[0].distance < p.ratio * m[1].distance
    ]
    if not pairs:
        return np.zeros((0, 2), dtype=int)
    ij = np.array(pairs, dtype=int)
    # one-to-one: keep the first match of each b keypoint (2-NN of a -> b may repeat b)
    _, first = np.unique(ij[:, 1], return_index=True)
    ij = ij[np.sort(first)]
    F = _fundamental(K, a, b)
    tol = p.max_epipolar_px * scale ** np.maximum(a.octave[ij[:, 0]], b.octave[ij[:, 1]])
    return ij[_epipolar_dist(F, a.uv[ij[:, 0]], b.uv[ij[:, 1]]) <= tol]


def _match_pair_guided(
    K: np.ndarray, a: _ViewFeatures, b: _ViewFeatures, tree_b: cKDTree, p: MapBuildParams, scale: float
) -> np.ndarray:
    """Matches guided by the survey depth: a's keypoints, lifted to 3-D with a's depth image, are
    projected into b and matched to b's keypoints within ``guided_radius_px`` (Hamming distance,
    ratio test, one-to-one); the two lifted points must agree within the depth tolerance."""
    if a.xyz is None or b.xyz is None or len(a.uv) == 0 or len(b.uv) == 0:
        return np.zeros((0, 2), dtype=int)
    pc = (a.xyz - b.c) @ b.R
    z = pc[:, 2]
    ia = np.flatnonzero(z > 0.05)
    uv = pc[ia, :2] / z[ia, None] * [K[0, 0], K[1, 1]] + K[:2, 2]
    near = tree_b.query_ball_point(uv, p.guided_radius_px)
    lens = np.array([len(n) for n in near], dtype=int)
    if lens.sum() == 0:
        return np.zeros((0, 2), dtype=int)
    qa = np.repeat(ia, lens)
    kb = np.concatenate([np.asarray(n, dtype=int) for n in near if n])
    d = hamming(a.desc[qa], b.desc[kb])
    tol = p.depth_tol_abs + p.depth_tol_rel * a.kp_depth[qa]  # type: ignore[index]
    ok = np.linalg.norm(a.xyz[qa] - b.xyz[kb], axis=1) <= tol
    qa, kb, d = qa[ok], kb[ok], d[ok]
    if len(qa) == 0:
        return np.zeros((0, 2), dtype=int)
    order = np.lexsort((d, qa))
    qa, kb, d = qa[order], kb[order], d[order]
    first = np.flatnonzero(np.r_[True, qa[1:] != qa[:-1]])
    has2 = np.r_[first[1:], len(qa)] - first > 1
    second = np.where(has2, d[np.minimum(first + 1, len(d) - 1)], 256)
    keep = (d[first] <= p.max_hamming) & (d[first] < p.ratio * second)
    qa, kb, d = qa[first][keep], kb[first][keep], d[first][keep]
    o = np.lexsort((d, kb))
    qa, kb = qa[o], kb[o]
    u = np.r_[True, kb[1:] != kb[:-1]] if len(kb) else np.zeros(0, bool)
    return np.column_stack([qa[u], kb[u]])


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, i: int, j: int) -> None:
        ri, rj = self.find(i), self.find(j)
        if ri != rj:
            self.parent[max(ri, rj)] = min(ri, rj)


def _triangulate(
    P: np.ndarray, uv: np.ndarray, w: np.ndarray, iters: int = 5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batched multi-view triangulation of T tracks of equal length L.

    P : (T,L,3,4) projection matrices K[R|t]; uv : (T,L,2) px; w : (T,L) observation weights
    (0 = ignore). Linear DLT (SVD) then Gauss-Newton on the weighted reprojection error.
    Returns (X (T,3), err (T,L) px reprojection errors, z (T,L) depths)."""
    A = (
        np.concatenate(
            [uv[..., 0:1] * P[:, :, 2, :] - P[:, :, 0, :], uv[..., 1:2] * P[:, :, 2, :] - P[:, :, 1, :]],
            axis=1,
        )
        * np.concatenate([w, w], axis=1)[..., None]
    )
    _, _, vt = np.linalg.svd(A)
    Xh = vt[:, -1, :]
    X = Xh[:, :3] / np.where(np.abs(Xh[:, 3:]) < 1e-12, 1e-12, Xh[:, 3:])
    X[~np.all(np.isfinite(X), axis=1) | (np.abs(X).max(axis=1) > 1e3)] = 0.0  # at infinity: rejected later
    for _ in range(iters):
        Xh1 = np.concatenate([X, np.ones((len(X), 1))], axis=1)
        proj = np.einsum("tlij,tj->tli", P, Xh1)
        z = proj[..., 2]
        zs = np.where(np.abs(z) < 1e-9, 1e-9, z)
        r = proj[..., :2] / zs[..., None] - uv  # (T,L,2)
        # d(uv)/dX = (P[:2,:3] - uv_hat * P[2,:3]) / z
        uvh = proj[..., :2] / zs[..., None]
        J = (P[:, :, :2, :3] - uvh[..., None] * P[:, :, 2:3, :3]) / zs[..., None, None]  # (T,L,2,3)
        Jw = J * w[..., None, None]
        H = np.einsum("tlai,tlaj->tij", Jw, J)
        H += (1e-6 * np.trace(H, axis1=1, axis2=2)[:, None, None] + 1e-12) * np.eye(3)
        g = np.einsum("tlai,tla->ti", Jw, r)
        bad = ~np.all(np.isfinite(H), axis=(1, 2)) | ~np.all(np.isfinite(g), axis=1)
        H[bad], g[bad] = np.eye(3), 0.0
        X = X - np.linalg.solve(H, g[..., None])[..., 0]
    Xh1 = np.concatenate([X, np.ones((len(X), 1))], axis=1)
    proj = np.einsum("tlij,tj->tli", P, Xh1)
    z = proj[..., 2]
    zs = np.where(np.abs(z) < 1e-9, 1e-9, z)
    err = np.linalg.norm(proj[..., :2] / zs[..., None] - uv, axis=-1)
    return X, err, z


def build_feature_map_from_views(
    views: Iterable[SurveyView],
    K: np.ndarray,
    params: MapBuildParams | None = None,
    meta: dict[str, Any] | None = None,
    log: Any = None,
) -> FeatureMap:
    """Build a ``FeatureMap`` from survey views with known poses (module docstring, steps 1-7).

    views : any iterable (a generator keeps one image in memory at a time).
    K : (3,3) px intrinsics shared by all views (no distortion). meta : extra metadata merged into
    the map's (camera, seed, ...). log : optional ``print``-like callable for progress lines."""
    p = params if params is not None else MapBuildParams()
    say = log if log is not None else (lambda *_: None)
    orb = p.orb.create()
    scale = p.orb.scale_factor
    t0 = time.perf_counter()
    feats: list[_ViewFeatures] = []
    poses: list[Pose] = []
    H = W = 0
    for v in views:
        feats.append(_view_features(v, K, orb))
        poses.append(v.T_kibo_cam)
        H, W = v.gray.shape[:2]
    n_views = len(feats)
    if n_views < 2:
        raise FeatureMapError(f"map build: {n_views} views, need at least 2")
    say(
        f"features: {n_views} views, median {int(np.median([len(f.uv) for f in feats]))} keypoints "
        f"({time.perf_counter() - t0:.1f} s)"
    )

    # (2) candidate pairs ranked by overlap
    centres = np.array([f.c for f in feats])
    axes = np.array([f.R[:, 2] for f in feats])
    tree = cKDTree(centres)
    cos_max = np.cos(np.radians(p.max_pair_angle_deg))
    scores: dict[tuple[int, int], float] = {}
    for i in range(n_views):
        cand = [j for j in tree.query_ball_point(centres[i], p.max_pair_distance) if j != i]
        cand = [j for j in cand if axes[i] @ axes[j] >= cos_max]
        ranked = []
        xyz = feats[i].xyz
        for j in cand:
            ov: float
            if xyz is not None and len(xyz):
                pc = (xyz - feats[j].c) @ feats[j].R
                z = pc[:, 2]
                ok = z > 0.05
                u = K[0, 0] * pc[ok, 0] / z[ok] + K[0, 2]
                vv = K[1, 1] * pc[ok, 1] / z[ok] + K[1, 2]
                ov = np.count_nonzero((u >= 0) & (u <= W - 1) & (vv >= 0) & (vv <= H - 1)) / len(z)
            else:
                ov = float(axes[i] @ axes[j]) / (1.0 + float(np.linalg.norm(centres[i] - centres[j])))
            if ov >= p.min_pair_overlap:
                ranked.append((ov, j))
        ranked.sort(reverse=True)
        for ov, j in ranked[: p.pairs_per_view]:
            key = (min(i, j), max(i, j))
            scores[key] = max(scores.get(key, 0.0), ov)
    say(f"pairs: {len(scores)} ({time.perf_counter() - t0:.1f} s)")

    # (3) matching, (4) tracks
    offsets = np.concatenate([[0], np.cumsum([len(f.uv) for f in feats])])
    uf = _UnionFind(int(offsets[-1]))
    bf = cv2.BFMatcher(cv2.NORM_HAMMING)
    guided = all(f.xyz is not None for f in feats)
    trees = [cKDTree(f.uv) if len(f.uv) else None for f in feats] if guided else []
    n_matches = 0
    for i, j in sorted(scores):
        if guided and trees[j] is not None:
            ij = _match_pair_guided(K, feats[i], feats[j], trees[j], p, scale)
        else:
            ij = _match_pair(K, feats[i], feats[j], bf, p, scale)
        n_matches += len(ij)
        for a, b in ij:
            uf.union(int(offsets[i] + a), int(offsets[j] + b))
    roots = np.array([uf.find(g) for g in range(int(offsets[-1]))], dtype=np.int64)
    view_of = np.repeat(np.arange(n_views), np.diff(offsets))
    order = np.argsort(roots, kind="stable")
    uniq, start, counts = np.unique(roots[order], return_index=True, return_counts=True)
    say(
        f"matches: {n_matches}, tracks >= 2 views: {int(np.count_nonzero(counts >= 2))} "
        f"({time.perf_counter() - t0:.1f} s)"
    )

    tracks: list[np.ndarray] = []  # arrays of global keypoint indices
    for s, c in zip(start, counts, strict=True):
        if c < p.min_track:
            continue
        members = order[s : s + c]
        vs = view_of[members]
        if len(np.unique(vs)) != len(vs):
            continue  # two keypoints of one view in one track: ambiguous
        tracks.append(members)

    # (5) triangulation, batched by track length; observations above the reprojection limit are
    # dropped and the point re-solved while it keeps >= min_track views
    Ps = np.array([K @ np.column_stack([f.R.T, -f.R.T @ f.c]) for f in feats])
    all_uv = np.concatenate([f.uv for f in feats]) if feats else np.zeros((0, 2))
    all_oct = np.concatenate([f.octave for f in feats]) if feats else np.zeros(0, int)
    all_desc = np.concatenate([f.desc for f in feats]) if feats else np.zeros((0, 32), np.uint8)
    has_depth = all(f.kp_depth is not None for f in feats)
    all_depth = np.concatenate([f.kp_depth for f in feats]) if has_depth else None  # type: ignore[misc]
    kept_X: list[np.ndarray] = []
    kept_members: list[np.ndarray] = []
    pending = tracks
    for _ in range(3):
        if not pending:
            break
        retry: list[np.ndarray] = []
        by_len: dict[int, list[np.ndarray]] = {}
        for track in pending:
            by_len.setdefault(len(track), []).append(track)
        for L, group in by_len.items():
            M = np.array(group)  # (T,L)
            sig = scale ** all_oct[M]
            X, err, z = _triangulate(Ps[view_of[M]], all_uv[M], 1.0 / sig)
            bad = (err > p.max_reproj_px * sig) | (z < 0.05) | ~np.isfinite(err)
            for row in range(len(M)):
                if not bad[row].any():
                    kept_X.append(X[row])
                    kept_members.append(M[row])
                elif L - bad[row].sum() >= p.min_track and bad[row].sum() < L / 2:
                    retry.append(M[row][~bad[row]])
        pending = retry
    if not kept_X:
        raise FeatureMapError("map build: no point survived triangulation (too few or too similar views)")
    X = np.array(kept_X)

    # parallax, depth validation, per-point attributes
    keep = np.ones(len(X), dtype=bool)
    dirs = np.zeros((len(X), 3))
    drange = np.zeros((len(X), 2))
    cos_par = np.cos(np.radians(p.min_parallax_deg))
    n_depth_rejected = 0
    for j, (x, mem) in enumerate(zip(X, kept_members, strict=True)):
        vs = view_of[mem]
        rays = centres[vs] - x
        dist = np.linalg.norm(rays, axis=1)
        u = rays / dist[:, None]
        if np.min(u @ u.T) > cos_par:
            keep[j] = False
            continue
        if all_depth is not None:
            pc = np.einsum("lji,lj->li", np.array([feats[v].R for v in vs]), x - centres[vs])
            d_img = all_depth[mem]
            dz = np.median(np.abs(pc[:, 2] - d_img) - (p.depth_tol_abs + p.depth_tol_rel * d_img))
            if dz > 0.0:
                keep[j] = False
                n_depth_rejected += 1
                continue
        m = u.mean(axis=0)
        dirs[j] = m / np.linalg.norm(m)
        drange[j] = dist.min(), dist.max()
    idx = np.flatnonzero(keep)
    say(
        f"points: {len(idx)} kept of {len(X)} triangulated ({n_depth_rejected} failed the depth check) "
        f"({time.perf_counter() - t0:.1f} s)"
    )

    desc = np.zeros((len(idx), DESCRIPTOR_BYTES), np.uint8)
    n_obs = np.zeros(len(idx), np.int32)
    kf_lists: list[list[int]] = [[] for _ in range(n_views)]
    for new, old in enumerate(idx):
        mem = kept_members[old]
        D = all_desc[mem]
        cost = hamming(D[:, None, :], D[None, :, :]).sum(axis=1)
        desc[new] = D[int(np.argmin(cost))]
        n_obs[new] = len(mem)
        for v in view_of[mem]:
            kf_lists[int(v)].append(new)
    kf_offsets = np.concatenate([[0], np.cumsum([len(k) for k in kf_lists])]).astype(np.int64)
    kf_ids = np.array([i for k in kf_lists for i in k], dtype=np.int32)
    info = {
        "detector": {"type": "ORB", "params": asdict(p.orb)},
        "build": {k: v for k, v in asdict(p).items() if k != "orb"},
        "counts": {
            "views": n_views,
            "pairs": len(scores),
            "pair_matches": int(n_matches),
            "tracks": len(tracks),
            "points": len(idx),
            "depth_rejected": n_depth_rejected,
            "observations": int(kf_ids.size),
        },
        "image_size": [int(W), int(H)],
    }
    info.update(meta or {})
    info.setdefault("camera", {"K": np.asarray(K).tolist(), "width": int(W), "height": int(H)})
    return FeatureMap(
        points=X[idx].astype(np.float64),
        descriptors=desc,
        n_obs=n_obs,
        view_dirs=dirs[idx].astype(np.float32),
        dist_range=drange[idx].astype(np.float32),
        kf_poses=np.array([_pose_vec(T) for T in poses], dtype=np.float64),
        kf_offsets=kf_offsets,
        kf_point_ids=kf_ids,
        meta=info,
    )


# ---------------------------------------------------------------------------------------- localizer
def _pose_gap(a: Pose, b: Pose) -> float:
    """Distance (m) between two poses, rotation counted as 0.5 m per rad."""
    return float(np.linalg.norm(a.position - b.position) + 0.5 * quat_angle(a.quat, b.quat))


def _close(a: Pose, b: Pose, dist: float, angle: float) -> bool:
    """Poses within ``dist`` m and ``angle`` rad (optical axes) of each other."""
    za = rotmat_from_quat(a.quat)[:, 2]
    zb = rotmat_from_quat(b.quat)[:, 2]
    return bool(np.linalg.norm(a.position - b.position) < dist and za @ zb > np.cos(angle))


@dataclass(frozen=True)
class _Solution:
    T_kibo_cam: Pose
    obj: np.ndarray  # (n,3) inlier map points
    img: np.ndarray  # (n,2) px
    sig: np.ndarray  # (n,) px octave scale
    point_ids: np.ndarray
    n_candidates: int  # guided matches before the inlier test
    n_projected: int  # map points predicted in the image by the last guided pass (at its prior pose)


@dataclass(frozen=True)
class _Frame:
    """Keypoints of one query image: uv (n,2) px, octave (n,), desc (n,32) uint8, and a k-d tree of
    uv built once and shared by the guided passes (None without keypoints)."""

    uv: np.ndarray
    octave: np.ndarray
    desc: np.ndarray
    tree: cKDTree | None


@dataclass(frozen=True)
class _Pool:
    """Map points that can pass the candidate tests (``FeatureLocalizer._candidates``) from any
    camera pose within ``POOL_SHIFT_M`` and ``POOL_TURN_RAD`` of ``T_kibo_cam`` with an image margin
    up to ``margin_px``: the guided passes of one frame test these instead of the whole map."""

    T_kibo_cam: Pose
    margin_px: float
    ids: np.ndarray  # (n,) int, increasing
    points: np.ndarray
    view_dirs: np.ndarray
    near: np.ndarray  # (n,) m, the distance bounds of the candidate test (``FeatureLocalizer._near``)
    far: np.ndarray

    def covers(self, T_kibo_cam: Pose, margin_px: float, share: float = 1.0) -> bool:
        """The pool is valid at T_kibo_cam with this margin; ``share`` < 1 asks for room to spare
        (within that share of ``POOL_SHIFT_M`` and ``POOL_TURN_RAD``)."""
        return bool(
            margin_px <= self.margin_px
            and np.linalg.norm(T_kibo_cam.position - self.T_kibo_cam.position) <= share * POOL_SHIFT_M
            and quat_angle(T_kibo_cam.quat, self.T_kibo_cam.quat) <= share * POOL_TURN_RAD
        )


POOL_SHIFT_M = 0.10
"""m, largest camera shift from the pool's pose for which the pool is still a superset."""
POOL_TURN_RAD = float(np.radians(5.0))
"""rad, largest camera rotation from the pool's pose for which the pool is still a superset."""
LSH_RNG_SEED = 20261121
"""Seed of OpenCV's global RNG when a ``FeatureLocalizer`` builds its LSH retrieval index."""
REMATCH_SLACK_PX = 1.5
"""px, a tight guided pass searches this much wider than its window so that the next tight pass can
re-match its candidates without a new search while no projection moved more than this."""
POOL_REUSE_SHARE = 0.5
"""A frame reuses the previous frame's pool (``FeatureLocalizer._frame_pool``) when its prior lies
within this share of ``POOL_SHIFT_M`` and ``POOL_TURN_RAD`` of the pool's pose (and needs no wider
margin): the passes, a few cm and tenths of a degree from the prior, stay inside the pool's bounds."""
POOL_CELL_M = 0.25
"""m, edge of the cubic cells that group the map points for ``_pool``: a cell whose bounding sphere
cannot hold a pool point (outside the widened camera cone, or out of every point's distance range)
is skipped as a whole."""


@dataclass(frozen=True)
class _Window:
    """Neighbour search of one guided pass (``FeatureLocalizer._match_window``): candidate ids (n,)
    and projections uv (n,2) px, the search radius px; the rows of the candidates with a keypoint
    within it, (m,), their nearest keypoints nn (m,k) and Hamming distances ham (m,k) (256: none);
    full (m,) the rows with k neighbours (the cap: more keypoints may lie within the radius)."""

    ids: np.ndarray
    uv: np.ndarray
    radius: float
    rows: np.ndarray
    nn: np.ndarray
    ham: np.ndarray
    full: np.ndarray


@dataclass(frozen=True)
class _Cells:
    """Map points grouped in ``POOL_CELL_M`` cells: ``of`` (N,) cell index of each point; per cell
    ``centre`` (C,3) m, kibo frame, ``radius`` (C,) m (bounding sphere of its points), ``near`` and
    ``far`` (C,) m (the smallest ``d_min / scale_margin`` and largest ``d_max * scale_margin`` of
    its points)."""

    of: np.ndarray
    centre: np.ndarray
    radius: np.ndarray
    near: np.ndarray
    far: np.ndarray


def _cells(points: np.ndarray, near: np.ndarray, far: np.ndarray) -> _Cells:
    """``_Cells`` of points (N,3) m with per-point distance bounds near, far (N,) m."""
    key = np.floor(points / POOL_CELL_M).astype(np.int64)
    _, of = np.unique(key, axis=0, return_inverse=True)
    of = of.ravel()
    n_cells = int(of.max()) + 1 if len(of) else 0
    count = np.bincount(of, minlength=n_cells).astype(float)
    centre = (
        np.column_stack([np.bincount(of, points[:, i], minlength=n_cells) for i in range(3)])
        / np.maximum(count, 1.0)[:, None]
    )
    radius = np.zeros(n_cells)
    np.maximum.at(radius, of, np.linalg.norm(points - centre[of], axis=1))
    lo = np.full(n_cells, np.inf)
    hi = np.zeros(n_cells)
    np.minimum.at(lo, of, np.asarray(near, float))
    np.maximum.at(hi, of, np.asarray(far, float))
    return _Cells(of, centre, radius * (1.0 + 1e-9) + 1e-9, lo, hi)  # radius: rounding slack


def _gauss_newton(
    K: np.ndarray, T: Pose, obj: np.ndarray, img: np.ndarray, sig: np.ndarray, k: float, iters: int = 10
) -> Pose:
    """T_kibo_cam minimising sum rho(|img - proj(obj)| / sig) with Huber's rho at ``k`` (units of
    sig): the keypoint noise model of the covariance (std ``sig`` px per point, by octave) instead
    of OpenCV's unweighted LM, and a bounded pull of any one match, so a few wrong matches cannot
    drag a weakly constrained pose along its weak direction. obj (n,3) m kibo frame, img (n,2) px,
    sig (n,) px; Gauss-Newton with iteratively re-weighted points from T (already close).

    The pose is carried as (position, normalised quaternion) between iterations, the values a
    ``Pose`` would hold (its quaternion normalised once), and made a ``Pose`` once at the end."""
    pos, q, q_raw = T.position, T.quat, None
    sig2 = sig**2
    for _ in range(iters):
        uv, J, _ = project_with_jacobian_at(K, pos, rotmat_from_quat(q), obj)
        r = img - uv
        e = np.sqrt(r[:, 0] * r[:, 0] + r[:, 1] * r[:, 1]) / sig  # np.linalg.norm(axis=1), bit for bit
        w = np.where(e <= k, 1.0, k / np.maximum(e, 1e-12)) / sig2
        wr = np.repeat(w, 2)
        try:
            delta = np.linalg.solve(J.T @ (J * wr[:, None]), J.T @ (wr * r.ravel()))  # type: ignore[union-attr]
        except np.linalg.LinAlgError:
            break
        pos = pos + delta[:3]
        q_raw = quat_multiply(q, quat_from_rotvec(delta[3:]))
        q = quat_normalize(q_raw)
        dp, dr = delta[:3], delta[3:]
        if math.sqrt(dp.dot(dp)) < 1e-5 and math.sqrt(dr.dot(dr)) < 1e-5:  # 10 um, 2 arcsec
            break
    return T if q_raw is None else Pose(pos, q_raw)


@dataclass(frozen=True)
class LocalizationStats:
    """Diagnostics of the last ``localize`` call (``FeatureLocalizer.last``).

    mode : ``track``, ``reloc`` or ``track+reloc``; n_keypoints : ORB features in the frame;
    n_matches, n_inliers : final guided matches and inliers; rms_px; rejected : gate that refused
    the pose (empty when accepted); tight_start : tracking started with the tight passes (the
    prior covariance allowed it; ``FeatureLocalizerParams.prior_sigmas``)."""

    mode: str = ""
    n_keypoints: int = 0
    n_matches: int = 0
    n_inliers: int = 0
    rms_px: float = float("nan")
    rejected: str = ""
    n_projected: int = 0
    tight_start: bool = False


class FeatureLocalizer:
    """Camera pose from natural features against a ``FeatureMap`` (module docstring).

    feature_map : the map; camera_model : a ``CameraLike`` (intrinsics must match the image);
    params : ``FeatureLocalizerParams``; T_base_cam overrides the camera mount.
    """

    def __init__(
        self,
        feature_map: FeatureMap,
        camera_model: CameraLike,
        params: FeatureLocalizerParams | None = None,
        T_base_cam: Pose | None = None,
    ) -> None:
        self.map = feature_map
        self.params = params if params is not None else FeatureLocalizerParams()
        self._set_camera(camera_model, T_base_cam)
        orb_params = feature_map.orb_params()
        self.scale = orb_params.scale_factor
        self.detector = orb_params.create()
        self.last = LocalizationStats()
        # relocalization index: LSH over every map descriptor; point -> keyframes (CSR)
        # LSH without multi-probe: ~40 % recall of the exact ratio-test matches but ~20x faster than
        # brute force over the whole map; it only ranks keyframes (exact matching follows)
        self._flann = cv2.FlannBasedMatcher(
            {"algorithm": 6, "table_number": 6, "key_size": 16, "multi_probe_level": 0}, {"checks": 32}
        )
        self._bf = cv2.BFMatcher(cv2.NORM_HAMMING)
        self._flann.add([feature_map.descriptors])
        # the LSH tables are drawn from OpenCV's global RNG (cv2.setRNGSeed): seeded, every localizer
        # of a map has the same tables, so relocalization repeats within one process (before, a
        # second localizer of one process relocalized the same frame up to ~2 mm differently)
        cv2.setRNGSeed(LSH_RNG_SEED)
        self._flann.train()
        kf_of = np.repeat(np.arange(feature_map.n_keyframes), np.diff(feature_map.kf_offsets))
        order = np.argsort(feature_map.kf_point_ids, kind="stable")
        self._pt_kf = kf_of[order]
        self._pt_kf_off = np.searchsorted(
            feature_map.kf_point_ids[order], np.arange(feature_map.n_points + 1)
        )
        lo = feature_map.points.min(axis=0)
        hi = feature_map.points.max(axis=0)
        self._bbox = (lo, hi)
        self._cos_view = np.cos(np.radians(self.params.max_view_angle_deg))
        self._desc64 = np.ascontiguousarray(feature_map.descriptors).view(np.uint64)
        sm = self.params.scale_margin
        # (N,) m, per-point distance bounds of the candidate test (float32 as in ``_candidates``)
        self._near = feature_map.dist_range[:, 0] / sm
        self._far = feature_map.dist_range[:, 1] * sm
        self._cells = _cells(feature_map.points, self._near, self._far)
        # (N,3) float64 exact copy of the viewing directions: a float32 operand makes the per-point
        # dot products of ``_pool`` and ``_candidates`` ~2x slower (mixed-type einsum)
        self._view_dirs64 = feature_map.view_dirs.astype(np.float64)

    def _set_camera(self, camera_model: CameraLike, T_base_cam: Pose | None) -> None:
        self.K = np.asarray(camera_model.K, dtype=float)
        self.width = int(camera_model.width)
        self.height = int(camera_model.height)
        self.T_base_cam = T_base_cam if T_base_cam is not None else camera_model.T_base_cam
        self.T_cam_base = self.T_base_cam.inverse()
        self._last_pool: _Pool | None = None  # built for this camera's image (``_frame_pool``)

    def for_camera(self, camera_model: CameraLike, T_base_cam: Pose | None = None) -> FeatureLocalizer:
        """A localizer of another camera on the same map and parameters, sharing the retrieval
        index (built once; same thread only). The images must match ``camera_model``."""
        other = copy.copy(self)
        other._set_camera(camera_model, T_base_cam)
        other.detector = self.map.orb_params().create()
        other.last = LocalizationStats()
        return other

    # ------------------------------------------------------------------ public
    def detect(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """ORB keypoints of an image: (uv (n,2) px, octave (n,), descriptors (n,32) uint8)."""
        return _orb(gray, self.detector)

    def localize(
        self,
        gray: np.ndarray,
        stamp: float = 0.0,
        prior: Pose | None = None,
        prior_covariance: np.ndarray | None = None,
    ) -> PoseMeasurement | None:
        """Pose of the camera and robot from one image, or None when no pose passes the gates.

        gray : (H,W) uint8 (or RGB) image of this camera. stamp : s, capture time.
        prior : predicted robot pose T_kibo_base (tracking); None relocalizes (unknown start).
        prior_covariance : optional (6,6) [dp m kibo, dtheta rad body] of the prior (e.g. the
        filter's): when it is tight enough (``prior_radius_px``) tracking skips its wide pass.
        """
        uv, octave, desc = self.detect(gray)
        feats = _Frame(uv, octave, desc, cKDTree(uv) if len(uv) else None)
        n_kp = len(uv)
        if n_kp < self.params.min_inliers:
            self.last = LocalizationStats("reloc" if prior is None else "track", n_kp, rejected="keypoints")
            return None
        mode = "track"
        sol = None
        reason = ""
        tight = (
            prior is not None
            and prior_covariance is not None
            and self.prior_radius_px(prior_covariance) <= self.params.refine_radius_px
        )
        if prior is not None:
            prior_cam = prior.compose(self.T_base_cam)
            if tight:
                sol, reason = self._gate(
                    self._guided(feats, prior_cam, self.params.refine_radius_px, True), prior_cam
                )
            if sol is None:
                sol, reason = self._gate(
                    self._guided(feats, prior_cam, self.params.track_radius_px), prior_cam
                )
            if sol is None and self.params.fallback_reloc:
                mode = "track+reloc"
        else:
            mode = "reloc"
        if sol is None and mode != "track":
            sol, reason = self._relocalize(feats)
        if sol is None:
            self.last = LocalizationStats(mode, n_kp, rejected=reason)
            return None
        meas = self._measurement(sol, stamp)
        self.last = LocalizationStats(
            mode, n_kp, sol.n_candidates, len(sol.obj), meas.rms_px, "", sol.n_projected, tight
        )
        return meas

    def prior_radius_px(self, prior_covariance: np.ndarray) -> float:
        """px, bound on the reprojection error of a prior with covariance (6,6) [dp m kibo, dtheta
        rad body]: ``prior_sigmas`` standard deviations (largest eigenvalue of each block) of the
        attitude, plus of the position seen at ``prior_near_m``, times the larger focal length;
        inf for a covariance that is not finite, symmetric positive semi-definite."""
        C = np.asarray(prior_covariance, dtype=float)
        if C.shape != (6, 6) or not np.all(np.isfinite(C)) or not np.allclose(C, C.T, rtol=1e-6, atol=1e-15):
            return math.inf
        try:
            ep, ea = np.linalg.eigvalsh(C[:3, :3]), np.linalg.eigvalsh(C[3:, 3:])
        except np.linalg.LinAlgError:
            return math.inf
        if min(ep[0], ea[0]) < -1e-12:
            return math.inf
        p = self.params
        sp, sa = math.sqrt(max(ep[-1], 0.0)), math.sqrt(max(ea[-1], 0.0))
        return p.prior_sigmas * max(self.K[0, 0], self.K[1, 1]) * (sa + sp / p.prior_near_m)

    # ------------------------------------------------------------------ matching
    def _pool(self, T_kibo_cam: Pose, margin_px: float) -> _Pool:
        """The map points that can be candidates from poses near T_kibo_cam (``_Pool``): the tests
        of ``_candidates`` widened by the largest change of a point's direction, the camera turn
        plus asin(shift / distance) <= pi/2 shift / distance, and of its distance, the shift.

        First per cell (``_Cells``, conservative: a skipped cell holds no point that would pass),
        then per point on the kept cells (the distance test first, the direction tests on its
        survivors); the ids come out increasing, as from one pass over the whole map."""
        pos = T_kibo_cam.position
        axis = rotmat_from_quat(T_kibo_cam.quat)[:, 2]
        # the image plus margin lies in a cone about the optical axis of half-angle gamma
        cx, cy = self.K[0, 2], self.K[1, 2]
        half_w = (max(cx, self.width - 1 - cx) + margin_px) / self.K[0, 0]
        half_h = (max(cy, self.height - 1 - cy) + margin_px) / self.K[1, 1]
        gamma = float(np.arctan(np.hypot(half_w, half_h)))
        # cells: a point at distance dist in [L - r, L + r] from the camera, within asin(r / L) of
        # the direction to the cell centre, turned by at most beta(L - r) >= beta(dist)
        c = self._cells
        v = c.centre - pos
        L = np.sqrt(np.einsum("ij,ij->i", v, v))
        r = c.radius
        inside = L <= r
        Ls = np.maximum(L, 1e-12)
        off_axis = np.arccos(np.clip(v @ axis / Ls, -1.0, 1.0)) - np.arcsin(np.clip(r / Ls, 0.0, 1.0))
        beta_max = np.minimum(0.5 * np.pi * POOL_SHIFT_M / np.maximum(L - r, 1e-9), 0.5 * np.pi)
        eps = 1e-9  # rounding slack: the cell tests must not be stricter than the point tests
        keep = inside | (off_axis < gamma + POOL_TURN_RAD + beta_max + eps)
        keep &= (L + r + POOL_SHIFT_M + eps > c.near) & (L - r - POOL_SHIFT_M - eps < c.far)
        ids = np.flatnonzero(keep[c.of])
        d = np.take(self.map.points, ids, axis=0)  # np.take: several times faster than points[ids]
        d -= pos
        dist = np.sqrt(np.einsum("ij,ij->i", d, d))
        near, far = np.take(self._near, ids), np.take(self._far, ids)
        k = np.flatnonzero((dist + POOL_SHIFT_M > near) & (dist - POOL_SHIFT_M < far))
        ids, d, dist = ids[k], np.take(d, k, axis=0), dist[k]
        beta = np.minimum(0.5 * np.pi * POOL_SHIFT_M / np.maximum(dist, 1e-9), 0.5 * np.pi)
        view = -np.einsum("ij,ij->i", d, np.take(self._view_dirs64, ids, axis=0))
        ok = view > np.cos(np.radians(self.params.max_view_angle_deg) + beta) * dist
        ok &= d @ axis > np.cos(np.minimum(gamma + POOL_TURN_RAD + beta, np.pi)) * dist
        ids = ids[ok]
        return _Pool(
            T_kibo_cam,
            margin_px,
            ids,
            np.take(self.map.points, ids, axis=0),
            np.take(self._view_dirs64, ids, axis=0),
            self._near[ids],
            self._far[ids],
        )

    def _frame_pool(self, T_kibo_cam: Pose, margin_px: float) -> _Pool:
        """The pool of a frame's guided passes: the previous one while it covers T_kibo_cam with room
        to spare (``POOL_REUSE_SHARE``; consecutive tracking frames), else a new one (``_pool``). The
        candidates are the same either way (``_candidates`` tests coverage at every pass pose)."""
        pool = self._last_pool
        if pool is None or not pool.covers(T_kibo_cam, margin_px, POOL_REUSE_SHARE):
            pool = self._last_pool = self._pool(T_kibo_cam, margin_px)
        return pool

    def _candidates(
        self, T_kibo_cam: Pose, margin_px: float, pool: _Pool | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Ids and projections (px) of map points plausibly visible from T_kibo_cam; tested among
        ``pool`` when it covers this pose (the same result, fewer points), else the whole map."""
        if pool is not None and pool.covers(T_kibo_cam, margin_px):
            ids, points, view_dirs, near, far = pool.ids, pool.points, pool.view_dirs, pool.near, pool.far
        else:  # the same values as the pool's: the same results
            ids, points, view_dirs = None, self.map.points, self._view_dirs64
            near, far = self._near, self._far
        R = rotmat_from_quat(T_kibo_cam.quat)
        d = points - T_kibo_cam.position
        pc = d @ R
        z = pc[:, 2]
        ok = z > self.params.min_depth
        dist = np.sqrt(np.einsum("ij,ij->i", d, d))
        ok &= -np.einsum("ij,ij->i", d, view_dirs) > self._cos_view * dist
        ok &= (dist > near) & (dist < far)
        sel = np.flatnonzero(ok)
        ps = np.take(pc, sel, axis=0)
        uv = ps[:, :2] / ps[:, 2:3]
        uv *= (self.K[0, 0], self.K[1, 1])
        uv += self.K[:2, 2]
        inside = (
            (uv[:, 0] > -margin_px)
            & (uv[:, 0] < self.width - 1 + margin_px)
            & (uv[:, 1] > -margin_px)
            & (uv[:, 1] < self.height - 1 + margin_px)
        )
        keep = np.flatnonzero(inside)
        sel, uv = sel[keep], np.take(uv, keep, axis=0)
        if len(sel) > self.params.max_candidates:  # uniform thinning keeps the spatial spread
            keep = np.linspace(0, len(sel) - 1, self.params.max_candidates).astype(int)
            sel, uv = sel[keep], uv[keep]
        return (sel if ids is None else ids[sel]), uv

    def _match_window(
        self,
        feats: _Frame,
        ids: np.ndarray,
        uv: np.ndarray,
        radius: float,
        search_radius: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray, _Window | None]:
        """One-to-one (point id, keypoint index) matches within ``radius`` px of the projections, and
        the neighbour search (``_Window``) for re-matching at a nearby pose; ``search_radius`` (>=
        radius) widens the search kept for that."""
        none = np.zeros(0, int), np.zeros(0, int), None
        if len(ids) == 0 or feats.tree is None:
            return none
        search = radius if search_radius is None else search_radius
        rows, dd, nn, ham = self._neighbours(feats, ids, uv, np.arange(len(ids)), search)
        if len(rows) == 0:
            return none
        window = _Window(ids, uv, search, rows, nn, ham, np.isfinite(dd[:, -1]))
        if search > radius:
            ham = np.where(dd <= radius, ham, 256)
        return (*self._select(ids, rows, nn, ham), window)

    def _neighbours(
        self, feats: _Frame, ids: np.ndarray, uv: np.ndarray, rows: np.ndarray, search: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """k-d tree search of the candidates ``rows`` (increasing) of ``ids`` (projections ``uv``
        (n,2) px): those of them with a keypoint within ``search`` px, (m,), their nearest keypoints
        nn (m,k) (nearest first, 0 where none), pixel distances dd (m,k) (inf: none) and Hamming
        distances ham (m,k) (256: none); k = ``window_neighbours``."""
        k = int(min(len(feats.uv), self.params.window_neighbours))
        dd, nn = feats.tree.query(uv[rows], k=k, distance_upper_bound=search)  # type: ignore[union-attr]
        dd, nn = dd.reshape(len(rows), k), nn.reshape(len(rows), k)
        found = np.flatnonzero(np.isfinite(dd[:, 0]))  # neighbours come sorted by pixel distance
        rows, dd, nn = rows[found], dd[found], nn[found]
        valid = np.isfinite(dd)
        # Hamming distances of each projected point to its neighbours, 256 where none; np.take and
        # the sum of the four 64-bit word counts as two uint8 pairs: ~3x faster than fancy indexing
        # and a reduction along the last axis
        ham = np.full(valid.shape, 256, dtype=np.int32)
        x = np.take(self._desc64, np.repeat(ids[rows], valid.sum(axis=1)), axis=0)  # valid: a prefix per row
        x ^= np.take(feats.desc.view(np.uint64), nn[valid], axis=0)
        c = np.bitwise_count(x)  # (n,4) uint8, each <= 64
        ham[valid] = (c[:, 0] + c[:, 1]).astype(np.int32) + (c[:, 2] + c[:, 3])
        return rows, dd, np.where(valid, nn, 0), ham

    def _rematch(
        self,
        feats: _Frame,
        w: _Window,
        T_kibo_cam: Pose,
        radius: float,
        candidates: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The matches of ``_match_window`` for the candidates of ``w`` at a nearby pose, from the
        neighbours already found: exact (up to the cap of ``window_neighbours`` per point) when no
        projection moved more than the search radius of ``w`` minus ``radius``; else None (search
        again). Returns (point ids, keypoint indices, projections (n,2) px of ``w.ids``).

        candidates : (ids (n,) increasing, projections (n,2) px) at T_kibo_cam (``_candidates``):
        match those instead, the ones ``w`` cannot answer exactly (not among its candidates, moved
        more than that, or at the cap of neighbours) by a new search of them alone: exactly the
        matches of a new search over all; never None. Returns their projections."""
        if candidates is None:
            R = rotmat_from_quat(T_kibo_cam.quat)
            pc = (np.take(self.map.points, w.ids, axis=0) - T_kibo_cam.position) @ R
            uv = pc[:, :2] / pc[:, 2:3] * (self.K[0, 0], self.K[1, 1]) + self.K[:2, 2]
            ids, at = w.ids, np.arange(len(w.ids))
            moved = uv - w.uv
            if not np.all(np.einsum("ij,ij->i", moved, moved) <= (w.radius - radius) ** 2):
                return None
            known = np.ones(len(ids), dtype=bool)
        else:
            ids, uv = candidates
            if len(ids) == 0:
                return np.zeros(0, int), np.zeros(0, int), uv
            at = np.minimum(np.searchsorted(w.ids, ids), len(w.ids) - 1)
            moved = uv - w.uv[at]
            known = (w.ids[at] == ids) & (np.einsum("ij,ij->i", moved, moved) <= (w.radius - radius) ** 2)
        window_row = np.full(len(w.ids), -1)
        window_row[w.rows] = np.arange(len(w.rows))
        wr = window_row[at]
        if candidates is not None:
            known &= (wr < 0) | ~w.full[wr]
        rows = np.flatnonzero(known & (wr >= 0))  # the known candidates without neighbours have none
        wr = wr[rows]
        nn, w_ham = w.nn[wr], w.ham[wr]
        du = np.take(feats.uv[:, 0], nn) - uv[rows, 0:1]
        dv = np.take(feats.uv[:, 1], nn) - uv[rows, 1:2]
        d = np.sqrt(du * du + dv * dv)  # np.linalg.norm(axis=2), bit for bit
        ham = np.where(d <= radius, w_ham, 256)  # w_ham 256: no neighbour (whatever its d)
        # ``_select`` takes each row's first smallest Hamming distance in nearest-first order (as from
        # the k-d tree): instead of sorting the rows by the new distances, swap the nearest of the
        # smallest (equal distances: the earlier column, as a stable sort) into column 0
        best = ham.min(axis=1)
        col = np.argmin(np.where(ham == best[:, None], d, np.inf), axis=1)
        r = np.arange(len(rows))
        first_h, first_n, best_n = ham[:, 0].copy(), nn[:, 0].copy(), nn[r, col]
        ham[:, 0], nn[:, 0] = best, best_n
        ham[r, col], nn[r, col] = first_h, first_n  # (col 0: unchanged)
        if not known.all():
            again, _, nn_a, ham_a = self._neighbours(feats, ids, uv, np.flatnonzero(~known), radius)
            rows = np.concatenate([rows, again])
            o = np.argsort(rows, kind="stable")  # increasing rows, as from one search
            rows, nn, ham = rows[o], np.vstack([nn, nn_a])[o], np.vstack([ham, ham_a])[o]
        return (*self._select(ids, rows, nn, ham), uv)

    def _select(
        self, ids: np.ndarray, rows: np.ndarray, nn: np.ndarray, ham: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per candidate row (point ``ids[rows]``, keypoints ``nn`` nearest first, Hamming distances
        ``ham``, 256 where none): the best (first minimum: the nearest in the image among equals)
        against the second-best (ratio test), then one-to-one (each keypoint keeps its closest point)."""
        if ham.shape[1] > 1:
            two = np.partition(ham, 1, axis=1)  # smallest and second smallest first
            best_d, second = two[:, 0], two[:, 1]
        else:
            best_d, second = ham[:, 0], np.full(len(rows), 256)
        ok = np.flatnonzero((best_d <= self.params.max_hamming) & (best_d < self.params.ratio * second))
        col = np.argmin(ham[ok], axis=1)  # the first minimum of the rows that pass
        sel_p, sel_k, sel_d = rows[ok], nn[ok, col], best_d[ok]
        if len(sel_k) == 0:
            return np.zeros(0, int), np.zeros(0, int)
        o = np.lexsort((sel_d, sel_k))
        sel_p, sel_k = sel_p[o], sel_k[o]
        u = np.concatenate(([True], sel_k[1:] != sel_k[:-1]))  # np.r_ costs ~20 us more per call
        return ids[sel_p[u]], sel_k[u]

    def _solve(
        self, obj: np.ndarray, img: np.ndarray, sig: np.ndarray, T0: Pose | None, iters: int
    ) -> tuple[Pose, np.ndarray] | None:
        """PnP RANSAC (SQPnP; skipped when ``iters`` is 0: start from T0 with the matches that fit it
        within ``ransac_reproj_px``) + ``_refine`` on inliers; returns (T_kibo_cam, inlier mask)."""
        p = self.params
        if len(obj) < 6:
            return None
        if iters == 0 and T0 is not None:
            uv, _, z = project_with_jacobian_at(self.K, T0.position, rotmat_from_quat(T0.quat), obj, False)
            mask = (np.linalg.norm(uv - img, axis=1) < p.ransac_reproj_px * sig) & (z > p.min_depth)
            if mask.sum() < 6:
                return None
            return self._refine(obj, img, sig, mask, T0)
        try:
            ok, rvec, tvec, inl = cv2.solvePnPRansac(
                obj.reshape(-1, 1, 3),
                img.reshape(-1, 1, 2),
                self.K,
                None,
                iterationsCount=iters,
                reprojectionError=p.ransac_reproj_px,
                confidence=0.999,
                flags=cv2.SOLVEPNP_SQPNP,
            )
        except cv2.error:  # degenerate sample set (e.g. all points on a line)
            return None
        if not ok or inl is None or len(inl) < 6:
            return None
        mask = np.zeros(len(obj), dtype=bool)
        mask[inl.ravel()] = True
        return self._refine(obj, img, sig, mask, pose_from_rvec_tvec(rvec, tvec))

    def _refine(
        self, obj: np.ndarray, img: np.ndarray, sig: np.ndarray, mask: np.ndarray, T: Pose
    ) -> tuple[Pose, np.ndarray]:
        """Robust weighted least squares on the inliers from T_kibo_cam ``T`` (``_gauss_newton``),
        then the inlier test at 2.5 sigma, repeated until the inlier set is stable (at most 3 times)."""
        p = self.params
        for _ in range(3):
            T = _gauss_newton(self.K, T, obj[mask], img[mask], sig[mask], p.robust_k)
            uv, _, z = project_with_jacobian_at(self.K, T.position, rotmat_from_quat(T.quat), obj, False)
            new = (np.linalg.norm(uv - img, axis=1) < 2.5 * sig) & (z > p.min_depth)
            if np.array_equal(new, mask) or new.sum() < 6:
                break
            mask = new
        return T, mask

    def _guided(
        self, feats: _Frame, T_kibo_cam: Pose, radius: float, tight_start: bool = False
    ) -> _Solution | None:
        """Guided matching around a predicted pose, solve, then the tight passes; a tight pass after
        another re-matches that pass's candidates from its neighbour search (``_rematch``) when the
        pose moved little, else takes the candidates at the new pose and searches again only those
        that search cannot answer exactly. ``tight_start``: no wide RANSAC pass, the tight passes
        start from the prior (``localize`` with a tight prior covariance)."""
        p = self.params
        T = T_kibo_cam
        pool = self._frame_pool(T, max(radius, p.refine_radius_px))
        if tight_start:
            passes = [(p.refine_radius_px, 0)] * max(p.refine_passes, 1)
        else:
            passes = [(radius, p.track_ransac_iters)] + [(p.refine_radius_px, 0)] * p.refine_passes
        most_passes = len(passes) + p.extra_refine_passes
        window: _Window | None = None
        for i, (r, iters) in enumerate(passes):  # grows while the tight passes have not converged
            again = None
            if window is not None and not iters:
                again = self._rematch(feats, window, T, r)
                if again is None:  # some moved more: the candidates at T, new searches only where needed
                    again = self._rematch(feats, window, T, r, self._candidates(T, r, pool))
            if again is not None:
                pid, kj, uv = again
            else:
                ids, uv = self._candidates(T, r, pool)
                if iters and len(ids) > p.first_pass_candidates:
                    keep = np.linspace(0, len(ids) - 1, p.first_pass_candidates).astype(int)
                    ids, uv = ids[keep], uv[keep]
                reuse = not iters and i + 1 < len(passes)  # a tight pass follows: keep a wider search
                pid, kj, window = self._match_window(
                    feats, ids, uv, r, r + REMATCH_SLACK_PX if reuse else None
                )
                if not reuse:
                    window = None
            if len(pid) < p.min_inliers:
                return None
            sig = self.scale ** feats.octave[kj]
            res = self._solve(self.map.points[pid], feats.uv[kj], sig, T, iters)
            if res is None:
                return None
            T_before, (T, mask) = T, res
            last = i + 1 == len(passes)
            if last and not iters and len(passes) < most_passes:
                # a first pass that landed off the optimum (a few chance matches) is pulled back by
                # each tight pass: keep going while a pass still moves the pose
                if not _close(T, T_before, p.converged_m, p.converged_rad):
                    passes.append((p.refine_radius_px, 0))
        # map points predicted in the image by the last pass (at its prior pose; at most max_candidates)
        in_image = (
            (uv[:, 0] >= 0) & (uv[:, 0] <= self.width - 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= self.height - 1)
        )
        n_proj = int(in_image.sum())
        return _Solution(
            T, self.map.points[pid[mask]], feats.uv[kj[mask]], sig[mask], pid[mask], len(pid), n_proj
        )

    def _relocalize(self, feats: _Frame) -> tuple[_Solution | None, str]:
        """Retrieval (approximate global matching, keyframe votes), then per keyframe exhaustive
        matching against the points it can see, PnP RANSAC and the guided refinement + gates."""
        p = self.params
        kuv, kdesc = feats.uv, feats.desc
        knn = self._flann.knnMatch(kdesc, k=2)
        t = [
            m[0].trainIdx
            for m in knn
            if len(m) == 2
            and m[0].distance <= p.max_hamming
            and m[0].distance < p.reloc_ratio * m[1].distance
        ]
        if len(t) < 3:
            return None, "matches"
        t_arr = np.array(t)
        starts, ends = self._pt_kf_off[t_arr], self._pt_kf_off[t_arr + 1]
        kf = np.concatenate([self._pt_kf[s:e] for s, e in zip(starts, ends, strict=True)])
        votes = np.bincount(kf, minlength=self.map.n_keyframes)
        reason = "ransac"
        tried: list[Pose] = []
        for k in np.argsort(-votes):
            if len(tried) >= p.reloc_keyframes or votes[k] < 3:
                break
            T_kf = self.map.keyframe_pose(int(k))
            if any(_close(T_kf, T, 0.3, 0.5) for T in tried):
                continue
            tried.append(T_kf)
            ids, _ = self._candidates(T_kf, 0.0)
            if len(ids) < p.reloc_min_matches:
                continue
            pairs = self._bf.knnMatch(kdesc, self.map.descriptors[ids], k=2)
            qm = [
                (m[0].queryIdx, m[0].trainIdx)
                for m in pairs
                if len(m) == 2 and m[0].distance <= p.max_hamming and m[0].distance < p.ratio * m[1].distance
            ]
            if len(qm) < p.reloc_min_matches:
                continue
            qi, ti = np.array(qm).T
            res = self._solve(self.map.points[ids[ti]], kuv[qi], np.ones(len(qi)), None, p.reloc_ransac_iters)
            if res is None or res[1].sum() < p.reloc_min_matches:
                continue
            sol, reason = self._gate(self._guided(feats, res[0], 2.0 * p.ransac_reproj_px))
            if sol is not None:
                return sol, ""
        return None, reason

    # ------------------------------------------------------------------ gates and covariance
    def _covariance(self, sol: _Solution) -> tuple[np.ndarray, float, float]:
        p = self.params
        uv, J, _ = project_with_jacobian(self.K, sol.T_kibo_cam, sol.obj)
        w = np.repeat(1.0 / sol.sig, 2)
        r = (sol.img - uv).ravel() * w
        Jw = J * w[:, None]
        ssr = float(r @ r)
        dof = max(r.size - 6, 0)
        sigma2 = (ssr + p.prior_dof * p.keypoint_sigma_px**2) / max(dof + p.prior_dof, 1e-9)
        sigma2 = max(sigma2, p.min_sigma_px**2)
        cov = p.cov_inflation * sigma2 * np.linalg.inv(Jw.T @ Jw)
        return 0.5 * (cov + cov.T), float(np.sqrt(ssr / max(r.size / 2, 1))), float(np.sqrt(sigma2))

    def _planar_alternative(self, sol: _Solution) -> Pose | None:
        """The other local minimum of a (nearly) planar inlier set when it explains the image about
        as well (the planar pose ambiguity of a small, distant patch), else None."""
        p = self.params
        c = sol.obj.mean(axis=0)
        sv = np.linalg.svd(sol.obj - c, compute_uv=False)
        if sv[2] > p.planar_ratio * sv[0]:
            return None
        try:
            n, rvecs, tvecs, _ = cv2.solvePnPGeneric(sol.obj, sol.img, self.K, None, flags=cv2.SOLVEPNP_IPPE)
        except cv2.error:
            return None

        def wrms(T: Pose) -> float:
            uv, _, _ = project_with_jacobian(self.K, T, sol.obj)
            return float(np.sqrt(np.mean(np.sum(((uv - sol.img) / sol.sig[:, None]) ** 2, axis=1))))

        own = wrms(sol.T_kibo_cam)
        for k in range(n):
            rvec, tvec = cv2.solvePnPRefineLM(sol.obj, sol.img, self.K, None, rvecs[k], tvecs[k])
            T = pose_from_rvec_tvec(rvec, tvec)
            if _close(T, sol.T_kibo_cam, 0.03, np.radians(2.0)):
                continue
            if wrms(T) < p.planar_alt_factor * own + 0.2:
                return T
        return None

    def _gate(self, sol: _Solution | None, prior_cam: Pose | None = None) -> tuple[_Solution | None, str]:
        p = self.params
        if sol is None:
            return None, "matches"
        n = len(sol.obj)
        if n < (p.min_inliers if prior_cam is not None else p.reloc_min_inliers):
            return None, "inliers"
        if n < p.min_inlier_ratio * sol.n_candidates:
            return None, "inlier_ratio"
        lo, hi = self._bbox
        if np.any(sol.T_kibo_cam.position < lo) or np.any(sol.T_kibo_cam.position > hi):
            return None, "outside_map"
        span = np.ptp(sol.img, axis=0)
        if span[0] * span[1] < p.min_spread * self.width * self.height:
            return None, "spread"
        try:
            cov, rms, _ = self._covariance(sol)
        except np.linalg.LinAlgError:
            return None, "covariance"
        if rms > p.max_rms_px:
            return None, "rms"
        if np.sqrt(np.max(np.linalg.eigvalsh(cov[:3, :3]))) > p.max_position_std:
            return None, "position_std"
        alt = self._planar_alternative(sol)
        if alt is not None:
            # keep the solution only if a prior clearly prefers it over the other minimum
            if prior_cam is None or not _pose_gap(sol.T_kibo_cam, prior_cam) < 0.5 * _pose_gap(
                alt, prior_cam
            ):
                return None, "planar_ambiguity"
        return sol, ""

    def _measurement(self, sol: _Solution, stamp: float) -> PoseMeasurement:
        cov_cam, rms, sigma = self._covariance(sol)
        T = sol.T_kibo_cam
        return PoseMeasurement(
            stamp=float(stamp),
            T_kibo_cam=T,
            T_kibo_base=T.compose(self.T_cam_base),
            covariance_cam=cov_cam,
            covariance=pose_covariance_to_child(cov_cam, T, self.T_cam_base),
            marker_ids=(),
            rejected_ids=(),
            rms_px=rms,
            sigma_px=sigma,
        )


__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "FeatureLocalizer",
    "FeatureLocalizerParams",
    "FeatureMap",
    "FeatureMapError",
    "LocalizationStats",
    "MapBuildParams",
    "OrbParams",
    "SurveyView",
    "build_feature_map_from_views",
    "hamming",
    "load_feature_map",
    "save_feature_map",
]
