"""Camera geometry: optical-frame convention, projection Jacobian, covariance propagation."""

from __future__ import annotations

import cv2
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from intball_nav.frames import Pose, quat_from_rotvec, quat_from_rpy, quat_multiply, rotmat_from_quat
from intball_nav.vision.camera_geometry import (
    R_LINK_OPTICAL,
    intrinsics_from_fov,
    link_from_optical,
    optical_from_link,
    pose_covariance_to_child,
    pose_from_rvec_tvec,
    project,
    project_with_jacobian,
    project_with_jacobian_at,
    rvec_tvec_from_pose,
)

K = intrinsics_from_fov(640, 480, np.radians(75.0))
small = st.floats(-1.0, 1.0)


def perturb(T: Pose, dx: np.ndarray) -> Pose:
    """p + dp, R Exp(dtheta): the documented local perturbation."""
    return Pose(T.position + dx[:3], quat_multiply(T.quat, quat_from_rotvec(dx[3:])))


def test_optical_frame_convention():
    # optical z (out of the lens) is link +x, optical x (image right) is link -y, optical y is -z
    np.testing.assert_allclose(R_LINK_OPTICAL @ [0, 0, 1], [1, 0, 0])
    np.testing.assert_allclose(R_LINK_OPTICAL @ [1, 0, 0], [0, -1, 0])
    np.testing.assert_allclose(R_LINK_OPTICAL @ [0, 1, 0], [0, 0, -1])
    T = Pose(np.array([0.1, 0.2, 0.3]), quat_from_rpy(0.1, 0.2, 0.3))
    back = link_from_optical(optical_from_link(T))
    np.testing.assert_allclose(back.position, T.position)
    np.testing.assert_allclose(back.quat, T.quat, atol=1e-12)
    # a point straight ahead of a camera whose link frame is the identity hits the principal point
    uv = project(K, optical_from_link(Pose()).inverse().transform_points(np.array([[2.0, 0.0, 0.0]])))
    np.testing.assert_allclose(uv[0], K[:2, 2])
    # a point to the left (+y) lands left in the image (smaller u), above (+z) lands higher (smaller v)
    uv = project(K, optical_from_link(Pose()).inverse().transform_points(np.array([[2.0, 0.1, 0.1]])))
    assert uv[0, 0] < K[0, 2] and uv[0, 1] < K[1, 2]


@settings(max_examples=30, deadline=None)
@given(st.lists(small, min_size=6, max_size=6))
def test_projection_jacobian_matches_finite_differences(v):
    v = np.array(v)
    T = Pose(np.array([0.1, -0.2, 0.05]) + 0.1 * v[:3], quat_from_rpy(*(0.2 * v[3:])))
    pts = T.transform_points(np.array([[0.2, 0.1, 1.5], [-0.3, 0.2, 1.0], [0.1, -0.25, 2.0]]))
    uv, J, z = project_with_jacobian(K, T, pts)
    assert np.all(z > 0)
    eps = 1e-6
    Jn = np.zeros_like(J)
    for i in range(6):
        d = np.zeros(6)
        d[i] = eps
        up, _, _ = project_with_jacobian(K, perturb(T, d), pts)
        um, _, _ = project_with_jacobian(K, perturb(T, -d), pts)
        Jn[:, i] = ((up - um) / (2 * eps)).ravel()
    np.testing.assert_allclose(J, Jn, rtol=1e-5, atol=1e-4)


def _reference_projection_with_jacobian(K, T, points):
    """The straightforward form of ``project_with_jacobian`` (one expression per Jacobian entry)."""
    R = rotmat_from_quat(T.quat)
    Pc = (np.asarray(points, dtype=float) - T.position) @ R
    x, y, z = Pc[:, 0], Pc[:, 1], Pc[:, 2]
    fx, fy = K[0, 0], K[1, 1]
    iz = 1.0 / z
    xz, yz = x * iz, y * iz
    uv = np.stack([fx * xz + K[0, 2], fy * yz + K[1, 2]], axis=1)
    J = np.empty((len(Pc), 2, 6))
    J[:, 0, :3] = (fx * iz)[:, None] * (xz[:, None] * R[:, 2] - R[:, 0])
    J[:, 1, :3] = (fy * iz)[:, None] * (yz[:, None] * R[:, 2] - R[:, 1])
    J[:, 0, 3] = fx * xz * yz
    J[:, 0, 4] = -fx * (1.0 + xz * xz)
    J[:, 0, 5] = fx * yz
    J[:, 1, 3] = fy * (1.0 + yz * yz)
    J[:, 1, 4] = -fy * xz * yz
    J[:, 1, 5] = -fy * xz
    return uv, J.reshape(-1, 6), z


def test_projection_is_bit_identical_to_the_straightforward_form():
    """The in-place ``project_with_jacobian`` (and ``project_with_jacobian_at``, with and without J)
    gives the values of the one-expression-per-entry form bit for bit: the pose refinement that
    uses it gives the same poses as before (seeded random poses and points, a non-square K)."""
    rng = np.random.default_rng(4)
    Kr = np.array([[301.7, 0.0, 161.2], [0.0, 297.3, 118.9], [0.0, 0.0, 1.0]])
    for n in (1, 7, 200):
        for _ in range(20):
            q = rng.normal(size=4)
            T = Pose(rng.normal(0.0, 1.0, 3), q / np.linalg.norm(q))
            pts = T.transform_points(rng.uniform([-2, -2, 0.2], [2, 2, 4], (n, 3)))
            ref = _reference_projection_with_jacobian(Kr, T, pts)
            for got in (
                project_with_jacobian(Kr, T, pts),
                project_with_jacobian_at(Kr, T.position, rotmat_from_quat(T.quat), pts),
            ):
                for a, b in zip(got, ref, strict=True):
                    np.testing.assert_array_equal(a, b)
            uv, J, z = project_with_jacobian_at(Kr, T.position, rotmat_from_quat(T.quat), pts, jacobian=False)
            assert J is None
            np.testing.assert_array_equal(uv, ref[0])
            np.testing.assert_array_equal(z, ref[2])


def test_rvec_tvec_roundtrip_matches_opencv_convention():
    T = Pose(np.array([0.5, -0.2, 0.1]), quat_from_rpy(0.3, -0.1, 2.0))
    rvec, tvec = rvec_tvec_from_pose(T)
    back = pose_from_rvec_tvec(rvec, tvec)
    np.testing.assert_allclose(back.position, T.position, atol=1e-12)
    pts = np.array([[1.0, 2.0, 3.0]])
    uv_cv, _ = cv2.projectPoints(pts, rvec, tvec, K, None)
    uv, _, _ = project_with_jacobian(K, T, pts)
    np.testing.assert_allclose(uv_cv.reshape(-1, 2), uv, atol=1e-9)


def test_pose_covariance_to_child_monte_carlo():
    rng = np.random.default_rng(0)
    T_a = Pose(np.array([1.0, 0.5, -0.2]), quat_from_rpy(0.2, -0.4, 1.0))
    T_ab = Pose(np.array([-0.1, 0.03, 0.02]), quat_from_rpy(1.2, 0.1, -0.5))
    A = rng.normal(size=(6, 6)) * 1e-3
    cov = A @ A.T
    G = pose_covariance_to_child(cov, T_a, T_ab)
    T_b = T_a.compose(T_ab)
    samples = []
    for dx in rng.multivariate_normal(np.zeros(6), cov, 20000):
        Tb = perturb(T_a, dx).compose(T_ab)
        dth = Tb.quat
        rel = quat_multiply(np.array([-T_b.quat[0], -T_b.quat[1], -T_b.quat[2], T_b.quat[3]]), dth)
        rel = rel if rel[3] >= 0 else -rel
        samples.append(np.concatenate([Tb.position - T_b.position, 2.0 * rel[:3]]))
    emp = np.cov(np.array(samples).T)
    np.testing.assert_allclose(emp, G, atol=0.05 * np.max(np.abs(G)))
    # rotation block rotated into the child frame
    R_ab = rotmat_from_quat(T_ab.quat)
    np.testing.assert_allclose(G[3:, 3:], R_ab.T @ cov[3:, 3:] @ R_ab, atol=1e-15)


def test_resized_camera_maps_pixels_like_cv2_resize():
    """A point's pixel in the resized model = the original pixel mapped by cv2.resize's geometry
    (pixel centres: u' = (u + 0.5) s - 0.5); checked on a rendered dot, not only by formula."""
    from types import SimpleNamespace

    from intball_nav.vision.camera_geometry import resized_camera

    K = np.array([[417.0, 0.0, 319.5], [0.0, 417.0, 239.5], [0.0, 0.0, 1.0]])
    cam = SimpleNamespace(K=K, width=640, height=480, T_base_cam=Pose(np.zeros(3), np.array([0, 0, 0, 1.0])))
    half = resized_camera(cam, 320, 240)
    assert (half.width, half.height) == (320, 240) and half.T_base_cam is cam.T_base_cam
    np.testing.assert_allclose(half.K, [[208.5, 0, 159.5], [0, 208.5, 119.5], [0, 0, 1]])
    img = np.zeros((480, 640), np.float32)
    img[100:104, 200:204] = 1.0  # a 4x4 dot centred at (201.5, 101.5)
    out = cv2.resize(img, (320, 240), interpolation=cv2.INTER_AREA)
    v, u = np.nonzero(out)
    centre = np.array([np.average(u, weights=out[v, u]), np.average(v, weights=out[v, u])])
    point = np.array([(201.5 - 319.5) / 417.0, (101.5 - 239.5) / 417.0, 1.0])  # on that pixel's ray
    np.testing.assert_allclose(project(half.K, point[None, :])[0], centre, atol=1e-6)
