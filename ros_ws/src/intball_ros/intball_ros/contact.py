"""The simulated bump sensor: PyBullet contacts -> ``geometry_msgs/WrenchStamped`` -> collision reports.

A real Int-Ball would sense a bump with a contact switch / force sensor on its shell; the simulator
stands in for it (``sim_node`` publishes one message on ``names.CONTACT`` when a contact episode
starts). The message carries what such a sensor measures and nothing of the ground truth: the
sensor's time and the contact force on the robot, kibo frame (direction: from the obstacle toward
the robot; magnitude: the PyBullet normal force at first touch, N, possibly ~0 at a grazing touch).

The navigation node turns it into an ``autonomy.faults.CollisionReport``; it names the body
``dock`` when its own estimate is near the dock (so contact with the dock while docking is no
collision, as ``evaluate_faults`` decides), else ``obstacle``.
"""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import WrenchStamped

from intball_nav.autonomy.faults import CollisionReport
from intball_ros import convert, names

DOCK_BODY = "dock"
OTHER_BODY = "obstacle"


def contact_msg(contacts, t: float) -> WrenchStamped:
    """Bump-sensor message of the contacts (``intball_sim.backend.Contact``) at t (s sim time)."""
    force = np.zeros(3)
    for c in contacts:
        force += c.normal_force * np.asarray(c.normal, dtype=float)
    return convert.wrench_msg(np.concatenate([force, np.zeros(3)]), t, names.WORLD_FRAME)


def collision_from_msg(msg: WrenchStamped, near_dock: bool) -> CollisionReport:
    """The collision report of one bump-sensor message; near_dock: the estimate is at the dock."""
    return CollisionReport(convert.time_from_stamp(msg.header.stamp), DOCK_BODY if near_dock else OTHER_BODY)


def describe(msg: WrenchStamped) -> str:
    """'12.3 N from -y' style text of the contact force (for the log)."""
    f = msg.wrench.force
    v = np.array([f.x, f.y, f.z])
    n = float(np.linalg.norm(v))
    if n < 1e-9:
        return "grazing touch"
    axis = int(np.argmax(np.abs(v)))
    return f"{n:.2f} N pushing toward {'+-'[int(v[axis] < 0)]}{'xyz'[axis]} (kibo)"
