"""Shared pieces of the console's browser tests: the system Chromium and its flags, the
screenshot switch, data-testid selectors, and a ground-station server on its own event loop
in a thread (127.0.0.1, free port)."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from intball_teleop.server.app import STATIC_DIR, create_app

CHROMIUM = "/usr/bin/chromium"  # Debian's package (`make install`); Playwright never downloads one
ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-gpu",
    "--enable-unsafe-swiftshader",  # software WebGL for the 3D view (no GPU)
]
IMG = Path(__file__).resolve().parents[1] / "docs" / "img"
SHOTS = os.environ.get("INTBALL_UI_SCREENSHOTS", "1") != "0"


def require_browser() -> None:
    """Skip the calling module without Chromium or the built console; in CI, fail instead (the
    Makefile installs both, so a skip there would hide a broken install)."""
    missing = [
        what
        for what, ok in (
            (CHROMIUM, Path(CHROMIUM).exists()),
            ("console bundle (make web)", (STATIC_DIR / "console.js").exists()),
        )
        if not ok
    ]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"missing: {', '.join(missing)}", pytrace=False)
        pytest.skip(f"missing: {', '.join(missing)}", allow_module_level=True)


def tid(name: str) -> str:
    return f'[data-testid="{name}"]'


class ServerThread:
    """A ground station on its own event loop in a daemon thread. Subclasses build the stack and
    credentials in ``_start`` and call ``await self._serve(stack, creds, **app_kwargs)``."""

    start_timeout_s = 20.0
    stop_timeout_s = 10.0

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self._start())
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self._stop())
        self.loop.close()

    async def _start(self) -> None:
        raise NotImplementedError

    async def _serve(self, stack, creds, **app_kwargs) -> None:  # noqa: ANN001
        from aiohttp import web

        self.stack = stack
        self.runner = web.AppRunner(create_app(stack, creds, **app_kwargs), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/"

    async def _stop(self) -> None:
        await self.runner.cleanup()
        await self.stack.close()

    def __enter__(self):  # noqa: ANN204
        self.thread.start()
        assert self.ready.wait(self.start_timeout_s), "server did not start"
        return self

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(self.stop_timeout_s)
