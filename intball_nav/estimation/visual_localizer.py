"""Visual-inertial localization pipeline (ROS-free) and its loss-of-localization response.

``VisualLocalizer`` ties the vision front ends to the ESKF (:mod:`intball_nav.estimation.eskf`):

- ``add_imu(t, gyro, accel)``: 100 Hz IMU samples, straight into the filter;
- ``add_nav_frame(stamp, gray_left, gray_right=None)``: one navigation frame, called when the
  frame has been *delivered* (the filter may already be ahead of ``stamp``: image processing lags;
  the ESKF inserts the pose at its capture time and replays the IMU since then). Sources, in
  order:

  1. fiducial markers (``MarkerLocalizer``): used alone when at least
     ``params.min_markers`` markers agree;
  2. natural features (an optional ``FeatureLocalizer``-like object with
     ``localize(gray, stamp, prior, prior_covariance) -> PoseMeasurement | None``), tried when the
     markers gave fewer than ``min_markers``; the prior is the filter's estimate at ``stamp``, its
     covariance the filter's newest (an upper bound at ``stamp``: it lets tracking skip its wide
     pass when the prediction is tight);
  3. stereo geometry (an optional ``IcpLocalizer``-like object with
     ``refine(points_cam, prior, stamp) -> PoseMeasurement | None``), tried when neither gave a
     pose and a right image is given, with the stereo points of ``intball_nav.vision.stereo``;
  4. a pose from fewer than ``min_markers`` markers (one marker) when nothing else worked.

  It returns the outcomes (source, filter result, marker count, processing cost);
- ``add_aux_frame(stamp, gray)``: a frame of a second camera with its own natural-feature
  localizer (``aux_localizer``: the robot's front main camera, which looks the other way than the
  rear nav cameras), used only while the nav camera gives no pose (``needs_aux_frame``: before the
  first fix, or no nav pose fused for ``aux_after_s``). Near a wall the nav camera sees a blurred
  patch of one rack from a few cm; the main camera then usually sees the module;
- ``estimate(t) -> (RigidBodyState | None, covariance (6,6), HealthStatus)``: the filter's
  estimate propagated to t with the last IMU sample, its pose covariance ``[dp m kibo, dtheta rad
  body]`` and the health (ok / degraded / lost). None before the first good visual pose.

Loss of localization (``GuardState`` / ``guard_step``, pure): the response of the control loop
to the health, in the modes

- ``initialising``: no estimate yet; fans at zero, mission paused;
- ``nominal``: the mission runs on the estimate;
- ``braking``: health became ``lost``: the fans brake the filter's IMU-propagated velocity and
  body rate (``brake_command``) for at most ``brake_max_s`` or until the estimate is at rest;
- ``searching`` (opt-in, ``GuardParams.search_rate > 0``): after braking, turn in place about
  the body z axis (``search_command``: gyro rate control, no force) until health is ``ok``,
  for at most ``search_max_s``; then ``safe``;
- ``safe``: fans at zero (the propulsion safe state), mission paused;
- ``recovering``: health is ``ok`` again: station-keep the current estimated pose for
  ``recover_hold_s``, then back to ``nominal`` (the caller re-plans to its current goal).

Every transition is an event (time, from, to, reason) for the run summary.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from intball_nav.allocation import allocate
from intball_nav.dynamics import RigidBodyState
from intball_nav.estimation.eskf import Eskf, EskfParams, PoseObservation
from intball_nav.estimation.health import LOSS_RESPONSES, HealthLevel, HealthStatus
from intball_nav.frames import Pose, rotmat_from_quat
from intball_nav.robot import RobotParams

MODE_VISION = "vision"
"""Localization mode name: this pipeline closes the control loop (``intball sim --localization``)."""
SOURCES = ("markers", "features", "icp", "single_marker", "aux_features")
"""Names of the measurement sources, in the order they are tried."""


class FrameLocalizer(Protocol):
    """A natural-feature localizer (``intball_nav.vision.feature_map.FeatureLocalizer``)."""

    def localize(
        self, gray: np.ndarray, stamp: float, prior: Pose | None = None, prior_covariance: Any = None
    ) -> Any: ...


class PointCloudLocalizer(Protocol):
    """A geometric refiner (``intball_nav.vision.geometry.IcpLocalizer``); ``prior`` is the
    camera pose T_kibo_cam, points in the camera optical frame."""

    def refine(self, points_cam: np.ndarray, prior: Pose, stamp: float) -> Any: ...


@dataclass(frozen=True)
class VisualLocalizerParams:
    """Pipeline parameters.

    eskf : filter parameters (IMU noise, gate, health thresholds)
    min_markers : markers needed to use a marker pose without trying the other sources
    single_marker : fall back to a pose from fewer markers when nothing else gave one
    features_can_initialise : a natural-feature pose may (re-)initialise the filter (an ICP pose
        never does)
    single_marker_init_std : (m, rad) a non-ambiguous pose from fewer than
        ``eskf.init_min_markers`` markers may (re-)initialise the filter when its position and
        attitude standard deviations (sqrt of the covariance block traces) are below these (e.g.
        the 0.10 m dock marker seen from the 0.30 m approach point, the mission start)
    stereo_baseline : m, distance of the right nav camera along the left one's optical x (ICP)
    history_s : s of estimates kept to give the feature localizer a prior at the image stamp
    aux_after_s : s without a fused nav-camera pose after which the auxiliary camera's frames are
        used (``add_aux_frame``); before the first fix they always are
    """

    eskf: EskfParams = field(default_factory=EskfParams)
    min_markers: int = 2
    single_marker: bool = True
    features_can_initialise: bool = True
    single_marker_init_std: tuple[float, float] = (0.01, math.radians(1.0))
    stereo_baseline: float = 0.05
    history_s: float = 2.0
    aux_after_s: float = 0.3

    def __post_init__(self) -> None:
        if self.min_markers < 1:
            raise ValueError(f"VisualLocalizerParams.min_markers must be >= 1, got {self.min_markers}")
        if not self.stereo_baseline > 0.0:
            raise ValueError(f"VisualLocalizerParams.stereo_baseline must be > 0, got {self.stereo_baseline}")
        if not self.history_s > 0.0:
            raise ValueError(f"VisualLocalizerParams.history_s must be > 0, got {self.history_s}")


@dataclass(frozen=True)
class MeasurementOutcome:
    """What one source made of one frame.

    stamp : s, capture time; source : one of ``SOURCES``; status : the filter's verdict
    (``initialised``, ``accepted``, ``rejected``, ``not_initialised``, ``too_old``) or
    ``no_pose`` (the source found nothing); n_markers : markers in the pose (0 for other
    sources); mahalanobis2 : gate statistic (nan if not computed); cost_s : CPU time of this
    frame's detection, pose and filter update (the same value on every outcome of a frame).
    """

    stamp: float
    source: str
    status: str
    n_markers: int = 0
    mahalanobis2: float = math.nan
    cost_s: float = 0.0


class VisualLocalizer:
    """Markers first, natural features and stereo geometry when available, fused by the ESKF.

    marker_localizer : ``intball_nav.vision.markers.MarkerLocalizer`` of the left nav camera
    feature_localizer : optional natural-feature localizer (``FrameLocalizer``)
    icp_localizer : optional point-cloud refiner (``PointCloudLocalizer``)
    aux_localizer : optional natural-feature localizer of a second camera (``add_aux_frame``)
    """

    def __init__(
        self,
        params: VisualLocalizerParams | None,
        marker_localizer: Any,
        feature_localizer: FrameLocalizer | None = None,
        icp_localizer: PointCloudLocalizer | None = None,
        aux_localizer: FrameLocalizer | None = None,
    ) -> None:
        self.params = params if params is not None else VisualLocalizerParams()
        self.markers = marker_localizer
        self.features = feature_localizer
        self.icp = icp_localizer
        self.aux = aux_localizer
        self._last_nav_fix = -math.inf  # stamp of the last fused nav-camera pose
        self.eskf = Eskf(self.params.eskf)
        self.frame_costs: list[float] = []  # s CPU per nav frame
        self.aux_costs: list[float] = []  # s CPU per auxiliary frame used
        self.counts: dict[str, dict[str, int]] = {}
        self._hist_t: list[float] = []
        self._hist_pose: list[Pose] = []

    # ------------------------------------------------------------------ inputs
    def add_imu(self, t: float, gyro: np.ndarray, accel: np.ndarray) -> None:
        """One IMU sample: t (s), gyro (3,) rad/s body, accel (3,) m/s^2 body specific force."""
        nav = self.eskf.add_imu(t, gyro, accel)
        if nav is not None:
            self._hist_t.append(nav.t)
            self._hist_pose.append(nav.pose)
            horizon = nav.t - self.params.history_s
            n = bisect_right(self._hist_t, horizon)
            if n > 64:
                del self._hist_t[:n], self._hist_pose[:n]

    def set_prior(self, stamp: float, T_kibo_base: Pose, covariance: np.ndarray) -> str:
        """Initialise the filter from an external prior (e.g. the commanded start pose).

        covariance : (6,6) [dp m kibo, dtheta rad body]. A wrong but confident prior is caught by
        the gate: the visual poses it rejects make the filter ``lost`` and it re-initialises from
        the next good visual pose. Returns the filter's verdict."""
        return self.eskf.add_pose(PoseObservation(float(stamp), T_kibo_base, np.asarray(covariance))).status

    def add_nav_frame(
        self, stamp: float, gray_left: np.ndarray, gray_right: np.ndarray | None = None
    ) -> list[MeasurementOutcome]:
        """Process one navigation frame captured at ``stamp`` (s): gray_left (H,W) uint8 from the
        left nav camera (the markers' camera model), gray_right optional (stereo, for ICP)."""
        c0 = time.thread_time()
        p = self.params
        out: list[tuple[str, str, int, float]] = []
        meas = self.markers.localize(gray_left, stamp)
        n_markers = 0 if meas is None else meas.n_markers
        fused = False
        if meas is not None and n_markers >= p.min_markers:
            out.append(self._fuse("markers", meas, n_markers))
            fused = True
        else:
            out.append(("markers", "no_pose", n_markers, math.nan))
        if not fused and self.features is not None:
            fm = self.features.localize(gray_left, stamp, self._prior_at(stamp), self._prior_covariance())
            if fm is None:
                out.append(("features", "no_pose", 0, math.nan))
            else:
                out.append(self._fuse("features", fm, 0))
                fused = out[-1][1] in ("accepted", "initialised")
        if not fused and self.icp is not None and gray_right is not None:
            prior = self._prior_at(stamp)
            if prior is not None:
                pts = self._stereo_points(gray_left, gray_right)
                T_kibo_cam = prior.compose(self.markers.T_base_cam)
                im = self.icp.refine(pts, T_kibo_cam, stamp) if len(pts) else None
                if im is None:
                    out.append(("icp", "no_pose", 0, math.nan))
                else:
                    out.append(self._fuse("icp", im, 0))
                    fused = out[-1][1] in ("accepted", "initialised")
        if not fused and meas is not None and 0 < n_markers < p.min_markers and p.single_marker:
            out.append(self._fuse("single_marker", meas, n_markers))
            fused = out[-1][1] in ("accepted", "initialised")
        if fused:
            self._last_nav_fix = max(self._last_nav_fix, float(stamp))
        return self._outcomes(stamp, out, c0, self.frame_costs)

    def needs_aux_frame(self, stamp: float) -> bool:
        """Whether ``add_aux_frame`` would use a frame captured at ``stamp`` (s): an auxiliary
        localizer is set and the nav camera has given no pose yet, or none for ``aux_after_s``.
        Callers may skip rendering or converting the auxiliary image otherwise."""
        if self.aux is None:
            return False
        return not self.initialised or stamp - self._last_nav_fix > self.params.aux_after_s

    def add_aux_frame(self, stamp: float, gray: np.ndarray) -> list[MeasurementOutcome]:
        """Process a frame of the auxiliary camera captured at ``stamp`` (s), gray (H,W) uint8, when
        ``needs_aux_frame(stamp)``; else do nothing and return []. An image larger than the auxiliary
        localizer's model (``width`` x ``height``, e.g. the 640x480 main camera for a 320x240 model of
        it, ``camera_geometry.resized_camera``) is resized to it. Natural features only, with the
        filter's pose as the prior (relocalization before the first fix); its pose may initialise
        the filter like a nav-camera feature pose."""
        if not self.needs_aux_frame(stamp):
            return []
        c0 = time.thread_time()
        aux: Any = self.aux
        size = (int(aux.width), int(aux.height))
        if gray.shape[1::-1] != size:
            import cv2  # noqa: PLC0415

            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        fm = aux.localize(gray, stamp, self._prior_at(stamp), self._prior_covariance())
        out = [("aux_features", "no_pose", 0, math.nan) if fm is None else self._fuse("aux_features", fm, 0)]
        return self._outcomes(stamp, out, c0, self.aux_costs)

    def _outcomes(
        self, stamp: float, out: list[tuple[str, str, int, float]], c0: float, costs: list[float]
    ) -> list[MeasurementOutcome]:
        cost = time.thread_time() - c0
        costs.append(cost)
        result = []
        for source, status, n, d2 in out:
            self.counts.setdefault(source, {})
            self.counts[source][status] = self.counts[source].get(status, 0) + 1
            result.append(MeasurementOutcome(float(stamp), source, status, n, d2, cost))
        return result

    def _fuse(self, source: str, meas: Any, n_markers: int) -> tuple[str, str, int, float]:
        if source in ("features", "aux_features", "icp"):
            # ICP never (re-)initialises: it only refines a prior and can slide along the module
            can_init = source != "icp" and self.params.features_can_initialise
            init_quality = self.params.eskf.init_min_markers if can_init else 0
            meas = PoseObservation(
                float(meas.stamp), meas.T_kibo_base, np.asarray(meas.covariance), init_quality, False
            )
        elif source == "single_marker" and not meas.ambiguous:
            cov = np.asarray(meas.covariance)
            std_p, std_a = self.params.single_marker_init_std
            if np.trace(cov[:3, :3]) < std_p**2 and np.trace(cov[3:, 3:]) < std_a**2:
                meas = PoseObservation(
                    float(meas.stamp),
                    meas.T_kibo_base,
                    cov,
                    max(n_markers, self.params.eskf.init_min_markers),
                )
        r = self.eskf.add_pose(meas)
        return source, r.status, n_markers, r.mahalanobis2

    def _prior_at(self, stamp: float) -> Pose | None:
        """The filter's pose at (or just before) stamp, from the recent history."""
        if not self._hist_t:
            return None
        i = bisect_right(self._hist_t, stamp) - 1
        return self._hist_pose[max(i, 0)]

    def _prior_covariance(self) -> np.ndarray | None:
        """(6,6) pose covariance of the filter's newest state, None before it has one: an upper
        bound of the covariance at an earlier image stamp (it grows between visual updates)."""
        nav = self.eskf.core.nav
        return None if nav is None else nav.pose_covariance

    def _stereo_points(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """(N,3) m, left optical frame: points of the rectified stereo pair (semi-global matching
        of ``intball_nav.vision.stereo``)."""
        from intball_nav.vision.stereo import cloud_from_depth, depth_from_stereo  # noqa: PLC0415

        depth = depth_from_stereo(left, right, self.markers, self.params.stereo_baseline)
        return cloud_from_depth(depth, self.markers)

    # ------------------------------------------------------------------ outputs
    @property
    def initialised(self) -> bool:
        return self.eskf.state is not None

    def estimate(self, t: float) -> tuple[RigidBodyState | None, np.ndarray | None, HealthStatus]:
        """(state at t, pose covariance (6,6) [dp m kibo, dtheta rad body], health); the state and
        covariance are None before the filter has initialised."""
        nav = self.eskf.predict(t)
        health = self.eskf.health_at(t)
        if nav is None:
            return None, None, health
        state = RigidBodyState._trusted(
            nav.position.copy(), nav.quat.copy(), nav.velocity.copy(), nav.omega.copy()
        )
        return state, nav.pose_covariance, health

    def stats(self) -> dict[str, Any]:
        """Counters and per-frame cost (ms CPU) for summaries: nav frames, and the auxiliary
        camera's frames that were used (``aux_frames``, ``aux_frame_cost_ms``)."""

        def cost(costs: list[float]) -> dict[str, float | None]:
            c = np.array(costs) * 1e3
            return {
                "median": float(np.median(c)) if c.size else None,
                "p90": float(np.percentile(c, 90)) if c.size else None,
                "max": float(c.max()) if c.size else None,
            }

        return {
            "frames": len(self.frame_costs),
            "frame_cost_ms": cost(self.frame_costs),
            "aux_frames": len(self.aux_costs),
            "aux_frame_cost_ms": cost(self.aux_costs),
            "outcomes": self.counts,
            "filter": {
                "accepted": self.eskf.n_accepted,
                "rejected": self.eskf.n_rejected,
                "too_old": self.eskf.n_too_old,
                "replays": self.eskf.n_replays,
            },
        }


# ============================================================================ loss response
GUARD_MODES = ("initialising", "nominal", "braking", "searching", "safe", "recovering")


@dataclass(frozen=True)
class GuardParams:
    """Loss-of-localization response.

    brake_max_s : s, longest braking before the fans go to the safe state
    brake_gain : 1/s, commanded deceleration = -brake_gain * estimated velocity
    brake_rate_gain : 1/s, commanded angular deceleration = -brake_rate_gain * estimated body rate
    rest_speed : m/s and rest_rate : rad/s below which braking ends early
    recover_hold_s : s, station-keeping of the current pose after recovery before resuming
    search_rate : rad/s, opt-in active search: once braked, turn in place about the body z axis
        at this rate (rate control on the gyro-based body rate only; no force, because the
        IMU-only velocity drifts) until a view brings localization back, for at most
        ``search_max_s``; 0 (default) = stop and hold with the fans off, as issue #4 asks
    search_max_s : s, longest search before the fans go to the safe state
    """

    brake_max_s: float = 3.0
    brake_gain: float = 1.5
    brake_rate_gain: float = 2.0
    rest_speed: float = 0.005
    rest_rate: float = math.radians(0.5)
    recover_hold_s: float = 3.0
    search_rate: float = 0.0
    search_max_s: float = 40.0

    def __post_init__(self) -> None:
        for name in ("brake_max_s", "brake_gain", "brake_rate_gain", "rest_speed", "rest_rate"):
            if not getattr(self, name) > 0.0:
                raise ValueError(f"GuardParams.{name} must be > 0, got {getattr(self, name)}")
        if self.recover_hold_s < 0.0:
            raise ValueError(f"GuardParams.recover_hold_s must be >= 0, got {self.recover_hold_s}")
        if not (0.0 <= self.search_rate <= math.radians(30.0) and self.search_max_s > 0.0):
            raise ValueError(
                f"GuardParams.search_rate must be in [0, 30 deg/s] and search_max_s > 0, got "
                f"{self.search_rate} rad/s, {self.search_max_s} s"
            )


SEARCH_RATE = math.radians(10.0)
"""rad/s, turn rate of the ``search`` response (the competition's vision mode uses the same)."""
SEARCH_MAX_S = 40.0
"""s, longest search of the ``search`` response before the fans go off."""


def loss_response_params(
    response: str, search_rate: float = SEARCH_RATE, search_max_s: float = SEARCH_MAX_S
) -> GuardParams:
    """``GuardParams`` of a named loss response (one of ``LOSS_RESPONSES``); search_rate rad/s and
    search_max_s s apply to ``search`` only. Raises ValueError naming the allowed values."""
    if response == "hold":
        return GuardParams()
    if response == "search":
        return GuardParams(search_rate=float(search_rate), search_max_s=float(search_max_s))
    raise ValueError(f"loss response must be one of {', '.join(LOSS_RESPONSES)}, got {response!r}")


@dataclass(frozen=True)
class GuardEvent:
    """A mode change: t (s), from_mode, to_mode, reason (the health reason)."""

    t: float
    from_mode: str
    to_mode: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"t_s": self.t, "from": self.from_mode, "to": self.to_mode, "reason": self.reason}


@dataclass(frozen=True)
class GuardState:
    """mode : one of ``GUARD_MODES``; since : s, time of the last change; events : history."""

    mode: str = "initialising"
    since: float = 0.0
    events: tuple[GuardEvent, ...] = ()

    @property
    def paused(self) -> bool:
        """The mission does not progress (every mode but ``nominal``)."""
        return self.mode != "nominal"

    @property
    def gnc_active(self) -> bool:
        """The GNC loop commands the fans (``nominal`` and ``recovering``)."""
        return self.mode in ("nominal", "recovering")


def _to(g: GuardState, mode: str, t: float, reason: str) -> GuardState:
    return GuardState(mode, t, (*g.events, GuardEvent(t, g.mode, mode, reason)))


def guard_step(
    g: GuardState, t: float, estimate: RigidBodyState | None, health: HealthStatus, params: GuardParams
) -> GuardState:
    """Next response mode at time t (s) from the estimate (None before initialisation) and the
    filter health (module docstring). Pure."""
    level = health.level
    if g.mode == "initialising":
        if estimate is not None and level < HealthLevel.LOST:
            return _to(g, "nominal", t, f"initialised ({health.reason})")
        return g
    if level == HealthLevel.LOST and g.mode in ("nominal", "recovering"):
        return _to(g, "braking", t, health.reason)
    if g.mode == "braking":
        if level == HealthLevel.OK:
            return _to(g, "recovering", t, "localization ok again")
        at_rest = estimate is not None and (
            float(np.linalg.norm(estimate.velocity)) < params.rest_speed
            and float(np.linalg.norm(estimate.omega)) < params.rest_rate
        )
        if at_rest or t - g.since >= params.brake_max_s:
            why = "estimated at rest" if at_rest else f"braked for {params.brake_max_s:g} s"
            if params.search_rate > 0.0:
                deg = math.degrees(params.search_rate)
                return _to(g, "searching", t, f"{why}; turning in place at {deg:g} deg/s to find a view")
            return _to(g, "safe", t, f"{why}; fans off")
        return g
    if g.mode == "searching":
        if level == HealthLevel.OK:
            return _to(g, "recovering", t, "localization ok again")
        if t - g.since >= params.search_max_s:
            return _to(g, "safe", t, f"searched {params.search_max_s:g} s without a fix; fans off")
        return g
    if g.mode == "safe":
        if level == HealthLevel.OK:
            return _to(g, "recovering", t, "localization ok again")
        return g
    if g.mode == "recovering" and t - g.since >= params.recover_hold_s:
        return _to(g, "nominal", t, f"held {params.recover_hold_s:g} s; resuming")
    return g


def brake_command(estimate: RigidBodyState, robot: RobotParams, params: GuardParams) -> np.ndarray:
    """Fan thrusts (8,) N that decelerate the estimated velocity and body rate (no pose target)."""
    R = rotmat_from_quat(estimate.quat)
    force_body = -robot.mass * params.brake_gain * (R.T @ estimate.velocity)
    torque = -params.brake_rate_gain * (np.asarray(robot.inertia) @ estimate.omega)
    return allocate(np.concatenate([force_body, torque]), robot).thrust


def guard_fans(
    g: GuardState, estimate: RigidBodyState | None, robot: RobotParams, params: GuardParams
) -> np.ndarray | None:
    """Fan command (8,) N of the response when GNC is not active (None when it is): braking
    from the estimate, else the safe state (every fan at its minimum, zero)."""
    if g.gnc_active:
        return None
    if g.mode == "braking" and estimate is not None:
        return brake_command(estimate, robot, params)
    if g.mode == "searching" and estimate is not None:
        return search_command(estimate, robot, params)
    return np.full(8, robot.fan_min)


def search_command(estimate: RigidBodyState, robot: RobotParams, params: GuardParams) -> np.ndarray:
    """Fan thrusts (8,) N that turn the robot about its body z axis at ``search_rate``: body-rate
    control only (the gyro-based rate stays good while lost), zero commanded force."""
    rate_error = np.array([0.0, 0.0, params.search_rate]) - estimate.omega
    torque = params.brake_rate_gain * (np.asarray(robot.inertia) @ rate_error)
    return allocate(np.concatenate([np.zeros(3), torque]), robot).thrust


def guard_summary(g: GuardState) -> dict[str, Any]:
    """Events and the intervals lost (from ``braking`` to ``recovering``) for a run summary."""
    intervals: list[dict[str, float | None]] = []
    start: float | None = None
    for e in g.events:
        if e.to_mode == "braking":
            start = e.t
        elif e.to_mode == "recovering" and start is not None:
            intervals.append({"lost_s": start, "recovered_s": e.t, "duration_s": e.t - start})
            start = None
    if start is not None:
        intervals.append({"lost_s": start, "recovered_s": None, "duration_s": None})
    init = next((e.t for e in g.events if e.from_mode == "initialising"), None)
    return {
        "final_mode": g.mode,
        "initialised_s": init,
        "losses": intervals,
        "events": [e.as_dict() for e in g.events],
    }
