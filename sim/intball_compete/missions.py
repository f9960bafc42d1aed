"""Versioned competition scenarios: ``kibo-targets-v1`` and ``kibo-targets-v2``.

A scenario id never changes meaning (STYLE.md rule 9): a new layout, time limit or scoring rule
gets a new id. ``make_scenario(id, seed)`` is a pure function of its arguments: every random draw
comes from ``numpy.random.default_rng([seed, salt])``.

kibo-targets-v1
    5 target panels (3 QR codes with random text, 2 ArUco markers with random ids 200-249) on 5
    distinct wall / overhead / deck bays (columns 2-8, not the dock's overhead_1-2), at a random
    offset within the bay, not covering a map marker; 2 mission keep-out boxes (0.3-0.5 m,
    virtual: no collider) in the cabin between x 2.5 and 8 m, plus the module's own zones; start at
    (1.5, 0, 0) facing +x (the rear nav cameras then see the entrance-end markers: a visual fix
    at once in vision mode); 300 s of sim time; scoring rule ``score-v1`` (:mod:`scoring`).
kibo-targets-v2
    The same layouts as v1 for every seed (same generator and salt), scored with ``score-v2``:
    score-v1 plus the ``snapshots`` term (a snapshot of a target scores by how well the main
    camera saw it). The default mission since score-v2.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from intball_nav.frames import Pose
from intball_nav.module import ModuleGeometry
from intball_nav.module import load_marker_map as _load_marker_map
from intball_nav.module import load_module as _load_module
from intball_nav.safety import Box


@dataclass(frozen=True)
class MissionDef:
    """What a mission id stands for. salt : mixed into the seed of every draw (same salt = same
    layouts); scoring : rule id in :mod:`intball_compete.scoring`; time_limit_s : s of sim time."""

    id: str
    salt: int
    scoring: str
    time_limit_s: float = 300.0


MISSIONS = {
    m.id: m
    for m in (
        MissionDef("kibo-targets-v1", 0x4B1B0, "score-v1"),
        MissionDef("kibo-targets-v2", 0x4B1B0, "score-v2"),
    )
}
MISSION_IDS = tuple(MISSIONS)
DEFAULT_MISSION = "kibo-targets-v2"
"""What ``intball compete run`` and an upload without a mission field use."""
_QR_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


load_marker_map = functools.cache(_load_marker_map)
load_module = functools.cache(_load_module)
"""Parsed once per process: the scenario generator and the sessions share them (read-only)."""


class UnknownMission(KeyError):
    """A mission id that does not exist; ``str()`` lists the known ones."""

    def __str__(self) -> str:
        return f"unknown mission {self.args[0]!r}; known: {', '.join(MISSION_IDS)}"


@dataclass(frozen=True)
class TargetDef:
    """One target of a scenario (exact truth: for the simulator and the scorer only).

    id : target number 1..N (what the behavior reports against); kind : qr | aruco;
    payload : QR text or ArUco id; bay : bay name; offset : (2,) m in the face plane;
    size : m, side of the code
    """

    id: int
    kind: str
    payload: str | int
    bay: str
    offset: tuple[float, float]
    size: float


@dataclass(frozen=True)
class Scenario:
    """A generated mission instance. time_limit_s : s of sim time from ``start_mission``."""

    mission: str
    seed: int
    targets: tuple[TargetDef, ...]
    keep_out: tuple[Box, ...]
    start: Pose
    time_limit_s: float
    scoring: str
    module: ModuleGeometry = field(repr=False, compare=False)

    def target(self, target_id: int) -> TargetDef:
        for t in self.targets:
            if t.id == target_id:
                return t
        raise KeyError(target_id)


def _candidate_bays(module: ModuleGeometry) -> list[str]:
    names = []
    for bay in module.bays:
        column = int(bay.name.rsplit("_", 1)[1])
        if 2 <= column <= 8 and not (bay.face == "overhead" and column <= 2):
            names.append(bay.name)
    return names


def _panel_side(kind: str, size: float) -> float:
    """Printed panel side (m) incl. the quiet zone, as ``intball_sim.targets.panel_image``: QR
    version 1 (21 modules + 2 x 4), ArUco 4x4 (6 cells + 2)."""
    return size * 29.0 / 21.0 if kind == "qr" else size * 8.0 / 6.0


def make_scenario(mission: str, seed: int, module: ModuleGeometry | None = None) -> Scenario:
    """The scenario of ``mission`` for ``seed`` (deterministic). Raises UnknownMission."""
    if mission not in MISSION_IDS:
        raise UnknownMission(mission)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= int(seed) < 2**31:
        raise ValueError(f"seed must be an integer in [0, 2^31), got {seed!r}")
    seed = int(seed)
    module = module if module is not None else load_module()
    definition = MISSIONS[mission]
    rng = np.random.default_rng([seed, definition.salt])
    markers = load_marker_map()
    bays = _candidate_bays(module)
    chosen = [bays[i] for i in rng.choice(len(bays), size=5, replace=False)]
    kinds = ["qr", "qr", "qr", "aruco", "aruco"]
    rng.shuffle(kinds)
    aruco_ids = [int(v) for v in rng.choice(np.arange(200, 250), size=2, replace=False)]
    targets = []
    for i, (bay_name, kind) in enumerate(zip(chosen, kinds, strict=True)):
        bay = module.bay(bay_name)
        size = 0.16 if kind == "qr" else 0.12
        if kind == "qr":
            payload: str | int = "KIBO-" + "".join(rng.choice(list(_QR_ALPHABET), size=4))
        else:
            payload = aruco_ids.pop()
        half = 0.5 * _panel_side(kind, size)
        limit = 0.5 * np.asarray(bay.size) - half - 0.05
        R = _face_axes(bay)
        for _ in range(200):  # offsets that keep the panel clear of the map markers
            off = rng.uniform(-1.0, 1.0, size=2) * np.minimum(limit, [0.35, 0.6])
            centre = bay.centre + off[0] * R[:, 0] + off[1] * R[:, 1]
            if all(
                np.linalg.norm(centre - m.pose.position) >= (2 * half + m.size * 8.0 / 6.0) / np.sqrt(2.0)
                for m in markers.markers
            ):
                break
        else:  # pragma: no cover - the bays have room; kept so a layout change fails loudly
            raise RuntimeError(f"{mission} seed {seed}: no free spot for a target on {bay_name}")
        targets.append(TargetDef(i + 1, kind, payload, bay_name, (float(off[0]), float(off[1])), size))
    zones = [Box(np.asarray(b.min), np.asarray(b.max), b.name) for b in module.keep_out]
    for k in range(2):
        half_box = rng.uniform(0.15, 0.25, size=3)
        centre = np.array([rng.uniform(2.5 + 2.75 * k, 5.25 + 2.75 * k), *rng.uniform(-0.45, 0.45, size=2)])
        zones.append(Box(centre - half_box, centre + half_box, f"zone_{k + 1}"))
    return Scenario(
        mission=mission,
        seed=seed,
        targets=tuple(targets),
        keep_out=tuple(zones),
        start=Pose(np.array([1.5, 0.0, 0.0]), np.array([0.0, 0.0, 0.0, 1.0])),
        time_limit_s=definition.time_limit_s,
        scoring=definition.scoring,
        module=module,
    )


def _face_axes(bay: object) -> np.ndarray:
    from intball_nav.frames import rotmat_from_quat  # noqa: PLC0415

    return rotmat_from_quat(bay.pose.quat)  # type: ignore[attr-defined]
