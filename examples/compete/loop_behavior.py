"""Loop-style example (behavior API v1, Zero Robotics style): ``on_step(obs)`` at ``STEP_HZ``.

Each call gets the observation (mission time, time left, estimated state, goal status, targets
not yet reported, messages) and returns actions: ``goal`` ([x, y, z] or with a quaternion),
``aim`` (a target id), ``snapshot`` (a target id), ``report`` ({id: value}), ``finish``. This one
visits the target areas along the module, fires the pointer at each bay centre and takes a
snapshot of the target there (no image reading: it scores pointing points only where the panel
happens to sit near the centre, and snapshot points where the panel is in the camera's view and
not too far off its axis). Every observation also carries the
targets' approximate areas (``obs["targets"]``) and the keep-out zones (``obs["keep_out"]``).
"""

import numpy as np

STEP_HZ = 2.0
plan = {"queue": None, "current": None, "aimed": False, "wait": 0}


def rotmat(q):
    x, y, z, w = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def attitude_towards(direction):
    """q_kibo_body with body +x (the main camera) along ``direction`` and body z near +z kibo."""
    x = direction / np.linalg.norm(direction)
    up = np.array([0.0, 0.0, 1.0]) if abs(x[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    y = np.cross(up, x)
    y /= np.linalg.norm(y)
    z = np.cross(x, y)
    R = np.column_stack([x, y, z])
    return quat_from_rotmat(R)


def quat_from_rotmat(R):
    """(x, y, z, w) of a rotation matrix (Shepperd: stable for every angle)."""
    tr = R[0, 0] + R[1, 1] + R[2, 2]
    k = int(np.argmax([tr, R[0, 0], R[1, 1], R[2, 2]]))
    if k == 0:
        s = 2.0 * np.sqrt(1.0 + tr)
        q = [(R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s, s / 4]
    elif k == 1:
        s = 2.0 * np.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2])
        q = [s / 4, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s, (R[2, 1] - R[1, 2]) / s]
    elif k == 2:
        s = 2.0 * np.sqrt(1.0 - R[0, 0] + R[1, 1] - R[2, 2])
        q = [(R[0, 1] + R[1, 0]) / s, s / 4, (R[1, 2] + R[2, 1]) / s, (R[0, 2] - R[2, 0]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 - R[0, 0] - R[1, 1] + R[2, 2])
        q = [(R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, s / 4, (R[1, 0] - R[0, 1]) / s]
    return [float(v) for v in q]


def on_step(obs):
    if plan["queue"] is None:
        targets = sorted(obs["targets"], key=lambda t: t["approx_position"][0])
        plan["queue"] = [t for t in targets if t["id"] in obs["active_targets"]][:2]
    if plan["current"] is None:
        if not plan["queue"]:
            return {"finish": True}
        plan["current"] = plan["queue"].pop(0)
        plan["aimed"] = False
        t = plan["current"]
        centre, normal = np.array(t["approx_position"]), np.array(t["normal"])
        goal = centre + 1.1 * normal
        return {"goal": [*goal.tolist(), *attitude_towards(-normal)]}
    if obs["goal_status"] == "holding" and not plan["aimed"]:
        plan["aimed"] = True
        return {"aim": plan["current"]["id"], "snapshot": plan["current"]["id"]}
    if plan["aimed"]:
        plan["current"] = None
    if obs["goal_status"] == "rejected":
        plan["current"] = None
    return {}
