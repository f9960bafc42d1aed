"""Natural-feature map builder: a known-pose survey of the rendered module (``intball map build``).

The survey renders the module WITHOUT fiducial markers (``build_world(..., marker_ids=())``) from
a deterministic set of camera poses and hands the images, depth images and poses to
``intball_nav.vision.feature_map.build_feature_map_from_views``:

- **Stations** along the module: ``n_views / 18`` camera positions spread evenly in x over the
  clear volume shrunk by ``SURVEY_MARGIN`` (0.25 m), cycling through nine cross-section offsets
  (the centreline, the four diagonal points at 60 % of the shrunk half-extents and four points
  at 90 % toward each rack face, 0.33-0.35 m from it, for close-range views), each jittered by
  up to 5 cm (seeded).
- **Orientations** per station: the optical axis along the 6 axis directions and the 12 edge
  diagonals (45 deg between two axes), so every station sees all four rack faces and, near the
  ends, the end walls; a seeded random roll about the optical axis per view.
- A close-range **wall pass** (``wall_pass_poses``) on top of the ``n_views`` station views:
  cameras ``WALL_STANDOFF`` from each rack face, looking at it straight and tilted along x.
- Known poses are legitimate here: this is the survey, not the run-time estimator.

The default map lives in a cache keyed by the content hash of the world assets (geometry and
textures), the camera model, the builder settings and ``FORMAT_VERSION``:
``$INTBALL_CACHE/maps/features-<hash>.npz`` (default cache ``~/.cache/intball``);
``default_feature_map()`` builds it when missing.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
import pybullet as p

from intball_nav.frames import Pose, quat_from_rotmat
from intball_nav.module import RACK_FACES, ModuleGeometry, face_rotation, load_marker_map, load_module
from intball_nav.vision.feature_map import (
    FORMAT_VERSION,
    FeatureMap,
    MapBuildParams,
    SurveyView,
    build_feature_map_from_views,
    load_feature_map,
    save_feature_map,
)
from intball_sim import world as world_mod
from intball_sim.camera import CameraModel, Renderer, load_cameras

BUILDER_VERSION = 2
"""Bumped whenever the survey or the build algorithm changes (part of the cache key)."""
DEFAULT_VIEWS = 1800
DEFAULT_SEED = 0
DEFAULT_CAMERA = "nav_left"
SURVEY_MARGIN = 0.25
"""m, survey camera centres stay this far inside the clear volume."""
WALL_STANDOFF = 0.40
"""m, distance of the close-range wall-pass cameras from the rack face they look at."""
WALL_STEP = 0.25
"""m, spacing of the wall-pass cameras along the module."""
WALL_ACROSS = (-0.45, 0.45)
"""m, offsets of the wall-pass camera rows across each rack face (from its centre line)."""
WALL_TILTS_DEG = (-35.0, 0.0, 35.0)
"""deg, tilts of the wall-pass optical axes from the face normal, toward -x / +x kibo."""

_AXES = np.eye(3)
SURVEY_DIRECTIONS = np.array(
    [s * _AXES[i] for i in range(3) for s in (1.0, -1.0)]
    + [
        (s1 * _AXES[i] + s2 * _AXES[j]) / np.sqrt(2.0)
        for i in range(3)
        for j in range(i + 1, 3)
        for s1 in (1.0, -1.0)
        for s2 in (1.0, -1.0)
    ]
)
"""(18,3) unit optical-axis directions of one survey station (kibo frame)."""
_CROSS = np.array(
    [
        (0.0, 0.0),
        (0.6, 0.6),
        (0.9, 0.0),
        (-0.6, -0.6),
        (0.0, 0.9),
        (0.6, -0.6),
        (-0.9, 0.0),
        (-0.6, 0.6),
        (0.0, -0.9),
    ]
)
"""Cross-section offsets of successive stations, fractions of the survey box half-extents (y, z)."""


def look_rotation(direction: np.ndarray, roll: float) -> np.ndarray:
    """(3,3) R_kibo_cam of an optical frame whose z axis is ``direction`` (unit, kibo), rolled by
    ``roll`` (rad) about it."""
    z = np.asarray(direction, dtype=float) / np.linalg.norm(direction)
    ref = np.array([0.0, 0.0, 1.0]) if abs(z[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x = np.cross(ref, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    c, s = np.cos(roll), np.sin(roll)
    return np.column_stack([c * x + s * y, -s * x + c * y, z])


def survey_poses(
    module: ModuleGeometry, n_views: int, seed: int, x_range: tuple[float, float] | None = None
) -> list[Pose]:
    """Deterministic survey camera poses T_kibo_cam (optical frames): ``n_views`` station views,
    then the wall pass.

    x_range : (x0, x1) m, kibo frame: survey only this stretch of the module (default: all)."""
    rng = np.random.default_rng(seed)
    lo = module.clear_min + SURVEY_MARGIN
    hi = module.clear_max - SURVEY_MARGIN
    if x_range is not None:
        lo[0], hi[0] = max(lo[0], min(x_range)), min(hi[0], max(x_range))
    centre, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
    n_dir = len(SURVEY_DIRECTIONS)
    n_st = max(1, int(np.ceil(n_views / n_dir)))
    poses: list[Pose] = []
    for k in range(n_st):
        x = lo[0] + (k + 0.5) / n_st * (hi[0] - lo[0])
        cy, cz = _CROSS[k % len(_CROSS)]
        c = np.array([x, centre[1] + cy * half[1], centre[2] + cz * half[2]]) + rng.uniform(-0.05, 0.05, 3)
        c = np.clip(c, lo, hi)
        for d in SURVEY_DIRECTIONS:
            R = look_rotation(d, rng.uniform(-np.pi, np.pi))
            poses.append(Pose(c, quat_from_rotmat(R)))
    return poses[:n_views] + wall_pass_poses(module, rng, (lo[0], hi[0]))


def wall_pass_poses(
    module: ModuleGeometry, rng: np.random.Generator, x_span: tuple[float, float]
) -> list[Pose]:
    """Close-range views of the four rack faces: cameras ``WALL_STANDOFF`` from each face in rows
    ``WALL_ACROSS`` across it, every ``WALL_STEP`` along x within ``x_span``, looking at the face
    with the tilts ``WALL_TILTS_DEG`` along x and a random roll (the stations alone see the
    racks from >= 0.6 m, too far for the descriptors of a camera 0.3 m from a rack)."""
    poses: list[Pose] = []
    xs = np.arange(x_span[0], x_span[1] + 1e-9, WALL_STEP)
    for face in RACK_FACES:
        R_face = face_rotation(face)
        p0, n = module.face_plane(face)
        across = R_face[:, 0] if abs(R_face[0, 1]) > 0.9 else R_face[:, 1]  # in-face axis normal to x
        for x in xs:
            for a in WALL_ACROSS:
                c = p0 + WALL_STANDOFF * n + a * across
                c[0] = x
                c = c + rng.uniform(-0.03, 0.03, 3)
                for tilt in np.radians(WALL_TILTS_DEG):
                    d = -n * np.cos(tilt) + np.array([np.sin(tilt), 0.0, 0.0])
                    R = look_rotation(d, rng.uniform(-np.pi, np.pi))
                    poses.append(Pose(c, quat_from_rotmat(R)))
    return poses


def _open_world(markers: bool) -> tuple[int, Renderer]:
    """DIRECT client with the renderer loaded first (EGL), then the module (markers or not)."""
    cid = p.connect(p.DIRECT)
    renderer = Renderer(cid)
    marker_map = load_marker_map()
    kwargs = {} if markers else {"marker_ids": ()}
    try:
        world = world_mod.build_world(cid, load_module(), marker_map, **kwargs)
    except TypeError:  # an older build_world without marker_ids: remove the marker bodies instead
        world = world_mod.build_world(cid, load_module(), marker_map)
        if not markers:
            for body in world.markers.values():
                p.removeBody(body, physicsClientId=cid)
    return cid, renderer


def world_content_hash() -> str:
    """Content hash of the module geometry, markers and textures (the world asset cache key)."""
    return world_mod._cache_key(world_mod._surfaces(load_module(), load_marker_map()))


def map_cache_key(
    *, seed: int, n_views: int, camera: CameraModel, markers: bool, x_range: tuple[float, float] | None = None
) -> str:
    """16 hex digits naming a map build: world content, camera, survey and builder settings."""
    blob = json.dumps(
        {
            "world": world_content_hash(),
            "format": FORMAT_VERSION,
            "builder": BUILDER_VERSION,
            "params": asdict(MapBuildParams()),
            "camera": [camera.name, camera.width, camera.height, np.asarray(camera.K).round(6).tolist()],
            "seed": seed,
            "views": n_views,
            "markers": markers,
            "x_range": list(x_range) if x_range is not None else None,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def default_map_path(
    *, seed: int = DEFAULT_SEED, n_views: int = DEFAULT_VIEWS, camera: str = DEFAULT_CAMERA
) -> Path:
    """``$INTBALL_CACHE/maps/features-<hash>.npz`` (default cache ``~/.cache/intball``)."""
    model = load_cameras()[camera]
    key = map_cache_key(seed=seed, n_views=n_views, camera=model, markers=False)
    return world_mod._cache_root() / "maps" / f"features-{key}.npz"


def build_feature_map(
    out_path: str | Path | None,
    *,
    seed: int = DEFAULT_SEED,
    n_views: int = DEFAULT_VIEWS,
    camera: str = DEFAULT_CAMERA,
    markers: bool = False,
    x_range: tuple[float, float] | None = None,
    params: MapBuildParams | None = None,
    log=None,
) -> FeatureMap:
    """Survey the rendered module and build a feature map; saved to ``out_path`` unless None.

    seed : survey jitter and rolls. n_views : survey images. camera : cameras.yaml name whose
    intrinsics and image size the survey uses. markers : render the fiducials too (default off:
    the map must not depend on them). x_range : (x0, x1) m, survey only that stretch."""
    say = log if log is not None else (lambda *_: None)
    models = load_cameras()
    if camera not in models:
        raise ValueError(f"unknown camera {camera!r}; cameras.yaml has {sorted(models)}")
    model = models[camera]
    t0 = time.perf_counter()
    cid, renderer = _open_world(markers)
    poses = survey_poses(load_module(), n_views, seed, x_range)

    def views() -> Iterator[SurveyView]:
        for i, T in enumerate(poses):
            rgb, depth = renderer.render(model, T)
            if i % 200 == 0:
                say(f"rendering view {i}/{len(poses)} ({renderer.kind})")
            yield SurveyView(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), T, depth)

    try:
        meta = {
            "camera": {
                "name": model.name,
                "width": model.width,
                "height": model.height,
                "K": np.asarray(model.K).tolist(),
            },
            "survey": {
                "seed": seed,
                "views": n_views,
                "markers": markers,
                "renderer": renderer.kind,
                "margin_m": SURVEY_MARGIN,
                "directions_per_station": len(SURVEY_DIRECTIONS),
                "x_range": list(x_range) if x_range is not None else None,
            },
            "world_hash": world_content_hash(),
            "builder_version": BUILDER_VERSION,
            "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
        fmap = build_feature_map_from_views(views(), model.K, params, meta=meta, log=say)
    finally:
        p.disconnect(cid)
    fmap.meta["build_seconds"] = round(time.perf_counter() - t0, 1)
    if out_path is not None:
        save_feature_map(fmap, out_path)
        say(f"wrote {out_path} ({Path(out_path).stat().st_size / 1e6:.1f} MB)")
    return fmap


def default_feature_map(build_if_missing: bool = True, log=None) -> FeatureMap:
    """The default natural-feature map (nav_left survey, default seed and views), from the cache;
    built (and cached) when missing and ``build_if_missing``, else FileNotFoundError."""
    path = default_map_path()
    if path.exists():
        return load_feature_map(path)
    if not build_if_missing:
        raise FileNotFoundError(f"{path}: no cached feature map; run `intball map build`")
    return build_feature_map(path, log=log)


# ------------------------------------------------------------------------------------------ CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``intball map build``."""
    parser.add_argument("--out", type=Path, default=None, help="output .npz (default: the cache path)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="survey seed (jitter, rolls)")
    parser.add_argument("--views", type=int, default=DEFAULT_VIEWS, help="number of survey images")
    parser.add_argument("--camera", default=DEFAULT_CAMERA, help="camera model of cameras.yaml")
    parser.add_argument("--markers", action="store_true", help="render the fiducial markers too")
    parser.add_argument(
        "--x-range", type=float, nargs=2, default=None, metavar=("X0", "X1"), help="survey only x0..x1 (m)"
    )


def run(args: argparse.Namespace) -> int:
    """``intball map build``: build, save and summarise a feature map; 0 on success."""
    out = args.out
    if out is None:
        model = load_cameras().get(args.camera)
        if model is None:
            print(f"intball map build: unknown camera {args.camera!r}", file=sys.stderr)
            return 2
        key = map_cache_key(
            seed=args.seed, n_views=args.views, camera=model, markers=args.markers, x_range=args.x_range
        )
        out = world_mod._cache_root() / "maps" / f"features-{key}.npz"
    if args.views < 36:
        print("intball map build: --views must be >= 36 (two survey stations)", file=sys.stderr)
        return 2
    fmap = build_feature_map(
        out,
        seed=args.seed,
        n_views=args.views,
        camera=args.camera,
        markers=args.markers,
        x_range=tuple(args.x_range) if args.x_range else None,
        log=print,
    )
    c = fmap.meta["counts"]
    print(
        f"feature map: {fmap.n_points} points, {fmap.n_keyframes} keyframes, "
        f"{c['observations']} observations, built in {fmap.meta['build_seconds']} s -> {out}"
    )
    geometry_path = _write_geometry_map(None if args.out is None else Path(out).with_suffix(".geometry.ply"))
    print(f"geometry map (Open3D point cloud of the module, for ICP) -> {geometry_path}")
    return 0


def _write_geometry_map(path: Path | None) -> Path:
    """The Open3D map of the module that ``intball map build`` produces beside the feature map:
    the cached default when ``path`` is None, else a .ply (+ JSON sidecar) at ``path``."""
    from intball_nav.vision.geometry import (
        build_module_cloud,
        default_geometry_map,
        module_content_hash,
        save_geometry_map,
    )

    if path is None:
        return Path(default_geometry_map().path)
    module = load_module()
    return save_geometry_map(path, build_module_cloud(module), module_content_hash(module))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="intball map build", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
