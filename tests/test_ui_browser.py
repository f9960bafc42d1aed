"""The console in headless Chromium (Playwright, sync API): log in, fly to an entered goal and
watch the acks reach completed, a LOS drill makes the robot hold, emergency stop, an observer
cannot command; a keep-out zone added and removed from the panel, a route sent as one command,
paused and resumed, a snapshot's file downlinked and listed for download. The server runs in
a thread on 127.0.0.1 (free port) with the kinematic stand-in robot behind the emulated link
(the ROS path is tests/test_ui_ros.py).

Uses the system Chromium (/usr/bin/chromium, `make install` installs it); Playwright never
downloads a browser. Screenshots for docs/ui.md go to docs/img/ (INTBALL_UI_SCREENSHOTS=0 skips).
"""

from __future__ import annotations

import time

import pytest
from ui_helpers import ARGS, CHROMIUM, IMG, SHOTS, ServerThread, require_browser, tid

from intball_teleop import commands as C
from intball_teleop.kinematic import KinematicRobot
from intball_teleop.onboard import OnboardConfig
from intball_teleop.server.auth import Credentials, User
from intball_teleop.server.stack import Stack, StackConfig, supervisor_config

pytestmark = [pytest.mark.browser, pytest.mark.slow]

OP_TOKEN = "browser-operator-token-0123456789"
OBS_TOKEN = "browser-observer-token-0123456789"
SPEED = {  # kinematic robot speed factor (x 0.25 m/s nominal)
    "test_login_enter_goal_acks_progress_to_completed": 4.0,
    "test_los_drill_robot_holds_and_alert_must_be_acknowledged": 3.0,
    "test_observer_cannot_command_but_can_emergency_stop": 1.0,
    "test_route_pause_resume_keep_out_zone_and_snapshot_file": 2.0,
}

require_browser()


class BrowserServer(ServerThread):
    """The ground station (link + onboard bridge + kinematic robot + web app) on its own loop."""

    def __init__(self, station_keep_after_s: float = 2.0, speed: float = 2.0) -> None:
        super().__init__()
        self.station_keep_after_s, self.speed = station_keep_after_s, speed

    async def _start(self) -> None:
        ws = C.Workspace.default()
        self.robot = KinematicRobot(ws, speed_scale=self.speed)
        onboard = OnboardConfig(
            telemetry_rate_hz=5.0, supervisor=supervisor_config(self.station_keep_after_s, 900.0)
        )
        overrides = {"uplink.delay_s": 0.2, "downlink.delay_s": 0.2}
        self.stack = Stack(
            self.robot, StackConfig(profile="ideal", profile_overrides=overrides, onboard=onboard), ws
        )
        self.stack.start()
        creds = Credentials(
            {
                "flight": User("flight", "operator", token=OP_TOKEN),
                "watcher": User("watcher", "observer", token=OBS_TOKEN),
            }
        )
        await self._serve(self.stack, creds)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def server(request):
    """The stand-in robot's speed factor per test (fast where only the result matters)."""
    with BrowserServer(speed=SPEED.get(request.node.name, 2.0)) as s:
        s.contexts = []
        yield s
        for context in s.contexts:  # close the pages' WebSockets before the server stops
            context.close()


def open_console(browser, server):
    """A new browser context on the console's log-in page (closed by the server fixture)."""
    context = browser.new_context(
        viewport={"width": 1500, "height": 1000}, bypass_csp=True
    )  # wait_for_function evaluates strings
    server.contexts.append(context)
    page = context.new_page()
    page.goto(server.url)
    return page


def login(browser, server, token):
    page = open_console(browser, server)
    page.fill(tid("login-token"), token)
    page.click(tid("login-submit"))
    page.wait_for_selector(f"{tid('login-panel')}.hidden", state="attached")
    page.wait_for_function("document.body.dataset.ws === 'open'")
    return page


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_login_enter_goal_acks_progress_to_completed(browser, server):
    page = open_console(browser, server)
    page.fill(tid("login-token"), "not-a-token")
    page.click(tid("login-submit"))
    page.wait_for_function(
        f"document.querySelector('{tid('login-error')}').textContent.includes('invalid token')"
    )
    if SHOTS:
        page.fill(tid("login-token"), "")
        page.screenshot(path=str(IMG / "console-login.png"))
    page.close()

    page = login(browser, server, OP_TOKEN)
    assert page.inner_text(tid("session-role")) == "operator"
    assert page.is_disabled(tid("goal-send"))  # no control yet
    page.click(tid("control-take"))
    page.wait_for_function(f"!document.querySelector('{tid('goal-send')}').disabled")
    assert page.inner_text(tid("control-holder")) == "flight"

    # a goal outside the module: the ghost turns red, nothing is sent
    page.fill(tid("goal-x"), "12.0")
    assert page.get_attribute(tid("goal-status"), "data-valid") == "no"
    assert "keep-in" in page.inner_text(tid("goal-status"))
    page.click(tid("goal-send"))
    page.wait_for_selector(f"{tid('ui-error')}.show")
    assert page.locator(tid("command-row")).count() == 0

    page.fill(tid("goal-x"), "3.20")
    page.fill(tid("goal-y"), "0.40")
    page.fill(tid("goal-z"), "-0.10")
    assert page.get_attribute(tid("goal-status"), "data-valid") == "yes"
    page.click(tid("goal-send"))
    row = page.locator(f'{tid("command-row")}[data-kind="goal"]')
    row.wait_for()
    seen = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = row.get_attribute("data-state")
        seen.add(state)
        if state in ("completed", "failed", "rejected", "expired"):
            break
        time.sleep(0.05)
    assert state == "completed", row.inner_text()
    assert {"received", "executing"} & seen or "executing" in row.inner_text()
    text = row.inner_text()
    for s in ("queued", "sent", "received", "executing", "completed"):
        assert s in text, text  # the history column shows every state with its time
    page.wait_for_function(
        f"Math.abs(+document.querySelector('{tid('tm-position')}').dataset.x - 3.2) < 0.01"
    )
    assert server.robot.position.tolist() == pytest.approx([3.2, 0.4, -0.1], abs=1e-6)
    if SHOTS:
        page.fill(tid("goal-x"), "6.0")
        page.fill(tid("goal-y"), "-0.3")
        page.click(tid("route-add-goal"))
        page.fill(tid("goal-x"), "8.8")
        page.fill(tid("goal-y"), "0.8")
        page.fill(tid("goal-z"), "-0.8")  # in the stowage-bag keep-out zone: the ghost is red
        page.wait_for_timeout(2500)  # a camera frame and some plot history
        page.screenshot(path=str(IMG / "console.png"), full_page=True)


def test_los_drill_robot_holds_and_alert_must_be_acknowledged(browser, server):
    page = login(browser, server, OP_TOKEN)
    page.click(tid("control-take"))
    page.wait_for_function(f"!document.querySelector('{tid('goal-send')}').disabled")
    page.fill(tid("goal-x"), "8.0")
    page.fill(tid("goal-y"), "0.0")
    page.fill(tid("goal-z"), "0.0")
    page.click(tid("goal-send"))
    page.wait_for_selector(f'{tid("command-row")}[data-kind="goal"][data-state="executing"]', timeout=15000)
    page.fill(tid("los-drill-duration"), "7")
    page.click(tid("los-drill"))
    page.wait_for_selector(f'{tid("link-aos")}[data-value="los"]', timeout=5000)
    wait_until(
        lambda: server.stack.onboard.supervisor.action.value == "station_keep", 5, "onboard station keep"
    )
    x = server.robot.position[0]
    time.sleep(1.0)
    assert server.robot.position[0] == x, "the robot kept flying during LOS"
    assert x < 7.9
    if SHOTS:
        page.screenshot(path=str(IMG / "console-los.png"), full_page=True)
    # after AOS: telemetry resumes, the console shows the hold and the no-telemetry alert
    page.wait_for_selector(f'{tid("link-aos")}[data-value="aos"]', timeout=10000)
    page.wait_for_selector(f'{tid("tm-supervisor")}[data-value="station_keep"]', timeout=5000)
    alert = page.locator(f'{tid("alert-row")}[data-kind="no_telemetry"]')
    alert.wait_for(timeout=5000)
    assert alert.get_attribute("data-acked") == "no"
    alert.locator(tid("alert-ack")).click()
    page.wait_for_selector(f'{tid("alert-row")}[data-kind="no_telemetry"][data-acked="yes"]')
    # contact is fresh again: the supervisor releases and the goal completes
    page.wait_for_selector(f'{tid("command-row")}[data-kind="goal"][data-state="completed"]', timeout=30000)


def test_observer_cannot_command_but_can_emergency_stop(browser, server):
    op = login(browser, server, OP_TOKEN)
    op.click(tid("control-take"))
    op.wait_for_function(f"!document.querySelector('{tid('goal-send')}').disabled")
    op.fill(tid("goal-x"), "7.5")
    op.click(tid("goal-send"))
    wait_until(lambda: server.robot.state == "moving", 10, "robot moving")

    obs = login(browser, server, OBS_TOKEN)
    assert obs.inner_text(tid("session-role")) == "observer"
    assert obs.inner_text(tid("control-holder")) == "flight"
    for control in (
        "control-take",
        "goal-send",
        "action-dock",
        "action-stop",
        "route-send",
        "route-pause",
        "route-resume",
        "keepout-add",
        "los-drill",
        "jog-xp",
    ):
        assert obs.is_disabled(tid(control)), control
    status = obs.evaluate(
        """async () => (await fetch('/api/commands', {method: 'POST',
             headers: {'Content-Type': 'application/json'},
             body: JSON.stringify({kind: 'goal', payload: {position: [2, 0, 0]}})})).status"""
    )
    assert status == 403
    # the observer sees the operator's command and can still stop the robot
    obs.locator(f'{tid("command-row")}[data-kind="goal"]').wait_for()
    assert obs.is_visible(tid("estop")) and obs.is_enabled(tid("estop"))
    obs.click(tid("estop"))
    obs.wait_for_selector(
        f'{tid("command-row")}[data-kind="emergency_stop"][data-state="completed"]', timeout=10000
    )
    op.wait_for_selector(f'{tid("command-row")}[data-kind="goal"][data-state="failed"]', timeout=10000)
    assert "emergency stop" in op.locator(f'{tid("command-row")}[data-kind="goal"]').inner_text()
    assert server.robot.stopped and server.stack.onboard.estop
    x = server.robot.position.copy()
    time.sleep(0.5)
    assert (server.robot.position == x).all()
    op.wait_for_selector(f'{tid("alert-row")}[data-kind="emergency_stop"]', timeout=5000)


def test_route_pause_resume_keep_out_zone_and_snapshot_file(browser, server):
    page = login(browser, server, OP_TOKEN)
    page.click(tid("control-take"))
    page.wait_for_function(f"!document.querySelector('{tid('keepout-add')}').disabled")
    # the module's zones are listed (fixed: no remove button) and drawn
    page.wait_for_selector(f'{tid("keepout-row")}[data-name="stowage_bag"][data-fixed="yes"]')
    assert page.locator(f'{tid("keepout-row")}[data-name="stowage_bag"] {tid("keepout-remove")}').count() == 0
    # add a zone from the console: executed onboard, back in the telemetry, listed, drawn, used by the ghost
    page.fill(tid("keepout-name"), "cargo_1")
    page.fill(tid("keepout-min"), "5.0,-0.4,-0.4")
    page.fill(tid("keepout-max"), "5.6, 0.4, 0.4")
    page.click(tid("keepout-add"))
    page.wait_for_selector(
        f'{tid("command-row")}[data-kind="keep_out_add"][data-state="completed"]', timeout=10000
    )
    page.wait_for_selector(f'{tid("keepout-row")}[data-name="cargo_1"][data-fixed="no"]', timeout=5000)
    assert "cargo_1" in page.evaluate("window.__intballZones")
    page.fill(tid("goal-x"), "5.3")
    page.fill(tid("goal-y"), "0.0")
    page.fill(tid("goal-z"), "0.0")
    assert page.get_attribute(tid("goal-status"), "data-valid") == "no"
    assert "cargo_1" in page.inner_text(tid("goal-status"))
    # a bad zone: the server's reason in the toast, nothing sent
    page.fill(tid("keepout-name"), "bad")
    page.fill(tid("keepout-max"), "4.0,0.4,0.4")
    page.click(tid("keepout-add"))
    page.wait_for_function(
        f"document.querySelector('{tid('ui-error')}').textContent.includes('must be below max x')"
    )
    # a route of 3 waypoints with holds, sent as one command
    page.fill(tid("route-hold"), "1.5")
    for x, y in ((2.6, 0.3), (3.6, -0.3), (4.4, 0.2)):
        page.fill(tid("goal-x"), str(x))
        page.fill(tid("goal-y"), str(y))
        page.click(tid("route-add-goal"))
    assert page.locator(tid("route-item")).count() == 3
    page.select_option(tid("route-mode"), "nominal")
    page.click(tid("route-send"))
    row = page.locator(f'{tid("command-row")}[data-kind="route"]')
    row.wait_for()
    progress = tid("route-progress")
    page.wait_for_selector(f'{progress}[data-state="flying"][data-n="3"]', timeout=10000)
    page.wait_for_selector(f'{progress}[data-index="1"]', timeout=15000)
    page.click(tid("route-pause"))
    page.wait_for_selector(f'{progress}[data-paused="yes"]', timeout=5000)
    assert "PAUSED" in page.inner_text(progress)
    x = server.robot.position.copy()
    time.sleep(1.0)
    assert (server.robot.position == x).all(), "the robot moved while the route was paused"
    assert row.get_attribute("data-state") == "executing"
    if SHOTS:
        page.screenshot(path=str(IMG / "console-route.png"), full_page=True)
    page.click(tid("route-resume"))
    page.wait_for_selector(f'{progress}[data-paused="no"][data-state="flying"]', timeout=5000)
    page.wait_for_selector(f'{tid("command-row")}[data-kind="route"][data-state="completed"]', timeout=30000)
    assert "route complete: 3 waypoints" in row.inner_text()
    page.wait_for_selector(f'{progress}[data-state="none"]', timeout=5000)
    assert page.locator(f'{tid("command-row")}[data-kind="goal"]').count() == 0  # one command, no goals
    kinds = [k for _, k in server.stack.onboard.executed]
    assert kinds.count("route") == 1 and kinds.count("route_pause") == 1 and kinds.count("route_resume") == 1
    assert server.robot.position.tolist() == pytest.approx([4.4, 0.2, 0.0], abs=1e-6)
    # remove the zone from the console: the ghost there is green again
    page.locator(f'{tid("keepout-row")}[data-name="cargo_1"] {tid("keepout-remove")}').click()
    page.wait_for_selector(f'{tid("keepout-row")}[data-name="cargo_1"]', state="detached", timeout=10000)
    assert "cargo_1" not in page.evaluate("window.__intballZones")
    page.fill(tid("goal-x"), "5.3")
    page.fill(tid("goal-y"), "0.0")
    assert page.get_attribute(tid("goal-status"), "data-valid") == "yes"
    # a snapshot camera task: its image comes down the link and is listed for download
    page.select_option(tid("camera-task-select"), "snapshot")
    page.click(tid("camera-task-run"))
    page.wait_for_selector(
        f'{tid("command-row")}[data-kind="camera_task"][data-state="completed"]', timeout=10000
    )
    page.wait_for_selector(f'{tid("file-row")}[data-state="complete"] {tid("file-download")}', timeout=20000)
    link = page.locator(tid("file-download")).first
    assert link.inner_text().startswith("snapshot_") and link.inner_text().endswith(".jpg")
    href = link.get_attribute("href")
    size = page.evaluate(f"async () => (await (await fetch('{href}')).arrayBuffer()).byteLength")
    fid = page.locator(tid("file-row")).first.get_attribute("data-file-id")
    assert size == len(server.stack.ground.files.files[fid].data) > 0
