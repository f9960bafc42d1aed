"""The services and parameters of the navigation node: stop / emergency_stop / station_keep /
reset (``std_srvs/Trigger``, answered by ``handle_request`` at once), the run-time keep-out zones
(add / remove, re-published latched), and the ``battery_level`` parameter.
"""

from __future__ import annotations

import math
from dataclasses import replace

from intball_interfaces.srv import AddKeepOut, RemoveKeepOut
from rcl_interfaces.msg import SetParametersResult
from std_srvs.srv import Trigger

from intball_nav.autonomy import supervisor as sup
from intball_nav.autonomy.battery import BatteryState as CoreBattery
from intball_nav.autonomy.modes import Event
from intball_ros import convert, names
from intball_ros.keep_out import Zones


class NavServices:
    """Mixin of NavNode (needs request, _lock, _auto, _estimate, _zones, _ctx, _zones_pub, _now)."""

    def _on_set_parameters(self, params: list) -> SetParametersResult:
        for p in params:
            if p.name == names.P_BATTERY_LEVEL:
                level = float(p.value)
                if not (math.isfinite(level) and 0.0 <= level <= 1.0):
                    return SetParametersResult(successful=False, reason="battery_level must be in [0, 1]")
                with self._lock:
                    self._auto = replace(self._auto, battery=CoreBattery(level))
        return SetParametersResult(successful=True)

    def _on_trigger(self, event: Event, res: Trigger.Response) -> Trigger.Response:
        tr = self.request(sup.Request(event))
        res.success, res.message = tr.accepted, tr.reason
        return res

    def _on_add_zone(self, req: AddKeepOut.Request, res: AddKeepOut.Response) -> AddKeepOut.Response:
        try:
            box = convert.box_from_keep_out(req)
            with self._lock:
                est = self._estimate
                self._set_zones(self._zones.add(box, est.position if est is not None else None))
        except ValueError as exc:
            res.success, res.reason = False, f"keep-out zone rejected: {exc}"
            return res
        res.success, res.reason = True, f"keep-out zone {box.name} added"
        self.get_logger().info(f"{res.reason}: {box.min.tolist()} .. {box.max.tolist()} m")
        return res

    def _on_remove_zone(self, req: RemoveKeepOut.Request, res: RemoveKeepOut.Response):
        try:
            with self._lock:
                self._set_zones(self._zones.remove(str(req.name)))
        except ValueError as exc:
            res.success, res.reason = False, str(exc)
            return res
        res.success, res.reason = True, f"keep-out zone {req.name} removed"
        self.get_logger().info(res.reason)
        return res

    def _set_zones(self, zones: Zones) -> None:
        self._zones = zones
        self._ctx = replace(self._ctx, keep_out=zones.goal_boxes)
        self._zones_pub.publish(convert.keep_out_zones_msg(zones.pmap.keep_out, zones.fixed, self._now()))
