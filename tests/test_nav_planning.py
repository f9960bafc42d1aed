"""Path planning in the module: exact collision tests, search, failures, re-planning,
determinism, and the time-parameterized flight along a path (limits, clearance)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intball_nav.flight_modes import get_flight_mode
from intball_nav.frames import quat_from_rpy
from intball_nav.module import load_module
from intball_nav.planning import (
    Path,
    PlanningFailed,
    PlanningMap,
    path_trajectory,
    plan_path,
)
from intball_nav.robot import load_robot_params
from intball_nav.safety import Box, GoalRejected

MODULE = load_module()
RADIUS = load_robot_params().radius
KIBO = PlanningMap.from_module(MODULE, RADIUS)
# A crew work area on the starboard half, full height: only the port side stays open.
CREW = Box(np.array([4.0, -1.05, -1.0]), np.array([5.0, 0.40, 1.0]), "crew_work_area")
# A full-width wall of equipment: nothing gets past x 6.0 .. 6.4.
NOMINAL = get_flight_mode()
IDENTITY = np.array([0.0, 0.0, 0.0, 1.0])
WALL = Box(np.array([6.0, -1.05, -1.0]), np.array([6.4, 1.05, 1.0]), "equipment_wall")


def _assert_path_free(pmap: PlanningMap, path: Path, start, goal) -> None:
    assert np.array_equal(path.points[0], start)
    assert np.array_equal(path.points[-1], goal)
    for a, b in zip(path.points[:-1], path.points[1:], strict=True):
        assert pmap.segment_free(a, b), (a, b)


def _assert_point_clear(pmap: PlanningMap, p: np.ndarray, tol: float = 1e-9) -> None:
    lo, hi = pmap.keep_in_limits
    assert np.all(p >= lo - tol) and np.all(p <= hi + tol), p
    for box in pmap.inflated():
        assert not box.contains(p), (box.name, p)


# ------------------------------------------------------------------------------- exact tests


def test_map_from_module_has_dock_and_bag_inflated_by_radius_plus_margin():
    assert KIBO.zone_names == ("dock", "stowage_bag")
    assert KIBO.clearance == pytest.approx(RADIUS + KIBO.margin)
    lo, hi = KIBO.keep_in_limits
    assert np.allclose(lo, MODULE.clear_min + KIBO.clearance)
    assert np.allclose(hi, MODULE.clear_max - KIBO.clearance)
    bag = dict(zip(KIBO.zone_names, KIBO.inflated(), strict=True))["stowage_bag"]
    assert np.allclose(bag.min, np.array([8.4, 0.45, -1.0]) - KIBO.clearance)


def test_segment_free_matches_dense_sampling():
    rng = np.random.default_rng(3)
    pmap = KIBO.with_keep_out(CREW)
    lo, hi = pmap.keep_in_limits
    boxes = pmap.inflated()
    s = np.linspace(0.0, 1.0, 2001)[:, None]
    agree = 0
    for _ in range(300):
        a, b = rng.uniform(lo, hi), rng.uniform(lo, hi)
        pts = a + s * (b - a)
        sampled_hit = any(np.any(np.all((pts >= z.min) & (pts <= z.max), axis=1)) for z in boxes)
        if pmap.segment_free(a, b):
            assert not sampled_hit, (a, b)  # exact test free => no sample inside
        agree += pmap.segment_free(a, b) == (not sampled_hit)
    assert agree >= 295  # the rest graze a box between two samples


def test_segment_axis_parallel_and_degenerate():
    pmap = KIBO.with_keep_out(CREW)
    assert not pmap.segment_free([3.0, 0.0, 0.0], [6.0, 0.0, 0.0])  # through the zone along x
    assert pmap.segment_free([3.0, 0.7, 0.0], [6.0, 0.7, 0.0])  # beside it, parallel
    assert not pmap.segment_free([4.5, 0.0, 0.0], [4.5, 0.0, 0.0])  # a point inside
    assert pmap.segment_free([1.0, 0.0, 0.0], [1.0, 0.0, 0.0])
    assert not pmap.point_free([4.5, 0.5, 0.0])  # within the clearance of the zone
    assert pmap.point_free([4.5, 0.60, 0.0])


def test_run_time_zones_make_new_maps():
    pmap = KIBO.with_keep_out(CREW)
    assert KIBO.zone_names == ("dock", "stowage_bag")  # unchanged
    assert pmap.zone_names == ("dock", "stowage_bag", "crew_work_area")
    assert pmap.without_keep_out("crew_work_area").zone_names == KIBO.zone_names
    with pytest.raises(KeyError, match="no keep-out zone named 'nope'"):
        pmap.without_keep_out("nope")
    with pytest.raises(ValueError, match="duplicate keep-out names"):
        pmap.with_keep_out(CREW)
    with pytest.raises(ValueError, match="needs a name"):
        KIBO.with_keep_out(Box(np.zeros(3), np.ones(3)))


# ------------------------------------------------------------------------------------ paths


def test_straight_line_when_free():
    start, goal = np.array([0.3, 0.0, 0.0]), np.array([9.3, 0.0, 0.0])
    path = plan_path(start, goal, KIBO)
    assert not path.searched
    assert path.points.shape == (2, 3)
    assert path.length == pytest.approx(9.0)


def test_dock_approach_point_is_plannable_around_the_dock():
    approach = MODULE.dock.approach_point(MODULE.dock.approach_distances[0])
    assert np.allclose(approach, [1.1, 0.0, 0.43])
    start = np.array([1.7, 0.0, 0.8])  # overhead beside the dock: the dock is in the way
    assert not KIBO.segment_free(start, approach)
    path = plan_path(start, approach, KIBO)
    assert path.searched
    _assert_path_free(KIBO, path, start, approach)
    path_back = plan_path(approach, np.array([9.0, 0.0, 0.0]), KIBO)
    _assert_path_free(KIBO, path_back, approach, np.array([9.0, 0.0, 0.0]))


def test_path_around_a_crew_zone_across_the_module():
    pmap = KIBO.with_keep_out(CREW)
    start, goal = np.array([0.3, 0.0, 0.0]), np.array([9.3, -0.5, 0.2])
    path = plan_path(start, goal, pmap, reserve=0.0)
    assert path.searched
    _assert_path_free(pmap, path, start, goal)
    # it passes the zone on the port side, and is close to the shortest way around it: over
    # the inflated edges at y = 0.55, x = 3.85 and 5.15, 9.1753 m (numerical optimum)
    at_zone = path.points[(path.points[:, 0] > 3.85) & (path.points[:, 0] < 5.15)]
    assert len(at_zone) and np.all(at_zone[:, 1] > 0.55)
    assert 9.1753 - 1e-3 < path.length < 9.1753 * 1.005


def test_searched_paths_keep_the_reserve_where_there_is_room():
    pmap = KIBO.with_keep_out(CREW)
    start, goal = np.array([0.3, 0.0, 0.0]), np.array([9.3, -0.5, 0.2])
    path = plan_path(start, goal, pmap, reserve=0.05)
    roomy = PlanningMap.from_module(MODULE, RADIUS, margin=KIBO.margin + 0.05).with_keep_out(CREW)
    _assert_path_free(roomy, path, start, goal)
    assert path.length < plan_path(start, goal, pmap, reserve=0.0).length + 0.05
    # gaps that only fit without the reserve: 0.62 m and 0.42 m between the zone and the port
    # wall, i.e. 0.32 m and 0.12 m of free centre space (the grid needs > 1 cell, 0.10 m)
    for y_max in (0.43, 0.63):
        tight = KIBO.with_keep_out(Box(np.array([4.0, -1.05, -1.0]), np.array([5.0, y_max, 1.0]), "crew"))
        path = plan_path(start, goal, tight, reserve=0.05)
        _assert_path_free(tight, path, start, goal)
        assert np.any(path.points[:, 1] > y_max + KIBO.clearance)


def test_sampled_trajectory_stays_in_keep_in_and_out_of_keep_outs():
    pmap = KIBO.with_keep_out(CREW).with_keep_out(
        Box(np.array([6.5, -0.2, 0.0]), np.array([7.2, 1.05, 1.0]), "overhead_stowage")
    )
    start, goal = np.array([0.3, 0.0, 0.0]), np.array([9.3, -0.6, 0.5])
    path = plan_path(start, goal, pmap)
    _assert_path_free(pmap, path, start, goal)
    for blend in ({}, {"pmap": pmap, "corner_tolerance": 0.05}):
        traj = path_trajectory(
            path, quat_from_rpy(0, 0, 0), quat_from_rpy(0, 0, np.pi), get_flight_mode(), **blend
        )
        for t in np.arange(traj.t_start, traj.t_end + 0.05, 0.05):
            _assert_point_clear(pmap, traj.sample(t).position)


def test_no_path_when_a_zone_closes_the_cross_section():
    pmap = KIBO.with_keep_out(WALL)
    with pytest.raises(PlanningFailed, match="equipment_wall grown by 0.15 m closes the whole cross-section"):
        plan_path(np.array([0.3, 0.0, 0.0]), np.array([9.3, 0.0, 0.0]), pmap)
    try:
        plan_path(np.array([0.3, 0.0, 0.0]), np.array([9.3, 0.0, 0.0]), pmap)
    except PlanningFailed as exc:
        assert exc.kind == "no_path"
        assert isinstance(exc, GoalRejected)
    # two zones that only together close the module: a generic, still clear reason
    half_a = Box(np.array([6.0, -1.05, -1.0]), np.array([6.4, 0.1, 1.0]), "half_a")
    half_b = Box(np.array([6.2, 0.0, -1.0]), np.array([6.6, 1.05, 1.0]), "half_b")
    pmap = KIBO.with_keep_out(half_a).with_keep_out(half_b)
    with pytest.raises(PlanningFailed, match="free space between them is not connected"):
        plan_path(np.array([0.3, 0.0, 0.0]), np.array([9.3, 0.0, 0.0]), pmap)
    # same side of the wall: fine
    path = plan_path(np.array([0.3, 0.0, 0.0]), np.array([5.0, 0.5, -0.5]), KIBO.with_keep_out(WALL))
    assert not path.searched


def test_replan_after_adding_a_zone_changes_the_path():
    start, goal = np.array([0.5, 0.0, 0.0]), np.array([9.0, 0.0, 0.0])
    before = plan_path(start, goal, KIBO)
    assert not before.searched
    pmap = KIBO.with_keep_out(CREW)
    assert not pmap.path_free(before.points)  # the old path must be re-planned
    after = plan_path(start, goal, pmap)
    assert after.searched and len(after.points) > 2
    _assert_path_free(pmap, after, start, goal)
    assert KIBO.path_free(after.points)  # still fine without the zone, just longer
    assert np.array_equal(plan_path(start, goal, pmap.without_keep_out(CREW.name)).points, before.points)


@pytest.mark.parametrize(
    ("start", "goal", "kind", "reason"),
    [
        ([np.nan, 0, 0], [5, 0, 0], "input", r"start position \[nan, 0.0, 0.0\] is not 3 finite numbers"),
        ([1, 0, 0], [5, 0], "input", "goal position .* is not 3 finite numbers"),
        (
            [1, 0, 0.95],
            [5, 0, 0],
            "start",
            r"start \(1.00, 0.00, 0.95\) m is outside the keep-in box: z=0.950 m is 0.100 m beyond "
            r"the limit 0.850 m \(clear volume 1.00 m minus robot radius 0.10 m \+ margin 0.05 m\)",
        ),
        ([1, 0, 0], [9.59, 0, 0], "goal", "goal .* x=9.590 m is 0.140 m beyond the limit 9.450 m"),
        ([1, 0, 0], [-0.2, 0, 0], "goal", "x=-0.200 m is 0.350 m below the limit 0.150 m"),
        (
            [1, 0, 0],
            [8.8, 0.7, -0.8],
            "goal",
            r"goal \(8.80, 0.70, -0.80\) m is inside keep-out zone stowage_bag .*: 0.400 m from its -y "
            r"face \(the nearest inside the keep-in\)",
        ),
        (
            [1, 0, 0],
            [8.8, 0.35, -0.8],
            "goal",
            r"is within 0.15 m \(robot radius 0.10 m \+ margin 0.05 m\) of keep-out zone stowage_bag",
        ),
        ([1.1, 0, 0.7], [5, 0, 0], "start", "start .* keep-out zone dock"),
        ([1, 0, 0], [6.2, 0, 0], "goal", "equipment_wall .*: 0.350 m from its -x face"),
    ],
)
def test_invalid_inputs_rejected_with_reasons(start, goal, kind, reason):
    with pytest.raises(PlanningFailed, match=reason) as info:
        plan_path(start, goal, KIBO.with_keep_out(WALL))
    assert info.value.kind == kind


def test_goal_in_a_zone_that_fills_the_module():
    everything = Box(MODULE.clear_min, MODULE.clear_max, "everything")
    with pytest.raises(PlanningFailed, match="everything .*, which \\(grown\\) fills the keep-in box"):
        plan_path([1, 0, 0], [5, 0, 0], KIBO.with_keep_out(everything))


def test_deterministic_and_seed_independent():
    start, goal = np.array([0.3, -0.6, -0.6]), np.array([9.3, -0.5, 0.6])
    a = plan_path(start, goal, KIBO.with_keep_out(CREW), seed=0)
    b = plan_path(start, goal, PlanningMap.from_module(MODULE, RADIUS).with_keep_out(CREW), seed=0)
    c = plan_path(start, goal, KIBO.with_keep_out(CREW), seed=7)
    assert np.array_equal(a.points, b.points) and np.array_equal(a.points, c.points)


def test_paths_around_default_obstacles_near_the_walls():
    # from the far deck/port corner region beside the stowage bag to under the dock
    start, goal = np.array([9.4, 0.85, -0.3]), np.array([7.5, 0.85, -0.8])
    path = plan_path(start, goal, KIBO)
    _assert_path_free(KIBO, path, start, goal)


zone_strategy = st.tuples(
    st.floats(0.8, 8.5),  # x of the lower corner
    st.floats(-1.05, 0.9),
    st.floats(-1.0, 0.9),
    st.floats(0.1, 1.2),  # size x
    st.floats(0.1, 1.6),
    st.floats(0.1, 1.6),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    zones=st.lists(zone_strategy, min_size=1, max_size=3),
    ends=st.tuples(*[st.floats(0.0, 1.0)] * 6),
)
def test_property_returned_paths_are_collision_free(zones, ends):
    pmap = KIBO
    for k, (x, y, z, sx, sy, sz) in enumerate(zones):
        lo = np.array([x, y, z])
        pmap = pmap.with_keep_out(Box(lo, np.minimum(lo + [sx, sy, sz], MODULE.clear_max), f"zone_{k}"))
    lo, hi = pmap.keep_in_limits
    u = np.array(ends)
    start = lo + u[:3] * (hi - lo) * np.array([0.1, 1, 1])  # entrance end
    goal = hi - u[3:] * (hi - lo) * np.array([0.1, 1, 1])  # far end
    try:
        path = plan_path(start, goal, pmap)
    except PlanningFailed as exc:
        assert exc.kind in ("start", "goal", "no_path")
        if exc.kind in ("start", "goal"):
            assert not pmap.point_free(start if exc.kind == "start" else goal)
        return
    _assert_path_free(pmap, path, start, goal)
    assert path.length >= np.linalg.norm(goal - start) - 1e-9
    traj = path_trajectory(path, IDENTITY, IDENTITY, NOMINAL, pmap=pmap, corner_tolerance=0.05)
    for t in np.arange(traj.t_start, traj.t_end, 0.25):
        _assert_point_clear(pmap, traj.sample(t).position)


# ------------------------------------------------------------------- time parameterization


def _sample(traj, dt=0.02):
    ts = np.arange(traj.t_start - 1.0, traj.t_end + 1.0, dt)
    sp = [traj.sample(t) for t in ts]
    return {
        k: np.array([getattr(x, k) for x in sp])
        for k in ("position", "velocity", "acceleration", "quat", "omega", "alpha")
    }


def _assert_limits(s, mode, dt=0.02):
    tol = 1e-9
    assert np.linalg.norm(s["velocity"], axis=1).max() <= mode.v_max + tol
    assert np.linalg.norm(s["acceleration"], axis=1).max() <= mode.a_max + tol
    assert np.linalg.norm(s["omega"], axis=1).max() <= mode.w_max + tol
    assert np.linalg.norm(s["alpha"], axis=1).max() <= mode.alpha_max + tol
    # consistent and continuous: finite differences match the velocity, which changes
    # no faster than a_max allows
    fd = np.diff(s["position"], axis=0) / dt
    assert np.abs(fd - 0.5 * (s["velocity"][1:] + s["velocity"][:-1])).max() < mode.a_max * dt
    assert np.linalg.norm(np.diff(s["velocity"], axis=0), axis=1).max() <= mode.a_max * dt + tol


def _distance_to_polyline(p: np.ndarray, pts: np.ndarray) -> float:
    a, b = pts[:-1], pts[1:]
    d = b - a
    u = np.clip(np.einsum("ij,ij->i", p - a, d) / np.einsum("ij,ij->i", d, d), 0.0, 1.0)
    return float(np.linalg.norm(a + u[:, None] * d - p, axis=1).min())


@pytest.mark.parametrize("mode_name", ["nominal", "precision", "quiet"])
@pytest.mark.parametrize("blend", [False, True])
def test_trajectory_limits_never_exceeded(mode_name, blend):
    mode = get_flight_mode(mode_name)
    pmap = KIBO.with_keep_out(CREW)
    path = plan_path(np.array([0.3, 0.0, 0.0]), np.array([9.3, -0.5, 0.2]), pmap)
    q0, q1 = quat_from_rpy(0.0, 0.0, 0.0), quat_from_rpy(0.3, -0.5, 2.5)
    extra = {"pmap": pmap, "corner_tolerance": 0.05} if blend else {}
    traj = path_trajectory(path, q0, q1, mode, t_start=10.0, **extra)
    assert traj.t_start == 10.0
    s = _sample(traj)
    _assert_limits(s, mode)
    assert np.allclose(s["position"][0], path.points[0]) and np.allclose(s["position"][-1], path.points[-1])
    assert abs(abs(s["quat"][-1] @ q1) - 1.0) < 1e-12
    for p in s["position"]:
        _assert_point_clear(pmap, p)
        assert _distance_to_polyline(p, path.points) <= (0.05 if blend else 1e-9)


def test_blending_is_faster_and_stays_clear_around_zones():
    mode = get_flight_mode()
    pmap = KIBO.with_keep_out(CREW).with_keep_out(
        Box(np.array([6.5, -0.2, 0.0]), np.array([7.2, 1.05, 1.0]), "overhead_stowage")
    )
    path = plan_path(np.array([0.3, -0.6, -0.5]), np.array([9.3, -0.6, 0.5]), pmap)
    assert len(path.points) >= 4
    q = quat_from_rpy(0, 0, 0)
    stop_go = path_trajectory(path, q, q, mode)
    blended = path_trajectory(path, q, q, mode, pmap=pmap, corner_tolerance=0.05)
    assert np.all(stop_go.overlap == 0.0) and np.any(blended.overlap > 0.0)
    assert blended.duration < stop_go.duration - 5.0
    s = _sample(blended)
    _assert_limits(s, mode)
    for p in s["position"]:
        _assert_point_clear(pmap, p)


def test_collinear_corners_blend_without_leaving_the_line():
    mode = get_flight_mode()
    pts = np.array([[0.5, 0.0, 0.0], [2.0, 0.0, 0.0], [5.0, 0.0, 0.0], [5.5, 0.0, 0.0]])
    q = quat_from_rpy(0, 0, 0)
    traj = path_trajectory(pts, q, q, mode, pmap=KIBO, corner_tolerance=0.01)
    assert np.all(traj.overlap > 0.0)
    s = _sample(traj)
    _assert_limits(s, mode)
    assert np.abs(s["position"][:, 1:]).max() < 1e-12
    assert traj.duration < path_trajectory(pts, q, q, mode).duration


def test_sharp_corners_are_flown_stop_and_go():
    mode = get_flight_mode()
    pts = np.array([[1.0, 0.0, 0.0], [3.0, 0.0, 0.0], [3.0, 0.5, 0.0]])  # 90 deg turn
    q = quat_from_rpy(0, 0, 0)
    traj = path_trajectory(pts, q, q, mode, pmap=KIBO, corner_tolerance=0.5)
    assert np.all(traj.overlap == 0.0)
    assert np.allclose(traj.sample(traj.starts[1]).velocity, 0.0)


def test_trajectory_on_a_straight_path_matches_plan_segment():
    from intball_nav.frames import Pose
    from intball_nav.guidance import plan_segment

    mode = get_flight_mode()
    q0, q1 = quat_from_rpy(0, 0, 0), quat_from_rpy(0, 0, 1.0)
    path = plan_path(np.array([1.0, 0.0, 0.0]), np.array([4.0, 0.5, 0.0]), KIBO)
    traj = path_trajectory(path, q0, q1, mode, 2.0)
    ref = plan_segment(Pose(path.points[0], q0), Pose(path.points[1], q1), mode, 2.0)
    assert traj.t_end == pytest.approx(ref.t_end)
    for t in np.linspace(1.0, ref.t_end + 1.0, 50):
        a, b = traj.sample(t), ref.sample(t)
        assert np.allclose(a.position, b.position) and np.allclose(a.velocity, b.velocity)
        assert np.allclose(a.quat, b.quat) and np.allclose(a.omega, b.omega)


def test_trajectory_pure_rotation_and_single_point():
    mode = get_flight_mode()
    q1 = quat_from_rpy(0, 0, np.pi / 2)
    traj = path_trajectory(np.array([[2.0, 0.0, 0.0]]), quat_from_rpy(0, 0, 0), q1, mode)
    assert traj.t_end > 0.0
    assert np.allclose(traj.sample(traj.t_end).quat, q1)
    assert np.allclose(traj.sample(0.5 * traj.t_end).position, [2.0, 0.0, 0.0])
    s = _sample(traj)
    _assert_limits(s, mode)
