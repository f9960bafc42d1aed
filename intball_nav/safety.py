"""Goal validation: keep-in volume, keep-out zones, finite numbers.

The keep-in volume is the module clear volume shrunk by the robot radius; keep-out boxes
are grown by the radius. Boxes are plain arguments (axis-aligned, kibo frame) so this
module does not depend on the module-geometry loader; :func:`keep_in_from_module` adapts
any object with ``clear_min`` / ``clear_max`` (e.g. ``intball_nav.module.ModuleGeometry``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from intball_nav.frames import Pose

_AXES = "xyz"


class GoalRejected(ValueError):
    """A goal violates the keep-in volume or a keep-out zone; ``str()`` is the reason."""


@dataclass(frozen=True)
class Box:
    """Axis-aligned box. min, max : (3,) m, kibo frame; name : shown in rejection reasons."""

    min: np.ndarray
    max: np.ndarray
    name: str = ""

    def __post_init__(self) -> None:
        lo = np.asarray(self.min, dtype=float)
        hi = np.asarray(self.max, dtype=float)
        if lo.shape != (3,) or hi.shape != (3,) or not (np.isfinite(lo).all() and np.isfinite(hi).all()):
            raise ValueError(f"box {self.name!r}: min and max must be 3 finite numbers")
        if np.any(lo > hi):
            raise ValueError(f"box {self.name!r}: min {lo.tolist()} exceeds max {hi.tolist()}")
        object.__setattr__(self, "min", lo)
        object.__setattr__(self, "max", hi)

    def grown(self, margin: float) -> Box:
        """Box enlarged by ``margin`` (m) on every side (negative shrinks; never inverts)."""
        lo, hi = self.min - margin, self.max + margin
        mid = 0.5 * (self.min + self.max)
        return Box(np.minimum(lo, mid), np.maximum(hi, mid), self.name)

    def contains(self, position: np.ndarray) -> bool:
        """True if position (3,) m lies inside or on the box."""
        p = np.asarray(position, dtype=float)
        return bool(np.all(p >= self.min) and np.all(p <= self.max))


class _HasMinMax(Protocol):
    @property
    def min(self) -> np.ndarray: ...
    @property
    def max(self) -> np.ndarray: ...


def as_box(zone: _HasMinMax) -> Box:
    """A Box from any object with ``min``, ``max`` (3,) m (and optional ``name``), such as
    ``intball_nav.module.Box``."""
    if isinstance(zone, Box):
        return zone
    return Box(np.asarray(zone.min), np.asarray(zone.max), str(getattr(zone, "name", "")))


class _HasClearVolume(Protocol):
    @property
    def clear_min(self) -> np.ndarray: ...
    @property
    def clear_max(self) -> np.ndarray: ...


def keep_in_from_module(module: _HasClearVolume) -> Box:
    """The module clear volume (``clear_min``, ``clear_max`` (3,) m, kibo frame) as a Box."""
    return Box(np.asarray(module.clear_min), np.asarray(module.clear_max), "module clear volume")


def check_goal(
    position: np.ndarray, keep_in: Box, radius: float, keep_out: Iterable[_HasMinMax] = ()
) -> None:
    """Raise GoalRejected unless a robot of ``radius`` (m) centred at position fits.

    position : (3,) m, kibo frame. keep_in : clear volume (not yet shrunk by radius).
    keep_out : boxes the robot must not touch (not yet grown by radius); any objects with
        ``min``, ``max`` (and optional ``name``), e.g. ``ModuleGeometry.keep_out``.
    """
    p = np.asarray(position, dtype=float)
    if p.shape != (3,):
        raise GoalRejected(f"goal position must be 3 numbers (x, y, z), got shape {p.shape}")
    if not np.isfinite(p).all():
        raise GoalRejected(f"goal position {p.tolist()} is not finite")
    inner = keep_in.grown(-radius)
    for i, axis in enumerate(_AXES):
        if p[i] > inner.max[i]:
            raise GoalRejected(
                f"{axis}={p[i]:.2f} m is beyond the keep-in limit {inner.max[i]:.2f} m "
                f"(clear volume {keep_in.max[i]:.2f} m minus robot radius {radius:.2f} m)"
            )
        if p[i] < inner.min[i]:
            raise GoalRejected(
                f"{axis}={p[i]:.2f} m is below the keep-in limit {inner.min[i]:.2f} m "
                f"(clear volume {keep_in.min[i]:.2f} m plus robot radius {radius:.2f} m)"
            )
    for k, item in enumerate(keep_out):
        zone = as_box(item)
        if zone.grown(radius).contains(p):
            name = zone.name or f"#{k}"
            lo = ", ".join(f"{v:.2f}" for v in zone.min)
            hi = ", ".join(f"{v:.2f}" for v in zone.max)
            raise GoalRejected(
                f"position ({p[0]:.2f}, {p[1]:.2f}, {p[2]:.2f}) m is within {radius:.2f} m of "
                f"keep-out zone {name} ({lo} .. {hi} m)"
            )


def goal_pose(position: np.ndarray, quat: np.ndarray) -> Pose:
    """A goal Pose from raw numbers (e.g. a ROS message), GoalRejected if they are unusable.

    position : (3,) m, kibo frame; quat : (4,) xyzw q_kibo_body (normalized here).
    """
    p = np.asarray(position, dtype=float)
    q = np.asarray(quat, dtype=float)
    if p.shape != (3,) or not np.isfinite(p).all():
        raise GoalRejected(f"goal position {p.tolist()} is not 3 finite numbers")
    if q.shape != (4,) or not np.isfinite(q).all():
        raise GoalRejected(f"goal quaternion {q.tolist()} is not 4 finite numbers (x, y, z, w)")
    if float(np.linalg.norm(q)) < 1e-6:
        raise GoalRejected(f"goal quaternion {q.tolist()} has zero norm")
    return Pose(p, q)


def segment_hits_box(a: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> bool:
    """True if the segment a -> b ((3,) m) crosses the axis-aligned box [lo, hi] (slab test)."""
    d = b - a
    t0, t1 = 0.0, 1.0
    for i in range(3):
        if abs(d[i]) < 1e-12:
            if a[i] < lo[i] or a[i] > hi[i]:
                return False
            continue
        ta, tb = (lo[i] - a[i]) / d[i], (hi[i] - a[i]) / d[i]
        t0, t1 = max(t0, min(ta, tb)), min(t1, max(ta, tb))
        if t0 > t1:
            return False
    return True
