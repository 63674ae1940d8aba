"""FrameBuffer: cutting a PostgreSQL byte stream into complete messages, whatever the chunking."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sqlgate.errors import ProtocolError
from sqlgate.protocols.postgres import messages as m
from sqlgate.protocols.postgres.framing import FrameBuffer

from .pg_samples import BACKEND_SAMPLES, FRONTEND_SAMPLES

LIMIT = 1 << 20
SAMPLE_FRAMES = [x.encode() for x in FRONTEND_SAMPLES + BACKEND_SAMPLES]


def header(type_code: bytes, length: int) -> bytes:
    return type_code + struct.pack("!I", length)


def feed(buffer: FrameBuffer, chunks: list[bytes]) -> list[tuple[int, bytes]]:
    """Push every chunk; return (type byte, frame bytes) of each frame, checking each result."""
    out: list[tuple[int, bytes]] = []
    for data in chunks:
        chunk, frames = buffer.push(data)
        pos = 0
        for type_code, start, end in frames:
            assert start == pos, "frames must tile the returned chunk without gaps"
            assert chunk[start] == type_code
            assert struct.unpack("!I", chunk[start + 1 : start + 5])[0] == end - start - 1
            out.append((type_code, bytes(chunk[start:end])))
            pos = end
        assert pos == len(chunk), "the returned chunk must hold only complete frames"
    return out


def expected_frames(raws: list[bytes]) -> list[tuple[int, bytes]]:
    return [(raw[0], raw) for raw in raws]


def test_one_push_of_several_frames_yields_each_frame_in_order() -> None:
    raws = [m.Query("SELECT 1").encode(), m.Sync().encode(), m.Terminate().encode()]
    buffer = FrameBuffer(LIMIT)
    chunk, frames = buffer.push(b"".join(raws))
    assert frames == [(ord("Q"), 0, 14), (ord("S"), 14, 19), (ord("X"), 19, 24)]
    assert buffer.pending == 0
    assert len(chunk) == 24


def test_splitting_a_stream_at_every_byte_boundary_reassembles_the_same_frames() -> None:
    raws = [
        m.Query("SELECT 'ü'").encode(),
        m.Sync().encode(),
        m.DataRow((b"x" * 40, None)).encode(),
        m.ReadyForQuery("I").encode(),
    ]
    stream = b"".join(raws)
    for cut in range(len(stream) + 1):
        buffer = FrameBuffer(LIMIT)
        assert feed(buffer, [stream[:cut], stream[cut:]]) == expected_frames(raws), cut
        assert buffer.pending == 0


def test_splitting_a_stream_at_every_pair_of_boundaries_reassembles_the_same_frames() -> None:
    raws = [m.Parse("s", "SELECT $1", (23,)).encode(), m.Flush().encode(), m.Sync().encode()]
    stream = b"".join(raws)
    for a in range(len(stream) + 1):
        for b in range(a, len(stream) + 1):
            buffer = FrameBuffer(LIMIT)
            chunks = [stream[:a], stream[a:b], stream[b:]]
            assert feed(buffer, chunks) == expected_frames(raws), (a, b)


def test_feeding_one_byte_at_a_time_reassembles_the_same_frames() -> None:
    raws = SAMPLE_FRAMES[:20]
    stream = b"".join(raws)
    buffer = FrameBuffer(LIMIT)
    chunks = [stream[i : i + 1] for i in range(len(stream))]
    assert feed(buffer, chunks) == expected_frames(raws)
    assert buffer.pending == 0


@st.composite
def chunked_stream(draw: st.DrawFn) -> tuple[list[bytes], list[bytes]]:
    raws = draw(
        st.lists(
            st.sampled_from(SAMPLE_FRAMES)
            | st.builds(m.frame, st.binary(min_size=1, max_size=1), st.binary(max_size=300)),
            max_size=25,
        )
    )
    stream = b"".join(raws)
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=30)))
    bounds = [0, *cuts, len(stream)]
    return raws, [stream[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=300, deadline=None)
@given(case=chunked_stream())
def test_any_chunking_of_any_message_sequence_reassembles_identically(
    case: tuple[list[bytes], list[bytes]],
) -> None:
    raws, chunks = case
    buffer = FrameBuffer(LIMIT)
    assert feed(buffer, chunks) == expected_frames(raws)
    assert buffer.pending == 0


@settings(max_examples=300, deadline=None)
@given(case=chunked_stream())
def test_returned_chunks_concatenate_back_to_the_stream(
    case: tuple[list[bytes], list[bytes]],
) -> None:
    _, chunks = case
    buffer = FrameBuffer(LIMIT)
    returned = b""
    fed = 0
    for data in chunks:
        chunk, _ = buffer.push(data)
        returned += chunk
        fed += len(data)
        assert fed - len(returned) == buffer.pending
    assert returned == b"".join(chunks)


def test_push_of_complete_frames_returns_the_pushed_object_itself() -> None:
    data = m.Query("SELECT 1").encode() + m.Sync().encode()
    chunk, frames = FrameBuffer(LIMIT).push(data)
    assert chunk is data
    assert len(frames) == 2


def test_push_after_a_completed_tail_returns_the_pushed_object_again() -> None:
    buffer = FrameBuffer(LIMIT)
    raw = m.Query("SELECT 1").encode()
    buffer.push(raw[:3])
    buffer.push(raw[3:])
    data = m.Sync().encode()
    chunk, _ = buffer.push(data)
    assert chunk is data


def test_push_of_nothing_returns_no_frames_and_keeps_nothing() -> None:
    buffer = FrameBuffer(LIMIT)
    chunk, frames = buffer.push(b"")
    assert (chunk, frames, buffer.pending) == (b"", [], 0)


def test_push_with_a_tail_returns_only_the_complete_frames() -> None:
    buffer = FrameBuffer(LIMIT)
    sync = m.Sync().encode()
    query = m.Query("SELECT 1").encode()
    chunk, frames = buffer.push(sync + query[:7])
    assert chunk == sync
    assert frames == [(ord("S"), 0, 5)]
    assert buffer.pending == 7


def test_pending_reports_the_size_of_the_incomplete_tail_as_it_grows() -> None:
    buffer = FrameBuffer(LIMIT)
    raw = m.Query("SELECT 12345").encode()
    seen = []
    for i in range(len(raw) - 1):
        chunk, frames = buffer.push(raw[i : i + 1])
        assert (chunk, frames) == (b"", [])
        seen.append(buffer.pending)
    assert seen == list(range(1, len(raw)))
    chunk, frames = buffer.push(raw[-1:])
    assert chunk == raw
    assert frames == [(ord("Q"), 0, len(raw))]
    assert buffer.pending == 0


def test_pending_is_zero_on_a_new_buffer() -> None:
    assert FrameBuffer(LIMIT).pending == 0


@pytest.mark.parametrize("length", [0x80000000, 0xFFFFFFFF, 0x7FFFFFFF, LIMIT + 1])
def test_huge_length_prefix_is_refused_as_soon_as_the_header_arrives(length: int) -> None:
    buffer = FrameBuffer(LIMIT)
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        buffer.push(header(b"d", length))


def test_huge_length_prefix_split_across_pushes_is_refused_when_the_header_completes() -> None:
    buffer = FrameBuffer(LIMIT)
    assert buffer.push(b"d\x80") == (b"", [])
    assert buffer.push(b"\x00\x00") == (b"", [])
    with pytest.raises(ProtocolError):
        buffer.push(b"\x00")


def test_huge_length_prefix_after_complete_frames_is_refused_in_the_same_push() -> None:
    buffer = FrameBuffer(LIMIT)
    with pytest.raises(ProtocolError):
        buffer.push(m.Sync().encode() + header(b"Q", 0x80000000))


def test_huge_length_prefix_following_a_pending_tail_is_refused_without_more_data() -> None:
    buffer = FrameBuffer(LIMIT)
    query = m.Query("SELECT 1").encode()
    buffer.push(query[:6])
    with pytest.raises(ProtocolError):
        buffer.push(query[6:] + header(b"D", 0x80000000))


@pytest.mark.parametrize("length", [0, 1, 2, 3])
def test_length_below_four_is_refused(length: int) -> None:
    with pytest.raises(ProtocolError, match="below the minimum"):
        FrameBuffer(LIMIT).push(header(b"Q", length))


def test_length_below_four_after_a_valid_frame_is_refused() -> None:
    with pytest.raises(ProtocolError):
        FrameBuffer(LIMIT).push(m.Sync().encode() + header(b"S", 3))


def test_length_of_exactly_four_is_an_empty_payload() -> None:
    chunk, frames = FrameBuffer(LIMIT).push(header(b"S", 4))
    assert frames == [(ord("S"), 0, 5)]
    assert len(chunk) == 5


def test_message_whose_length_field_equals_the_limit_is_accepted() -> None:
    limit = 1024
    raw = m.frame(b"d", b"x" * (limit - 4))
    assert struct.unpack("!I", raw[1:5])[0] == limit
    chunk, frames = FrameBuffer(limit).push(raw)
    assert frames == [(ord("d"), 0, len(raw))]
    assert chunk is raw


def test_message_whose_length_field_is_one_over_the_limit_is_refused() -> None:
    limit = 1024
    with pytest.raises(ProtocolError, match="1025"):
        FrameBuffer(limit).push(header(b"d", limit + 1))


def test_limit_applies_to_every_frame_not_only_the_first() -> None:
    limit = 1024
    ok = m.frame(b"d", b"x" * (limit - 4))
    with pytest.raises(ProtocolError):
        FrameBuffer(limit).push(ok + ok + header(b"d", limit + 1))


def test_large_frame_in_many_small_pushes_is_delivered_once_complete() -> None:
    raw = m.CopyData(bytes(range(256)) * 400).encode()
    buffer = FrameBuffer(LIMIT)
    results = [buffer.push(raw[i : i + 999]) for i in range(0, len(raw), 999)]
    assert all(r == (b"", []) for r in results[:-1])
    chunk, frames = results[-1]
    assert chunk == raw
    assert frames == [(ord("d"), 0, len(raw))]
