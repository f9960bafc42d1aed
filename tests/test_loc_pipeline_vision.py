"""VisualLocalizer on rendered frames, the loss-of-localization response, and vision in the
headless mission loop (issue #3): ATE on ground truth, waypoints reached, lost -> safe -> recover."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from intball_nav.dynamics import RigidBodyState
from intball_nav.estimation.health import HealthLevel, HealthStatus
from intball_nav.estimation.visual_localizer import (
    GuardParams,
    GuardState,
    VisualLocalizer,
    brake_command,
    guard_fans,
    guard_step,
    guard_summary,
    loss_response_params,
)
from intball_nav.frames import Pose, quat_angle, quat_from_rpy, rotmat_from_quat
from intball_nav.robot import load_robot_params

OK = HealthStatus(HealthLevel.OK, "ok")
DEGRADED = HealthStatus(HealthLevel.DEGRADED, "no visual update for 0.60 s")
LOST = HealthStatus(HealthLevel.LOST, "no visual update for 3.00 s")
MOVING = RigidBodyState(velocity=np.array([0.1, 0.0, 0.0]), omega=np.array([0.0, 0.0, 0.2]))
AT_REST = RigidBodyState()

SHORT_MISSION = """\
version: 1
name: vision-short
flight_mode: nominal
start: {position: [1.10, 0.00, 0.43], rpy_deg: [0, 90, 0]}
waypoints:
  - {position: [1.60, 0.00, 0.20], rpy_deg: [0, 0, 0], hold_s: 1}
  - {position: [2.60, 0.30, 0.00], rpy_deg: [0, 0, 30], hold_s: 1}
"""


# ----------------------------------------------------------------------------- loss response (pure)
def test_guard_sequence_initialising_lost_braking_safe_recovering_nominal():
    p = GuardParams(brake_max_s=2.0, recover_hold_s=1.0)
    g = GuardState()
    g = guard_step(g, 0.0, None, HealthStatus(), p)
    assert g.mode == "initialising" and g.paused and not g.gnc_active
    g = guard_step(g, 0.5, AT_REST, OK, p)
    assert g.mode == "nominal" and not g.paused
    g = guard_step(g, 1.0, MOVING, DEGRADED, p)
    assert g.mode == "nominal"  # degraded keeps flying
    g = guard_step(g, 3.0, MOVING, LOST, p)
    assert g.mode == "braking" and g.paused
    g = guard_step(g, 4.0, MOVING, LOST, p)
    assert g.mode == "braking"
    g = guard_step(g, 5.0, MOVING, LOST, p)  # brake_max_s elapsed while still moving
    assert g.mode == "safe" and "braked for 2 s" in g.events[-1].reason
    g = guard_step(g, 9.0, AT_REST, DEGRADED, p)
    assert g.mode == "safe"  # only 'ok' recovers
    g = guard_step(g, 10.0, AT_REST, OK, p)
    assert g.mode == "recovering" and g.gnc_active and g.paused
    g = guard_step(g, 10.5, AT_REST, OK, p)
    assert g.mode == "recovering"
    g = guard_step(g, 11.0, AT_REST, OK, p)
    assert g.mode == "nominal"
    s = guard_summary(g)
    assert s["initialised_s"] == 0.5
    assert s["losses"] == [{"lost_s": 3.0, "recovered_s": 10.0, "duration_s": 7.0}]
    assert [e["to"] for e in s["events"]] == ["nominal", "braking", "safe", "recovering", "nominal"]


def test_guard_braking_ends_early_at_rest_and_relapse_while_recovering():
    p = GuardParams()
    g = GuardState("nominal", 0.0)
    g = guard_step(g, 1.0, MOVING, LOST, p)
    g = guard_step(g, 1.2, AT_REST, LOST, p)
    assert g.mode == "safe" and "at rest" in g.events[-1].reason
    g = guard_step(g, 2.0, AT_REST, OK, p)
    g = guard_step(g, 2.5, AT_REST, LOST, p)
    assert g.mode == "braking"


def test_opt_in_search_turns_in_place_until_a_view_or_the_time_limit():
    robot = load_robot_params()
    p = GuardParams(search_rate=math.radians(10.0), search_max_s=20.0)
    g = guard_step(GuardState("nominal", 0.0), 1.0, MOVING, LOST, p)
    g = guard_step(g, 1.2, AT_REST, LOST, p)
    assert g.mode == "searching" and g.paused and not g.gnc_active
    assert "turning in place at 10 deg/s" in g.events[-1].reason
    # the command: yaw torque toward +10 deg/s about body z, no net force, fans within limits
    fans = guard_fans(g, AT_REST, robot, p)
    wrench = robot.allocation_matrix @ fans
    assert np.all((fans >= robot.fan_min - 1e-12) & (fans <= robot.fan_max + 1e-12))
    assert np.linalg.norm(wrench[:3]) < 1e-6 and wrench[5] > 0.0 and abs(wrench[3]) + abs(wrench[4]) < 1e-6
    spinning = RigidBodyState(
        quat=AT_REST.quat, velocity=np.zeros(3), omega=np.array([0.0, 0.0, 2.0 * p.search_rate])
    )
    assert (robot.allocation_matrix @ guard_fans(g, spinning, robot, p))[5] < 0.0  # too fast: slows
    assert guard_step(g, 15.0, AT_REST, LOST, p).mode == "searching"
    assert guard_step(g, 15.0, AT_REST, OK, p).mode == "recovering"
    timed_out = guard_step(g, 21.2, AT_REST, LOST, p)
    assert timed_out.mode == "safe" and "searched 20 s without a fix" in timed_out.events[-1].reason
    assert guard_step(GuardState("nominal", 0.0), 1.0, AT_REST, LOST, GuardParams()).mode == "braking"
    with pytest.raises(ValueError, match="search_rate"):
        GuardParams(search_rate=-0.1)


def test_safe_state_is_all_fans_zero_and_braking_opposes_the_motion():
    robot = load_robot_params()
    p = GuardParams()
    assert guard_fans(GuardState("nominal"), MOVING, robot, p) is None
    assert np.all(guard_fans(GuardState("safe"), MOVING, robot, p) == 0.0)
    assert np.all(guard_fans(GuardState("initialising"), None, robot, p) == 0.0)
    moving = RigidBodyState(
        quat=quat_from_rpy(0.3, -0.2, 1.0),
        velocity=np.array([0.05, -0.03, 0.02]),
        omega=np.array([0.1, 0, -0.1]),
    )
    thrust = guard_fans(GuardState("braking"), moving, robot, p)
    assert thrust is not None and np.all(thrust >= robot.fan_min) and np.all(thrust <= robot.fan_max)
    np.testing.assert_allclose(thrust, brake_command(moving, robot, p))
    wrench = np.asarray(robot.allocation_matrix) @ thrust
    force_kibo = rotmat_from_quat(moving.quat) @ wrench[:3]
    assert force_kibo @ moving.velocity < 0.0  # decelerates
    assert wrench[3:] @ (np.asarray(robot.inertia) @ moving.omega) < 0.0  # despins


# ----------------------------------------------------------------------------- rendered frames
@pytest.mark.slow
def test_pipeline_on_rendered_frames_with_markers_tracks_ground_truth():
    """Drift past the entrance-wall markers (zero fans, initial velocity and yaw rate): EGL frames
    at 10 Hz with 60 ms latency, noisy biased 100 Hz IMU; ATE far below 1 cm / 0.5 deg."""
    pytest.importorskip("pybullet")
    from intball_nav.module import load_module
    from intball_sim.backend import PyBulletBackend
    from intball_sim.vision_loop import VisionInLoop, VisionOptions

    robot, module = load_robot_params(), load_module()
    backend = PyBulletBackend(robot, module, seed=3, airflow=False, physics_hz=100.0, visuals=False)
    eye = VisionInLoop(module, robot, seed=3, options=VisionOptions(camera_hz=10.0, camera_noise_sigma=2.0))
    try:
        assert isinstance(eye.localizer, VisualLocalizer)
        backend.reset(
            RigidBodyState(
                np.array([1.6, 0.1, 0.2]),
                quat_from_rpy(0.0, 0.05, 0.0),
                np.array([0.08, -0.02, 0.01]),
                np.array([0.0, 0.01, 0.04]),
            )
        )
        zero = np.zeros(8)
        eye.wait_for_fix(backend, 0.02)
        t_fix = backend.sim_time
        assert t_fix < 0.5
        pos_err, att_err = [], []
        while backend.sim_time < t_fix + 8.0:
            eye.advance(backend, zero, 0.02)
            est, cov, health = eye.localizer.estimate(backend.sim_time)
            truth = backend.state()
            if backend.sim_time > t_fix + 1.0:
                pos_err.append(np.linalg.norm(est.position - truth.position))
                att_err.append(quat_angle(est.quat, truth.quat))
                assert health.level == HealthLevel.OK, health.reason
                assert cov.shape == (6, 6)
        stats = eye.localizer.stats()
    finally:
        eye.close()
        backend.close()
    ate_cm = 100 * math.sqrt(np.mean(np.square(pos_err)))
    ate_deg = math.degrees(math.sqrt(np.mean(np.square(att_err))))
    assert ate_cm < 0.5 and ate_deg < 0.25, (ate_cm, ate_deg)
    assert stats["outcomes"]["markers"].get("accepted", 0) >= 75
    assert stats["filter"]["rejected"] <= 2
    assert stats["frame_cost_ms"]["median"] < 15.0


@pytest.mark.slow
def test_pipeline_on_natural_features_alone_tracks_ground_truth():
    """Markers removed from the world: the filter starts from a feature-map relocalization and
    tracks on features (issue #3 target 3 cm / 1.5 deg). Needs the cached default feature map."""
    pytest.importorskip("pybullet")
    mapping = pytest.importorskip("intball_sim.mapping")
    if not mapping.default_map_path().exists():
        pytest.skip("no cached default feature map (intball map build)")
    from intball_nav.module import load_module
    from intball_sim.backend import PyBulletBackend
    from intball_sim.vision_loop import VisionInLoop, VisionOptions

    robot, module = load_robot_params(), load_module()
    backend = PyBulletBackend(robot, module, seed=5, airflow=False, physics_hz=100.0, visuals=False)
    options = VisionOptions(camera_hz=5.0, marker_ids=(), features=True)
    eye = VisionInLoop(module, robot, seed=5, options=options)
    try:
        backend.reset(
            RigidBodyState(
                np.array([2.0, 0.1, 0.1]),
                quat_from_rpy(0.0, 0.0, 0.1),
                np.array([0.05, -0.01, 0.01]),
                np.array([0.0, 0.0, 0.03]),
            )
        )
        eye.wait_for_fix(backend, 0.02)
        t_fix = backend.sim_time
        pos_err, att_err = [], []
        while backend.sim_time < t_fix + 6.0:
            eye.advance(backend, np.zeros(8), 0.02)
            est, _, _ = eye.localizer.estimate(backend.sim_time)
            truth = backend.state()
            pos_err.append(np.linalg.norm(est.position - truth.position))
            att_err.append(quat_angle(est.quat, truth.quat))
        stats = eye.localizer.stats()
        main_rendered = eye.n_aux_rendered
    finally:
        eye.close()
        backend.close()
    assert t_fix < 1.0
    # the main camera is rendered only while the nav camera gives no pose (before its first fix)
    assert main_rendered <= 3 + round(5.0 * t_fix), (main_rendered, t_fix, stats["outcomes"])
    assert stats["outcomes"]["features"].get("accepted", 0) >= 25
    assert "markers" not in stats["outcomes"] or not stats["outcomes"]["markers"].get("accepted")
    assert 100 * math.sqrt(np.mean(np.square(pos_err))) < 3.0
    assert math.degrees(math.sqrt(np.mean(np.square(att_err)))) < 1.5


def _fly_facing_a_rack(main_camera: bool, renderer: str) -> dict:
    """Markers removed; the robot at rest with its rear nav cameras 0.1 m from the port rack (they
    see a blurred patch: no pose) and its front main camera looking across the module. 3 s of
    sim time after the first fix (or the init timeout); per-tick errors on ground truth."""
    from intball_nav.module import load_module
    from intball_sim.backend import PyBulletBackend
    from intball_sim.vision_loop import VisionInLoop, VisionOptions

    robot, module = load_robot_params(), load_module()
    backend = PyBulletBackend(robot, module, seed=7, airflow=False, physics_hz=100.0, visuals=False)
    options = VisionOptions(
        marker_ids=(), features=True, main_camera=main_camera, renderer=renderer, max_init_s=3.0
    )
    eye = VisionInLoop(module, robot, seed=7, options=options)
    out: dict = {"fix": None, "errors": [], "estimates": []}
    try:
        backend.reset(RigidBodyState(np.array([3.3, 0.85, 0.1]), quat_from_rpy(0.0, 0.0, -np.pi / 2)))
        try:
            eye.wait_for_fix(backend, 0.02)
        except RuntimeError:
            pass
        else:
            out["fix"] = backend.sim_time
            while backend.sim_time < out["fix"] + 3.0:
                eye.advance(backend, np.full(8, robot.fan_min), 0.02)
                est, _, _ = eye.localizer.estimate(backend.sim_time)
                truth = backend.state()
                out["estimates"].append(np.r_[est.position, est.quat])
                out["errors"].append(
                    (
                        np.linalg.norm(est.position - truth.position),
                        math.degrees(quat_angle(est.quat, truth.quat)),
                    )
                )
        out["stats"] = eye.localizer.stats()
        out["nav_rendered"], out["main_rendered"] = eye.n_rendered, eye.n_aux_rendered
    finally:
        eye.close()
        backend.close()
    return out


@pytest.mark.slow
def test_loop_uses_the_main_camera_while_the_nav_camera_faces_a_rack():
    """Vision in the headless loop with the main camera as the feature map's second view (rendered
    at 320x240, only while the nav camera gives no pose): it gives the first fix and keeps the
    estimate within the natural-feature target (3 cm / 1.5 deg) where the nav camera alone never
    initialises; with TinyRenderer (the competition's) the same seed repeats bit for bit."""
    pytest.importorskip("pybullet")
    mapping = pytest.importorskip("intball_sim.mapping")
    if not mapping.default_map_path().exists():
        pytest.skip("no cached default feature map (intball map build)")
    alone = _fly_facing_a_rack(main_camera=False, renderer="egl")
    assert alone["fix"] is None and alone["main_rendered"] == 0
    assert alone["stats"]["outcomes"]["features"].get("no_pose", 0) >= 10
    runs = [_fly_facing_a_rack(main_camera=True, renderer=r) for r in ("egl", "tiny", "tiny")]
    for run in runs:
        assert run["fix"] is not None and run["fix"] < 1.0
        outcomes = run["stats"]["outcomes"]
        assert outcomes["aux_features"].get("initialised", 0) == 1
        assert outcomes["aux_features"].get("accepted", 0) >= 12, outcomes
        assert "accepted" not in outcomes["features"] and run["stats"]["aux_frames"] >= 12
        assert run["main_rendered"] == run["nav_rendered"]  # the nav camera never gave a pose
        err = np.array(run["errors"])
        assert 100 * math.sqrt(np.mean(err[:, 0] ** 2)) < 3.0 and math.sqrt(np.mean(err[:, 1] ** 2)) < 1.5
    np.testing.assert_array_equal(np.array(runs[1]["estimates"]), np.array(runs[2]["estimates"]))


# ----------------------------------------------------------------------------- mission loop
@pytest.mark.slow
def test_headless_mission_with_vision_reaches_waypoints_and_survives_a_covered_lens(tmp_path):
    """The controller flies on the vision estimate only; waypoint errors on ground truth. The lens is
    covered for 8 s mid-flight: lost -> braking -> safe -> recovering -> nominal, mission completes."""
    pytest.importorskip("pybullet")
    from intball_sim.headless import run_mission
    from intball_sim.vision_loop import VisionOptions

    mission = tmp_path / "short.yaml"
    mission.write_text(SHORT_MISSION)
    s = run_mission(
        mission,
        tmp_path / "out",
        seed=1,
        localization="vision",
        vision=VisionOptions(lens_covered=((6.0, 14.0),)),
        plot=False,
    )
    assert s["all_reached"], s["waypoints"]
    for w in s["waypoints"]:  # ground truth, the nominal mode tolerances
        assert w["position_error_m"] < 0.03 and w["attitude_error_deg"] < 3.0, w
    assert s["collisions"] == 0
    loss = s["vision"]["loss_response"]
    modes = [e["to"] for e in loss["events"]]
    assert modes == ["nominal", "braking", "safe", "recovering", "nominal"], loss["events"]
    (lost,) = loss["losses"]
    assert 8.5 <= lost["lost_s"] <= 9.5  # 3 s without an update after the lens was covered at 6 s
    assert 14.0 <= lost["recovered_s"] <= 15.0  # first frames after 14 s
    assert "no visual update" in loss["events"][1]["reason"]
    assert s["real_time_factor_cpu"] > 2.0  # >= 3x measured in bench/bench_vision_loop.py


# ----------------------------------------------------------------------------- world subsets
def test_build_world_marker_subsets():
    """``marker_ids``: None = all markers, () = none, a subset = those; unknown ids are refused."""
    p = pytest.importorskip("pybullet")
    from intball_nav.module import load_marker_map, load_module
    from intball_sim.world import build_world

    module, markers = load_module(), load_marker_map()
    counts = {}
    for ids in (None, (), (1, 2, 99)):
        cid = p.connect(p.DIRECT)
        try:
            w = build_world(cid, module, markers, textures=False, marker_ids=ids)
            counts[ids] = sorted(w.markers)
            assert len(w.walls) > 20  # the walls do not depend on the markers
        finally:
            p.disconnect(cid)
    assert len(counts[None]) == len(markers.markers) and counts[()] == [] and counts[(1, 2, 99)] == [1, 2, 99]
    cid = p.connect(p.DIRECT)
    try:
        with pytest.raises(ValueError, match=r"marker_ids \[500\] are not in the marker map"):
            build_world(cid, module, markers, textures=False, marker_ids=(1, 500))
    finally:
        p.disconnect(cid)


# ----------------------------------------------------------------------------- source selection (stubs)
class _Source:
    """Stand-in for a localizer: returns a pose measurement with n markers (or None), records calls."""

    def __init__(self, n_markers: int | None, sigma: float = 0.002, ambiguous: bool = False) -> None:
        self.n, self.sigma, self.ambiguous = n_markers, sigma, ambiguous
        self.calls: list[tuple] = []
        self.covariances: list = []
        self.K = np.array([[160.0, 0, 159.5], [0, 160.0, 119.5], [0, 0, 1]])
        self.T_base_cam = Pose(np.array([-0.1, 0.0, 0.0]), np.array([0.0, 0.0, 0.0, 1.0]))

    def _meas(self, stamp: float):
        if self.n is None:
            return None
        cov = np.diag([self.sigma**2] * 3 + [(self.sigma / 2) ** 2] * 3)
        pose = Pose(np.array([2.0, 0.1, 0.2]), np.array([0.0, 0.0, 0.0, 1.0]))
        return SimpleNamespace(
            stamp=stamp, T_kibo_base=pose, covariance=cov, n_markers=self.n, ambiguous=self.ambiguous
        )

    def localize(self, gray, stamp, prior=None, prior_covariance=None):
        self.calls.append((stamp, prior))
        self.covariances.append(prior_covariance)
        return self._meas(stamp)


def _run(markers: _Source, features: _Source | None = None, frames: int = 3) -> tuple[VisualLocalizer, list]:
    loc = VisualLocalizer(None, markers, features)
    outcomes = []
    for k in range(1, 10 * frames + 1):
        loc.add_imu(0.01 * k, np.zeros(3), np.zeros(3))
        if k % 10 == 0:
            outcomes.append(loc.add_nav_frame(0.01 * (k - 3), np.zeros((240, 320), np.uint8)))
    return loc, outcomes


def test_markers_first_features_only_when_markers_are_too_few():
    features = _Source(0)
    loc, out = _run(_Source(3), features)
    assert [o[0].source for o in out] == ["markers"] * 3 and features.calls == []
    assert out[0][0].status == "initialised" and out[1][0].status == "accepted"
    features = _Source(0)
    loc, out = _run(_Source(None), features)
    assert [[o.source for o in f] for f in out] == [["markers", "features"]] * 3
    assert out[0][1].status == "initialised"  # a feature pose may initialise (n_markers = 0)
    assert features.calls[0][1] is None  # no prior before the first fix: relocalization
    prior = features.calls[1][1]
    assert prior is not None and np.allclose(prior.position, [2.0, 0.1, 0.2], atol=1e-6)
    # with the filter's pose covariance (an upper bound at the image stamp); none before the fix
    cov = features.covariances[1]
    assert features.covariances[0] is None and cov.shape == (6, 6)
    assert 0.0 < np.trace(cov[:3, :3]) < 1e-3  # a few cm at most, 0.1 s after the first fix
    assert loc.estimate(0.3)[0] is not None and loc.stats()["outcomes"]["features"]["accepted"] == 2


def test_single_marker_initialises_only_when_precise_and_unambiguous():
    _, out = _run(_Source(1, sigma=0.002))
    assert out[0][-1].source == "single_marker" and out[0][-1].status == "initialised"
    _, out = _run(_Source(1, sigma=0.03))  # 3 cm: not precise enough to start from
    assert {o[-1].status for o in out} == {"not_initialised"}
    _, out = _run(_Source(1, ambiguous=True))
    assert {o[-1].status for o in out} == {"not_initialised"}
    loc, out = _run(_Source(None))
    assert out[0][0].status == "no_pose" and loc.estimate(0.3)[0] is None
    assert loc.estimate(0.3)[2].level == HealthLevel.LOST


def test_aux_camera_is_used_only_while_the_nav_camera_gives_no_pose():
    """The auxiliary (main camera) localizer runs before the first fix and once the nav camera has
    given no pose for ``aux_after_s``; never while the nav camera works. Its pose initialises."""
    aux = _Source(0)
    aux.width, aux.height, aux.shapes = 320, 240, []
    localize = aux.localize
    aux.localize = lambda gray, stamp, prior=None, prior_covariance=None: (
        aux.shapes.append(gray.shape) or localize(gray, stamp, prior, prior_covariance)
    )
    nav_features = _Source(None)
    loc = VisualLocalizer(None, _Source(None), nav_features, aux_localizer=aux)
    assert loc.needs_aux_frame(0.0)
    for k in range(1, 11):
        loc.add_imu(0.01 * k, np.zeros(3), np.zeros(3))
    assert [o.source for o in loc.add_nav_frame(0.07, np.zeros((240, 320), np.uint8))] == [
        "markers",
        "features",
    ]
    out = loc.add_aux_frame(0.07, np.zeros((480, 640), np.uint8))  # resized to the aux model
    assert [(o.source, o.status) for o in out] == [("aux_features", "initialised")]
    assert aux.calls == [(0.07, None)]  # before the first fix: relocalization, no prior
    assert aux.shapes == [(240, 320)]  # the 640x480 frame resized to the auxiliary model
    assert len(loc.aux_costs) == 1 and len(loc.frame_costs) == 1

    # the nav camera works again: aux frames are skipped (not even localized)
    nav_features.n = 0
    for k in range(11, 21):
        loc.add_imu(0.01 * k, np.zeros(3), np.zeros(3))
    assert loc.add_nav_frame(0.17, np.zeros((240, 320), np.uint8))[-1].status == "accepted"
    assert not loc.needs_aux_frame(0.2) and loc.add_aux_frame(0.2, np.zeros((480, 640), np.uint8)) == []
    assert len(aux.calls) == 1
    assert not loc.needs_aux_frame(0.17 + loc.params.aux_after_s - 0.01)
    assert loc.needs_aux_frame(0.17 + loc.params.aux_after_s + 0.01)  # nav silent for too long
    no_aux = VisualLocalizer(None, _Source(None), nav_features)
    assert not no_aux.needs_aux_frame(0.0) and no_aux.add_aux_frame(0.0, np.zeros((240, 320), np.uint8)) == []


def test_loss_response_presets():
    assert loss_response_params("hold") == GuardParams()
    search = loss_response_params("search")
    assert search.search_rate == pytest.approx(math.radians(10.0)) and search.search_max_s == 40.0
    assert loss_response_params("search", math.radians(5.0), 10.0).search_max_s == 10.0
    with pytest.raises(ValueError, match="hold, search"):
        loss_response_params("spin")
