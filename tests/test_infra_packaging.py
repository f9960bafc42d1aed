"""The editable install: four import packages from any cwd, package data, `intball` script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {
    "intball_nav": REPO / "intball_nav",
    "intball_sim": REPO / "sim" / "intball_sim",
    "intball_teleop": REPO / "teleop_ui" / "intball_teleop",
    "intball_ros": REPO / "ros_ws" / "src" / "intball_ros" / "intball_ros",
}
SUBPACKAGES = ["intball_nav.estimation", "intball_nav.vision", "intball_teleop.link"]


@pytest.mark.parametrize("name", [*PACKAGES, *SUBPACKAGES])
def test_package_imports_from_its_folder_outside_the_repo(name: str, tmp_path: Path) -> None:
    code = (
        f"import importlib, pathlib; print(pathlib.Path(importlib.import_module({name!r}).__file__).parent)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    top = name.split(".")[0]
    expected = PACKAGES[top].joinpath(*name.split(".")[1:])
    assert Path(result.stdout.strip()) == expected


def test_console_script_points_at_cli_main() -> None:
    script = Path(sys.prefix) / "bin" / "intball"
    assert script.is_file()
    assert "from intball_ros.cli import main" in script.read_text()
