"""intball_ros.convert, keep-out zones: AddKeepOut request and KeepOutZones message round trips,
and the request's validation naming the bad field (pure, no processes)."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("rclpy")

from geometry_msgs.msg import Point  # noqa: E402
from intball_interfaces.srv import AddKeepOut  # noqa: E402

from intball_nav.safety import Box  # noqa: E402
from intball_ros import convert, names  # noqa: E402

RNG = np.random.default_rng(11)


def random_box(name: str) -> Box:
    lo = RNG.uniform(-2.0, 8.0, 3)
    return Box(lo, lo + RNG.uniform(0.05, 1.5, 3), name)


def request(name: str = "cargo_1", lo=(1.0, -0.5, -0.5), hi=(1.5, 0.0, 0.25)) -> AddKeepOut.Request:
    return AddKeepOut.Request(
        name=name, min=Point(x=lo[0], y=lo[1], z=lo[2]), max=Point(x=hi[0], y=hi[1], z=hi[2])
    )


def test_add_keep_out_request_round_trip():
    for i in range(20):
        box = random_box(f"zone_{i}")
        req = convert.keep_out_from_box(box)
        assert isinstance(req, AddKeepOut.Request) and req.name == box.name
        back = convert.box_from_keep_out(req)
        assert back.name == box.name
        np.testing.assert_array_equal(back.min, box.min)
        np.testing.assert_array_equal(back.max, box.max)


def test_keep_out_zones_round_trip_gives_the_telemetry_dicts():
    boxes = [random_box("stowage_bag"), random_box("cargo_1"), random_box("dock")]
    msg = convert.keep_out_zones_msg(boxes, {"stowage_bag", "dock"}, 12.5)
    assert msg.header.frame_id == names.WORLD_FRAME
    assert convert.time_from_stamp(msg.header.stamp) == pytest.approx(12.5)
    zones = convert.zones_from_keep_out_zones(msg)
    assert [z["name"] for z in zones] == ["stowage_bag", "cargo_1", "dock"]
    assert [z["fixed"] for z in zones] == [True, False, True]
    for z, b in zip(zones, boxes, strict=True):
        assert set(z) == {"name", "min", "max", "fixed"}
        assert all(type(v) is float for v in (*z["min"], *z["max"]))  # JSON-ready, not numpy
        assert z["min"] == b.min.tolist() and z["max"] == b.max.tolist()
    assert convert.zones_from_keep_out_zones(convert.keep_out_zones_msg([], set(), 0.0)) == []


def test_add_keep_out_strips_the_name():
    assert convert.box_from_keep_out(request(name="  cargo_1 ")).name == "cargo_1"


@pytest.mark.parametrize(
    "req, reason",
    [
        (request(name=""), "the zone needs a name"),
        (request(name="   "), "the zone needs a name"),
        (request(lo=(1.0, math.nan, -0.5)), "zone 'cargo_1': min.y = nan must be a finite number"),
        (request(hi=(1.5, 0.0, math.inf)), "zone 'cargo_1': max.z = inf must be a finite number"),
        (request(lo=(2.0, -0.5, -0.5)), "zone 'cargo_1': min.x = 2 m must be below max.x = 1.5 m"),
        (request(hi=(1.5, -0.5, 0.25)), "zone 'cargo_1': min.y = -0.5 m must be below max.y = -0.5 m"),
    ],
)
def test_add_keep_out_rejections_name_the_field(req, reason):
    with pytest.raises(ValueError) as exc:
        convert.box_from_keep_out(req)
    assert reason in str(exc.value)
