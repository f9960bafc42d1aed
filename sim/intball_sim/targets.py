"""Target panels for camera tasks and competitions: QR codes and ArUco markers on rack bays.

``place_targets(client_id, module, targets)`` adds one textured quad per ``TargetSpec`` to an
existing PyBullet client (after ``build_world``; the ``camera.Renderer`` must exist before
either). The quads follow the world's rendering rules (docs/module.md): an ``.obj`` mesh per
target (EGL makes bodies that share a mesh file share the last texture), ``STANDOFF`` (5 mm)
in front of the rack face (1 mm flickers under EGL), visual only (no collider).

Frames: a target's pose ``T_kibo_target`` has its origin at the centre of the code, z = the
bay normal (toward a viewer in the cabin), x right and y up as that viewer sees the code
(the face frame of the bay, turned by ``roll`` about z): the same convention as map markers,
so the reader can use ``SOLVEPNP_IPPE_SQUARE`` object points for both.

``size`` is the side of the code itself: the black square of an ArUco marker, the outer
edge of the finder patterns of a QR code (what ``cv2.QRCodeDetector`` returns as corners).
The printed panel adds a white quiet zone: one cell for ArUco, four modules for QR (the QR
standard). ArUco targets use the map dictionary with ids in ``TARGET_ID_RANGE``, disjoint
from the map's ids (0-146 and the dock's 99), so they never disturb marker localization.

Meshes and textures are generated deterministically into ``$INTBALL_CACHE`` (default
``~/.cache/intball``) under ``targets/`` keyed by a hash of each panel's content.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pybullet as p

from intball_nav.camera_tasks.reading import MAP_DICTIONARY, TARGET_ID_RANGE
from intball_nav.frames import Pose, quat_from_rotmat, rotmat_from_quat
from intball_nav.module import MarkerMap, ModuleGeometry
from intball_sim.make_markers import STANDOFF
from intball_sim.world import quad_obj

TARGET_DICTIONARY = MAP_DICTIONARY
"""ArUco dictionary of targets: the marker map's, so one detector finds both. Target ids:
``TARGET_ID_RANGE`` (200-249), defined with the reader in ``intball_nav.camera_tasks.reading``."""
QR_QUIET_MODULES = 4
"""White border of a QR panel, in modules (the QR standard's minimum)."""
PX_PER_MODULE = 12
"""Texture pixels per QR module / ArUco cell (nearest-neighbour, crisp edges)."""


@dataclass(frozen=True)
class TargetSpec:
    """One target panel on a rack bay.

    kind : ``"qr"`` or ``"aruco"``
    payload : the QR text, or the ArUco id (``TARGET_ID_RANGE``) as an int
    bay : bay name (``port_3``, ``deck_5``, ...)
    offset : (2,) m, code centre relative to the bay centre along the face-frame x and y
    size : m, side of the code (see module docstring)
    roll : rad, rotation of the code about the bay normal (counter-clockwise as seen)
    name : key in the result (default ``qr:<text>`` / ``aruco:<id>``)
    """

    kind: str
    payload: str | int
    bay: str
    offset: tuple[float, float] = (0.0, 0.0)
    size: float = 0.20
    roll: float = 0.0
    name: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("qr", "aruco"):
            raise ValueError(f"TargetSpec.kind {self.kind!r} not allowed; allowed: qr, aruco")
        if self.kind == "aruco":
            if isinstance(self.payload, bool) or not isinstance(self.payload, int | np.integer):
                raise ValueError(
                    f"TargetSpec.payload of an aruco target must be an int id, got {self.payload!r}"
                )
            if int(self.payload) not in TARGET_ID_RANGE:
                raise ValueError(
                    f"TargetSpec.payload {self.payload} out of the target id range "
                    f"[{TARGET_ID_RANGE.start}, {TARGET_ID_RANGE.stop - 1}]"
                )
        elif not isinstance(self.payload, str) or not self.payload:
            raise ValueError(
                f"TargetSpec.payload of a qr target must be non-empty text, got {self.payload!r}"
            )
        if not 0.02 <= self.size <= 1.0:
            raise ValueError(f"TargetSpec.size {self.size} m out of range [0.02, 1.0]")
        off = np.asarray(self.offset, dtype=float)
        if off.shape != (2,) or not np.all(np.isfinite(off)):
            raise ValueError(f"TargetSpec.offset must be 2 finite numbers, got {self.offset!r}")
        if not self.name:
            object.__setattr__(self, "name", f"{self.kind}:{self.payload}")


@dataclass(frozen=True)
class PlacedTarget:
    """A target in the world.

    spec : what was asked
    pose : T_kibo_target (origin at the code centre, 5 mm in front of the face; see module doc)
    body_id : PyBullet body of the panel
    panel_size : m, side of the printed panel including the quiet zone
    """

    spec: TargetSpec
    pose: Pose
    body_id: int
    panel_size: float

    @property
    def position(self) -> np.ndarray:
        """(3,) m, kibo frame, centre of the code."""
        return self.pose.position

    def corners(self) -> np.ndarray:
        """(4,3) m, kibo frame, code corners in OpenCV order: top-left, top-right,
        bottom-right, bottom-left as a viewer sees them."""
        h = 0.5 * self.spec.size
        local = np.array([[-h, h, 0.0], [h, h, 0.0], [h, -h, 0.0], [-h, -h, 0.0]])
        return self.pose.transform_points(local)


def qr_image(text: str, px_per_module: int = PX_PER_MODULE) -> tuple[np.ndarray, int]:
    """(RGB uint8 panel image with the quiet zone, number of modules across the code)."""
    code = cv2.QRCodeEncoder.create().encode(text)
    dark = np.argwhere(code < 128)
    (r0, c0), (r1, c1) = dark.min(axis=0), dark.max(axis=0)
    code = code[r0 : r1 + 1, c0 : c1 + 1]  # strip the encoder's own border
    modules = code.shape[0]
    img = cv2.resize(code, None, fx=px_per_module, fy=px_per_module, interpolation=cv2.INTER_NEAREST)
    q = QR_QUIET_MODULES * px_per_module
    img = cv2.copyMakeBorder(img, q, q, q, q, cv2.BORDER_CONSTANT, value=255)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB), modules


def aruco_image(
    marker_id: int, dictionary: str = TARGET_DICTIONARY, px_per_cell: int = PX_PER_MODULE
) -> np.ndarray:
    """RGB uint8 marker image with a one-cell white quiet zone (like the map's markers)."""
    d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, dictionary))
    cells = d.markerSize + 2
    img = cv2.aruco.generateImageMarker(d, int(marker_id), cells * px_per_cell)
    q = px_per_cell
    img = cv2.copyMakeBorder(img, q, q, q, q, cv2.BORDER_CONSTANT, value=255)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)


def panel_image(spec: TargetSpec) -> tuple[np.ndarray, float]:
    """(RGB uint8 texture, panel side in m including the quiet zone) of a target."""
    if spec.kind == "qr":
        img, modules = qr_image(str(spec.payload))
        return img, spec.size * (modules + 2 * QR_QUIET_MODULES) / modules
    d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, TARGET_DICTIONARY))
    cells = d.markerSize + 2
    return aruco_image(int(spec.payload)), spec.size * (cells + 2) / cells


def _cache_dir() -> Path:
    env = os.environ.get("INTBALL_CACHE")
    return (Path(env) if env else Path.home() / ".cache" / "intball") / "targets"


def _write_assets(spec: TargetSpec) -> tuple[Path, Path, float]:
    """(.obj, .png, panel side m) of a target, written once per content hash (atomic)."""
    img, side = panel_image(spec)
    key = hashlib.sha256(
        repr((spec.kind, spec.payload, round(side, 9), img.shape, PX_PER_MODULE, QR_QUIET_MODULES)).encode()
    ).hexdigest()[:16]
    stem = re.sub(r"[^A-Za-z0-9_-]", "_", f"{spec.kind}_{spec.payload}")[:40] + f"-{key}"
    root = _cache_dir()
    obj, png = root / f"{stem}.obj", root / f"{stem}.png"
    if obj.exists() and png.exists():
        return obj, png, side
    root.mkdir(parents=True, exist_ok=True)
    for path, write in (
        (png, lambda f: cv2.imwrite(f, cv2.cvtColor(img, cv2.COLOR_RGB2BGR))),
        (obj, lambda f: Path(f).write_text(quad_obj(spec.name, side, side))),
    ):
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=root)
        os.close(fd)
        write(tmp)
        os.replace(tmp, path)
    return obj, png, side


def target_pose(module: ModuleGeometry, spec: TargetSpec) -> Pose:
    """T_kibo_target of a spec: bay centre + offset in the face plane, ``STANDOFF`` in front."""
    bay = module.bay(spec.bay)
    off = np.asarray(spec.offset, dtype=float)
    half_panel = 0.5 * panel_image(spec)[1]
    if np.any(np.abs(off) + half_panel > 0.5 * bay.size + 1e-9):
        raise ValueError(
            f"target {spec.name}: panel at offset {off.tolist()} m (half side {half_panel:.3f} m) "
            f"does not fit in bay {bay.name} of size {bay.size.tolist()} m"
        )
    R = rotmat_from_quat(bay.pose.quat)
    c, s = np.cos(spec.roll), np.sin(spec.roll)
    Rt = np.column_stack([c * R[:, 0] + s * R[:, 1], -s * R[:, 0] + c * R[:, 1], R[:, 2]])
    centre = bay.centre + off[0] * R[:, 0] + off[1] * R[:, 1] + STANDOFF * R[:, 2]
    return Pose(centre, quat_from_rotmat(Rt))


def place_targets(
    client_id: int,
    module: ModuleGeometry,
    targets: list[TargetSpec],
    *,
    marker_map: MarkerMap | None = None,
) -> dict[str, PlacedTarget]:
    """Add target panels to a PyBullet client; returns them by ``TargetSpec.name``.

    marker_map : if given, panels must not cover a map marker (printed square with its quiet
        zone), so marker localization keeps working.
    Raises ValueError for duplicate names, an unknown bay (KeyError), a panel that does not fit
    in its bay, or a panel that may overlap another panel or a map marker (conservative test
    on circumscribed circles, so rolled panels are covered too).
    """
    names = [t.name for t in targets]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"place_targets: duplicate target names {dup}")
    poses = [target_pose(module, t) for t in targets]
    sides = [panel_image(t)[1] for t in targets]
    others = [(t.name, pose.position, side) for t, pose, side in zip(targets, poses, sides, strict=True)]
    if marker_map is not None:
        others += [(f"map marker {m.id}", m.pose.position, m.size * 8.0 / 6.0) for m in marker_map.markers]
    for i in range(len(targets)):
        for j, (other, centre, side) in enumerate(others):
            if j == i:
                continue
            if j < len(targets) and j > i:
                continue
            if np.linalg.norm(poses[i].position - centre) < (sides[i] + side) / np.sqrt(2.0):
                raise ValueError(f"place_targets: panel {targets[i].name} may overlap {other}")
    out: dict[str, PlacedTarget] = {}
    for spec, pose in zip(targets, poses, strict=True):
        obj, png, side = _write_assets(spec)
        vis = p.createVisualShape(
            p.GEOM_MESH, fileName=str(obj), meshScale=[1, 1, 1], physicsClientId=client_id
        )
        body = p.createMultiBody(
            baseMass=0.0,
            baseCollisionShapeIndex=-1,
            baseVisualShapeIndex=vis,
            basePosition=pose.position.tolist(),
            baseOrientation=pose.quat.tolist(),
            useMaximalCoordinates=True,
            physicsClientId=client_id,
        )
        tex = p.loadTexture(str(png), physicsClientId=client_id)
        p.changeVisualShape(body, -1, textureUniqueId=tex, rgbaColor=[1, 1, 1, 1], physicsClientId=client_id)
        out[spec.name] = PlacedTarget(spec, pose, body, side)
    return out
