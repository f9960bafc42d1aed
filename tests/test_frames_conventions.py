"""Convention tests for intball_nav.frames: quaternion order, Hamilton product, frame directions."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intball_nav.frames import (
    Pose,
    quat_angle,
    quat_conjugate,
    quat_from_rotmat,
    quat_from_rotvec,
    quat_from_rpy,
    quat_multiply,
    quat_normalize,
    quat_rotate,
    quat_slerp,
    quat_wxyz_from_xyzw,
    quat_xyzw_from_wxyz,
    rotmat_from_quat,
    rotvec_from_quat,
    rpy_from_quat,
    skew,
)

angles = st.floats(min_value=-np.pi, max_value=np.pi, allow_nan=False)
rotvecs = st.lists(st.floats(min_value=-3.0, max_value=3.0), min_size=3, max_size=3).map(np.array)


def test_quaternion_order_is_xyzw():
    # 90 deg about +z: w = cos(45 deg) is the LAST element.
    q = quat_from_rpy(0.0, 0.0, np.pi / 2)
    np.testing.assert_allclose(q, [0.0, 0.0, np.sqrt(0.5), np.sqrt(0.5)], atol=1e-12)
    np.testing.assert_allclose(quat_wxyz_from_xyzw(q), [np.sqrt(0.5), 0.0, 0.0, np.sqrt(0.5)], atol=1e-12)
    np.testing.assert_allclose(quat_xyzw_from_wxyz(quat_wxyz_from_xyzw(q)), q)


def test_hamilton_product_basis():
    i = np.array([1.0, 0, 0, 0])
    j = np.array([0, 1.0, 0, 0])
    k = np.array([0, 0, 1.0, 0])
    minus_one = np.array([0, 0, 0, -1.0])
    np.testing.assert_allclose(quat_multiply(i, j), k)  # ij = k (Hamilton, not JPL)
    np.testing.assert_allclose(quat_multiply(j, i), -k)
    for u in (i, j, k):
        np.testing.assert_allclose(quat_multiply(u, u), minus_one)


def test_yaw_rotates_x_to_y_right_handed():
    q = quat_from_rpy(0.0, 0.0, np.pi / 2)
    np.testing.assert_allclose(quat_rotate(q, [1.0, 0, 0]), [0, 1.0, 0], atol=1e-12)
    # roll +90 deg takes body +y to world +z (right-handed about +x)
    q = quat_from_rpy(np.pi / 2, 0.0, 0.0)
    np.testing.assert_allclose(quat_rotate(q, [0, 1.0, 0]), [0, 0, 1.0], atol=1e-12)
    # pitch +90 deg takes body +x to world -z
    q = quat_from_rpy(0.0, np.pi / 2, 0.0)
    np.testing.assert_allclose(quat_rotate(q, [1.0, 0, 0]), [0, 0, -1.0], atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(angles, st.floats(min_value=-1.5, max_value=1.5), angles)
def test_rpy_round_trip_and_composition_order(roll, pitch, yaw):
    q = quat_from_rpy(roll, pitch, yaw)
    wrapped = np.angle(np.exp(1j * (rpy_from_quat(q) - [roll, pitch, yaw])))  # -pi and pi are one yaw
    np.testing.assert_allclose(wrapped, 0.0, atol=1e-9)
    # R = Rz(yaw) Ry(pitch) Rx(roll)
    composed = quat_multiply(
        quat_from_rpy(0, 0, yaw), quat_multiply(quat_from_rpy(0, pitch, 0), quat_from_rpy(roll, 0, 0))
    )
    assert quat_angle(q, composed) < 1e-9


@settings(max_examples=200, deadline=None)
@given(rotvecs, rotvecs)
def test_rotation_matrix_is_homomorphism(a, b):
    qa, qb = quat_from_rotvec(a), quat_from_rotvec(b)
    Ra, Rb = rotmat_from_quat(qa), rotmat_from_quat(qb)
    np.testing.assert_allclose(rotmat_from_quat(quat_multiply(qa, qb)), Ra @ Rb, atol=1e-12)
    np.testing.assert_allclose(Ra @ Ra.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(Ra) == pytest.approx(1.0)
    assert quat_angle(quat_from_rotmat(Ra), qa) < 1e-7


@settings(max_examples=200, deadline=None)
@given(rotvecs)
def test_exp_log_round_trip(rv):
    angle = np.linalg.norm(rv)
    if angle > np.pi:  # log returns the angle in [0, pi]
        rv = rv / angle * (angle - 2 * np.pi)
    np.testing.assert_allclose(rotvec_from_quat(quat_from_rotvec(rv)), rv, atol=1e-9)


def test_skew_is_cross_product():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=3), rng.normal(size=3)
    np.testing.assert_allclose(skew(a) @ b, np.cross(a, b))


def test_slerp_endpoints_and_midpoint():
    q0 = quat_from_rpy(0, 0, 0)
    q1 = quat_from_rpy(0, 0, 1.0)
    assert quat_angle(quat_slerp(q0, q1, 0.0), q0) < 1e-9
    assert quat_angle(quat_slerp(q0, q1, 1.0), q1) < 1e-9
    assert quat_angle(quat_slerp(q0, q1, 0.5), quat_from_rpy(0, 0, 0.5)) < 1e-9
    # takes the short way even when q1 has the opposite sign
    assert quat_angle(quat_slerp(q0, -q1, 0.5), quat_from_rpy(0, 0, 0.5)) < 1e-9


def test_normalize_rejects_degenerate():
    with pytest.raises(ValueError, match="cannot be normalized"):
        quat_normalize(np.zeros(4))
    with pytest.raises(ValueError, match="shape"):
        quat_normalize(np.zeros(3))


def test_pose_compose_inverse_and_validation():
    rng = np.random.default_rng(1)
    a = Pose(rng.normal(size=3), quat_from_rotvec(rng.normal(size=3)))
    b = Pose(rng.normal(size=3), quat_from_rotvec(rng.normal(size=3)))
    np.testing.assert_allclose(a.compose(b).matrix(), a.matrix() @ b.matrix(), atol=1e-12)
    ident = a.compose(a.inverse())
    np.testing.assert_allclose(ident.position, 0, atol=1e-12)
    assert quat_angle(ident.quat, [0, 0, 0, 1]) < 1e-9
    p = rng.normal(size=(5, 3))
    np.testing.assert_allclose(a.transform_points(p), (a.matrix() @ np.c_[p, np.ones(5)].T).T[:, :3])
    assert quat_angle(Pose.from_matrix(a.matrix()).quat, a.quat) < 1e-9
    with pytest.raises(ValueError, match="finite"):
        Pose([0, np.nan, 0])
    with pytest.raises(ValueError, match="quaternion"):
        Pose([0, 0, 0], [0, 0, 0, np.inf])
    # conjugate is the inverse rotation
    np.testing.assert_allclose(quat_rotate(quat_conjugate(a.quat), quat_rotate(a.quat, p)), p, atol=1e-12)
