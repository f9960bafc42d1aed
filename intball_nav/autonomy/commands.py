"""Command validation: every motion request is checked before the mode machine sees it.

``validate_goal`` returns the goal as a ``Pose`` in the kibo frame or raises
``CommandRejected`` whose text says why: unknown frame, numbers not finite, zero quaternion,
target outside the keep-in volume (clear volume shrunk by the robot radius) or inside a keep-out
zone (grown by the radius). The text goes into ``Guards.command_error``.

Frames: ``kibo`` (absolute) and ``base_link`` (relative to the current estimate: position and
attitude in the body frame, as a relative-move command).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from intball_nav.dynamics import RigidBodyState
from intball_nav.frames import BASE_FRAME, KIBO_FRAME, Pose
from intball_nav.safety import Box, GoalRejected, check_goal, goal_pose

KNOWN_FRAMES = (KIBO_FRAME, BASE_FRAME)


class CommandRejected(ValueError):
    """A command failed validation; ``str()`` is the reason."""


def validate_goal(
    frame_id: str,
    position: Any,
    quat: Any,
    *,
    estimate: RigidBodyState | None,
    keep_in: Box,
    keep_out: Iterable[Any] = (),
    radius: float,
) -> Pose:
    """The goal in the kibo frame, or CommandRejected with the reason.

    frame_id : ``kibo`` or ``base_link``; position : (3,) m in that frame; quat : (4,) xyzw,
    q_frame_body; estimate : current estimate (needed for ``base_link`` goals);
    keep_in : clear volume (not shrunk); keep_out : boxes (not grown); radius : m.
    """
    if frame_id not in KNOWN_FRAMES:
        raise CommandRejected(f"unknown frame {frame_id!r}; allowed: {', '.join(KNOWN_FRAMES)}")
    try:
        pose = goal_pose(np.asarray(position, dtype=float), np.asarray(quat, dtype=float))
    except (GoalRejected, ValueError, TypeError) as exc:
        raise CommandRejected(str(exc)) from exc
    if frame_id == BASE_FRAME:
        if estimate is None or not (
            np.isfinite(estimate.position).all() and np.isfinite(estimate.quat).all()
        ):
            raise CommandRejected("a base_link goal needs a valid pose estimate")
        pose = Pose(estimate.position, estimate.quat).compose(pose)
    try:
        check_goal(pose.position, keep_in, radius, keep_out)
    except GoalRejected as exc:
        raise CommandRejected(str(exc)) from exc
    return pose
