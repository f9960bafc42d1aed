"""Collision-free paths between positions in the module, and their time parameterization.

Configuration space: the robot is a sphere, so planning is for its centre, in the ``kibo``
frame (m). The free space is the module clear volume shrunk by ``clearance = radius +
margin`` (the *keep-in box*) minus every keep-out box grown by ``clearance`` on each side
(the *inflated boxes*; axis-aligned growth is conservative around box edges and corners).
The dock counts as an obstacle; its approach point 0.30 m below the dock face is free, the
last docking leg (to 0.095 m) is the docking logic's straight move, not a planning problem.

:func:`plan_path` returns the straight segment when it is free (no search). Otherwise it
searches a 3-D grid (cells free when their centre is outside every inflated box,
26-connected, edge weight = length, edges near a box tested exactly) with Dijkstra
(``scipy.sparse.csgraph``) on a graph built once per map and cached; it first tries a map
with ``reserve`` more margin, so paths keep room for corner blending where the module
allows. The grid path is shortened by greedy visibility, then by rounds of corner cutting
and shortcutting (exact segment tests) until it is taut. Every segment of a returned path
passes :meth:`PlanningMap.segment_free`. The planner is deterministic.

:func:`path_trajectory` flies a path as a sum of rest-to-rest trapezoid legs (the
:mod:`intball_nav.guidance` profiles): stop-and-go at every corner by default, or with
corners of at most 60 deg blended by overlapping the ramps of adjacent legs, within a
given distance of the polyline and checked free; speed and acceleration stay within the
flight-mode limits either way. The attitude turns about one fixed axis over the whole
flight. ``docs/planning.md`` has the details and the measured performance.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import dijkstra

from intball_nav.flight_modes import FlightMode
from intball_nav.frames import (
    quat_conjugate,
    quat_from_rotvec_f,
    quat_multiply,
    quat_multiply_f,
    quat_normalize,
    quat_normalize_f,
    rotvec_from_quat,
)
from intball_nav.guidance import (
    MIN_ANGLE,
    MIN_DISTANCE,
    Setpoint,
    TrapezoidProfile,
    min_duration,
    trapezoid,
)
from intball_nav.safety import Box, GoalRejected, as_box, keep_in_from_module

DEFAULT_MARGIN = 0.05
"""m, safety margin added to the robot radius around walls and keep-out zones."""
DEFAULT_RESOLUTION = 0.10
"""m, search-grid cell size."""
DEFAULT_RESERVE = 0.05
"""m, extra distance searched paths keep from walls and zones where there is room (corner
blending may use it)."""

_AXES = "xyz"
_SQRT3_2 = math.sqrt(3.0) / 2.0
_CONNECT_RINGS = (2, 3, 5)
"""cells: neighbourhoods searched, in turn, for grid nodes visible from the start / goal."""
_SMOOTH_PASSES = 30
"""at most this many rounds of corner cutting and shortcutting ..."""
_SMOOTH_TOL = 1e-3
"""m; ... until a round shortens the path by less than this"""
_BISECTIONS = 8
_MIN_CUT = 1e-3
"""m; corners are not cut by less than this"""
_SHORT_LEG = 0.5
"""m; interior legs shorter than this are merged into one corner when possible ..."""
_MERGE_COST = 0.02
"""m; ... if the path gets at most this much longer"""
_EPS = 1e-6
"""m; the exact tests grow the inflated boxes by this much, so that points sampled on a
returned segment (round-off ~1e-16 m) are never inside an inflated box."""


class PlanningFailed(GoalRejected):
    """No collision-free path; ``str()`` is the reason. ``kind`` is one of ``input``,
    ``start``, ``goal``, ``no_path``. A :class:`~intball_nav.safety.GoalRejected`, so code
    that rejects unusable goals handles it too."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, eq=False)
class PlanningMap:
    """Free space for the robot centre; immutable (run-time zones make new maps; compare
    maps by ``zone_names`` or the boxes, ``==`` is identity).

    keep_in : the module clear volume (not shrunk), kibo frame
    keep_out : obstacles and keep-out zones (not grown), named; names are unique
    radius : m, robot radius; margin : m, extra safety distance
    resolution : m, search-grid cell size (the grid is built on first use and cached)
    """

    keep_in: Box
    keep_out: tuple[Box, ...]
    radius: float
    margin: float = DEFAULT_MARGIN
    resolution: float = DEFAULT_RESOLUTION
    _lo: np.ndarray = field(init=False, repr=False, compare=False)
    _hi: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for key in ("radius", "margin", "resolution"):
            v = getattr(self, key)
            if not (math.isfinite(v) and v >= 0.0):
                raise ValueError(f"planning map: {key} must be a finite number >= 0, got {v}")
        if self.resolution <= 0.0:
            raise ValueError(f"planning map: resolution must be > 0, got {self.resolution}")
        zones = tuple(as_box(z) for z in self.keep_out)
        names = [z.name for z in zones]
        if any(not n for n in names):
            raise ValueError("planning map: every keep-out box needs a name")
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"planning map: duplicate keep-out names {dup}")
        object.__setattr__(self, "keep_out", zones)
        inner = self.keep_in_limits
        if np.any(inner[0] > inner[1]):
            raise ValueError(
                f"planning map: the clear volume shrunk by {self.clearance:.2f} m is empty "
                f"({inner[0].tolist()} .. {inner[1].tolist()})"
            )
        c = self.clearance
        lo = np.array([z.min - c - _EPS for z in zones]).reshape(-1, 3)
        hi = np.array([z.max + c + _EPS for z in zones]).reshape(-1, 3)
        object.__setattr__(self, "_lo", lo)
        object.__setattr__(self, "_hi", hi)

    @staticmethod
    def from_module(
        module,
        radius: float,
        *,
        margin: float = DEFAULT_MARGIN,
        resolution: float = DEFAULT_RESOLUTION,
        extra_keep_out: Iterable = (),
    ) -> PlanningMap:
        """Map of a :class:`~intball_nav.module.ModuleGeometry`: its clear volume, its dock
        box (``dock``) and default keep-out zones, plus ``extra_keep_out`` boxes."""
        zones = (as_box(module.dock.box), *(as_box(z) for z in module.keep_out))
        zones += tuple(as_box(z) for z in extra_keep_out)
        return PlanningMap(keep_in_from_module(module), zones, radius, margin, resolution)

    @property
    def clearance(self) -> float:
        """m, radius + margin: how far the centre stays from walls and zones."""
        return self.radius + self.margin

    @property
    def keep_in_limits(self) -> tuple[np.ndarray, np.ndarray]:
        """(lo (3,), hi (3,)) m, kibo: the box the robot centre must stay in."""
        return self.keep_in.min + self.clearance, self.keep_in.max - self.clearance

    def inflated(self) -> tuple[Box, ...]:
        """Keep-out boxes grown by the clearance (what the robot centre must avoid)."""
        return tuple(z.grown(self.clearance) for z in self.keep_out)

    def with_keep_out(self, zone) -> PlanningMap:
        """A new map with one more keep-out box (any object with min, max and a name)."""
        return replace(self, keep_out=(*self.keep_out, as_box(zone)))

    def without_keep_out(self, name: str) -> PlanningMap:
        """A new map without the keep-out box ``name`` (KeyError if there is none)."""
        kept = tuple(z for z in self.keep_out if z.name != name)
        if len(kept) == len(self.keep_out):
            raise KeyError(f"no keep-out zone named {name!r} (have: {', '.join(self.zone_names)})")
        return replace(self, keep_out=kept)

    @property
    def zone_names(self) -> tuple[str, ...]:
        return tuple(z.name for z in self.keep_out)

    # -- exact tests ---------------------------------------------------------------------------

    def point_free(self, point: np.ndarray) -> bool:
        """True if a robot centred at point (3,) m, kibo, keeps the clearance from everything."""
        p = np.asarray(point, dtype=float)
        lo, hi = self.keep_in_limits
        if not (np.all(p >= lo) and np.all(p <= hi)):
            return False
        return not bool(np.any(np.all((p >= self._lo) & (p <= self._hi), axis=1)))

    def segment_free(self, a: np.ndarray, b: np.ndarray) -> bool:
        """True if the straight segment a -> b ((3,) m each, kibo) is free (exact slab test
        against every inflated box, closed boxes; the keep-in box is convex, so the ends
        decide)."""
        a = np.asarray(a, dtype=float).reshape(1, 3)
        b = np.asarray(b, dtype=float).reshape(1, 3)
        return bool(self._segments_free(a, b)[0])

    def path_free(self, points: np.ndarray) -> bool:
        """True if every segment of a polyline (N, 3) m, kibo, is free (use it to decide
        whether a path must be re-planned after the map changed)."""
        pts = np.asarray(points, dtype=float).reshape(-1, 3)
        if len(pts) == 1:
            return self.point_free(pts[0])
        return bool(np.all(self._segments_free(pts[:-1], pts[1:])))

    def _segments_free(self, a: np.ndarray, b: np.ndarray, grow: float = 0.0) -> np.ndarray:
        """(M,) bool for segments a[i] -> b[i]; a, b : (M, 3) m (or one of them (1, 3)).
        ``grow`` (m) enlarges the inflated boxes further (not the walls)."""
        lo, hi = self.keep_in_limits
        ok = np.all((a >= lo) & (a <= hi), axis=-1) & np.all((b >= lo) & (b <= hi), axis=-1)
        if len(self._lo) == 0:
            return ok
        return ok & ~np.any(_segments_hit_boxes(a, b, self._lo - grow, self._hi + grow), axis=-1)

    # -- search grid ---------------------------------------------------------------------------

    @cached_property
    def _grid(self) -> _Grid:
        return _Grid.build(self)

    @cached_property
    def _derived(self) -> dict[float, PlanningMap | None]:
        return {}

    def _with_reserve(self, reserve: float) -> PlanningMap | None:
        """This map with the margin grown by ``reserve`` (cached; None if nothing is left)."""
        if reserve not in self._derived:
            lo, hi = self.keep_in_limits
            ok = np.all(hi - lo >= 2.0 * reserve)
            self._derived[reserve] = replace(self, margin=self.margin + reserve) if ok else None
        return self._derived[reserve]


def _segments_hit_boxes(a: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(M, N) bool: segment a[m] -> b[m] touches closed box n (slab method).

    a, b : (M, 3) or (1, 3) m; lo, hi : (N, 3) m.
    """
    p = np.asarray(a, dtype=float)[:, None, :]
    d = (np.asarray(b, dtype=float) - np.asarray(a, dtype=float))[:, None, :]
    zero = d == 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / np.where(zero, 1.0, d)
        t1 = (lo[None] - p) * inv
        t2 = (hi[None] - p) * inv
    inside = (p >= lo[None]) & (p <= hi[None])
    t_near = np.where(zero, np.where(inside, -np.inf, np.inf), np.minimum(t1, t2))
    t_far = np.where(zero, np.where(inside, np.inf, -np.inf), np.maximum(t1, t2))
    enter = t_near.max(axis=-1)
    leave = t_far.min(axis=-1)
    return (enter <= leave) & (leave >= 0.0) & (enter <= 1.0)


_OFFSETS = np.array(
    [(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1) if (i, j, k) > (0, 0, 0)]
)
"""13 half-neighbourhood offsets of 26-connectivity (each undirected edge once)."""


@dataclass(frozen=True)
class _Grid:
    """Search grid over the keep-in box: node centres ``origin + index * h``.

    free : (nx, ny, nz) bool, cells whose centre is outside every inflated box.
    graph : CSR adjacency of the 26-connected free cells, both directions of every edge
    (weight = length, m). An edge can only touch an inflated box if one of its ends lies
    within sqrt(3)/2 h of it (no point of the edge is farther than that from both ends), so
    only edges with an end in that band are tested exactly; the others are free as built.
    """

    origin: np.ndarray
    h: float
    shape: tuple[int, int, int]
    free: np.ndarray
    graph: csr_matrix

    @staticmethod
    def build(pmap: PlanningMap) -> _Grid:
        h = pmap.resolution
        lo, hi = pmap.keep_in_limits
        n = np.floor((hi - lo) / h + 1e-9).astype(int) + 1
        origin = lo + 0.5 * ((hi - lo) - (n - 1) * h)
        free = np.ones(tuple(n), dtype=bool)
        near = np.zeros(tuple(n), dtype=bool)

        def cells(zlo: np.ndarray, zhi: np.ndarray) -> tuple[slice, ...]:
            i0 = np.maximum(np.ceil((zlo - origin) / h - 1e-9).astype(int), 0)
            i1 = np.minimum(np.floor((zhi - origin) / h + 1e-9).astype(int), n - 1)
            return tuple(slice(a, max(a, b + 1)) for a, b in zip(i0, i1, strict=True))

        band = _SQRT3_2 * h
        for zlo, zhi in zip(pmap._lo, pmap._hi, strict=True):
            free[cells(zlo, zhi)] = False
            near[cells(zlo - band, zhi + band)] = True
        near &= free
        flat = np.arange(free.size).reshape(free.shape)
        rows, cols, weights = [], [], []
        for off in _OFFSETS:
            src = tuple(slice(max(0, -o), s - max(0, o)) for o, s in zip(off, free.shape, strict=True))
            dst = tuple(slice(max(0, o), s - max(0, -o)) for o, s in zip(off, free.shape, strict=True))
            both = free[src] & free[dst]
            r = flat[src][both]
            c = flat[dst][both]
            check = (near[src] | near[dst])[both]
            if np.any(check):
                idx = np.flatnonzero(check)
                a = origin + np.stack(np.unravel_index(r[idx], free.shape), axis=-1) * h
                hit = np.any(_segments_hit_boxes(a, a + off * h, pmap._lo, pmap._hi), axis=-1)
                keep = np.ones(r.size, dtype=bool)
                keep[idx[hit]] = False
                r, c = r[keep], c[keep]
            rows.append(r)
            cols.append(c)
            weights.append(np.full(r.size, h * float(np.linalg.norm(off))))
        r = np.concatenate(rows)
        c = np.concatenate(cols)
        w = np.concatenate(weights)
        graph = coo_matrix(
            (np.concatenate([w, w]), (np.concatenate([r, c]), np.concatenate([c, r]))),
            shape=(free.size, free.size),
        ).tocsr()
        return _Grid(origin, h, (int(n[0]), int(n[1]), int(n[2])), free, graph)

    def centres(self, flat_index: np.ndarray) -> np.ndarray:
        """(M, 3) m, kibo: centres of cells by flat index."""
        idx = np.stack(np.unravel_index(flat_index, self.shape), axis=-1)
        return self.origin + idx * self.h

    def visible_nodes(self, pmap: PlanningMap, point: np.ndarray) -> np.ndarray:
        """Flat indices of free cells near point (3,) m joined to it by a free segment, from the
        smallest neighbourhood in _CONNECT_RINGS that has any (empty array if none does)."""
        centre = np.rint((point - self.origin) / self.h).astype(int)
        shape = np.array(self.shape)
        for ring in _CONNECT_RINGS:
            i0 = np.clip(centre - ring, 0, shape - 1)
            i1 = np.clip(centre + ring, 0, shape - 1)
            block = self.free[i0[0] : i1[0] + 1, i0[1] : i1[1] + 1, i0[2] : i1[2] + 1]
            local = np.argwhere(block) + i0
            if len(local) == 0:
                continue
            pts = self.origin + local * self.h
            ok = pmap._segments_free(point.reshape(1, 3), pts)
            if np.any(ok):
                return np.ravel_multi_index(tuple(local[ok].T), self.shape)
        return np.empty(0, dtype=int)


@dataclass(frozen=True)
class Path:
    """Collision-free polyline for the robot centre.

    points : (N, 3) m, kibo frame, start first, goal last (N >= 2)
    searched : False when the straight segment was free (no search was run)
    """

    points: np.ndarray
    searched: bool

    @property
    def length(self) -> float:
        """m, sum of the segment lengths."""
        return _length(self.points)


def _check_endpoint(pmap: PlanningMap, p: np.ndarray, which: str) -> None:
    if not pmap.point_free(p):
        raise PlanningFailed(which, f"{which} {_fmt(p)} m {_why_blocked(pmap, p)}")


def _why_blocked(pmap: PlanningMap, p: np.ndarray) -> str:
    lo, hi = pmap.keep_in_limits
    tail = f"robot radius {pmap.radius:.2f} m + margin {pmap.margin:.2f} m"
    for i, axis in enumerate(_AXES):
        if p[i] > hi[i]:
            return (
                f"is outside the keep-in box: {axis}={p[i]:.3f} m is {p[i] - hi[i]:.3f} m beyond the "
                f"limit {hi[i]:.3f} m (clear volume {pmap.keep_in.max[i]:.2f} m minus {tail})"
            )
        if p[i] < lo[i]:
            return (
                f"is outside the keep-in box: {axis}={p[i]:.3f} m is {lo[i] - p[i]:.3f} m below the "
                f"limit {lo[i]:.3f} m (clear volume {pmap.keep_in.min[i]:.2f} m plus {tail})"
            )
    for zone, zlo, zhi in zip(pmap.keep_out, pmap._lo, pmap._hi, strict=True):
        if np.all(p >= zlo) and np.all(p <= zhi):
            # distance to each face of the inflated box, counting only faces inside the keep-in
            depth = np.concatenate([p - zlo, zhi - p])
            depth[np.concatenate([zlo < lo, zhi > hi])] = np.inf
            k = int(np.argmin(depth))
            side = ("-" if k < 3 else "+") + _AXES[k % 3]
            inside = "inside" if zone.contains(p) else f"within {pmap.clearance:.2f} m ({tail}) of"
            where = f"is {inside} keep-out zone {zone.name} ({_fmt(zone.min)} .. {_fmt(zone.max)} m)"
            if not np.isfinite(depth[k]):
                return f"{where}, which (grown) fills the keep-in box around it"
            return f"{where}: {depth[k]:.3f} m from its {side} face (the nearest inside the keep-in)"
    return "is not free"  # not reached: point_free is False for one of the reasons above


def _fmt(p: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:.2f}" for v in p) + ")"


def _as_point(p, which: str) -> np.ndarray:
    a = np.asarray(p, dtype=float)
    if a.shape != (3,) or not np.isfinite(a).all():
        raise PlanningFailed("input", f"{which} position {np.asarray(p).tolist()} is not 3 finite numbers")
    return a


def plan_path(
    start: np.ndarray, goal: np.ndarray, pmap: PlanningMap, *, seed: int = 0, reserve: float = DEFAULT_RESERVE
) -> Path:
    """Collision-free path start -> goal (both (3,) m, kibo frame) in ``pmap``.

    The straight segment when it is free. Otherwise a searched path that keeps ``reserve``
    (m) more than the clearance from walls and zones when such a path exists and start and
    goal allow it (room for :func:`path_trajectory` to blend corners), else one that only
    keeps the clearance. Raises PlanningFailed with the reason: non-finite input, start or
    goal not free (which limit or zone, and by how much), or no path (naming a zone that
    closes the whole cross-section when there is one). ``seed`` is accepted for API
    stability with sampling planners; this planner is deterministic and does not use it.
    """
    del seed
    a = _as_point(start, "start")
    b = _as_point(goal, "goal")
    _check_endpoint(pmap, a, "start")
    _check_endpoint(pmap, b, "goal")
    if pmap.segment_free(a, b):
        return Path(np.array([a, b]), searched=False)
    roomy = pmap._with_reserve(reserve) if reserve > 0.0 else None
    if roomy is not None and roomy.point_free(a) and roomy.point_free(b):
        try:
            return Path(_search(roomy, a, b), searched=True)
        except PlanningFailed:
            pass  # only the clearance leaves a way through: plan without the reserve
    return Path(_search(pmap, a, b), searched=True)


def _search(pmap: PlanningMap, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 3) free polyline a -> b (free points) by grid search, shortcutting, corner cutting."""
    grid = pmap._grid
    src = grid.visible_nodes(pmap, a)
    dst = grid.visible_nodes(pmap, b)
    for nodes, which, p in ((src, "start", a), (dst, "goal", b)):
        if len(nodes) == 0:
            raise PlanningFailed(
                "no_path",
                f"{which} {_fmt(p)} m is free but enclosed: no search-grid cell "
                f"({grid.h:.2f} m) within reach; it is in a pocket narrower than the grid",
            )
    # Multi-source Dijkstra from the cells the start sees; the start -> cell offsets
    # (<= a few cells) are added when choosing the goal cell, and shortcutting absorbs them.
    dist, pred, sources = dijkstra(grid.graph, indices=src, return_predecessors=True, min_only=True)
    src_off = dict(zip(src.tolist(), np.linalg.norm(grid.centres(src) - a, axis=1).tolist(), strict=True))
    dst_cost = dist[dst] + np.linalg.norm(grid.centres(dst) - b, axis=1)
    if not np.isfinite(dst_cost).any():
        raise PlanningFailed("no_path", _no_path_reason(pmap, a, b))
    total = dst_cost + np.array([src_off.get(int(s), 0.0) for s in sources[dst]])
    node = int(dst[int(np.argmin(total))])
    chain = [node]
    while pred[node] >= 0:
        node = int(pred[node])
        chain.append(node)
    points = _shortcut(pmap, np.vstack([a, grid.centres(np.array(chain[::-1])), b]))
    length = _length(points)
    for _ in range(_SMOOTH_PASSES):
        points = _shortcut(pmap, _cut_corners(pmap, points))
        shorter = _length(points)
        if length - shorter < _SMOOTH_TOL:
            break
        length = shorter
    points = _merge_short_legs(pmap, points)
    if not pmap.path_free(points):  # every step above keeps the path free; this guards it
        raise RuntimeError(f"planner bug: path {points.tolist()} is not free")
    return points


def _no_path_reason(pmap: PlanningMap, a: np.ndarray, b: np.ndarray) -> str:
    lo, hi = pmap.keep_in_limits
    walls = []
    for zone, zlo, zhi in zip(pmap.keep_out, pmap._lo, pmap._hi, strict=True):
        for i, axis in enumerate(_AXES):
            j, k = [m for m in range(3) if m != i]
            spans = zlo[j] <= lo[j] and zhi[j] >= hi[j] and zlo[k] <= lo[k] and zhi[k] >= hi[k]
            sides = (a[i] < zlo[i] and b[i] > zhi[i]) or (b[i] < zlo[i] and a[i] > zhi[i])
            if spans and sides:
                walls.append(
                    f"keep-out zone {zone.name} grown by {pmap.clearance:.2f} m closes the whole "
                    f"cross-section at {axis} {zlo[i]:.2f} .. {zhi[i]:.2f} m"
                )
    reason = "; ".join(walls) if walls else "the free space between them is not connected"
    return f"no collision-free path from start {_fmt(a)} m to goal {_fmt(b)} m: {reason}"


def _length(points: np.ndarray) -> float:
    return float(np.sum(np.linalg.norm(np.diff(points, axis=0), axis=1)))


def _shortcut(pmap: PlanningMap, points: np.ndarray) -> np.ndarray:
    """Greedy visibility: from each kept vertex jump to the farthest vertex it sees."""
    out = [points[0]]
    i, n = 0, len(points)
    while i < n - 1:
        ok = pmap._segments_free(points[i].reshape(1, 3), points[i + 1 :])
        ok[0] = True  # consecutive vertices of a valid path are joined by free segments
        i = i + 1 + int(np.flatnonzero(ok)[-1])
        out.append(points[i])
    return np.array(out)


def _merge_short_legs(pmap: PlanningMap, points: np.ndarray) -> np.ndarray:
    """Replace the two ends of a short interior leg (where the path wraps around a box edge
    it keeps two close corners) by one corner where the neighbouring legs' lines meet, if
    that is free and costs at most _MERGE_COST of length: short legs make slow flights."""
    pts = list(points)
    i = 1
    while i < len(pts) - 2:
        p0, v0, v1, p1 = pts[i - 1], pts[i], pts[i + 1], pts[i + 2]
        if np.linalg.norm(v1 - v0) < _SHORT_LEG:
            u, w = v0 - p0, v1 - p1
            r = p0 - p1
            uu, uw, ww, ur, wr = u @ u, u @ w, w @ w, u @ r, w @ r
            den = uu * ww - uw * uw
            if den > 1e-12 * uu * ww:
                s_, t_ = (uw * wr - ww * ur) / den, (uu * wr - uw * ur) / den
                corner = 0.5 * (p0 + s_ * u + p1 + t_ * w)
                old = np.linalg.norm(v0 - p0) + np.linalg.norm(v1 - v0) + np.linalg.norm(p1 - v1)
                new = np.linalg.norm(corner - p0) + np.linalg.norm(p1 - corner)
                if new <= old + _MERGE_COST and pmap.path_free(np.array([p0, corner, p1])):
                    pts[i : i + 2] = [corner]
                    continue
        i += 1
    return np.array(pts)


def _cut_corners(pmap: PlanningMap, points: np.ndarray) -> np.ndarray:
    """Replace each interior vertex v by two points, v + lam (prev - v) and v + lam (next - v),
    with the largest lam <= 1/2 (bisection) whose chord is free. Cutting a corner never
    lengthens the path, and repeated cuts pull it taut around the obstacles' edges."""
    out = [points[0]]
    for i in range(1, len(points) - 1):
        v, p0, p1 = points[i], out[-1], points[i + 1]
        good, bad = 0.0, 0.5
        if pmap.segment_free(v + bad * (p0 - v), v + bad * (p1 - v)):
            good = bad
        else:
            for _ in range(_BISECTIONS):
                mid = 0.5 * (good + bad)
                if pmap.segment_free(v + mid * (p0 - v), v + mid * (p1 - v)):
                    good = mid
                else:
                    bad = mid
        if good * min(np.linalg.norm(p0 - v), np.linalg.norm(p1 - v)) > _MIN_CUT:
            out += [v + good * (p0 - v), v + good * (p1 - v)]
        else:
            out.append(v)
    out.append(points[-1])
    return np.array(out)


# ---------------------------------------------------------------------------------------------
# Time parameterization

MAX_BLEND_TURN = math.pi / 3.0
"""rad; corners that turn more than this are flown stop-and-go (a blend of two legs with
the same acceleration a turns the acceleration vector by up to 2 a sin(turn / 2) <= a)."""


@dataclass(frozen=True)
class PathTrajectory:
    """Flight along a polyline: a sum of rest-to-rest trapezoid legs, each starting
    ``overlap[i]`` seconds before the previous one ends (0: stop at that corner), plus one
    fixed-axis rotation from the start to the goal attitude over the whole flight.

    points : (N, 3) m, kibo frame. starts : (N-1,) s, absolute start time of each leg.
    legs : translation profile of each leg along ``directions`` (N-1, 3) unit.
    overlap : (N-2,) s, blend time at each interior corner.
    q_start : (4,) xyzw; axis : (3,) unit, start body frame; rotation : angle profile.
    """

    points: np.ndarray
    starts: np.ndarray
    legs: tuple[TrapezoidProfile, ...]
    directions: np.ndarray
    overlap: np.ndarray
    t_start: float
    q_start: np.ndarray
    q_goal: np.ndarray
    axis: np.ndarray
    rotation: TrapezoidProfile
    _ends: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _floats: tuple = field(init=False, repr=False, compare=False)
    """points, directions, starts, axis, q_start as plain floats (for :meth:`sample`)."""

    def __post_init__(self) -> None:
        ends = tuple(float(t + leg.duration) for t, leg in zip(self.starts, self.legs, strict=True))
        object.__setattr__(self, "_ends", ends)
        floats = (
            [tuple(p) for p in np.asarray(self.points, dtype=float).tolist()],
            [tuple(d) for d in np.asarray(self.directions, dtype=float).reshape(-1, 3).tolist()],
            np.asarray(self.starts, dtype=float).tolist(),
            tuple(np.asarray(self.axis, dtype=float).tolist()),
            tuple(np.asarray(self.q_start, dtype=float).tolist()),
        )
        object.__setattr__(self, "_floats", floats)

    @property
    def t_end(self) -> float:
        """s, absolute: translation and rotation have both finished."""
        return max(self._ends[-1] if self._ends else self.t_start, self.t_start + self.rotation.duration)

    @property
    def duration(self) -> float:
        return self.t_end - self.t_start

    def sample(self, t: float) -> Setpoint:
        """Setpoint at absolute time t (s): at rest on the start before t_start, on the goal
        after t_end."""
        # Plain floats (runs every control tick), as in guidance.Trajectory.sample.
        points, dirs, starts, (ux, uy, uz), q_start = self._floats
        done = bisect.bisect_right(self._ends, t)  # legs finish in order
        px, py, pz = points[done]
        vx = vy = vz = ax = ay = az = 0.0
        j = done
        while j < len(starts) and starts[j] < t:  # at most two legs are active
            s, sd, sdd = self.legs[j].sample(t - starts[j])
            dx, dy, dz = dirs[j]
            px, py, pz = px + s * dx, py + s * dy, pz + s * dz
            vx, vy, vz = vx + sd * dx, vy + sd * dy, vz + sd * dz
            ax, ay, az = ax + sdd * dx, ay + sdd * dy, az + sdd * dz
            j += 1
        th, thd, thdd = self.rotation.sample(t - self.t_start)
        if t >= self.t_start + self.rotation.duration:
            quat = self.q_goal
        else:
            quat = np.array(
                quat_normalize_f(quat_multiply_f(q_start, quat_from_rotvec_f(th * ux, th * uy, th * uz)))
            )
        return Setpoint(
            position=np.array([px, py, pz]),
            velocity=np.array([vx, vy, vz]),
            acceleration=np.array([ax, ay, az]),
            quat=quat,
            omega=np.array([thd * ux, thd * uy, thd * uz]),
            alpha=np.array([thdd * ux, thdd * uy, thdd * uz]),
        )


def path_trajectory(
    path: Path | Sequence[np.ndarray] | np.ndarray,
    start_quat: np.ndarray,
    goal_quat: np.ndarray,
    mode: FlightMode,
    t_start: float = 0.0,
    *,
    pmap: PlanningMap | None = None,
    corner_tolerance: float = 0.0,
) -> PathTrajectory:
    """Time-parameterize a path under the limits of ``mode``.

    path : a :class:`Path` or points (N, 3) m, kibo frame (N >= 1). start_quat, goal_quat :
    (4,) xyzw q_kibo_body at the first and last point.

    Translation: each leg is the shortest rest-to-rest trapezoid (|v| <= v_max, |a| <= a_max)
    along its segment. Without ``pmap`` (or with ``corner_tolerance`` 0) the robot stops at
    every corner and never leaves the polyline. With them, a corner that turns by at most
    MAX_BLEND_TURN is blended: the next leg starts during the last ramp of the previous one
    (overlap <= both ramps), so speed stays <= v_max and acceleration <= a_max; the blended
    path lies in the triangle (corner, the two points R = a overlap^2 / 2 back and ahead on
    the legs), at most R sin(turn / 2) <= corner_tolerance (m) from the polyline, and the
    overlap is the longest for which that triangle is free in ``pmap`` (checked by testing
    the two legs' parts against the inflated boxes grown by that distance).

    Attitude: one rotation about a fixed axis (shortest way) from start_quat to goal_quat
    with a trapezoid angle profile (|w| <= w_max, |alpha| <= alpha_max) spread over the whole
    translation; if the turn needs longer, the robot holds the goal position meanwhile.
    """
    pts = np.asarray(path.points if isinstance(path, Path) else path, dtype=float).reshape(-1, 3)
    if len(pts) == 0 or not np.isfinite(pts).all():
        raise ValueError("path_trajectory: the path needs at least one finite point")
    pts = pts[np.concatenate([[True], np.linalg.norm(np.diff(pts, axis=0), axis=1) > MIN_DISTANCE])]
    q0 = quat_normalize(np.asarray(start_quat, dtype=float))
    q1 = quat_normalize(np.asarray(goal_quat, dtype=float))
    t0 = float(t_start)
    delta = np.diff(pts, axis=0)
    lengths = np.linalg.norm(delta, axis=1)
    dirs = delta / lengths[:, None] if len(lengths) else np.zeros((0, 3))
    legs = tuple(trapezoid(L, mode.a_max, min_duration(L, mode.v_max, mode.a_max)) for L in lengths)
    overlap = np.zeros(max(len(legs) - 1, 0))
    if pmap is not None and corner_tolerance > 0.0:
        for i in range(len(overlap)):
            overlap[i] = _blend_overlap(
                pmap,
                pts[i + 1],
                dirs[i],
                dirs[i + 1],
                mode.a_max,
                min(legs[i].t_ramp, legs[i + 1].t_ramp),
                corner_tolerance,
            )
    starts = np.empty(len(legs))
    t = t0
    for i, leg in enumerate(legs):
        starts[i] = t
        t += leg.duration - (overlap[i] if i < len(overlap) else 0.0)
    rotvec = rotvec_from_quat(quat_multiply(quat_conjugate(q0), q1))
    angle = float(np.linalg.norm(rotvec))
    if angle < MIN_ANGLE:
        angle = 0.0
    axis = rotvec / angle if angle > 0.0 else np.zeros(3)
    t_move = max(t - t0, min_duration(angle, mode.w_max, mode.alpha_max))
    rotation = trapezoid(angle, mode.alpha_max, t_move)
    return PathTrajectory(pts, starts, legs, dirs, overlap, t0, q0, q1, axis, rotation)


def _blend_overlap(
    pmap: PlanningMap,
    corner: np.ndarray,
    d_in: np.ndarray,
    d_out: np.ndarray,
    accel: float,
    max_overlap: float,
    tolerance: float,
) -> float:
    """s, longest overlap <= max_overlap of the legs meeting at corner (3,) m whose blend stays
    within ``tolerance`` (m) of the corner and free in pmap; 0 if the turn is too sharp."""
    turn = math.acos(float(np.clip(d_in @ d_out, -1.0, 1.0)))
    if turn > MAX_BLEND_TURN or max_overlap <= 0.0:
        return 0.0
    sin_half = math.sin(0.5 * turn)
    hi = max_overlap if sin_half == 0.0 else min(max_overlap, math.sqrt(2.0 * tolerance / (accel * sin_half)))

    def free(overlap: float) -> bool:
        reach = 0.5 * accel * overlap * overlap
        a = np.array([corner - reach * d_in, corner])
        b = np.array([corner, corner + reach * d_out])
        return bool(np.all(pmap._segments_free(a, b, grow=reach * sin_half)))

    if free(hi):
        return hi
    good, bad = 0.0, hi
    for _ in range(_BISECTIONS + 4):
        mid = 0.5 * (good + bad)
        good, bad = (mid, bad) if free(mid) else (good, mid)
    return good
