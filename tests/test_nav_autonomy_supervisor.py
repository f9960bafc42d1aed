"""The supervisor (modes + faults + battery + docking + GNC) in closed loop with the analytic
model (``intball_nav.dynamics``, no PyBullet): requests, validation, fault responses."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from intball_nav.autonomy.battery import BatteryState
from intball_nav.autonomy.faults import CollisionReport
from intball_nav.autonomy.modes import Action, Event, Mode
from intball_nav.autonomy.params import load_autonomy_params
from intball_nav.autonomy.supervisor import AutonomyState, Context, Request, TickInputs, handle_request, tick
from intball_nav.dynamics import FanState, RigidBodyState, step
from intball_nav.estimation.health import HealthLevel
from intball_nav.flight_modes import load_flight_modes
from intball_nav.gnc import GncParams
from intball_nav.module import load_module
from intball_nav.safety import Box, keep_in_from_module

MODULE = load_module()
GNC = GncParams.default()
CTX = Context(
    load_autonomy_params(module=MODULE),
    GNC,
    load_flight_modes(),
    keep_in_from_module(MODULE),
    tuple(Box(b.min, b.max, b.name) for b in MODULE.keep_out),
)
FRESH = {"odometry": 0.0, "fan_command": 0.0, "imu": 0.0}
DT = 0.02


class Loop:
    """Supervisor + analytic dynamics, truth as the estimate (these tests check logic)."""

    def __init__(self, position=(3.0, 0.0, 0.0), battery=1.0):
        self.truth = RigidBodyState(position=np.array(position, dtype=float))
        self.fans = FanState()
        self.state = AutonomyState(battery=BatteryState(battery))
        self.t = 0.0
        self.cmd = np.zeros(8)
        self.transitions = []
        self.out = None

    def request(self, event, **kw):
        self.state, tr = handle_request(self.state, Request(event, **kw), self.truth, self.t, CTX)
        return tr

    def run(self, seconds, ages=FRESH, until=None, **kw):
        for _ in range(round(seconds / DT)):
            inputs = TickInputs(self.t, DT, self.truth, self.cmd, ages, **kw)
            kw.pop("collisions", None)  # a collision is reported once
            self.state, self.out = tick(self.state, inputs, CTX)
            self.transitions += self.out.transitions
            self.cmd = self.out.fan_command
            self.truth, self.fans = step(self.truth, self.fans, self.cmd, GNC.robot, DT)
            self.t += DT
            if until is not None and until(self):
                break
        return self.out

    @property
    def mode(self):
        return self.state.mode.mode


def test_navigate_arrive_and_hold():
    loop = Loop()
    tr = loop.request(Event.NAVIGATE, position=[3.5, 0.2, 0.1], quat=[0, 0, 0, 1])
    assert tr.accepted and loop.mode == Mode.NAVIGATING
    loop.run(60.0, until=lambda lp: lp.mode != Mode.NAVIGATING)
    assert loop.mode == Mode.STATION_KEEPING and "arrived" in loop.state.mode.reason
    assert np.linalg.norm(loop.truth.position - [3.5, 0.2, 0.1]) < 0.03


@pytest.mark.parametrize(
    ("kw", "why"),
    [
        ({"frame_id": "map", "position": [3, 0, 0], "quat": [0, 0, 0, 1]}, "unknown frame 'map'"),
        ({"position": [3, float("nan"), 0], "quat": [0, 0, 0, 1]}, "not 3 finite numbers"),
        ({"position": [3, 0, 0], "quat": [0, 0, 0, 0]}, "zero norm"),
        ({"position": [9.7, 0, 0], "quat": [0, 0, 0, 1]}, "beyond the keep-in limit"),
        ({"position": [8.8, 0.8, -0.8], "quat": [0, 0, 0, 1]}, "keep-out zone stowage_bag"),
        (
            {"position": [3, 0, 0], "quat": [0, 0, 0, 1], "flight_mode": "turbo"},
            "unknown flight mode 'turbo'",
        ),
    ],
)
def test_invalid_commands_are_rejected_with_the_reason(kw, why):
    loop = Loop()
    tr = loop.request(Event.NAVIGATE, **kw)
    assert not tr.accepted and why in tr.reason and loop.mode == Mode.IDLE


def test_relative_goal_in_base_link():
    loop = Loop()
    tr = loop.request(Event.NAVIGATE, frame_id="base_link", position=[0.3, 0, 0], quat=[0, 0, 0, 1])
    assert tr.accepted
    assert np.allclose(loop.state.gnc.goal.position, [3.3, 0.0, 0.0])


def test_stop_while_navigating_comes_to_rest_and_holds():
    loop = Loop()
    loop.request(Event.NAVIGATE, position=[6.0, 0, 0], quat=[0, 0, 0, 1])
    loop.run(10.0)
    tr = loop.request(Event.STOP)
    assert tr.accepted and tr.action == Action.HOLD_HERE and loop.mode == Mode.STATION_KEEPING
    loop.run(20.0)
    assert np.linalg.norm(loop.truth.velocity) < 0.005
    held = loop.truth.position.copy()
    loop.run(5.0)
    assert np.linalg.norm(loop.truth.position - held) < 0.01


def test_watchdog_puts_propulsion_in_the_safe_state():
    loop = Loop()
    loop.request(Event.NAVIGATE, position=[4.0, 0, 0], quat=[0, 0, 0, 1])
    loop.run(2.0)
    out = loop.run(DT, ages=dict(FRESH, odometry=0.9))
    assert loop.mode == Mode.EMERGENCY_STOP and np.all(out.fan_command == 0.0)
    assert any(f.code == "watchdog.odometry" for f in out.faults)
    tr = loop.request(Event.RESET)
    assert not tr.accepted and "watchdog fault active" in tr.reason  # still stale at the last tick
    loop.run(DT)
    assert loop.request(Event.RESET).accepted and loop.mode == Mode.IDLE


def test_localization_lost_stops_and_holds_then_recovers():
    loop = Loop()
    loop.request(Event.NAVIGATE, position=[5.0, 0, 0], quat=[0, 0, 0, 1])
    loop.run(5.0)
    loop.run(DT, localization=HealthLevel.LOST, localization_reason="no visual update for 3.1 s")
    assert loop.mode == Mode.FAULTED
    assert not loop.request(Event.NAVIGATE, position=[3, 0, 0], quat=[0, 0, 0, 1]).accepted
    loop.run(15.0, localization=HealthLevel.LOST)
    assert np.linalg.norm(loop.truth.velocity) < 0.01  # stopped
    loop.run(DT)  # localization back
    assert loop.mode == Mode.STATION_KEEPING and "faults cleared" in loop.state.mode.reason


def test_collision_stops_and_reports():
    loop = Loop()
    loop.request(Event.NAVIGATE, position=[5.0, 0, 0], quat=[0, 0, 0, 1])
    loop.run(3.0)
    out = loop.run(DT, collisions=(CollisionReport(loop.t, "port_3"),))
    assert loop.mode == Mode.FAULTED
    assert any("collision with port_3" in f.text for f in out.faults)
    loop.run(3.5)
    assert loop.mode == Mode.STATION_KEEPING  # the collision fault expired after its latch


def test_emergency_stop_then_station_keep_rearms():
    loop = Loop()
    loop.request(Event.NAVIGATE, position=[4.0, 0, 0], quat=[0, 0, 0, 1])
    loop.run(2.0)
    assert loop.request(Event.EMERGENCY_STOP).accepted
    out = loop.run(1.0)
    assert np.all(out.fan_command == 0.0) and loop.mode == Mode.EMERGENCY_STOP
    assert loop.request(Event.STATION_KEEP).accepted and loop.mode == Mode.STATION_KEEPING
    out = loop.run(DT)
    assert np.any(out.fan_command > 0.0)


def test_battery_low_goes_home_and_critical_refuses_motion():
    loop = Loop(position=(1.6, 0.0, 0.2), battery=0.1201)
    loop.run(2.0, until=lambda lp: lp.mode == Mode.DOCKING)
    assert loop.mode == Mode.DOCKING and "battery low" in loop.state.mode.reason
    low = Loop(battery=0.04)
    tr = low.request(Event.NAVIGATE, position=[3.5, 0, 0], quat=[0, 0, 0, 1])
    assert not tr.accepted and "new motion refused" in tr.reason


def test_dock_hold_charge_and_undock_in_the_analytic_model():
    """Ideal contact: the model has no dock collider, so contact comes from the gap + stall rule
    (the commanded point is 5 mm through the face; the stall is emulated by the caller)."""
    loop = Loop(position=(2.0, 0.3, -0.2))
    assert loop.request(Event.DOCK).accepted

    def touching(lp):
        return lp.state.docking is not None and lp.state.docking.phase == "final"

    loop.run(200.0, until=touching)
    assert touching(loop)
    # emulate the dock face: stop the robot where it touches, contact sensor on
    for _ in range(2000):
        gap = (loop.truth.position - MODULE.dock.pose.position) @ MODULE.dock.normal - 0.10
        contact = gap <= 0.0
        if contact:
            loop.truth = replace(loop.truth, velocity=np.zeros(3))
        loop.run(DT, dock_contact=bool(contact))
        if loop.mode == Mode.DOCKED:
            break
    assert loop.mode == Mode.DOCKED and loop.out.latched and np.all(loop.out.fan_command == 0.0)
    level = loop.state.battery.level
    loop.truth = replace(loop.truth, velocity=np.zeros(3))
    for _ in range(50):
        loop.state, out = tick(loop.state, TickInputs(loop.t, DT, loop.truth, np.zeros(8), FRESH), CTX)
        loop.t += DT
    assert loop.state.battery.level > level  # charging
    assert not loop.request(Event.NAVIGATE, position=[3, 0, 0], quat=[0, 0, 0, 1]).accepted
    assert loop.request(Event.UNDOCK).accepted and loop.mode == Mode.UNDOCKING
    loop.run(60.0, until=lambda lp: lp.mode != Mode.UNDOCKING)
    assert loop.mode == Mode.STATION_KEEPING and "undocked" in loop.state.mode.reason
    assert np.linalg.norm(loop.truth.position - MODULE.dock.approach_point(0.30)) < 0.01
