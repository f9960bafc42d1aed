"""Pinhole camera geometry: optical-frame conventions, projection and its Jacobian.

Frames (docs/conventions.md):

- A camera *optical* frame (``nav_camera_optical``) has +z out of the lens, +x right and
  +y down in the image (the OpenCV / ROS optical convention).
- A camera *link* frame (``nav_camera`` in the URDF) has the body convention: +x out of the
  lens, +y left, +z up. ``Q_LINK_OPTICAL`` rotates optical vectors into the link frame.

Pixels: ``(u, v)`` with u to the right and v down, the centre of the top-left pixel at
``(0, 0)`` (OpenCV). Intrinsics ``K`` is the (3,3) pinhole matrix ``[[fx, 0, cx], [0, fy, cy],
[0, 0, 1]]`` in px.

The rotation perturbation used for pose Jacobians here and in ``markers.py`` is the *local*
(right) one: ``R_true = R @ Exp(dtheta)``, ``p_true = p + dp`` for ``T_kibo_cam = (p, R)``,
so ``dp`` is in the kibo frame (m) and ``dtheta`` in the camera optical frame (rad).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from intball_nav.frames import Pose, quat_from_rotmat, rotmat_from_quat, skew

R_LINK_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
"""(3,3) rotation of optical-frame vectors into the camera link frame (x forward, z up)."""
Q_LINK_OPTICAL = quat_from_rotmat(R_LINK_OPTICAL)
"""(4,) xyzw quaternion of ``R_LINK_OPTICAL``."""


def optical_from_link(T_x_link: Pose) -> Pose:
    """T_x_optical of a camera link pose T_x_link (x forward, z up): appends the fixed rotation."""
    return T_x_link.compose(Pose(np.zeros(3), Q_LINK_OPTICAL))


def link_from_optical(T_x_optical: Pose) -> Pose:
    """T_x_link of a camera optical pose T_x_optical (inverse of ``optical_from_link``)."""
    return T_x_optical.compose(Pose(np.zeros(3), Q_LINK_OPTICAL).inverse())


def intrinsics_from_fov(width: int, height: int, hfov: float) -> np.ndarray:
    """(3,3) K in px of an ideal pinhole with horizontal field of view ``hfov`` (rad), square pixels,
    principal point at the image centre ``((W - 1) / 2, (H - 1) / 2)``."""
    f = 0.5 * width / np.tan(0.5 * hfov)
    return np.array([[f, 0.0, 0.5 * (width - 1)], [0.0, f, 0.5 * (height - 1)], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class ResizedCamera:
    """A pinhole camera model of an image resized by ``resized_camera`` (a ``CameraLike``):
    K (3,3) px, width and height px, T_base_cam the optical frame in base_link (unchanged)."""

    K: np.ndarray
    width: int
    height: int
    T_base_cam: Pose
    D: np.ndarray


def resized_camera(camera: Any, width: int, height: int) -> ResizedCamera:
    """The model of ``camera``'s images resized to width x height px (``cv2.resize``): focal
    lengths scaled per axis, principal point mapped with the pixel-centre convention
    (c' = (c + 0.5) * s - 0.5). Distortion-free cameras only."""
    sx, sy = width / camera.width, height / camera.height
    K = np.asarray(camera.K, dtype=float).copy()
    K[0, 0], K[0, 2] = K[0, 0] * sx, (K[0, 2] + 0.5) * sx - 0.5
    K[1, 1], K[1, 2] = K[1, 1] * sy, (K[1, 2] + 0.5) * sy - 0.5
    return ResizedCamera(K, int(width), int(height), camera.T_base_cam, np.zeros(5))


def points_in_camera(T_kibo_cam: Pose, points_kibo: np.ndarray) -> np.ndarray:
    """(N,3) m, optical frame, of points_kibo : (N,3) m, kibo frame."""
    R = rotmat_from_quat(T_kibo_cam.quat)
    return (np.asarray(points_kibo, dtype=float) - T_kibo_cam.position) @ R


def project(K: np.ndarray, points_cam: np.ndarray) -> np.ndarray:
    """(N,2) px of points_cam : (N,3) m, optical frame (z > 0 assumed; no distortion)."""
    P = np.asarray(points_cam, dtype=float)
    z = P[:, 2]
    u = K[0, 0] * P[:, 0] / z + K[0, 1] * P[:, 1] / z + K[0, 2]
    v = K[1, 1] * P[:, 1] / z + K[1, 2]
    return np.stack([u, v], axis=1)


def project_with_jacobian(
    K: np.ndarray, T_kibo_cam: Pose, points_kibo: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project world points and differentiate w.r.t. the camera pose perturbation.

    points_kibo : (N,3) m, kibo frame. Returns ``(uv (N,2) px, J (2N,6), z (N,) m depth)``; row
    ``2i`` is u_i, row ``2i+1`` is v_i, columns ``[dp (3) m kibo frame, dtheta (3) rad optical
    frame]`` of the local perturbation documented in the module docstring. Skew (K[0,1]) is
    assumed zero.
    """
    R = rotmat_from_quat(T_kibo_cam.quat)
    uv, J, z = project_with_jacobian_at(K, T_kibo_cam.position, R, points_kibo)
    return uv, J, z  # type: ignore[return-value]


def project_with_jacobian_at(
    K: np.ndarray, position: np.ndarray, R: np.ndarray, points_kibo: np.ndarray, jacobian: bool = True
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """``project_with_jacobian`` of the camera at ``position`` (3,) m, kibo frame, with rotation
    matrix ``R`` (3,3) (``rotmat_from_quat`` of its quaternion): for loops that update the pose
    without building a ``Pose``. ``jacobian=False`` skips J (returned as None); uv and z are the
    same either way."""
    Pc = (np.asarray(points_kibo, dtype=float) - position) @ R
    n = Pc.shape[0]
    f = K.diagonal()[:2]  # (fx, fy)
    iz = 1.0 / Pc[:, 2]
    s = Pc[:, :2] * iz[:, None]  # (x/z, y/z)
    fs = s * f
    uv = fs + K[:2, 2]
    if not jacobian:
        return uv, None, Pc[:, 2]
    # closed form of d(uv)/d(Pc) @ d(Pc)/d(perturbation) with d(Pc)/d(dp) = -R^T and
    # d(Pc)/d(dtheta) = skew(Pc), written into J in place with few temporaries
    fx, fy = K[0, 0], K[1, 1]
    xz, yz = s[:, 0], s[:, 1]
    J = np.empty((n, 2, 6))
    a = np.multiply.outer(s, R[:, 2])
    a -= R[:, :2].T
    np.multiply((iz[:, None] * f)[:, :, None], a, out=J[:, :, :3])  # f/z (s R[:, 2] - R[:, :2]^T)
    np.multiply(fs[:, 0], yz, out=J[:, 0, 3])  # fx xz yz
    np.multiply(fx, yz, out=J[:, 0, 5])  # fx yz
    t = xz * xz
    t += 1.0
    np.multiply(-fx, t, out=J[:, 0, 4])  # -fx (1 + xz^2)
    np.multiply(yz, yz, out=t)
    t += 1.0
    np.multiply(fy, t, out=J[:, 1, 3])  # fy (1 + yz^2)
    m = np.multiply(-fy, xz, out=J[:, 1, 5])  # -fy xz
    np.multiply(m, yz, out=J[:, 1, 4])  # -fy xz yz
    return uv, J.reshape(2 * n, 6), Pc[:, 2]


def pose_from_rvec_tvec(rvec: np.ndarray, tvec: np.ndarray) -> Pose:
    """T_kibo_cam from OpenCV's (rvec, tvec), which map kibo points into the camera: x_c = R x + t."""
    R_cam_kibo, _ = cv2.Rodrigues(np.asarray(rvec, dtype=float).reshape(3, 1))
    R_kibo_cam = R_cam_kibo.T
    return Pose(-R_kibo_cam @ np.asarray(tvec, dtype=float).reshape(3), quat_from_rotmat(R_kibo_cam))


def rvec_tvec_from_pose(T_kibo_cam: Pose) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV (rvec (3,1), tvec (3,1)) of T_kibo_cam (inverse of ``pose_from_rvec_tvec``)."""
    R_cam_kibo = rotmat_from_quat(T_kibo_cam.quat).T
    rvec, _ = cv2.Rodrigues(R_cam_kibo)
    return rvec.reshape(3, 1), (-R_cam_kibo @ T_kibo_cam.position).reshape(3, 1)


def pose_covariance_to_child(cov_parent: np.ndarray, T_kibo_a: Pose, T_a_b: Pose) -> np.ndarray:
    """Propagate a (6,6) pose covariance of T_kibo_a to T_kibo_b = T_kibo_a * T_a_b (T_a_b exact).

    Both covariances are ordered ``[dp (3) m kibo frame, dtheta (3) rad local frame]`` (local
    frame ``a`` for the input, ``b`` for the output), the perturbation of the module docstring.
    """
    R_a = rotmat_from_quat(T_kibo_a.quat)
    R_ab = rotmat_from_quat(T_a_b.quat)
    G = np.zeros((6, 6))
    G[:3, :3] = np.eye(3)
    G[:3, 3:] = -R_a @ skew(T_a_b.position)
    G[3:, 3:] = R_ab.T
    return G @ cov_parent @ G.T


def render_planar_markers(
    K: np.ndarray,
    width: int,
    height: int,
    T_kibo_cam: Pose,
    markers: list[tuple[int, float, Pose]],
    dictionary: cv2.aruco.Dictionary,
    *,
    background: int = 110,
    supersample: int = 3,
    noise_sigma: float = 0.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Synthetic (H,W) uint8 grayscale view of flat ArUco markers (for tests, benches, examples).

    markers : list of ``(id, side m, T_kibo_marker)``; each marker is drawn with a white quiet zone
    one module wide around its black border, warped by its exact homography at ``supersample``
    times the resolution and area-averaged down (anti-aliasing). Markers facing away or behind the
    camera are skipped. ``noise_sigma`` (grey levels) adds seeded Gaussian pixel noise.
    """
    s = int(supersample)
    Ks = K.copy().astype(float)
    Ks[0, :] *= s
    Ks[1, :] *= s
    # pixel-centre convention: u_s = s * u + (s - 1) / 2
    Ks[0, 2] += 0.5 * (s - 1)
    Ks[1, 2] += 0.5 * (s - 1)
    W, H = width * s, height * s
    img = np.full((H, W), float(background), dtype=np.float32)
    cam_inv = T_kibo_cam.inverse()
    for marker_id, side, T_kibo_marker in markers:
        n_bits = dictionary.markerSize + 2  # inner bits + black border
        cells = n_bits + 2  # + white quiet zone
        px_per_cell = 16
        tex = np.full((cells * px_per_cell, cells * px_per_cell), 255, dtype=np.uint8)
        tex[px_per_cell:-px_per_cell, px_per_cell:-px_per_cell] = cv2.aruco.generateImageMarker(
            dictionary, int(marker_id), n_bits * px_per_cell, borderBits=1
        )
        half = 0.5 * side * cells / n_bits
        quad = np.array([[-half, half, 0.0], [half, half, 0.0], [half, -half, 0.0], [-half, -half, 0.0]])
        T_cam_marker = cam_inv.compose(T_kibo_marker)
        pc = T_cam_marker.transform_points(quad)
        normal_cam = rotmat_from_quat(T_cam_marker.quat)[:, 2]
        if np.any(pc[:, 2] < 0.05) or normal_cam @ T_cam_marker.position >= 0.0:
            continue
        dst = project(Ks, pc)
        x0, y0 = np.maximum(np.floor(dst.min(axis=0)).astype(int) - 1, 0)
        x1, y1 = np.minimum(np.ceil(dst.max(axis=0)).astype(int) + 2, [W, H])
        if x0 >= x1 or y0 >= y1:
            continue  # outside the image
        n_tex = tex.shape[0]
        src = np.array([[0, 0], [n_tex, 0], [n_tex, n_tex], [0, n_tex]], dtype=np.float32) - 0.5
        Hm = cv2.getPerspectiveTransform(src, (dst - [x0, y0]).astype(np.float32))
        size = (int(x1 - x0), int(y1 - y0))
        warped = cv2.warpPerspective(tex, Hm, size, flags=cv2.INTER_LINEAR, borderValue=0)
        mask = cv2.warpPerspective(
            np.ones(tex.shape, np.float32), Hm, size, flags=cv2.INTER_LINEAR, borderValue=0
        )
        roi = img[y0:y1, x0:x1]
        img[y0:y1, x0:x1] = roi * (1.0 - mask) + warped.astype(np.float32) * mask
    out = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
    if noise_sigma > 0.0:
        rng = rng if rng is not None else np.random.default_rng(0)
        out = out + rng.normal(0.0, noise_sigma, out.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
