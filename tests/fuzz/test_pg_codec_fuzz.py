"""Fuzzing the PostgreSQL codec and framer: hostile bytes may only ever raise ProtocolError.

Anything else escaping (IndexError, struct.error, UnicodeDecodeError, ValueError...) would
bypass the gateway's "protocol error: close the connection" handling, so each test lets every
other exception propagate and fail the test.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sqlgate.errors import ProtocolError
from sqlgate.protocols.postgres import messages as m
from sqlgate.protocols.postgres.framing import FrameBuffer
from tests.unit.protocols.pg_samples import (
    BACKEND_SAMPLES,
    FRONTEND_SAMPLES,
    STARTUP_SAMPLES,
    union_members,
)

FUZZ = settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

KNOWN_FRONTEND = sorted(set(b"QPBDECSHXpFdcf"))
KNOWN_BACKEND = sorted(set(b"RSKZTDCIENA123nstGHWdcvV"))
FRONTEND_CLASSES = tuple(union_members(m.FrontendMessage))
BACKEND_CLASSES = tuple(union_members(m.BackendMessage))
STARTUP_CLASSES = tuple(union_members(m.StartupPacket))


def i16(n: int) -> bytes:
    return struct.pack("!h", n)


def i32(n: int) -> bytes:
    return struct.pack("!i", n)


def u32(n: int) -> bytes:
    return struct.pack("!I", n)


# Payloads built from protocol-shaped pieces reach deep into the decoders; plain random bytes
# cover the rest.
_piece = st.one_of(
    st.binary(max_size=12),
    st.integers(-3, 6).map(i16),
    st.integers(-(2**15), 2**15 - 1).map(i16),
    st.integers(-3, 40).map(i32),
    st.sampled_from([i32(-1), i32(-2), i32(-(2**31)), i32(2**31 - 1), b"\xff\xff"]),
    st.binary(max_size=10).map(lambda b: b.replace(b"\x00", b"") + b"\x00"),
    st.text(max_size=6).map(lambda s: s.encode("utf-8", "surrogatepass") + b"\x00"),
    st.sampled_from([b"\x00", b"S", b"P", b"I", b"T", b"E", b"\x80", b"\xc3", b"\xed\xa0\x80"]),
)
payloads = st.one_of(st.lists(_piece, max_size=14).map(b"".join), st.binary(max_size=300))

_startup_codes = st.sampled_from(
    [
        m.SSL_REQUEST_CODE,
        m.GSSENC_REQUEST_CODE,
        m.CANCEL_REQUEST_CODE,
        m.PROTOCOL_V3,
        m.PROTOCOL_V3 | 2,
        2 << 16,
        (1234 << 16) | 5681,
    ]
) | st.integers(0, 2**32 - 1)
startup_payloads = st.one_of(
    st.tuples(_startup_codes.map(u32), payloads).map(b"".join), st.binary(max_size=60)
)


def decode_or_none(decode: Callable[..., object], *args: object) -> object | None:
    """Run a decoder; None if it raised ProtocolError. Any other exception propagates."""
    try:
        return decode(*args)
    except ProtocolError:
        return None


# ---------------------------------------------------------------------------------------------
# Arbitrary payloads


@FUZZ
@given(type_code=st.sampled_from(KNOWN_FRONTEND), payload=payloads)
def test_frontend_decoder_raises_only_protocol_error(type_code: int, payload: bytes) -> None:
    decoded = decode_or_none(m.decode_frontend, type_code, payload)
    assert decoded is None or isinstance(decoded, FRONTEND_CLASSES)


@FUZZ
@given(type_code=st.sampled_from(KNOWN_BACKEND), payload=payloads)
def test_backend_decoder_raises_only_protocol_error(type_code: int, payload: bytes) -> None:
    decoded = decode_or_none(m.decode_backend, type_code, payload)
    assert decoded is None or isinstance(decoded, BACKEND_CLASSES)


@FUZZ
@given(type_code=st.integers(0, 255), payload=st.binary(max_size=40))
def test_any_type_byte_decodes_or_raises_protocol_error_in_both_directions(
    type_code: int, payload: bytes
) -> None:
    front = decode_or_none(m.decode_frontend, type_code, payload)
    back = decode_or_none(m.decode_backend, type_code, payload)
    if type_code not in KNOWN_FRONTEND:
        assert front is None
    if type_code not in KNOWN_BACKEND:
        assert back is None


@FUZZ
@given(payload=startup_payloads)
def test_startup_decoder_raises_only_protocol_error(payload: bytes) -> None:
    decoded = decode_or_none(m.decode_startup, payload)
    assert decoded is None or isinstance(decoded, STARTUP_CLASSES)


# ---------------------------------------------------------------------------------------------
# Whatever decodes must re-encode to something that decodes to the same message


@FUZZ
@given(type_code=st.sampled_from(KNOWN_FRONTEND), payload=payloads)
def test_decoded_frontend_message_survives_re_encoding(type_code: int, payload: bytes) -> None:
    decoded = decode_or_none(m.decode_frontend, type_code, payload)
    if decoded is not None:
        assert isinstance(decoded, FRONTEND_CLASSES)
        raw = decoded.encode()
        assert m.decode_frontend(raw[0], raw[5:]) == decoded


@FUZZ
@example(type_code=ord("E"), payload=b"\xe9x\x00\x00")  # field code byte >= 0x80
@given(type_code=st.sampled_from(KNOWN_BACKEND), payload=payloads)
def test_decoded_backend_message_survives_re_encoding(type_code: int, payload: bytes) -> None:
    decoded = decode_or_none(m.decode_backend, type_code, payload)
    if decoded is not None:
        assert isinstance(decoded, BACKEND_CLASSES)
        raw = decoded.encode()
        assert m.decode_backend(raw[0], raw[5:]) == decoded


@FUZZ
@given(payload=startup_payloads)
def test_decoded_startup_packet_survives_re_encoding(payload: bytes) -> None:
    decoded = decode_or_none(m.decode_startup, payload)
    if decoded is not None:
        assert isinstance(decoded, STARTUP_CLASSES)
        assert m.decode_startup(decoded.encode()[4:]) == decoded


# ---------------------------------------------------------------------------------------------
# Framing arbitrary streams


def reference_frames(stream: bytes, limit: int) -> tuple[list[bytes], bool]:
    """Frames of a whole stream parsed in one go, and whether a bad length header ends it."""
    frames: list[bytes] = []
    pos = 0
    while len(stream) - pos >= 5:
        (length,) = struct.unpack_from("!I", stream, pos + 1)
        if length < 4 or length > limit:
            return frames, True
        if pos + 1 + length > len(stream):
            break
        frames.append(stream[pos : pos + 1 + length])
        pos += 1 + length
    return frames, False


def _header(length: int) -> bytes:
    return b"Q" + u32(length)


_stream_piece = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([x.encode() for x in FRONTEND_SAMPLES + BACKEND_SAMPLES]),
    st.sampled_from([0, 3, 4, 5, 64, 0x80000000, 0xFFFFFFFF]).map(_header),
)
streams = st.lists(_stream_piece, max_size=12).map(b"".join)


@st.composite
def chunkings(draw: st.DrawFn, data: st.SearchStrategy[bytes]) -> tuple[bytes, list[bytes]]:
    stream = draw(data)
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    bounds = [0, *cuts, len(stream)]
    return stream, [stream[a:b] for a, b in itertools.pairwise(bounds)]


@FUZZ
@given(case=chunkings(streams), limit=st.sampled_from([4, 5, 12, 64, 1024, 1 << 20]))
def test_framer_on_any_chunked_stream_raises_only_protocol_error_and_matches_one_pass(
    case: tuple[bytes, list[bytes]], limit: int
) -> None:
    stream, chunks = case
    expected, bad_header = reference_frames(stream, limit)
    buffer = FrameBuffer(limit)
    got: list[bytes] = []
    failed = False
    for data in chunks:
        try:
            chunk, frames = buffer.push(data)
        except ProtocolError:
            failed = True
            break
        got.extend(bytes(chunk[start:end]) for _, start, end in frames)
    assert failed == bad_header
    if failed:
        assert got == expected[: len(got)]
    else:
        assert got == expected
        assert buffer.pending == len(stream) - sum(len(f) for f in expected)


# ---------------------------------------------------------------------------------------------
# Mutations of valid messages

_MESSAGES = [x.encode() for x in FRONTEND_SAMPLES + BACKEND_SAMPLES]
_STARTUPS = [x.encode() for x in STARTUP_SAMPLES]


@st.composite
def mutated(draw: st.DrawFn, originals: list[bytes]) -> bytes:
    raw = bytearray(draw(st.sampled_from(originals)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "extend", "insert", "delete"]))
        where = draw(st.integers(0, max(len(raw) - 1, 0)))
        if op == "flip" and raw:
            raw[where] ^= draw(st.integers(1, 255))
        elif op == "truncate":
            del raw[where:]
        elif op == "extend":
            raw += draw(st.binary(min_size=1, max_size=8))
        elif op == "insert":
            raw[where:where] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete" and raw:
            del raw[where : where + draw(st.integers(1, 4))]
    return bytes(raw)


@FUZZ
@given(raw=mutated(_MESSAGES))
def test_mutated_message_decodes_or_raises_only_protocol_error(raw: bytes) -> None:
    if not raw:
        return
    front = decode_or_none(m.decode_frontend, raw[0], raw[5:])
    back = decode_or_none(m.decode_backend, raw[0], raw[5:])
    assert front is None or isinstance(front, FRONTEND_CLASSES)
    assert back is None or isinstance(back, BACKEND_CLASSES)


@FUZZ
@given(raw=mutated(_STARTUPS))
def test_mutated_startup_packet_decodes_or_raises_only_protocol_error(raw: bytes) -> None:
    decoded = decode_or_none(m.decode_startup, raw[4:])
    assert decoded is None or isinstance(decoded, STARTUP_CLASSES)


@FUZZ
@given(raws=st.lists(mutated(_MESSAGES), min_size=1, max_size=6), split=st.integers(0, 10_000))
def test_mutated_messages_through_the_framer_raise_only_protocol_error(
    raws: list[bytes], split: int
) -> None:
    stream = b"".join(raws)
    cut = split % (len(stream) + 1)
    buffer = FrameBuffer(1 << 16)
    try:
        for data in (stream[:cut], stream[cut:]):
            chunk, frames = buffer.push(data)
            for type_code, start, end in frames:
                decode_or_none(m.decode_frontend, type_code, chunk[start + 5 : end])
                decode_or_none(m.decode_backend, type_code, chunk[start + 5 : end])
    except ProtocolError:
        return
    expected, bad = reference_frames(stream, 1 << 16)
    assert not bad
    assert buffer.pending == len(stream) - sum(len(f) for f in expected)
