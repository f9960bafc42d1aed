"""Geometric localization: a point-cloud model of the module and ICP against it (Open3D).

Map: ``build_module_cloud`` samples every surface of ``kibo.yaml`` on a grid (rack faces, end walls,
the ELM-PS recess walls and cap, the dock and keep-out boxes, minus the opening and what boxes
hide), with exact normals pointing into the cabin. ``save_geometry_map`` / ``load_geometry_map``
store it as an Open3D ``.ply`` plus a JSON sidecar ``<name>.ply.json`` (format, version, module
content hash, point count, sha256 of the ply); ``default_geometry_map`` caches it under
``$INTBALL_CACHE/maps`` (default ``~/.cache/intball/maps``). The racks in ``kibo.yaml`` are flat:
the model has no rack relief because the geometry (and the simulated world) has none.

Registration: ``IcpLocalizer.refine(points_cam, prior, stamp)`` runs Open3D point-to-plane ICP
(source = camera points downsampled per stage, target = the model, coarse-to-fine correspondence
distances) from the prior ``T_kibo_cam`` and returns an ``IcpPoseMeasurement`` (a
``markers.PoseMeasurement``) or None when a gate fails.

Covariance: with the final correspondences (model point q_i, normal n_i, camera point p_i) the
residual is ``r_i = n_i . (R p_i + t - q_i)``, its Jacobian for the local perturbation of
``markers.py`` (``p_true = p + dp``, ``R_true = R Exp(dtheta)``) is ``J_i = [n_i, p_i x R^T n_i]``.
The covariance is the sandwich of the robust-weighted (Tukey weights w_i) least-squares estimate
under heteroscedastic depth noise ``s * sigma_i``, ``sigma_i = a + b Z_i^2`` (``depth_noise``; the
scale ``s^2`` is fitted to the whitened residuals, blended with the prior 1 over ``prior_dof``):
``kappa (J^T W J)^-1 (sum w_i^2 s^2 sigma_i^2 J_i^T J_i) (J^T W J)^-1``, plus frame-wide errors that
no point count averages away (``systematic_depth``: SGBM sub-pixel bias; ``model_error``:
unmodelled geometry). Calibrated on random rendered poses: mean NEES per degree of freedom
0.6-0.7, i.e. not overconfident (docs/localization.md).

Degeneracy: flat walls leave directions unconstrained (a single rack leaves both in-plane
translations and the rotation about its normal free; a corridor view leaves the slide along the
module axis free). The information matrix is made unit-free by scaling rotations with the RMS
range ``L`` of the points and dividing by the weight sum: ``A = S J^T W J S / sum(w)`` with
``S = diag(1, 1, 1, 1/L, 1/L, 1/L)``. An eigenvalue of ``A`` is the mean squared normal
component of a unit motion in that direction (1 for a translation straight into a wall, 0 for a
slide along it). Directions with eigenvalue below ``IcpParams.degenerate_eig`` (or a std above
``degenerate_max_std``) are degenerate:
the ICP correction along them is removed (the pose keeps the prior there: "solution remapping",
Zhang, Kaess and Singh, ICRA 2016) and their variance is set to ``degenerate_sigma^2`` (m^2, or
rad^2 times ``1/L^2``), so a filter takes nothing from them. The measurement lists them.

Frames and units: points in the camera optical frame (m); poses ``T_kibo_cam`` and
``T_kibo_base = T_kibo_cam * T_base_cam^-1``; covariances (6,6) ``[dp m kibo, dtheta rad local]``
as in ``markers.PoseMeasurement``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import open3d as o3d
from scipy.spatial import cKDTree

from intball_nav.frames import Pose, quat_from_rotmat, quat_from_rotvec, rotmat_from_quat, rotvec_from_quat
from intball_nav.module import Box, ModuleGeometry, face_rotation, load_module
from intball_nav.vision.camera_geometry import pose_covariance_to_child
from intball_nav.vision.markers import PoseMeasurement

GEOMETRY_MAP_FORMAT = "intball-geometry-map"
GEOMETRY_MAP_VERSION = 1
DEFAULT_SPACING = 0.02
"""m, grid spacing of the model cloud (about 200k points for the module)."""

_REG = o3d.pipelines.registration


class GeometryMapError(ValueError):
    """A geometry map file is missing, corrupt, of another version or of another module."""


# ----------------------------------------------------------------------------- model cloud
@dataclass(frozen=True)
class ModelSurface:
    """A rectangle of the module model.

    name : ``overhead``, ``elm_ps_cap``, ``dock_-x``, ``stowage_bag_+z``, ...
    centre : (3,) m, kibo frame
    axes : (3,3) columns u, v (in the rectangle) and normal (into the cabin, toward a viewer)
    size : (2,) m along u and v
    """

    name: str
    centre: np.ndarray
    axes: np.ndarray
    size: np.ndarray

    @property
    def normal(self) -> np.ndarray:
        return self.axes[:, 2]


def _box_faces(box: Box, prefix: str) -> list[ModelSurface]:
    out = []
    for axis in range(3):
        u_ax, v_ax = [a for a in range(3) if a != axis]
        for s in (-1.0, 1.0):
            n = np.zeros(3)
            n[axis] = s
            u, v = np.eye(3)[u_ax], np.eye(3)[v_ax]
            c = box.centre.copy()
            c[axis] = box.max[axis] if s > 0 else box.min[axis]
            sign = "+" if s > 0 else "-"
            out.append(
                ModelSurface(
                    f"{prefix}_{sign}{'xyz'[axis]}",
                    c,
                    np.column_stack([u, v, n]),
                    np.array([box.size[u_ax], box.size[v_ax]]),
                )
            )
    return out


def module_surfaces(module: ModuleGeometry) -> tuple[ModelSurface, ...]:
    """Every surface of the module model, kibo frame (what ``build_module_cloud`` samples).

    The six faces of the clear volume, the walls and cap of each open hatch's recess, and the
    faces of the dock and keep-out boxes that do not lie on a module face. Parts of faces hidden
    by boxes or cut by an opening are removed when sampling (``_hidden``)."""
    out: list[ModelSurface] = []
    for face in ("overhead", "deck", "port", "starboard", "entrance", "far"):
        p0, _ = module.face_plane(face)
        out.append(ModelSurface(face, p0, face_rotation(face), module.face_extent(face)))
    for h in module.hatches:
        if not h.open:
            continue
        R = face_rotation(h.face)
        n, d = R[:, 2], h.recess_depth
        out.append(ModelSurface(f"{h.name}_cap", h.centre - d * n, R, h.size.copy()))
        for axis in (0, 1):
            half, other = 0.5 * h.size[axis], h.size[1 - axis]
            for s in (-1.0, 1.0):
                zn = -s * R[:, axis]  # into the recess, toward its centre line
                u = R[:, 1 - axis]
                v = np.cross(zn, u)
                out.append(
                    ModelSurface(
                        f"{h.name}_wall_{axis}{int(s > 0)}",
                        h.centre + s * half * R[:, axis] - 0.5 * d * n,
                        np.column_stack([u, v, zn]),
                        np.array([other, d]),
                    )
                )
    for box, prefix in [(module.dock.box, "dock")] + [(k, k.name) for k in module.keep_out]:
        for f in _box_faces(box, prefix):
            on_wall = any(
                abs(f.centre[a] - module.clear_min[a]) < 1e-6 or abs(f.centre[a] - module.clear_max[a]) < 1e-6
                for a in range(3)
                if abs(f.normal[a]) > 0.5
            )
            if not on_wall:
                out.append(f)
    return tuple(out)


def _hidden(module: ModuleGeometry, surface: ModelSurface, pts: np.ndarray) -> np.ndarray:
    """(N,) bool: points of a module face that are inside a box or cut out by an open hatch."""
    hide = np.zeros(len(pts), dtype=bool)
    if surface.name.split("_")[0] in ("dock",) or any(
        surface.name.startswith(k.name) for k in module.keep_out
    ):
        return hide
    for box in (module.dock.box, *module.keep_out):
        hide |= np.all((pts >= box.min - 1e-6) & (pts <= box.max + 1e-6), axis=1)
    for h in module.hatches:
        if h.open and surface.name == h.face:
            R = face_rotation(h.face)
            rel = pts - h.centre
            hide |= (np.abs(rel @ R[:, 0]) < 0.5 * h.size[0]) & (np.abs(rel @ R[:, 1]) < 0.5 * h.size[1])
    return hide


def sample_module_surfaces(
    module: ModuleGeometry, spacing: float = DEFAULT_SPACING
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[ModelSurface, ...]]:
    """Grid samples of ``module_surfaces``: (points (N,3) m kibo, normals (N,3) unit into the cabin,
    labels (N,) int index into the returned surfaces, surfaces). Cell-centred grid, ``spacing`` m."""
    if not 0.002 <= spacing <= 0.5:
        raise ValueError(f"spacing={spacing} m out of range [0.002, 0.5]")
    surfaces = module_surfaces(module)
    P, N, L = [], [], []
    for k, s in enumerate(surfaces):
        nu, nv = (max(1, round(float(e) / spacing)) for e in s.size)
        a = ((np.arange(nu) + 0.5) / nu - 0.5) * s.size[0]
        b = ((np.arange(nv) + 0.5) / nv - 0.5) * s.size[1]
        A, B = np.meshgrid(a, b, indexing="ij")
        pts = s.centre + A.reshape(-1, 1) * s.axes[:, 0] + B.reshape(-1, 1) * s.axes[:, 1]
        pts = pts[~_hidden(module, s, pts)]
        P.append(pts)
        N.append(np.broadcast_to(s.normal, pts.shape))
        L.append(np.full(len(pts), k))
    return np.concatenate(P), np.concatenate(N), np.concatenate(L), surfaces


def build_module_cloud(module: ModuleGeometry | None = None, spacing: float = DEFAULT_SPACING):
    """Open3D ``PointCloud`` of the module surfaces (kibo frame, m) with exact inward normals.

    module : default ``load_module()``; spacing : m, grid step on every surface."""
    module = module if module is not None else load_module()
    pts, nrm, _, _ = sample_module_surfaces(module, spacing)
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
    cloud.normals = o3d.utility.Vector3dVector(np.ascontiguousarray(nrm))
    return cloud


def module_content_hash(module: ModuleGeometry) -> str:
    """16 hex digits of sha256 over the module geometry (clear volume, bays, hatches, dock, keep-out)."""

    def r(a) -> list:
        return np.round(np.asarray(a, dtype=float), 9).tolist()

    data = {
        "clear": [r(module.clear_min), r(module.clear_max)],
        "bays": [[b.name, b.face, r(b.centre), r(b.size)] for b in module.bays],
        "hatches": [[h.name, h.face, r(h.centre), r(h.size), h.open, h.recess_depth] for h in module.hatches],
        "dock": [r(module.dock.pose.position), r(module.dock.pose.quat), r(module.dock.size)],
        "keep_out": [[k.name, r(k.min), r(k.max)] for k in module.keep_out],
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- map files
@dataclass(frozen=True)
class GeometryMap:
    """A loaded geometry map: cloud (kibo frame, with normals), module hash, format version, spacing (m)."""

    cloud: o3d.geometry.PointCloud
    module_hash: str
    version: int
    spacing: float | None
    path: Path | None = None


def sidecar_path(path: str | Path) -> Path:
    """The JSON sidecar of a map ``.ply``: ``<name>.ply.json`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_geometry_map(
    path: str | Path, cloud: o3d.geometry.PointCloud, module_hash: str, *, spacing: float | None = None
) -> Path:
    """Write ``cloud`` (kibo frame, with normals) to ``path`` (binary .ply) and its JSON sidecar.

    Both files are written to temporaries and renamed (ply first, sidecar last), so a reader never
    sees a sidecar describing a half-written ply. Returns the ply path."""
    path = Path(path)
    if path.suffix != ".ply":
        raise GeometryMapError(f"{path}: a geometry map must be a .ply file")
    if not cloud.has_points() or not cloud.has_normals():
        raise GeometryMapError(f"{path}: the cloud must have points and normals")
    if not isinstance(module_hash, str) or not module_hash:
        raise GeometryMapError(f"{path}: module_hash must be a non-empty string")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".geometry-", suffix=".ply", dir=path.parent)
    os.close(fd)
    try:
        if not o3d.io.write_point_cloud(Path(tmp), cloud, write_ascii=False):
            raise GeometryMapError(f"{path}: Open3D could not write the point cloud")
        meta = {
            "format": GEOMETRY_MAP_FORMAT,
            "version": GEOMETRY_MAP_VERSION,
            "module_hash": module_hash,
            "frame": "kibo",
            "n_points": len(cloud.points),
            "spacing": spacing,
            "ply_sha256": _sha256(Path(tmp)),
        }
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    side = sidecar_path(path)
    fd, tmp = tempfile.mkstemp(prefix=".geometry-", suffix=".json", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(meta, f, indent=1)
    os.replace(tmp, side)
    return path


def load_geometry_map(path: str | Path, expected_module_hash: str | None = None) -> GeometryMap:
    """Read a map written by ``save_geometry_map``.

    Raises GeometryMapError, naming the file, when the ply or the sidecar is missing or unreadable,
    the format or version differs, the ply does not match its recorded sha256 or point count, the
    normals are missing, or ``expected_module_hash`` is given and differs (the map is of another
    module: rebuild it with ``intball map build``)."""
    path = Path(path)
    side = sidecar_path(path)
    if not path.is_file():
        raise GeometryMapError(f"{path}: geometry map not found")
    if not side.is_file():
        raise GeometryMapError(f"{side}: sidecar of the geometry map not found")
    try:
        meta = json.loads(side.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GeometryMapError(f"{side}: not a valid JSON sidecar: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != GEOMETRY_MAP_FORMAT:
        raise GeometryMapError(f"{side}: format must be {GEOMETRY_MAP_FORMAT!r}")
    if meta.get("version") != GEOMETRY_MAP_VERSION:
        raise GeometryMapError(
            f"{side}: version {meta.get('version')!r} is not supported (this code reads version "
            f"{GEOMETRY_MAP_VERSION}); rebuild the map"
        )
    for key in ("module_hash", "n_points", "ply_sha256"):
        if key not in meta:
            raise GeometryMapError(f"{side}: field {key!r} missing")
    if _sha256(path) != meta["ply_sha256"]:
        raise GeometryMapError(
            f"{path}: contents do not match the sha256 in {side.name} (corrupt or replaced)"
        )
    if expected_module_hash is not None and meta["module_hash"] != expected_module_hash:
        raise GeometryMapError(
            f"{path}: built for module {meta['module_hash']}, not {expected_module_hash}; rebuild the map"
        )
    cloud = o3d.io.read_point_cloud(path, format="ply")
    if len(cloud.points) != meta["n_points"] or not cloud.has_normals():
        raise GeometryMapError(
            f"{path}: {len(cloud.points)} points (normals: {cloud.has_normals()}), "
            f"sidecar says {meta['n_points']}"
        )
    return GeometryMap(cloud, str(meta["module_hash"]), int(meta["version"]), meta.get("spacing"), path)


def _cache_root() -> Path:
    env = os.environ.get("INTBALL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "intball"


def default_geometry_map(
    module: ModuleGeometry | None = None, spacing: float = DEFAULT_SPACING
) -> GeometryMap:
    """The module's geometry map, built once and cached as
    ``$INTBALL_CACHE/maps/geometry-<module hash>-<spacing mm>mm.ply`` (default cache
    ``~/.cache/intball``). A corrupt cached file is rebuilt."""
    module = module if module is not None else load_module()
    h = module_content_hash(module)
    path = _cache_root() / "maps" / f"geometry-{h}-{round(spacing * 1000)}mm.ply"
    try:
        return load_geometry_map(path, expected_module_hash=h)
    except GeometryMapError:
        save_geometry_map(path, build_module_cloud(module, spacing), h, spacing=spacing)
        return load_geometry_map(path, expected_module_hash=h)


# ----------------------------------------------------------------------------- registration
@dataclass(frozen=True)
class IcpParams:
    """Point-to-plane ICP, gates and covariance. Presets: ``ICP_PRESETS`` (per depth source).

    voxel_sizes : m, source downsampling per stage (coarse to fine).
    max_correspondence : m, correspondence distance per stage (same length).
    max_iterations : per stage.
    max_points : source points per stage at most (seeded uniform subsample after downsampling).
    tukey_k : m, smallest Tukey robust-kernel width; a stage uses ``max(tukey_k, its distance)``
        (0 = plain least squares). The covariance uses the same weights.
    model_voxel : m, the model is downsampled to this for the ICP target (planes need few points;
        Open3D rebuilds the target KD-tree on every call). 0 keeps the map's own spacing.
    max_range : m, points farther from the camera are dropped (stereo depth error ~ Z^2).
    min_points : fewest source points after downsampling.
    min_fitness : fraction of source points with a correspondence at the last stage.
    max_rmse : m, inlier RMSE at the last stage.
    max_correction : m and rad, largest allowed ICP correction of the prior (position, angle).
    depth_noise : (a m, b 1/m), per-point depth noise shape ``sigma_i = a + b Z_i^2`` (stereo:
        ``b = sigma_d / (fx baseline)`` with sigma_d ~ 0.1 px); the scale is fitted to the residuals.
    systematic_depth : 1/m, std of a depth error common to the whole frame, ``c Z^2`` (SGBM sub-pixel
        "pixel locking" shifts fronto-parallel walls by up to 0.15 px, +19 mm at 0.8 m and +69 mm at
        1.9 m; 0.008 = 0.064 px is what random views need, by NEES): ``(c L^2)^2`` is added to
        every non-degenerate direction (scaled coordinates, L = RMS range; a depth bias that
        differs between walls tilts the fit too); 0 for the depth sensor.
    model_error : m, std of what the model leaves out (markers stand 5 mm proud of the racks; real
        racks have handrails, cables, bags), added like ``systematic_depth``.
    sigma_floor : prior of the residual scale (1 = the noise model is right), over ``prior_dof``.
    correlation_factor : variance inflation for correlated depth errors (kappa, see module doc).
    degenerate_eig : eigenvalue threshold of the normalised information (see module doc).
    degenerate_max_std : a direction whose std exceeds this (m, or rad times L) is degenerate too.
    degenerate_sigma : std given to degenerate directions (m; rad times L for rotations).
    recover_voxel : m, voxel of the FPFH features for ``recover`` (radius 5 voxels).
    recover_hypotheses : RANSAC runs (different seeds) whose ICP-refined results are compared.
    recover_iterations : RANSAC iterations per run.
    """

    voxel_sizes: tuple[float, ...] = (0.10, 0.06, 0.04)
    max_correspondence: tuple[float, ...] = (0.30, 0.12, 0.06)
    max_iterations: tuple[int, ...] = (10, 10, 15)
    max_points: int = 3000
    model_voxel: float = 0.04
    tukey_k: float = 0.05
    max_range: float = 2.5
    min_points: int = 150
    min_fitness: float = 0.6
    max_rmse: float = 0.03
    max_correction: tuple[float, float] = (0.3, 0.3)
    depth_noise: tuple[float, float] = (0.002, 0.0125)
    systematic_depth: float = 0.008
    model_error: float = 0.001
    sigma_floor: float = 1.0
    prior_dof: float = 10.0
    correlation_factor: float = 1.0
    degenerate_eig: float = 0.03
    degenerate_max_std: float = 0.10
    degenerate_sigma: float = 1.0
    recover_voxel: float = 0.08
    recover_hypotheses: int = 4
    recover_iterations: int = 200000

    def __post_init__(self) -> None:
        n = len(self.voxel_sizes)
        if n == 0 or len(self.max_correspondence) != n or len(self.max_iterations) != n:
            raise ValueError(
                "IcpParams: voxel_sizes, max_correspondence, max_iterations need one entry per stage"
            )
        if any(v <= 0 for v in self.voxel_sizes) or any(d <= 0 for d in self.max_correspondence):
            raise ValueError("IcpParams: voxel sizes and correspondence distances must be > 0 m")
        if not 0.0 < self.min_fitness <= 1.0 or self.max_rmse <= 0 or self.degenerate_eig <= 0:
            raise ValueError("IcpParams: min_fitness in (0, 1], max_rmse > 0, degenerate_eig > 0")


ICP_PRESETS = {
    "stereo": IcpParams(max_range=2.0, max_rmse=0.04, min_fitness=0.5),
    "simulated-depth-sensor": IcpParams(
        max_correspondence=(0.30, 0.10, 0.04),
        max_range=5.0,
        max_rmse=0.03,
        tukey_k=0.03,
        depth_noise=(0.002, 0.002),
        systematic_depth=0.0,
    ),
}
"""Named parameter sets per depth source (``stereo.DEPTH_SOURCES``)."""


@dataclass(frozen=True)
class IcpPoseMeasurement(PoseMeasurement):
    """A ``PoseMeasurement`` from ICP (``marker_ids`` empty, ``rms_px``/``sigma_px`` NaN) plus:

    fitness : fraction of source points with a correspondence at the last stage.
    rmse : m, point-to-plane RMS of the inliers; sigma : m, residual std used for the covariance.
    n_points : inliers used for the covariance.
    eigenvalues : (6,) normalised information eigenvalues, ascending (see module doc).
    degenerate_directions : (k,6) unit vectors in scaled ``[dp m kibo, L dtheta optical]``
        coordinates, the directions given ``degenerate_sigma``.
    length_scale : m, L of the scaling.
    """

    fitness: float = 0.0
    rmse: float = 0.0
    sigma: float = 0.0
    n_points: int = 0
    eigenvalues: np.ndarray = field(default_factory=lambda: np.zeros(6))
    degenerate_directions: np.ndarray = field(default_factory=lambda: np.zeros((0, 6)))
    length_scale: float = 1.0

    @property
    def degenerate(self) -> bool:
        return len(self.degenerate_directions) > 0


def _pose_delta(T0: Pose, T1: Pose) -> np.ndarray:
    """(6,) [dp m kibo, dtheta rad local] with T1 = T0 (+) delta (perturbation of markers.py)."""
    q_rel = Pose(np.zeros(3), T0.quat).inverse().compose(Pose(np.zeros(3), T1.quat)).quat
    return np.concatenate([T1.position - T0.position, rotvec_from_quat(q_rel)])


def _pose_plus(T0: Pose, delta: np.ndarray) -> Pose:
    return Pose(T0.position + delta[:3], T0.compose(Pose(np.zeros(3), quat_from_rotvec(delta[3:]))).quat)


def _thin(cloud: o3d.geometry.PointCloud, voxel: float) -> o3d.geometry.PointCloud:
    """One original point per voxel (exact positions and normals, unlike ``voxel_down_sample``,
    which averages points across edges and normals across faces). voxel <= 0: the cloud itself."""
    if voxel <= 0.0:
        return cloud
    _, _, members = cloud.voxel_down_sample_and_trace(
        voxel, cloud.get_min_bound() - voxel, cloud.get_max_bound() + voxel
    )
    return cloud.select_by_index([int(np.asarray(m)[0]) for m in members])


def default_icp_localizer(camera, source: str = "stereo") -> IcpLocalizer:
    """``IcpLocalizer`` on the cached module map (``default_geometry_map``) with the
    ``ICP_PRESETS[source]`` parameters; camera : model with ``T_base_cam`` (optical frame in
    base_link). Note ``refine`` takes the prior of the CAMERA (T_kibo_cam)."""
    if source not in ICP_PRESETS:
        raise ValueError(f"unknown depth source {source!r}; allowed: {', '.join(ICP_PRESETS)}")
    return IcpLocalizer(default_geometry_map().cloud, ICP_PRESETS[source], camera.T_base_cam)


def _rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


_SYMMETRIES = [
    _rot_x(a) @ np.diag([f, f, 1.0])
    for a in (0.0, 0.5 * np.pi, np.pi, 1.5 * np.pi)
    for f in (1.0, -1.0)
    if not (a == 0.0 and f == 1.0)
]
"""(3,3) rotations about the module centre that map the box of the module (nearly) onto itself:
quarter turns about its axis (the cross-section is 2.1 x 2.0 m) and the end-for-end half turn."""


class IcpLocalizer:
    """Point-to-plane ICP of camera points against the module model (see module docstring).

    model_cloud : Open3D cloud in kibo (m) with normals (``build_module_cloud`` or a loaded map).
    params : ``IcpParams`` (or a ``ICP_PRESETS`` entry).
    T_base_cam : pose of the camera optical frame in base_link (for ``T_kibo_base``).
    """

    def __init__(self, model_cloud, params: IcpParams | None = None, T_base_cam: Pose | None = None) -> None:
        if isinstance(model_cloud, GeometryMap):
            model_cloud = model_cloud.cloud
        if not model_cloud.has_points() or not model_cloud.has_normals():
            raise ValueError("IcpLocalizer: the model cloud needs points and normals")
        self.params = params if params is not None else IcpParams()
        self.T_base_cam = T_base_cam if T_base_cam is not None else Pose()
        self.T_cam_base = self.T_base_cam.inverse()
        self.model = _thin(model_cloud, self.params.model_voxel)
        self.model_points = np.asarray(model_cloud.points)
        self.model_normals = np.asarray(model_cloud.normals)
        self.tree = cKDTree(self.model_points)
        self.last_rejection = ""
        """Why the last ``refine`` returned None (empty after a success)."""
        self._features: tuple[o3d.geometry.PointCloud, Any] | None = None

    def _reject(self, why: str) -> IcpPoseMeasurement | None:
        self.last_rejection = why
        return None

    def _crop_model(self, pts_kibo: np.ndarray, margin: float) -> o3d.geometry.PointCloud:
        """The model inside the bounding box of pts_kibo grown by margin (Open3D rebuilds its
        KD-tree of the target on every registration call: a smaller target is cheaper)."""
        box = o3d.geometry.AxisAlignedBoundingBox(
            pts_kibo.min(axis=0) - margin, pts_kibo.max(axis=0) + margin
        )
        return self.model.crop(box)

    def refine(self, points_cam: np.ndarray, prior: Pose, stamp: float = 0.0) -> IcpPoseMeasurement | None:
        """Refine the camera pose from depth points.

        points_cam : (N,3) m, camera optical frame (``stereo.cloud_from_depth``).
        prior : T_kibo_cam, the initial guess (from the filter); must be within the convergence
            basin (about the first correspondence distance, 0.3 m, and 10-15 deg).
        Returns an ``IcpPoseMeasurement`` or None (too few points, fitness or RMSE gate, correction
        larger than ``max_correction``, singular information)."""
        p = self.params
        self.last_rejection = ""
        pts = np.asarray(points_cam, dtype=float).reshape(-1, 3)
        pts = pts[np.all(np.isfinite(pts), axis=1)]
        pts = pts[np.linalg.norm(pts, axis=1) <= p.max_range]
        if len(pts) < p.min_points:
            return self._reject(f"{len(pts)} points within {p.max_range} m < {p.min_points}")
        src_full = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
        T = prior.matrix()
        target = self._crop_model(prior.transform_points(pts), p.max_correspondence[0] + 0.05)
        if len(target.points) < 10:
            return self._reject("no model points near the prior")
        src = src_full
        result = None
        rng = np.random.default_rng(0)
        for voxel, dist, iters in zip(p.voxel_sizes, p.max_correspondence, p.max_iterations, strict=True):
            src = src_full.voxel_down_sample(voxel)
            if len(src.points) > p.max_points:
                src = src.select_by_index(
                    np.sort(rng.choice(len(src.points), p.max_points, replace=False)).tolist()
                )
            if len(src.points) < p.min_points:
                return self._reject(f"{len(src.points)} points after {voxel} m downsampling < {p.min_points}")
            kernel = _REG.TukeyLoss(k=max(p.tukey_k, dist)) if p.tukey_k > 0 else _REG.L2Loss()
            result = _REG.registration_icp(
                src,
                target,
                dist,
                T,
                _REG.TransformationEstimationPointToPlane(kernel),
                _REG.ICPConvergenceCriteria(relative_fitness=1e-7, relative_rmse=1e-7, max_iteration=iters),
            )
            T = np.asarray(result.transformation).copy()
        assert result is not None
        if result.fitness < p.min_fitness or result.inlier_rmse > p.max_rmse:
            return self._reject(
                f"fitness {result.fitness:.2f} (min {p.min_fitness}), "
                f"rmse {result.inlier_rmse:.4f} m (max {p.max_rmse})"
            )
        T_icp = self._polish(np.asarray(src.points), Pose.from_matrix(T))
        return self._measurement(np.asarray(src.points), prior, T_icp, result, stamp)

    def _polish(self, pts: np.ndarray, T: Pose, steps: int = 3) -> Pose:
        """Finish convergence with robust-weighted Gauss-Newton steps on fresh correspondences,
        along the well-constrained directions only (ICP creeps slowly along weak ones)."""
        p = self.params
        dist = p.max_correspondence[-1]
        k = max(p.tukey_k, dist)
        for _ in range(steps):
            r, J, _ = self.information(pts, T, dist)
            if len(r) < 7:
                return T
            wt = np.clip(1.0 - (r / k) ** 2, 0.0, None) ** 2 if p.tukey_k > 0 else np.ones_like(r)
            L = float(np.sqrt(np.mean(np.sum(pts**2, axis=1))))
            S = np.diag([1.0, 1.0, 1.0, 1.0 / L, 1.0 / L, 1.0 / L])
            Js = J @ S
            H = (Js * wt[:, None]).T @ Js
            eig, V = np.linalg.eigh(H / max(float(np.sum(wt)), 1e-12))
            Vn = V[:, eig >= p.degenerate_eig]
            if Vn.shape[1] == 0:
                return T
            g = Js.T @ (wt * r)
            step = S @ (Vn @ np.linalg.solve(Vn.T @ H @ Vn, -(Vn.T @ g)))
            T = _pose_plus(T, step)
            if np.linalg.norm(step[:3]) < 1e-5 and np.linalg.norm(step[3:]) < 1e-6:
                break
        return T

    def information(self, points_cam: np.ndarray, T_kibo_cam: Pose, max_distance: float):
        """Point-to-plane residuals and Jacobian at a pose.

        points_cam : (N,3) m optical. Returns (residuals (M,) m, J (M,6) for ``[dp kibo, dtheta
        optical]``, inlier mask (N,)) over the points with a model point within ``max_distance``."""
        R = rotmat_from_quat(T_kibo_cam.quat)
        pk = points_cam @ R.T + T_kibo_cam.position
        d, idx = self.tree.query(pk, distance_upper_bound=max_distance)
        ok = np.isfinite(d)
        n = self.model_normals[idx[ok]]
        r = np.einsum("ij,ij->i", n, pk[ok] - self.model_points[idx[ok]])
        m = n @ R  # R^T n_i, row-wise
        J = np.hstack([n, np.cross(points_cam[ok], m)])
        return r, J, ok

    def _measurement(self, pts: np.ndarray, prior: Pose, T_icp: Pose, result, stamp: float):
        p = self.params
        dist = p.max_correspondence[-1]
        r, J, ok = self.information(pts, T_icp, dist)
        # the estimator's own robust weights (Tukey, width of the last stage)
        k = max(p.tukey_k, dist)
        wt = np.clip(1.0 - (r / k) ** 2, 0.0, None) ** 2 if p.tukey_k > 0 else np.ones_like(r)
        keep = wt > 1e-3
        r, J, wt = r[keep], J[keep], wt[keep]
        ok[np.flatnonzero(ok)[~keep]] = False
        n = len(r)
        if n < max(p.min_points, 7):
            return self._reject(f"{n} inliers for the covariance < {p.min_points}")
        z = pts[ok, 2]
        w_sd = p.depth_noise[0] + p.depth_noise[1] * z * z  # (n,) noise shape, m
        scale2 = (float(np.sum((r / w_sd) ** 2)) + p.prior_dof * p.sigma_floor**2) / (n - 6 + p.prior_dof)
        L = float(np.sqrt(np.mean(np.sum(pts[ok] ** 2, axis=1))))
        S = np.diag([1.0, 1.0, 1.0, 1.0 / L, 1.0 / L, 1.0 / L])
        Js = J @ S
        A = (Js * wt[:, None]).T @ Js / float(np.sum(wt))  # normalised, unit-free information
        eig, V = np.linalg.eigh(A)
        # sandwich covariance of the robust-weighted estimate with heteroscedastic noise, scaled
        M = (Js * (scale2 * wt**2 * w_sd**2)[:, None]).T @ Js
        # frame-wide errors no point count averages away (scaled coordinates: m, and rad times L)
        sys_var = (p.systematic_depth * L * L) ** 2 + p.model_error**2
        deg = eig < p.degenerate_eig
        for _ in range(6):
            Vn = V[:, ~deg]
            Hn_inv = np.linalg.inv(Vn.T @ (float(np.sum(wt)) * A) @ Vn)
            cov_n = p.correlation_factor * Hn_inv @ (Vn.T @ M @ Vn) @ Hn_inv
            cov_n += sys_var * np.eye(Vn.shape[1])
            too_loose = np.sqrt(np.diag(cov_n)) > p.degenerate_max_std
            if not np.any(too_loose):
                break
            deg[np.flatnonzero(~deg)[too_loose]] = True
            if np.all(deg):
                return self._reject("every direction is degenerate")
        Vn, Vd = V[:, ~deg], V[:, deg]
        cov_s = Vn @ cov_n @ Vn.T + p.degenerate_sigma**2 * (Vd @ Vd.T)
        # solution remapping: no correction along degenerate directions (they keep the prior)
        delta_s = np.linalg.solve(S, _pose_delta(prior, T_icp))
        delta_s = delta_s - Vd @ (Vd.T @ delta_s)
        delta = S @ delta_s
        if np.linalg.norm(delta[:3]) > p.max_correction[0] or np.linalg.norm(delta[3:]) > p.max_correction[1]:
            return self._reject(
                f"correction {np.linalg.norm(delta[:3]):.3f} m, {np.linalg.norm(delta[3:]):.3f} rad too large"
            )
        T_kibo_cam = _pose_plus(prior, delta)
        cov_cam = S @ cov_s @ S
        cov_cam = 0.5 * (cov_cam + cov_cam.T)
        sigma2 = scale2 * float(np.mean(w_sd**2))
        T_kibo_base = T_kibo_cam.compose(self.T_cam_base)
        return IcpPoseMeasurement(
            stamp=float(stamp),
            T_kibo_cam=T_kibo_cam,
            T_kibo_base=T_kibo_base,
            covariance_cam=cov_cam,
            covariance=pose_covariance_to_child(cov_cam, T_kibo_cam, self.T_cam_base),
            marker_ids=(),
            rejected_ids=(),
            rms_px=float("nan"),
            sigma_px=float("nan"),
            fitness=float(result.fitness),
            rmse=float(np.sqrt(np.mean(r * r))),
            sigma=float(np.sqrt(sigma2)),
            n_points=n,
            eigenvalues=eig,
            degenerate_directions=V[:, deg].T.copy(),
            length_scale=L,
        )

    # ------------------------------------------------------------------ global recovery
    def _model_features(self) -> tuple[o3d.geometry.PointCloud, Any]:
        """The model thinned to ``recover_voxel`` and its FPFH features (computed on first use)."""
        if self._features is None:
            v = self.params.recover_voxel
            model = _thin(self.model, v)
            fpfh = _REG.compute_fpfh_feature(  # type: ignore[call-arg]  # indices has a default
                model, o3d.geometry.KDTreeSearchParamHybrid(radius=5 * v, max_nn=100)
            )
            self._features = (model, fpfh)
        return self._features

    def recover(
        self, points_cam: np.ndarray, stamp: float = 0.0, seed: int = 0, bounds_margin: float = 0.05
    ) -> IcpPoseMeasurement | None:
        """Global pose without a prior: FPFH features + RANSAC against the model, then ``refine``.

        points_cam : (N,3) m, optical frame. Runs ``recover_hypotheses`` seeded RANSAC searches,
        keeps the hypotheses whose camera lies inside the model's bounds (grown by ``bounds_margin``
        m), refines each with ICP, adds the refined images of the best one under the module's
        near-symmetries (``_SYMMETRIES``) and returns the best (fitness, then RMSE). ``ambiguous`` is set
        when another refined hypothesis fits within 0.05 fitness and 1.5x RMSE but lies more than
        0.25 m or 10 deg away (in the non-degenerate directions): the module is nearly symmetric
        (a box of flat racks with a 1 m bay pitch), so a view of racks alone has look-alikes.
        None if no hypothesis passes the gates. Cost: see docs/localization.md (seconds, not ms)."""
        p = self.params
        pts = np.asarray(points_cam, dtype=float).reshape(-1, 3)
        pts = pts[np.all(np.isfinite(pts), axis=1)]
        pts = pts[np.linalg.norm(pts, axis=1) <= p.max_range]
        if len(pts) < p.min_points:
            return self._reject(f"{len(pts)} points within {p.max_range} m < {p.min_points}")
        v = p.recover_voxel
        src = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts)).voxel_down_sample(v)
        if len(src.points) < 30:
            return self._reject(f"{len(src.points)} points after {v} m downsampling")
        src.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=2.5 * v, max_nn=30))
        src.orient_normals_towards_camera_location(np.zeros(3))  # the model's normals face the cabin
        src_fpfh = _REG.compute_fpfh_feature(  # type: ignore[call-arg]  # indices has a default
            src, o3d.geometry.KDTreeSearchParamHybrid(radius=5 * v, max_nn=100)
        )
        model, model_fpfh = self._model_features()
        dist = 1.5 * v
        checkers = [
            _REG.CorrespondenceCheckerBasedOnEdgeLength(0.9),
            _REG.CorrespondenceCheckerBasedOnDistance(dist),
            _REG.CorrespondenceCheckerBasedOnNormal(np.deg2rad(30.0)),
        ]
        lo, hi = self.tree.mins - bounds_margin, self.tree.maxes + bounds_margin
        found: list[IcpPoseMeasurement] = []
        for k in range(p.recover_hypotheses):
            o3d.utility.random.seed(seed + k)
            res = _REG.registration_ransac_based_on_feature_matching(
                src,
                model,
                src_fpfh,
                model_fpfh,
                False,  # flat walls give near-identical features: a mutual filter leaves almost nothing
                dist,
                _REG.TransformationEstimationPointToPoint(False),
                3,
                checkers,
                _REG.RANSACConvergenceCriteria(p.recover_iterations, 0.999),
            )
            T0 = Pose.from_matrix(np.asarray(res.transformation))
            if res.fitness <= 0.0 or np.any(T0.position < lo) or np.any(T0.position > hi):
                continue
            m = self.refine(pts, T0, stamp)
            if m is not None and np.all(m.T_kibo_cam.position >= lo) and np.all(m.T_kibo_cam.position <= hi):
                found.append(m)
        if not found:
            return self._reject("no RANSAC hypothesis passed the ICP gates")
        # the module's near-symmetries (a 9.6 x 2.1 x 2.0 m box): try every symmetric image of the
        # best hypothesis; any that fits about as well is a look-alike, and the best of all wins
        best = max(found, key=lambda m: (round(m.fitness, 2), -m.rmse))
        centre = 0.5 * (self.tree.mins + self.tree.maxes)
        for G in _SYMMETRIES:
            T_sym = Pose(
                centre + G @ (best.T_kibo_cam.position - centre),
                quat_from_rotmat(G @ rotmat_from_quat(best.T_kibo_cam.quat)),
            )
            m = self.refine(pts, T_sym, stamp)
            if m is not None and np.all(m.T_kibo_cam.position >= lo) and np.all(m.T_kibo_cam.position <= hi):
                found.append(m)
        found.sort(key=lambda m: (-round(m.fitness, 2), m.rmse))
        best = found[0]
        S = np.diag(
            [1.0, 1.0, 1.0, 1.0 / best.length_scale, 1.0 / best.length_scale, 1.0 / best.length_scale]
        )
        ambiguous = False
        for other in found[1:]:
            if other.fitness < best.fitness - 0.05 or other.rmse > 1.5 * best.rmse:
                continue
            es = np.linalg.solve(S, _pose_delta(best.T_kibo_cam, other.T_kibo_cam))
            for d in best.degenerate_directions:
                es = es - d * (d @ es)
            e = S @ es
            if np.linalg.norm(e[:3]) > 0.25 or np.linalg.norm(e[3:]) > np.deg2rad(10.0):
                ambiguous = True
        self.last_rejection = ""
        return dataclasses.replace(best, ambiguous=ambiguous)
