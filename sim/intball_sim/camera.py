"""Camera models (from ``intball_nav/data/cameras.yaml``) and a PyBullet renderer that matches them.

Frames: a camera pose is always the pose of its OPTICAL frame (z forward, x right, y down,
as ROS ``*_optical`` frames). ``CameraModel.T_base_cam`` is that pose in the robot body frame
``base_link``; the renderer takes ``T_kibo_cam = T_kibo_base.compose(model.T_base_cam)``.

Intrinsics follow OpenCV: pixel (0, 0) is the centre of the top-left pixel. The renderer
builds an off-centre OpenGL frustum from K and corrects for each backend's measured
rasterisation offset (``PRINCIPAL_POINT_OFFSET``), so a rendered image matches K to a
fraction of a pixel with either backend and ``camera_info(model).K`` is honest for both.
"""

from __future__ import annotations

import os
import pkgutil
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pybullet as p
import yaml

from intball_nav.frames import Pose, rotmat_from_quat
from intball_nav.module import MarkerMap, ModuleConfigError

DEFAULT_CAMERAS_PATH = "cameras.yaml"

# Where each backend puts the principal point for a symmetric OpenGL frustum, relative to
# the ideal ((W-1)/2, (H-1)/2), in pixels (du, dv). Measured here by rendering ArUco markers
# at 320x240 and 640x480 and fitting the detected corners (tests/test_sim_camera.py checks
# the corrected result). EGL (Mesa llvmpipe) rasterises exactly; TinyRenderer samples pixel
# corners instead of pixel centres, a +0.5 px shift in u and -0.5 px in v.
PRINCIPAL_POINT_OFFSET = {"egl": (0.0, 0.0), "tiny": (0.5, -0.5)}


@dataclass(frozen=True)
class CameraModel:
    """Pinhole camera without distortion.

    name : key in cameras.yaml (``main``, ``nav_left``, ``nav_right``)
    frame_id : optical frame name
    width, height : px
    K : (3,3) intrinsics, px (OpenCV convention)
    D : (5,) plumb_bob distortion, all zero
    T_base_cam : pose of the optical frame in base_link (m, quaternion xyzw)
    near, far : m, clipping distances along the optical axis
    Tx : P[0,3] of the ROS projection matrix, px*m: ``-fx * baseline`` for the right camera of
        a stereo pair (0 otherwise)
    """

    name: str
    frame_id: str
    width: int
    height: int
    K: np.ndarray
    T_base_cam: Pose
    near: float
    far: float
    D: np.ndarray = field(default_factory=lambda: np.zeros(5))
    Tx: float = 0.0

    @property
    def hfov(self) -> float:
        """Horizontal field of view, rad."""
        return float(2.0 * np.arctan2(0.5 * self.width, self.K[0, 0]))

    @property
    def vfov(self) -> float:
        """Vertical field of view, rad."""
        return float(2.0 * np.arctan2(0.5 * self.height, self.K[1, 1]))


@dataclass(frozen=True)
class CameraInfo:
    """What a sensor_msgs/CameraInfo holds (conversion to the message lives in intball_ros).

    K : (3,3); D : (5,) plumb_bob; R : (3,3) rectification (identity: images are ideal);
    P : (3,4) projection = [K | (Tx, 0, 0)]; width, height : px; frame_id : optical frame.
    """

    frame_id: str
    width: int
    height: int
    K: np.ndarray
    D: np.ndarray
    R: np.ndarray
    P: np.ndarray
    distortion_model: str = "plumb_bob"


def camera_info(model: CameraModel) -> CameraInfo:
    """CameraInfo of a model; exact for images from ``Renderer`` with either backend."""
    P = np.zeros((3, 4))
    P[:, :3] = model.K
    P[0, 3] = model.Tx
    return CameraInfo(model.frame_id, model.width, model.height, model.K.copy(), model.D.copy(), np.eye(3), P)


def load_cameras(path: str | Path | None = None) -> dict[str, CameraModel]:
    """Camera models by name from cameras.yaml (default: ``intball_nav/data/cameras.yaml``).

    Raises ModuleConfigError naming the file and the field.
    """
    path = (
        Path(path)
        if path is not None
        else Path(str(resources.files("intball_nav") / "data" / DEFAULT_CAMERAS_PATH))
    )
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("cameras"), dict) or not data["cameras"]:
        raise ModuleConfigError(f"{path.name}: cameras: must be a non-empty mapping")

    def num(entry: dict, key: str, field_name: str, lo: float, hi: float) -> float:
        v = entry.get(key)
        if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
            raise ModuleConfigError(f"{path.name}: {field_name}: must be a number in [{lo}, {hi}], got {v!r}")
        return float(v)

    def vec(entry: dict, key: str, field_name: str, n: int) -> np.ndarray:
        v = entry.get(key)
        if not isinstance(v, list) or len(v) != n or not all(isinstance(x, int | float) for x in v):
            raise ModuleConfigError(f"{path.name}: {field_name}: must be a list of {n} numbers, got {v!r}")
        return np.array(v, dtype=float)

    models: dict[str, CameraModel] = {}
    for name, e in data["cameras"].items():
        f = f"cameras.{name}"
        if not isinstance(e, dict):
            raise ModuleConfigError(f"{path.name}: {f}: must be a mapping")
        w = int(num(e, "width", f + ".width", 16, 8192))
        h = int(num(e, "height", f + ".height", 16, 8192))
        K = np.array(
            [
                [num(e, "fx", f + ".fx", 1.0, 1e5), 0.0, num(e, "cx", f + ".cx", 0.0, w - 1)],
                [0.0, num(e, "fy", f + ".fy", 1.0, 1e5), num(e, "cy", f + ".cy", 0.0, h - 1)],
                [0.0, 0.0, 1.0],
            ]
        )
        quat = vec(e, "quat", f + ".quat", 4)
        if abs(np.linalg.norm(quat) - 1.0) > 1e-3:
            raise ModuleConfigError(f"{path.name}: {f}.quat: must be a unit quaternion (x, y, z, w)")
        near = num(e, "near", f + ".near", 1e-3, 10.0)
        far = num(e, "far", f + ".far", near + 1e-3, 1e3)
        frame_id = e.get("frame_id")
        if not isinstance(frame_id, str) or not frame_id:
            raise ModuleConfigError(f"{path.name}: {f}.frame_id: must be a non-empty string")
        models[name] = CameraModel(
            name, frame_id, w, h, K, Pose(vec(e, "position", f + ".position", 3), quat), near, far
        )
    for name, e in data["cameras"].items():
        left = e.get("stereo_left")
        if left is None:
            continue
        if left not in models:
            raise ModuleConfigError(f"{path.name}: cameras.{name}.stereo_left: unknown camera {left!r}")
        rel = models[left].T_base_cam.inverse().compose(models[name].T_base_cam)
        m = models[name]
        models[name] = CameraModel(
            m.name,
            m.frame_id,
            m.width,
            m.height,
            m.K,
            m.T_base_cam,
            m.near,
            m.far,
            m.D,
            -m.K[0, 0] * rel.position[0],
        )
    return models


def project_points(model: CameraModel, T_kibo_cam: Pose, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project points (N,3) m, kibo frame, into the image.

    Returns (uv (N,2) px, z (N,) m depth along the optical axis; points behind have z <= 0).
    """
    pts = np.asarray(points, dtype=float).reshape(-1, 3)
    pc = T_kibo_cam.inverse().transform_points(pts).reshape(-1, 3)
    z = pc[:, 2]
    zs = np.where(np.abs(z) < 1e-9, 1e-9, z)
    uv = (pc[:, :2] / zs[:, None]) * np.diag(model.K)[:2] + model.K[:2, 2]
    return uv, z


def visible_markers(
    model: CameraModel,
    T_kibo_cam: Pose,
    marker_map: MarkerMap,
    *,
    min_side_px: float = 12.0,
    max_tilt: float = np.deg2rad(75.0),
    border_px: float = 2.0,
) -> list[int]:
    """Ids of markers a camera can plausibly detect (geometry only, occlusion ignored).

    A marker counts if all four corners are in front of the camera and inside the image
    (``border_px`` margin), it faces the camera (angle between its normal and the direction
    to the camera below ``max_tilt``, rad) and its shortest projected side is at least
    ``min_side_px`` (4x4 ArUco needs ~2 px per cell, 6 cells with the border).
    """
    corners = marker_map.corners()  # (N,4,3) kibo
    centres = np.array([m.pose.position for m in marker_map.markers]).reshape(-1, 3)
    normals = np.array([m.normal for m in marker_map.markers]).reshape(-1, 3)
    to_cam = T_kibo_cam.position - centres
    dist = np.linalg.norm(to_cam, axis=1)
    facing = np.einsum("ij,ij->i", normals, to_cam) > np.cos(max_tilt) * np.maximum(dist, 1e-9)
    uv, z = project_points(model, T_kibo_cam, corners.reshape(-1, 3))
    uv, z = uv.reshape(-1, 4, 2), z.reshape(-1, 4)
    inside = (
        np.all(z > model.near, axis=1)
        & np.all(uv >= border_px, axis=(1, 2))
        & np.all(uv[:, :, 0] <= model.width - 1 - border_px, axis=1)
        & np.all(uv[:, :, 1] <= model.height - 1 - border_px, axis=1)
    )
    sides = np.linalg.norm(uv - np.roll(uv, -1, axis=1), axis=2).min(axis=1)
    keep = facing & inside & (sides >= min_side_px)
    return [int(i) for i in marker_map.ids[keep]]


# Optical frame (z forward, y down) -> OpenGL eye frame (z backward, y up).
_OPTICAL_FROM_GL = np.diag([1.0, -1.0, -1.0])


def view_matrix(T_kibo_cam: Pose) -> list[float]:
    """OpenGL view matrix (16 floats, column-major) of an optical-frame pose in kibo."""
    T = np.eye(4)
    R = rotmat_from_quat(T_kibo_cam.quat) @ _OPTICAL_FROM_GL
    T[:3, :3] = R.T
    T[:3, 3] = -R.T @ T_kibo_cam.position
    return T.T.reshape(-1).tolist()


def projection_matrix(model: CameraModel, offset: tuple[float, float] = (0.0, 0.0)) -> list[float]:
    """OpenGL projection (16 floats, column-major) reproducing K; ``offset`` (du, dv) px is the
    backend's own principal-point shift, subtracted so the image matches K."""
    W, H = model.width, model.height
    fx, fy = model.K[0, 0], model.K[1, 1]
    cx, cy = model.K[0, 2] - offset[0], model.K[1, 2] - offset[1]
    n, f = model.near, model.far
    P = np.array(
        [
            [2.0 * fx / W, 0.0, 1.0 - 2.0 * (cx + 0.5) / W, 0.0],
            [0.0, 2.0 * fy / H, 2.0 * (cy + 0.5) / H - 1.0, 0.0],
            [0.0, 0.0, -(f + n) / (f - n), -2.0 * f * n / (f - n)],
            [0.0, 0.0, -1.0, 0.0],
        ]
    )
    return P.T.reshape(-1).tolist()


class Renderer:
    """Renders RGB + depth images of a PyBullet client for a CameraModel.

    Uses the EGL renderer plugin (Mesa llvmpipe works without a GPU) when ``prefer_egl`` and
    the plugin loads, else ER_TINY_RENDERER. Environment variable ``INTBALL_RENDERER=tiny``
    forces TinyRenderer. ``kind`` is ``"egl"`` or ``"tiny"``.

    Load the renderer before building the world (``build_world``) so EGL sees every texture;
    after ``resetSimulation`` EGL shows stale textures: reconnect instead.
    """

    def __init__(self, client_id: int, prefer_egl: bool = True) -> None:
        self.client_id = client_id
        self._plugin = -1
        self.kind = "tiny"
        if prefer_egl and os.environ.get("INTBALL_RENDERER", "").lower() != "tiny":
            loader = pkgutil.get_loader("eglRenderer")
            if loader is not None:
                plugin = p.loadPlugin(loader.get_filename(), "_eglRendererPlugin", physicsClientId=client_id)
                if plugin >= 0:
                    self._plugin = plugin
                    self.kind = "egl"

    def close(self) -> None:
        """Unload the EGL plugin (if loaded); later renders use TinyRenderer."""
        if self._plugin >= 0:
            p.unloadPlugin(self._plugin, physicsClientId=self.client_id)
            self._plugin = -1
            self.kind = "tiny"

    def render(self, model: CameraModel, T_kibo_cam: Pose) -> tuple[np.ndarray, np.ndarray]:
        """Render the view of the optical frame pose T_kibo_cam.

        Returns (rgb (H,W,3) uint8, depth (H,W) float32 m along the optical axis; pixels with
        nothing within ``far`` read ``far``).
        """
        renderer = p.ER_BULLET_HARDWARE_OPENGL if self.kind == "egl" else p.ER_TINY_RENDERER
        _, _, rgba, zbuf, _ = p.getCameraImage(
            model.width,
            model.height,
            viewMatrix=view_matrix(T_kibo_cam),
            projectionMatrix=projection_matrix(model, PRINCIPAL_POINT_OFFSET[self.kind]),
            renderer=renderer,
            flags=p.ER_NO_SEGMENTATION_MASK,
            shadow=0,
            physicsClientId=self.client_id,
        )
        rgb = np.asarray(rgba, dtype=np.uint8).reshape(model.height, model.width, 4)[:, :, :3].copy()
        zb = np.asarray(zbuf, dtype=np.float64).reshape(model.height, model.width)
        n, f = model.near, model.far
        depth = (f * n / (f - (f - n) * zb)).astype(np.float32)
        return rgb, depth
