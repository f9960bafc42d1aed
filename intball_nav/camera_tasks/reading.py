"""Read markers and QR codes: id or text and 3D position in the kibo frame.

``read_codes(image, camera, T_kibo_cam, ...)`` finds, in one main-camera image,

- ArUco markers of the map dictionary (``DICT_4X4_250``): map markers and targets (ids in
  ``ReaderConfig.aruco_ids``; other ids are detector phantoms and are dropped), and
- QR codes (``cv2.QRCodeDetectorAruco`` over the image; codes it finds but cannot decode are
  cropped, upscaled and decoded again with ``cv2.QRCodeDetector``, which takes small codes
  (3-4 px per module) that neither reads at full frame).

Corners of both kinds are then refined by aligning the code's known module pattern (the
matrix the QR decoder returns, the dictionary bits of an ArUco id) to the image with ECC
(``refine_code_corners``): every module edge counts, and the ~1 px grid of OpenCV's QR corners
goes away (QR PnP error 4-12 mm -> sub-mm at 0.6-1.5 m on rendered images, docs/camera_tasks.md).

The 3D position is the code centre:

- ``method="pnp"``: ``SOLVEPNP_IPPE_SQUARE`` on the four corners with the known side
  (``ReaderConfig.marker_sizes`` / ``qr_size``). The covariance is ``sigma^2 (J^T J)^-1`` of
  the six pose parameters from the corner Jacobian (``cv2.projectPoints``), with ``sigma`` the
  corner noise (``refined_sigma_px``, or ``aruco_sigma_px`` / ``qr_sigma_px`` when the pattern
  alignment failed), blended with the fit residuals.
- ``method="depth"`` when a depth image is given: the centre pixel (intersection of the
  diagonals) back-projected with the median depth of a small window around it; the
  covariance combines ``depth_sigma`` along the ray and the centre-pixel noise across it.

Both are computed in the camera optical frame and mapped to kibo through ``T_kibo_cam``. If
``pose_covariance`` ((6,6), ``[dp m kibo, dtheta rad optical]`` as in ``vision.markers``) is
given, the camera pose uncertainty is added. Pure (numpy + cv2); no ROS, no PyBullet.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from intball_nav.frames import Pose, quat_from_rotmat, rotmat_from_quat, skew
from intball_nav.module import MarkerMap
from intball_nav.vision.markers import CameraLike, DetectorTuning, dictionary_from_name

MAP_DICTIONARY = "DICT_4X4_250"
"""Dictionary of the marker map and of ArUco targets (docs/module.md)."""
TARGET_ID_RANGE = range(200, 250)
"""ArUco ids reserved for targets (the map uses 0-146, the dock 99; DICT_4X4_250 ends at 249)."""


@dataclass(frozen=True)
class ReaderConfig:
    """What the reader knows about the codes it may see.

    dictionary : ArUco dictionary name
    aruco_ids : accepted ids (anything else is a detector phantom); default 0-249
    marker_sizes : id -> side of the black square (m); ids not listed use ``default_marker_size``
    default_marker_size : m
    qr_size : m, side of QR codes (outer edge of the finder patterns); ``qr_sizes`` by text
    aruco_sigma_px, qr_sigma_px : corner noise (px) for the PnP covariance
    depth_sigma : m, depth noise along the ray (depth method); depth_window : px, half window
    qr_upscale_px_per_module : target module size (px) of the upscaled retry
    min_cell_px : px, an ArUco quad whose shortest side spans fewer than this per cell (the
        marker's bits plus its black border, 6 cells for 4x4) is dropped: its bits are sampled
        from sub-pixel cells (seen at grazing angles or far away), so the id may be a phantom and
        the corners are too few pixels for PnP (rendered Kibo views: 4-5 px sides gave 9-13 cm
        errors and phantoms of ids 17 and 127 placed 4 m off)
    max_sigma : m, readings whose 1-sigma position radius (``CodeReading.sigma``) exceeds this are
        dropped; None keeps them all (the caller has the covariance)
    """

    dictionary: str = MAP_DICTIONARY
    aruco_ids: frozenset[int] = frozenset(range(250))
    marker_sizes: dict[int, float] = field(default_factory=dict)
    default_marker_size: float = 0.15
    qr_size: float = 0.20
    qr_sizes: dict[str, float] = field(default_factory=dict)
    aruco_sigma_px: float = 0.3
    qr_sigma_px: float = 0.6
    qr_refine: bool = True
    aruco_refine: bool = True
    refined_sigma_px: float = 0.3
    depth_sigma: float = 0.005
    depth_window: int = 2
    qr_upscale_px_per_module: float = 8.0
    min_cell_px: float = 1.0
    max_sigma: float | None = None


def config_for_map(
    marker_map: MarkerMap,
    target_sizes: dict[int, float] | None = None,
    *,
    target_size: float = 0.15,
    qr_size: float = 0.20,
    qr_sizes: dict[str, float] | None = None,
) -> ReaderConfig:
    """ReaderConfig that accepts the map's markers (with their sizes) and the target id range.

    target_sizes : id -> m for targets whose size differs from ``target_size``.
    """
    sizes = {int(i): target_size for i in TARGET_ID_RANGE}
    sizes.update({int(k): float(v) for k, v in (target_sizes or {}).items()})
    sizes.update({m.id: m.size for m in marker_map.markers})
    return ReaderConfig(
        dictionary=marker_map.dictionary,
        aruco_ids=frozenset(sizes),
        marker_sizes=sizes,
        default_marker_size=target_size,
        qr_size=qr_size,
        qr_sizes=dict(qr_sizes or {}),
    )


@dataclass(frozen=True)
class CodeReading:
    """One code seen in the image.

    kind : ``"aruco"`` or ``"qr"``
    value : marker id (int) or QR text (str)
    corners : (4,2) px, OpenCV order (TL, TR, BR, BL of the code)
    position : (3,) m, kibo frame, code centre
    covariance : (3,3) m^2, kibo frame, of position
    position_cam : (3,) m, camera optical frame
    method : ``"pnp"`` or ``"depth"``
    quat : (4,) xyzw q_kibo_code (z toward the camera, x right, y up as seen); PnP only, else None
    range : m, camera to code centre
    """

    kind: str
    value: int | str
    corners: np.ndarray
    position: np.ndarray
    covariance: np.ndarray
    position_cam: np.ndarray
    method: str
    quat: np.ndarray | None
    range: float

    @property
    def sigma(self) -> float:
        """m, 1-sigma radius: sqrt of the largest covariance eigenvalue."""
        return float(np.sqrt(np.max(np.linalg.eigvalsh(self.covariance))))


def _square(side: float) -> np.ndarray:
    h = 0.5 * side
    return np.array([[-h, h, 0.0], [h, h, 0.0], [h, -h, 0.0], [-h, -h, 0.0]])


def _shortest_side(corners: np.ndarray) -> float:
    """px, shortest side of a (4,2) quad."""
    return float(np.min(np.linalg.norm(corners - np.roll(corners, 1, axis=0), axis=1)))


def _centre_pixel(corners: np.ndarray) -> np.ndarray:
    """(2,) px, intersection of the diagonals TL-BR and TR-BL (the projected centre)."""
    a, b, c, d = corners
    l1 = np.cross([*a, 1.0], [*c, 1.0])
    l2 = np.cross([*b, 1.0], [*d, 1.0])
    x = np.cross(l1, l2)
    return x[:2] / x[2] if abs(x[2]) > 1e-12 else corners.mean(axis=0)


def _pnp(corners: np.ndarray, side: float, K: np.ndarray, sigma_px: float):
    """(t_cam (3,), R_cam_code (3,3), cov_t (3,3)) or None."""
    obj = _square(side)
    img = corners.reshape(4, 1, 2).astype(np.float64)
    n, rvecs, tvecs, _ = cv2.solvePnPGeneric(obj, img, K, None, flags=cv2.SOLVEPNP_IPPE_SQUARE)
    if n == 0:
        return None
    best = None
    for k in range(n):
        rv, tv = rvecs[k].reshape(3, 1), tvecs[k].reshape(3, 1)
        if tv[2, 0] <= 0 or not np.all(np.isfinite(tv)):
            continue
        proj, J = cv2.projectPoints(obj, rv, tv, K, None)
        res = proj.reshape(4, 2) - corners
        ssr = float(np.sum(res**2))
        if best is None or ssr < best[0]:
            best = (ssr, rv, tv, J[:, :6])
    if best is None:
        return None
    ssr, rv, tv, J = best
    # sigma^2: prior corner noise over 4 pseudo-observations blended with the 2 residual dof
    sigma2 = (4.0 * sigma_px**2 + ssr) / (4.0 + 2.0)
    cov = sigma2 * np.linalg.pinv(J.T @ J)  # order: rvec (3), tvec (3)
    R, _ = cv2.Rodrigues(rv)
    return tv.reshape(3), R, cov[3:, 3:]


def _detect_qr(gray: np.ndarray, cfg: ReaderConfig) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """[(text, corners (4,2) px, module matrix (N,N) uint8 or None)] of decoded QR codes."""
    out: list[tuple[str, np.ndarray, np.ndarray | None]] = []
    ok, texts, pts, straight = cv2.QRCodeDetectorAruco().detectAndDecodeMulti(gray)
    if not ok or pts is None:
        return out
    mats: list[np.ndarray | None] = list(straight) if straight is not None else []
    if len(mats) != len(texts):  # OpenCV drops the matrices of undecoded codes: no pairing
        mats = [None] * len(texts)
    H, W = gray.shape
    for text, quad, modules in zip(texts, pts.reshape(-1, 4, 2), mats, strict=True):
        quad = quad.astype(float)
        if text and modules is not None:
            out.append((text, quad, modules))
            continue
        # crop around the code, upscale to ~qr_upscale_px_per_module px per module, decode again
        side = float(np.max(np.linalg.norm(quad - np.roll(quad, 1, axis=0), axis=1)))
        margin = 0.35 * side + 4
        x0, y0 = (np.floor(quad.min(axis=0) - margin)).astype(int).clip(0)
        x1, y1 = np.ceil(quad.max(axis=0) + margin).astype(int)
        x1, y1 = min(int(x1), W), min(int(y1), H)
        crop = gray[y0:y1, x0:x1]
        scale = float(np.clip(cfg.qr_upscale_px_per_module * 25.0 / max(side, 1.0), 1.5, 4.0))
        big = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        for det in (cv2.QRCodeDetector(), cv2.QRCodeDetectorAruco()):
            txt, p2, s2 = det.detectAndDecode(big)
            if txt and p2 is not None:
                q2 = (p2.reshape(4, 2).astype(float) + 0.5) / scale - 0.5 + [x0, y0]
                out.append((txt, q2, s2))
                break
    return out


def refine_code_corners(
    gray: np.ndarray,
    corners: np.ndarray,
    modules: np.ndarray,
    *,
    quiet_modules: int = 1,
    max_shift_px: float = 3.0,
) -> tuple[np.ndarray, bool]:
    """Sub-pixel corners of a square code: align its known module pattern to the image (ECC,
    homography), so every module edge contributes, not just the four outer corners.

    gray : (H,W) uint8; corners : (4,2) px, detector output in OpenCV order (TL, TR, BR, BL of
    the code); modules : (N,N) uint8 pattern from the top-left corner, 0 = dark (a QR decoder's
    module matrix, or an ArUco marker with its black border); quiet_modules : white border
    assumed around the code. Returns (corners, refined); the input corners come back unchanged
    when ECC fails or moves a corner more than ``max_shift_px``.
    """
    n = modules.shape[0]
    m, q = 8, quiet_modules  # template px per module, white border in modules
    tpl = cv2.resize(
        np.where(modules < 128, 0, 255).astype(np.uint8), None, fx=m, fy=m, interpolation=cv2.INTER_NEAREST
    )
    tpl = cv2.copyMakeBorder(tpl, q * m, q * m, q * m, q * m, cv2.BORDER_CONSTANT, value=255)
    side_px = float(np.mean(np.linalg.norm(corners - np.roll(corners, 1, axis=0), axis=1)))
    sigma = max(0.5, 0.5 * m * n / max(side_px, 1.0))  # the image's blur, in template pixels
    tpl = cv2.GaussianBlur(tpl, (0, 0), sigma)
    a, b = q * m - 0.5, (q + n) * m - 0.5  # outer edge of the code, template pixel coordinates
    tpl_corners = np.array([[a, a], [b, a], [b, b], [a, b]])
    H0 = cv2.getPerspectiveTransform(tpl_corners.astype(np.float32), corners.astype(np.float32))
    try:
        _, H = cv2.findTransformECC(  # type: ignore[call-overload]  # stubs: mask None + filter size
            tpl.astype(np.float32),
            gray.astype(np.float32),
            H0.astype(np.float32),
            cv2.MOTION_HOMOGRAPHY,
            (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-5),
            None,
            1,
        )
    except cv2.error:
        return corners, False
    x = np.column_stack([tpl_corners, np.ones(4)]) @ H.astype(float).T
    refined = x[:, :2] / x[:, 2:]
    if not np.all(np.isfinite(refined)) or np.abs(refined - corners).max() > max_shift_px:
        return corners, False
    return refined, True


def _aruco_pattern(dictionary: cv2.aruco.Dictionary, marker_id: int) -> np.ndarray:
    cells = dictionary.markerSize + 2
    return cv2.aruco.generateImageMarker(dictionary, marker_id, cells)  # 1 px per cell


def read_codes(
    image: np.ndarray,
    camera: CameraLike,
    T_kibo_cam: Pose,
    *,
    depth: np.ndarray | None = None,
    config: ReaderConfig | None = None,
    pose_covariance: np.ndarray | None = None,
    aruco: bool = True,
    qr: bool = True,
) -> list[CodeReading]:
    """ArUco markers and QR codes in an image, with 3D positions in the kibo frame.

    image : (H,W,3) RGB or (H,W) uint8, undistorted (the simulated cameras have no distortion)
    camera : K (3,3) px of that image
    T_kibo_cam : camera optical frame pose when the image was taken
    depth : (H,W) m along the optical axis (e.g. the renderer's depth); selects ``method="depth"``
    pose_covariance : (6,6) of T_kibo_cam, ``[dp m kibo, dtheta rad optical]``; added if given
    """
    cfg = config or ReaderConfig()
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    K = np.asarray(camera.K, dtype=float)
    found: list[tuple[str, int | str, np.ndarray, float, float]] = []
    if aruco:
        tuning = DetectorTuning()
        dictionary = dictionary_from_name(cfg.dictionary)
        detector = cv2.aruco.ArucoDetector(dictionary, tuning.detector_parameters())
        corners, ids, _ = detector.detectMarkers(gray)
        if ids is not None:
            for c, i in zip(corners, ids.ravel(), strict=True):
                if int(i) not in cfg.aruco_ids:
                    continue
                c = c.reshape(4, 2).astype(float)
                cells = dictionary.markerSize + 2  # bits + black border
                if _shortest_side(c) < cfg.min_cell_px * cells:
                    continue  # sub-pixel cells: the id and the corners cannot be trusted
                refined = False
                if cfg.aruco_refine:
                    c, refined = refine_code_corners(gray, c, _aruco_pattern(dictionary, int(i)))
                if not refined:  # the ArUco corner-refinement bias measured in vision.markers
                    d = c - c.mean(axis=0)
                    c = c + tuning.corner_offset_px * d / np.linalg.norm(d, axis=1, keepdims=True)
                size = cfg.marker_sizes.get(int(i), cfg.default_marker_size)
                found.append(
                    ("aruco", int(i), c, size, cfg.refined_sigma_px if refined else cfg.aruco_sigma_px)
                )
    if qr:
        for text, quad, modules in _detect_qr(gray, cfg):
            sigma_px = cfg.qr_sigma_px
            if cfg.qr_refine and modules is not None:
                quad, refined = refine_code_corners(gray, quad, modules, quiet_modules=2)
                sigma_px = cfg.refined_sigma_px if refined else sigma_px
            found.append(("qr", text, quad, cfg.qr_sizes.get(text, cfg.qr_size), sigma_px))
    R_kc = rotmat_from_quat(T_kibo_cam.quat)
    out = []
    for kind, value, c, size, sigma_px in found:
        quat = None
        if depth is not None:
            uv = _centre_pixel(c)
            u, v = int(round(uv[0])), int(round(uv[1]))
            w = cfg.depth_window
            patch = depth[max(v - w, 0) : v + w + 1, max(u - w, 0) : u + w + 1]
            if patch.size == 0:
                continue
            z = float(np.median(patch))
            ray = np.linalg.solve(K, [uv[0], uv[1], 1.0])
            p_cam = z * ray
            # across the ray: centre-pixel noise (sigma_px / sqrt(2) for a diagonal intersection)
            s_lat = z * sigma_px / np.sqrt(2.0) / K[0, 0]
            r_hat = p_cam / np.linalg.norm(p_cam)
            cov_cam = s_lat**2 * (np.eye(3) - np.outer(r_hat, r_hat)) + cfg.depth_sigma**2 * np.outer(
                r_hat, r_hat
            )
            method = "depth"
        else:
            sol = _pnp(c, size, K, sigma_px)
            if sol is None:
                continue
            p_cam, R_cam_code, cov_cam = sol
            quat = quat_from_rotmat(R_kc @ R_cam_code)
            method = "pnp"
        position = T_kibo_cam.position + R_kc @ p_cam
        cov = R_kc @ cov_cam @ R_kc.T
        if pose_covariance is not None:
            G = np.hstack([np.eye(3), -R_kc @ skew(p_cam)])
            cov = cov + G @ np.asarray(pose_covariance, dtype=float) @ G.T
        reading = CodeReading(
            kind,
            value,
            c,
            position,
            cov,
            np.asarray(p_cam, float),
            method,
            quat,
            float(np.linalg.norm(p_cam)),
        )
        if cfg.max_sigma is None or reading.sigma <= cfg.max_sigma:
            out.append(reading)
    return out
