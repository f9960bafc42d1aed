"""Starter behavior for kibo-targets-v2 (behavior API v1, blocking style).

For each target: fly to a viewing point in front of its bay (routing around keep-out zones),
turn the main camera to the bay, find the code in the image (QR or ArUco), locate it on the rack
face (ray from the camera through the code centre, intersected with the face plane), point the
camera at it, take a snapshot of it, fire the pointer and report what it says. Run it locally with

    intball compete run examples/compete/behavior.py --seeds 3 --json out.json

Only numpy, OpenCV and the standard library are used (the sandbox allows no more).
"""

import cv2
import numpy as np

STANDOFF = 1.15  # m, robot centre to the rack face
LANES = [
    (0.0, 0.0),
    (0.75, 0.75),
    (-0.75, 0.75),
    (0.75, -0.75),
    (-0.75, -0.75),
    (0.0, 0.8),
    (0.0, -0.8),
    (0.8, 0.0),
    (-0.8, 0.0),
]
ARUCO = cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_250))
QR = cv2.QRCodeDetector()


def rotmat(q):
    x, y, z, w = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def segment_hits(a, b, lo, hi):
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


class Pilot:
    def __init__(self, api, info):
        self.api, self.info = api, info
        r = info.robot_radius + 0.08
        self.zones = [(lo - r, hi + r) for _, lo, hi in info.keep_out]
        self.lo, self.hi = info.keep_in[0] + r, info.keep_in[1] - r

    def free(self, p):
        if np.any(p < self.lo) or np.any(p > self.hi):
            return False
        return not any(np.all(p >= lo) and np.all(p <= hi) for lo, hi in self.zones)

    def clear(self, a, b):
        return not any(segment_hits(a, b, lo, hi) for lo, hi in self.zones)

    def route(self, goal):
        """Waypoints from here to goal: direct, or via a lane along the module."""
        here = self.api.get_state().position
        if self.clear(here, goal):
            return [goal]
        for y, z in LANES:
            a = np.array([here[0], y, z])
            b = np.array([goal[0], y, z])
            if (
                self.free(a)
                and self.free(b)
                and self.clear(here, a)
                and self.clear(a, b)
                and self.clear(b, goal)
            ):
                return [a, b, goal]
        return [goal]

    def fly(self, goal, look_at=None):
        result = None
        for wp in self.route(goal):
            last = wp is goal
            result = self.api.move_to(wp, look_at=look_at if last else None)
            if not result.success:
                print("move refused or failed:", result.reason)
                return result
        return result


def viewpoint(pilot, target):
    for standoff in (STANDOFF, 1.0, 0.85, 1.3, 0.7):
        for shift in (0.0, 0.3, -0.3, 0.5, -0.5):
            p = target.approx_position + standoff * target.normal + np.array([shift, 0.0, 0.0])
            if pilot.free(p):
                return p
    return None


def face_axes(normal):
    e1 = np.array([1.0, 0.0, 0.0])
    e2 = np.cross(normal, e1)
    return e1, e2 / np.linalg.norm(e2)


def find_code(img, kind):
    """(value, centre pixel (2,)) of the code in the image, or None."""
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    if kind == "qr":
        text, points, _ = QR.detectAndDecode(gray)
        if text and points is not None:
            return text, points.reshape(4, 2).mean(axis=0)
        return None
    corners, ids, _ = ARUCO.detectMarkers(gray)
    if ids is None:
        return None
    for c, i in zip(corners, ids.ravel(), strict=True):
        if 200 <= int(i) < 250:
            return int(i), c.reshape(4, 2).mean(axis=0)
    return None


def locate(api, cam, pixel, target):
    """Code centre (3,) m kibo: the camera ray through ``pixel`` meets the rack face plane."""
    state = api.get_state()
    R_kb = rotmat(state.quat)
    t_bc = cam["T_base_cam"]
    R_bc = rotmat(t_bc["quat"])
    origin = state.position + R_kb @ np.asarray(t_bc["position"])
    ray = R_kb @ R_bc @ (np.linalg.inv(cam["K"]) @ np.array([pixel[0], pixel[1], 1.0]))
    n = target.normal
    denom = ray @ n
    if abs(denom) < 1e-6:
        return None
    s = ((target.approx_position - origin) @ n) / denom
    return origin + s * ray if s > 0 else None


def run(api):
    info = api.start_mission()
    pilot = Pilot(api, info)
    cam = info.cameras["main"]
    print(f"mission {info.mission} seed {info.seed}: {len(info.targets)} targets")
    for target in sorted(info.targets, key=lambda t: t.approx_position[0]):  # one pass down the module
        if api.time_remaining() < 25.0:
            break
        view = viewpoint(pilot, target)
        if view is None or not pilot.fly(view, look_at=target.approx_position).success:
            continue
        e1, e2 = face_axes(target.normal)
        found = None
        for k, (a, b) in enumerate(
            [(0, 0), (0, 0.4), (0, -0.4), (0.3, 0), (-0.3, 0), (0.3, 0.4), (-0.3, -0.4)]
        ):
            if k:
                api.look_at(target.approx_position + a * e1 + b * e2)
            found = find_code(api.main_image(), target.kind)
            if found is not None:
                break
        if found is None:
            print(f"target {target.id} on {target.area}: not found")
            continue
        value, pixel = found
        point = locate(api, cam, pixel, target)
        if point is not None:
            api.look_at(point)
            api.aim(target.id)
        api.snapshot(target.id)  # the code is in view: centred, or where it was found
        api.report_target(target.id, value)
        print(f"target {target.id} on {target.area}: {value!r}")
    api.finish()
