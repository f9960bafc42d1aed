"""Cabin ventilation airflow: a seeded, smooth, slowly varying velocity field in the module.

Model: a steady mean flow plus a sum of ``n_modes`` divergence-free travelling Fourier modes

    v(t, x) = mean + sum_k  a * e_k * cos(k_k . x - omega_k t + phi_k),   e_k ⟂ k_k

with wavelengths ``wavelength_min..max`` (m), periods ``period_min..max`` (s), random
directions and phases drawn from ``seed``. Each mode is transverse (e_k ⟂ k_k), so the
field is incompressible, smooth (C-infinity) in time and space, and its RMS speed about
the mean is ``speed_rms`` (default 3 cm/s: ISS cabin ventilation is a few cm/s away from
the diffusers). The IB2 simulator replays measured point-cloud flow fields instead; this
is a light stand-in with the same order of magnitude. ``speed_rms = 0`` switches it off.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class AirflowParams:
    """Parameters of the ventilation field (the modes are drawn from ``seed`` on creation).

    mean : (3,) m/s, kibo frame, steady drift
    speed_rms : m/s, RMS of the fluctuating part (sum over axes)
    """

    seed: int = 0
    speed_rms: float = 0.03
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    n_modes: int = 12
    wavelength_min: float = 2.0
    wavelength_max: float = 8.0
    period_min: float = 60.0
    period_max: float = 300.0
    wavevectors: np.ndarray = field(init=False, repr=False)
    """(n_modes, 3) rad/m."""
    directions: np.ndarray = field(init=False, repr=False)
    """(n_modes, 3) unit, transverse to the wavevectors, scaled by the mode amplitude (m/s)."""
    omegas: np.ndarray = field(init=False, repr=False)
    """(n_modes,) rad/s."""
    phases: np.ndarray = field(init=False, repr=False)
    """(n_modes,) rad."""

    def __post_init__(self) -> None:
        if self.speed_rms < 0.0 or self.n_modes < 1:
            raise ValueError("speed_rms must be >= 0 and n_modes >= 1")
        if not 0.0 < self.wavelength_min <= self.wavelength_max:
            raise ValueError("need 0 < wavelength_min <= wavelength_max")
        if not 0.0 < self.period_min <= self.period_max:
            raise ValueError("need 0 < period_min <= period_max")
        rng = np.random.default_rng(self.seed)
        n = self.n_modes
        k_dir = rng.normal(size=(n, 3))
        k_dir /= np.linalg.norm(k_dir, axis=1, keepdims=True)
        wavelengths = rng.uniform(self.wavelength_min, self.wavelength_max, n)
        e = np.cross(k_dir, rng.normal(size=(n, 3)))
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        amplitude = self.speed_rms * np.sqrt(2.0 / n)
        object.__setattr__(self, "wavevectors", k_dir * (2.0 * np.pi / wavelengths)[:, None])
        object.__setattr__(self, "directions", e * amplitude)
        periods = rng.uniform(self.period_min, self.period_max, n)
        object.__setattr__(self, "omegas", 2.0 * np.pi / periods)
        object.__setattr__(self, "phases", rng.uniform(0.0, 2.0 * np.pi, n))


NO_AIRFLOW = AirflowParams(speed_rms=0.0)
"""Still air."""


def air_velocity(t: float, position: np.ndarray, params: AirflowParams) -> np.ndarray:
    """Air velocity (3,) m/s, kibo frame, at time t (s) and position (3,) m, kibo frame.

    Also accepts positions (N,3) and returns (N,3).
    """
    x = np.asarray(position, dtype=float)
    arg = x @ params.wavevectors.T - params.omegas * t + params.phases
    return np.cos(arg) @ params.directions + np.asarray(params.mean)
