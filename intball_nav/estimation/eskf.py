"""Error-state Kalman filter on SO(3): 100 Hz IMU + delayed visual poses.

State
-----
Nominal (``NavState``): position ``p`` (3,) m kibo, velocity ``v`` (3,) m/s kibo, attitude
``q_kibo_body`` (4,) xyzw, gyro bias ``b_g`` (3,) rad/s body, accel bias ``b_a`` (3,) m/s^2 body.
Error state (15,): ``[dp (0:3) m kibo, dv (3:6) m/s kibo, dtheta (6:9) rad body, db_g (9:12),
db_a (12:15)]`` with the *local* attitude error ``q_true = q (x) Exp(dtheta)`` (Sola, "Quaternion
kinematics for the error-state Kalman filter", 2017, sec. 5-7). ``NavState.covariance`` is the
(15,15) covariance of that error state.

Process model (microgravity: the accelerometer measures the non-gravitational specific force
only, so there is no gravity term; the IMU is at the centre of mass, axes = base_link)::

    omega = gyro - b_g            a_kibo = R(q) (accel - b_a)
    p += v dt + a_kibo dt^2 / 2   v += a_kibo dt     q = q (x) Exp(omega dt)
    b_g, b_a: random walks

Each IMU sample at time ``t_k`` holds over the interval ``(t_{k-1}, t_k]`` that it measures
(the simulator's IMU averages over the preceding step); propagation to a measurement time inside
that interval uses sample ``k``. Steps longer than ``max_step`` (IMU gaps) are split. Discrete
process noise: ``sigma^2 dt`` per step from the continuous densities in ``EskfParams``
(same units as ``intball_nav/data/imu.yaml``).

Visual update
-------------
A pose of base_link in kibo with a (6,6) covariance ``[dp m kibo, dtheta rad body]`` (the
convention of ``intball_nav.vision.markers.PoseMeasurement.covariance``). Residual
``[p_meas - p, Log(q^-1 (x) q_meas)]``, ``H = [I 0 0 0 0; 0 0 I 0 0]``, Joseph-form update,
error injection and the reset Jacobian ``G = I - skew(dtheta / 2)`` on the attitude block.
Mahalanobis gating: a measurement with ``r^T S^-1 r > chi2.ppf(gate_probability, 6)`` is
rejected and counted.

Delayed and out-of-order measurements
-------------------------------------
The filter keeps a time-ordered buffer of the last ``buffer_duration`` s of events (IMU samples
and visual poses) with a snapshot of the complete filter state after each one. A visual pose
with an older timestamp than the newest event is inserted at its time, the filter is restored
from the snapshot before it and all later events (IMU samples *and* later visual poses) are
re-processed in time order. An IMU sample that arrives after a visual pose it covers triggers the
same replay from that pose, so the result never depends on the arrival order: it equals
processing all inputs sorted by timestamp (ties: IMU first). Poses older than the buffer are
dropped and counted (``too_old``). Cost: one replay re-propagates the IMU samples since the
measurement (a 60 ms image lag re-runs 6 propagation steps: ~0.5 ms per update in
bench/bench_loc_frame.py).

Initialisation and health
-------------------------
The first pose with at least ``init_min_markers`` markers and no planar ambiguity initialises
position and attitude (velocity zero with ``init_velocity_sigma``, biases zero with their
``init_*_bias_sigma``); until then the filter has no state and is ``lost``. Health
(``intball_nav.estimation.health``) is assessed after every event. If the filter is ``lost``
after ``HealthParams.lost_reject_streak`` rejections in a row (it has diverged), the next
initialisation-quality pose re-initialises position, attitude and velocity (biases kept).

Everything is deterministic: the same inputs give the same outputs.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.stats import chi2

from intball_nav.estimation.health import HealthInputs, HealthLevel, HealthParams, HealthStatus, assess_health
from intball_nav.frames import (
    Pose,
    quat_conjugate,
    quat_from_rotvec,
    quat_multiply,
    quat_normalize,
    rotmat_from_quat,
    rotvec_from_quat,
    skew,
)

POS, VEL, ATT, BG, BA = slice(0, 3), slice(3, 6), slice(6, 9), slice(9, 12), slice(12, 15)
_POSE_IDX = np.r_[0:3, 6:9]


@dataclass(frozen=True)
class EskfParams:
    """Filter parameters.

    gyro_noise_density : rad/s/sqrt(Hz); accel_noise_density : m/s^2/sqrt(Hz)
    gyro_bias_walk : rad/s^2/sqrt(Hz); accel_bias_walk : m/s^3/sqrt(Hz)
    init_gyro_bias_sigma : rad/s; init_accel_bias_sigma : m/s^2; init_velocity_sigma : m/s
    gate_probability : chi-square probability of the 6-DoF Mahalanobis gate (0.999 -> 22.46)
    buffer_duration : s of events kept for delayed measurements
    max_step : s, longest single propagation step (longer IMU gaps are split)
    init_min_markers : markers needed by the pose that (re-)initialises the filter
    """

    gyro_noise_density: float = 2.4e-4
    accel_noise_density: float = 1.7e-3
    gyro_bias_walk: float = 2.0e-5
    accel_bias_walk: float = 1.0e-4
    init_gyro_bias_sigma: float = 3.0e-3
    init_accel_bias_sigma: float = 3.0e-2
    init_velocity_sigma: float = 0.1
    gate_probability: float = 0.999
    buffer_duration: float = 1.0
    max_step: float = 0.02
    init_min_markers: int = 2
    health: HealthParams = field(default_factory=HealthParams)

    def __post_init__(self) -> None:
        for name in (
            "gyro_noise_density",
            "accel_noise_density",
            "gyro_bias_walk",
            "accel_bias_walk",
            "init_gyro_bias_sigma",
            "init_accel_bias_sigma",
            "init_velocity_sigma",
            "buffer_duration",
            "max_step",
        ):
            if not getattr(self, name) > 0.0:
                raise ValueError(f"EskfParams.{name} must be > 0, got {getattr(self, name)}")
        if not 0.5 < self.gate_probability < 1.0:
            raise ValueError(f"EskfParams.gate_probability must be in (0.5, 1), got {self.gate_probability}")
        if self.init_min_markers < 1:
            raise ValueError(f"EskfParams.init_min_markers must be >= 1, got {self.init_min_markers}")

    @property
    def gate_threshold(self) -> float:
        """Mahalanobis distance squared above which a 6-DoF pose is rejected."""
        return float(chi2.ppf(self.gate_probability, 6))

    @staticmethod
    def from_imu(imu_params: object, **overrides: object) -> EskfParams:
        """Noise densities from an ``intball_sim.imu.ImuParams``-like object (``gyro`` / ``accel``
        with ``noise_density``, ``bias_random_walk``, ``turn_on_bias_sigma``); 1.5x the turn-on
        sigma as the initial bias uncertainty."""
        g, a = imu_params.gyro, imu_params.accel  # type: ignore[attr-defined]
        kw: dict[str, object] = {
            "gyro_noise_density": max(g.noise_density, 1e-9),
            "accel_noise_density": max(a.noise_density, 1e-9),
            "gyro_bias_walk": max(g.bias_random_walk, 1e-9),
            "accel_bias_walk": max(a.bias_random_walk, 1e-9),
            "init_gyro_bias_sigma": max(1.5 * g.turn_on_bias_sigma, 1e-6),
            "init_accel_bias_sigma": max(1.5 * a.turn_on_bias_sigma, 1e-5),
        }
        kw.update(overrides)
        return EskfParams(**kw)  # type: ignore[arg-type]


@dataclass(frozen=True)
class NavState:
    """Filter estimate at time t (s).

    position : (3,) m kibo; velocity : (3,) m/s kibo; quat : (4,) xyzw q_kibo_body;
    omega : (3,) rad/s body (bias-corrected rate of the IMU sample in use);
    gyro_bias : (3,) rad/s body; accel_bias : (3,) m/s^2 body;
    covariance : (15,15) of the error state (module docstring order).
    """

    t: float
    position: np.ndarray
    velocity: np.ndarray
    quat: np.ndarray
    omega: np.ndarray
    gyro_bias: np.ndarray
    accel_bias: np.ndarray
    covariance: np.ndarray

    @property
    def pose(self) -> Pose:
        """T_kibo_base."""
        return Pose(self.position, self.quat)

    @property
    def pose_covariance(self) -> np.ndarray:
        """(6,6) [dp m kibo, dtheta rad body] block of the covariance."""
        return self.covariance[np.ix_(_POSE_IDX, _POSE_IDX)]


@dataclass(frozen=True)
class PoseObservation:
    """A visual pose of base_link: stamp (s), T_kibo_base, covariance (6,6) [dp m kibo, dtheta
    rad body]. ``PoseMeasurement`` from ``intball_nav.vision.markers`` has the same fields."""

    stamp: float
    T_kibo_base: Pose
    covariance: np.ndarray
    n_markers: int = 99
    ambiguous: bool = False


@dataclass(frozen=True)
class UpdateResult:
    """Outcome of a visual update: ``status`` is one of ``initialised``, ``accepted``,
    ``rejected`` (gate), ``not_initialised`` (not good enough to initialise), ``too_old``.
    mahalanobis2 : r^T S^-1 r (nan when not computed)."""

    status: str
    mahalanobis2: float = math.nan


@dataclass(frozen=True)
class _Imu:
    t: float
    gyro: np.ndarray
    accel: np.ndarray


@dataclass(frozen=True)
class _Core:
    """Everything the filter carries from one event to the next (snapshotted per event)."""

    t: float
    nav: NavState | None
    imu: _Imu | None
    health: HealthStatus
    last_update_t: float
    accept_streak: int
    reject_streak: int
    n_accepted: int
    n_rejected: int
    result: UpdateResult | None = None


@dataclass(frozen=True)
class _Event:
    t: float
    kind: int  # 0 imu, 1 pose (IMU first at equal times)
    seq: int
    payload: object

    @property
    def key(self) -> tuple[float, int, int]:
        return (self.t, self.kind, self.seq)


def propagate(nav: NavState, gyro: np.ndarray, accel: np.ndarray, t: float, params: EskfParams) -> NavState:
    """Nominal state and covariance propagated from nav.t to t (s) with constant IMU readings
    gyro : (3,) rad/s body and accel : (3,) m/s^2 body (specific force). Pure."""
    total = t - nav.t
    if total <= 0.0:
        return nav
    n = max(1, math.ceil(total / params.max_step - 1e-9))
    dt = total / n
    p, v, q, P = nav.position, nav.velocity, nav.quat, nav.covariance
    w = np.asarray(gyro, dtype=float) - nav.gyro_bias
    a_b = np.asarray(accel, dtype=float) - nav.accel_bias
    dq = quat_from_rotvec(w * dt)
    R_step_T = rotmat_from_quat(dq).T
    Sa = skew(a_b)
    Q = np.zeros(15)
    Q[VEL] = params.accel_noise_density**2 * dt
    Q[ATT] = params.gyro_noise_density**2 * dt
    Q[BG] = params.gyro_bias_walk**2 * dt
    Q[BA] = params.accel_bias_walk**2 * dt
    F = np.eye(15)
    F[POS, VEL] = np.eye(3) * dt
    F[ATT, ATT] = R_step_T
    F[ATT, BG] = -np.eye(3) * dt
    for _ in range(n):
        R = rotmat_from_quat(q)
        a_w = R @ a_b
        p = p + v * dt + 0.5 * dt * dt * a_w
        v = v + a_w * dt
        q = quat_normalize(quat_multiply(q, dq))
        F[VEL, ATT] = -R @ Sa * dt
        F[VEL, BA] = -R * dt
        P = F @ P @ F.T
        P[np.diag_indices(15)] += Q
    P = 0.5 * (P + P.T)
    return replace(nav, t=t, position=p, velocity=v, quat=q, omega=w, covariance=P)


def pose_update(
    nav: NavState, T_kibo_base: Pose, covariance: np.ndarray, gate: float
) -> tuple[NavState | None, float]:
    """ESKF update with a base_link pose (covariance (6,6) [dp m kibo, dtheta rad body]).
    Returns (updated state, or None if the Mahalanobis distance squared exceeds gate; d^2)."""
    P = nav.covariance
    r = np.concatenate(
        [
            T_kibo_base.position - nav.position,
            rotvec_from_quat(quat_multiply(quat_conjugate(nav.quat), T_kibo_base.quat)),
        ]
    )
    PHt = P[:, _POSE_IDX]
    S = PHt[_POSE_IDX, :] + np.asarray(covariance, dtype=float)
    S = 0.5 * (S + S.T)
    try:
        c = np.linalg.cholesky(S)
    except np.linalg.LinAlgError:
        return None, math.inf
    y = np.linalg.solve(c, r)
    d2 = float(y @ y)
    if d2 > gate:
        return None, d2
    K = np.linalg.solve(S, PHt.T).T  # (15,6) = P H^T S^-1
    dx = K @ r
    IKH = np.eye(15)
    IKH[:, _POSE_IDX] -= K
    P = IKH @ P @ IKH.T + K @ covariance @ K.T
    dth = dx[ATT]
    G = np.eye(15)
    G[ATT, ATT] = np.eye(3) - 0.5 * skew(dth)
    P = G @ P @ G.T
    P = 0.5 * (P + P.T)
    new = replace(
        nav,
        position=nav.position + dx[POS],
        velocity=nav.velocity + dx[VEL],
        quat=quat_normalize(quat_multiply(nav.quat, quat_from_rotvec(dth))),
        gyro_bias=nav.gyro_bias + dx[BG],
        accel_bias=nav.accel_bias + dx[BA],
        omega=nav.omega - dx[BG],
        covariance=P,
    )
    return new, d2


class Eskf:
    """Visual-inertial ESKF with a replay buffer for delayed measurements (module docstring).

    Feed ``add_imu`` (100 Hz) and ``add_pose`` (visual poses, any lag within
    ``params.buffer_duration``); read ``state`` (latest estimate, at the newest event time),
    ``predict(t)`` (estimate extrapolated to t with the last IMU sample), ``health`` and the
    counters ``n_accepted``, ``n_rejected``, ``n_too_old``.
    """

    def __init__(self, params: EskfParams | None = None) -> None:
        self.params = params if params is not None else EskfParams()
        self._gate = self.params.gate_threshold
        self._events: list[_Event] = []
        self._keys: list[tuple[float, int, int]] = []
        self._snaps: list[_Core] = []
        self._base = _Core(-math.inf, None, None, HealthStatus(), -math.inf, 0, 0, 0, 0)
        self._seq = 0
        self.n_too_old = 0
        self.n_replays = 0

    # ------------------------------------------------------------------ public API
    @property
    def core(self) -> _Core:
        return self._snaps[-1] if self._snaps else self._base

    @property
    def state(self) -> NavState | None:
        """Latest estimate (None before initialisation)."""
        return self.core.nav

    @property
    def health(self) -> HealthStatus:
        return self.core.health

    @property
    def n_accepted(self) -> int:
        return self.core.n_accepted

    @property
    def n_rejected(self) -> int:
        return self.core.n_rejected

    def health_at(self, t: float) -> HealthStatus:
        """Health at time t (s) >= the newest event, e.g. when inputs stopped arriving (the filter
        assesses health only at events). Does not change the filter."""
        c = self.core
        nav = self.predict(t)
        return self._assess(c.health, nav, max(t, c.t), c.last_update_t, c.reject_streak, c.accept_streak)

    def predict(self, t: float) -> NavState | None:
        """Estimate at time t (s) >= the newest event, propagated with the last IMU sample."""
        c = self.core
        if c.nav is None or c.imu is None or t <= c.nav.t:
            return c.nav
        return propagate(c.nav, c.imu.gyro, c.imu.accel, t, self.params)

    def add_imu(self, t: float, gyro: np.ndarray, accel: np.ndarray) -> NavState | None:
        """One IMU sample: t (s), gyro (3,) rad/s body, accel (3,) m/s^2 body specific force.
        Returns the latest estimate."""
        ev = self._make_event(
            t, 0, _Imu(float(t), np.asarray(gyro, dtype=float), np.asarray(accel, dtype=float))
        )
        if ev is None:
            return self.state
        i = self._insert(ev)
        # replay also the poses just before this sample: they were propagated with a held sample
        while i > 0 and self._events[i - 1].kind == 1:
            i -= 1
        self._replay(i)
        self._prune()
        return self.state

    def add_pose(self, meas: object) -> UpdateResult:
        """A visual pose (``PoseMeasurement`` or ``PoseObservation``: fields ``stamp``,
        ``T_kibo_base``, ``covariance``, optional ``n_markers``, ``ambiguous``)."""
        obs = PoseObservation(
            float(meas.stamp),  # type: ignore[attr-defined]
            meas.T_kibo_base,  # type: ignore[attr-defined]
            np.asarray(meas.covariance, dtype=float),  # type: ignore[attr-defined]
            int(getattr(meas, "n_markers", 99)),
            bool(getattr(meas, "ambiguous", False)),
        )
        ev = self._make_event(obs.stamp, 1, obs)
        if ev is None:
            self.n_too_old += 1
            return UpdateResult("too_old")
        i = self._insert(ev)
        self._replay(i)
        result = self._snaps[self._keys.index(ev.key)].result if ev.key in self._keys else None
        self._prune()
        return result if result is not None else UpdateResult("too_old")

    # ------------------------------------------------------------------ event buffer
    def _make_event(self, t: float, kind: int, payload: object) -> _Event | None:
        if not math.isfinite(t) or t < self._base.t:
            return None
        self._seq += 1
        return _Event(float(t), kind, self._seq, payload)

    def _insert(self, ev: _Event) -> int:
        i = bisect.bisect_right(self._keys, ev.key)
        self._events.insert(i, ev)
        self._keys.insert(i, ev.key)
        self._snaps.insert(i, self._base)  # placeholder, recomputed by _replay
        if i < len(self._events) - 1:
            self.n_replays += 1
        return i

    def _replay(self, start: int) -> None:
        core = self._snaps[start - 1] if start > 0 else self._base
        for k in range(start, len(self._events)):
            core = self._process(core, k)
            self._snaps[k] = core

    def _prune(self) -> None:
        horizon = self._events[-1].t - self.params.buffer_duration if self._events else -math.inf
        n = 0
        while n < len(self._events) - 1 and self._events[n].t < horizon:
            n += 1
        if n:
            self._base = self._snaps[n - 1]
            del self._events[:n], self._keys[:n], self._snaps[:n]

    def _next_imu(self, k: int) -> _Imu | None:
        for ev in self._events[k + 1 :]:
            if ev.kind == 0:
                return ev.payload  # type: ignore[return-value]
        return None

    # ------------------------------------------------------------------ one event
    def _process(self, c: _Core, k: int) -> _Core:
        ev = self._events[k]
        p = self.params
        nav, result = c.nav, None
        accept, reject = c.accept_streak, c.reject_streak
        n_acc, n_rej, last_t = c.n_accepted, c.n_rejected, c.last_update_t
        new_imu: _Imu | None = c.imu
        if ev.kind == 0:
            imu: _Imu = ev.payload  # type: ignore[assignment]
            if nav is not None:
                nav = propagate(nav, imu.gyro, imu.accel, ev.t, p)
            new_imu = imu
        else:
            obs: PoseObservation = ev.payload  # type: ignore[assignment]
            held = self._next_imu(k) or c.imu
            if nav is not None and held is not None:
                nav = propagate(nav, held.gyro, held.accel, ev.t, p)
            init_ok = obs.n_markers >= p.init_min_markers and not obs.ambiguous
            diverged = c.health.level == HealthLevel.LOST and reject >= p.health.lost_reject_streak
            if nav is None or (diverged and init_ok):
                if init_ok:
                    nav = self._initial_state(obs, nav, held)
                    result = UpdateResult("initialised")
                    accept, reject, last_t = 1, 0, ev.t
                    n_acc += 1
                else:
                    result = UpdateResult("not_initialised")
            else:
                updated, d2 = pose_update(nav, obs.T_kibo_base, obs.covariance, self._gate)
                if updated is None:
                    result = UpdateResult("rejected", d2)
                    reject, accept = reject + 1, 0
                    n_rej += 1
                else:
                    nav = updated
                    result = UpdateResult("accepted", d2)
                    accept, reject, last_t = accept + 1, 0, ev.t
                    n_acc += 1
        health = self._assess(c.health, nav, ev.t, last_t, reject, accept)
        return _Core(ev.t, nav, new_imu, health, last_t, accept, reject, n_acc, n_rej, result)

    def _initial_state(self, obs: PoseObservation, prev: NavState | None, imu: _Imu | None) -> NavState:
        p = self.params
        P = np.zeros((15, 15))
        P[np.ix_(_POSE_IDX, _POSE_IDX)] = obs.covariance
        P[VEL, VEL] = np.eye(3) * p.init_velocity_sigma**2
        bg = prev.gyro_bias if prev is not None else np.zeros(3)
        ba = prev.accel_bias if prev is not None else np.zeros(3)
        if prev is not None:
            P[BG, BG] = prev.covariance[BG, BG]
            P[BA, BA] = prev.covariance[BA, BA]
        else:
            P[BG, BG] = np.eye(3) * p.init_gyro_bias_sigma**2
            P[BA, BA] = np.eye(3) * p.init_accel_bias_sigma**2
        omega = imu.gyro - bg if imu is not None else np.zeros(3)
        return NavState(
            obs.stamp,
            obs.T_kibo_base.position.copy(),
            np.zeros(3),
            obs.T_kibo_base.quat.copy(),
            omega,
            bg,
            ba,
            P,
        )

    def _assess(
        self, prev: HealthStatus, nav: NavState | None, t: float, last_t: float, reject: int, accept: int
    ) -> HealthStatus:
        if nav is None:
            inputs = HealthInputs(False, math.inf, math.inf, math.inf, reject, accept)
        else:
            P = nav.covariance
            inputs = HealthInputs(
                True,
                t - last_t,
                math.sqrt(max(np.trace(P[POS, POS]), 0.0)),
                math.sqrt(max(np.trace(P[ATT, ATT]), 0.0)),
                reject,
                accept,
            )
        return assess_health(prev, inputs, self.params.health)
