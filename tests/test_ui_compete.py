"""The console's Competition panel in headless Chromium (Playwright, sync API): with the competition
API mounted (``INTBALL_COMPETE_DATA`` set to a temporary directory), log in, upload a behavior that
finishes at once (1 seed), watch it reach ``scored`` with a total and per-term scores, read its log,
replay its trajectory in the 3D view and clear it, see its leaderboard row; upload a malformed
behavior and see the rejection reason.

Uses the system Chromium (/usr/bin/chromium); Playwright never downloads a browser. The screenshot
for docs/ui.md goes to docs/img/console-compete.png (INTBALL_UI_SCREENSHOTS=0 skips it).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ui_helpers import ARGS, CHROMIUM, IMG, SHOTS, ServerThread, require_browser, tid

from intball_compete.missions import DEFAULT_MISSION, MISSIONS
from intball_teleop import commands as C
from intball_teleop.kinematic import KinematicRobot
from intball_teleop.server.app import load_compete_app
from intball_teleop.server.auth import Credentials, User
from intball_teleop.server.stack import Stack, StackConfig

pytestmark = [pytest.mark.browser, pytest.mark.slow]
pytest.importorskip("intball_compete.web")

TOKEN = "compete-observer-token-0123456789"
QUICK = (
    'print("hello from the quick behavior")\n\n\ndef run(api):\n    api.start_mission()\n    api.finish()\n'
)
BROKEN = "def run(api)\n    api.finish()\n"

require_browser()


class CompeteServer(ServerThread):
    """Ground station (kinematic stand-in robot) with the competition API, on its own loop."""

    start_timeout_s = stop_timeout_s = 30.0

    def __init__(self, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__()
        monkeypatch.setenv("INTBALL_COMPETE_DATA", str(data_dir))

    async def _start(self) -> None:
        ws = C.Workspace.default()
        stack = Stack(KinematicRobot(ws), StackConfig(profile="ideal"), ws)
        stack.start()
        creds = Credentials({"watcher": User("watcher", "observer", token=TOKEN)})
        compete = load_compete_app()  # reads INTBALL_COMPETE_DATA, as the real server does
        assert compete is not None
        await self._serve(stack, creds, compete=compete)


def test_upload_scored_leaderboard_and_rejection(tmp_path, monkeypatch):
    from playwright.sync_api import sync_playwright

    quick, broken = tmp_path / "quick_behavior.py", tmp_path / "broken_behavior.py"
    quick.write_text(QUICK)
    broken.write_text(BROKEN)
    with CompeteServer(tmp_path / "compete", monkeypatch) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        context = browser.new_context(viewport={"width": 1500, "height": 1000}, bypass_csp=True)
        try:
            page = context.new_page()
            page.goto(server.url)
            assert "hidden" in page.get_attribute(tid("compete-panel"), "class")
            page.fill(tid("login-token"), TOKEN)
            page.click(tid("login-submit"))
            page.wait_for_selector(f"{tid('login-panel')}.hidden", state="attached")
            page.wait_for_selector(tid("compete-panel"), state="visible")
            assert page.input_value(tid("compete-mission")) == DEFAULT_MISSION  # what /missions marks default

            # a malformed upload: the API's reason is shown, nothing is queued
            page.set_input_files(tid("compete-file"), str(broken))
            page.fill(tid("compete-name"), "broken")
            page.click(tid("compete-upload"))
            status = page.locator(f'{tid("compete-upload-status")}[data-ok="no"]')
            status.wait_for()
            assert "upload rejected" in status.inner_text()
            assert "syntax error" in status.inner_text()

            # a behavior that finishes at once, one seed: queued -> running -> scored
            page.set_input_files(tid("compete-file"), str(quick))
            page.fill(tid("compete-name"), "quick finisher")
            page.fill(tid("compete-seeds"), "1")
            page.click(tid("compete-upload"))
            page.wait_for_selector(f'{tid("compete-upload-status")}[data-ok="yes"]')
            assert "submission 1 queued" in page.inner_text(tid("compete-upload-status"))
            row = page.locator(f'{tid("compete-submission-row")}[data-submission-id="1"]')
            row.wait_for()
            sel = f'{tid("compete-submission-row")}[data-submission-id="1"]'
            page.wait_for_selector(f'{sel}[data-state="scored"], {sel}[data-state="failed"]', timeout=60000)
            assert row.get_attribute("data-state") == "scored", page.inner_text(tid("compete-panel"))
            total = row.locator(tid("compete-submission-total")).inner_text()
            assert float(total) >= 0.0
            assert row.locator(tid("compete-submission-terms")).inner_text() != "-"
            assert page.locator(tid("compete-submission-row")).count() == 1  # the rejected one is not stored

            run = page.locator(f'{tid("compete-run-row")}[data-seed="0"]')
            run.wait_for()
            assert run.get_attribute("data-status") == "ok"
            run.locator(tid("compete-run-log")).click()
            page.wait_for_function(
                f"document.querySelector('{tid('compete-log')}').textContent"
                ".includes('hello from the quick behavior')"
            )

            # replay: the true and estimated paths and a moving marker in the 3D view, with a label
            info = page.locator(tid("compete-replay-info"))
            assert not info.is_visible()
            run.locator(tid("compete-run-replay")).click()
            info.wait_for(state="visible")
            assert "seed 0" in info.inner_text()
            assert "quick finisher" in info.inner_text()
            assert int(info.get_attribute("data-points")) > 1
            assert page.evaluate("window.__intballReplay.points") == int(info.get_attribute("data-points"))
            page.click(tid("compete-replay-clear"))
            info.wait_for(state="hidden")
            assert page.evaluate("window.__intballReplay") is None

            board = page.locator(f'{tid("compete-leaderboard-row")}[data-submission-id="1"]')
            board.wait_for()
            assert board.get_attribute("data-rank") == "1"
            assert board.get_attribute("data-scoring") == MISSIONS[DEFAULT_MISSION].scoring
            assert "quick finisher" in board.inner_text()

            if SHOTS:  # the rejection reason beside the scored submission
                page.set_input_files(tid("compete-file"), str(broken))
                page.fill(tid("compete-name"), "broken")
                page.click(tid("compete-upload"))
                page.locator(f'{tid("compete-upload-status")}[data-ok="no"]').wait_for()
                page.locator(tid("compete-panel")).screenshot(path=str(IMG / "console-compete.png"))
        finally:
            context.close()
            browser.close()
