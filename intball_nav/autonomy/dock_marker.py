"""The dock marker as the reference of the final docking approach.

The docking station carries one ArUco marker (``kibo.yaml`` ``dock.marker_id``, id 99, 0.10 m,
in ``markers.yaml`` with ``surface: dock``). In the docked attitude the rear nav cameras face the
dock, so the left nav camera sees the marker from the standoff (0.30 m: ~80 px wide) until the
robot is ~0.2 m from the face (closer, the marker fills the view and is lost).

``DockMarkerSensor.measure`` solves the camera pose from that marker alone (the vision package's
``MarkerLocalizer`` on a one-marker map) and returns ``T_dock_base``: the body in the dock frame,
measured relative to the marker, independent of the navigation estimate (a biased estimate does
not bias it). ``at_time`` carries a measurement taken at the image stamp to the present with the
estimate's own relative motion since then (short intervals: the estimate's drift over 0.1-0.3 s
is negligible next to its absolute bias), which is what ``docking_step`` takes as
``DockingInputs.T_dock_base`` (averaged into the goal correction while settling at the standoff;
gap and lateral offset on the final leg while the marker is in view).

Pure Python over numpy / OpenCV; no ROS, no simulator, no ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from intball_nav.frames import Pose
from intball_nav.module import Dock, MarkerMap
from intball_nav.vision.markers import CameraLike, LocalizerParams, MarkerLocalizer


@dataclass(frozen=True)
class DockMarkerFix:
    """One measurement of the body relative to the dock marker.

    stamp : s, image capture time
    T_dock_base : pose of base_link in the dock frame (m, xyzw), from the marker
    distance : m, camera to marker centre
    rms_px : corner reprojection RMS (px); ambiguous : the planar ambiguity was not resolved
    """

    stamp: float
    T_dock_base: Pose
    distance: float
    rms_px: float
    ambiguous: bool


class DockMarkerSensor:
    """Dock-marker-relative pose of the robot from one camera's images.

    dock : the docking station (its pose and marker id); marker_map : the module's marker map
    (the dock marker's pose in it is the dock's, see ``intball_sim.make_markers``); camera : the
    camera that faces the dock on the final approach (``CameraLike``: K, size, T_base_cam, D).
    max_rms_px : fixes worse than this are dropped.
    """

    def __init__(
        self, dock: Dock, marker_map: MarkerMap, camera: CameraLike, max_rms_px: float = 1.5
    ) -> None:
        only = MarkerMap(marker_map.dictionary, (marker_map.by_id(dock.marker_id),))
        self.dock = dock
        self.max_rms_px = float(max_rms_px)
        self._T_dock_kibo = dock.pose.inverse()
        self._localizer = MarkerLocalizer(only, camera, LocalizerParams(max_marker_rms_px=max_rms_px))

    def measure(self, gray: np.ndarray, stamp: float) -> DockMarkerFix | None:
        """Fix from a (H, W) uint8 (or (H, W, 3) RGB) image, or None when the marker is not seen."""
        m = self._localizer.localize(gray, stamp)
        if m is None or self.dock.marker_id not in m.marker_ids or m.rms_px > self.max_rms_px:
            return None
        T_dock_base = self._T_dock_kibo.compose(m.T_kibo_base)
        marker = self._localizer.map[self.dock.marker_id].marker.pose.position
        distance = float(np.linalg.norm(m.T_kibo_cam.position - marker))
        return DockMarkerFix(float(stamp), T_dock_base, distance, m.rms_px, m.ambiguous)


def at_time(fix: DockMarkerFix, T_est_at_fix: Pose, T_est_now: Pose) -> Pose:
    """T_dock_base now: the fix moved by the estimate's motion since the image
    (``T_dock_base(fix) * T_est(fix)^-1 * T_est(now)``; both estimates kibo frame)."""
    return fix.T_dock_base.compose(T_est_at_fix.inverse().compose(T_est_now))
