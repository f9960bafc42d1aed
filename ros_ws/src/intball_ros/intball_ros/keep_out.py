"""Keep-out zones of the navigation node: the planning map and the goal-validation boxes, together.

Fixed zones come from ``kibo.yaml`` (its keep-out boxes and the dock body); run-time zones are
added and removed through services. ``Zones`` is immutable: ``add`` / ``remove`` return a new
one (the node swaps it in only when the change is valid) or raise ValueError with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from intball_nav.planning import PlanningMap
from intball_nav.safety import Box

DOCK_ZONE = "dock"  # the dock body's box in the planning map (docking flies into it: not a goal check)


@dataclass(frozen=True)
class Zones:
    """pmap : every zone (planning, grown by radius + margin); fixed : names that cannot change;
    version : incremented on every change (flights re-check their path when it moves)."""

    pmap: PlanningMap
    fixed: frozenset[str]
    version: int = 0

    @staticmethod
    def from_module(module, radius: float) -> Zones:
        pmap = PlanningMap.from_module(module, radius)
        return Zones(pmap, frozenset(pmap.zone_names))

    @property
    def goal_boxes(self) -> tuple[Box, ...]:
        """Boxes a goal must stay out of (grown by the radius at the check): all but the dock."""
        return tuple(z for z in self.pmap.keep_out if z.name != DOCK_ZONE)

    def add(self, box: Box, robot_position: np.ndarray | None) -> Zones:
        """Add or replace run-time zone ``box``; robot_position : (3,) m kibo (estimate) or None."""
        if box.name in self.fixed:
            raise ValueError(f"zone {box.name!r} is fixed (module definition)")
        c = self.pmap.clearance
        if robot_position is not None and box.grown(c).contains(robot_position):
            where = np.round(np.asarray(robot_position), 2).tolist()
            raise ValueError(
                f"the robot (estimated at {where} m) is within {c:.2f} m of zone {box.name!r}: "
                "move it away first"
            )
        pmap = self.pmap.without_keep_out(box.name) if box.name in self.pmap.zone_names else self.pmap
        return replace(self, pmap=pmap.with_keep_out(box), version=self.version + 1)

    def remove(self, name: str) -> Zones:
        if name in self.fixed:
            raise ValueError(f"zone {name!r} is fixed (module definition): not removable")
        try:
            pmap = self.pmap.without_keep_out(name)
        except KeyError as exc:
            raise ValueError(str(exc.args[0])) from None
        return replace(self, pmap=pmap, version=self.version + 1)
