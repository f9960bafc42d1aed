"""Fiducial-marker localization: detect the module's ArUco markers and solve the camera pose.

Pipeline of ``MarkerLocalizer``:

1. ``detect(gray)``: OpenCV ``ArucoDetector`` (parameters in ``DetectorTuning``, sub-pixel corner
   refinement). Corners are in OpenCV order (top-left, top-right, bottom-right, bottom-left).
2. ``estimate(detections, stamp)``:

   a. ids not in the marker map are ignored (the dock marker is a map marker like any other);
   b. every marker gives one or two camera-pose hypotheses (``SOLVEPNP_IPPE_SQUARE``, both
      solutions of the planar ambiguity);
   c. consensus: each hypothesis predicts the corners of every other detected marker; a marker
      agrees when its corners are within ``consensus_rel`` of its own size in pixels (at least
      ``consensus_min_px``). The hypothesis with most agreeing markers wins (ties: smallest
      error). Markers that disagree are rejected (wrong id, moved marker, mirror image);
   d. one joint Levenberg-Marquardt refinement (``solvePnPRefineLM``) over all corners of the
      agreeing markers, then per-marker reprojection RMS: the worst marker above
      ``max_marker_rms_px`` is dropped and the pose re-solved, until all pass; markers the loose
      consensus missed but the joint pose explains are then re-admitted once;
   e. covariance ``sigma^2 (J^T J)^-1`` from the analytic projection Jacobian at the solution,
      with ``sigma^2`` the residual variance (``SSR / (2N - 6)``) blended with the prior
      ``corner_sigma_px`` over ``prior_dof`` pseudo-observations (a scaled-inverse-chi-square
      prior, so one marker with 2 degrees of freedom does not give a random covariance).

Covariance convention (both ``covariance_cam`` and ``covariance``): (6,6) ordered
``[dp (3) m kibo frame, dtheta (3) rad local frame]`` for ``p_true = p + dp`` and
``R_true = R @ Exp(dtheta)`` (local frame = camera optical frame for ``T_kibo_cam``, base_link
for ``T_kibo_base``). This is the error state of ``intball_nav.estimation.eskf``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from intball_nav.frames import Pose
from intball_nav.module import Marker, MarkerMap
from intball_nav.vision.camera_geometry import (
    points_in_camera,
    pose_covariance_to_child,
    pose_from_rvec_tvec,
    project,
    project_with_jacobian,
    rvec_tvec_from_pose,
)


@dataclass(frozen=True)
class DetectorTuning:
    """ArUco detector parameters (OpenCV names). Defaults are tuned for 320x240 to 640x480
    navigation frames with 0.10-0.20 m markers at 0.5-3 m (see bench/bench_loc_frame.py).
    ``min_marker_perimeter_rate`` 0.05 and ``min_corner_distance_rate`` 0.1 (OpenCV: 0.03, 0.05)
    discard candidate quads earlier: on 250 EGL renders of the module (150 random poses, 100
    close-ups at 0.12-0.6 m) the same 735 markers are used and detection takes 1.8 instead of
    3.4 ms on a 320x240 frame without markers (2.3 vs 3.8 ms with markers). The corner distance
    drops quads seen nearly edge-on (beyond ~77 deg from the normal), whose corners are biased."""

    adaptive_thresh_win_size_min: int = 5
    adaptive_thresh_win_size_max: int = 21
    adaptive_thresh_win_size_step: int = 8
    min_marker_perimeter_rate: float = 0.05
    max_marker_perimeter_rate: float = 4.0
    polygonal_approx_accuracy_rate: float = 0.03
    min_corner_distance_rate: float = 0.1
    corner_refinement_win_size: int = 3
    relative_corner_refinement_win_size: float = 0.6
    corner_refinement_max_iterations: int = 30
    corner_refinement_min_accuracy: float = 0.01
    error_correction_rate: float = 0.6
    corner_offset_px: float = 0.15
    """px, moves every refined corner outward along its marker diagonal: compensates the inward
    bias of the ArUco corner refinement (measured -0.14 to -0.21 px on anti-aliased synthetic renders
    and on PyBullet TinyRenderer images, 320x240 to 1280x960); calibrate per camera."""

    def detector_parameters(self) -> cv2.aruco.DetectorParameters:
        p = cv2.aruco.DetectorParameters()
        p.adaptiveThreshWinSizeMin = self.adaptive_thresh_win_size_min
        p.adaptiveThreshWinSizeMax = self.adaptive_thresh_win_size_max
        p.adaptiveThreshWinSizeStep = self.adaptive_thresh_win_size_step
        p.minMarkerPerimeterRate = self.min_marker_perimeter_rate
        p.maxMarkerPerimeterRate = self.max_marker_perimeter_rate
        p.polygonalApproxAccuracyRate = self.polygonal_approx_accuracy_rate
        p.minCornerDistanceRate = self.min_corner_distance_rate
        p.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
        p.cornerRefinementWinSize = self.corner_refinement_win_size
        p.relativeCornerRefinmentWinSize = self.relative_corner_refinement_win_size
        p.cornerRefinementMaxIterations = self.corner_refinement_max_iterations
        p.cornerRefinementMinAccuracy = self.corner_refinement_min_accuracy
        p.errorCorrectionRate = self.error_correction_rate
        return p


@dataclass(frozen=True)
class LocalizerParams:
    """Pose-solver and outlier-rejection parameters.

    corner_sigma_px : prior corner noise std (px) of the covariance (see module docstring).
    prior_dof : weight of that prior in pseudo-observations (0 = residual variance only).
    consensus_rel, consensus_min_px : agreement threshold of a marker with a single-marker
        hypothesis, as a fraction of the marker's side in px and an absolute floor (px).
    max_marker_rms_px : per-marker corner RMS (px) allowed at the joint solution.
    min_markers : fewest agreeing markers for a pose (1 allows single-marker poses).
    min_depth : corners closer than this (m, optical z) are rejected.
    max_view_angle_deg : no pose from a single marker seen at more than this angle between its
        normal and the line of sight: a marker seen nearly edge-on is a sliver whose refined
        corners are biased by far more than ``corner_sigma_px`` (measured on EGL renders of the
        module: single 0.15 m markers at 76-82 deg gave 12-13 cm position errors against a claimed
        1.4 cm std). In a joint solution such markers stay (with others they help: on synthetic
        renders dropping them worsened a 6-marker pose at 77 deg from 1.5 to 16 mm).
    """

    corner_sigma_px: float = 0.3
    prior_dof: float = 4.0
    consensus_rel: float = 0.5
    consensus_min_px: float = 4.0
    max_marker_rms_px: float = 2.0
    min_markers: int = 1
    min_depth: float = 0.05
    max_view_angle_deg: float = 75.0

    def __post_init__(self) -> None:
        checks = {
            "max_view_angle_deg": 0.0 < self.max_view_angle_deg <= 90.0,
            "corner_sigma_px": self.corner_sigma_px > 0.0,
            "prior_dof": self.prior_dof >= 0.0,
            "consensus_rel": self.consensus_rel > 0.0,
            "consensus_min_px": self.consensus_min_px > 0.0,
            "max_marker_rms_px": self.max_marker_rms_px > 0.0,
            "min_markers": self.min_markers >= 1,
            "min_depth": self.min_depth > 0.0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"LocalizerParams.{name}={getattr(self, name)!r} is out of range")


@dataclass(frozen=True)
class MarkerDetection:
    """One detected marker. corners : (4,2) px, OpenCV order (TL, TR, BR, BL), distortion removed."""

    marker_id: int
    corners: np.ndarray


@dataclass(frozen=True)
class PoseMeasurement:
    """Camera and robot pose from the markers in one image.

    stamp : s, image capture time.
    T_kibo_cam : pose of the camera optical frame in kibo.
    T_kibo_base : pose of base_link in kibo (``T_kibo_cam * T_base_cam^-1``).
    covariance_cam : (6,6) of T_kibo_cam, [dp m kibo, dtheta rad optical frame].
    covariance : (6,6) of T_kibo_base, [dp m kibo, dtheta rad base_link frame].
    marker_ids : ids used in the solution; rejected_ids : map ids detected but rejected.
    rms_px : corner reprojection RMS (px) over the used markers; sigma_px : the corner std used to
    scale the covariance. ambiguous : single marker whose two planar solutions fit about equally.
    """

    stamp: float
    T_kibo_cam: Pose
    T_kibo_base: Pose
    covariance_cam: np.ndarray
    covariance: np.ndarray
    marker_ids: tuple[int, ...]
    rejected_ids: tuple[int, ...]
    rms_px: float
    sigma_px: float
    ambiguous: bool = False

    @property
    def n_markers(self) -> int:
        return len(self.marker_ids)


class CameraLike(Protocol):
    """What the localizer reads of a camera (``intball_sim.camera.CameraModel`` has it):
    K (3,3) px, width and height px, T_base_cam = pose of the *optical* frame in base_link,
    D (5,) OpenCV distortion coefficients (zeros for the simulated cameras)."""

    @property
    def K(self) -> np.ndarray: ...
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def T_base_cam(self) -> Pose: ...
    @property
    def D(self) -> np.ndarray: ...


@dataclass(frozen=True)
class _MapMarker:
    marker: Marker
    corners_local: np.ndarray  # (4,3) m, marker frame, OpenCV order
    corners_kibo: np.ndarray  # (4,3) m, kibo frame

    @property
    def marker_id(self) -> int:
        return self.marker.id


def dictionary_from_name(name: str) -> cv2.aruco.Dictionary:
    """OpenCV ArUco dictionary of a ``DICT_*`` name (e.g. ``DICT_4X4_250``)."""
    key = name.upper()
    if not key.startswith("DICT_") or not hasattr(cv2.aruco, key):
        raise ValueError(f"unknown ArUco dictionary {name!r}; expected a cv2.aruco DICT_* name")
    return cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, key))


@dataclass(frozen=True)
class _Hypothesis:
    T_kibo_cam: Pose
    own_err: float


class MarkerLocalizer:
    """Marker detection and joint camera pose (see module docstring).

    marker_map : the module's marker map (``intball_nav.module.load_marker_map()``).
    camera_model : a ``CameraLike`` (``intball_sim.camera.CameraModel``); ``T_base_cam`` overrides
        its mount (pose of the optical frame in base_link).
    """

    def __init__(
        self,
        marker_map: MarkerMap,
        camera_model: CameraLike,
        params: LocalizerParams | None = None,
        tuning: DetectorTuning | None = None,
        T_base_cam: Pose | None = None,
    ) -> None:
        self.params = params if params is not None else LocalizerParams()
        self.tuning = tuning if tuning is not None else DetectorTuning()
        self.K = np.asarray(camera_model.K, dtype=float)
        self.width = int(camera_model.width)
        self.height = int(camera_model.height)
        dist = np.asarray(getattr(camera_model, "D", np.zeros(5)), dtype=float)
        self.dist = dist if np.any(dist) else None
        self.T_base_cam = T_base_cam if T_base_cam is not None else camera_model.T_base_cam
        self.T_cam_base = self.T_base_cam.inverse()
        self.dictionary = dictionary_from_name(marker_map.dictionary)
        self.map = {m.id: _MapMarker(m, m.corners_local(), m.corners()) for m in marker_map.markers}
        self.detector = cv2.aruco.ArucoDetector(self.dictionary, self.tuning.detector_parameters())

    # ------------------------------------------------------------------ detection
    def detect(self, gray: np.ndarray) -> list[MarkerDetection]:
        """Detected markers of a (H,W) uint8 image (any id; ``estimate`` filters by the map)."""
        if gray.ndim == 3:
            gray = cv2.cvtColor(gray, cv2.COLOR_RGB2GRAY)
        corners, ids, _ = self.detector.detectMarkers(gray)
        if ids is None:
            return []
        out = []
        for c, i in zip(corners, ids.ravel(), strict=True):
            c = c.reshape(4, 2).astype(float)
            if self.tuning.corner_offset_px:
                d = c - c.mean(axis=0)
                c = c + self.tuning.corner_offset_px * d / np.linalg.norm(d, axis=1, keepdims=True)
            if self.dist is not None:
                c = cv2.undistortPoints(c.reshape(-1, 1, 2), self.K, self.dist, P=self.K).reshape(4, 2)
            out.append(MarkerDetection(int(i), c))
        return out

    # ------------------------------------------------------------------ estimation
    def _hypotheses(self, det: MarkerDetection) -> list[_Hypothesis]:
        mm = self.map[det.marker_id]
        obj = mm.corners_local
        n, rvecs, tvecs, errs = cv2.solvePnPGeneric(
            obj, det.corners.reshape(4, 1, 2), self.K, None, flags=cv2.SOLVEPNP_IPPE_SQUARE
        )
        hyps = []
        for k in range(n):
            if not (np.all(np.isfinite(rvecs[k])) and np.all(np.isfinite(tvecs[k]))):
                continue
            # OpenCV's (rvec, tvec) map marker points into the camera: that is T_marker_cam.
            T_kibo_cam = mm.marker.pose.compose(pose_from_rvec_tvec(rvecs[k], tvecs[k]))
            hyps.append(_Hypothesis(T_kibo_cam, float(np.asarray(errs).ravel()[k])))
        return hyps

    def _marker_rms(self, T_kibo_cam: Pose, dets: list[MarkerDetection]) -> np.ndarray:
        pts = np.concatenate([self.map[d.marker_id].corners_kibo for d in dets])
        pc = points_in_camera(T_kibo_cam, pts)
        z = pc[:, 2]
        uv = project(self.K, pc)
        obs = np.concatenate([d.corners for d in dets])
        e2 = np.sum((uv - obs) ** 2, axis=1).reshape(len(dets), 4)
        rms = np.sqrt(e2.mean(axis=1))
        rms[np.any(z.reshape(len(dets), 4) < self.params.min_depth, axis=1)] = np.inf
        return rms

    def _refine(self, T0: Pose, dets: list[MarkerDetection]) -> Pose:
        obj = np.concatenate([self.map[d.marker_id].corners_kibo for d in dets])
        img = np.concatenate([d.corners for d in dets])
        rvec, tvec = rvec_tvec_from_pose(T0)
        rvec, tvec = cv2.solvePnPRefineLM(obj, img, self.K, None, rvec, tvec)
        return pose_from_rvec_tvec(rvec, tvec)

    def estimate(self, detections: list[MarkerDetection], stamp: float = 0.0) -> PoseMeasurement | None:
        """Joint camera pose from all map markers in ``detections``, or None (no consensus set of at
        least ``params.min_markers`` markers, or all markers rejected)."""
        p = self.params
        seen: dict[int, int] = {}
        for d in detections:
            seen[d.marker_id] = seen.get(d.marker_id, 0) + 1
        # A map id seen twice in one image is at most once right: drop both (cannot tell which).
        dets = [d for d in detections if d.marker_id in self.map and seen[d.marker_id] == 1]
        duplicates = sorted(
            {d.marker_id for d in detections if d.marker_id in self.map} - {d.marker_id for d in dets}
        )
        if len(dets) < p.min_markers:
            return None
        side_px = np.array(
            [np.mean(np.linalg.norm(np.roll(d.corners, -1, 0) - d.corners, axis=1)) for d in dets]
        )
        thresh = np.maximum(p.consensus_rel * side_px, p.consensus_min_px)

        # (b, c) single-marker hypotheses and consensus
        best_key: tuple[int, float] | None = None
        best_T: Pose | None = None
        best_in: np.ndarray | None = None
        hyp_errs: list[float] = []
        for d in dets:
            for h in self._hypotheses(d):
                rms = self._marker_rms(h.T_kibo_cam, dets)
                inl = rms < thresh
                key = (int(inl.sum()), -float(np.sum(np.minimum(rms, thresh) ** 2)))
                if len(dets) == 1:
                    hyp_errs.append(h.own_err)
                if best_key is None or key > best_key:
                    best_key, best_T, best_in = key, h.T_kibo_cam, inl
        if best_T is None or best_in is None:
            return None
        inliers = [d for d, ok in zip(dets, best_in, strict=True) if ok]
        if len(inliers) < p.min_markers:
            return None

        # (d) joint refinement, dropping the worst marker while any is above the threshold, then
        # once re-admitting markers the loose consensus missed but the joint pose explains
        T = self._refine(best_T, inliers)
        for _ in range(2):
            while True:
                rms = self._marker_rms(T, inliers)
                worst = int(np.argmax(rms))
                if rms[worst] <= p.max_marker_rms_px:
                    break
                inliers = inliers[:worst] + inliers[worst + 1 :]
                if len(inliers) < p.min_markers:
                    return None
                T = self._refine(T, inliers)
            fit = [
                d for d, e in zip(dets, self._marker_rms(T, dets), strict=True) if e <= p.max_marker_rms_px
            ]
            if {d.marker_id for d in fit} <= {d.marker_id for d in inliers}:
                break
            inliers = fit
            T = self._refine(T, inliers)
        if len(inliers) == 1 and self._view_angle(T, inliers[0]) > np.radians(p.max_view_angle_deg):
            return None  # one marker seen nearly edge-on: biased corners (``max_view_angle_deg``)

        # (e) covariance
        pts = np.concatenate([self.map[d.marker_id].corners_kibo for d in inliers])
        obs = np.concatenate([d.corners for d in inliers])
        uv, J, _ = project_with_jacobian(self.K, T, pts)
        r = (obs - uv).ravel()
        ssr = float(r @ r)
        dof = max(r.size - 6, 0)
        sigma2 = (ssr + p.prior_dof * p.corner_sigma_px**2) / max(dof + p.prior_dof, 1e-9)
        try:
            cov_cam = sigma2 * np.linalg.inv(J.T @ J)
        except np.linalg.LinAlgError:
            return None
        cov_cam = 0.5 * (cov_cam + cov_cam.T)
        used = {d.marker_id for d in inliers}
        rejected = tuple(sorted(({d.marker_id for d in dets} - used) | set(duplicates)))
        ambiguous = False
        if len(dets) == 1 and len(hyp_errs) == 2:
            lo, hi = sorted(hyp_errs)
            ambiguous = hi < 2.0 * lo + p.corner_sigma_px
        T_kibo_base = T.compose(self.T_cam_base)
        return PoseMeasurement(
            stamp=float(stamp),
            T_kibo_cam=T,
            T_kibo_base=T_kibo_base,
            covariance_cam=cov_cam,
            covariance=pose_covariance_to_child(cov_cam, T, self.T_cam_base),
            marker_ids=tuple(sorted(used)),
            rejected_ids=rejected,
            rms_px=float(np.sqrt(ssr / max(r.size / 2, 1))),
            sigma_px=float(np.sqrt(sigma2)),
            ambiguous=ambiguous,
        )

    def _view_angle(self, T_kibo_cam: Pose, det: MarkerDetection) -> float:
        """rad, angle between the marker's normal and its line of sight from T_kibo_cam."""
        m = self.map[det.marker_id].marker
        v = T_kibo_cam.position - m.pose.position
        return float(np.arccos(np.clip(v @ m.normal / max(float(np.linalg.norm(v)), 1e-12), -1.0, 1.0)))

    def localize(self, gray: np.ndarray, stamp: float = 0.0) -> PoseMeasurement | None:
        """``estimate(detect(gray), stamp)``."""
        return self.estimate(self.detect(gray), stamp)
