"""Import rules of docs/architecture.md, checked on the source (AST), not by convention."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package folder -> top-level modules it must never import
FORBIDDEN = {
    ROOT / "intball_nav": {
        "rclpy",
        "pybullet",
        "pybullet_data",
        "intball_sim",
        "intball_ros",
        "intball_teleop",
    },
    ROOT / "sim" / "intball_sim": {"rclpy", "intball_ros", "intball_teleop"},
    ROOT / "teleop_ui" / "intball_teleop" / "link": {"rclpy", "pybullet", "intball_sim"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN), ids=lambda p: str(p.relative_to(ROOT)))
def test_package_import_rules(package: Path):
    files = sorted(package.rglob("*.py"))
    assert files, f"no sources found under {package}"
    violations = [
        f"{f.relative_to(ROOT)} imports {name}"
        for f in files
        for name in sorted(_imports(f) & FORBIDDEN[package])
    ]
    assert not violations, "\n".join(violations)


def test_controller_never_sees_the_simulator():
    """The GNC loop is fed an estimate; it must not reach for simulator ground truth."""
    for name in ("gnc.py", "control.py", "guidance.py", "allocation.py"):
        assert not (_imports(ROOT / "intball_nav" / name) & {"intball_sim", "pybullet"}), name


def test_import_rule_checker_catches_a_violation(tmp_path: Path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom rclpy.node import Node\nimport pybullet as p\n")
    assert {"rclpy", "pybullet"} <= _imports(bad)
