"""Trajectory error metrics: absolute trajectory error (ATE) and relative pose error (RPE).

Pure functions over TUM trajectories (``t x y z qx qy qz qw``, kibo frame, ``q_kibo_body``;
read with :func:`intball_nav.trajectory_io.read_tum`). The definitions follow Sturm et al.,
"A Benchmark for the Evaluation of RGB-D SLAM Systems" (IROS 2012) and the ``evo`` tools, so
``evo_ape tum ground_truth.tum estimate.tum`` and ``evo_rpe tum ... --delta 1 --delta_unit m``
recompute the figures:

- **Association**: each estimate pose is paired with the ground-truth pose nearest in time,
  if within ``max_dt`` (s); each ground-truth pose is used at most once (as evo's
  ``associate_trajectories``).
- **ATE, no alignment** (the map frame is known, so an alignment would hide a frame error):
  per pair, position error ``|p_est - p_gt|`` (m) and attitude error, the angle of
  ``q_gt^-1 q_est`` (rad); ``rmse = sqrt(mean(e^2))``.
- **RPE per metre of travel**: for every pair ``i``, ``j`` is the first later pair at which the
  ground-truth path length since ``i`` reaches ``delta_m``. The relative error is
  ``E = (T_gt_i^-1 T_gt_j)^-1 (T_est_i^-1 T_est_j)``; its translation norm (m) and rotation
  angle (rad) are divided by the ground-truth path length of the segment (so the units are
  m/m and rad/m). Segments that never reach ``delta_m`` are not counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from intball_nav.frames import Pose, quat_angle
from intball_nav.trajectory_io import read_tum


@dataclass(frozen=True)
class Trajectory:
    """Stamped poses. t : (N,) s increasing; position : (N,3) m kibo; quat : (N,4) xyzw q_kibo_body."""

    t: np.ndarray
    position: np.ndarray
    quat: np.ndarray

    def __post_init__(self) -> None:
        t = np.asarray(self.t, dtype=float).reshape(-1)
        p = np.asarray(self.position, dtype=float).reshape(-1, 3)
        q = np.asarray(self.quat, dtype=float).reshape(-1, 4)
        if not len(t) == len(p) == len(q):
            raise ValueError(f"Trajectory: t, position, quat differ in length: {len(t)}, {len(p)}, {len(q)}")
        if len(t) > 1 and np.any(np.diff(t) < 0.0):
            raise ValueError("Trajectory: times must be non-decreasing")
        norms = np.linalg.norm(q, axis=1)
        if np.any(norms < 1e-9):
            raise ValueError("Trajectory: zero quaternion")
        object.__setattr__(self, "t", t)
        object.__setattr__(self, "position", p)
        object.__setattr__(self, "quat", q / norms[:, None])

    def __len__(self) -> int:
        return len(self.t)

    @staticmethod
    def from_tum(path: str | Path) -> Trajectory:
        """Read a TUM file (errors name the file and line)."""
        return Trajectory(*read_tum(path))

    def pose(self, i: int) -> Pose:
        return Pose(self.position[i], self.quat[i])

    def path_length(self) -> np.ndarray:
        """(N,) m, cumulative distance travelled from the first pose."""
        steps = np.linalg.norm(np.diff(self.position, axis=0), axis=1)
        return np.concatenate([[0.0], np.cumsum(steps)])


def associate(ref: Trajectory, est: Trajectory, max_dt: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i_ref (M,), i_est (M,)) of poses matched by nearest time within max_dt (s),
    each reference pose used at most once, in increasing time order."""
    if max_dt < 0.0:
        raise ValueError(f"max_dt must be >= 0, got {max_dt}")
    if len(ref) == 0 or len(est) == 0:
        return np.zeros(0, int), np.zeros(0, int)
    j = np.searchsorted(ref.t, est.t)
    lo = np.clip(j - 1, 0, len(ref) - 1)
    hi = np.clip(j, 0, len(ref) - 1)
    nearest = np.where(np.abs(ref.t[lo] - est.t) <= np.abs(ref.t[hi] - est.t), lo, hi)
    ok = np.abs(ref.t[nearest] - est.t) <= max_dt + 1e-12
    i_ref, i_est, used = [], [], set()
    for k in np.flatnonzero(ok):
        r = int(nearest[k])
        if r in used:
            continue
        used.add(r)
        i_ref.append(r)
        i_est.append(int(k))
    return np.array(i_ref, dtype=int), np.array(i_est, dtype=int)


@dataclass(frozen=True)
class ErrorStats:
    """Statistics of a non-negative error series (unit of the series)."""

    rmse: float
    mean: float
    median: float
    max: float
    n: int

    @staticmethod
    def of(e: np.ndarray) -> ErrorStats:
        e = np.asarray(e, dtype=float)
        if e.size == 0:
            return ErrorStats(math.nan, math.nan, math.nan, math.nan, 0)
        return ErrorStats(
            float(np.sqrt(np.mean(e**2))),
            float(np.mean(e)),
            float(np.median(e)),
            float(np.max(e)),
            int(e.size),
        )

    def scaled(self, k: float) -> ErrorStats:
        return ErrorStats(self.rmse * k, self.mean * k, self.median * k, self.max * k, self.n)

    def as_dict(self) -> dict[str, float | int]:
        return {"rmse": self.rmse, "mean": self.mean, "median": self.median, "max": self.max, "n": self.n}


@dataclass(frozen=True)
class PoseErrors:
    """Per-pair absolute errors. t : (M,) s (estimate stamps); position : (M,) m; attitude : (M,) rad."""

    t: np.ndarray
    position: np.ndarray
    attitude: np.ndarray


def absolute_errors(ref: Trajectory, est: Trajectory, max_dt: float = 0.01) -> PoseErrors:
    """Position and attitude error of every associated pair, no alignment (module docstring)."""
    i_ref, i_est = associate(ref, est, max_dt)
    dp = np.linalg.norm(est.position[i_est] - ref.position[i_ref], axis=1)
    dq = np.array([quat_angle(ref.quat[a], est.quat[b]) for a, b in zip(i_ref, i_est, strict=True)])
    return PoseErrors(est.t[i_est], dp, dq.reshape(-1))


@dataclass(frozen=True)
class Ate:
    """Absolute trajectory error without alignment. position : m; attitude : rad."""

    position: ErrorStats
    attitude: ErrorStats


def ate(ref: Trajectory, est: Trajectory, max_dt: float = 0.01) -> Ate:
    """ATE of est against ref, no alignment (module docstring)."""
    e = absolute_errors(ref, est, max_dt)
    return Ate(ErrorStats.of(e.position), ErrorStats.of(e.attitude))


@dataclass(frozen=True)
class Rpe:
    """Relative pose error per metre of ground-truth travel.

    position : m/m; attitude : rad/m; delta_m : segment length (m); n_segments : count.
    """

    position: ErrorStats
    attitude: ErrorStats
    delta_m: float
    n_segments: int


def _relative(a: Pose, b: Pose) -> Pose:
    return a.inverse().compose(b)


def rpe_per_metre(ref: Trajectory, est: Trajectory, delta_m: float = 1.0, max_dt: float = 0.01) -> Rpe:
    """RPE over segments of ``delta_m`` of ground-truth travel, normalised by the segment length
    (module docstring)."""
    if not delta_m > 0.0:
        raise ValueError(f"delta_m must be > 0, got {delta_m}")
    i_ref, i_est = associate(ref, est, max_dt)
    gt = Trajectory(ref.t[i_ref], ref.position[i_ref], ref.quat[i_ref])
    es = Trajectory(est.t[i_est], est.position[i_est], est.quat[i_est])
    s = gt.path_length()
    ends = np.searchsorted(s, s + delta_m - 1e-12)
    et, er = [], []
    for i, j in enumerate(ends):
        if j >= len(gt):
            break
        length = s[j] - s[i]
        d_gt = _relative(gt.pose(i), gt.pose(int(j)))
        d_es = _relative(es.pose(i), es.pose(int(j)))
        E = _relative(d_gt, d_es)
        et.append(float(np.linalg.norm(E.position)) / length)
        er.append(quat_angle(np.array([0.0, 0.0, 0.0, 1.0]), E.quat) / length)
    return Rpe(ErrorStats.of(np.array(et)), ErrorStats.of(np.array(er)), float(delta_m), len(et))


def evaluate(
    ref: Trajectory,
    est: Trajectory,
    *,
    delta_m: float = 1.0,
    max_dt: float = 0.01,
    t_min: float | None = None,
) -> dict[str, Any]:
    """ATE and RPE as a JSON-ready dict (positions in m and cm, angles in deg).

    t_min : s, ignore estimate poses before this time (e.g. before the filter initialised).
    """
    if t_min is not None:
        keep = est.t >= t_min
        est = Trajectory(est.t[keep], est.position[keep], est.quat[keep])
    a = ate(ref, est, max_dt)
    r = rpe_per_metre(ref, est, delta_m, max_dt)
    deg = math.degrees(1.0)
    return {
        "alignment": "none",
        "max_dt_s": max_dt,
        "pairs": a.position.n,
        "ate_position_m": a.position.as_dict(),
        "ate_attitude_deg": a.attitude.scaled(deg).as_dict(),
        "ate_rmse_cm": a.position.rmse * 100.0,
        "ate_rmse_deg": a.attitude.rmse * deg,
        "rpe_delta_m": r.delta_m,
        "rpe_segments": r.n_segments,
        "rpe_position_m_per_m": r.position.as_dict(),
        "rpe_attitude_deg_per_m": r.attitude.scaled(deg).as_dict(),
    }
