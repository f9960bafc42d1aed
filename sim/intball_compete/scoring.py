"""Scoring rules ``score-v1`` (``kibo-targets-v1``) and ``score-v2`` (``kibo-targets-v2``).

Terms (points; the scorer uses ground truth, the behavior never sees it):

- ``targets``: +20 per target whose last report equals its payload (QR text, ArUco id, compared as
  text); -5 per wrong report;
- ``pointing``: per target, the best aim within 2.5 m: 10 x max(0, 1 - angle / 3 deg), angle
  between the main camera axis and the true code centre;
- ``time``: 10 x (correct targets / targets) x (time left / time limit), when the behavior
  finished (or returned) before the limit;
- ``collisions``: -5 per contact episode with a wall, the dock or a solid zone;
- ``keep_out``: -10 per entry of the robot (sphere) into a keep-out zone;
- ``energy``: -0.05 per N s of commanded fan impulse (integral of the summed fan thrust);
- ``snapshots`` (score-v2 only): per target, the best snapshot taken of it:
  5 x in_frame x clear x f(range, 1.5, 2.5 m) x f(off_axis, 5, 20 deg) x f(incidence, 30, 60 deg),
  with f(x, full, zero) = clip((zero - x) / (zero - full), 0, 1). The geometry is measured by the
  simulator from the TRUE pose at the moment of the snapshot (:meth:`MissionSession._snapshot`):
  in_frame = the four corners of the code project inside the main image (in front of the camera);
  clear = no module surface (rack, hatch, recess, dock, solid zone) on the line from the camera to
  the code; range = camera to code centre (m); off_axis = angle between the optical axis and the
  code centre (deg); incidence = angle between the code's normal and the direction to the camera
  (deg). A snapshot of a wall, of another target, or of a target out of frame scores 0.

``total = max(0, sum of terms)``; a run whose status is not ``ok`` (crashed, timeout, violation,
memory, output_limit, protocol, error) scores 0 whatever its terms. Maximum: score-v1 5 x 20 +
5 x 10 + 10 = 160; score-v2 160 + 5 x 5 = 185. A change to any number here is a new rule id and a
new mission id; a rule id never changes meaning.
"""

from __future__ import annotations

from typing import Any

from intball_compete.missions import Scenario

TARGET_POINTS = 20.0
WRONG_REPORT = -5.0
POINTING_POINTS = 10.0
POINTING_ZERO_DEG = 3.0
TIME_POINTS = 10.0
COLLISION = -5.0
KEEP_OUT = -10.0
ENERGY_PER_NS = -0.05
SNAPSHOT_POINTS = 5.0
SNAPSHOT_RANGE_M = (1.5, 2.5)
"""Full points up to the first range, none from the second (m, camera to code centre)."""
SNAPSHOT_OFF_AXIS_DEG = (5.0, 20.0)
SNAPSHOT_INCIDENCE_DEG = (30.0, 60.0)
TERMS_V1 = ("targets", "pointing", "time", "collisions", "keep_out", "energy")
RULES = {"score-v1": TERMS_V1, "score-v2": (*TERMS_V1, "snapshots")}
"""Rule id -> its terms, in report order."""
RULE = "score-v2"
"""The current rule (what ``kibo-targets-v2``, the default mission, uses)."""


def _count(measures: dict[str, Any], key: str) -> int:
    """Number of ``key`` events (collision episodes, keep-out entries): the ``<key>_count`` total
    when the run listed only the first ``MAX_LISTED_EVENTS`` of them, else the list's length
    (results written before the cap)."""
    total = measures.get(f"{key}_count")
    return int(total) if total is not None else len(measures.get(key, []))


def _ramp(x: float, full: float, zero: float) -> float:
    """1 up to ``full``, 0 from ``zero``, linear between."""
    return min(1.0, max(0.0, (zero - x) / (zero - full)))


def snapshot_quality(snap: dict[str, Any]) -> float:
    """Quality in [0, 1] of one snapshot record (``MissionSession`` measures; see module doc)."""
    if not snap.get("in_frame") or not snap.get("clear"):
        return 0.0
    return (
        _ramp(snap["range_m"], *SNAPSHOT_RANGE_M)
        * _ramp(snap["off_axis_deg"], *SNAPSHOT_OFF_AXIS_DEG)
        * _ramp(snap["incidence_deg"], *SNAPSHOT_INCIDENCE_DEG)
    )


def score(scenario: Scenario, measures: dict[str, Any], status: str) -> dict[str, Any]:
    """Per-term scores, the total, and per-target details, from the session's measures, under the
    scenario's rule (``scenario.scoring``)."""
    rule = scenario.scoring
    if rule not in RULES:
        raise ValueError(f"scenario {scenario.mission} uses rule {rule!r}; known: {', '.join(RULES)}")
    with_snapshots = "snapshots" in RULES[rule]
    reports = measures.get("reports", {})
    aims = measures.get("aims", {})
    best_snap: dict[int, tuple[float, dict[str, Any]]] = {}
    for snap in measures.get("snapshots", []) if with_snapshots else []:
        q = snapshot_quality(snap)
        tid = int(snap["target_id"])
        if tid not in best_snap or q > best_snap[tid][0]:
            best_snap[tid] = (q, snap)
    per_target = []
    correct = wrong = 0
    pointing = snapshots = 0.0
    for t in scenario.targets:
        reported = reports.get(str(t.id))
        ok = reported is not None and str(reported) == str(t.payload)
        correct += ok
        wrong += reported is not None and not ok
        aim = aims.get(str(t.id))
        pts = 0.0 if aim is None else POINTING_POINTS * max(0.0, 1.0 - aim["angle_deg"] / POINTING_ZERO_DEG)
        pointing += pts
        detail = {
            "id": t.id,
            "area": t.bay,
            "kind": t.kind,
            "reported": reported,
            "correct": ok,
            "aim_angle_deg": None if aim is None else aim["angle_deg"],
            "pointing_points": round(pts, 4),
        }
        if with_snapshots:
            q, snap = best_snap.get(t.id, (0.0, None))
            snapshots += SNAPSHOT_POINTS * q
            detail["snapshot_points"] = round(SNAPSHOT_POINTS * q, 4)
            detail["snapshot"] = snap
        per_target.append(detail)
    n = len(scenario.targets)
    left = max(0.0, measures["time_limit_s"] - measures["mission_time_s"])
    finished = measures.get("end_reason") in ("finished", "behavior ended")
    time_pts = TIME_POINTS * (correct / n) * (left / measures["time_limit_s"]) if finished else 0.0
    terms = {
        "targets": TARGET_POINTS * correct + WRONG_REPORT * wrong,
        "pointing": pointing,
        "time": time_pts,
        "collisions": COLLISION * _count(measures, "collisions"),
        "keep_out": KEEP_OUT * _count(measures, "keepout_events"),
        "energy": ENERGY_PER_NS * float(measures.get("energy_ns", 0.0)),
    }
    if with_snapshots:
        terms["snapshots"] = snapshots
    terms = {k: round(v, 4) + 0.0 for k, v in terms.items()}  # + 0.0: no "-0.0" in the output
    total = max(0.0, sum(terms.values())) if status == "ok" else 0.0
    return {
        "rule": rule,
        "terms": terms,
        "total": round(total, 4),
        "targets_correct": correct,
        "targets_total": n,
        "per_target": per_target,
    }
