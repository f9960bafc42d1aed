"""TUM trajectory files round-trip and report bad lines."""

from __future__ import annotations

import numpy as np
import pytest

from intball_nav.frames import quat_from_rotvec
from intball_nav.trajectory_io import read_tum, write_tum


def test_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(10) * 0.1 + 1234.5
    p = rng.uniform(-5, 5, (10, 3))
    q = np.array([quat_from_rotvec(r) for r in rng.uniform(-2, 2, (10, 3))])
    path = tmp_path / "traj.tum"
    write_tum(path, t, p, q)
    assert path.read_text().startswith("#")
    t2, p2, q2 = read_tum(path)
    assert np.allclose(t2, t, atol=1e-6) and np.allclose(p2, p, atol=1e-8) and np.allclose(q2, q, atol=1e-8)


def test_bad_line_is_named(tmp_path):
    path = tmp_path / "bad.tum"
    path.write_text("# header\n0 1 2 3 0 0 0 1\n0.1 1 2 3 0 0 1\n")
    with pytest.raises(ValueError, match="bad.tum:3: expected 8 finite numbers"):
        read_tum(path)
    path.write_text("0 1 2 x 0 0 0 1\n")
    with pytest.raises(ValueError, match="bad.tum:1: not a number"):
        read_tum(path)


def test_length_mismatch(tmp_path):
    with pytest.raises(ValueError, match="differ in length"):
        write_tum(tmp_path / "x.tum", np.zeros(2), np.zeros((3, 3)), np.zeros((2, 4)))
