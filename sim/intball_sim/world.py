"""Build the Kibo module in a PyBullet client: collision walls, textured rack faces, markers.

Rendering rules learned the hard way (docs/module.md, engineering notes):

- Textured surfaces are quad meshes from .obj files, one file per textured object
  (TinyRenderer shows one colour per face on textured boxes; EGL crashes on raw-vertex
  meshes and makes objects sharing a mesh file share the last texture).
- Each wall body holds its collider AND its visual (a collider without a visual is drawn
  grey and z-fights the textured quad).
- Markers float ``make_markers.STANDOFF`` (5 mm) in front of the wall (1 mm flickers in EGL).
- Meshes and textures are generated deterministically into a cache directory keyed by a
  hash of the geometry, marker map and texture version (``~/.cache/intball/world-<hash>``,
  or ``$INTBALL_CACHE``). After ``resetSimulation`` EGL shows stale textures: reconnect.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pybullet as p

from intball_nav.frames import Pose, quat_from_rotmat
from intball_nav.module import RACK_FACES, MarkerMap, ModuleGeometry, face_rotation
from intball_sim import textures

WALL_THICKNESS = 0.10
"""m, thickness of the collision slabs behind every surface."""


@dataclass(frozen=True)
class World:
    """Body ids of a built module (all static, mass 0).

    walls : every body with a collider that bounds the cabin (rack bays, end-strips, end walls,
        recess walls); a backend reports contacts with these as wall collisions
    obstacles : other colliders inside the cabin (dock, keep-out boxes), by name
    markers : marker id -> visual-only body id
    names : body id -> descriptive name (bay name, ``entrance``, ``dock``, ...)
    cache_dir : where the meshes and textures live
    """

    client_id: int
    walls: tuple[int, ...]
    obstacles: dict[str, int]
    markers: dict[int, int]
    names: dict[int, str] = field(default_factory=dict)
    cache_dir: Path | None = None

    @property
    def colliders(self) -> tuple[int, ...]:
        """All static bodies with collision shapes (walls + obstacles)."""
        return self.walls + tuple(self.obstacles.values())


@dataclass(frozen=True)
class _Surface:
    """A textured rectangle with an optional collision slab behind it."""

    name: str
    pose: Pose  # centre of the visible surface; z = normal toward the viewer
    size: tuple[float, float]  # m along local x, y
    kind: str  # rack | bulkhead | plain | marker
    collide: bool = True
    extra: tuple = ()


def _surfaces(module: ModuleGeometry, markers: MarkerMap) -> list[_Surface]:
    """Every textured rectangle of the module, in a fixed order."""
    out: list[_Surface] = []
    cmin, cmax = module.clear_min, module.clear_max
    for face in RACK_FACES:
        R = face_rotation(face)
        q = quat_from_rotmat(R)
        p0, _ = module.face_plane(face)
        ext = module.face_extent(face)
        across_len = ext[1] if face in ("port", "starboard") else ext[0]
        bays = sorted((b for b in module.bays if b.face == face), key=lambda b: b.centre[0])
        for b in bays:
            out.append(_Surface(b.name, Pose(b.centre, q), (float(b.size[0]), float(b.size[1])), "rack"))
        # whatever the bays leave uncovered along x becomes bulkhead strips (end cones) or, at
        # an open hatch, strips beside the opening
        spans = sorted(
            (b.centre[0] - 0.5 * _along(face, b.size), b.centre[0] + 0.5 * _along(face, b.size)) for b in bays
        )
        gaps, x = [], float(cmin[0])
        for a, c in spans:
            if a > x + 1e-6:
                gaps.append((x, a))
            x = max(x, c)
        if x < cmax[0] - 1e-6:
            gaps.append((x, float(cmax[0])))
        for k, (a, c) in enumerate(gaps):
            hatch = next(
                (
                    h
                    for h in module.hatches
                    if h.face == face and a - 1e-6 <= h.centre[0] <= c + 1e-6 and h.open
                ),
                None,
            )
            centre = p0.copy()
            centre[0] = 0.5 * (a + c)
            if hatch is None:
                size = (c - a, across_len) if face in ("port", "starboard") else (across_len, c - a)
                out.append(_Surface(f"{face}_strip_{k}", Pose(centre, q), size, "bulkhead"))
                continue
            if abs(_along(face, hatch.size) - (c - a)) > 1e-6:
                raise ValueError(f"opening {hatch.name} must span the whole gap x {a}..{c} between bays")
            # strips on both sides of the opening (across the module)
            across_axis = R[:, 0] if face in ("overhead", "deck") else R[:, 1]
            hw = 0.5 * (hatch.size[0] if face in ("overhead", "deck") else hatch.size[1])
            side = 0.5 * across_len - hw
            for s in (-1.0, 1.0):
                c2 = centre + s * (hw + 0.5 * side) * across_axis
                size = (side, c - a) if face in ("overhead", "deck") else (c - a, side)
                out.append(_Surface(f"{face}_{hatch.name}_side_{int(s > 0)}", Pose(c2, q), size, "rack"))
            # the recess: four walls and a cap (the cap is a closed hatch)
            d = hatch.recess_depth
            hu, hv = 0.5 * hatch.size[0], 0.5 * hatch.size[1]
            n = R[:, 2]
            cap_centre = hatch.centre - d * n
            door = (0.8 * float(hatch.size[0]), 0.8 * float(hatch.size[1]))
            cap_size = (float(hatch.size[0]), float(hatch.size[1]))
            out.append(
                _Surface(f"{hatch.name}_cap", Pose(cap_centre, q), cap_size, "bulkhead", True, (door,))
            )
            for axis, half, other in ((0, hu, hv), (1, hv, hu)):
                for s in (-1.0, 1.0):
                    # wall normal points into the recess (toward the opening's centre line)
                    zn = -s * R[:, axis]
                    yv = -n  # up = away from the cabin, into the recess
                    xv = np.cross(yv, zn)
                    Rw = np.column_stack([xv, yv, zn])
                    c3 = hatch.centre + s * half * R[:, axis] - 0.5 * d * n
                    out.append(
                        _Surface(
                            f"{hatch.name}_wall_{axis}{int(s > 0)}",
                            Pose(c3, quat_from_rotmat(Rw)),
                            (2 * other, d),
                            "plain",
                        )
                    )
    for face in ("entrance", "far"):
        R = face_rotation(face)
        p0, _ = module.face_plane(face)
        ext = module.face_extent(face)
        hatch = next((h for h in module.hatches if h.face == face), None)
        extra = (tuple(hatch.size.tolist()),) if hatch is not None else ()
        out.append(
            _Surface(
                face, Pose(p0, quat_from_rotmat(R)), (float(ext[0]), float(ext[1])), "bulkhead", True, extra
            )
        )
    for m in markers.markers:
        side = m.size + 2.0 * _quiet(m.size, markers.dictionary)
        out.append(
            _Surface(f"marker_{m.id}", m.pose, (side, side), "marker", False, (markers.dictionary, m.id))
        )
    return out


def _quiet(size: float, dictionary: str) -> float:
    """Quiet-zone width (m) around a marker of side ``size``: one cell (size / 6 for 4x4)."""
    bits = int(dictionary.split("_")[1].split("X")[0])
    return size / (bits + 2)


def _along(face: str, size: np.ndarray) -> float:
    return float(size[1] if face in ("overhead", "deck") else size[0])


def _texture(s: _Surface) -> np.ndarray:
    if s.kind == "rack":
        return textures.rack_panel(s.name, *s.size)
    if s.kind == "bulkhead":
        hatch = s.extra[0] if s.extra else None
        return textures.bulkhead(s.name, *s.size, hatch_size_m=hatch)
    if s.kind == "plain":
        return textures.plain(s.name, *s.size, colour=(150, 156, 166))
    return textures.marker(s.extra[0], s.extra[1])


def quad_obj(name: str, width: float, height: float) -> str:
    """Wavefront .obj text of a textured quad centred on its origin (m): local z = normal
    toward the viewer, texture top = +y. One file per textured object (EGL needs files, not
    raw vertices; TinyRenderer shows one colour per face on a textured box)."""
    x1, y1 = 0.5 * width, 0.5 * height
    return _OBJ.format(name=name, x0=-x1, y0=-y1, x1=x1, y1=y1)


_OBJ = """# quad {name}: local z = normal toward the viewer; texture top = +y, left = -x
v {x0:.6f} {y0:.6f} 0
v {x1:.6f} {y0:.6f} 0
v {x1:.6f} {y1:.6f} 0
v {x0:.6f} {y1:.6f} 0
vt 0 0
vt 1 0
vt 1 1
vt 0 1
vn 0 0 1
f 1/1/1 2/2/1 3/3/1
f 1/1/1 3/3/1 4/4/1
"""


def _cache_key(surfaces: list[_Surface]) -> str:
    h = hashlib.sha256(f"v{textures.TEXTURE_VERSION}:{textures.PX_PER_M}".encode())
    for s in surfaces:
        h.update(
            repr(
                (
                    s.name,
                    np.round(s.pose.position, 6).tolist(),
                    np.round(s.pose.quat, 9).tolist(),
                    s.size,
                    s.kind,
                    s.extra,
                )
            ).encode()
        )
    return h.hexdigest()[:16]


def _cache_root() -> Path:
    env = os.environ.get("INTBALL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "intball"


def _write_assets(surfaces: list[_Surface]) -> Path:
    """Generate .obj + .png files once per content hash; safe against concurrent builders."""
    root = _cache_root()
    target = root / f"world-{_cache_key(surfaces)}"
    if (target / "done").exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="world-tmp-", dir=root))
    for i, s in enumerate(surfaces):
        (tmp / f"{i:03d}.obj").write_text(quad_obj(s.name, s.size[0], s.size[1]))
        cv2.imwrite(str(tmp / f"{i:03d}.png"), cv2.cvtColor(_texture(s), cv2.COLOR_RGB2BGR))
    (tmp / "done").write_text("ok\n")
    try:
        tmp.rename(target)
    except OSError:  # another process won the race: use its copy
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()
    return target


def build_world(
    client_id: int,
    module: ModuleGeometry,
    markers: MarkerMap,
    *,
    textures: bool = True,
    marker_ids: Collection[int] | None = None,
) -> World:
    """Create the module in an existing PyBullet client (DIRECT, gravity set by the caller).

    textures=False skips texture loading (physics-only runs; surfaces render white).
    marker_ids : ids of the map markers to put in the world; None = all, ``()`` = none (e.g.
        natural-feature runs, or markers covered/removed as a perturbation). The asset cache is
        shared by every subset.
    Create the ``camera.Renderer`` first if you will render with EGL.
    """
    keep = None if marker_ids is None else {int(i) for i in marker_ids}
    unknown = sorted(keep - {m.id for m in markers.markers}) if keep is not None else []
    if unknown:
        raise ValueError(f"build_world: marker_ids {unknown} are not in the marker map")
    surfaces = _surfaces(module, markers)
    cache = _write_assets(surfaces)
    walls: list[int] = []
    marker_bodies: dict[int, int] = {}
    names: dict[int, str] = {}
    for i, s in enumerate(surfaces):
        if s.kind == "marker" and keep is not None and int(s.extra[1]) not in keep:
            continue
        vis = p.createVisualShape(
            p.GEOM_MESH, fileName=str(cache / f"{i:03d}.obj"), meshScale=[1, 1, 1], physicsClientId=client_id
        )
        col = -1
        if s.collide:
            col = p.createCollisionShape(
                p.GEOM_BOX,
                halfExtents=[0.5 * s.size[0], 0.5 * s.size[1], 0.5 * WALL_THICKNESS],
                collisionFramePosition=[0.0, 0.0, -0.5 * WALL_THICKNESS],
                physicsClientId=client_id,
            )
        body = p.createMultiBody(
            baseMass=0.0,
            baseCollisionShapeIndex=col,
            baseVisualShapeIndex=vis,
            basePosition=s.pose.position.tolist(),
            baseOrientation=s.pose.quat.tolist(),
            # Static bodies as maximal-coordinate rigid bodies: a physics step over the
            # whole module costs ~5 us instead of ~17 us (measured, bench/bench_headless.py).
            useMaximalCoordinates=True,
            physicsClientId=client_id,
        )
        if textures:
            tex = p.loadTexture(str(cache / f"{i:03d}.png"), physicsClientId=client_id)
            p.changeVisualShape(
                body, -1, textureUniqueId=tex, rgbaColor=[1, 1, 1, 1], physicsClientId=client_id
            )
        names[body] = s.name
        if s.kind == "marker":
            marker_bodies[int(s.extra[1])] = body
        else:
            walls.append(body)
    obstacles: dict[str, int] = {}
    boxes = [(module.dock.box, (0.35, 0.37, 0.40, 1.0))] + [
        (k, (0.93, 0.92, 0.86, 1.0)) for k in module.keep_out
    ]
    for box, rgba in boxes:
        half = (0.5 * box.size).tolist()
        col = p.createCollisionShape(p.GEOM_BOX, halfExtents=half, physicsClientId=client_id)
        vis = p.createVisualShape(
            p.GEOM_BOX, halfExtents=half, rgbaColor=list(rgba), physicsClientId=client_id
        )
        body = p.createMultiBody(
            0.0, col, vis, box.centre.tolist(), useMaximalCoordinates=True, physicsClientId=client_id
        )
        obstacles[box.name] = body
        names[body] = box.name
    return World(client_id, tuple(walls), obstacles, marker_bodies, names, cache)


def marker_layout_image(module: ModuleGeometry, markers: MarkerMap, px_per_m: int = 80) -> np.ndarray:
    """Unfolded map of the four rack faces with bays and marker ids (RGB uint8), for docs.

    Each face is drawn as seen from inside the cabin with +x kibo to the right."""
    length = float(module.clear_max[0] - module.clear_min[0])
    rows = []
    for face in RACK_FACES:
        R = face_rotation(face)
        p0, _ = module.face_plane(face)
        across = 1 if face in ("port", "starboard") else 0  # face axis that runs across the module
        ext = module.face_extent(face)[across]
        w, h = round(length * px_per_m), round(ext * px_per_m)
        img = np.full((h + 30, w, 3), 255, np.uint8)

        def to_px(point: np.ndarray, p0=p0, R=R, across=across, h=h) -> tuple[int, int]:
            a = float((point - p0) @ R[:, across])
            # across the face: top of the strip = +across axis; left-right: +x kibo
            return round((point[0] - module.clear_min[0]) * px_per_m), round(30 + h / 2 - a * px_per_m)

        cv2.putText(img, face, (4, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.rectangle(img, (0, 30), (w - 1, 30 + h - 1), (0, 0, 0), 1)
        for b in module.bays:
            if b.face != face:
                continue
            x0 = round((b.centre[0] - 0.5 * _along(face, b.size) - module.clear_min[0]) * px_per_m)
            cv2.line(img, (x0, 30), (x0, 30 + h), (120, 120, 120), 1)
            cv2.putText(img, b.name, (x0 + 3, 30 + h - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (90, 90, 90), 1)
        for hatch in module.hatches:
            if hatch.face == face:
                e = np.abs(R[:, 0]) * hatch.size[0] / 2 + np.abs(R[:, 1]) * hatch.size[1] / 2
                cv2.rectangle(img, to_px(hatch.centre - e), to_px(hatch.centre + e), (40, 40, 200), 2)
                cv2.putText(
                    img, hatch.name, to_px(hatch.centre), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (40, 40, 200)
                )
        for box in (module.dock.box, *module.keep_out):
            if (
                face == "overhead"
                and box.max[2] >= module.clear_max[2] - 1e-6
                or (face == "deck" and box.min[2] <= module.clear_min[2] + 1e-6)
            ):
                cv2.rectangle(img, to_px(box.min), to_px(box.max), (200, 120, 0), 2)
                cv2.putText(img, box.name, to_px(box.min), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (200, 120, 0))
        for m in markers.markers:
            if abs((m.pose.position - p0) @ R[:, 2] - 0.005) > 0.02 or m.surface == "dock":
                continue
            c = m.corners()
            pts = np.array([to_px(q) for q in c], np.int32)
            cv2.fillConvexPoly(img, pts, (0, 0, 0))
            cv2.putText(
                img,
                str(m.id),
                to_px(m.pose.position + 0.1 * R[:, across]),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.35,
                (0, 0, 160),
            )
        rows.append(img)
    return np.concatenate(rows, axis=0)


def _snapshots(out_dir: Path) -> None:
    """Render the documentation pictures of docs/module.md into out_dir."""
    from intball_nav.frames import quat_from_rpy
    from intball_nav.module import load_marker_map, load_module
    from intball_sim.camera import Renderer, load_cameras

    module, markers = load_module(), load_marker_map()
    cams = load_cameras()
    views = {
        "kibo_main_axis": ("main", Pose([0.6, 0.0, 0.0], quat_from_rpy(0.0, 0.0, 0.0))),
        "kibo_main_dock": ("main", Pose([2.2, 0.2, -0.2], quat_from_rpy(0.0, np.deg2rad(-30), np.pi))),
        "kibo_main_elm_ps": ("main", Pose([5.5, 0.0, -0.3], quat_from_rpy(0.0, np.deg2rad(-45), 0.0))),
        "kibo_nav_left": ("nav_left", Pose([4.0, 0.3, 0.2], quat_from_rpy(0.0, 0.0, np.deg2rad(-30)))),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    for kind in ("egl", "tiny"):
        if kind == "tiny":
            os.environ["INTBALL_RENDERER"] = "tiny"
        cid = p.connect(p.DIRECT)
        renderer = Renderer(cid)
        build_world(cid, module, markers)
        for name, (cam, T_kibo_base) in views.items():
            if renderer.kind == "tiny" and name not in ("kibo_nav_left", "kibo_main_axis"):
                continue
            rgb, _ = renderer.render(cams[cam], T_kibo_base.compose(cams[cam].T_base_cam))
            path = out_dir / f"{name}_{renderer.kind}.png"
            cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            print(f"wrote {path}")
        renderer.close()
        p.disconnect(cid)
    layout = marker_layout_image(module, markers)
    cv2.imwrite(str(out_dir / "kibo_marker_layout.png"), cv2.cvtColor(layout, cv2.COLOR_RGB2BGR))
    print(f"wrote {out_dir / 'kibo_marker_layout.png'}")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Render the Kibo documentation pictures.")
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    _snapshots(parser.parse_args().out)
