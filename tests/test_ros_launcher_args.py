"""`intball up` arguments reach the nodes' parameters; bad values stop it with the reason."""

from __future__ import annotations

import argparse

import pytest

pytest.importorskip("rclpy")

from intball_ros import launcher, names  # noqa: E402


def _specs(argv: list[str]) -> dict[str, launcher.NodeSpec]:
    parser = argparse.ArgumentParser()
    launcher.add_arguments(parser)
    return {s.name: s for s in launcher.graph_specs(parser.parse_args(argv))}


def test_loss_of_signal_thresholds_reach_the_bridge():
    specs = _specs(["--ui", "--station-keep-after-s", "4", "--return-to-dock-after-s", "30"])
    bridge = specs[names.BRIDGE_NODE]
    assert bridge.params[names.P_STATION_KEEP_AFTER] == 4.0
    assert bridge.params[names.P_RETURN_TO_DOCK_AFTER] == 30.0
    defaults = _specs(["--ui"])[names.BRIDGE_NODE].params
    assert (defaults[names.P_STATION_KEEP_AFTER], defaults[names.P_RETURN_TO_DOCK_AFTER]) == (10.0, 900.0)


@pytest.mark.parametrize("value", ["0", "-3", "nan", "inf", "soon"])
def test_a_threshold_that_is_not_positive_seconds_is_refused(value, capsys):
    with pytest.raises(SystemExit):
        _specs(["--ui", "--station-keep-after-s", value])
    assert "--station-keep-after-s" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["--station-keep-after-s", "60", "--return-to-dock-after-s", "30"],  # dock before hold
        ["--station-keep-after-s", "1"],  # not above the link's 2 s contact threshold
    ],
)
def test_thresholds_the_bridge_would_refuse_stop_the_launcher_first(argv):
    with pytest.raises(SystemExit, match="need 0 < recover_below_s < station_keep_after_s"):
        _specs(["--ui", *argv])
