"""Camera-task file downlink pieces without a link: the JPEG size cap, chunking, reassembly with
lost, duplicated, foreign and corrupted chunks, and when the ground asks again."""

from __future__ import annotations

import asyncio

import cv2
import numpy as np
import pytest

from intball_teleop.files import MAX_RESENDS, FileReceiver, FileSender, OutFile, decode_chunk, jpeg_capped


def noise_png(tmp_path, shape=(480, 640, 3)):
    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    path = tmp_path / "snap.png"
    cv2.imwrite(str(path), img)
    return path


@pytest.mark.parametrize("cap", [300_000, 60_000, 8_000])
def test_jpeg_cap_is_respected_and_the_result_decodes(tmp_path, cap):
    data = jpeg_capped(noise_png(tmp_path), cap)
    assert len(data) <= cap and data[:2] == b"\xff\xd8"
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[2] == 3
    if cap == 8_000:  # white noise does not fit 8 kB at 640x480: the picture was shrunk
        assert img.shape[1] < 640


def test_unreadable_image_names_the_file(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(ValueError, match="notes.png: not a readable image"):
        jpeg_capped(bad)


def test_reassembly_with_loss_duplicates_corruption_and_resend_limit():
    data = bytes(range(256)) * 100  # 25.6 kB -> 4 chunks of 8 KiB
    f = OutFile("0123456789ab", "snap.jpg", "cmd", data, 8192)
    assert f.n == 4
    rx = FileReceiver()
    assert rx.on_chunk(b"garbage", 0.0) is None
    rx.announced([f.summary(), "junk", {"id": 3}], 0.0)
    got = rx.files["0123456789ab"]
    assert (got.n, got.size, got.state) == (4, len(data), "receiving")
    for i in (0, 2):
        assert rx.on_chunk(f.chunk(i), 1.0) is got
    assert rx.on_chunk(f.chunk(2), 1.1) is None  # duplicate ignored
    header, body = decode_chunk(f.chunk(3))
    assert header["i"] == 3 and len(body) == len(data) - 3 * 8192
    assert got.missing() == [1, 3]
    assert rx.stalled(2.0, gap_s=3.0) == []
    assert rx.stalled(4.5, gap_s=3.0) == [got]
    # a corrupted chunk: the checksum fails, every chunk is asked for again
    corrupt = bytearray(f.chunk(3))
    corrupt[-1] ^= 0xFF
    rx.on_chunk(f.chunk(1), 5.0)
    rx.on_chunk(bytes(corrupt), 5.0)
    assert got.state == "receiving" and got.missing() == [0, 1, 2, 3] and "checksum" in got.reason
    for i in range(4):
        rx.on_chunk(f.chunk(i), 6.0)
    assert got.state == "complete" and got.data == data and got.completed == 6.0
    # a file that never completes is given up after MAX_RESENDS requests
    g = OutFile("ba9876543210", "lost.jpg", None, b"x" * 9000, 8192)
    rx.announced([g.summary()], 10.0)
    lost = rx.files["ba9876543210"]
    lost.resends = MAX_RESENDS
    assert rx.stalled(20.0, gap_s=3.0) == [lost] and lost.state == "failed"
    assert "2 of 2 chunks missing" in lost.reason


def test_sender_paces_chunks_under_its_rate_and_resends_only_kept_files():
    sent: list[bytes] = []

    async def body():
        tx = FileSender(sent.append, rate_bps=400_000.0, chunk_bytes=4096, keep=2)
        f = tx.add("a.jpg", b"a" * 20_000, None)  # 5 chunks
        task = asyncio.get_running_loop().create_task(tx.run())
        t0 = asyncio.get_running_loop().time()
        while len(sent) < f.n:
            await asyncio.sleep(0.005)
        elapsed = asyncio.get_running_loop().time() - t0
        assert tx.resend(f.id, [4, 4, 99, -1]) == 1
        while len(sent) < f.n + 1:
            await asyncio.sleep(0.005)
        tx.add("b.jpg", b"b", None)
        tx.add("c.jpg", b"c", None)  # keep=2: a.jpg dropped
        with pytest.raises(KeyError):
            tx.resend(f.id, [0])
        task.cancel()
        return elapsed

    elapsed = asyncio.run(body())
    # 4 inter-chunk gaps of at least 8 * len(packet) / rate (~4.2 kB -> ~84 ms each)
    assert elapsed >= 4 * 8 * 4096 / 400_000.0
    assert [decode_chunk(p)[0]["i"] for p in sent] == [0, 1, 2, 3, 4, 4]
