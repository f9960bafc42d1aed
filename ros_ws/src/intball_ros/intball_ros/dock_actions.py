"""The dock / undock actions of the navigation node, and the dock marker as the final-approach reference.

The left nav camera (``/intball/nav_camera/left/image_raw``; the rear cameras face the dock in
the docked attitude) is subscribed only while a docking needs it (``_sync_dock_camera``, every
tick: from the ``standoff`` leg, one leg early so the subscription is matched in time, to the end
of ``latching``; an idle graph deserializes no nav image here). From the ``align`` phase on, each
new image goes through ``intball_nav.autonomy.dock_marker.DockMarkerSensor`` (the dock marker
alone, PnP), which measures the body in the dock frame independently of the state estimate. The
fix is carried to the tick time with the estimate's motion since the image stamp
(``dock_marker.at_time``; the estimate at the stamp is interpolated, ``nav_inputs._estimate_at``)
and fed to the supervisor as ``TickInputs.T_dock_base``: while settling at the standoff it is averaged into a
correction of the final-approach goal, and on the final leg it gives the gap and lateral offset
while the marker is in view. Without images (``--no-cameras``) or without the marker in view the
final approach flies on the state estimate, and the Dock feedback ``detail`` and result say so.
Ground truth never reaches this path.
"""

from __future__ import annotations

import numpy as np
from intball_interfaces.action import Dock, Undock
from sensor_msgs.msg import Image

from intball_nav.autonomy import supervisor as sup
from intball_nav.autonomy.dock_marker import DockMarkerFix, DockMarkerSensor, at_time
from intball_nav.autonomy.docking import dock_relative
from intball_nav.autonomy.modes import Event, Mode
from intball_nav.frames import Pose
from intball_ros import convert, names
from intball_ros.goals import Stopped

DOCKED_HOLD = "on the dock, held by the controller's preload (the simulator has no magnets yet), charging"
DOCK_CAMERA = "nav_left"  # the camera facing the dock in the docked attitude (cameras.yaml)
MARKER_PHASES = ("align", "settle", "final")  # docking phases in which images are measured
CAMERA_PHASES = ("standoff", *MARKER_PHASES, "latching")  # ... in which the nav camera is subscribed
FIX_MAX_AGE_S = 0.3  # s sim time: an older fix is not used
IMAGE_MAX_AGE_S = 1.0  # s sim time: without a newer nav image the cameras count as off


class DockActions:
    """Mixin of NavNode (needs request, wait_tick, _auto, _estimate, _ctx, _lock, _now, _claim,
    _check, _abort, _end, _errors, _why, _last_reason)."""

    def _init_dock(self) -> None:
        from intball_nav.module import load_marker_map
        from intball_sim.camera import load_cameras

        dock = self._ctx.autonomy.docking.dock
        self._dock_sensor = DockMarkerSensor(dock, load_marker_map(), load_cameras()[DOCK_CAMERA])
        self._nav_image_t = None  # s sim time of the latest nav image
        self._nav_sub = None  # the nav camera subscription, only while docking needs it
        self._nav_sub_closed_t = None  # s sim time when it was last destroyed
        self._fix: tuple[DockMarkerFix, Pose] | None = None  # latest fix, estimate at its stamp
        self._marker_views = self._marker_seen = 0  # nav images measured / with the marker, this docking

    def _sync_dock_camera(self) -> None:
        """Create the nav camera subscription when the docking phase needs it, destroy it after
        (called every tick under the lock; a phase change is seen within one tick)."""
        d = self._auto.docking
        wanted = self._auto.mode.mode == Mode.DOCKING and d is not None and d.phase in CAMERA_PHASES
        if wanted and self._nav_sub is None:
            self._nav_image_t, self._nav_sub_closed_t = None, None
            self._nav_sub = self.create_subscription(
                Image, names.NAV_LEFT_IMAGE, self._on_nav_image, names.IMAGES
            )
            self.get_logger().info(f"docking {d.phase}: nav camera subscribed for the dock marker")
        elif not wanted and self._nav_sub is not None:
            self.destroy_subscription(self._nav_sub)
            self._nav_sub, self._nav_sub_closed_t = None, self._now()
            self.get_logger().info("nav camera released (docking no longer needs it)")

    def _dock_started(self) -> None:
        """A docking began (action, go-home or retry from the supervisor): forget the last one's fixes."""
        self._fix, self._marker_views, self._marker_seen = None, 0, 0

    def _on_nav_image(self, msg: Image) -> None:
        stamp = convert.time_from_stamp(msg.header.stamp)
        self._nav_image_t = stamp
        d = self._auto.docking
        if self._auto.mode.mode != Mode.DOCKING or d is None or d.phase not in MARKER_PHASES:
            return  # measured only near the dock (about 3-15 ms per image)
        est = self._estimate_at(stamp)
        if est is None:
            return
        try:
            fix = self._dock_sensor.measure(convert.gray_from_image(msg), stamp)
        except convert.InvalidMessage as exc:
            self.get_logger().warning(f"ignoring nav image: {exc}", throttle_duration_sec=5.0)
            return
        self._marker_views += 1
        if fix is not None:
            self._marker_seen += 1
            self._fix = (fix, est)

    def _dock_marker_input(self, t: float, estimate) -> Pose | None:
        """T_dock_base for this tick from a recent dock-marker fix, else None."""
        if self._fix is None or self._auto.mode.mode != Mode.DOCKING:
            return None
        fix, est_then = self._fix
        if not 0.0 <= t - fix.stamp <= FIX_MAX_AGE_S:
            return None
        return at_time(fix, est_then, Pose(estimate.position, estimate.quat))

    def _reference(self) -> tuple[bool, str]:
        """(steering on the dock marker, what the approach steers on and why) for feedback/result."""
        params = self._ctx.autonomy.docking
        d, marker = self._auto.docking, params.dock.marker_id
        if d is not None and d.phase in ("final", "latching", "docked", "retreat") and d.marker_count > 0:
            docked = params.docked_pose.position  # how far the marker moved the docked goal:
            mm = 1000.0 * float(np.linalg.norm(d.correction.transform_points(docked[None])[0] - docked))
            return True, (
                f"final approach on dock marker {marker}: goal corrected by {mm:.1f} mm ({d.marker_count} "
                f"samples at the standoff; marker in {self._marker_seen} of {self._marker_views} nav images)"
            )
        now = self._now() if self._nav_sub_closed_t is None else self._nav_sub_closed_t  # images stop then
        if self._nav_image_t is None or now - self._nav_image_t > IMAGE_MAX_AGE_S:
            why = f"no nav camera images on {names.NAV_LEFT_IMAGE} (cameras off?)"
        elif self._marker_views == 0:
            why = "dock marker not measured yet"
        else:
            why = f"dock marker {marker} seen in {self._marker_seen} of {self._marker_views} nav images"
        if d is not None and d.phase in ("final", "latching", "docked", "retreat"):
            return False, f"final approach on the state estimate, not the dock marker: {why}"
        return False, f"dock marker reference: {why}"

    # -- the actions ----------------------------------------------------------------------------
    async def _dock(self, goal_handle):
        return await self._docking(goal_handle, Dock, Event.DOCK, Mode.DOCKED, Mode.DOCKING)

    async def _undock(self, goal_handle):
        return await self._docking(goal_handle, Undock, Event.UNDOCK, Mode.STATION_KEEPING, Mode.UNDOCKING)

    async def _docking(self, goal_handle, kind, event, done_mode, active_mode):
        result = kind.Result()
        token = self._claim(goal_handle)
        if goal_handle.request.dock_id not in ("", "dock"):
            return self._abort(
                goal_handle, result, f"unknown dock {goal_handle.request.dock_id!r}; known: dock"
            )
        tr = self.request(sup.Request(event))
        if not tr.accepted:
            return self._abort(goal_handle, result, tr.reason)
        params = self._ctx.autonomy.docking
        goal = params.docked_pose if event == Event.DOCK else params.pose_at(params.standoff)
        if tr.target == done_mode:  # already docked
            result.success, result.reason = True, tr.reason
            result.position_error = self._errors(goal)[0]
            goal_handle.succeed()
            return result
        reference = ""
        try:
            while True:
                await self.wait_tick()
                self._check(goal_handle, token)
                s = self._auto
                dist = self._errors(goal)[0]
                if event == Event.DOCK:
                    used, reference = self._reference()
                if s.mode.mode == done_mode:
                    break
                if s.mode.mode != active_mode:
                    raise Stopped(f"{event} failed: {s.mode.mode}: {self._why()}")
                phase = s.docking.phase if s.docking is not None else ""
                fb = kind.Feedback(stage=phase, distance_remaining=dist)
                if event == Event.DOCK:
                    fb.detail = reference
                goal_handle.publish_feedback(fb)
        except Stopped as exc:
            if event == Event.DOCK and reference:
                exc = Stopped(f"{exc} [{reference}]", exc.canceled)
            return self._end(goal_handle, result, exc)
        result.position_error = self._errors(goal)[0]
        result.success, result.reason = True, f"{self._last_reason} ({100 * result.position_error:.2f} cm)"
        if event == Event.DOCK:
            result.dock_marker_used = used
            if used:  # the estimate corrected by the dock marker: what the robot steered on
                T_db = dock_relative(self._estimate, self._auto.docking.correction, params)
                result.position_error = float(np.linalg.norm(T_db.position - [0.0, 0.0, params.radius]))
            how = "dock-marker-corrected estimate" if used else "estimate"
            result.reason = (
                f"docked ({100 * result.position_error:.2f} cm from the docked pose, {how}): "
                f"{DOCKED_HOLD}; {reference}"
            )
        goal_handle.succeed()
        return result
