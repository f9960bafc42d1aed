"""TUM trajectory files: one pose per line ``t x y z qx qy qz qw`` (s, m, kibo frame).

The format of the TUM RGB-D benchmark, read by evo and most SLAM evaluation tools.
Lines starting with ``#`` are comments.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TUM_HEADER = "# t x y z qx qy qz qw  (s, m, kibo frame, q_kibo_body)"


def write_tum(path: str | Path, times: np.ndarray, positions: np.ndarray, quats: np.ndarray) -> None:
    """Write times (N,) s, positions (N,3) m kibo frame, quats (N,4) xyzw q_kibo_body."""
    t = np.asarray(times, dtype=float).reshape(-1)
    p = np.asarray(positions, dtype=float).reshape(-1, 3)
    q = np.asarray(quats, dtype=float).reshape(-1, 4)
    if not len(t) == len(p) == len(q):
        raise ValueError(f"times, positions, quats differ in length: {len(t)}, {len(p)}, {len(q)}")
    rows = np.column_stack([t, p, q])
    np.savetxt(path, rows, fmt=["%.6f"] + ["%.9g"] * 7, header=TUM_HEADER[2:], comments="# ")


def read_tum(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times (N,) s, positions (N,3) m, quats (N,4) xyzw) of a TUM file.

    Raises ValueError naming the file and line of a malformed or non-finite row.
    """
    path = Path(path)
    rows: list[list[float]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.split()
        try:
            values = [float(v) for v in parts]
        except ValueError as exc:
            raise ValueError(f"{path.name}:{number}: not a number in {text!r}") from exc
        if len(values) != 8 or not np.isfinite(values).all():
            raise ValueError(f"{path.name}:{number}: expected 8 finite numbers 't x y z qx qy qz qw'")
        rows.append(values)
    data = np.array(rows, dtype=float).reshape(-1, 8)
    return data[:, 0], data[:, 1:4], data[:, 4:8]
