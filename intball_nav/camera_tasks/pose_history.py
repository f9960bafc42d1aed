"""The robot pose at an image's capture time, from a short history of state estimates.

An image reaches its user later than the estimate of the same instant when the machine is
loaded (the renderer, DDS and the executor all queue), and the robot may have moved in between.
A measurement made in an image (a code position, a dock-marker fix, snapshot metadata) must be
placed with the estimate *at the image stamp*: ``pose_at`` interpolates between the two
estimates that bracket the stamp (position linear, attitude slerp) and refuses (``None``) when
the stamp is not covered, rather than falling back on a pose from another time.

Pure numpy; no ROS, no ground truth.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import TypeVar

from intball_nav.frames import Pose, quat_slerp

T = TypeVar("T")

MAX_GAP_S = 0.05
"""s: longest interval between two estimates interpolated across, and farthest a stamp may be
from the nearest estimate when it is outside the history (estimates come at 50-100 Hz)."""


def interpolate_pose(t0: float, pose0: Pose, t1: float, pose1: Pose, t: float) -> Pose:
    """Pose at ``t`` between ``pose0`` at ``t0`` and ``pose1`` at ``t1`` (s; kibo frame, m, xyzw).

    Position linear, attitude slerp (shorter arc); ``t`` outside [t0, t1] is clamped to it.
    """
    if t1 <= t0:
        return pose1 if t >= t1 else pose0
    s = min(max((t - t0) / (t1 - t0), 0.0), 1.0)
    return Pose(pose0.position + s * (pose1.position - pose0.position), quat_slerp(pose0.quat, pose1.quat, s))


def pose_at(
    samples: Sequence[tuple[float, T]],
    stamp: float,
    to_pose: Callable[[T], Pose | None],
    max_gap: float = MAX_GAP_S,
) -> Pose | None:
    """Estimated pose at ``stamp`` (s) from ``samples`` = [(t s, sample)] in increasing t.

    ``to_pose`` converts a sample (e.g. an Odometry message) to a kibo-frame ``Pose``, or None if
    it is invalid; only the one or two samples used are converted. Returns None when the stamp
    is before the first / after the last sample by more than ``max_gap``, when the bracketing
    samples are more than ``max_gap`` apart, or when a needed sample is invalid.
    """
    if not samples:
        return None
    times = [t for t, _ in samples]
    k = bisect_left(times, stamp)  # times[k - 1] < stamp <= times[k]
    if k < len(times) and times[k] == stamp:
        return to_pose(samples[k][1])
    if k == 0 or k == len(times):  # outside the history: the nearest end, if close enough
        t, sample = samples[0] if k == 0 else samples[-1]
        return to_pose(sample) if abs(t - stamp) <= max_gap else None
    (t0, s0), (t1, s1) = samples[k - 1], samples[k]
    if t1 - t0 > max_gap:
        return None
    p0, p1 = to_pose(s0), to_pose(s1)
    if p0 is None or p1 is None:
        return None
    return interpolate_pose(t0, p0, t1, p1, stamp)
