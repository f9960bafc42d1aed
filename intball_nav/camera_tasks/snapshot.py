"""Snapshot: save an image as PNG with a JSON sidecar of its metadata, atomically.

The sidecar ``<name>.json`` holds the capture time, the robot pose ``T_kibo_base``, the
camera optical-frame pose ``T_kibo_cam`` (position m, quaternion xyzw, kibo frame), the
intrinsics K of *this* image (scaled when the image was resized), the resolution, the frame
id and free-form ``extra`` fields. Both files are written to a temporary name in the target
directory, flushed and renamed (``os.replace``), so a reader never sees a half-written file;
the PNG is renamed first, so a sidecar always has its image. Names are sanitised to
``[A-Za-z0-9._-]`` and never overwrite an existing snapshot (a ``-1``, ``-2`` ... suffix).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from intball_nav.frames import Pose

SCHEMA = "intball.snapshot/1"


@dataclass(frozen=True)
class SnapshotMeta:
    """Metadata of one snapshot (the JSON sidecar).

    stamp : s, capture time (sim time); T_kibo_base, T_kibo_cam : poses at capture
    K : (3,3) px intrinsics of the saved image; width, height : px; frame_id : optical frame
    extra : free-form JSON-serialisable fields (task name, bay, ...)
    """

    stamp: float
    T_kibo_base: Pose
    T_kibo_cam: Pose
    K: np.ndarray
    width: int
    height: int
    frame_id: str = "main_camera_optical"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        def pose(T: Pose) -> dict[str, list[float]]:
            return {"position": T.position.tolist(), "quat_xyzw": T.quat.tolist()}

        return {
            "schema": SCHEMA,
            "stamp": float(self.stamp),
            "frame": "kibo",
            "T_kibo_base": pose(self.T_kibo_base),
            "T_kibo_cam": pose(self.T_kibo_cam),
            "camera": {
                "frame_id": self.frame_id,
                "width": int(self.width),
                "height": int(self.height),
                "K": np.asarray(self.K, dtype=float).tolist(),
            },
            "extra": self.extra,
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> SnapshotMeta:
        if d.get("schema") != SCHEMA:
            raise ValueError(f"snapshot sidecar schema {d.get('schema')!r}, expected {SCHEMA!r}")
        cam = d["camera"]
        return SnapshotMeta(
            stamp=float(d["stamp"]),
            T_kibo_base=Pose(d["T_kibo_base"]["position"], d["T_kibo_base"]["quat_xyzw"]),
            T_kibo_cam=Pose(d["T_kibo_cam"]["position"], d["T_kibo_cam"]["quat_xyzw"]),
            K=np.array(cam["K"], dtype=float),
            width=int(cam["width"]),
            height=int(cam["height"]),
            frame_id=str(cam["frame_id"]),
            extra=dict(d.get("extra", {})),
        )


@dataclass(frozen=True)
class SnapshotFiles:
    """Paths of a saved snapshot."""

    image: Path
    sidecar: Path


def safe_name(name: str, max_len: int = 80) -> str:
    """A file-name stem of ``[A-Za-z0-9._-]`` only (no path separators, no leading dot)."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return (s or "snapshot")[:max_len]


def scaled_intrinsics(K: np.ndarray, size_from: tuple[int, int], size_to: tuple[int, int]) -> np.ndarray:
    """(3,3) K of an image resized from (W, H) to (W', H') (pixel-centre convention:
    ``u' = (u + 0.5) W'/W - 0.5``)."""
    sx, sy = size_to[0] / size_from[0], size_to[1] / size_from[1]
    K2 = np.array(K, dtype=float).copy()
    K2[0, 0] *= sx
    K2[1, 1] *= sy
    K2[0, 1] *= sx
    K2[0, 2] = (K2[0, 2] + 0.5) * sx - 0.5
    K2[1, 2] = (K2[1, 2] + 0.5) * sy - 0.5
    return K2


def resize_image(rgb: np.ndarray, K: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(image resized to width x height, its K): a snapshot at a chosen resolution from the
    camera's native image (INTER_AREA when shrinking, INTER_CUBIC when enlarging)."""
    h, w = rgb.shape[:2]
    if (w, h) == (width, height):
        return rgb, np.asarray(K, dtype=float).copy()
    interp = cv2.INTER_AREA if width < w else cv2.INTER_CUBIC
    return cv2.resize(rgb, (width, height), interpolation=interp), scaled_intrinsics(
        K, (w, h), (width, height)
    )


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_snapshot(
    directory: str | Path, rgb: np.ndarray, meta: SnapshotMeta, name: str | None = None
) -> SnapshotFiles:
    """Write ``<name>.png`` and ``<name>.json`` into ``directory`` (created if needed).

    rgb : (H,W,3) uint8 RGB, H and W must match ``meta``. name : default ``snap_<stamp in ms>``.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"snapshot image must be (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
    if rgb.shape[:2] != (meta.height, meta.width):
        raise ValueError(
            f"image is {rgb.shape[1]}x{rgb.shape[0]} but metadata says {meta.width}x{meta.height}"
        )
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    stem = safe_name(name or f"snap_{round(meta.stamp * 1000):012d}")
    base, k = stem, 0
    while (d / f"{stem}.png").exists() or (d / f"{stem}.json").exists():
        k += 1
        stem = f"{base}-{k}"
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError("PNG encoding failed")
    files = SnapshotFiles(d / f"{stem}.png", d / f"{stem}.json")
    _atomic_write(files.image, png.tobytes())
    _atomic_write(files.sidecar, (json.dumps(meta.to_dict(), indent=2) + "\n").encode())
    return files


def load_snapshot(path: str | Path) -> tuple[np.ndarray, SnapshotMeta]:
    """(rgb (H,W,3) uint8, metadata) of a snapshot, given its .png or .json path."""
    p = Path(path)
    img = cv2.imread(str(p.with_suffix(".png")), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"cannot read snapshot image {p.with_suffix('.png')}")
    meta = SnapshotMeta.from_dict(json.loads(p.with_suffix(".json").read_text()))
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB), meta
