"""Upload checks: what is accepted, and every rejection names its reason."""

from __future__ import annotations

import io
import stat
import zipfile

import pytest

from intball_compete.upload import MAX_UPLOAD_BYTES, UploadRejected, unpack

GOOD = b"def run(api):\n    api.start_mission()\n"


def _zip(entries, *, compression=zipfile.ZIP_DEFLATED, symlink: str | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as z:
        for name, data in entries.items():
            z.writestr(name, data)
        if symlink is not None:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, "/etc/passwd")
    return buf.getvalue()


def test_accepts_a_py_file_and_a_zip_with_modules():
    assert unpack("mine.py", GOOD) == {"behavior.py": GOOD}
    files = unpack("team.zip", _zip({"behavior.py": GOOD, "lib/helper.py": b"X = 1\n", "data.json": b"{}"}))
    assert set(files) == {"behavior.py", "lib/helper.py", "data.json"}
    assert unpack("loop.py", b"def on_step(obs):\n    return {}\n")


@pytest.mark.parametrize(
    ("filename", "data", "reason"),
    [
        ("b.py", b"", "empty"),
        ("b.py", b"#" * (MAX_UPLOAD_BYTES + 1), "the limit is"),
        ("b.exe", GOOD, "must be a .py file or a .zip"),
        ("b.py", b"\xff\xfe", "not UTF-8"),
        ("b.py", b"def run(api)\n", "syntax error"),
        ("b.py", b"def main(api):\n    pass\n", "defines neither run(api) nor on_step(obs)"),
        ("b.zip", b"not a zip", "not a valid zip"),
        ("b.zip", _zip({"helper.py": GOOD}), "no behavior.py at its root"),
        ("b.zip", _zip({"sub/behavior.py": GOOD}), "no behavior.py at its root"),
        ("b.zip", _zip({"behavior.py": GOOD, "../escape.py": b""}), "path traversal"),
        ("b.zip", _zip({"behavior.py": GOOD, "/etc/cron.d/x": b""}), "unsafe name"),
        ("b.zip", _zip({"behavior.py": GOOD, "a\\b.py": b""}), "unsafe name"),
        ("b.zip", _zip({"behavior.py": GOOD}, symlink="link"), "is a symlink"),
        ("b.zip", _zip({"behavior.py": GOOD, "zeros.bin": b"\0" * (7 * 1024 * 1024)}), "zip bomb"),
        ("b.zip", _zip({"behavior.py": GOOD, "big.bin": b"\0" * (9 * 1024 * 1024)}), "unpacks to"),
        ("b.zip", _zip({f"m{i}.py": b"" for i in range(70)} | {"behavior.py": GOOD}), "entries; the limit"),
        ("b.zip", _zip({"behavior.py": GOOD, "bad.py": b"def (:"}), "bad.py:1: syntax error"),
    ],
)
def test_rejections_name_the_problem(filename, data, reason):
    with pytest.raises(UploadRejected, match=None) as info:
        unpack(filename, data)
    assert reason in str(info.value)


def test_package_is_installed_from_its_folder(tmp_path):
    """pyproject maps intball_compete to sim/intball_compete (editable install, any cwd)."""
    import subprocess
    import sys
    from pathlib import Path

    code = "import pathlib, intball_compete.api as a; print(pathlib.Path(a.__file__).parent)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert Path(out.stdout.strip()) == Path(__file__).resolve().parents[1] / "sim" / "intball_compete"
