"""ros_ws/fix_wheel_cmake.py: rewrites the wheel builder's include dirs, idempotently."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy

SCRIPT = Path(__file__).resolve().parents[1] / "ros_ws" / "fix_wheel_cmake.py"

BUILD_MACHINE_LINE = (
    '  INTERFACE_INCLUDE_DIRECTORIES "/opt/python/cp311-cp311/include/python3.11;'
    '/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include"\n'
)
UNRELATED = 'set(_IMPORT_PREFIX "${CMAKE_CURRENT_LIST_DIR}/../..")\n'


def _fake_prefix(root: Path) -> Path:
    cmake_dir = root / "share" / "std_msgs" / "cmake"
    cmake_dir.mkdir(parents=True)
    (cmake_dir / "export_std_msgs__rosidl_generator_pyExport.cmake").write_text(
        UNRELATED + BUILD_MACHINE_LINE
    )
    (cmake_dir / "std_msgsConfig.cmake").write_text(UNRELATED)
    return root


def _snapshot(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, SCRIPT, *map(str, args)], capture_output=True, text=True)


def test_rewrites_build_machine_paths_to_this_interpreter(tmp_path: Path) -> None:
    prefix = _fake_prefix(tmp_path)
    result = _run("--prefix", prefix)
    assert result.returncode == 0, result.stderr
    text = (prefix / "share/std_msgs/cmake/export_std_msgs__rosidl_generator_pyExport.cmake").read_text()
    assert "/opt/python" not in text
    assert f'"{sysconfig.get_path("include")};{numpy.get_include()}"' in text
    assert text.startswith(UNRELATED)


def test_second_run_changes_nothing(tmp_path: Path) -> None:
    prefix = _fake_prefix(tmp_path)
    assert _run("--prefix", prefix).returncode == 0
    after_first = _snapshot(prefix)
    second = _run("--prefix", prefix)
    assert second.returncode == 0, second.stderr
    assert "0 file(s) fixed" in second.stdout
    assert _snapshot(prefix) == after_first


def test_check_mode_reports_without_writing(tmp_path: Path) -> None:
    prefix = _fake_prefix(tmp_path)
    before = _snapshot(prefix)
    assert _run("--prefix", prefix, "--check").returncode == 1
    assert _snapshot(prefix) == before
    assert _run("--prefix", prefix).returncode == 0
    assert _run("--prefix", prefix, "--check").returncode == 0


def test_installed_venv_is_already_fixed() -> None:
    """`make install` ran the script on this venv: nothing left to rewrite."""
    result = _run("--prefix", sys.prefix, "--check")
    assert result.returncode == 0, result.stdout
