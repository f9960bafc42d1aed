"""The ``camera_task`` action of the navigation node, over ``intball_nav.camera_tasks``: the
execute coroutine and its tasks (snapshot, look_at, survey, inspect, record, read_codes).

Images, the pose at an image's stamp and snapshots come from ``camera_images``; without a recent
main camera image every task fails with the reason. Files go under the node's ``data_dir``:
snapshots ``<task>_<stamp ms>.png`` + ``.json`` (time, robot pose, camera pose, intrinsics:
``camera_tasks.snapshot``), recordings ``record_<stamp ms>/``, survey overviews. Poses in the
metadata are the *estimate* at the image stamp (never ground truth).
"""

from __future__ import annotations

import math
import time

import cv2
import numpy as np
from geometry_msgs.msg import Point
from intball_interfaces.action import CameraTask

from intball_nav.autonomy.commands import CommandRejected
from intball_nav.camera_tasks import (
    PointingError,
    VideoRecorder,
    look_at,
    plan_inspect,
    plan_rotation_survey,
    read_codes,
    tile_images,
)
from intball_nav.frames import Pose
from intball_nav.gnc import LookAtTarget
from intball_nav.module import RACK_FACES, face_rotation
from intball_ros import convert
from intball_ros.camera_images import IMAGE_MAX_AGE_S, READ_MAX_SIGMA, CameraImages, CameraTaskFailed
from intball_ros.goals import Stopped

TASKS = ("snapshot", "look_at", "survey", "inspect", "record", "read_codes")
MAX_RECORD_S = 600.0
SURVEY_MAX = 16  # images per survey


class CameraTasks(CameraImages):
    """Mixin of NavNode: the camera_task execute coroutine (uses GoalHandling: _claim, _check,
    _mode_name, _abort, _end; Flight: _fly)."""

    def _progress(self, goal_handle, progress: float, state: str) -> None:
        goal_handle.publish_feedback(CameraTask.Feedback(progress=float(progress), state=state))

    async def _camera_task(self, goal_handle):
        g, result = goal_handle.request, CameraTask.Result()
        token = self._claim(goal_handle) if g.task in ("look_at", "inspect", "survey") else None
        try:
            if g.task not in TASKS:
                raise CameraTaskFailed(f"unknown task {g.task!r}; known: {', '.join(TASKS)}")
            if g.camera not in ("", "main"):
                raise CameraTaskFailed(f"unknown camera {g.camera!r}; only the main camera is supported")
            if self._estimate is None:
                raise CameraTaskFailed("no state estimate yet")
            deadline = time.monotonic() + IMAGE_MAX_AGE_S
            while self._image is None and time.monotonic() < deadline:  # just started: first frames
                await self.wait_tick()
            self._fresh_image()
            run = getattr(self, f"_task_{g.task}")
            await run(goal_handle, token, g, result)
        except (CameraTaskFailed, CommandRejected, PointingError, ValueError) as exc:
            return self._abort(goal_handle, result, f"camera_task {g.task}: {exc}")
        except Stopped as exc:  # cancel, preemption, fault, stop
            return self._end(goal_handle, result, Stopped(f"camera_task {g.task}: {exc}", exc.canceled))
        result.success = True
        result.reason = result.reason or f"{g.task} done"
        goal_handle.succeed()
        return result

    async def _task_snapshot(self, goal_handle, token, g, result) -> None:
        img = await self._next_image(goal_handle, token, self._now())
        result.files = await self._snap(goal_handle, token, img, "snapshot", int(g.width), int(g.height))

    async def _task_read_codes(self, goal_handle, token, g, result) -> None:
        img = await self._next_image(goal_handle, token, self._now())
        T_kibo_cam = (await self._pose_at_image(goal_handle, token, img)).compose(self._camera.T_base_cam)
        readings = read_codes(convert.array_from_image(img), self._camera, T_kibo_cam, config=self._reader)
        result.code_ids = [f"{r.kind}:{r.value}" for r in readings]
        result.code_positions = [
            Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in (r.position for r in readings)
        ]
        result.reason = (
            f"{len(readings)} codes read (camera pose: the estimate at the image stamp; "
            f"codes with a position 1-sigma over {100 * READ_MAX_SIGMA:g} cm left out)"
        )

    async def _task_look_at(self, goal_handle, token, g, result) -> None:
        est = self._estimate
        target = np.array([g.point.x, g.point.y, g.point.z], dtype=float)
        if not np.isfinite(target).all():
            raise CameraTaskFailed("point must be 3 finite numbers")
        sol = look_at(est.position, target, self._camera.T_base_cam, current_quat=est.quat)
        self._progress(goal_handle, 0.1, f"turning to look at {np.round(target, 2).tolist()} m")
        look = LookAtTarget(target, self._camera.T_base_cam)  # kept by the supervisor while holding
        await self._fly(
            goal_handle, token, Pose(est.position, sol.quat), self._mode_name("precision"), look=look
        )
        result.reason = f"looking at the point, {sol.range:.2f} m away; held while station keeping"

    async def _task_inspect(self, goal_handle, token, g, result) -> None:
        try:
            plan = plan_inspect(self._module, g.bay, self._camera, keep_out=self._ctx.keep_out)
        except (KeyError, ValueError) as exc:
            raise CameraTaskFailed(str(exc.args[0]) if exc.args else repr(exc)) from None
        self._progress(goal_handle, 0.1, f"flying to {g.bay} ({plan.standoff:.2f} m standoff)")
        await self._fly(goal_handle, token, plan.T_kibo_base, self._mode_name(""))
        img = await self._next_image(goal_handle, token, self._now())
        result.files = await self._snap(
            goal_handle, token, img, f"inspect_{g.bay}", extra={"bay": g.bay, "standoff": plan.standoff}
        )

    async def _task_survey(self, goal_handle, token, g, result) -> None:
        face = g.bay or "overhead"
        if face not in RACK_FACES:
            raise CameraTaskFailed(
                f"survey: unknown face {face!r} (in bay); allowed: {', '.join(RACK_FACES)}"
            )
        here = self._estimate.position
        # the face across the module, 1 m along it (one rack bay) centred in front of the robot
        p0, _n = self._module.face_plane(face)
        R, ext = face_rotation(face), self._module.face_extent(face)
        limits = []
        for k in (0, 1):
            half = 0.5 * ext[k]
            if ext[k] <= 3.0:  # across the module: all of it
                limits += [-half, half]
            else:  # along the module
                c = float(np.clip((here - p0) @ R[:, k], -half + 0.5, half - 0.5))
                limits += [c - 0.5, c + 0.5]
        region = tuple(limits)
        plan = plan_rotation_survey(
            self._module, face, self._camera, here, region=region, max_images=SURVEY_MAX
        )
        if len(plan.captures) > SURVEY_MAX:
            dist = float((here - p0) @ _n)
            raise CameraTaskFailed(
                f"survey of {face} from {dist:.2f} m needs {len(plan.captures)} images (> {SURVEY_MAX}): "
                "fly farther from the face first"
            )
        images, cells = [], []
        for k, cap in enumerate(plan.captures):
            self._progress(goal_handle, k / len(plan.captures), f"survey image {k + 1}/{len(plan.captures)}")
            await self._fly(
                goal_handle, token, Pose(here, cap.T_kibo_base.quat), self._mode_name("precision")
            )
            img = await self._next_image(goal_handle, token, self._now())
            result.files.extend(
                await self._snap(
                    goal_handle, token, img, f"survey_{face}_{k}", extra={"face": face, "index": k}
                )
            )
            images.append(convert.array_from_image(img))
            cells.append((cap.row, cap.col))
        overview = tile_images(images, plan.rows, plan.cols, cells)
        path = self._data_dir / f"survey_{face}_{round(self._now() * 1000)}_tiled.png"
        cv2.imwrite(str(path), cv2.cvtColor(overview, cv2.COLOR_RGB2BGR))
        result.files.append(str(path))
        result.reason = f"survey of {face}: {len(images)} images tiled"

    async def _task_record(self, goal_handle, token, g, result) -> None:
        duration = float(g.duration)
        if not (math.isfinite(duration) and 0.0 < duration <= MAX_RECORD_S):
            raise CameraTaskFailed(f"duration must be in (0, {MAX_RECORD_S:g}] s, got {duration}")
        first = self._fresh_image()
        t0 = self._now()
        folder = self._data_dir / f"record_{round(t0 * 1000)}"
        rec = VideoRecorder(folder, 5.0, (first.width, first.height), duration=duration)
        last = None
        try:
            while self._now() - t0 < duration:
                await self.wait_tick()
                if goal_handle.is_cancel_requested:
                    break
                img = self._fresh_image()
                if img is not last and convert.time_from_stamp(img.header.stamp) >= t0:
                    rec.write(convert.array_from_image(img), convert.time_from_stamp(img.header.stamp))
                    last = img
                self._progress(goal_handle, (self._now() - t0) / duration, f"recording, {rec.frames} frames")
        finally:
            info = rec.close()
        if goal_handle.is_cancel_requested:
            raise Stopped(f"canceled: {info.frames} frames kept in {info.path}", canceled=True)
        if info.frames == 0:
            raise CameraTaskFailed("no frame arrived while recording")
        result.files = [str(info.path), str(info.index)]
        result.reason = f"recorded {info.frames} frames over {info.duration:.1f} s ({info.kind})"
