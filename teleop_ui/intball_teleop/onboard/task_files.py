"""The images a completed camera task wrote, sent down the link as files (``files.py``):
snapshot and inspect send their snapshot, survey its tiled overview; each JPEG-capped and
encoded off the event loop, then queued on the paced :class:`~intball_teleop.files.FileSender`."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from ..files import IMAGE_SUFFIXES, FileSender, jpeg_capped

log = logging.getLogger(__name__)

MAX_IMAGES = 2  # per task


class TaskFileDownlink:
    def __init__(self, files: FileSender, max_bytes: int) -> None:
        self.files, self.max_bytes = files, max_bytes
        self.jobs: set[asyncio.Task] = set()  # encodings in flight

    def downlink(
        self, loop: asyncio.AbstractEventLoop | None, command_id: str | None, paths: list[str], reason: str
    ) -> str:
        """Start sending the images among ``paths``; returns the task's ack reason with what is
        downlinked (unchanged when nothing is, or without a running loop)."""
        images = [p for p in paths if p.lower().endswith(IMAGE_SUFFIXES)]
        tiled = [p for p in images if p.endswith("_tiled.png")]
        images = (tiled or images)[:MAX_IMAGES]
        if not images or loop is None:
            return reason
        job = loop.create_task(self._encode(command_id, images))
        self.jobs.add(job)
        job.add_done_callback(self.jobs.discard)
        what = f"downlinking {len(images)} image(s)"
        return f"{reason}; {what}" if reason else what

    async def _encode(self, command_id: str | None, paths: list[str]) -> None:
        for path in paths:
            try:
                data = await asyncio.to_thread(jpeg_capped, path, self.max_bytes)
            except (OSError, ValueError) as exc:
                log.warning("onboard bridge: %s not downlinked: %s", path, exc)
                continue
            self.files.add(Path(path).stem + ".jpg", data, command_id)
