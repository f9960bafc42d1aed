"""The main camera images of the navigation node's camera tasks: the latest image (from the
simulator, ``/intball/main_camera/image_raw``, only with cameras on), waiting for a newer one, the
estimated pose at an image's stamp, and snapshots saved under the node's ``data_dir``
(``<task>_<stamp ms>.png`` + ``.json``: ``camera_tasks.snapshot``) and published on
``/intball/main_camera/snapshot``. Poses in the metadata are the *estimate* at the image's stamp
(never ground truth).
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from intball_nav.camera_tasks import SnapshotMeta, config_for_map, resize_image, save_snapshot
from intball_nav.frames import Pose
from intball_ros import convert

IMAGE_MAX_AGE_S = 3.0  # wall s: older than this, the camera is considered off
POSE_WAIT_S = 1.0  # wall s: longest wait for the estimate of an image's stamp
READ_MAX_SIGMA = 0.05  # m: read_codes reports codes whose position 1-sigma is within this


class CameraTaskFailed(Exception):
    """A camera task cannot be done; str() is the reason."""


class CameraImages:
    """Mixin of NavNode: ``_init_camera`` sets _camera and _reader (the read_codes config); needs
    wait_tick, _check, _image, _estimate, _estimate_at, _estimate_covers, _odom_history, _data_dir,
    _snapshot_pub."""

    def _init_camera(self) -> None:
        from intball_nav.module import load_marker_map
        from intball_sim.camera import load_cameras

        self._camera = load_cameras()["main"]
        # map markers with their sizes + target ids; positions the reader itself rates worse than
        # READ_MAX_SIGMA are not reported (the result carries no covariance)
        self._reader = replace(config_for_map(load_marker_map()), max_sigma=READ_MAX_SIGMA)

    def _fresh_image(self):
        img = self._image
        if img is None:
            raise CameraTaskFailed(
                "no main camera image received: start the graph with cameras on "
                "(intball up without --no-cameras)"
            )
        return img

    async def _next_image(self, goal_handle, token, after: float):
        """First main camera image stamped at or after ``after`` (s sim time)."""
        deadline = time.monotonic() + IMAGE_MAX_AGE_S
        while True:
            img = self._fresh_image()
            if convert.time_from_stamp(img.header.stamp) >= after:
                return img
            if time.monotonic() > deadline:
                raise CameraTaskFailed(f"no new main camera image for {IMAGE_MAX_AGE_S:g} s")
            await self.wait_tick()
            self._check(goal_handle, token)

    def _pose_now(self) -> Pose:
        est = self._estimate
        return Pose(est.position, est.quat)

    async def _snap(self, goal_handle, token, img, task: str, width: int = 0, height: int = 0, extra=None):
        """Save and publish ``img`` with its metadata; returns [png path, json path]. The pose is
        the estimate at the image's stamp (``pose_source: estimate``, ``pose_stamp`` = the image
        stamp); if the estimates do not cover that instant within ``POSE_WAIT_S``, the latest one,
        marked ``pose_source: estimate_latest`` with its own ``pose_stamp``."""
        rgb = convert.array_from_image(img)
        K = np.asarray(self._camera.K, dtype=float)
        if width or height:  # checked before any wait: a bad size fails at once
            w = width or round(rgb.shape[1] * height / rgb.shape[0])
            h = height or round(rgb.shape[0] * width / rgb.shape[1])
            if not (8 <= w <= 4096 and 8 <= h <= 4096):
                raise CameraTaskFailed(f"snapshot size {w}x{h} px out of range 8..4096")
            rgb, K = resize_image(rgb, K, w, h)
        stamp = convert.time_from_stamp(img.header.stamp)
        await self._wait_estimate(goal_handle, token, stamp)
        T_kibo_base = self._estimate_at(stamp)
        pose_source, pose_stamp = "estimate", stamp
        if T_kibo_base is None:
            T_kibo_base, pose_source = self._pose_now(), "estimate_latest"
            pose_stamp = self._odom_history[-1][0] if self._odom_history else float("nan")
        meta = SnapshotMeta(
            stamp, T_kibo_base, T_kibo_base.compose(self._camera.T_base_cam), K, rgb.shape[1], rgb.shape[0],
            self._camera.frame_id,
            dict(extra or {}, task=task, pose_source=pose_source, pose_stamp=round(pose_stamp, 6)),
        )  # fmt: skip
        files = save_snapshot(self._data_dir, rgb, meta, f"{task}_{round(stamp * 1000)}")
        self._snapshot_pub.publish(convert.image_from_array(rgb, stamp, self._camera.frame_id))
        return [str(files.image), str(files.sidecar)]

    async def _pose_at_image(self, goal_handle, token, img) -> Pose:
        """The estimated pose at the image's stamp (waits for the estimate of that instant:
        under load images and estimates arrive out of step); fails when it is not known."""
        stamp = convert.time_from_stamp(img.header.stamp)
        await self._wait_estimate(goal_handle, token, stamp)
        pose = self._estimate_at(stamp)
        if pose is None:
            raise CameraTaskFailed(
                f"no state estimate at the image time {stamp:.3f} s (estimates cover "
                f"{self._history_span()}): not placing codes with a pose from another time"
            )
        return pose

    async def _wait_estimate(self, goal_handle, token, stamp: float) -> None:
        """Until an estimate stamped at or after ``stamp`` has arrived, at most ``POSE_WAIT_S``."""
        deadline = time.monotonic() + POSE_WAIT_S
        while not self._estimate_covers(stamp) and time.monotonic() < deadline:
            await self.wait_tick()
            self._check(goal_handle, token)

    def _history_span(self) -> str:
        h = self._odom_history
        return f"{h[0][0]:.3f}..{h[-1][0]:.3f} s" if h else "nothing"
