"""The behavior <-> simulator channel: length-prefixed JSON headers with optional raw bytes.

Frame: 4-byte big-endian header length, the UTF-8 JSON header (an object), then ``blob`` bytes
(the header says how many, ``"blob": n``; 0 or absent = none). Images travel as raw bytes with
``shape`` and ``dtype`` in the header. Stdlib only: the sandboxed child imports this module.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

_LEN = struct.Struct(">I")
MAX_HEADER_BYTES = 64 * 1024
"""Largest header either side accepts."""


class ChannelClosed(EOFError):
    """The other side closed the channel."""


class ProtocolError(ValueError):
    """A malformed frame; ``str()`` says what was wrong."""


def send(sock: socket.socket, header: dict[str, Any], blob: bytes | memoryview = b"") -> None:
    """Send one frame (header dict, optional raw bytes)."""
    n = len(blob)
    if n:
        header = {**header, "blob": n}
    data = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    if len(data) > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {len(data)} bytes exceeds {MAX_HEADER_BYTES}")
    sock.sendall(_LEN.pack(len(data)) + data)
    if n:
        sock.sendall(blob)


def _recv_exact(sock: socket.socket, n: int) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise ChannelClosed("channel closed")
        got += k
    return buf


def recv(sock: socket.socket, *, max_blob: int) -> tuple[dict[str, Any], bytes]:
    """Receive one frame -> (header, blob). ProtocolError on a malformed frame or one too large,
    ChannelClosed at end of stream; socket timeouts propagate (``TimeoutError``)."""
    (size,) = _LEN.unpack(bytes(_recv_exact(sock, _LEN.size)))
    if size > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {size} bytes exceeds {MAX_HEADER_BYTES}")
    try:
        header = json.loads(bytes(_recv_exact(sock, size)))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("header is not a JSON object")
    n = header.get("blob", 0)
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ProtocolError(f"blob size {n!r} is not a non-negative integer")
    if n > max_blob:
        raise ProtocolError(f"blob of {n} bytes exceeds the limit of {max_blob}")
    return header, bytes(_recv_exact(sock, n)) if n else b""
