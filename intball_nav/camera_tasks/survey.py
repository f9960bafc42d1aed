"""Survey / panorama: capture poses that cover a rack face, and the overview image.

``plan_face_survey`` flies a lawn-mower path parallel to a rack face at a fixed standoff, the
camera square to the face, with image footprints overlapping by ``overlap`` (fraction of the
footprint) in both directions; ``plan_rotation_survey`` stays at one point and turns the
camera over a grid of aim points on the face (look-at). ``coverage`` is the geometric check:
the fraction of the face region (sampled on a grid) that falls inside at least one image.

``stitch_images`` runs ``cv2.Stitcher`` in SCANS mode (affine, made for flat scenes seen
square on) and falls back when it fails: to ``mosaic_on_face`` (each image warped onto the
face plane with the homography of its known pose, a metric overview) when the capture poses
are given, else to ``tile_images`` (a plain grid). ``StitchResult.method`` says which.

Pure (numpy + cv2). Face coordinates ``(a, b)`` are along the face-frame x and y axes
(``intball_nav.module``), metres, origin at the face plane's centre.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from intball_nav.camera_tasks.inspect import ROBOT_RADIUS
from intball_nav.camera_tasks.pointing import look_at
from intball_nav.frames import Pose, rotmat_from_quat
from intball_nav.module import ModuleGeometry, face_rotation
from intball_nav.safety import GoalRejected, check_goal, keep_in_from_module
from intball_nav.vision.markers import CameraLike


@dataclass(frozen=True)
class Capture:
    """One survey image: where the robot is and what the camera sees.

    T_kibo_base, T_kibo_cam : robot and optical-frame poses
    aim : (3,) m, kibo, face point on the optical axis
    row, col : grid index (row 0 = top of the face region as seen)
    """

    T_kibo_base: Pose
    T_kibo_cam: Pose
    aim: np.ndarray
    row: int
    col: int


@dataclass(frozen=True)
class SurveyPlan:
    """Captures in flying order (serpentine) over a face region.

    face : rack face name; region : (a0, a1, b0, b1) m, face coordinates; rows, cols : grid
    overlap : requested overlap fraction; standoff : m camera to face (path survey), or None
    """

    face: str
    region: tuple[float, float, float, float]
    captures: tuple[Capture, ...]
    rows: int
    cols: int
    overlap: float
    standoff: float | None


def face_point(module: ModuleGeometry, face: str, a: float, b: float, height: float = 0.0) -> np.ndarray:
    """(3,) m, kibo: the point at face coordinates (a, b), ``height`` m in front of the face."""
    R = face_rotation(face)
    p0, n = module.face_plane(face)
    return p0 + a * R[:, 0] + b * R[:, 1] + height * n


def _default_region(module: ModuleGeometry, face: str) -> tuple[float, float, float, float]:
    ext = module.face_extent(face)
    return (-0.5 * ext[0], 0.5 * ext[0], -0.5 * ext[1], 0.5 * ext[1])


def _steps(length: float, footprint: float, overlap: float) -> np.ndarray:
    """Centres along one axis so footprints cover [0, length] with at least ``overlap``."""
    if footprint >= length:
        return np.array([0.5 * length])
    n = int(np.ceil((length - footprint) / (footprint * (1.0 - overlap)))) + 1
    return np.linspace(0.5 * footprint, length - 0.5 * footprint, n)


def _validate(p: np.ndarray, module: ModuleGeometry, radius: float, k: int) -> None:
    try:
        check_goal(p, keep_in_from_module(module), radius, [*module.keep_out, module.dock.box])
    except GoalRejected as exc:
        raise GoalRejected(f"survey capture {k}: {exc}") from None


def plan_face_survey(
    module: ModuleGeometry,
    face: str,
    camera: CameraLike,
    standoff: float,
    *,
    overlap: float = 0.3,
    region: tuple[float, float, float, float] | None = None,
    up: np.ndarray | None = None,
    radius: float = ROBOT_RADIUS,
) -> SurveyPlan:
    """Path survey: a serpentine grid of poses ``standoff`` m (camera to face) from ``face``.

    region : (a0, a1, b0, b1) m, face coordinates to cover (default: the whole face)
    up : (3,) kibo image-up (default face-frame +y); images are taken square to the face
    Raises GoalRejected naming the capture when a pose leaves keep-in or meets a keep-out box.
    """
    if not 0.0 <= overlap < 0.9:
        raise ValueError(f"overlap {overlap} out of range [0, 0.9)")
    R = face_rotation(face)
    a0, a1, b0, b1 = region or _default_region(module, face)
    up_vec = R[:, 1] if up is None else np.asarray(up, dtype=float)
    # footprint along face a/b: image x/y follow the roll set by up
    Rc_probe = look_at(
        face_point(module, face, 0.0, 0.0, standoff + 0.5),
        face_point(module, face, 0, 0),
        camera.T_base_cam,
        up=up_vec,
    )
    Rc = rotmat_from_quat(Rc_probe.T_kibo_cam.quat)
    w_m, h_m = camera.width * standoff / camera.K[0, 0], camera.height * standoff / camera.K[1, 1]
    image_x_along_a = abs(Rc[:, 0] @ R[:, 0]) > 0.5
    along_a, along_b = (w_m, h_m) if image_x_along_a else (h_m, w_m)
    cols_a = a0 + _steps(a1 - a0, along_a, overlap)
    rows_b = b1 - _steps(b1 - b0, along_b, overlap)  # row 0 at the top (+b)
    cam_ahead = float(camera.T_base_cam.position @ rotmat_from_quat(camera.T_base_cam.quat)[:, 2])
    captures: list[Capture] = []
    for r, b in enumerate(rows_b):
        order = range(len(cols_a)) if r % 2 == 0 else range(len(cols_a) - 1, -1, -1)
        for c in order:
            aim = face_point(module, face, cols_a[c], b)
            base = face_point(module, face, cols_a[c], b, standoff + cam_ahead)
            _validate(base, module, radius, len(captures))
            sol = look_at(base, aim, camera.T_base_cam, up=up_vec)
            captures.append(Capture(Pose(base, sol.quat), sol.T_kibo_cam, aim, r, c))
    return SurveyPlan(face, (a0, a1, b0, b1), tuple(captures), len(rows_b), len(cols_a), overlap, standoff)


def plan_rotation_survey(
    module: ModuleGeometry,
    face: str,
    camera: CameraLike,
    position: np.ndarray,
    *,
    overlap: float = 0.3,
    region: tuple[float, float, float, float] | None = None,
    up: np.ndarray | None = None,
    radius: float = ROBOT_RADIUS,
    min_coverage: float = 0.99,
    max_images: int = 60,
) -> SurveyPlan:
    """Rotate-in-place survey from ``position`` ((3,) m, kibo): look-at a grid of face points.

    The grid starts at the square-on footprint spacing (minus ``overlap``); oblique views are
    rolled and keystoned, so the grid is densified until ``coverage`` reaches ``min_coverage``
    (or ``max_images`` is hit, then the densest plan is returned: check ``coverage``).
    """
    R = face_rotation(face)
    p0, n = module.face_plane(face)
    pos = np.asarray(position, dtype=float)
    _validate(pos, module, radius, 0)
    dist = float((pos - p0) @ n)
    if dist <= 0.1:
        raise GoalRejected(f"position {pos.tolist()} is {dist:.2f} m from face {face}: too close to survey")
    a0, a1, b0, b1 = region or _default_region(module, face)
    up_vec = R[:, 1] if up is None else np.asarray(up, dtype=float)
    foot = min(camera.width / camera.K[0, 0], camera.height / camera.K[1, 1]) * dist
    n_a, n_b = len(_steps(a1 - a0, foot, overlap)), len(_steps(b1 - b0, foot, overlap))
    while True:
        cols_a = a0 + _grid(a1 - a0, n_a, foot)
        rows_b = b1 - _grid(b1 - b0, n_b, foot)
        captures: list[Capture] = []
        for r, b in enumerate(rows_b):
            order = range(len(cols_a)) if r % 2 == 0 else range(len(cols_a) - 1, -1, -1)
            for c in order:
                aim = p0 + cols_a[c] * R[:, 0] + b * R[:, 1]
                sol = look_at(pos, aim, camera.T_base_cam, up=up_vec)
                captures.append(Capture(Pose(pos, sol.quat), sol.T_kibo_cam, aim, r, c))
        plan = SurveyPlan(face, (a0, a1, b0, b1), tuple(captures), len(rows_b), len(cols_a), overlap, None)
        if coverage(module, plan, camera) >= min_coverage or (n_a + 1) * (n_b + 1) > max_images:
            return plan
        n_a, n_b = n_a + 1, n_b + 1


def _grid(length: float, n: int, footprint: float) -> np.ndarray:
    """n centres spread over [0, length], half a footprint in from the ends when it fits."""
    if n == 1:
        return np.array([0.5 * length])
    inset = min(0.5 * footprint, 0.5 * length / n)
    return np.linspace(inset, length - inset, n)


def coverage(
    module: ModuleGeometry,
    plan: SurveyPlan,
    camera: CameraLike,
    *,
    step: float = 0.02,
    border_px: float = 0.0,
) -> float:
    """Fraction of the plan's face region inside at least one capture's image (geometric:
    face sampled every ``step`` m; occlusion ignored)."""
    a0, a1, b0, b1 = plan.region
    aa, bb = np.meshgrid(np.arange(a0 + 0.5 * step, a1, step), np.arange(b0 + 0.5 * step, b1, step))
    R = face_rotation(plan.face)
    p0, _ = module.face_plane(plan.face)
    pts = p0 + np.outer(aa.ravel(), R[:, 0]) + np.outer(bb.ravel(), R[:, 1])
    seen = np.zeros(len(pts), dtype=bool)
    for cap in plan.captures:
        Rc = rotmat_from_quat(cap.T_kibo_cam.quat)
        pc = (pts - cap.T_kibo_cam.position) @ Rc
        z = pc[:, 2]
        ok = z > 1e-6
        zs = np.where(ok, z, 1.0)
        u = camera.K[0, 0] * pc[:, 0] / zs + camera.K[0, 2]
        v = camera.K[1, 1] * pc[:, 1] / zs + camera.K[1, 2]
        lo = border_px - 0.5
        seen |= (
            ok
            & (u >= lo)
            & (u <= camera.width - 0.5 - border_px)
            & (v >= lo)
            & (v <= camera.height - 0.5 - border_px)
        )
    return float(seen.mean())


# ------------------------------------------------------------------------------------- images
@dataclass(frozen=True)
class StitchResult:
    """Overview image (RGB uint8) and how it was made.

    method : ``"stitched"`` (cv2.Stitcher SCANS), ``"mosaic"`` (warped by known poses) or
        ``"tiled"`` (grid); status : cv2.Stitcher status code (0 = OK, -1 = not run)
    reason : why the stitcher result was not used (empty when stitched)
    """

    image: np.ndarray
    method: str
    status: int
    reason: str


def tile_images(
    images: Sequence[np.ndarray],
    rows: int,
    cols: int,
    order: Sequence[tuple[int, int]] | None = None,
    *,
    scale: float = 0.5,
    gap: int = 2,
) -> np.ndarray:
    """Grid of images (RGB uint8, same size) scaled by ``scale``; ``order`` gives (row, col)
    of each image (default row-major); empty cells are black."""
    if not images:
        raise ValueError("tile_images: no images")
    h, w = images[0].shape[:2]
    th, tw = max(1, round(h * scale)), max(1, round(w * scale))
    out = np.zeros((rows * (th + gap) - gap, cols * (tw + gap) - gap, 3), np.uint8)
    cells = order or [(k // cols, k % cols) for k in range(len(images))]
    for img, (r, c) in zip(images, cells, strict=True):
        out[r * (th + gap) : r * (th + gap) + th, c * (tw + gap) : c * (tw + gap) + tw] = cv2.resize(
            img, (tw, th), interpolation=cv2.INTER_AREA
        )
    return out


def mosaic_on_face(
    module: ModuleGeometry,
    plan: SurveyPlan,
    images: Sequence[np.ndarray],
    camera: CameraLike,
    *,
    px_per_m: float = 150.0,
) -> np.ndarray:
    """Metric overview: every image warped onto the face plane with the homography of its
    capture pose (RGB uint8, row 0 = top (+b) of the region, column 0 = a0). Later images are
    drawn only where earlier ones left the canvas empty."""
    a0, a1, b0, b1 = plan.region
    W, H = round((a1 - a0) * px_per_m), round((b1 - b0) * px_per_m)
    R = face_rotation(plan.face)
    p0, _ = module.face_plane(plan.face)
    # canvas pixel (x, y) -> face point: a = a0 + (x + 0.5)/s, b = b1 - (y + 0.5)/s
    A = np.array([[1 / px_per_m, 0, a0 + 0.5 / px_per_m], [0, -1 / px_per_m, b1 - 0.5 / px_per_m], [0, 0, 1]])
    out = np.zeros((H, W, 3), np.uint8)
    filled = np.zeros((H, W), bool)
    for cap, img in zip(plan.captures, images, strict=True):
        Rc = rotmat_from_quat(cap.T_kibo_cam.quat)
        # face (a, b, 1) -> camera: x_c = Rc^T (p0 + a Ra + b Rb - c)
        M = np.column_stack([Rc.T @ R[:, 0], Rc.T @ R[:, 1], Rc.T @ (p0 - cap.T_kibo_cam.position)])
        Hm = camera.K @ M @ A  # canvas -> image
        warped = cv2.warpPerspective(img, Hm, (W, H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        mask = (
            cv2.warpPerspective(
                np.full(img.shape[:2], 255, np.uint8),
                Hm,
                (W, H),
                flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
            )
            > 0
        )
        new = mask & ~filled
        out[new] = warped[new]
        filled |= mask
    return out


def stitch_images(
    images: Sequence[np.ndarray],
    *,
    plan: SurveyPlan | None = None,
    module: ModuleGeometry | None = None,
    camera: CameraLike | None = None,
    registration_resol: float = 0.3,
) -> StitchResult:
    """cv2.Stitcher (SCANS) with a fallback: ``mosaic_on_face`` when plan, module and camera are
    given, else ``tile_images`` (plan grid order if a plan is given)."""
    status, reason = -1, ""
    try:
        st = cv2.Stitcher.create(cv2.Stitcher_SCANS)
        st.setRegistrationResol(registration_resol)
        status, pano = st.stitch([cv2.cvtColor(i, cv2.COLOR_RGB2BGR) for i in images])
        used = len(st.component()) if status == cv2.Stitcher_OK else 0
        if status == cv2.Stitcher_OK and pano is not None and pano.size and used == len(images):
            return StitchResult(cv2.cvtColor(pano, cv2.COLOR_BGR2RGB), "stitched", int(status), "")
        names = {
            1: "need more images",
            2: "homography estimation failed",
            3: "camera parameter adjustment failed",
        }
        if status == cv2.Stitcher_OK:
            reason = f"cv2.Stitcher joined only {used} of {len(images)} images"
        else:
            reason = f"cv2.Stitcher status {status}: {names.get(int(status), 'error')}"
    except cv2.error as exc:
        reason = f"cv2.Stitcher raised: {str(exc).strip().splitlines()[-1]}"
    if plan is not None and module is not None and camera is not None:
        return StitchResult(mosaic_on_face(module, plan, images, camera), "mosaic", int(status), reason)
    rows, cols = (plan.rows, plan.cols) if plan is not None else (1, len(images))
    order = [(c.row, c.col) for c in plan.captures] if plan is not None else None
    return StitchResult(tile_images(images, rows, cols, order), "tiled", int(status), reason)


def iter_poses(plan: SurveyPlan) -> Iterable[Pose]:
    """Goal poses (T_kibo_base) of a plan in flying order."""
    return (c.T_kibo_base for c in plan.captures)
