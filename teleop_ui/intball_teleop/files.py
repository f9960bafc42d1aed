"""Camera-task files down the link: the images a camera task wrote onboard, as size-capped JPEGs
in numbered chunks, paced under a bandwidth share, reassembled and checked on the ground.

Onboard, :class:`FileSender` keeps the last few files, sends their chunks at ``rate_bps`` at
most (the link's own bandwidth and queue limits apply on top) and announces them in the
telemetry (``files``), so the ground learns of a file even when every chunk was lost. On the
ground, :class:`FileReceiver` collects chunks, verifies the SHA-256 of the whole file and says
which chunks are still missing once a file stalls; the ground station asks for those with a
signed ``file_resend`` command (at most ``MAX_RESENDS`` times per file).

Wire format of a chunk: ``FILE_MAGIC`` + 2-byte big-endian header length + JSON header
(``id``, ``name``, ``command``, ``i``, ``n``, ``bytes``, ``sha256``) + the chunk's bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import struct
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2

log = logging.getLogger(__name__)

FILE_MAGIC = b"FIL1"
_HLEN = struct.Struct(">H")
CHUNK_BYTES = 8192
MAX_FILE_BYTES = 200_000  # JPEG size cap of a downlinked file
KEEP_FILES = 8  # files kept onboard for re-sends and announced in the telemetry
MAX_RESENDS = 5  # ground: resend requests per file before it is given up
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def jpeg_capped(path: str | Path, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The image at ``path`` as a JPEG of at most ``max_bytes``: quality 90 down to 40, then
    the picture halved in area until it fits. Raises ValueError if it cannot be read."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"{Path(path).name}: not a readable image")
    while True:
        for quality in (90, 75, 60, 40):
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if ok and len(buf) <= max_bytes:
                return buf.tobytes()
        h, w = img.shape[:2]
        if min(h, w) < 16:
            raise ValueError(f"{Path(path).name}: cannot fit in {max_bytes} bytes")
        img = cv2.resize(img, (int(w / 1.414), int(h / 1.414)), interpolation=cv2.INTER_AREA)


def encode_chunk(header: dict[str, Any], data: bytes) -> bytes:
    h = json.dumps(header, separators=(",", ":")).encode()
    return FILE_MAGIC + _HLEN.pack(len(h)) + h + data


def decode_chunk(data: bytes) -> tuple[dict[str, Any], bytes]:
    """(header, bytes) of a file chunk; ValueError if it is not one."""
    if not data.startswith(FILE_MAGIC) or len(data) < 6:
        raise ValueError("not a file chunk")
    (n,) = _HLEN.unpack_from(data, 4)
    header = json.loads(data[6 : 6 + n])
    if not isinstance(header, dict):
        raise ValueError("file chunk header is not an object")
    return header, data[6 + n :]


@dataclass
class OutFile:
    id: str
    name: str
    command: str | None
    data: bytes
    chunk_bytes: int
    sha256: str = ""

    def __post_init__(self) -> None:
        self.sha256 = hashlib.sha256(self.data).hexdigest()

    @property
    def n(self) -> int:
        return max(1, -(-len(self.data) // self.chunk_bytes))

    def chunk(self, i: int) -> bytes:
        header = {
            "id": self.id,
            "name": self.name,
            "command": self.command,
            "i": i,
            "n": self.n,
            "bytes": len(self.data),
            "sha256": self.sha256,
        }
        return encode_chunk(header, self.data[i * self.chunk_bytes : (i + 1) * self.chunk_bytes])

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "command": self.command,
            "bytes": len(self.data),
            "n": self.n,
        }


class FileSender:
    """Onboard: queue files' chunks and send them paced at ``rate_bps`` (bit/s) by ``run()``."""

    def __init__(
        self,
        send: Callable[[bytes], None],
        rate_bps: float,
        chunk_bytes: int = CHUNK_BYTES,
        keep: int = KEEP_FILES,
    ) -> None:
        if rate_bps <= 0:
            raise ValueError(f"file rate {rate_bps} bit/s must be > 0")
        self.send, self.rate_bps, self.chunk_bytes, self.keep = send, rate_bps, chunk_bytes, keep
        self.files: OrderedDict[str, OutFile] = OrderedDict()
        self._queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        self.sent_bytes = 0

    def add(self, name: str, data: bytes, command: str | None) -> OutFile:
        f = OutFile(secrets.token_hex(6), name, command, data, self.chunk_bytes)
        self.files[f.id] = f
        while len(self.files) > self.keep:
            self.files.popitem(last=False)
        for i in range(f.n):
            self._queue.put_nowait((f.id, i))
        return f

    def resend(self, file_id: str, chunks: list[int]) -> int:
        """Queue chunks of a kept file again; returns how many. KeyError: not kept (any more)."""
        f = self.files[file_id]
        wanted = sorted({i for i in chunks if 0 <= i < f.n})
        for i in wanted:
            self._queue.put_nowait((file_id, i))
        return len(wanted)

    def announce(self) -> list[dict[str, Any]]:
        return [f.summary() for f in self.files.values()]

    async def run(self) -> None:
        while True:
            file_id, i = await self._queue.get()
            f = self.files.get(file_id)
            if f is None:
                continue  # dropped from the kept files meanwhile
            packet = f.chunk(i)
            try:
                self.send(packet)
                self.sent_bytes += len(packet)
            except Exception:
                log.exception("file downlink: chunk %d of %s not sent", i, f.name)
            await asyncio.sleep(8.0 * len(packet) / self.rate_bps)


@dataclass
class InFile:
    id: str
    name: str = ""
    command: str | None = None
    size: int = 0
    n: int = 0
    sha256: str = ""
    chunks: dict[int, bytes] = field(default_factory=dict)
    first_seen: float = 0.0
    last_progress: float = 0.0
    completed: float | None = None
    data: bytes | None = None
    state: str = "receiving"  # receiving | complete | failed
    reason: str = ""
    resends: int = 0

    def missing(self) -> list[int]:
        return [i for i in range(self.n) if i not in self.chunks]

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "command": self.command,
            "bytes": self.size,
            "sha256": self.sha256,  # announced by the robot; a complete file's data matches it
            "chunks": self.n,
            "received": len(self.chunks),
            "state": self.state,
            "reason": self.reason,
            "resends": self.resends,
            "first_seen": self.first_seen,
            "completed": self.completed,
        }


class FileReceiver:
    """Ground: reassemble chunks, verify, and name what is missing once a file stalls."""

    def __init__(self, keep: int = 50) -> None:
        self.files: OrderedDict[str, InFile] = OrderedDict()
        self.keep = keep

    def _file(self, meta: dict[str, Any], now: float) -> InFile | None:
        fid = meta.get("id")
        n, size = meta.get("n"), meta.get("bytes")
        if not isinstance(fid, str) or not isinstance(n, int) or not isinstance(size, int) or n < 1:
            return None
        f = self.files.get(fid)
        if f is None:
            f = self.files[fid] = InFile(fid, first_seen=now, last_progress=now)
            while len(self.files) > self.keep:
                self.files.popitem(last=False)
        if not f.n:
            f.name, f.command, f.size, f.n = str(meta.get("name", ""))[:128], meta.get("command"), size, n
        return f

    def announced(self, metas: list[Any], now: float) -> list[InFile]:
        """Files named in the telemetry (``files``); returns the ones new to the ground."""
        new = []
        for meta in metas:
            if isinstance(meta, dict) and meta.get("id") not in self.files:
                f = self._file(meta, now)
                if f is not None:
                    new.append(f)
        return new

    def on_chunk(self, data: bytes, now: float) -> InFile | None:
        """Store a chunk; the file when it changed (new chunk or completed), else None."""
        try:
            header, body = decode_chunk(data)
        except ValueError:
            return None
        f = self._file(header, now)
        i = header.get("i")
        if f is None or f.state != "receiving" or not isinstance(i, int) or not 0 <= i < f.n or i in f.chunks:
            return None
        f.sha256 = str(header.get("sha256", f.sha256))
        f.chunks[i] = body
        for g in self.files.values():  # chunks flow in order: a file queued behind this one waits
            if g.state == "receiving":
                g.last_progress = now
        if len(f.chunks) == f.n:
            data_all = b"".join(f.chunks[k] for k in range(f.n))
            if len(data_all) == f.size and hashlib.sha256(data_all).hexdigest() == f.sha256:
                f.data, f.state, f.completed, f.reason = data_all, "complete", now, ""
            else:
                f.chunks.clear()  # corrupt: ask for all of it again
                f.reason = "checksum mismatch: requesting every chunk again"
        return f

    def stalled(self, now: float, gap_s: float) -> list[InFile]:
        """Incomplete files with no progress for gap_s (the caller asks for their missing chunks
        and counts the request in ``resends``); files past MAX_RESENDS are marked failed."""
        out = []
        for f in self.files.values():
            if f.state != "receiving" or now - f.last_progress < gap_s:
                continue
            if f.resends >= MAX_RESENDS:
                f.state = "failed"
                f.reason = f"{len(f.missing())} of {f.n} chunks missing after {MAX_RESENDS} resend requests"
                out.append(f)
                continue
            out.append(f)
        return out
