"""Authenticated command protocol that survives a delayed, lossy, intermittent link.

Sans-IO: nothing here sends, sleeps or reads a clock. The ground side
(:class:`CommandQueue`) turns operator commands into signed wire messages and decides
when to (re)send them; the onboard side (:class:`CommandGate`) verifies, filters and
acknowledges them. Both take ``now`` (seconds on a clock shared by ground and robot, e.g.
UNIX/GMT time; wire times are integer milliseconds) and bytes in, and return bytes out.

Wire messages are UTF-8 JSON objects (``"t"`` is the type):

- ``cmd`` (up): station, id (uuid4), seq, issued_ms, expires_ms, kind, payload, mac
- ``hb``  (up): station, at_ms, mac  -- authenticated heartbeat (valid ground contact)
- ``ack`` (down): station, id, seq, state, reason, at_ms, mac (null when the command
  could not be authenticated: such acks are advisory and the ground ignores them)

``mac`` = HMAC-SHA256(station key, domain tag + canonical JSON of the covered fields);
canonical JSON = sorted keys, no whitespace, ASCII, no NaN/Infinity.

Command states: queued -> sent (ground) -> received -> executing -> completed | failed
(onboard); rejected and expired can end a command at any point before ``received``;
``cancelled`` is ground-only (never sent). See docs/link.md for the diagram.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import math
import re
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

PROTOCOL_VERSION = 1
EMERGENCY_STOP = "emergency_stop"

_CMD_TAG = b"intball-cmd-v1\n"
_ACK_TAG = b"intball-ack-v1\n"
_HB_TAG = b"intball-hb-v1\n"

_KIND_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
_STATION_RE = re.compile(r"[A-Za-z0-9_.\-]{1,32}")
_MAC_RE = re.compile(r"[0-9a-f]{64}")
_MAX_INT = 2**53 - 1  # exactly representable in JSON consumers that use doubles
_MAX_REASON = 200


class AckState(enum.Enum):
    """Life cycle of a command (ground view). Values are the wire strings."""

    QUEUED = "queued"
    SENT = "sent"
    RECEIVED = "received"
    EXECUTING = "executing"
    COMPLETED = "completed"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in _FINAL

    @property
    def rank(self) -> int:
        return _RANK[self]


_FINAL = frozenset(
    {AckState.COMPLETED, AckState.FAILED, AckState.REJECTED, AckState.EXPIRED, AckState.CANCELLED}
)
_RANK = {
    AckState.QUEUED: 0,
    AckState.SENT: 1,
    AckState.RECEIVED: 2,
    AckState.EXECUTING: 3,
    **dict.fromkeys(_FINAL, 4),
}
_ONBOARD_STATES = frozenset(AckState) - {AckState.QUEUED, AckState.SENT, AckState.CANCELLED}


class ProtocolError(ValueError):
    """A message is malformed, too large or fails a check; ``reason`` says why."""

    def __init__(self, reason: str, command_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.command_id = command_id


@dataclass(frozen=True)
class Command:
    """A command envelope. Times in seconds on the shared clock (ms resolution on the wire)."""

    station: str
    id: str
    seq: int
    issued: float
    expires: float
    kind: str
    payload: Mapping[str, Any] = field(default_factory=dict)

    @property
    def priority(self) -> bool:
        return self.kind == EMERGENCY_STOP


@dataclass(frozen=True)
class Ack:
    """An acknowledgement as decoded on the ground. ``authenticated`` is False for unsigned acks."""

    station: str | None
    id: str | None
    seq: int | None
    state: AckState
    reason: str
    at: float
    authenticated: bool


# ---------------------------------------------------------------------------------------
# Encoding


def canonical_json(value: Any) -> bytes:
    """Canonical JSON bytes: sorted keys, no whitespace, ASCII only, no NaN/Infinity."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode()


def _ms(t: float) -> int:
    return int(round(t * 1000.0))


def _mac(key: bytes, tag: bytes, fields: list) -> str:
    return hmac.new(key, tag + canonical_json(fields), hashlib.sha256).hexdigest()


def command_mac(key: bytes, command: Command) -> str:
    """HMAC-SHA256 over (station, id, seq, issued_ms, expires_ms, kind, canonical payload)."""
    fields = [
        command.station,
        command.id,
        command.seq,
        _ms(command.issued),
        _ms(command.expires),
        command.kind,
        command.payload,
    ]
    return _mac(key, _CMD_TAG, fields)


def encode_command(command: Command, key: bytes) -> bytes:
    """Signed wire bytes of a command."""
    return canonical_json(
        {
            "t": "cmd",
            "v": PROTOCOL_VERSION,
            "station": command.station,
            "id": command.id,
            "seq": command.seq,
            "issued_ms": _ms(command.issued),
            "expires_ms": _ms(command.expires),
            "kind": command.kind,
            "payload": command.payload,
            "mac": command_mac(key, command),
        }
    )


def encode_heartbeat(station: str, now: float, key: bytes) -> bytes:
    """Signed heartbeat: proves ground contact without carrying a command."""
    at_ms = _ms(now)
    mac = _mac(key, _HB_TAG, [station, at_ms])
    return canonical_json({"t": "hb", "v": PROTOCOL_VERSION, "station": station, "at_ms": at_ms, "mac": mac})


def encode_ack(
    station: str | None,
    command_id: str | None,
    seq: int | None,
    state: AckState,
    reason: str,
    now: float,
    key: bytes | None,
) -> bytes:
    """Ack wire bytes; signed with the station key when given (else ``mac`` is null)."""
    reason = reason[:_MAX_REASON]
    at_ms = _ms(now)
    mac = None
    if key is not None:
        mac = _mac(key, _ACK_TAG, [station, command_id, seq, state.value, reason, at_ms])
    return canonical_json(
        {
            "t": "ack",
            "v": PROTOCOL_VERSION,
            "station": station,
            "id": command_id,
            "seq": seq,
            "state": state.value,
            "reason": reason,
            "at_ms": at_ms,
            "mac": mac,
        }
    )


# ---------------------------------------------------------------------------------------
# Decoding (never raises anything but ProtocolError)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def parse_message(data: bytes, max_bytes: int) -> dict:
    """Parse a wire message into a dict with a string ``t``; ProtocolError if malformed."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ProtocolError(f"malformed: expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise ProtocolError(f"message too large: {len(data)} bytes > {max_bytes}")
    try:
        text = bytes(data).decode("utf-8")
        obj = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ProtocolError(f"malformed: not valid JSON ({_short(exc)})") from None
    if not isinstance(obj, dict):
        raise ProtocolError("malformed: expected a JSON object")
    t = obj.get("t")
    if t not in ("cmd", "ack", "hb"):
        raise ProtocolError(f"malformed: unknown message type {_short(t)}")
    version = obj.get("v")
    if type(version) is not int or version != PROTOCOL_VERSION:  # not bool: True == 1
        raise ProtocolError(f"unsupported protocol version {_short(version)} (expected {PROTOCOL_VERSION})")
    return obj


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, BaseException) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _keys(obj: dict, expected: tuple[str, ...], what: str, command_id: str | None = None) -> None:
    keys = set(obj)
    if keys != set(expected):
        missing = sorted(set(expected) - keys)
        extra = sorted(keys - set(expected))
        detail = ", ".join(
            part
            for part in (f"missing {missing}" if missing else "", f"unexpected {extra}" if extra else "")
            if part
        )
        raise ProtocolError(f"malformed {what}: {_short(detail)}", command_id)


def _int(obj: dict, key: str, command_id: str | None) -> int:
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_INT:
        raise ProtocolError(
            f"malformed: {key} must be an integer in 0 .. 2^53-1, got {_short(value)}", command_id
        )
    return value


def _str(obj: dict, key: str, pattern: re.Pattern, command_id: str | None) -> str:
    value = obj[key]
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ProtocolError(f"malformed: bad {key} {_short(value)}", command_id)
    return value


def _uuid(value: Any) -> str | None:
    if not isinstance(value, str) or len(value) != 36:
        return None
    try:
        return value if str(uuid.UUID(value)) == value else None
    except ValueError:
        return None


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of a JSON value, stopping early past ``limit``."""
    stack = [(value, 1)]
    deepest = 0
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


_CMD_KEYS = ("t", "v", "station", "id", "seq", "issued_ms", "expires_ms", "kind", "payload", "mac")
_ACK_KEYS = ("t", "v", "station", "id", "seq", "state", "reason", "at_ms", "mac")
_HB_KEYS = ("t", "v", "station", "at_ms", "mac")


def decode_command(obj: dict, max_payload_depth: int = 8) -> tuple[Command, str]:
    """Validate a parsed ``cmd`` message; returns the command and its claimed mac."""
    command_id = _uuid(obj.get("id"))
    _keys(obj, _CMD_KEYS, "command", command_id)
    if command_id is None:
        raise ProtocolError(f"malformed: id must be a lowercase uuid string, got {_short(obj['id'])}")
    station = _str(obj, "station", _STATION_RE, command_id)
    kind = _str(obj, "kind", _KIND_RE, command_id)
    mac = _str(obj, "mac", _MAC_RE, command_id)
    seq = _int(obj, "seq", command_id)
    issued_ms = _int(obj, "issued_ms", command_id)
    expires_ms = _int(obj, "expires_ms", command_id)
    payload = obj["payload"]
    if not isinstance(payload, dict):
        raise ProtocolError(
            f"malformed: payload must be a JSON object, got {type(payload).__name__}", command_id
        )
    if _depth(payload, max_payload_depth) > max_payload_depth:
        raise ProtocolError(f"malformed: payload nested deeper than {max_payload_depth}", command_id)
    command = Command(station, command_id, seq, issued_ms / 1000.0, expires_ms / 1000.0, kind, payload)
    return command, mac


def decode_ack(data: bytes, keys: Mapping[str, bytes], max_bytes: int = 4096) -> Ack:
    """Decode and verify an ack. Unsigned or badly signed acks come back with authenticated=False."""
    obj = parse_message(data, max_bytes)
    if obj["t"] != "ack":
        raise ProtocolError(f"expected an ack, got {obj['t']!r}")
    _keys(obj, _ACK_KEYS, "ack")
    try:
        state = AckState(obj["state"])
    except ValueError:
        raise ProtocolError(f"malformed ack: unknown state {_short(obj['state'])}") from None
    station, command_id, seq, reason, mac = obj["station"], obj["id"], obj["seq"], obj["reason"], obj["mac"]
    if station is not None and not (isinstance(station, str) and _STATION_RE.fullmatch(station)):
        raise ProtocolError(f"malformed ack: bad station {_short(station)}")
    if command_id is not None and _uuid(command_id) is None:
        raise ProtocolError(f"malformed ack: bad id {_short(command_id)}")
    if seq is not None:
        seq = _int(obj, "seq", command_id)
    if not isinstance(reason, str) or len(reason) > _MAX_REASON:
        raise ProtocolError("malformed ack: bad reason")
    at_ms = _int(obj, "at_ms", command_id)
    authenticated = False
    if mac is not None and not (isinstance(mac, str) and _MAC_RE.fullmatch(mac)):
        raise ProtocolError("malformed ack: bad mac")
    if mac is not None and station is not None and station in keys:
        expected = _mac(keys[station], _ACK_TAG, [station, command_id, seq, state.value, reason, at_ms])
        authenticated = hmac.compare_digest(expected, mac)
    return Ack(station, command_id, seq, state, reason, at_ms / 1000.0, authenticated)


# ---------------------------------------------------------------------------------------
# Onboard: CommandGate


class Outcome(enum.Enum):
    """What the gate did with one received message."""

    ACCEPTED = "accepted"  # new, authentic, fresh: the caller must execute receipt.command
    DUPLICATE = "duplicate"  # already seen: the cached current state is re-acknowledged
    REJECTED = "rejected"  # malformed, forged, replayed, stale, not allowed
    EXPIRED = "expired"  # authentic but past its expiry
    HEARTBEAT = "heartbeat"  # authentic heartbeat (contact refreshed)


@dataclass(frozen=True)
class Receipt:
    """Result of :meth:`CommandGate.receive`: replies go back to the ground (downlink)."""

    outcome: Outcome
    reason: str = ""
    command: Command | None = None
    replies: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class GateConfig:
    """Onboard acceptance rules (defaults documented in docs/link.md)."""

    max_message_bytes: int = 16384
    max_payload_depth: int = 8
    replay_window: int = 1024  # seq numbers below highest - window are stale
    max_cached: int = 2048  # command ids remembered with their latest ack
    max_clock_skew_s: float = 5.0  # accepted issue time in the future
    max_ttl_s: float = 3600.0  # longest allowed expires - issued

    def __post_init__(self) -> None:
        if self.max_cached < self.replay_window:
            raise ValueError("max_cached must be >= replay_window (every id in the window is remembered)")


@dataclass
class _Entry:
    station: str
    seq: int
    mac: str
    state: AckState
    reason: str
    reply: bytes


@dataclass
class _StationState:
    highest_seq: int = -1
    seen: set[int] = field(default_factory=set)
    last_heartbeat_ms: int = -1


class CommandGate:
    """Onboard command filter: authenticate, de-duplicate, reject stale/replayed/expired.

    keys: per-station HMAC keys (bytes, >= 16). Only these stations are accepted.
    control_station: if set, only this station may send non-priority commands; an
      emergency stop is accepted from any authenticated station.

    Every accepted command is returned exactly once (``Receipt.command``); the caller
    executes it and reports progress with :meth:`report`, which returns the ack to send.
    Memory is bounded by ``config.max_cached`` ids and ``replay_window`` seqs per station.
    """

    def __init__(
        self,
        keys: Mapping[str, bytes],
        config: GateConfig | None = None,
        control_station: str | None = None,
    ) -> None:
        for station, key in keys.items():
            if not _STATION_RE.fullmatch(station):
                raise ValueError(f"bad station id {station!r}")
            if not isinstance(key, bytes) or len(key) < 16:
                raise ValueError(f"key for station {station!r} must be at least 16 bytes")
        self.keys = dict(keys)
        self.config = config or GateConfig()
        self.control_station = control_station
        self.last_contact: float | None = None  # last authenticated message (s)
        self._stations = {station: _StationState() for station in self.keys}
        self._cache: OrderedDict[str, _Entry] = OrderedDict()

    def contact_age(self, now: float) -> float:
        """Seconds since the last authenticated ground message (inf if none yet)."""
        return math.inf if self.last_contact is None else max(0.0, now - self.last_contact)

    def receive(self, data: bytes, now: float) -> Receipt:
        """Handle one uplink message. Never raises for bad input: it returns a rejection."""
        try:
            obj = parse_message(data, self.config.max_message_bytes)
            if obj["t"] == "hb":
                return self._heartbeat(obj, now)
            if obj["t"] != "cmd":
                raise ProtocolError(f"unexpected message type {obj['t']!r} on the uplink")
            command, mac = decode_command(obj, self.config.max_payload_depth)
        except ProtocolError as exc:
            reply = encode_ack(None, exc.command_id, None, AckState.REJECTED, exc.reason, now, None)
            return Receipt(Outcome.REJECTED, exc.reason, None, (reply,))
        return self._command(command, mac, now)

    def report(self, command_id: str, state: AckState, now: float, reason: str = "") -> bytes:
        """Record progress of an accepted command (executing / completed / failed / expired).

        Returns the signed ack to send down. Raises ValueError for an unknown id or an
        illegal transition (a programming error onboard, not bad input from the ground).
        """
        entry = self._cache.get(command_id)
        if entry is None:
            raise ValueError(f"unknown or evicted command id {command_id}")
        allowed = {
            AckState.RECEIVED: {AckState.EXECUTING, AckState.COMPLETED, AckState.FAILED, AckState.EXPIRED},
            AckState.EXECUTING: {AckState.COMPLETED, AckState.FAILED},
        }.get(entry.state, set())
        if state not in allowed:
            raise ValueError(f"illegal transition {entry.state.value} -> {state.value} for {command_id}")
        return self._record(entry, command_id, state, reason, now)

    def state(self, command_id: str) -> AckState | None:
        """Latest state of a remembered command (None if unknown or evicted)."""
        entry = self._cache.get(command_id)
        return entry.state if entry else None

    # -- internals -------------------------------------------------------------------------

    def _heartbeat(self, obj: dict, now: float) -> Receipt:
        _keys(obj, _HB_KEYS, "heartbeat")
        station = _str(obj, "station", _STATION_RE, None)
        mac = _str(obj, "mac", _MAC_RE, None)
        at_ms = _int(obj, "at_ms", None)
        key = self.keys.get(station)
        if key is None:
            return Receipt(Outcome.REJECTED, f"unknown station {station!r}")
        if not hmac.compare_digest(_mac(key, _HB_TAG, [station, at_ms]), mac):
            return Receipt(Outcome.REJECTED, "authentication failed (bad MAC)")
        st = self._stations[station]
        skew_ms = self.config.max_clock_skew_s * 1000.0
        if at_ms <= st.last_heartbeat_ms or abs(at_ms - now * 1000.0) > skew_ms:
            return Receipt(Outcome.REJECTED, "stale or replayed heartbeat")
        st.last_heartbeat_ms = at_ms
        self.last_contact = now
        return Receipt(Outcome.HEARTBEAT)

    def _command(self, command: Command, mac: str, now: float) -> Receipt:
        cfg = self.config
        key = self.keys.get(command.station)
        if key is None:
            return self._unsigned_reject(command, f"unknown station {command.station!r}", now)
        if not hmac.compare_digest(command_mac(key, command), mac):
            return self._unsigned_reject(command, "authentication failed (bad MAC)", now)
        # Authentic from here on.
        self.last_contact = now
        entry = self._cache.get(command.id)
        if entry is not None:
            if entry.station == command.station and entry.seq == command.seq and entry.mac == mac:
                self._cache.move_to_end(command.id)
                return Receipt(
                    Outcome.DUPLICATE, f"duplicate; current state {entry.state.value}", None, (entry.reply,)
                )
            return self._signed_reject(command, "id reused with different content", now, key, remember=False)
        st = self._stations[command.station]
        if command.seq <= st.highest_seq - cfg.replay_window:
            return self._signed_reject(
                command, "stale sequence number (outside the replay window)", now, key, False
            )
        if command.seq in st.seen:
            return self._signed_reject(command, "replayed sequence number", now, key, False)
        # Remember the seq (and the id with its final answer) from here: a resend gets the same answer.
        st.seen.add(command.seq)
        if command.seq > st.highest_seq:
            st.highest_seq = command.seq
            if len(st.seen) > 2 * cfg.replay_window:  # amortized pruning
                floor = st.highest_seq - cfg.replay_window
                st.seen = {s for s in st.seen if s > floor}
        if (
            self.control_station is not None
            and not command.priority
            and command.station != self.control_station
        ):
            return self._signed_reject(
                command, f"station {command.station!r} does not hold control", now, key, True
            )
        if command.issued > now + cfg.max_clock_skew_s:
            return self._signed_reject(command, "issue time is in the future (clock skew?)", now, key, True)
        if not command.issued < command.expires <= command.issued + cfg.max_ttl_s:
            return self._signed_reject(
                command, f"expiry must be after the issue time and within {cfg.max_ttl_s:g} s", now, key, True
            )
        if now > command.expires:
            entry = self._remember(command, mac)
            late = now - command.expires
            reply = self._record(
                entry, command.id, AckState.EXPIRED, f"expired {late:.1f} s before arrival", now
            )
            return Receipt(Outcome.EXPIRED, "expired", None, (reply,))
        entry = self._remember(command, mac)
        reply = self._record(entry, command.id, AckState.RECEIVED, "", now)
        return Receipt(Outcome.ACCEPTED, "", command, (reply,))

    def _remember(self, command: Command, mac: str) -> _Entry:
        entry = _Entry(command.station, command.seq, mac, AckState.RECEIVED, "", b"")
        self._cache[command.id] = entry
        while len(self._cache) > self.config.max_cached:
            self._cache.popitem(last=False)
        return entry

    def _record(self, entry: _Entry, command_id: str, state: AckState, reason: str, now: float) -> bytes:
        entry.state, entry.reason = state, reason
        key = self.keys[entry.station]
        entry.reply = encode_ack(entry.station, command_id, entry.seq, state, reason, now, key)
        return entry.reply

    def _signed_reject(
        self, command: Command, reason: str, now: float, key: bytes, remember: bool
    ) -> Receipt:
        if remember:  # the command is authentic: a re-send gets the same answer
            entry = self._remember(command, command_mac(key, command))
            reply = self._record(entry, command.id, AckState.REJECTED, reason, now)
        else:
            reply = encode_ack(command.station, command.id, command.seq, AckState.REJECTED, reason, now, key)
        return Receipt(Outcome.REJECTED, reason, None, (reply,))

    def _unsigned_reject(self, command: Command, reason: str, now: float) -> Receipt:
        # Never sign an answer to an unauthenticated message: a forger could otherwise make
        # the ground believe one of its real commands was rejected.
        reply = encode_ack(None, command.id, None, AckState.REJECTED, reason, now, None)
        return Receipt(Outcome.REJECTED, reason, None, (reply,))


# ---------------------------------------------------------------------------------------
# Ground: CommandQueue


@dataclass(frozen=True)
class QueueConfig:
    """Ground re-send policy (defaults documented in docs/link.md)."""

    default_ttl_s: float = 300.0  # expiry = issue + ttl
    window: int = 1  # non-priority commands sent but not yet acknowledged onboard
    rto_initial_s: float = 5.0  # re-send timeout before any round trip is measured (IB2: 5 s)
    rto_min_s: float = 1.0
    rto_max_s: float = 30.0  # backoff cap
    backoff: float = 2.0
    priority_resend_s: float = 1.0  # emergency stop: re-send this often until acknowledged
    poll_interval_s: float = 10.0  # re-send (status poll) once received, until a final ack
    give_up_after_expiry_s: float = 120.0  # stop polling this long after expiry
    heartbeat_interval_s: float = 1.0  # 0 disables heartbeats
    keep_final: int = 1000  # finished records kept in ``records`` (oldest dropped first)

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError("window must be >= 1")
        if not 0 < self.rto_min_s <= self.rto_initial_s <= self.rto_max_s:
            raise ValueError("need 0 < rto_min_s <= rto_initial_s <= rto_max_s")


@dataclass
class CommandRecord:
    """Ground-side bookkeeping of one command."""

    command: Command
    wire: bytes
    state: AckState = AckState.QUEUED
    reason: str = ""
    sends: int = 0
    attempt: int = 0  # re-sends since the last progress or AOS (drives the backoff)
    first_sent: float | None = None
    last_sent: float | None = None
    next_send: float = -math.inf
    gave_up: bool = False
    history: list[tuple[float, AckState, str]] = field(default_factory=list)


class CommandQueue:
    """Ground side: queue, sign, send, re-send with backoff, track acknowledgements.

    station/key: this station's id and HMAC key (shared with the onboard gate).
    on_change: called with the record after every state change.
    id_factory: makes command ids (uuid4 strings by default; inject for reproducible tests).
    first_seq: first sequence number. A restarted ground must continue above the last one
      used (persist it, or derive it from the clock in ms), else the robot rejects its
      commands as stale.

    Ordering: with ``window = 1`` (default) a command is not sent before the previous one
    was acknowledged onboard, so the robot receives them in order. An emergency stop
    bypasses the queue and the window, and holds the queue (``resume()`` to continue).
    """

    def __init__(
        self,
        station: str,
        key: bytes,
        config: QueueConfig | None = None,
        *,
        first_seq: int = 1,
        on_change: Callable[[CommandRecord], None] | None = None,
        id_factory: Callable[[], str] | None = None,
    ) -> None:
        if not _STATION_RE.fullmatch(station):
            raise ValueError(f"bad station id {station!r}")
        if len(key) < 16:
            raise ValueError("key must be at least 16 bytes")
        self.station = station
        self.key = key
        self.config = config or QueueConfig()
        self.on_change = on_change
        self.held = False
        self.records: dict[str, CommandRecord] = {}  # newest last; finished ones are bounded
        self.unverified_acks = 0
        self._pending: dict[str, CommandRecord] = {}
        self._final_ids: deque[str] = deque()
        self._id_factory = id_factory or (lambda: str(uuid.uuid4()))
        self._next_seq = first_seq
        self._srtt: float | None = None
        self._rttvar = 0.0
        self._link_up = True
        self._next_heartbeat = -math.inf

    # -- operator API ----------------------------------------------------------------------

    def submit(self, kind: str, payload: Mapping[str, Any], now: float, *, ttl_s: float | None = None) -> str:
        """Queue a command; returns its id. Raises ProtocolError for an invalid kind/payload."""
        if not _KIND_RE.fullmatch(kind):
            raise ProtocolError(f"bad command kind {kind!r}")
        try:
            payload = json.loads(canonical_json(dict(payload)))  # JSON-clean copy, rejects NaN
        except (TypeError, ValueError) as exc:
            raise ProtocolError(f"payload is not JSON-serializable: {exc}") from None
        ttl = self.config.default_ttl_s if ttl_s is None else ttl_s
        command = Command(self.station, self._id_factory(), self._next_seq, now, now + ttl, kind, payload)
        self._next_seq += 1
        record = CommandRecord(command, encode_command(command, self.key))
        self.records[command.id] = record
        self._set(record, AckState.QUEUED, "", now)
        return command.id

    def emergency_stop(self, now: float, ttl_s: float = 60.0) -> str:
        """Queue an emergency stop with priority and hold the rest of the queue."""
        self.held = True
        return self.submit(EMERGENCY_STOP, {}, now, ttl_s=ttl_s)

    def resume(self) -> None:
        """Release the hold set by an emergency stop."""
        self.held = False

    def cancel_pending(self, now: float) -> list[str]:
        """Cancel every command not sent yet; returns their ids."""
        cancelled = []
        for record in self.pending():
            if record.state is AckState.QUEUED:
                self._set(record, AckState.CANCELLED, "cancelled before sending", now)
                cancelled.append(record.command.id)
        return cancelled

    def observe_rtt(self, rtt_s: float) -> None:
        """Feed a round-trip sample (from acks or link pings) into the re-send timeout."""
        if self._srtt is None:
            self._srtt, self._rttvar = rtt_s, rtt_s / 2.0
        else:
            self._rttvar = 0.75 * self._rttvar + 0.25 * abs(self._srtt - rtt_s)
            self._srtt = 0.875 * self._srtt + 0.125 * rtt_s

    @property
    def rto_s(self) -> float:
        """Current re-send timeout (RFC 6298 style: srtt + 4 rttvar, clamped)."""
        cfg = self.config
        if self._srtt is None:
            return cfg.rto_initial_s
        return min(cfg.rto_max_s, max(cfg.rto_min_s, self._srtt + 4.0 * self._rttvar))

    def pending(self) -> list[CommandRecord]:
        """Records without a final state, in sequence order."""
        return sorted(self._pending.values(), key=lambda r: r.command.seq)

    # -- I/O -------------------------------------------------------------------------------

    def poll(self, now: float, link_up: bool = True) -> list[bytes]:
        """Messages to transmit now (priority first). Call often (e.g. every 50-100 ms).

        link_up: False during a known LOS: nothing is sent; when it turns True again every
        unacknowledged command is re-sent at once and its backoff restarts.
        """
        cfg = self.config
        if not link_up:
            self._link_up = False
            self._expire_unsent(now)
            return []
        if not self._link_up:
            self._link_up = True
            for record in self.pending():
                if record.state is not AckState.QUEUED:
                    record.next_send, record.attempt = now, 0
        self._expire_unsent(now)
        out: list[bytes] = []
        pending = self.pending()
        for record in [r for r in pending if r.command.priority] + [
            r for r in pending if not r.command.priority
        ]:
            if record.gave_up:
                continue
            if record.state is AckState.QUEUED:
                if not record.command.priority and (self.held or self._in_flight() >= cfg.window):
                    continue
                self._transmit(record, now, out)
                self._set(record, AckState.SENT, "", now)
            elif now >= record.next_send:
                if now > record.command.expires + cfg.give_up_after_expiry_s:
                    self._give_up(record, now)
                    continue
                self._transmit(record, now, out)
        if cfg.heartbeat_interval_s > 0 and now >= self._next_heartbeat:
            out.append(encode_heartbeat(self.station, now, self.key))
            self._next_heartbeat = now + cfg.heartbeat_interval_s
        return out

    def receive(self, data: bytes, now: float) -> CommandRecord | None:
        """Apply an ack from the downlink. Returns the updated record, or None if ignored.

        Ignored: malformed or unauthenticated acks (counted in ``unverified_acks``), acks for
        unknown ids, and acks that would move a command backwards (late or reordered).
        Never raises for bad input.
        """
        try:
            ack = decode_ack(data, {self.station: self.key})
        except ProtocolError:
            self.unverified_acks += 1
            return None
        if not ack.authenticated or ack.station != self.station:
            self.unverified_acks += 1
            return None
        record = self.records.get(ack.id or "")
        if record is None or record.command.seq != ack.seq or ack.state not in _ONBOARD_STATES:
            return None
        if record.state.final or ack.state.rank <= record.state.rank:
            return None
        if ack.state in (AckState.REJECTED, AckState.EXPIRED) and record.state.rank >= AckState.RECEIVED.rank:
            # The robot accepted it earlier; a later rejection (e.g. its id was evicted
            # from the onboard cache) is not the command's outcome.
            return None
        if record.state is AckState.SENT and record.sends == 1 and record.last_sent is not None:
            self.observe_rtt(now - record.last_sent)  # Karn: only unambiguous samples
        self._set(record, ack.state, ack.reason, now)
        record.attempt = 0
        record.next_send = now + (self.config.poll_interval_s if not ack.state.final else math.inf)
        return record

    def next_wakeup(self) -> float:
        """Earliest time :meth:`poll` has something to do (-inf: now; inf: nothing scheduled).

        Expiry of unsent commands is not a wake-up reason; poll periodically anyway.
        """
        pending = self.pending()
        times = [r.next_send for r in pending if r.state is not AckState.QUEUED and not r.gave_up]
        can_send = not self.held and self._in_flight() < self.config.window
        if any(r.state is AckState.QUEUED and (r.command.priority or can_send) for r in pending):
            times.append(-math.inf)
        if self.config.heartbeat_interval_s > 0:
            times.append(self._next_heartbeat)
        return min(times, default=math.inf)

    # -- internals -------------------------------------------------------------------------

    def _in_flight(self) -> int:
        return sum(
            1
            for r in self._pending.values()
            if r.state is AckState.SENT and not r.command.priority and not r.gave_up
        )

    def _transmit(self, record: CommandRecord, now: float, out: list[bytes]) -> None:
        cfg = self.config
        out.append(record.wire)
        record.sends += 1
        record.first_sent = now if record.first_sent is None else record.first_sent
        record.last_sent = now
        if record.command.priority and record.state.rank < AckState.RECEIVED.rank:
            interval = cfg.priority_resend_s
        elif record.state.rank >= AckState.RECEIVED.rank:
            interval = cfg.poll_interval_s
        else:
            interval = min(cfg.rto_max_s, self.rto_s * cfg.backoff**record.attempt)
        record.attempt += 1
        record.next_send = now + interval

    def _expire_unsent(self, now: float) -> None:
        for record in self.pending():
            if record.state is AckState.QUEUED and now > record.command.expires:
                self._set(record, AckState.EXPIRED, "expired before it could be sent", now)

    def _give_up(self, record: CommandRecord, now: float) -> None:
        record.gave_up = True
        if record.state is AckState.SENT:
            self._set(record, AckState.EXPIRED, "no acknowledgement from the robot before expiry", now)
        else:
            record.reason = f"no final acknowledgement; last known state {record.state.value}"
            if self.on_change:
                self.on_change(record)

    def _set(self, record: CommandRecord, state: AckState, reason: str, now: float) -> None:
        record.state, record.reason = state, reason
        record.history.append((now, state, reason))
        command_id = record.command.id
        if state.final:
            self._pending.pop(command_id, None)
            self._final_ids.append(command_id)
            while len(self._final_ids) > self.config.keep_final:
                self.records.pop(self._final_ids.popleft(), None)
        else:
            self._pending[command_id] = record
        if self.on_change:
            self.on_change(record)


def make_keys(stations: Iterable[str], secret: bytes) -> dict[str, bytes]:
    """Derive per-station keys from one master secret (HMAC-SHA256(secret, station)).

    For tests and single-operator setups; production keys come from a key file per station.
    """
    return {s: hmac.new(secret, s.encode(), hashlib.sha256).digest() for s in stations}
