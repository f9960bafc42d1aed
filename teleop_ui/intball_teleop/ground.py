"""Ground end of the link: the console back end's view of the robot.

``GroundStation`` owns the :class:`~intball_teleop.link.protocol.CommandQueue` (sign, send,
re-send after LOS, track acks), decodes the downlink (acks, telemetry, camera frames),
predicts where the robot is now, raises alerts that stay until acknowledged, and pushes
every change as an event (a JSON-ready dict) to its listeners (the WebSocket clients).
No web framework here: ``server/app.py`` maps HTTP and WebSocket onto these methods.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import commands as C
from .files import FILE_MAGIC, FileReceiver, InFile
from .link.protocol import AckState, CommandQueue, CommandRecord, ProtocolError, QueueConfig
from .link.runtime import LinkEmulator, LinkEnd, detach, run_every
from .onboard import CAMERA_MAGIC, decode_camera_frame

log = logging.getLogger(__name__)

JOG_TTL_S = 2.0  # a jog that has not reached the robot 2 s after issue is dropped onboard
PREDICT_HORIZON_S = 3.0  # extrapolate the last estimate at most this far
FILE_STALL_S = 3.0  # a file with no chunk for this long (+ 2 RTT) gets a resend request
FILE_USER = "ground (file downlink)"  # who sends the automatic file_resend commands


@dataclass
class Alert:
    id: int
    kind: str
    message: str
    raised: float
    active: bool = True
    acknowledged_by: str | None = None
    acknowledged_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "message": self.message,
            "raised": self.raised,
            "active": self.active,
            "acknowledged_by": self.acknowledged_by,
            "acknowledged_at": self.acknowledged_at,
        }


@dataclass(frozen=True)
class GroundConfig:
    poll_s: float = 0.05
    telemetry_timeout_s: float = 5.0
    battery_low_percent: float = 20.0
    queue: QueueConfig = field(default_factory=QueueConfig)


class GroundStation:
    """Runs in the server's event loop; ``start()`` subscribes to the link end."""

    def __init__(
        self,
        link: LinkEmulator,
        station: str,
        key: bytes,
        workspace: C.Workspace,
        config: GroundConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.link = link
        self.end: LinkEnd = link.ground
        self.workspace = workspace  # with the robot's keep-out zones once telemetry reports them
        self._base_workspace = workspace
        self._zones_seen: list | None = None
        self.config = config or GroundConfig()
        self.clock = clock
        # seq continues across restarts: derived from the clock in ms (docs/link.md, Restart)
        self.queue = CommandQueue(
            station, key, self.config.queue, first_seq=int(clock() * 1000), on_change=self._on_change
        )
        self.meta: dict[str, dict[str, Any]] = {}  # command id -> user, label
        self.telemetry: dict[str, Any] | None = None
        self.telemetry_received: float | None = None
        self.frames: dict[str, tuple[dict, bytes, float]] = {}
        self.frame_seq = 0
        self.files = FileReceiver()
        self._file_resends: dict[str, str] = {}  # file id -> its pending file_resend command id
        self.alerts: OrderedDict[int, Alert] = OrderedDict()
        self._alert_ids = itertools.count(1)
        self.listeners: set[Callable[[dict[str, Any]], None]] = set()
        self._tasks: list[asyncio.Task] = []
        self.started = clock()
        self._last_ping_rtt: float | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self.end.on_receive(self._on_downlink)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(run_every(self.config.poll_s, self.pump, "ground station")),
            loop.create_task(run_every(0.5, self._check_alerts, "ground station")),
            loop.create_task(run_every(1.0, self._emit_link_state, "ground station")),
            loop.create_task(run_every(1.0, self._check_files, "ground station")),
        ]

    async def stop(self) -> None:
        await detach(self.end, self._tasks)

    def _emit_link_state(self) -> None:
        self._emit({"type": "link", "link": self.link_state()})

    # -- operator API ---------------------------------------------------------------------

    def submit(self, kind: str, payload: dict[str, Any], user: str) -> CommandRecord:
        """Validate and queue a command. Raises CommandError naming the problem."""
        payload = C.validate(kind, payload, self.workspace)
        now = self.clock()
        ttl = JOG_TTL_S if kind == C.JOG else None
        if kind == C.RESUME and self.queue.held:
            # Motion queued during an emergency stop never flies by itself after the resume:
            # the operator re-sends what is still wanted.
            self.queue.cancel_pending(now)
            self.queue.resume()
        try:
            if kind == C.EMERGENCY_STOP:
                command_id = self.queue.emergency_stop(now)
            else:
                command_id = self.queue.submit(kind, payload, now, ttl_s=ttl)
        except ProtocolError as exc:
            raise C.CommandError(exc.reason) from None
        self.meta[command_id] = {"user": user, "label": str(payload.get("label", ""))}
        self.pump()
        record = self.queue.records[command_id]
        self._emit({"type": "command", "command": self.record_dict(record)})
        return record

    def cancel_pending(self) -> list[str]:
        return self.queue.cancel_pending(self.clock())

    def acknowledge_alert(self, alert_id: int, user: str) -> Alert:
        alert = self.alerts.get(alert_id)
        if alert is None:
            raise KeyError(alert_id)
        if alert.acknowledged_by is None:
            alert.acknowledged_by, alert.acknowledged_at = user, self.clock()
            self._emit_alerts()
        return alert

    # -- state ----------------------------------------------------------------------------

    def link_state(self) -> dict[str, Any]:
        s = self.link.status()
        up, down = self.link.uplink.stats, self.link.downlink.stats
        return {
            "profile": self.link.profile.name,
            "aos": s.aos,
            "time_to_next_los_s": _finite(s.time_to_next_los_s),
            "time_to_aos_s": _finite(s.time_to_aos_s),
            "rtt_s": s.rtt_s,
            "rtt_mean_s": s.rtt_mean_s,
            "uplink_loss": s.uplink_loss,
            "downlink_loss": s.downlink_loss,
            "since_downlink_s": _finite(s.since_downlink_s),
            "one_way_delay_s": {
                "uplink": self.link.profile.uplink.delay_s,
                "downlink": self.link.profile.downlink.delay_s,
            },
            "packets": {"uplink_sent": up.sent, "downlink_sent": down.sent},
            "held": self.queue.held,
            "rto_s": self.queue.rto_s,
        }

    def telemetry_age(self) -> float | None:
        return None if self.telemetry_received is None else self.clock() - self.telemetry_received

    def predicted(self) -> dict[str, Any] | None:
        """Where the robot is now, by the ground's best guess: the last estimate moved on by
        its velocity for the telemetry's age (<= PREDICT_HORIZON_S), plus the jogs in flight."""
        est = (self.telemetry or {}).get("estimate")
        if not est:
            return None
        age = max(0.0, min(PREDICT_HORIZON_S, self.clock() - self.telemetry["at_ms"] / 1000.0))
        p = np.asarray(est["pose"]["position"], float) + age * np.asarray(est["velocity"], float)
        jogs = 0
        for record in self.queue.pending():
            if record.command.kind == C.JOG:
                p = p + np.asarray(record.command.payload.get("delta", [0, 0, 0]), float)
                jogs += 1
        m = self.workspace.module
        p = np.clip(p, m.clear_min + self.workspace.radius, m.clear_max - self.workspace.radius)
        return {"position": p.tolist(), "quat": est["pose"]["quat"], "age_s": age, "jogs_in_flight": jogs}

    def record_dict(self, record: CommandRecord) -> dict[str, Any]:
        c = record.command
        meta = self.meta.get(c.id, {})
        return {
            "id": c.id,
            "seq": c.seq,
            "kind": c.kind,
            "payload": dict(c.payload),
            "state": record.state.value,
            "reason": record.reason,
            "user": meta.get("user"),
            "issued": c.issued,
            "expires": c.expires,
            "sends": record.sends,
            "history": [{"t": t, "state": s.value, "reason": r} for t, s, r in record.history],
        }

    def commands(self, limit: int = 200) -> list[dict[str, Any]]:
        records = list(self.queue.records.values())[-limit:]
        return [self.record_dict(r) for r in records]

    def snapshot(self) -> dict[str, Any]:
        return {
            "telemetry": self.telemetry,
            "telemetry_age_s": self.telemetry_age(),
            "predicted": self.predicted(),
            "link": self.link_state(),
            "commands": self.commands(),
            "alerts": [a.as_dict() for a in self.alerts.values()],
            "cameras": {
                name: {"seq": h["seq"], "stamp": h.get("stamp")} for name, (h, _, _) in self.frames.items()
            },
            "files": [f.summary() for f in self.files.files.values()],
        }

    # -- link I/O -------------------------------------------------------------------------

    def pump(self) -> None:
        """Send what the queue wants to send now (called on a timer, after submit and acks)."""
        now = self.clock()
        rtt = self.link.status().rtt_s
        if rtt is not None and rtt != self._last_ping_rtt:  # link pings calibrate the re-send timeout
            self._last_ping_rtt = rtt
            self.queue.observe_rtt(rtt)
        for data in self.queue.poll(now, link_up=not self.link.uplink.in_los(self.link.now())):
            self.end.send_nowait(data)

    def _on_downlink(self, data: bytes) -> None:
        now = self.clock()
        if data.startswith(FILE_MAGIC):
            f = self.files.on_chunk(data, now)
            if f is not None and (
                f.state == "complete" or len(f.chunks) in (1, f.n) or len(f.chunks) % 8 == 0
            ):
                self._emit_file(f)
            return
        if data.startswith(CAMERA_MAGIC):
            try:
                header, jpeg = decode_camera_frame(data)
            except ValueError:
                return
            self.frame_seq += 1
            header["seq"] = self.frame_seq
            camera = str(header.get("camera", "main"))
            self.frames[camera] = (header, jpeg, now)
            self._emit(
                {"type": "camera", "camera": camera, "seq": self.frame_seq, "stamp": header.get("stamp")}
            )
            return
        try:
            obj = json.loads(data)
        except ValueError:
            return
        if not isinstance(obj, dict):
            return
        if obj.get("t") == "ack":
            if self.queue.receive(data, now) is not None:
                self.pump()  # the window may have opened for the next command
        elif obj.get("t") == "tm":
            self.telemetry, self.telemetry_received = obj, now
            self._update_zones(obj.get("keep_out"))
            if isinstance(obj.get("files"), list):
                for f in self.files.announced(obj["files"], now):
                    self._emit_file(f)
            self._emit(
                {"type": "telemetry", "telemetry": obj, "predicted": self.predicted(), "received": now}
            )

    def _emit_file(self, f: InFile) -> None:
        self._emit({"type": "file", "file": f.summary()})

    def _check_files(self) -> None:
        """Ask the robot for the chunks of stalled files (one resend request in flight per file)."""
        now = self.clock()
        rtt = self.link.status().rtt_s or 0.0
        for f in self.files.stalled(now, FILE_STALL_S + 2.0 * rtt):
            if f.state == "failed":
                self._emit_file(f)
                continue
            pending = self._file_resends.get(f.id)
            if (
                pending is not None
                and pending in self.queue.records
                and not self.queue.records[pending].state.final
            ):
                continue
            if self.queue.held:
                continue  # emergency stop: nothing but the stop goes up
            try:
                record = self.submit(
                    C.FILE_RESEND, {"id": f.id, "chunks": f.missing()[: C.MAX_RESEND_CHUNKS]}, FILE_USER
                )
            except C.CommandError as exc:
                log.warning("ground station: file %s: resend not sent: %s", f.id, exc)
                continue
            self._file_resends[f.id] = record.command.id
            f.resends += 1
            f.last_progress = now
            f.reason = f"{len(f.missing())} of {f.n} chunks missing: resend {f.resends} requested"
            self._emit_file(f)
        for fid, cid in list(self._file_resends.items()):
            f, record = self.files.files.get(fid), self.queue.records.get(cid)
            if (
                f is not None
                and f.state == "receiving"
                and record is not None
                and record.state is AckState.FAILED
            ):
                f.state, f.reason = "failed", record.reason  # e.g. no longer kept onboard
                self._emit_file(f)
            if f is None or f.state != "receiving" or record is None:
                del self._file_resends[fid]

    def _update_zones(self, zones: Any) -> None:
        """Ground checks (goals, routes, zone edits) use the zones the robot reports."""
        if not isinstance(zones, list) or zones == self._zones_seen:
            return
        try:
            self.workspace = self._base_workspace.with_zones(zones)
        except C.CommandError as exc:
            log.warning("ground station: keep-out zones in telemetry ignored: %s", exc)
        self._zones_seen = zones

    def _on_change(self, record: CommandRecord) -> None:
        if record.command.id in self.meta:  # submit() emits the first state itself
            self._emit({"type": "command", "command": self.record_dict(record)})

    # -- alerts ---------------------------------------------------------------------------

    def _conditions(self) -> dict[str, str]:
        """Alert kind -> message for every condition true now."""
        out: dict[str, str] = {}
        age = self.telemetry_age()
        since = self.clock() - self.started if age is None else age
        if since > self.config.telemetry_timeout_s:
            out["no_telemetry"] = f"no telemetry for {since:.0f} s"
        tm = self.telemetry or {}
        est = tm.get("estimate") or {}
        battery = (est.get("battery") or {}).get("percent")
        if battery is not None and battery < self.config.battery_low_percent:
            out["battery_low"] = f"battery low: {battery:.0f} %"
        level = (est.get("localization") or {}).get("level")
        if level in ("degraded", "lost"):
            reason = (est.get("localization") or {}).get("reason", "")
            out[f"localization_{level}"] = f"localization {level}" + (f": {reason}" if reason else "")
        for fault in est.get("faults") or []:
            out[f"fault:{fault}"] = f"fault: {fault}"
        if tm.get("supervisor") in ("station_keep", "return_to_dock"):
            out[f"supervisor_{tm['supervisor']}"] = (
                f"robot {tm['supervisor'].replace('_', ' ')} (no ground contact)"
            )
        if tm.get("estop"):
            out["emergency_stop"] = "emergency stop active onboard"
        return out

    def _check_alerts(self) -> None:
        conditions = self._conditions()
        changed = False
        live = {a.kind: a for a in self.alerts.values() if a.active}
        for kind, alert in live.items():
            if kind not in conditions:
                alert.active = False
                changed = True
        for kind, message in conditions.items():
            alert = live.get(kind)
            if alert is None:
                aid = next(self._alert_ids)
                self.alerts[aid] = Alert(aid, kind, message, self.clock())
                changed = True
            elif alert.message != message and kind != "no_telemetry":
                alert.message = message
                changed = True
        # keep every unacknowledged alert; drop old acknowledged, inactive ones
        done = [a.id for a in self.alerts.values() if a.acknowledged_by and not a.active]
        for aid in done[:-50]:
            del self.alerts[aid]
        if changed:
            self._emit_alerts()

    def _emit_alerts(self) -> None:
        self._emit({"type": "alerts", "alerts": [a.as_dict() for a in self.alerts.values()]})

    def _emit(self, event: dict[str, Any]) -> None:
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:
                log.exception("ground station: listener failed")


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None
