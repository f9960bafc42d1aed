"""Camera frames down the link: the frame format (``CAMERA_MAGIC`` + 2-byte big-endian header
length + JSON header + JPEG bytes) and the onboard stream of the selected camera at its rate
(``camera_stream`` command), JPEG-encoded off the event loop."""

from __future__ import annotations

import asyncio
import json
import logging
import struct
from collections.abc import Callable

from .backend import RobotBackend

log = logging.getLogger(__name__)

CAMERA_MAGIC = b"JPG1"
_HLEN = struct.Struct(">H")


def encode_camera_frame(header: dict, jpeg: bytes) -> bytes:
    h = json.dumps(header, separators=(",", ":")).encode()
    return CAMERA_MAGIC + _HLEN.pack(len(h)) + h + jpeg


def decode_camera_frame(data: bytes) -> tuple[dict, bytes]:
    """(header, jpeg) of a camera frame; ValueError if it is not one."""
    if not data.startswith(CAMERA_MAGIC) or len(data) < 6:
        raise ValueError("not a camera frame")
    (n,) = _HLEN.unpack_from(data, 4)
    return json.loads(data[6 : 6 + n]), data[6 + n :]


class CameraStream:
    """Sends the newest frame of ``camera`` every 1 / ``rate_hz`` s (0: none), each frame once."""

    def __init__(
        self,
        backend: RobotBackend,
        send: Callable[[bytes], None],
        clock: Callable[[], float],
        camera: str,
        rate_hz: float,
    ) -> None:
        self.backend, self.send, self.clock = backend, send, clock
        self.camera, self.rate_hz = camera, rate_hz
        self._last_stamp: float | None = None

    def select(self, camera: str, rate_hz: float) -> None:
        self.camera, self.rate_hz = camera, rate_hz

    async def run(self) -> None:
        while True:
            rate = self.rate_hz
            await asyncio.sleep(1.0 / rate if rate > 0 else 0.5)
            if rate <= 0:
                continue
            try:
                # JPEG encoding off the event loop: commands and telemetry never wait behind it
                frame = await asyncio.to_thread(self.backend.camera_jpeg, self.camera)
                if frame is None or frame[1] == self._last_stamp:
                    continue
                jpeg, stamp = frame
                self._last_stamp = stamp
                header = {"camera": self.camera, "stamp": stamp, "at_ms": int(self.clock() * 1000)}
                self.send(encode_camera_frame(header, jpeg))
            except Exception:
                log.exception("onboard bridge: camera frame failed")
