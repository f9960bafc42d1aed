"""Truth-plus-noise estimator: the named mode that lets ground truth reach the controller.

This is what the public Int-Ball2 simulator does instead of visual SLAM: it publishes the
ground truth plus white noise (position sigma ~0.85 mm, attitude ~0.01 deg). Here it is an
explicit, named localization mode, never a silent shortcut:

- ``"truth-noise"``: ground truth plus seeded white noise (``TruthNoiseParams()`` defaults).
- ``"truth"``: ground truth, no noise (``TruthNoiseParams.zero()``), for debugging control.

The core function :func:`truth_noise_estimate` is pure: it maps (truth, params, a vector
of standard-normal draws) to an estimate. :class:`TruthNoiseEstimator` owns a seeded
``numpy.random.Generator`` and feeds it, so a seed fixes the whole estimate sequence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from intball_nav.dynamics import RigidBodyState

MODE_TRUTH = "truth"
"""Localization mode name: ground truth, no noise."""
MODE_TRUTH_NOISE = "truth-noise"
"""Localization mode name: ground truth plus seeded white noise."""
MODES = (MODE_TRUTH, MODE_TRUTH_NOISE)

NOISE_DIM = 12
"""Number of standard-normal draws one estimate consumes: position, attitude, velocity, omega."""
_BATCH = 1024


@dataclass(frozen=True)
class TruthNoiseParams:
    """White-noise standard deviations, per axis.

    position_sigma : m, kibo frame
    attitude_sigma : rad, small rotation about each body axis
    velocity_sigma : m/s, kibo frame
    omega_sigma : rad/s, body frame
    """

    position_sigma: float = 0.85e-3
    attitude_sigma: float = math.radians(0.01)
    velocity_sigma: float = 0.5e-3
    omega_sigma: float = math.radians(0.02)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int | float) or not math.isfinite(value) or not 0.0 <= value <= 1.0:
                raise ValueError(f"TruthNoiseParams.{f.name} must be a number in [0, 1], got {value!r}")
            object.__setattr__(self, f.name, float(value))

    @classmethod
    def zero(cls) -> TruthNoiseParams:
        """No noise: the ``"truth"`` mode."""
        return cls(0.0, 0.0, 0.0, 0.0)

    @classmethod
    def for_mode(cls, mode: str) -> TruthNoiseParams:
        """Parameters of a named mode (``"truth"`` or ``"truth-noise"``)."""
        if mode == MODE_TRUTH:
            return cls.zero()
        if mode == MODE_TRUTH_NOISE:
            return cls()
        raise ValueError(f"unknown truth-based localization mode {mode!r}; allowed: {', '.join(MODES)}")


def truth_noise_estimate(
    truth: RigidBodyState, params: TruthNoiseParams, noise: np.ndarray
) -> RigidBodyState:
    """Estimate = truth + noise, a pure function.

    truth : ground-truth state (position kibo m, q_kibo_body, velocity kibo m/s, omega body rad/s)
    noise : (12,) standard-normal draws (position 0:3, attitude 3:6, velocity 6:9, omega 9:12)
    Returns the noisy state; the attitude is perturbed on the right (body frame):
    ``q_est = q_true * exp(attitude_sigma * noise[3:6])``.
    """
    n = np.asarray(noise, dtype=float)
    if n.shape != (NOISE_DIM,):
        raise ValueError(f"noise must have shape ({NOISE_DIM},), got {n.shape}")
    return _estimate(truth, params, n.tolist())


def _estimate(truth: RigidBodyState, params: TruthNoiseParams, draws: list[float]) -> RigidBodyState:
    """:func:`truth_noise_estimate` without the checks; draws : 12 floats (the hot path)."""
    # Plain-float arithmetic: this runs once per estimator tick in the headless loop.
    n0, n1, n2, a0, a1, a2, n6, n7, n8, n9, n10, n11 = draws
    sp, sa, sv, sw = params.position_sigma, params.attitude_sigma, params.velocity_sigma, params.omega_sigma
    x, y, z, w = truth.quat.tolist()
    rx, ry, rz = sa * a0, sa * a1, sa * a2
    angle = math.sqrt(rx * rx + ry * ry + rz * rz)
    if angle > 0.0:
        k = math.sin(0.5 * angle) / angle
        dx, dy, dz, dw = rx * k, ry * k, rz * k, math.cos(0.5 * angle)
        x, y, z, w = (
            w * dx + x * dw + y * dz - z * dy,
            w * dy - x * dz + y * dw + z * dx,
            w * dz + x * dy - y * dx + z * dw,
            w * dw - x * dx - y * dy - z * dz,
        )
    norm = math.sqrt(x * x + y * y + z * z + w * w)
    if w < 0.0:
        norm = -norm
    px, py, pz = truth.position.tolist()
    vx, vy, vz = truth.velocity.tolist()
    wx, wy, wz = truth.omega.tolist()
    return RigidBodyState._trusted(
        np.array([px + sp * n0, py + sp * n1, pz + sp * n2]),
        np.array([x / norm, y / norm, z / norm, w / norm]),
        np.array([vx + sv * n6, vy + sv * n7, vz + sv * n8]),
        np.array([wx + sw * n9, wy + sw * n10, wz + sw * n11]),
    )


class TruthNoiseEstimator:
    """Seeded truth-plus-noise estimator; one ``update`` per estimator tick.

    The only sanctioned path from ground truth to the controller. ``mode`` is its name in
    logs and summaries (``"truth"`` or ``"truth-noise"``).
    """

    def __init__(
        self, *, seed: int, mode: str = MODE_TRUTH_NOISE, params: TruthNoiseParams | None = None
    ) -> None:
        self.mode = mode
        self.params = TruthNoiseParams.for_mode(mode) if params is None else params
        if mode == MODE_TRUTH and self.params != TruthNoiseParams.zero():
            raise ValueError("mode 'truth' means no noise; use mode 'truth-noise' with noise parameters")
        self._rng = np.random.default_rng(seed)
        self._table: list[list[float]] = []
        self._row = 0

    def update(self, truth: RigidBodyState) -> RigidBodyState:
        """Estimate of the current state from the ground truth."""
        if self._row >= len(self._table):  # draws taken in batches: same stream, less overhead
            self._table = self._rng.standard_normal((_BATCH, NOISE_DIM)).tolist()
            self._row = 0
        draws = self._table[self._row]
        self._row += 1
        return _estimate(truth, self.params, draws)
