"""The backend's hot-path thrust-noise lookup equals the general one, at any physics rate."""

from __future__ import annotations

import numpy as np
import pytest

from intball_nav.robot import load_robot_params
from intball_sim.backend import NOISE_BATCH, PyBulletBackend


@pytest.mark.parametrize("physics_hz", [100.0, 200.0, 240.0])
def test_noise_block_equals_thrust_noise(physics_hz):
    """_noise_block(n) == _thrust_noise(arange(n)) across table refills and step offsets."""
    b = PyBulletBackend(load_robot_params(), None, seed=5, world=False, airflow=False, physics_hz=physics_hz)
    try:
        for n in [1, 2, 3, 7, NOISE_BATCH + 5, 2, 1]:
            np.testing.assert_array_equal(b._noise_block(n), b._thrust_noise(np.arange(n)))
            b._steps += n  # as step() does, without flying
    finally:
        b.close()
