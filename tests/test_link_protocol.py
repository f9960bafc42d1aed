"""Command protocol: authentication, replay/expiry rejection, at-most-once, ground re-sends."""

from __future__ import annotations

import json
import random
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intball_nav.config import ConfigError
from intball_teleop.link.keys import load_station_keys
from intball_teleop.link.protocol import (
    EMERGENCY_STOP,
    AckState,
    CommandGate,
    CommandQueue,
    GateConfig,
    Outcome,
    QueueConfig,
    canonical_json,
    decode_ack,
    encode_heartbeat,
    make_keys,
)

KEYS = make_keys(["ground-a", "ground-b"], b"test master secret, not for flight")


def _ids():
    rng = random.Random(0)
    return lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _queue(station="ground-a", first_seq=1, **cfg) -> CommandQueue:
    config = QueueConfig(heartbeat_interval_s=0, **cfg)
    return CommandQueue(station, KEYS[station], config, first_seq=first_seq, id_factory=_ids())


def _one(queue: CommandQueue, now: float, kind="goto", payload=None, **kw) -> tuple[str, bytes]:
    cid = queue.submit(kind, payload or {"x": 1.0}, now, **kw)
    return cid, queue.records[cid].wire


def _ack_state(reply: bytes) -> tuple[str, str]:
    obj = json.loads(reply)
    return obj["state"], obj["reason"]


def test_valid_command_is_accepted_once_and_acked():
    gate, queue = CommandGate(KEYS), _queue()
    cid, wire = _one(queue, 100.0)
    receipt = gate.receive(wire, 100.5)
    assert receipt.outcome is Outcome.ACCEPTED and receipt.command.id == cid
    assert receipt.command.payload == {"x": 1.0}
    assert queue.receive(receipt.replies[0], 101.0).state is AckState.RECEIVED
    queue.receive(gate.report(cid, AckState.EXECUTING, 101.0), 101.5)
    queue.receive(gate.report(cid, AckState.COMPLETED, 102.0), 102.5)
    assert queue.records[cid].state is AckState.COMPLETED
    assert [s for _, s, _ in queue.records[cid].history] == [
        AckState.QUEUED,
        AckState.RECEIVED,
        AckState.EXECUTING,
        AckState.COMPLETED,
    ]


def test_forged_and_tampered_commands_are_rejected_with_reasons():
    gate, queue = CommandGate(KEYS), _queue()
    _, wire = _one(queue, 100.0, payload={"x": 1.0})
    obj = json.loads(wire)

    tampered = dict(obj, payload={"x": 9.0})
    receipt = gate.receive(canonical_json(tampered), 100.1)
    assert receipt.outcome is Outcome.REJECTED and "bad MAC" in receipt.reason
    assert json.loads(receipt.replies[0])["mac"] is None  # never sign answers to forgeries

    forged = dict(obj, mac="0" * 64)
    assert "bad MAC" in gate.receive(canonical_json(forged), 100.1).reason
    other = dict(obj, station="ground-z")
    assert "unknown station" in gate.receive(canonical_json(other), 100.1).reason
    wrong_key = CommandQueue("ground-a", KEYS["ground-b"], id_factory=_ids())
    _, wire2 = _one(wrong_key, 100.0)
    assert "bad MAC" in gate.receive(wire2, 100.1).reason
    # The forgery did not poison the id: the genuine command is still accepted.
    assert gate.receive(wire, 100.2).outcome is Outcome.ACCEPTED


def test_unsigned_rejection_does_not_change_ground_state():
    gate, queue = CommandGate(KEYS), _queue()
    cid, wire = _one(queue, 100.0)
    queue.poll(100.0)
    forged = dict(json.loads(wire), payload={"x": 9.0})
    reply = gate.receive(canonical_json(forged), 100.1).replies[0]
    assert queue.receive(reply, 100.2) is None
    assert queue.records[cid].state is AckState.SENT and queue.unverified_acks == 1


def test_duplicate_returns_cached_final_ack_without_reexecuting():
    gate, queue = CommandGate(KEYS), _queue()
    cid, wire = _one(queue, 100.0)
    assert gate.receive(wire, 100.1).outcome is Outcome.ACCEPTED
    gate.report(cid, AckState.EXECUTING, 100.2)
    final = gate.report(cid, AckState.FAILED, 100.3, reason="goal in keep-out zone")
    again = gate.receive(wire, 150.0)
    assert again.outcome is Outcome.DUPLICATE and again.command is None
    assert again.replies == (final,)
    assert _ack_state(final) == ("failed", "goal in keep-out zone")


def test_replays_are_rejected():
    gate, queue = CommandGate(KEYS, GateConfig(replay_window=8, max_cached=8)), _queue()
    first_id, first = _one(queue, 100.0)
    gate.receive(first, 100.1)
    for i in range(20):  # push the first command out of the window and the id cache
        gate.receive(_one(queue, 100.0 + i)[1], 101.0 + i)
    receipt = gate.receive(first, 130.0)
    assert receipt.outcome is Outcome.REJECTED and "stale sequence" in receipt.reason
    assert gate.state(first_id) is None

    # Same seq, different id (a re-signed copy): replayed sequence number.
    q2 = _queue(first_seq=25)
    _, a = _one(q2, 200.0)
    q3 = _queue(first_seq=25)
    q3._id_factory = lambda: "3b241101-e2bb-4255-8caf-4136c566a962"
    _, b = _one(q3, 200.0)
    assert gate.receive(a, 200.1).outcome is Outcome.ACCEPTED
    receipt = gate.receive(b, 200.2)
    assert receipt.outcome is Outcome.REJECTED and "replayed sequence" in receipt.reason


def test_memory_is_bounded():
    config = GateConfig(replay_window=64, max_cached=128)
    gate, queue = CommandGate(KEYS, config), _queue()
    for i in range(2000):
        gate.receive(_one(queue, 100.0 + i * 0.01)[1], 100.0 + i * 0.01)
    assert len(gate._cache) <= 128
    assert len(gate._stations["ground-a"].seen) <= 2 * 64 + 1


def test_expired_stale_and_future_commands():
    gate, queue = CommandGate(KEYS), _queue()
    cid, wire = _one(queue, 100.0, ttl_s=10.0)
    receipt = gate.receive(wire, 111.0)
    assert receipt.outcome is Outcome.EXPIRED and _ack_state(receipt.replies[0])[0] == "expired"
    assert gate.receive(wire, 112.0).outcome is Outcome.DUPLICATE  # same answer, still not executed
    queue.poll(100.0)
    assert queue.receive(receipt.replies[0], 112.0).state is AckState.EXPIRED

    _, future = _one(queue, 200.0)
    receipt = gate.receive(future, 150.0)
    assert receipt.outcome is Outcome.REJECTED and "future" in receipt.reason

    _, too_long = _one(queue, 300.0, ttl_s=GateConfig().max_ttl_s + 10)
    assert "expiry" in gate.receive(too_long, 300.1).reason


def test_control_station_and_emergency_stop_from_any_station():
    gate = CommandGate(KEYS, control_station="ground-a")
    other = _queue("ground-b")
    _, goto = _one(other, 100.0)
    receipt = gate.receive(goto, 100.1)
    assert receipt.outcome is Outcome.REJECTED and "does not hold control" in receipt.reason
    assert json.loads(receipt.replies[0])["mac"] is not None  # authentic: signed answer
    stop_id = other.emergency_stop(100.2)
    receipt = gate.receive(other.records[stop_id].wire, 100.3)
    assert receipt.outcome is Outcome.ACCEPTED and receipt.command.kind == EMERGENCY_STOP


def test_id_reuse_with_different_content_is_rejected():
    gate = CommandGate(KEYS)
    q1 = _queue(first_seq=5)
    cid, a = _one(q1, 100.0)
    q2 = _queue(first_seq=6)
    q2._id_factory = lambda: cid
    _, b = _one(q2, 100.0)
    gate.receive(a, 100.1)
    assert "id reused" in gate.receive(b, 100.2).reason


def test_heartbeats_refresh_contact_and_cannot_be_replayed():
    gate = CommandGate(KEYS)
    assert gate.contact_age(0.0) == float("inf")
    hb = encode_heartbeat("ground-a", 100.0, KEYS["ground-a"])
    assert gate.receive(hb, 100.2).outcome is Outcome.HEARTBEAT
    assert gate.contact_age(103.2) == 3.0
    assert gate.receive(hb, 100.3).outcome is Outcome.REJECTED
    bad = encode_heartbeat("ground-a", 101.0, KEYS["ground-b"])
    assert "bad MAC" in gate.receive(bad, 101.1).reason


def test_at_most_once_under_duplication_reordering_and_loss():
    rng = random.Random(42)
    gate, queue = CommandGate(KEYS), _queue(window=50)
    ids = [_one(queue, 100.0)[0] for _ in range(50)]
    wires = [queue.records[i].wire for i in ids]
    traffic = [w for w in wires for _ in range(rng.randint(0, 4))]  # 0 copies = lost
    rng.shuffle(traffic)
    executed = []
    for t, wire in enumerate(traffic):
        receipt = gate.receive(wire, 100.0 + t * 0.001)
        if receipt.command is not None:
            executed.append(receipt.command.id)
    assert len(executed) == len(set(executed))
    assert set(executed) == {queue.records[i].command.id for i in ids if queue.records[i].wire in traffic}


def test_ground_window_orders_commands_and_backs_off():
    queue = _queue(rto_initial_s=2.0, rto_max_s=16.0)
    a, _ = _one(queue, 0.0)
    b, _ = _one(queue, 0.0)
    assert queue.poll(0.0) == [queue.records[a].wire]  # window 1: b waits for a's ack
    sends = [t / 10 for t in range(0, 400) if queue.poll(t / 10)]
    assert sends == [2.0, 6.0, 14.0, 30.0]  # 2, 4, 8, 16 (cap) s backoff
    gate = CommandGate(KEYS)
    queue.receive(gate.receive(queue.records[a].wire, 40.0).replies[0], 40.1)
    assert queue.poll(40.2) == [queue.records[b].wire]


def test_ground_resends_at_once_after_los():
    queue = _queue(rto_initial_s=5.0)
    a, wire = _one(queue, 0.0)
    assert queue.poll(0.0) == [wire]
    assert queue.poll(1.0, link_up=False) == []
    assert queue.poll(5.5, link_up=False) == []  # due, but LOS: nothing goes out
    assert queue.poll(60.0, link_up=True) == [wire]  # AOS: re-sent immediately
    assert queue.records[a].attempt == 1


def test_emergency_stop_bypasses_queue_and_holds_it():
    queue = _queue()
    a, _ = _one(queue, 0.0)
    b, _ = _one(queue, 0.0)
    queue.poll(0.0)  # a in flight, b waiting
    stop = queue.emergency_stop(0.5)
    out = queue.poll(0.6)
    assert out == [queue.records[stop].wire]
    gate = CommandGate(KEYS)
    queue.receive(gate.receive(queue.records[a].wire, 1.0).replies[0], 1.1)
    assert queue.records[b].wire not in queue.poll(1.2)  # held after an emergency stop
    assert queue.cancel_pending(1.3) == [b]
    assert queue.records[b].state is AckState.CANCELLED
    assert queue.poll(1.7) == [queue.records[stop].wire]  # priority re-send (1 s) until acked


def test_give_up_marks_unacknowledged_command_expired():
    queue = _queue(give_up_after_expiry_s=10.0)
    a, _ = _one(queue, 0.0, ttl_s=20.0)
    for t in range(0, 60):
        queue.poll(float(t))
    assert queue.records[a].state is AckState.EXPIRED and queue.records[a].gave_up


# -- malformed input: never an exception, always a clear rejection --------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes_are_rejected(data):
    receipt = CommandGate(KEYS).receive(data, 100.0)
    assert receipt.outcome is Outcome.REJECTED and receipt.reason
    assert _queue().receive(data, 100.0) is None


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(["t", "v", "station", "id", "seq", "kind", "payload", "mac"]), _json))
def test_fuzz_json_objects_are_rejected(obj):
    data = json.dumps(obj).encode()
    assert CommandGate(KEYS).receive(data, 100.0).outcome is Outcome.REJECTED


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_fuzz_mutated_valid_command(data):
    queue = _queue()
    _, wire = _one(queue, 100.0, payload={"x": 1.5, "name": "wp"})
    field = data.draw(st.sampled_from(sorted(json.loads(wire))))
    obj = json.loads(wire)
    obj[field] = data.draw(_json)
    receipt = CommandGate(KEYS).receive(json.dumps(obj).encode(), 100.1)
    if json.dumps(obj, sort_keys=True, separators=(",", ":")).encode() == wire:  # True == 1 in Python
        assert receipt.outcome is Outcome.ACCEPTED
    else:
        assert receipt.outcome is Outcome.REJECTED and receipt.reason


def test_specific_malformed_inputs():
    gate = CommandGate(KEYS, GateConfig(max_message_bytes=1000))
    cases = {
        b"[" * 900: "not valid JSON",
        b"[" * 100000: "too large",
        b"\xff\xfe": "not valid JSON",
        b'{"t": "cmd", "t": "hb"}': "not valid JSON",  # duplicate keys
        b'{"t":"cmd","v":1,"x":NaN}': "not valid JSON",
        b'{"t":"cmd","v":2}': "version",
        b'{"t":"ack","v":1}': "unexpected message type",
        b'"hello"': "JSON object",
        b"1" * 999: "JSON object",
    }
    for data, reason in cases.items():
        receipt = gate.receive(data, 0.0)
        assert receipt.outcome is Outcome.REJECTED and reason in receipt.reason, (data[:20], receipt.reason)
    assert "not valid JSON" in CommandGate(KEYS).receive(b"1" * 5000, 0.0).reason  # int too long
    queue = _queue()
    _, wire = _one(queue, 0.0, payload={"deep": [[[[[[[[[[1]]]]]]]]]]})
    assert "nested deeper" in gate.receive(wire, 0.1).reason
    _, big = _one(queue, 0.0, payload={"blob": "x" * 5000})
    assert "too large" in gate.receive(big, 0.1).reason
    obj = json.loads(queue.records[queue.submit("goto", {}, 0.0)].wire)
    for field, value in [("seq", -1), ("seq", True), ("seq", 2**60), ("kind", "Goto!"), ("payload", [1])]:
        assert gate.receive(canonical_json(dict(obj, **{field: value})), 0.1).outcome is Outcome.REJECTED


def test_ack_decoder_flags_unsigned_acks():
    gate, queue = CommandGate(KEYS), _queue()
    _, wire = _one(queue, 0.0)
    good = decode_ack(gate.receive(wire, 0.1).replies[0], KEYS)
    assert good.authenticated and good.state is AckState.RECEIVED
    bad = decode_ack(gate.receive(b"junk", 0.2).replies[0], KEYS)
    assert not bad.authenticated and bad.state is AckState.REJECTED


def test_key_files_are_checked(tmp_path):
    path = tmp_path / "keys.yaml"
    path.write_text(f"ground-a: {'ab' * 32}\nground-b: {'cd' * 32}\n")
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_station_keys(path)
    path.chmod(0o600)
    keys = load_station_keys(path)
    assert keys["ground-a"] == bytes.fromhex("ab" * 32) and len(keys) == 2
    path.write_text("ground-a: abcd\n")
    with pytest.raises(ConfigError, match="at least 16"):
        load_station_keys(path)


def test_ground_keeps_a_bounded_history():
    gate, queue = CommandGate(KEYS), _queue(keep_final=5, window=100)
    for i in range(20):
        _one(queue, float(i))
    for wire in queue.poll(20.0):
        cid = json.loads(wire)["id"]
        gate.receive(wire, 20.1)
        queue.receive(gate.report(cid, AckState.COMPLETED, 20.2), 20.3)
    assert len(queue.records) == 5 and not queue.pending()


def test_next_wakeup():
    queue = _queue(rto_initial_s=2.0)
    assert queue.next_wakeup() == float("inf")
    _one(queue, 0.0)
    _one(queue, 0.0)
    assert queue.next_wakeup() == float("-inf")  # something to send now
    queue.poll(0.0)
    assert queue.next_wakeup() == 2.0  # second one waits for the window: next is the re-send


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_fuzz_mutated_ack_is_ignored_by_the_ground(data):
    gate, queue = CommandGate(KEYS), _queue()
    _, wire = _one(queue, 100.0)
    queue.poll(100.0)
    reply = gate.receive(wire, 100.1).replies[0]
    obj = json.loads(reply)
    field = data.draw(st.sampled_from(sorted(obj)))
    obj[field] = data.draw(_json)
    mutated = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    record = queue.receive(mutated, 100.2)
    assert (record is not None) is (mutated == reply)
