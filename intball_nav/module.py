"""Kibo module geometry and fiducial marker map, loaded from YAML into frozen dataclasses.

Everything is in the ``kibo`` frame (see ``intball_nav.frames.KIBO_FRAME``): origin on the
module centreline at the Node 2 hatch end, +x toward the far (airlock) end, +z overhead,
+y completes a right-handed frame. Metres. ``docs/module.md`` describes the data.

Surfaces ("faces") of the clear volume and their *face frames* (z = unit normal pointing
into the cabin, x/y in the surface; used for bays, hatches, markers and textures):

============  ===============  ==========  ==========  ==========
face          plane            x axis      y axis      z (normal)
============  ===============  ==========  ==========  ==========
overhead      z = clear_max.z  +y kibo     +x kibo     -z kibo
deck          z = clear_min.z  -y kibo     +x kibo     +z kibo
port          y = clear_max.y  +x kibo     +z kibo     -y kibo
starboard     y = clear_min.y  -x kibo     +z kibo     +y kibo
entrance      x = clear_min.x  +y kibo     +z kibo     +x kibo
far           x = clear_max.x  -y kibo     +z kibo     -x kibo
============  ===============  ==========  ==========  ==========

"port" is the +y side (on your left when you face the far end with your head overhead).

This module imports neither pybullet nor rclpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from intball_nav.frames import Pose, quat_from_rotmat, rotmat_from_quat

FACES = ("overhead", "deck", "port", "starboard", "entrance", "far")
RACK_FACES = ("overhead", "deck", "port", "starboard")

_FACE_AXES = {
    # columns: x, y, z (normal into the cabin), kibo frame
    "overhead": ((0.0, 1.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),
    "deck": ((0.0, -1.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    "port": ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, -1.0, 0.0)),
    "starboard": ((-1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, 1.0, 0.0)),
    "entrance": ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (1.0, 0.0, 0.0)),
    "far": ((0.0, -1.0, 0.0), (0.0, 0.0, 1.0), (-1.0, 0.0, 0.0)),
}

ARUCO_DICTIONARIES = ("DICT_4X4_50", "DICT_4X4_100", "DICT_4X4_250", "DICT_5X5_100", "DICT_5X5_250")

DEFAULT_MODULE_PATH = "kibo.yaml"
DEFAULT_MARKERS_PATH = "markers.yaml"


class ModuleConfigError(ValueError):
    """Invalid module or marker-map data; the message names the file and the field."""


def face_rotation(face: str) -> np.ndarray:
    """(3,3) rotation R_kibo_face of a face frame (columns: x, y, z = inward normal)."""
    if face not in _FACE_AXES:
        raise ValueError(f"unknown face {face!r}; allowed: {', '.join(FACES)}")
    return np.array(_FACE_AXES[face], dtype=float).T


def face_quat(face: str) -> np.ndarray:
    """(4,) xyzw quaternion q_kibo_face of a face frame."""
    return quat_from_rotmat(face_rotation(face))


@dataclass(frozen=True)
class Box:
    """Axis-aligned box in the kibo frame.

    min, max : (3,) m, kibo frame
    """

    name: str
    min: np.ndarray
    max: np.ndarray

    def contains(self, point: np.ndarray, margin: float = 0.0) -> bool:
        """True if point (3,) m, kibo, lies inside the box grown by margin (m)."""
        p = np.asarray(point, dtype=float)
        return bool(np.all(p >= self.min - margin) and np.all(p <= self.max + margin))

    @property
    def centre(self) -> np.ndarray:
        """(3,) m, kibo frame."""
        return 0.5 * (self.min + self.max)

    @property
    def size(self) -> np.ndarray:
        """(3,) m edge lengths."""
        return self.max - self.min


@dataclass(frozen=True)
class Bay:
    """One rack bay: a rectangle on a rack face.

    name : e.g. ``port_3`` (face name + bay column, 1 at the entrance end)
    face : one of RACK_FACES
    centre : (3,) m, kibo frame, on the face plane
    normal : (3,) unit, kibo frame, into the cabin
    size : (2,) m, extents along the face-frame x and y axes
    """

    name: str
    face: str
    centre: np.ndarray
    normal: np.ndarray
    size: np.ndarray

    @property
    def pose(self) -> Pose:
        """T_kibo_bay: origin at the bay centre, axes of the face frame."""
        return Pose(self.centre, face_quat(self.face))


@dataclass(frozen=True)
class Hatch:
    """A hatch or opening on a face.

    centre : (3,) m, kibo frame, on the face plane
    normal : (3,) unit, kibo frame, into the cabin
    size : (2,) m, extents along the face-frame x and y axes
    open : True if it is an opening the sim models as a recess (the robot may physically enter
        ``recess_depth`` metres behind the face; the clear volume still ends at the face)
    recess_depth : m (0 for closed hatches, which are part of the wall)
    """

    name: str
    face: str
    centre: np.ndarray
    normal: np.ndarray
    size: np.ndarray
    open: bool
    recess_depth: float

    @property
    def pose(self) -> Pose:
        """T_kibo_hatch: origin at the hatch centre, axes of the face frame."""
        return Pose(self.centre, face_quat(self.face))


@dataclass(frozen=True)
class Dock:
    """Docking station: a box mounted on a rack face.

    pose : T_kibo_dock; origin at the centre of the dock face (the surface the robot docks
        against), z axis = dock-face normal pointing into the cabin, x/y in the dock face
    size : (3,) m, box extents along dock x, y and z (z = depth from the dock face back to
        the rack face it is mounted on)
    marker_id : id of the marker on the dock face (see markers.yaml)
    approach_distances : (n,) m, approach points along the dock normal, measured from the
        dock face to the robot centre, farthest first (the last one is the docked distance)
    """

    pose: Pose
    size: np.ndarray
    marker_id: int
    approach_distances: np.ndarray

    @property
    def normal(self) -> np.ndarray:
        """(3,) unit, kibo frame: dock-face normal into the cabin."""
        return rotmat_from_quat(self.pose.quat)[:, 2]

    def approach_point(self, distance: float) -> np.ndarray:
        """(3,) m, kibo frame: point ``distance`` m in front of the dock face."""
        return self.pose.position + distance * self.normal

    @property
    def box(self) -> Box:
        """Axis-aligned bounding box of the dock body, kibo frame."""
        R = rotmat_from_quat(self.pose.quat)
        hx, hy, d = 0.5 * self.size[0], 0.5 * self.size[1], self.size[2]
        local = np.array([[sx * hx, sy * hy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (0.0, -d)])
        pts = local @ R.T + self.pose.position
        return Box("dock", pts.min(axis=0), pts.max(axis=0))


@dataclass(frozen=True)
class ModuleGeometry:
    """The Kibo pressurized module interior.

    clear_min, clear_max : (3,) m, kibo frame, the clear volume between the rack faces
    bays : rack bays on the four rack faces
    hatches : hatches and openings
    dock : the docking station
    keep_out : default keep-out boxes (kibo frame) that planners and goal checks avoid
    bay_pitch : m, nominal bay spacing along x
    """

    clear_min: np.ndarray
    clear_max: np.ndarray
    bays: tuple[Bay, ...]
    hatches: tuple[Hatch, ...]
    dock: Dock
    keep_out: tuple[Box, ...]
    bay_pitch: float

    def bay(self, name: str) -> Bay:
        for b in self.bays:
            if b.name == name:
                return b
        raise KeyError(f"no bay named {name!r}")

    def hatch(self, name: str) -> Hatch:
        for h in self.hatches:
            if h.name == name:
                return h
        raise KeyError(f"no hatch named {name!r}")

    def face_plane(self, face: str) -> tuple[np.ndarray, np.ndarray]:
        """(point (3,), inward unit normal (3,)) of a face plane, kibo frame."""
        R = face_rotation(face)
        n = R[:, 2]
        p = 0.5 * (self.clear_min + self.clear_max)
        axis = int(np.argmax(np.abs(n)))
        p[axis] = self.clear_min[axis] if n[axis] > 0 else self.clear_max[axis]
        return p, n

    def face_extent(self, face: str) -> np.ndarray:
        """(2,) m, size of a face along its face-frame x and y axes."""
        R = face_rotation(face)
        size = self.clear_max - self.clear_min
        return np.array([abs(R[:, 0]) @ size, abs(R[:, 1]) @ size])

    def contains(self, point: np.ndarray, margin: float = 0.0) -> bool:
        """True if point (3,) m, kibo, is inside the clear volume shrunk by margin (m)."""
        p = np.asarray(point, dtype=float)
        return bool(np.all(p >= self.clear_min + margin) and np.all(p <= self.clear_max - margin))


@dataclass(frozen=True)
class Marker:
    """One square fiducial marker.

    id : dictionary id
    size : m, side length of the black square (the white quiet zone around it is extra)
    pose : T_kibo_marker; origin at the marker centre, z = outward normal (into the cabin,
        toward a viewer), x to the right and y up as seen by a viewer facing the marker
    surface : bay, face or ``dock`` the marker is mounted on
    """

    id: int
    size: float
    pose: Pose
    surface: str

    def corners_local(self) -> np.ndarray:
        """(4,3) m, marker frame, in OpenCV ArUco order: top-left, top-right, bottom-right,
        bottom-left = (-s/2, s/2, 0), (s/2, s/2, 0), (s/2, -s/2, 0), (-s/2, -s/2, 0)."""
        h = 0.5 * self.size
        return np.array([[-h, h, 0.0], [h, h, 0.0], [h, -h, 0.0], [-h, -h, 0.0]])

    def corners(self) -> np.ndarray:
        """(4,3) m, kibo frame, corners in OpenCV ArUco order (see corners_local)."""
        return self.pose.transform_points(self.corners_local())

    @property
    def normal(self) -> np.ndarray:
        """(3,) unit, kibo frame."""
        return rotmat_from_quat(self.pose.quat)[:, 2]


@dataclass(frozen=True)
class MarkerMap:
    """Marker map: dictionary name (a ``cv2.aruco.DICT_*`` name) and markers."""

    dictionary: str
    markers: tuple[Marker, ...]

    def by_id(self, marker_id: int) -> Marker:
        for m in self.markers:
            if m.id == marker_id:
                return m
        raise KeyError(f"no marker with id {marker_id}")

    @property
    def ids(self) -> np.ndarray:
        """(N,) int ids in map order."""
        return np.array([m.id for m in self.markers], dtype=int)

    def corners(self) -> np.ndarray:
        """(N,4,3) m, kibo frame, corners of every marker in OpenCV ArUco order."""
        return np.array([m.corners() for m in self.markers]).reshape(-1, 4, 3)


# ---------------------------------------------------------------------------------------------
# Loading and validation


def _data_path(path: str | Path | None, default: str) -> Path:
    if path is not None:
        return Path(path)
    return Path(str(resources.files("intball_nav") / "data" / default))


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ModuleConfigError(f"{path}: cannot read: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ModuleConfigError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ModuleConfigError(f"{path}: top level must be a mapping")
    return data


class _Reader:
    """Field access with error messages that name the file and the dotted field."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, field: str, message: str) -> ModuleConfigError:
        return ModuleConfigError(f"{self.path.name}: {field}: {message}")

    def get(self, data: Any, key: str, field: str) -> Any:
        if not isinstance(data, dict) or key not in data:
            raise self.fail(field, "missing")
        return data[key]

    def number(
        self, data: Any, key: str, field: str, lo: float = -np.inf, hi: float = np.inf, default=None
    ) -> float:
        if default is not None and (not isinstance(data, dict) or key not in data):
            return float(default)
        v = self.get(data, key, field)
        if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v):
            raise self.fail(field, f"must be a number, got {v!r}")
        if not lo <= v <= hi:
            raise self.fail(field, f"{v} out of range [{lo}, {hi}]")
        return float(v)

    def vector(self, data: Any, key: str, field: str, n: int) -> np.ndarray:
        v = self.get(data, key, field)
        if (
            not isinstance(v, list | tuple)
            or len(v) != n
            or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in v)
        ):
            raise self.fail(field, f"must be a list of {n} numbers, got {v!r}")
        a = np.array(v, dtype=float)
        if not np.all(np.isfinite(a)):
            raise self.fail(field, f"must be finite, got {v!r}")
        return a

    def string(self, data: Any, key: str, field: str, allowed: tuple[str, ...] | None = None) -> str:
        v = self.get(data, key, field)
        if not isinstance(v, str) or not v:
            raise self.fail(field, f"must be a non-empty string, got {v!r}")
        if allowed is not None and v not in allowed:
            raise self.fail(field, f"{v!r} not allowed; allowed: {', '.join(allowed)}")
        return v

    def items(self, data: Any, key: str, field: str, allow_empty: bool = False) -> list:
        v = self.get(data, key, field)
        if v is None and allow_empty:
            return []
        if not isinstance(v, list) or (not v and not allow_empty):
            raise self.fail(field, "must be a non-empty list")
        return v


def load_module(path: str | Path | None = None) -> ModuleGeometry:
    """Load and validate the module geometry (default: ``intball_nav/data/kibo.yaml``).

    Raises ModuleConfigError naming the file and the field (e.g. ``kibo.yaml: bays[3].x: ...``).
    """
    path = _data_path(path, DEFAULT_MODULE_PATH)
    data = _load_yaml(path)
    r = _Reader(path)
    if data.get("frame") != "kibo":
        raise r.fail("frame", f"must be 'kibo', got {data.get('frame')!r}")
    cv = r.get(data, "clear_volume", "clear_volume")
    cmin = r.vector(cv, "min", "clear_volume.min", 3)
    cmax = r.vector(cv, "max", "clear_volume.max", 3)
    if np.any(cmax - cmin < 0.5) or np.any(cmax - cmin > 20.0):
        raise r.fail("clear_volume", f"max - min must be in [0.5, 20] m per axis, got {cmax - cmin}")
    racks = r.get(data, "racks", "racks")
    pitch = r.number(racks, "bay_pitch", "racks.bay_pitch", 0.3, 3.0)

    proto = ModuleGeometry(cmin, cmax, (), (), None, (), pitch)  # type: ignore[arg-type]

    def on_face(field: str, face: str, centre: np.ndarray, size: np.ndarray) -> None:
        p0, n = proto.face_plane(face)
        if abs((centre - p0) @ n) > 1e-6:
            raise r.fail(field, f"centre {centre.tolist()} is not on the {face} plane")
        R = face_rotation(face)
        uv = np.array([(centre - p0) @ R[:, 0], (centre - p0) @ R[:, 1]])
        half = 0.5 * proto.face_extent(face)
        if np.any(np.abs(uv) + 0.5 * size > half + 1e-6):
            raise r.fail(field, f"rectangle (centre {centre.tolist()}, size {size.tolist()}) leaves the face")

    bays = []
    for i, b in enumerate(r.items(racks, "bays", "racks.bays")):
        f = f"racks.bays[{i}]"
        name = r.string(b, "name", f + ".name")
        face = r.string(b, "face", f + ".face", RACK_FACES)
        x = r.number(b, "x", f + ".x", float(cmin[0]), float(cmax[0]))
        width = r.number(b, "width", f + ".width", 0.1, 3.0)
        p0, n = proto.face_plane(face)
        centre = p0.copy()
        centre[0] = x
        extent = proto.face_extent(face)
        # x kibo is the face-frame x axis on port/starboard, the y axis on overhead/deck
        size = np.array([width, extent[1]]) if face in ("port", "starboard") else np.array([extent[0], width])
        on_face(f, face, centre, size)
        bays.append(Bay(name, face, centre, n, size))
    names = [b.name for b in bays]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise r.fail("racks.bays", f"duplicate bay names {dup}")

    hatches = []
    for i, h in enumerate(r.items(data, "hatches", "hatches")):
        f = f"hatches[{i}]"
        name = r.string(h, "name", f + ".name")
        face = r.string(h, "face", f + ".face", FACES)
        centre = r.vector(h, "centre", f + ".centre", 3)
        size = r.vector(h, "size", f + ".size", 2)
        if np.any(size <= 0.0):
            raise r.fail(f + ".size", f"must be positive, got {size.tolist()}")
        is_open = h.get("open", False)
        if not isinstance(is_open, bool):
            raise r.fail(f + ".open", f"must be true or false, got {is_open!r}")
        depth = r.number(h, "recess_depth", f + ".recess_depth", 0.0, 3.0, default=0.0)
        if is_open and depth <= 0.0:
            raise r.fail(f + ".recess_depth", "an open hatch needs recess_depth > 0")
        on_face(f, face, centre, size)
        hatches.append(Hatch(name, face, centre, face_rotation(face)[:, 2], size, is_open, depth))

    d = r.get(data, "dock", "dock")
    dpos = r.vector(d, "position", "dock.position", 3)
    dquat = r.vector(d, "quat", "dock.quat", 4)
    if abs(np.linalg.norm(dquat) - 1.0) > 1e-3:
        raise r.fail("dock.quat", f"must be a unit quaternion (x, y, z, w), got {dquat.tolist()}")
    dsize = r.vector(d, "size", "dock.size", 3)
    if np.any(dsize <= 0.0) or np.any(dsize > 1.0):
        raise r.fail("dock.size", f"must be in (0, 1] m, got {dsize.tolist()}")
    marker_id = r.get(d, "marker_id", "dock.marker_id")
    if not isinstance(marker_id, int) or isinstance(marker_id, bool) or marker_id < 0:
        raise r.fail("dock.marker_id", f"must be a non-negative integer, got {marker_id!r}")
    appr = np.array(
        [
            r.number({"v": v}, "v", f"dock.approach_distances[{i}]", 0.0, 2.0)
            for i, v in enumerate(r.items(d, "approach_distances", "dock.approach_distances"))
        ]
    )
    if np.any(np.diff(appr) >= 0.0):
        raise r.fail("dock.approach_distances", f"must be strictly decreasing, got {appr.tolist()}")
    dock = Dock(Pose(dpos, dquat), dsize, marker_id, appr)
    if not proto.contains(dpos, margin=-1e-6):
        raise r.fail("dock.position", f"{dpos.tolist()} is outside the clear volume")
    if not proto.contains(dock.approach_point(appr[0]), margin=0.0):
        raise r.fail("dock.approach_distances", "the first approach point is outside the clear volume")

    keep_out = []
    for i, k in enumerate(r.items(data, "keep_out", "keep_out", allow_empty=True)):
        f = f"keep_out[{i}]"
        name = r.string(k, "name", f + ".name")
        kmin = r.vector(k, "min", f + ".min", 3)
        kmax = r.vector(k, "max", f + ".max", 3)
        if np.any(kmax <= kmin):
            raise r.fail(f, f"max {kmax.tolist()} must exceed min {kmin.tolist()} on every axis")
        keep_out.append(Box(name, kmin, kmax))

    return ModuleGeometry(cmin, cmax, tuple(bays), tuple(hatches), dock, tuple(keep_out), pitch)


def load_marker_map(path: str | Path | None = None) -> MarkerMap:
    """Load and validate the marker map (default: ``intball_nav/data/markers.yaml``).

    Raises ModuleConfigError naming the file and the field (e.g. ``markers.yaml: markers[2].id``).
    """
    path = _data_path(path, DEFAULT_MARKERS_PATH)
    data = _load_yaml(path)
    r = _Reader(path)
    if data.get("frame") != "kibo":
        raise r.fail("frame", f"must be 'kibo', got {data.get('frame')!r}")
    dictionary = r.string(data, "dictionary", "dictionary", ARUCO_DICTIONARIES)
    n_ids = int(dictionary.rsplit("_", 1)[1])
    markers = []
    seen: set[int] = set()
    for i, m in enumerate(r.items(data, "markers", "markers")):
        f = f"markers[{i}]"
        mid = r.get(m, "id", f + ".id")
        if not isinstance(mid, int) or isinstance(mid, bool) or not 0 <= mid < n_ids:
            raise r.fail(f + ".id", f"must be an integer in [0, {n_ids - 1}] for {dictionary}, got {mid!r}")
        if mid in seen:
            raise r.fail(f + ".id", f"duplicate id {mid}")
        seen.add(mid)
        size = r.number(m, "size", f + ".size", 0.01, 1.0)
        pos = r.vector(m, "position", f + ".position", 3)
        quat = r.vector(m, "quat", f + ".quat", 4)
        if abs(np.linalg.norm(quat) - 1.0) > 1e-3:
            raise r.fail(f + ".quat", f"must be a unit quaternion (x, y, z, w), got {quat.tolist()}")
        surface = r.string(m, "surface", f + ".surface")
        markers.append(Marker(mid, size, Pose(pos, quat), surface))
    return MarkerMap(dictionary, tuple(markers))
