"""The URDF and cameras.yaml describe one robot: camera mounts must agree."""

import xml.etree.ElementTree as ET

import numpy as np

from intball_nav.frames import quat_angle, quat_from_rpy
from intball_nav.robot import URDF_PATH
from intball_sim.camera import load_cameras


def _urdf_joints():
    root = ET.parse(URDF_PATH).getroot()
    joints = {}
    for j in root.iter("joint"):
        origin = j.find("origin")
        xyz = np.array([float(v) for v in origin.get("xyz").split()])
        rpy = np.array([float(v) for v in origin.get("rpy").split()])
        joints[j.find("child").get("link")] = (xyz, quat_from_rpy(*rpy))
    return joints


def test_camera_links_match_cameras_yaml():
    joints = _urdf_joints()
    cameras = load_cameras()
    assert len(cameras) == 3
    for model in cameras.values():
        assert model.frame_id in joints, f"URDF lacks a link for camera frame {model.frame_id}"
        xyz, quat = joints[model.frame_id]
        np.testing.assert_allclose(xyz, model.T_base_cam.position, atol=1e-9)
        assert quat_angle(quat, model.T_base_cam.quat) < 1e-8, model.frame_id


def test_optical_frames_look_the_documented_way():
    cameras = load_cameras()
    # main camera looks along body +x, nav cameras along body -x (rear); image y is body -z.
    for name, forward in (("main", [1, 0, 0]), ("nav_left", [-1, 0, 0]), ("nav_right", [-1, 0, 0])):
        R = cameras[name].T_base_cam.matrix()[:3, :3]
        np.testing.assert_allclose(R[:, 2], forward, atol=1e-9)
        np.testing.assert_allclose(R[:, 1], [0, 0, -1], atol=1e-9)
