"""Record: video to disk for a duration, and a rate limiter for frames sent to the ground.

``VideoRecorder`` writes MJPG in an AVI container through ``cv2.VideoWriter`` when the
OpenCV build can (the headless wheel here can: FFmpeg backend); otherwise, or with
``prefer="frames"``, a folder of JPEG frames. Either way it writes ``index.csv`` (frame number,
capture time in s, file) next to the video, because an AVI plays at a constant ``fps`` while
capture times jitter. ``RateLimiter`` decides which frames go to the ground: at most
``max_hz`` on average and never more than ``ceil(T * max_hz) + 1`` frames in any window of
length T s (an anchored schedule: frame k is sent at the first capture at or after
``t0 + k / max_hz``; the schedule restarts after a gap).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


class RateLimiter:
    """Pass frames at no more than ``max_hz`` (see module docstring). Times are in seconds."""

    def __init__(self, max_hz: float) -> None:
        if not (max_hz > 0.0 and math.isfinite(max_hz)):
            raise ValueError(f"max_hz must be a positive number, got {max_hz}")
        self.period = 1.0 / max_hz
        self._next: float | None = None

    def allow(self, stamp: float) -> bool:
        """True if the frame captured at ``stamp`` should be sent (stamps non-decreasing)."""
        if self._next is None or stamp >= self._next + self.period:  # first frame or after a gap
            self._next = stamp + self.period
            return True
        if stamp >= self._next:
            self._next += self.period
            return True
        return False


def encode_preview(rgb: np.ndarray, max_width: int = 320, quality: int = 70) -> bytes:
    """JPEG bytes of an RGB image shrunk to at most ``max_width`` px wide (for the ground)."""
    h, w = rgb.shape[:2]
    if w > max_width:
        rgb = cv2.resize(rgb, (max_width, round(h * max_width / w)), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    )
    if not ok:
        raise OSError("JPEG encoding failed")
    return buf.tobytes()


@dataclass(frozen=True)
class RecordingInfo:
    """Result of a recording. kind : ``"avi"`` or ``"frames"``; path : the .avi or the frame
    folder; index : index.csv; frames : count; duration : s from first to last capture."""

    kind: str
    path: Path
    index: Path
    frames: int
    duration: float


class VideoRecorder:
    """Record RGB frames into ``directory`` (created): ``video.avi`` or ``frames/000000.jpg``...

    fps : nominal frame rate of the AVI (s^-1); size : (W, H) px, every frame must match
    duration : s, the recorder reports ``done`` once a frame is ``duration`` past the first
    prefer : ``"avi"`` (fall back to frames if the writer cannot open) or ``"frames"``
    """

    def __init__(
        self,
        directory: str | Path,
        fps: float,
        size: tuple[int, int],
        *,
        duration: float | None = None,
        prefer: str = "avi",
        jpeg_quality: int = 90,
    ) -> None:
        if prefer not in ("avi", "frames"):
            raise ValueError(f"prefer {prefer!r} not allowed; allowed: avi, frames")
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.size = (int(size[0]), int(size[1]))
        self.duration = duration
        self.quality = int(jpeg_quality)
        self._writer = None
        self.kind = "frames"
        if prefer == "avi":
            w = cv2.VideoWriter(
                str(self.dir / "video.avi"), cv2.VideoWriter.fourcc(*"MJPG"), float(fps), self.size
            )
            if w.isOpened():
                self._writer, self.kind = w, "avi"
            else:
                w.release()
                (self.dir / "video.avi").unlink(missing_ok=True)
        if self.kind == "frames":
            (self.dir / "frames").mkdir(exist_ok=True)
        self._index = (self.dir / "index.csv").open("w")
        self._index.write("frame,stamp,file\n")
        self.frames = 0
        self._t0: float | None = None
        self._t_last = 0.0
        self._closed = False

    @property
    def path(self) -> Path:
        return self.dir / ("video.avi" if self.kind == "avi" else "frames")

    def done(self, stamp: float) -> bool:
        """True once ``stamp`` is at least ``duration`` past the first frame."""
        return self.duration is not None and self._t0 is not None and stamp - self._t0 >= self.duration

    def write(self, rgb: np.ndarray, stamp: float) -> bool:
        """Add a frame captured at ``stamp`` (s); False (and nothing written) once ``done``."""
        if self._closed:
            raise RuntimeError("recorder is closed")
        if rgb.shape[:2] != (self.size[1], self.size[0]):
            raise ValueError(
                f"frame is {rgb.shape[1]}x{rgb.shape[0]}, recorder expects {self.size[0]}x{self.size[1]}"
            )
        if self.done(stamp):
            return False
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        if self._writer is not None:
            self._writer.write(bgr)
            name = "video.avi"
        else:
            name = f"frames/{self.frames:06d}.jpg"
            cv2.imwrite(str(self.dir / name), bgr, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        self._index.write(f"{self.frames},{stamp:.6f},{name}\n")
        if self._t0 is None:
            self._t0 = stamp
        self._t_last = stamp
        self.frames += 1
        return True

    def close(self) -> RecordingInfo:
        """Finish the files; returns what was written."""
        if not self._closed:
            if self._writer is not None:
                self._writer.release()
            self._index.close()
            self._closed = True
        duration = 0.0 if self._t0 is None else self._t_last - self._t0
        return RecordingInfo(self.kind, self.path, self.dir / "index.csv", self.frames, duration)

    def __enter__(self) -> VideoRecorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
