"""Upload checks: a behavior is a ``.py`` file or a ``.zip`` with ``behavior.py`` at its root.

``unpack(filename, data) -> {relative name: bytes}`` accepts or raises ``UploadRejected`` with the
reason. Checked before anything runs: size, type, UTF-8 Python that compiles and defines
``run(api)`` or ``on_step(obs)``; for zips also the number of entries, the total uncompressed size
and the compression ratio (zip bombs), absolute or ``..`` names and backslashes (path traversal),
symlinks and other special entries, duplicates, encryption.
"""

from __future__ import annotations

import ast
import io
import stat
import zipfile
from pathlib import PurePosixPath

MAX_UPLOAD_BYTES = 1024 * 1024
MAX_ENTRIES = 64
MAX_UNPACKED_BYTES = 8 * 1024 * 1024
MAX_RATIO = 50.0
ENTRY = "behavior.py"


class UploadRejected(ValueError):
    """An upload that will not run; ``str()`` is the reason shown to the participant."""


def _check_python(name: str, data: bytes, entry: bool) -> None:
    try:
        source = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UploadRejected(f"{name} is not UTF-8 text: {exc}") from None
    try:
        tree = ast.parse(source, filename=name)
    except SyntaxError as exc:
        raise UploadRejected(f"{name}:{exc.lineno}: syntax error: {exc.msg}") from None
    if entry:
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        if not defined & {"run", "on_step"}:
            raise UploadRejected(f"{name} defines neither run(api) nor on_step(obs) at module level")


def unpack(filename: str, data: bytes) -> dict[str, bytes]:
    """Checked files of an upload (see module docstring)."""
    if not isinstance(data, bytes | bytearray):
        raise UploadRejected("upload content must be bytes")
    if len(data) == 0:
        raise UploadRejected("upload is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadRejected(f"upload is {len(data)} bytes; the limit is {MAX_UPLOAD_BYTES}")
    lower = (filename or "").lower()
    if lower.endswith(".py"):
        _check_python(ENTRY, bytes(data), entry=True)
        return {ENTRY: bytes(data)}
    if not lower.endswith(".zip"):
        raise UploadRejected(f"file {filename!r} must be a .py file or a .zip with {ENTRY}")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise UploadRejected(f"not a valid zip file: {exc}") from None
    infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:
        raise UploadRejected(f"zip has {len(infos)} entries; the limit is {MAX_ENTRIES}")
    total = sum(i.file_size for i in infos)
    if total > MAX_UNPACKED_BYTES:
        raise UploadRejected(f"zip unpacks to {total} bytes; the limit is {MAX_UNPACKED_BYTES}")
    files: dict[str, bytes] = {}
    for info in infos:
        name = info.filename
        if info.flag_bits & 0x1:
            raise UploadRejected(f"zip entry {name!r} is encrypted")
        if "\\" in name or "\x00" in name or name.startswith("/") or ":" in name:
            raise UploadRejected(f"zip entry {name!r} has an unsafe name (absolute, drive or backslash)")
        parts = PurePosixPath(name).parts
        if any(p in ("..", ".") for p in parts) or not parts:
            raise UploadRejected(f"zip entry {name!r} leaves the behavior folder (path traversal)")
        mode = info.external_attr >> 16
        if info.is_dir():
            continue
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # 0: the zip tool stored no file type
            kind = "a symlink" if stat.S_ISLNK(mode) else "not a regular file"
            raise UploadRejected(f"zip entry {name!r} is {kind}")
        if info.compress_size and info.file_size / info.compress_size > MAX_RATIO and info.file_size > 65536:
            raise UploadRejected(
                f"zip entry {name!r} expands {info.file_size / info.compress_size:.0f}x (zip bomb?); "
                f"limit {MAX_RATIO:g}x"
            )
        clean = "/".join(parts)
        if clean in files:
            raise UploadRejected(f"zip entry {name!r} appears twice")
        with archive.open(info) as f:
            content = f.read(info.file_size + 1)
        if len(content) != info.file_size:
            raise UploadRejected(f"zip entry {name!r} is not the size its header says")
        files[clean] = content
    if ENTRY not in files:
        raise UploadRejected(f"zip has no {ENTRY} at its root (entries: {sorted(files)[:10]})")
    for name, content in files.items():
        if name.endswith(".py"):
            _check_python(name, content, entry=name == ENTRY)
    return files
