"""The Makefile: a second `make install` with nothing changed has nothing to do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _dry_run(*targets: str) -> str:
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", *targets, f"VENV={sys.prefix}"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_installed_tree_needs_no_pip_or_cmake_work() -> None:
    out = _dry_run("install")
    assert "pip" not in out
    assert "cmake" not in out
    assert "-m venv" not in out


def test_bench_and_lint_targets_exist() -> None:
    for target in ("bench", "lint", "typecheck", "test-fast", "clean"):
        _dry_run(target)
