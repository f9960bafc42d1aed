"""Inspect: a standoff pose in front of a named rack bay, facing it, validated against keep-in.

The standoff is measured where imaging needs it: from the bay surface to the camera's
optical centre, along the bay normal. The camera looks straight at the bay point (bay centre
plus an optional in-face offset), so that point projects to the principal point; the robot
centre sits behind the camera by the mount offset. Image up is the bay's face-frame +y (+z
kibo on the walls, +x kibo on overhead and deck), so the bay appears as its texture is drawn;
any other up vector can be given.

The pose is checked with ``intball_nav.safety.check_goal`` (clear volume shrunk by the robot
radius, keep-out boxes grown by it) and the line of sight from the camera to the bay point
must not cross a keep-out box or the dock. Failures raise ``GoalRejected`` with a reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from intball_nav.camera_tasks.pointing import look_at
from intball_nav.frames import Pose, rotmat_from_quat
from intball_nav.module import Bay, ModuleGeometry
from intball_nav.safety import GoalRejected, as_box, check_goal, keep_in_from_module, segment_hits_box
from intball_nav.vision.markers import CameraLike

ROBOT_RADIUS = 0.10
"""m, default robot radius for the keep-in check (docs/module.md)."""


@dataclass(frozen=True)
class InspectPlan:
    """Where to fly to inspect a bay.

    bay : the bay
    target : (3,) m, kibo frame, the bay point on the optical axis
    T_kibo_base : goal pose of the robot
    T_kibo_cam : camera optical frame at that goal
    standoff : m, camera to bay surface along the normal
    footprint : (2,) m, image width and height projected on the bay plane
    bay_fraction : fraction of the bay's area inside the image (geometric)
    """

    bay: Bay
    target: np.ndarray
    T_kibo_base: Pose
    T_kibo_cam: Pose
    standoff: float
    footprint: np.ndarray
    bay_fraction: float


def fit_standoff(bay: Bay, camera: CameraLike, margin: float = 0.05, *, rotated: bool = False) -> float:
    """m, camera-to-surface distance at which the whole bay (plus ``margin`` m each side) fits
    in the image with image up along the face-frame y (``rotated``: along face-frame x)."""
    w, h = (bay.size[1], bay.size[0]) if rotated else (bay.size[0], bay.size[1])
    fx, fy = camera.K[0, 0], camera.K[1, 1]
    return float(max((w + 2 * margin) * fx / camera.width, (h + 2 * margin) * fy / camera.height))


def bay_fraction_visible(
    bay: Bay, camera: CameraLike, T_kibo_cam: Pose, n: int = 41, offset: float = 0.0
) -> float:
    """Fraction of the bay rectangle (n x n samples) that projects inside the image.

    offset : m, samples are taken this far in front of the surface (0 = on it).
    """
    R = rotmat_from_quat(bay.pose.quat)
    u = (np.arange(n) + 0.5) / n - 0.5
    uu, vv = np.meshgrid(u * bay.size[0], u * bay.size[1])
    pts = bay.centre + np.outer(uu.ravel(), R[:, 0]) + np.outer(vv.ravel(), R[:, 1]) + offset * R[:, 2]
    return float(np.mean(_in_image(camera, T_kibo_cam, pts)))


def _in_image(camera: CameraLike, T_kibo_cam: Pose, pts: np.ndarray) -> np.ndarray:
    Rc = rotmat_from_quat(T_kibo_cam.quat)
    pc = (pts - T_kibo_cam.position) @ Rc
    z = pc[:, 2]
    ok = z > 1e-6
    zs = np.where(ok, z, 1.0)
    u = camera.K[0, 0] * pc[:, 0] / zs + camera.K[0, 2]
    v = camera.K[1, 1] * pc[:, 1] / zs + camera.K[1, 2]
    return ok & (u >= -0.5) & (u <= camera.width - 0.5) & (v >= -0.5) & (v <= camera.height - 0.5)


def plan_inspect(
    module: ModuleGeometry,
    bay_name: str,
    camera: CameraLike,
    standoff: float | None = None,
    *,
    offset: tuple[float, float] = (0.0, 0.0),
    up: np.ndarray | None = None,
    radius: float = ROBOT_RADIUS,
    keep_out: Iterable | None = None,
) -> InspectPlan:
    """Standoff pose in front of bay ``bay_name`` with the camera facing it.

    standoff : m, bay surface to camera optical centre along the bay normal; None = the
        distance that fits the whole bay (``fit_standoff``), shortened to what keep-in allows
    offset : (2,) m, aim point relative to the bay centre along the face-frame x and y axes
    up : (3,) kibo, image-up direction; default the face-frame +y axis
    radius : m, robot radius for the keep-in check
    keep_out : boxes to avoid (default: ``module.keep_out`` and the dock)

    Raises KeyError for an unknown bay and GoalRejected when the pose leaves keep-in, enters
    a keep-out zone, or the line of sight to the bay point is blocked.
    """
    bay = module.bay(bay_name)
    R_face = rotmat_from_quat(bay.pose.quat)
    n = bay.normal
    off = np.asarray(offset, dtype=float)
    if off.shape != (2,) or np.any(np.abs(off) > 0.5 * bay.size + 1e-9):
        raise GoalRejected(f"offset {off.tolist()} m is outside bay {bay.name} (size {bay.size.tolist()} m)")
    target = bay.centre + off[0] * R_face[:, 0] + off[1] * R_face[:, 1]
    cam_ahead = float(camera.T_base_cam.position @ rotmat_from_quat(camera.T_base_cam.quat)[:, 2])
    if standoff is None:
        # farthest the robot centre may go along the normal inside keep-in
        lo, hi = module.clear_min + radius, module.clear_max - radius
        with np.errstate(divide="ignore"):
            steps = np.where(n > 0, (hi - target) / np.where(n > 0, n, 1), np.inf)
            steps = np.minimum(steps, np.where(n < 0, (lo - target) / np.where(n < 0, n, 1), np.inf))
        max_cam = float(np.min(steps)) - cam_ahead - 1e-3
        standoff = min(fit_standoff(bay, camera), max_cam)
    if not np.isfinite(standoff) or standoff <= 0.0:
        raise GoalRejected(f"standoff {standoff} m must be a positive distance")
    up_vec = R_face[:, 1] if up is None else np.asarray(up, dtype=float)
    cam_pos = target + standoff * n
    # Facing the bay square on: body +x (the optical axis of the main camera) along -n.
    # Solve the look-at from a robot centre placed behind the camera along the normal.
    base = cam_pos + cam_ahead * n
    sol = look_at(base, target, camera.T_base_cam, up=up_vec)
    T_kibo_base = Pose(base, sol.quat)
    obstacles = [*module.keep_out, module.dock.box] if keep_out is None else list(keep_out)
    check_goal(base, keep_in_from_module(module), radius, obstacles)
    for o in obstacles:
        box = as_box(o)
        if segment_hits_box(sol.T_kibo_cam.position, target - 0.01 * n, box.min, box.max):
            raise GoalRejected(
                f"line of sight from {np.round(sol.T_kibo_cam.position, 2).tolist()} m to bay "
                f"{bay.name} is blocked by {box.name or 'a keep-out box'}"
            )
    fx, fy = camera.K[0, 0], camera.K[1, 1]
    footprint = np.array([camera.width * standoff / fx, camera.height * standoff / fy])
    return InspectPlan(
        bay=bay,
        target=target,
        T_kibo_base=T_kibo_base,
        T_kibo_cam=sol.T_kibo_cam,
        standoff=float(standoff),
        footprint=footprint,
        bay_fraction=bay_fraction_visible(bay, camera, sol.T_kibo_cam),
    )
