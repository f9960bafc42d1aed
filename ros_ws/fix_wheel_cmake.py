"""Rewrite build-machine paths in the ROS message wheels' exported CMake files.

The ``ros-kilted-*-msgs`` wheels ship ``share/<pkg>/cmake/*.cmake`` files whose imported
targets list the wheel builder's include directories (``/opt/python/cp311-cp311/...`` for
``Python.h`` and that machine's numpy headers). CMake refuses to configure a package that
depends on them, so before building ``ros_ws/src/*`` we point those entries at the
interpreter running this script (the project venv) and its numpy.

Idempotent: a file is written only when its content changes, so a second run reports
zero changes. Run it with the venv's Python:

    .venv/bin/python ros_ws/fix_wheel_cmake.py [--prefix PREFIX] [--check]
"""

from __future__ import annotations

import argparse
import re
import sys
import sysconfig
from pathlib import Path

# An entry of a CMake list (``;``/quote separated) that is a Python or numpy include dir.
_PYTHON_INCLUDE = re.compile(r'[^;"\s]*/include/python3\.\d+')
_NUMPY_INCLUDE = re.compile(r'[^;"\s]*/site-packages/numpy/(?:_core|core)/include')


def real_include_dirs() -> tuple[str, str]:
    """Return ``(python_include, numpy_include)`` of the running interpreter."""
    import numpy

    return sysconfig.get_path("include"), numpy.get_include()


def rewrite_text(text: str, python_include: str, numpy_include: str) -> str:
    """Return ``text`` with every Python/numpy include entry replaced by the given dirs."""
    text = _NUMPY_INCLUDE.sub(lambda _m: numpy_include, text)
    return _PYTHON_INCLUDE.sub(lambda _m: python_include, text)


def fix_prefix(prefix: Path, *, dry_run: bool = False) -> list[Path]:
    """Rewrite the exported ``*.cmake`` files under ``prefix/share``; return changed files."""
    python_include, numpy_include = real_include_dirs()
    changed = []
    for path in sorted((prefix / "share").glob("*/cmake/*.cmake")):
        text = path.read_text()
        if "/include/python3" not in text and "numpy" not in text:
            continue
        new = rewrite_text(text, python_include, numpy_include)
        if new != text:
            changed.append(path)
            if not dry_run:
                path.write_text(new)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", type=Path, default=Path(sys.prefix), help="venv prefix")
    parser.add_argument("--check", action="store_true", help="only report; exit 1 if a file needs fixing")
    args = parser.parse_args(argv)
    changed = fix_prefix(args.prefix, dry_run=args.check)
    verb = "needs fixing" if args.check else "fixed"
    for path in changed:
        print(f"{verb}: {path}")
    print(f"fix_wheel_cmake: {len(changed)} file(s) {verb} under {args.prefix}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
