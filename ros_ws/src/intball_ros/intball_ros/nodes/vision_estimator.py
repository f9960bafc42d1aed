"""The ``vision`` mode of the estimator node: IMU + left nav camera -> VisualLocalizer.

Wiring only; the pipeline is :class:`intball_nav.estimation.visual_localizer.VisualLocalizer`
(markers, optional natural features, ESKF with delayed pose updates, health):

- every IMU message (100 Hz) goes to ``add_imu``; the estimate at its stamp is published right
  away (odometry with the pose covariance, /tf), so odometry runs at the IMU rate;
- every left nav image is converted to gray (``convert.gray_from_image``) and processed by
  ``add_nav_frame`` at its capture stamp, as soon as the IMU has reached that stamp: inputs go to
  the filter in stamp order (IMU first at equal stamps), as in replay. Without that, an image
  delivered ahead of a backlog of IMU samples (a loaded machine) would push the filter's replay
  window past samples still in the queue, and those would be dropped;
- with the natural features on, main camera images (front, looking the other way) go to
  ``add_aux_frame`` in the same stamp order, converted only while the pipeline wants them
  (``needs_aux_frame``: no nav-camera pose yet, or none for a moment, e.g. facing a rack from
  a few cm);
- the health (ok / degraded / lost, ``initialising`` before the first fix) is published at
  ``health_rate`` and at once when the level changes.

``make_localizer`` is also what ``intball replay`` runs offline, so a replay of a recording
processes the same inputs the same way.
"""

from __future__ import annotations

import math
from typing import Any

from intball_interfaces.msg import LocalizationHealth
from sensor_msgs.msg import Image, Imu

from intball_nav.estimation.eskf import EskfParams
from intball_nav.estimation.health import HealthStatus
from intball_nav.estimation.visual_localizer import VisualLocalizer, VisualLocalizerParams
from intball_ros import convert, names

ACCEPTED = ("accepted", "initialised")
"""Filter verdicts of a visual pose that was fused."""
MAX_WAITING_FRAMES = 3
"""Nav frames kept while the IMU catches up with their stamps (older ones are dropped)."""
AUX_SIZE = (320, 240)
"""px, the main camera's images are resized to this for the auxiliary feature localizer (the
scale of the map's nav-camera survey)."""


def make_localizer(features: bool = False) -> VisualLocalizer:
    """The pipeline of the live node and of replay: ArUco markers on the left nav camera
    (``cameras.yaml``, the model the simulator renders and publishes as CameraInfo), IMU noise
    from ``imu.yaml``, and the natural-feature localizer when ``features`` (needs its map), with
    an auxiliary one on the main camera resized to 320x240 (``AUX_SIZE``)."""
    from intball_nav.module import load_marker_map
    from intball_nav.vision.camera_geometry import resized_camera
    from intball_nav.vision.markers import MarkerLocalizer
    from intball_sim.camera import load_cameras
    from intball_sim.imu import load_imu_params

    cameras = load_cameras()
    camera = cameras["nav_left"]
    params = VisualLocalizerParams(eskf=EskfParams.from_imu(load_imu_params()))
    feats = _features(camera) if features else None
    aux = feats.for_camera(resized_camera(cameras["main"], *AUX_SIZE)) if feats is not None else None
    return VisualLocalizer(params, MarkerLocalizer(load_marker_map(), camera), feats, aux_localizer=aux)


def _features(camera: Any) -> Any:
    """FeatureLocalizer on the cached default natural-feature map (``intball map build``)."""
    from intball_nav.vision.feature_map import FeatureLocalizer
    from intball_sim.mapping import default_feature_map

    try:
        return FeatureLocalizer(default_feature_map(build_if_missing=False), camera)
    except FileNotFoundError as exc:
        raise ValueError(f"{names.P_FEATURES}=true but {exc}") from None


class VisionEstimator:
    """Subscriptions and bookkeeping of the vision mode on ``node`` (an EstimatorNode, which
    publishes through ``publish_estimate(t, state, covariance)`` and ``publish_health()``)."""

    def __init__(self, node: Any, features: bool = False) -> None:
        self._node = node
        self.localizer = make_localizer(features)
        self._health = HealthStatus()
        self._initialised = False
        self._cov = None
        self._t = 0.0
        self._markers = 0
        self._features = 0
        self._frames: list[tuple[float, Any]] = []  # (stamp s, gray) waiting for the IMU
        self._aux: list[tuple[float, Image]] = []  # (stamp s, main camera image) waiting for the IMU
        node.create_subscription(Imu, names.IMU, self._on_imu, names.SENSOR_DEEP)
        node.create_subscription(Image, names.NAV_LEFT_IMAGE, self._on_image, names.IMAGES)
        if self.localizer.aux is not None:
            node.create_subscription(Image, names.MAIN_IMAGE, self._on_aux_image, names.IMAGES)

    def _on_imu(self, msg: Imu) -> None:
        try:
            t, gyro, accel = convert.imu_from_msg(msg)
        except convert.InvalidMessage as exc:
            self._node.get_logger().warning(f"ignoring IMU sample: {exc}", throttle_duration_sec=5.0)
            return
        self.localizer.add_imu(t, gyro, accel)
        while True:  # nav and main camera frames in stamp order, up to the IMU
            nav = self._frames[0][0] if self._frames else math.inf
            aux = self._aux[0][0] if self._aux else math.inf
            if min(nav, aux) > t:
                break
            if nav <= aux:
                self._process(*self._frames.pop(0))
            else:
                self._process_aux(*self._aux.pop(0))
        state, cov, health = self.localizer.estimate(t)
        self._t, self._cov = t, cov
        if state is not None:
            self._node.publish_estimate(t, state, cov)
        changed = health.level != self._health.level or (state is not None) != self._initialised
        self._health, self._initialised = health, state is not None
        if changed:
            self._node.publish_health()

    def _on_image(self, msg: Image) -> None:
        try:
            gray = convert.gray_from_image(msg)
        except convert.InvalidMessage as exc:
            self._node.get_logger().warning(f"ignoring nav image: {exc}", throttle_duration_sec=5.0)
            return
        self._frames.append((convert.time_from_stamp(msg.header.stamp), gray))
        self._frames.sort(key=lambda f: f[0])
        del self._frames[:-MAX_WAITING_FRAMES]

    def _on_aux_image(self, msg: Image) -> None:
        self._aux.append((convert.time_from_stamp(msg.header.stamp), msg))
        self._aux.sort(key=lambda f: f[0])
        del self._aux[:-MAX_WAITING_FRAMES]

    def _process_aux(self, stamp: float, msg: Image) -> None:
        if not self.localizer.needs_aux_frame(stamp):
            return
        try:
            gray = convert.gray_from_image(msg)
        except convert.InvalidMessage as exc:
            self._node.get_logger().warning(f"ignoring main camera image: {exc}", throttle_duration_sec=5.0)
            return
        for o in self.localizer.add_aux_frame(stamp, gray):
            if o.status in ACCEPTED:
                self._markers, self._features = 0, self.localizer.aux.last.n_inliers

    def _process(self, stamp: float, gray: Any) -> None:
        for o in self.localizer.add_nav_frame(stamp, gray):
            if o.status in ACCEPTED:
                self._markers = o.n_markers
                self._features = self.localizer.features.last.n_inliers if o.source == "features" else 0

    def health_msg(self) -> LocalizationHealth:
        """LocalizationHealth at the last IMU stamp."""
        std_p = std_a = math.nan
        if self._cov is not None:
            std_p = math.sqrt(max(self._cov[:3, :3].trace(), 0.0))
            std_a = math.sqrt(max(self._cov[3:, 3:].trace(), 0.0))
        eskf = self.localizer.eskf
        return convert.health_msg(
            self._t,
            self._health,
            initialised=self._initialised,
            markers_used=self._markers,
            features_used=self._features,
            position_std=std_p,
            attitude_std=std_a,
            time_since_update=self._t - eskf.core.last_update_t,
            rejected=eskf.n_rejected,
        )
