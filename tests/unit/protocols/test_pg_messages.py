"""The PostgreSQL v3 message codec: round trips, bytes from the protocol docs, malformed input.

Reference: PostgreSQL documentation, "Frontend/Backend Protocol" > "Message Formats".
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sqlgate.errors import ProtocolError
from sqlgate.protocols.postgres import messages as m

from .pg_samples import (
    BACKEND_SAMPLES,
    FRONTEND_SAMPLES,
    STARTUP_SAMPLES,
    split_frame,
    split_startup,
    union_members,
)

I16 = struct.Struct("!h")
I32 = struct.Struct("!i")
U32 = struct.Struct("!I")


def i16(n: int) -> bytes:
    return I16.pack(n)


def i32(n: int) -> bytes:
    return I32.pack(n)


def u32(n: int) -> bytes:
    return U32.pack(n)


def frontend_roundtrip(message: m.FrontendMessage) -> m.FrontendMessage:
    type_code, payload = split_frame(message.encode())
    return m.decode_frontend(type_code, payload)


def backend_roundtrip(message: m.BackendMessage) -> m.BackendMessage:
    type_code, payload = split_frame(message.encode())
    return m.decode_backend(type_code, payload)


# ---------------------------------------------------------------------------------------------
# Round trips of concrete messages


def test_frontend_samples_cover_every_frontend_message_class() -> None:
    assert union_members(m.FrontendMessage) == {type(x) for x in FRONTEND_SAMPLES}


def test_backend_samples_cover_every_backend_message_class() -> None:
    assert union_members(m.BackendMessage) == {type(x) for x in BACKEND_SAMPLES}


def test_startup_samples_cover_every_startup_packet_class() -> None:
    assert union_members(m.StartupPacket) == {type(x) for x in STARTUP_SAMPLES}


@pytest.mark.parametrize("message", FRONTEND_SAMPLES, ids=repr)
def test_frontend_message_survives_encode_then_decode(message: m.FrontendMessage) -> None:
    assert frontend_roundtrip(message) == message


@pytest.mark.parametrize("message", BACKEND_SAMPLES, ids=repr)
def test_backend_message_survives_encode_then_decode(message: m.BackendMessage) -> None:
    assert backend_roundtrip(message) == message


@pytest.mark.parametrize("message", STARTUP_SAMPLES, ids=repr)
def test_startup_packet_survives_encode_then_decode(message: m.StartupPacket) -> None:
    assert m.decode_startup(split_startup(message.encode())) == message


@pytest.mark.parametrize("message", FRONTEND_SAMPLES + BACKEND_SAMPLES, ids=repr)
def test_encoded_frame_length_field_counts_itself_and_payload(
    message: m.FrontendMessage | m.BackendMessage,
) -> None:
    raw = message.encode()
    assert U32.unpack(raw[1:5])[0] == len(raw) - 1


def test_bind_keeps_null_apart_from_empty_value() -> None:
    decoded = frontend_roundtrip(m.Bind("", "", (1,), (None, b"", b"\x00"), (1,)))
    assert isinstance(decoded, m.Bind)
    assert decoded.params == (None, b"", b"\x00")
    assert decoded.param_formats == (1,)
    assert decoded.result_formats == (1,)


def test_data_row_keeps_null_apart_from_empty_value() -> None:
    decoded = backend_roundtrip(m.DataRow((None, b"", None)))
    assert isinstance(decoded, m.DataRow)
    assert decoded.values == (None, b"", None)


def test_function_call_keeps_null_arguments_and_binary_result_format() -> None:
    decoded = frontend_roundtrip(m.FunctionCall(1598, (1,), (None, b"\x00\x00\x00\x07"), 1))
    assert decoded == m.FunctionCall(1598, (1,), (None, b"\x00\x00\x00\x07"), 1)


def test_copy_data_decodes_in_both_directions_to_the_same_message() -> None:
    type_code, payload = split_frame(m.CopyData(b"a\tb\n").encode())
    assert m.decode_frontend(type_code, payload) == m.decode_backend(type_code, payload)


def test_sasl_initial_response_decodes_as_password_message_with_mechanism_and_data() -> None:
    raw = m.sasl_initial_response("SCRAM-SHA-256", b"n,,n=,r=abc")
    decoded = m.decode_frontend(*split_frame(raw))
    assert decoded == m.PasswordMessage(b"SCRAM-SHA-256\x00" + i32(11) + b"n,,n=,r=abc")


def test_sasl_response_decodes_as_password_message_carrying_the_data() -> None:
    raw = m.sasl_response(b"c=biws,r=abc,p=xyz")
    assert m.decode_frontend(*split_frame(raw)) == m.PasswordMessage(b"c=biws,r=abc,p=xyz")


def test_password_message_password_strips_terminator_and_decodes_utf8() -> None:
    assert m.PasswordMessage("pässwörd".encode() + b"\x00").password == "pässwörd"


def test_password_message_password_without_terminator_is_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        _ = m.PasswordMessage(b"secret").password


def test_password_message_password_with_invalid_utf8_is_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        _ = m.PasswordMessage(b"\xff\xfe\x00").password


def test_error_response_exposes_sqlstate_and_message() -> None:
    error = m.ErrorResponse({"S": "ERROR", "C": "42501", "M": "permission denied"})
    assert (error.sqlstate, error.message) == ("42501", "permission denied")
    assert (m.ErrorResponse().sqlstate, m.ErrorResponse().message) == ("", "")


def test_error_response_helper_sets_both_severities_code_message_detail_and_hint() -> None:
    error = m.error_response("28P01", "login failed", severity="FATAL", hint="retry", detail="d")
    assert error.fields == {
        "S": "FATAL", "V": "FATAL", "C": "28P01", "M": "login failed", "D": "d", "H": "retry",
    }
    assert backend_roundtrip(error) == error


def test_error_response_helper_leaves_out_empty_hint_and_detail() -> None:
    assert set(m.error_response("42000", "x").fields) == {"S", "V", "C", "M"}


def test_error_response_field_codes_keep_their_order() -> None:
    decoded = backend_roundtrip(m.ErrorResponse({"M": "m", "C": "c", "S": "s"}))
    assert isinstance(decoded, m.ErrorResponse)
    assert list(decoded.fields) == ["M", "C", "S"]


def test_startup_message_keeps_minor_protocol_version() -> None:
    decoded = m.decode_startup(split_startup(m.StartupMessage({"user": "u"}, 196610).encode()))
    assert isinstance(decoded, m.StartupMessage)
    assert decoded.protocol == 196610


def test_encoding_a_string_with_nul_is_refused() -> None:
    with pytest.raises(ValueError, match="NUL"):
        m.Query("SELECT '\x00'").encode()


# ---------------------------------------------------------------------------------------------
# Round-trip properties

_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40)
_i16 = st.integers(-(2**15), 2**15 - 1)
_i32 = st.integers(-(2**31), 2**31 - 1)
_u32 = st.integers(0, 2**32 - 1)
_values = st.lists(st.none() | st.binary(max_size=30), max_size=12).map(tuple)
_formats = st.lists(_i16, max_size=8).map(tuple)
_field_code = st.characters(min_codepoint=1, max_codepoint=127)
_fields = st.dictionaries(_field_code, _text, max_size=10)
_field_descriptions = st.builds(
    m.FieldDescription, _text, _u32, _i16, _u32, _i16, _i32, _i16
)


@settings(max_examples=200, deadline=None)
@given(sql=_text)
def test_any_query_survives_round_trip(sql: str) -> None:
    assert frontend_roundtrip(m.Query(sql)) == m.Query(sql)


@settings(max_examples=200, deadline=None)
@given(name=_text, sql=_text, types=st.lists(_u32, max_size=20).map(tuple))
def test_any_parse_survives_round_trip(name: str, sql: str, types: tuple[int, ...]) -> None:
    assert frontend_roundtrip(m.Parse(name, sql, types)) == m.Parse(name, sql, types)


@settings(max_examples=200, deadline=None)
@given(portal=_text, statement=_text, fmts=_formats, params=_values, results=_formats)
def test_any_bind_survives_round_trip(
    portal: str,
    statement: str,
    fmts: tuple[int, ...],
    params: tuple[bytes | None, ...],
    results: tuple[int, ...],
) -> None:
    message = m.Bind(portal, statement, fmts, params, results)
    assert frontend_roundtrip(message) == message


@settings(max_examples=200, deadline=None)
@given(values=_values)
def test_any_data_row_survives_round_trip(values: tuple[bytes | None, ...]) -> None:
    assert backend_roundtrip(m.DataRow(values)) == m.DataRow(values)


@settings(max_examples=200, deadline=None)
@given(fields=st.lists(_field_descriptions, max_size=8).map(tuple))
def test_any_row_description_survives_round_trip(
    fields: tuple[m.FieldDescription, ...],
) -> None:
    assert backend_roundtrip(m.RowDescription(fields)) == m.RowDescription(fields)


@settings(max_examples=200, deadline=None)
@given(fields=_fields)
def test_any_error_response_survives_round_trip(fields: dict[str, str]) -> None:
    assert backend_roundtrip(m.ErrorResponse(fields)) == m.ErrorResponse(fields)


@settings(max_examples=200, deadline=None)
@given(tag=_text)
def test_any_command_complete_survives_round_trip(tag: str) -> None:
    assert backend_roundtrip(m.CommandComplete(tag)) == m.CommandComplete(tag)


@settings(max_examples=100, deadline=None)
@given(params=st.dictionaries(_text.filter(bool), _text, max_size=8))
def test_any_startup_message_survives_round_trip(params: dict[str, str]) -> None:
    decoded = m.decode_startup(split_startup(m.StartupMessage(params).encode()))
    assert decoded == m.StartupMessage(params)


# ---------------------------------------------------------------------------------------------
# Known bytes, written by hand from the protocol documentation

KNOWN_ENCODINGS: list[tuple[m.FrontendMessage | m.BackendMessage | m.StartupPacket, bytes]] = [
    (m.Query("SELECT 1"), b"Q\x00\x00\x00\rSELECT 1\x00"),
    (m.Sync(), b"S\x00\x00\x00\x04"),
    (m.Flush(), b"H\x00\x00\x00\x04"),
    (m.Terminate(), b"X\x00\x00\x00\x04"),
    (m.CopyDone(), b"c\x00\x00\x00\x04"),
    (m.Describe("P", ""), b"D\x00\x00\x00\x06P\x00"),
    (m.Close("S", "s1"), b"C\x00\x00\x00\x08Ss1\x00"),
    (m.Execute("", 0), b"E\x00\x00\x00\x09\x00\x00\x00\x00\x00"),
    (m.Parse("", "SELECT $1", (23,)),
     b"P\x00\x00\x00\x15\x00SELECT $1\x00\x00\x01\x00\x00\x00\x17"),
    (m.Bind("", ""), b"B\x00\x00\x00\x0c\x00\x00\x00\x00\x00\x00\x00\x00"),
    (m.Bind("", "", (1,), (b"\x00\x00\x00\x2a", None), (0,)),
     b"B\x00\x00\x00\x1c\x00\x00" b"\x00\x01\x00\x01" b"\x00\x02\x00\x00\x00\x04\x00\x00\x00\x2a"
     b"\xff\xff\xff\xff" b"\x00\x01\x00\x00"),
    (m.PasswordMessage(b"pw\x00"), b"p\x00\x00\x00\x07pw\x00"),
    (m.FunctionCall(1598, (), (None,), 1),
     b"F\x00\x00\x00\x12\x00\x00\x06\x3e\x00\x00\x00\x01\xff\xff\xff\xff\x00\x01"),
    (m.AuthenticationOk(), b"R\x00\x00\x00\x08\x00\x00\x00\x00"),
    (m.AuthenticationCleartextPassword(), b"R\x00\x00\x00\x08\x00\x00\x00\x03"),
    (m.AuthenticationMD5Password(b"\x01\x02\x03\x04"),
     b"R\x00\x00\x00\x0c\x00\x00\x00\x05\x01\x02\x03\x04"),
    (m.AuthenticationSASL(("SCRAM-SHA-256",)),
     b"R\x00\x00\x00\x17\x00\x00\x00\x0aSCRAM-SHA-256\x00\x00"),
    (m.AuthenticationSASLContinue(b"r=x"), b"R\x00\x00\x00\x0b\x00\x00\x00\x0br=x"),
    (m.AuthenticationSASLFinal(b"v=y"), b"R\x00\x00\x00\x0b\x00\x00\x00\x0cv=y"),
    (m.ReadyForQuery("I"), b"Z\x00\x00\x00\x05I"),
    (m.ReadyForQuery("T"), b"Z\x00\x00\x00\x05T"),
    (m.ReadyForQuery("E"), b"Z\x00\x00\x00\x05E"),
    (m.ParameterStatus("client_encoding", "UTF8"),
     b"S\x00\x00\x00\x19client_encoding\x00UTF8\x00"),
    (m.BackendKeyData(1234, 0xFFFFFFFF), b"K\x00\x00\x00\x0c\x00\x00\x04\xd2\xff\xff\xff\xff"),
    (m.RowDescription((m.FieldDescription("?column?", 0, 0, 23, 4, -1, 0),)),
     b"T\x00\x00\x00\x21\x00\x01?column?\x00"
     b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff\x00\x00"),
    (m.DataRow((b"1", None)), b"D\x00\x00\x00\x0f\x00\x02\x00\x00\x00\x011\xff\xff\xff\xff"),
    (m.CommandComplete("SELECT 1"), b"C\x00\x00\x00\x0dSELECT 1\x00"),
    (m.EmptyQueryResponse(), b"I\x00\x00\x00\x04"),
    (m.ErrorResponse({"S": "ERROR", "C": "42601", "M": "bad"}),
     b"E\x00\x00\x00\x18SERROR\x00C42601\x00Mbad\x00\x00"),
    (m.NoticeResponse({"M": "hi"}), b"N\x00\x00\x00\x09Mhi\x00\x00"),
    (m.NotificationResponse(7, "ch", "p"), b"A\x00\x00\x00\x0d\x00\x00\x00\x07ch\x00p\x00"),
    (m.ParseComplete(), b"1\x00\x00\x00\x04"),
    (m.BindComplete(), b"2\x00\x00\x00\x04"),
    (m.CloseComplete(), b"3\x00\x00\x00\x04"),
    (m.NoData(), b"n\x00\x00\x00\x04"),
    (m.PortalSuspended(), b"s\x00\x00\x00\x04"),
    (m.ParameterDescription((23, 25)),
     b"t\x00\x00\x00\x0e\x00\x02\x00\x00\x00\x17\x00\x00\x00\x19"),
    (m.CopyResponse("G", 0, (0, 1)), b"G\x00\x00\x00\x0b\x00\x00\x02\x00\x00\x00\x01"),
    (m.CopyResponse("H", 1, ()), b"H\x00\x00\x00\x07\x01\x00\x00"),
    (m.NegotiateProtocolVersion(0, ("_pq_.x",)),
     b"v\x00\x00\x00\x13\x00\x00\x00\x00\x00\x00\x00\x01_pq_.x\x00"),
    (m.FunctionCallResponse(None), b"V\x00\x00\x00\x08\xff\xff\xff\xff"),
    (m.FunctionCallResponse(b"ok"), b"V\x00\x00\x00\x0a\x00\x00\x00\x02ok"),
    (m.SSLRequest(), b"\x00\x00\x00\x08\x04\xd2\x16\x2f"),
    (m.GSSENCRequest(), b"\x00\x00\x00\x08\x04\xd2\x16\x30"),
    (m.CancelRequest(1234, 5678),
     b"\x00\x00\x00\x10\x04\xd2\x16\x2e\x00\x00\x04\xd2\x00\x00\x16\x2e"),
    (m.StartupMessage({"user": "postgres"}),
     b"\x00\x00\x00\x17\x00\x03\x00\x00user\x00postgres\x00\x00"),
]


_KNOWN = [
    pytest.param(msg, raw, id=f"{type(msg).__name__}-{i}") for i, (msg, raw) in enumerate(KNOWN_ENCODINGS)
]


@pytest.mark.parametrize(("message", "expected"), _KNOWN)
def test_encode_matches_documented_bytes(
    message: m.FrontendMessage | m.BackendMessage | m.StartupPacket, expected: bytes
) -> None:
    assert message.encode() == expected


_FRONTEND_TYPES = {type(x) for x in FRONTEND_SAMPLES}
_BACKEND_TYPES = {type(x) for x in BACKEND_SAMPLES}


@pytest.mark.parametrize(("message", "raw"), _KNOWN)
def test_documented_bytes_decode_to_the_message(
    message: m.FrontendMessage | m.BackendMessage | m.StartupPacket, raw: bytes
) -> None:
    decoded: object
    if isinstance(message, m.SSLRequest | m.GSSENCRequest | m.CancelRequest | m.StartupMessage):
        decoded = m.decode_startup(raw[4:])
    elif type(message) in _FRONTEND_TYPES and type(message) not in _BACKEND_TYPES:
        decoded = m.decode_frontend(raw[0], raw[5:])
    elif type(message) in _BACKEND_TYPES and type(message) not in _FRONTEND_TYPES:
        decoded = m.decode_backend(raw[0], raw[5:])
    else:  # CopyDone and CopyData go both ways
        assert m.decode_frontend(raw[0], raw[5:]) == message
        decoded = m.decode_backend(raw[0], raw[5:])
    assert decoded == message


def test_protocol_constants_match_the_documentation() -> None:
    assert m.PROTOCOL_V3 == 196608 == 3 << 16
    assert m.SSL_REQUEST_CODE == (1234 << 16) | 5679 == 80877103
    assert m.GSSENC_REQUEST_CODE == (1234 << 16) | 5680
    assert m.CANCEL_REQUEST_CODE == (1234 << 16) | 5678


def test_same_type_byte_means_different_messages_per_direction() -> None:
    assert m.decode_frontend(ord("D"), b"S\x00") == m.Describe("S", "")
    assert m.decode_backend(ord("D"), i16(0)) == m.DataRow(())
    assert m.decode_frontend(ord("S"), b"") == m.Sync()
    assert m.decode_backend(ord("S"), b"a\x00b\x00") == m.ParameterStatus("a", "b")


def test_unknown_authentication_codes_decode_as_other_with_their_data() -> None:
    assert m.decode_backend(ord("R"), i32(9)) == m.AuthenticationOther(9, b"")
    assert m.decode_backend(ord("R"), i32(-3) + b"xy") == m.AuthenticationOther(-3, b"xy")


def test_cancel_request_secret_key_is_unsigned_and_process_id_signed() -> None:
    payload = u32(m.CANCEL_REQUEST_CODE) + b"\xff\xff\xff\xfe" + b"\xff\xff\xff\xff"
    assert m.decode_startup(payload) == m.CancelRequest(-2, 0xFFFFFFFF)


def test_messages_without_fields_decode_from_an_empty_payload() -> None:
    assert m.decode_frontend(ord("S"), b"") == m.Sync()
    assert m.decode_backend(ord("I"), b"") == m.EmptyQueryResponse()


# ---------------------------------------------------------------------------------------------
# Malformed input: always ProtocolError

MALFORMED_FRONTEND: list[tuple[str, int, bytes]] = [
    ("query empty payload", ord("Q"), b""),
    ("query missing NUL", ord("Q"), b"SELECT 1"),
    ("query trailing bytes", ord("Q"), b"SELECT 1\x00x"),
    ("query two strings", ord("Q"), b"SELECT 1\x00\x00"),
    ("query invalid UTF-8", ord("Q"), b"SELECT '\xff\xfe'\x00"),
    ("query overlong UTF-8", ord("Q"), b"\xc0\xaf\x00"),
    ("query lone surrogate as UTF-8", ord("Q"), b"\xed\xa0\x80\x00"),
    ("parse missing sql", ord("P"), b"name\x00"),
    ("parse missing count", ord("P"), b"\x00SELECT 1\x00"),
    ("parse half a count", ord("P"), b"\x00SELECT 1\x00\x00"),
    ("parse negative count", ord("P"), b"\x00SELECT $1\x00" + i16(-1)),
    ("parse truncated type oid", ord("P"), b"\x00SELECT $1\x00" + i16(1) + b"\x00\x00"),
    ("parse fewer oids than count", ord("P"), b"\x00q\x00" + i16(2) + u32(23)),
    ("parse trailing bytes", ord("P"), b"\x00q\x00" + i16(0) + b"\x00"),
    ("parse invalid UTF-8 name", ord("P"), b"\x80\x00q\x00" + i16(0)),
    ("bind empty payload", ord("B"), b""),
    ("bind missing statement", ord("B"), b"portal\x00"),
    ("bind negative format count", ord("B"), b"\x00\x00" + i16(-1) + i16(0) + i16(0)),
    ("bind negative param count", ord("B"), b"\x00\x00" + i16(0) + i16(-2) + i16(0)),
    ("bind value length -2", ord("B"), b"\x00\x00" + i16(0) + i16(1) + i32(-2) + i16(0)),
    ("bind value length int32 min", ord("B"), b"\x00\x00" + i16(0) + i16(1) + i32(-(2**31)) + i16(0)),
    ("bind value longer than payload", ord("B"), b"\x00\x00" + i16(0) + i16(1) + i32(10) + b"abc"),
    ("bind truncated value length", ord("B"), b"\x00\x00" + i16(0) + i16(1) + b"\x00\x00"),
    ("bind missing result formats", ord("B"), b"\x00\x00" + i16(0) + i16(0)),
    ("bind negative result format count", ord("B"), b"\x00\x00" + i16(0) + i16(0) + i16(-1)),
    ("bind truncated result formats", ord("B"), b"\x00\x00" + i16(0) + i16(0) + i16(2) + i16(1)),
    ("bind trailing bytes", ord("B"), b"\x00\x00" + i16(0) + i16(0) + i16(0) + b"\x00"),
    ("bind invalid UTF-8 portal", ord("B"), b"\xff\x00\x00" + i16(0) + i16(0) + i16(0)),
    ("describe empty", ord("D"), b""),
    ("describe bad kind", ord("D"), b"X\x00"),
    ("describe lowercase kind", ord("D"), b"s\x00"),
    ("describe missing NUL", ord("D"), b"Sname"),
    ("describe trailing bytes", ord("D"), b"Sname\x00\x00"),
    ("execute missing max rows", ord("E"), b"\x00"),
    ("execute truncated max rows", ord("E"), b"\x00\x00\x00"),
    ("execute trailing bytes", ord("E"), b"\x00" + i32(0) + b"\x00"),
    ("close bad kind", ord("C"), b"Q\x00"),
    ("close missing NUL", ord("C"), b"P"),
    ("sync trailing byte", ord("S"), b"\x00"),
    ("flush trailing byte", ord("H"), b"x"),
    ("terminate trailing byte", ord("X"), b"x"),
    ("copy done trailing byte", ord("c"), b"x"),
    ("copy fail missing NUL", ord("f"), b"oops"),
    ("copy fail invalid UTF-8", ord("f"), b"\xfe\x00"),
    ("copy fail trailing", ord("f"), b"oops\x00!"),
    ("function call truncated oid", ord("F"), b"\x00\x00\x06"),
    ("function call negative format count", ord("F"), u32(1) + i16(-1) + i16(0) + i16(0)),
    ("function call negative arg count", ord("F"), u32(1) + i16(0) + i16(-1) + i16(0)),
    ("function call arg length -5", ord("F"), u32(1) + i16(0) + i16(1) + i32(-5) + i16(0)),
    ("function call missing result format", ord("F"), u32(1) + i16(0) + i16(0)),
    ("function call trailing bytes", ord("F"), u32(1) + i16(0) + i16(0) + i16(0) + b"\x00"),
]

MALFORMED_BACKEND: list[tuple[str, int, bytes]] = [
    ("auth empty", ord("R"), b""),
    ("auth truncated code", ord("R"), b"\x00\x00\x00"),
    ("auth ok trailing", ord("R"), i32(0) + b"\x00"),
    ("auth cleartext trailing", ord("R"), i32(3) + b"x"),
    ("auth md5 salt too short", ord("R"), i32(5) + b"\x01\x02\x03"),
    ("auth md5 salt too long", ord("R"), i32(5) + b"\x01\x02\x03\x04\x05"),
    ("auth sasl missing list terminator", ord("R"), i32(10) + b"SCRAM-SHA-256\x00"),
    ("auth sasl missing NUL", ord("R"), i32(10) + b"SCRAM-SHA-256"),
    ("auth sasl invalid UTF-8", ord("R"), i32(10) + b"\xff\x00\x00"),
    ("auth sasl trailing", ord("R"), i32(10) + b"\x00x"),
    ("parameter status missing value", ord("S"), b"name\x00"),
    ("parameter status value missing NUL", ord("S"), b"name\x00value"),
    ("parameter status invalid UTF-8", ord("S"), b"n\x00\xc3\x00"),
    ("backend key data short", ord("K"), i32(1) + b"\x00\x00"),
    ("backend key data long", ord("K"), i32(1) + i32(2) + b"\x00"),
    ("ready for query empty", ord("Z"), b""),
    ("ready for query bad status", ord("Z"), b"X"),
    ("ready for query NUL status", ord("Z"), b"\x00"),
    ("ready for query lowercase status", ord("Z"), b"i"),
    ("ready for query two bytes", ord("Z"), b"II"),
    ("row description empty", ord("T"), b""),
    ("row description negative count", ord("T"), i16(-1)),
    ("row description missing field", ord("T"), i16(1)),
    ("row description name missing NUL", ord("T"), i16(1) + b"col"),
    ("row description truncated field", ord("T"), i16(1) + b"col\x00" + b"\x00" * 17),
    ("row description trailing", ord("T"), i16(0) + b"\x00"),
    ("row description invalid UTF-8 name", ord("T"), i16(1) + b"\xff\x00" + b"\x00" * 18),
    ("data row empty", ord("D"), b""),
    ("data row negative count", ord("D"), i16(-1)),
    ("data row value length -2", ord("D"), i16(1) + i32(-2)),
    ("data row value length int32 min", ord("D"), i16(1) + i32(-(2**31))),
    ("data row value past end", ord("D"), i16(1) + i32(5) + b"abcd"),
    ("data row truncated value length", ord("D"), i16(1) + b"\xff\xff"),
    ("data row fewer values than count", ord("D"), i16(2) + i32(-1)),
    ("data row trailing", ord("D"), i16(1) + i32(-1) + b"\x00"),
    ("command complete missing NUL", ord("C"), b"SELECT 1"),
    ("command complete invalid UTF-8", ord("C"), b"\xe2\x82\x00"),
    ("command complete trailing", ord("C"), b"SELECT 1\x00\x00"),
    ("empty query response trailing", ord("I"), b"\x00"),
    ("error response empty", ord("E"), b""),
    ("error response missing terminator", ord("E"), b"SERROR\x00"),
    ("error response value missing NUL", ord("E"), b"SERROR"),
    ("error response code without value", ord("E"), b"S"),
    ("error response invalid UTF-8", ord("E"), b"M\xff\x00\x00"),
    ("error response trailing", ord("E"), b"\x00\x00"),
    ("notice response missing terminator", ord("N"), b"MHi\x00"),
    ("notification truncated pid", ord("A"), b"\x00\x00"),
    ("notification missing payload", ord("A"), i32(1) + b"ch\x00"),
    ("notification trailing", ord("A"), i32(1) + b"ch\x00p\x00x"),
    ("parse complete trailing", ord("1"), b"\x00"),
    ("bind complete trailing", ord("2"), b"\x00"),
    ("close complete trailing", ord("3"), b"\x00"),
    ("no data trailing", ord("n"), b"\x00"),
    ("portal suspended trailing", ord("s"), b"\x00"),
    ("parameter description empty", ord("t"), b""),
    ("parameter description truncated oid", ord("t"), i16(1) + b"\x00\x00"),
    ("parameter description fewer oids than count", ord("t"), i16(2) + u32(23)),
    ("parameter description trailing", ord("t"), i16(0) + b"\x00"),
    ("copy in response empty", ord("G"), b""),
    ("copy out response missing count", ord("H"), b"\x00"),
    ("copy both response negative count", ord("W"), b"\x00" + i16(-1)),
    ("copy in response truncated formats", ord("G"), b"\x00" + i16(2) + i16(0)),
    ("copy done trailing", ord("c"), b"\x00"),
    ("negotiate truncated", ord("v"), i32(0) + b"\x00"),
    ("negotiate negative option count", ord("v"), i32(0) + i32(-1)),
    ("negotiate missing option", ord("v"), i32(0) + i32(1)),
    ("negotiate option missing NUL", ord("v"), i32(0) + i32(1) + b"_pq_.x"),
    ("negotiate trailing", ord("v"), i32(0) + i32(0) + b"\x00"),
    ("function call response empty", ord("V"), b""),
    ("function call response length -2", ord("V"), i32(-2)),
    ("function call response value past end", ord("V"), i32(3) + b"ab"),
    ("function call response trailing", ord("V"), i32(-1) + b"\x00"),
]

MALFORMED_STARTUP: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("truncated code", b"\x00\x03\x00"),
    ("ssl request trailing", u32(m.SSL_REQUEST_CODE) + b"\x00"),
    ("gssenc request trailing", u32(m.GSSENC_REQUEST_CODE) + b"\x00\x00\x00\x00"),
    ("cancel request missing key", u32(m.CANCEL_REQUEST_CODE) + i32(1)),
    ("cancel request truncated key", u32(m.CANCEL_REQUEST_CODE) + i32(1) + b"\x00\x00\x00"),
    ("cancel request trailing", u32(m.CANCEL_REQUEST_CODE) + i32(1) + i32(2) + b"\x00"),
    ("protocol 2.0", u32(2 << 16) + b"user\x00u\x00\x00"),
    ("protocol 4.0", u32(4 << 16) + b"user\x00u\x00\x00"),
    ("protocol 1.0", u32(1 << 16) + b"\x00"),
    ("protocol 0.0", u32(0) + b"\x00"),
    ("negative code", i32(-1) + b"\x00"),
    ("unknown 1234.5681 request", u32((1234 << 16) | 5681)),
    ("params missing final NUL", u32(m.PROTOCOL_V3) + b"user\x00u\x00"),
    ("key without value", u32(m.PROTOCOL_V3) + b"user\x00"),
    ("value missing NUL", u32(m.PROTOCOL_V3) + b"user\x00u"),
    ("no parameter list at all", u32(m.PROTOCOL_V3)),
    ("duplicate key", u32(m.PROTOCOL_V3) + b"user\x00a\x00user\x00b\x00\x00"),
    ("invalid UTF-8 key", u32(m.PROTOCOL_V3) + b"\xff\x00a\x00\x00"),
    ("invalid UTF-8 value", u32(m.PROTOCOL_V3) + b"user\x00\xc3(\x00\x00"),
    ("trailing after terminator", u32(m.PROTOCOL_V3) + b"user\x00u\x00\x00x"),
]


@pytest.mark.parametrize(
    ("type_code", "payload"), [pytest.param(t, p, id=d) for d, t, p in MALFORMED_FRONTEND]
)
def test_malformed_frontend_payload_raises_protocol_error(type_code: int, payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        m.decode_frontend(type_code, payload)


@pytest.mark.parametrize(
    ("type_code", "payload"), [pytest.param(t, p, id=d) for d, t, p in MALFORMED_BACKEND]
)
def test_malformed_backend_payload_raises_protocol_error(type_code: int, payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        m.decode_backend(type_code, payload)


@pytest.mark.parametrize("payload", [pytest.param(p, id=d) for d, p in MALFORMED_STARTUP])
def test_malformed_startup_packet_raises_protocol_error(payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        m.decode_startup(payload)


def test_unsupported_protocol_version_is_named_in_the_error() -> None:
    with pytest.raises(ProtocolError, match=r"2\.0"):
        m.decode_startup(u32(2 << 16) + b"\x00")


def test_duplicate_startup_key_is_named_in_the_error() -> None:
    with pytest.raises(ProtocolError, match="database"):
        m.decode_startup(u32(m.PROTOCOL_V3) + b"database\x00a\x00database\x00a\x00\x00")


_KNOWN_FRONTEND_CODES = frozenset(b"QPBDECSHXpFdcf")
_KNOWN_BACKEND_CODES = frozenset(b"RSKZTDCIENA123nstGHWdcvV")


def test_every_unknown_frontend_type_byte_raises_protocol_error() -> None:
    accepted = []
    for code in range(256):
        if code in _KNOWN_FRONTEND_CODES:
            continue
        try:
            m.decode_frontend(code, b"")
        except ProtocolError:
            continue
        accepted.append(bytes([code]))
    assert accepted == []


def test_every_unknown_backend_type_byte_raises_protocol_error() -> None:
    accepted = []
    for code in range(256):
        if code in _KNOWN_BACKEND_CODES:
            continue
        try:
            m.decode_backend(code, b"")
        except ProtocolError:
            continue
        accepted.append(bytes([code]))
    assert accepted == []


def test_backend_only_type_byte_is_unknown_to_the_frontend_decoder() -> None:
    with pytest.raises(ProtocolError, match="unknown frontend"):
        m.decode_frontend(ord("Z"), b"I")


def test_frontend_only_type_byte_is_unknown_to_the_backend_decoder() -> None:
    with pytest.raises(ProtocolError, match="unknown backend"):
        m.decode_backend(ord("Q"), b"SELECT 1\x00")


@pytest.mark.parametrize("message", FRONTEND_SAMPLES + BACKEND_SAMPLES, ids=repr)
def test_every_proper_prefix_of_a_payload_is_refused_or_a_different_message(
    message: m.FrontendMessage | m.BackendMessage,
) -> None:
    """A truncated payload never decodes to the original message (and never crashes)."""
    type_code, payload = split_frame(message.encode())
    decode = m.decode_frontend if type(message) in _FRONTEND_TYPES else m.decode_backend
    for cut in range(len(payload)):
        try:
            decoded = decode(type_code, payload[:cut])
        except ProtocolError:
            continue
        assert decoded != message, f"prefix of {cut} bytes decoded to the whole message"


_OPEN_ENDED = (  # the last field of these is "the rest of the payload"
    m.PasswordMessage,
    m.CopyData,
    m.AuthenticationSASLContinue,
    m.AuthenticationSASLFinal,
    m.AuthenticationOther,
)
_FIXED_LAYOUT_SAMPLES = [
    x for x in FRONTEND_SAMPLES + BACKEND_SAMPLES if not isinstance(x, _OPEN_ENDED)
]


@pytest.mark.parametrize("message", _FIXED_LAYOUT_SAMPLES, ids=repr)
def test_a_trailing_byte_after_a_fixed_layout_payload_is_refused(
    message: m.FrontendMessage | m.BackendMessage,
) -> None:
    """Every message whose layout does not end in 'the rest of the payload' refuses extra bytes."""
    type_code, payload = split_frame(message.encode())
    decode = m.decode_frontend if type(message) in _FRONTEND_TYPES else m.decode_backend
    with pytest.raises(ProtocolError):
        decode(type_code, payload + b"\x00")


# ---------------------------------------------------------------------------------------------
# Bugs: decoded messages that the module's own encoder cannot faithfully re-encode


@pytest.mark.parametrize("type_code", [ord("E"), ord("N")])
def test_error_field_with_non_ascii_code_byte_re_encodes_to_the_same_bytes(type_code: int) -> None:
    """Field type codes are single bytes: decode maps byte 0xE9 to chr(0xE9), so encoding must
    map it back to the one byte 0xE9, not to its two-byte UTF-8 form."""
    payload = b"\xe9value\x00SERROR\x00\x00"
    decoded = m.decode_backend(type_code, payload)
    assert decoded.encode() == m.frame(bytes([type_code]), payload)
