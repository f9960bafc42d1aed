"""Scoring rule ``score-v1`` (used by ``kibo-targets-v1``): per-term points and the total.

Terms (points; the scorer uses ground truth, the behavior never sees it):

- ``targets``: +20 per target whose last report equals its payload (QR text, ArUco id, compared as
  text); -5 per wrong report;
- ``pointing``: per target, the best aim within 2.5 m: 10 x max(0, 1 - angle / 3 deg), angle
  between the main camera axis and the true code centre;
- ``time``: 10 x (correct targets / targets) x (time left / time limit), when the behavior
  finished (or returned) before the limit;
- ``collisions``: -5 per contact episode with a wall, the dock or a solid zone;
- ``keep_out``: -10 per entry of the robot (sphere) into a keep-out zone;
- ``energy``: -0.05 per N s of commanded fan impulse (integral of the summed fan thrust).

``total = max(0, sum of terms)``; a run whose status is not ``ok`` (crashed, timeout, violation,
memory, output_limit, protocol, error) scores 0 whatever its terms. Maximum: 5 x 20 + 5 x 10 + 10 =
160. A change to any number here is a new rule id (``score-v2``) and a new mission id.
"""

from __future__ import annotations

from typing import Any

from intball_compete.missions import Scenario

RULE = "score-v1"
TARGET_POINTS = 20.0
WRONG_REPORT = -5.0
POINTING_POINTS = 10.0
POINTING_ZERO_DEG = 3.0
TIME_POINTS = 10.0
COLLISION = -5.0
KEEP_OUT = -10.0
ENERGY_PER_NS = -0.05
TERMS = ("targets", "pointing", "time", "collisions", "keep_out", "energy")


def score(scenario: Scenario, measures: dict[str, Any], status: str) -> dict[str, Any]:
    """Per-term scores, the total, and per-target details, from the session's measures."""
    if scenario.scoring != RULE:
        raise ValueError(f"scenario {scenario.mission} uses rule {scenario.scoring}, this is {RULE}")
    reports = measures.get("reports", {})
    aims = measures.get("aims", {})
    per_target = []
    correct = wrong = 0
    pointing = 0.0
    for t in scenario.targets:
        reported = reports.get(str(t.id))
        ok = reported is not None and str(reported) == str(t.payload)
        correct += ok
        wrong += reported is not None and not ok
        aim = aims.get(str(t.id))
        pts = 0.0 if aim is None else POINTING_POINTS * max(0.0, 1.0 - aim["angle_deg"] / POINTING_ZERO_DEG)
        pointing += pts
        per_target.append(
            {
                "id": t.id,
                "area": t.bay,
                "kind": t.kind,
                "reported": reported,
                "correct": ok,
                "aim_angle_deg": None if aim is None else aim["angle_deg"],
                "pointing_points": round(pts, 4),
            }
        )
    n = len(scenario.targets)
    left = max(0.0, measures["time_limit_s"] - measures["mission_time_s"])
    finished = measures.get("end_reason") in ("finished", "behavior ended")
    time_pts = TIME_POINTS * (correct / n) * (left / measures["time_limit_s"]) if finished else 0.0
    terms = {
        "targets": TARGET_POINTS * correct + WRONG_REPORT * wrong,
        "pointing": pointing,
        "time": time_pts,
        "collisions": COLLISION * len(measures.get("collisions", [])),
        "keep_out": KEEP_OUT * len(measures.get("keepout_events", [])),
        "energy": ENERGY_PER_NS * float(measures.get("energy_ns", 0.0)),
    }
    terms = {k: round(v, 4) + 0.0 for k, v in terms.items()}  # + 0.0: no "-0.0" in the output
    total = max(0.0, sum(terms.values())) if status == "ok" else 0.0
    return {
        "rule": RULE,
        "terms": terms,
        "total": round(total, 4),
        "targets_correct": correct,
        "targets_total": n,
        "per_target": per_target,
    }
