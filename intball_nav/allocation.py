"""Wrench -> fan thrust allocation, exact and fast, never outside the fan limits.

The allocation matrix ``B`` (6,8) of the Int-Ball2 fan geometry has rank 6 and a
2-dimensional null space spanned by the indicator vectors of two fan groups
(IB2 fans {1,3,5,7} and {2,4,6,8}, i.e. indices {0,2,4,6} and {1,3,5,7}): raising all
fans of one group equally produces no wrench. Every solution of ``B t = w`` is therefore
``t = B+ w + sum_g z_g 1_g``, and a wrench is feasible with ``lo <= t <= hi`` if and only
if, in every group, the spread ``max - min`` of ``B+ w`` is at most ``hi - lo``. That
gives closed forms for everything:

1. feasible: lift each group so that its smallest thrust is ``fan_min`` (least total
   thrust: quietest), done.
2. infeasible: keep the torque first (attitude stability): the largest torque scale
   ``s_tau <= 1`` whose spread fits; then, with that torque, the largest force scale
   ``s_f <= 1`` (a minimum over the pairwise spread constraints, linear in ``s_f``).

The structure is checked when the allocator for a geometry is first built; a geometry
without it raises ValueError. Cost (CPU time, 2-core AMD EPYC): ~6 us per call for a feasible
wrench (step 1 on plain floats), ~35 us when saturating (``bench/bench_allocation.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from intball_nav.robot import RobotParams


@dataclass(frozen=True)
class AllocationResult:
    """Result of :func:`allocate`.

    thrust : (8,) N, always within [fan_min, fan_max]
    achieved : (6,) [force N; torque N m], body frame, ``B @ thrust``
    scale : force scale applied (1.0 = the requested force was achieved)
    torque_scale : torque scale applied (1.0 = the requested torque was achieved)
    saturated : True when either scale is below 1
    """

    thrust: np.ndarray
    achieved: np.ndarray
    scale: float
    torque_scale: float
    saturated: bool


@dataclass(frozen=True)
class _Allocator:
    B: np.ndarray  # (6,8)
    pinv: np.ndarray  # (8,6)
    pinv_force: np.ndarray  # (8,3)
    pinv_torque: np.ndarray  # (8,3)
    groups: np.ndarray  # (n_groups, group_size) fan indices
    pair_i: np.ndarray  # ordered pairs (i, j), i != j, within each group
    pair_j: np.ndarray
    lo: float
    hi: float
    pinv_rows: tuple[tuple[float, ...], ...]  # pinv as plain floats, for the fast path
    group_lists: tuple[tuple[int, ...], ...]


_HUGE_WRENCH = 1e6  # N or N m; any wrench this large saturates by orders of magnitude
_CACHE: dict[int, tuple[RobotParams, _Allocator]] = {}


def _build(params: RobotParams) -> _Allocator:
    B = params.allocation_matrix
    pinv = np.linalg.pinv(B)
    n = B.shape[1]
    projector = np.eye(n) - pinv @ B  # onto the null space of B
    linked = np.abs(projector) > 1e-9
    groups: list[list[int]] = []
    for i in range(n):
        members = sorted(int(j) for j in np.flatnonzero(linked[i]))
        if members and members not in groups:
            groups.append(members)
    nullity = n - np.linalg.matrix_rank(B)
    flat = sorted(i for g in groups for i in g)
    sizes = {len(g) for g in groups}
    ok = len(groups) == nullity and flat == list(range(n)) and len(sizes) == 1
    for g in groups:
        ind = np.zeros(n)
        ind[g] = 1.0
        ok = ok and bool(np.allclose(B @ ind, 0.0, atol=1e-9))
    if not ok:
        raise ValueError(
            "allocation needs a fan geometry whose null space is spanned by disjoint, equal-size "
            "fan groups (as Int-Ball2's); this geometry is not"
        )
    g_arr = np.array(groups, dtype=int)
    pairs = [(i, j) for g in groups for i in g for j in g if i != j]
    return _Allocator(
        B=B,
        pinv=pinv,
        pinv_force=np.ascontiguousarray(pinv[:, :3]),
        pinv_torque=np.ascontiguousarray(pinv[:, 3:]),
        groups=g_arr,
        pair_i=np.array([p[0] for p in pairs]),
        pair_j=np.array([p[1] for p in pairs]),
        lo=params.fan_min,
        hi=params.fan_max,
        pinv_rows=tuple(tuple(row) for row in pinv.tolist()),
        group_lists=tuple(tuple(g) for g in groups),
    )


def _allocator(params: RobotParams) -> _Allocator:
    entry = _CACHE.get(id(params))
    if entry is None or entry[0] is not params:
        entry = (params, _build(params))
        _CACHE[id(params)] = entry
    return entry[1]


def _allocate_feasible(w: list[float], a: _Allocator) -> np.ndarray | None:
    """Step 1 of the module docstring on plain floats: the thrusts (8,) N, or None if the
    wrench (6 floats) is infeasible, too large or not finite (:func:`_allocate_general`
    handles those). The common case, and ~3x faster than numpy on arrays this small."""
    w0, w1, w2, w3, w4, w5 = w
    big = _HUGE_WRENCH
    if not (-big <= w0 <= big and -big <= w1 <= big and -big <= w2 <= big):  # False for NaN
        return None
    if not (-big <= w3 <= big and -big <= w4 <= big and -big <= w5 <= big):
        return None
    t = [p0 * w0 + p1 * w1 + p2 * w2 + p3 * w3 + p4 * w4 + p5 * w5 for p0, p1, p2, p3, p4, p5 in a.pinv_rows]
    lo, hi = a.lo, a.hi
    span = hi - lo
    for group in a.group_lists:
        values = [t[i] for i in group]
        low = min(values)
        if max(values) - low > span:
            return None
        lift = lo - low
        for i in group:
            ti = t[i] + lift
            t[i] = lo if ti < lo else hi if ti > hi else ti  # the clip catches round-off only
    return np.array(t)


def allocate(wrench_body: np.ndarray, params: RobotParams) -> AllocationResult:
    """Fan thrusts (8,) N for a body wrench (6,) [force N; torque N m].

    Exact (``B @ thrust == wrench``) whenever the wrench is feasible; otherwise the
    torque is kept first and the force scaled (see module docstring). Never returns a
    thrust outside [fan_min, fan_max]. Raises ValueError for a non-finite or mis-shaped
    wrench.
    """
    w = np.asarray(wrench_body, dtype=float)
    if w.shape != (6,):
        raise ValueError(f"wrench must have shape (6,) [Fx, Fy, Fz, Tx, Ty, Tz], got {w.shape}")
    a = _allocator(params)
    thrust = _allocate_feasible(w.tolist(), a)
    if thrust is not None:
        return AllocationResult(
            thrust=thrust, achieved=a.B @ thrust, scale=1.0, torque_scale=1.0, saturated=False
        )
    return _allocate_general(w, a)


def _allocate_general(w: np.ndarray, a: _Allocator) -> AllocationResult:
    """:func:`allocate` for any wrench (6,) (both steps of the module docstring, numpy)."""
    largest = float(np.abs(w).max())  # NaN or inf if any element is
    if not largest <= _HUGE_WRENCH:
        if not np.isfinite(w).all():
            raise ValueError(f"wrench must be finite (NaN or inf in {w.tolist()})")
        # Far beyond the fan authority only the direction matters: rescale force and torque
        # separately (each is then saturated anyway) so that nothing overflows.
        pre_f = min(1.0, _HUGE_WRENCH / max(float(np.abs(w[:3]).max()), 1.0))
        pre_t = min(1.0, _HUGE_WRENCH / max(float(np.abs(w[3:]).max()), 1.0))
        w = np.concatenate([w[:3] * pre_f, w[3:] * pre_t])
    else:
        pre_f = pre_t = 1.0
    span = a.hi - a.lo
    t = a.pinv @ w
    g = t[a.groups]
    s_force = s_torque = 1.0
    if (g.max(axis=1) - g.min(axis=1)).max() > span:
        t_force = a.pinv_force @ w[:3]
        t_torque = a.pinv_torque @ w[3:]
        gt = t_torque[a.groups]
        spread_t = float((gt.max(axis=1) - gt.min(axis=1)).max())
        if spread_t > span:
            s_torque = span / spread_t
        c = s_torque * t_torque
        df = t_force[a.pair_i] - t_force[a.pair_j]
        dc = c[a.pair_i] - c[a.pair_j]
        pos = df > 1e-15
        if pos.any():
            s_force = float(np.clip(((span - dc[pos]) / df[pos]).min(), 0.0, 1.0))
        t = c + s_force * t_force
        g = t[a.groups]
    lift = a.lo - g.min(axis=1)
    t[a.groups] += lift[:, None]
    np.maximum(t, a.lo, out=t)  # round-off only: the lift and scales keep t in range
    np.minimum(t, a.hi, out=t)
    return AllocationResult(
        thrust=t,
        achieved=a.B @ t,
        scale=s_force * pre_f,
        torque_scale=s_torque * pre_t,
        saturated=s_force * pre_f < 1.0 or s_torque * pre_t < 1.0,
    )
