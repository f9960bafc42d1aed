"""The ROS domains the test session hands out (tests/conftest.py): modules that can run at the
same time, in two pytest-xdist workers, never share one, and all stay in Fast DDS's valid range."""

from __future__ import annotations

import itertools

import pytest
from conftest import DOMAIN_ID_MAX, DOMAIN_ID_MIN, domain_id_for_module, domain_id_for_pid


@pytest.mark.parametrize("workers", [1, 2, 3, 4])
def test_workers_never_share_a_domain_and_ids_stay_valid(workers):
    for session in (DOMAIN_ID_MIN, DOMAIN_ID_MAX):
        used = {w: {domain_id_for_module(session, k, w, workers) for k in range(200)} for w in range(workers)}
        for a, b in itertools.combinations(range(workers), 2):
            assert not used[a] & used[b], (workers, a, b)
        everything = set().union(*used.values())
        # +1: ros_graph_helpers.isolated_domain_id(); 232 is the first id whose ports overflow
        assert min(everything) >= 1 and max(everything) + 1 < 232


def test_one_worker_gives_consecutive_modules_distinct_domains():
    ids = [domain_id_for_module(40, k) for k in range(60)]
    assert len(set(ids)) == 60 and all(i % 2 == 0 for i in ids)  # 40 + 2k; 40 + 2k + 1: isolated
    assert domain_id_for_pid(12345) == domain_id_for_pid(12345 + DOMAIN_ID_MAX - DOMAIN_ID_MIN + 1)
