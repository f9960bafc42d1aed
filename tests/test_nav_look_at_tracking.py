"""Look-at held while moving: ``gnc.set_goal(..., look_at=LookAtTarget)`` recomputes the attitude
reference every control step so the main camera stays on a point while the robot translates, and
keeps it there while station keeping. Closed loop on the analytic model with the simulator's
disturbances (tests/test_nav_closed_loop.py's ``Sim``), nav noise and delay on.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_nav_closed_loop import CLEAR, MODES, PARAMS, make_sim

from intball_nav.camera_tasks import look_at, pointing_error
from intball_nav.frames import Pose
from intball_nav.gnc import LookAtTarget, gnc_step, hold_position, initial_state, set_goal

POINT = np.array([4.2, 1.0, 0.6])  # on the port rack face, overhead side
START = np.array([3.0, -0.2, -0.2])
GOAL = np.array([5.6, -0.4, 0.1])  # 2.6 m along the module, passing the point 1.3 m away


@pytest.fixture(scope="module")
def cam():
    from intball_sim.camera import load_cameras

    return load_cameras()["main"]


def fly(cam, tracking: bool, start_quat=None, seconds: float = 60.0, hold_s: float = 10.0):
    """(pointing errors while moving (N,) rad, while holding (M,) rad, final position error m)."""
    q0 = look_at(START, POINT, cam.T_base_cam).quat if start_quat is None else start_quat
    sim = make_sim(Pose(START, q0), seed=3, nav_error=True)
    target = LookAtTarget(POINT, cam.T_base_cam)
    q_goal = look_at(GOAL, POINT, cam.T_base_cam).quat
    gnc = set_goal(
        initial_state(), Pose(GOAL, q_goal), MODES["nominal"], sim.t, sim.estimate(), CLEAR,
        radius=PARAMS.robot.radius, look_at=target if tracking else None,
    )  # fmt: skip
    assert gnc.status == "moving", gnc.message
    moving, holding, arrived_t = [], [], None
    while sim.t < seconds:
        gnc, command, status = gnc_step(gnc, sim.estimate(), sim.t, PARAMS)
        err = pointing_error(Pose(sim.state.position, sim.state.quat), POINT, cam.T_base_cam)
        if arrived_t is None:
            moving.append(err)
            arrived_t = sim.t if status.arrived else None
        else:
            holding.append(err)
            if sim.t - arrived_t > hold_s:
                break
        sim.advance(command)
    assert arrived_t is not None, status
    return np.array(moving), np.array(holding), float(np.linalg.norm(sim.state.position - GOAL))


@pytest.mark.slow
def test_camera_stays_on_the_point_while_moving_and_holding(cam):
    moving, holding, pos_err = fly(cam, tracking=True)
    print(f"look-at tracking: pointing max {np.degrees(moving.max()):.2f} deg moving, "
          f"{np.degrees(holding.max()):.2f} deg holding, arrival {pos_err * 100:.1f} cm")  # fmt: skip
    assert np.degrees(moving.max()) < 3.0
    assert np.degrees(holding.max()) < 1.5
    assert pos_err < 0.03
    # without tracking the attitude is interpolated start -> goal: the camera leaves the point
    untracked, _, _ = fly(cam, tracking=False)
    print(f"interpolated attitude only: pointing max {np.degrees(untracked.max()):.1f} deg moving")
    assert np.degrees(untracked.max()) > 10.0


@pytest.mark.slow
def test_a_robot_not_yet_looking_turns_onto_the_point_without_a_step(cam):
    """Start facing +x: the start offset fades with the planned rotation, then tracking holds."""
    moving, holding, _ = fly(cam, tracking=True, start_quat=np.array([0.0, 0.0, 0.0, 1.0]))
    assert np.degrees(moving[0]) > 30.0  # not looking at the start
    n = len(moving)
    assert np.degrees(moving[n // 2 :].max()) < 3.0  # on the point over the second half
    assert np.degrees(holding.max()) < 1.5


def test_hold_position_and_a_plain_goal_drop_the_look_at(cam):
    sim = make_sim(Pose(START, np.array([0.0, 0.0, 0.0, 1.0])))
    target = LookAtTarget(POINT, cam.T_base_cam)
    g = set_goal(initial_state(), Pose(GOAL, np.array([0.0, 0.0, 0.0, 1.0])), MODES["nominal"], 0.0,
                 sim.estimate(), CLEAR, radius=PARAMS.robot.radius, look_at=target)  # fmt: skip
    assert g.look_at is target
    assert pointing_error(g.goal, POINT, cam.T_base_cam) < 1e-6  # the goal attitude is the look-at one
    assert hold_position(g, sim.estimate(), 1.0).look_at is None
    plain = set_goal(g, Pose(GOAL, np.array([0.0, 0.0, 0.0, 1.0])), MODES["nominal"], 1.0, sim.estimate(),
                     CLEAR, radius=PARAMS.robot.radius)  # fmt: skip
    assert plain.look_at is None
