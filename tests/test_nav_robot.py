"""Robot parameters: URDF + robot.yaml loading, fan geometry checked by a linear program."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linprog

from intball_nav.config import ConfigError
from intball_nav.robot import ROBOT_YAML_PATH, load_robot_params


@pytest.fixture(scope="module")
def params():
    return load_robot_params()


def test_loaded_values(params):
    assert params.mass == pytest.approx(3.2)
    assert np.allclose(np.diag(params.inertia), [0.0140, 0.0143, 0.0132])
    assert params.radius == pytest.approx(0.10)
    assert (params.fan_min, params.fan_max, params.fan_tau) == (0.0, 0.060, 0.010)
    assert params.fan_noise_sigma == pytest.approx(0.012)
    assert params.drag_linear == pytest.approx(0.0152)
    assert np.allclose(np.abs(params.fan_positions), [0.045, 0.070, 0.0555])
    assert np.allclose(np.abs(params.fan_directions), [0.754180198, 0.414799109, 0.509071634])
    assert np.allclose(np.linalg.norm(params.fan_directions, axis=1), 1.0)


def test_allocation_matrix_is_force_and_moment(params):
    B = params.allocation_matrix
    assert B.shape == (6, 8)
    assert np.allclose(B[:3], params.fan_directions.T)
    assert np.allclose(B[3:], np.cross(params.fan_positions, params.fan_directions).T)
    assert np.linalg.matrix_rank(B) == 6  # fully 6-DoF controllable ...
    # ... with non-negative thrusts: a strictly positive thrust vector produces zero wrench.
    res = linprog(np.zeros(8), A_eq=B, b_eq=np.zeros(6), bounds=[(1e-3, None)] * 8)
    assert res.status == 0


@pytest.mark.parametrize(
    ("axis", "limit"),
    [(0, 0.181), (1, 0.0996), (2, 0.122), (3, 3.0e-3), (4, 4.5e-3), (5, 8.2e-3)],
)
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_pure_axis_limits_by_linear_program(params, axis, limit, sign):
    """Max pure force/torque along each body axis (others zero) = the documented IB2 figures."""
    B = params.allocation_matrix
    others = [i for i in range(6) if i != axis]
    res = linprog(
        -sign * B[axis],
        A_eq=B[others],
        b_eq=np.zeros(5),
        bounds=[(params.fan_min, params.fan_max)] * 8,
    )
    assert res.status == 0
    assert sign * B[axis] @ res.x == pytest.approx(limit, rel=0.012)


def test_yaml_error_names_line_field_and_range(tmp_path):
    text = ROBOT_YAML_PATH.read_text().replace("tau: 0.010 ", "tau: 5.0 ")
    bad = tmp_path / "robot.yaml"
    bad.write_text(text)
    line = next(i for i, s in enumerate(text.splitlines(), 1) if s.strip().startswith("tau:"))
    with pytest.raises(ConfigError, match=rf"robot.yaml:{line}: fans.tau: 5 s is outside the allowed range"):
        load_robot_params(yaml_path=bad)


def test_yaml_missing_key(tmp_path):
    bad = tmp_path / "robot.yaml"
    bad.write_text(ROBOT_YAML_PATH.read_text().replace("  noise_sigma:", "  noise_sigmaa:"))
    with pytest.raises(ConfigError, match="noise_sigmaa"):
        load_robot_params(yaml_path=bad)
