"""Concrete PostgreSQL v3 messages covering every message class, shared by the codec tests.

Not a test module: the unit tests use these for round trips and the fuzz tests use them as
seeds to mutate.
"""

from __future__ import annotations

import struct
import typing

from sqlgate.protocols.postgres import messages as m

_FIELD_INT4 = m.FieldDescription("?column?", 0, 0, 23, 4, -1, 0)
_FIELD_UNICODE = m.FieldDescription("prénom_名前", 16384, 3, 25, -1, -1, 1)
_FIELD_EXTREMES = m.FieldDescription("", 0xFFFFFFFF, -32768, 0xFFFFFFFF, 32767, -(2**31), -1)

FRONTEND_SAMPLES: list[m.FrontendMessage] = [
    m.Query("SELECT 1"),
    m.Query(""),
    m.Query("SELECT 'héllo wörld ✓ 😀'"),
    m.Parse("", "SELECT $1"),
    m.Parse("stmt_1", "INSERT INTO t VALUES ($1, $2)", (23, 25)),
    m.Parse("名前", "SELECT $1::uuid", (0xFFFFFFFF,)),
    m.Bind("", ""),
    m.Bind("portal", "stmt", (0,), (b"42",), (1,)),
    m.Bind("", "s", (1, 0), (None, b"", b"\x00\xff\x00"), (1, 1, 0)),
    m.Bind("ポータル", "", (), (None,), ()),
    m.Describe("S", "stmt"),
    m.Describe("P", ""),
    m.Execute(""),
    m.Execute("portal", 100),
    m.Execute("p", 2**31 - 1),
    m.Close("S", "stmt_1"),
    m.Close("P", ""),
    m.Sync(),
    m.Flush(),
    m.Terminate(),
    m.PasswordMessage(b"secret\x00"),
    m.PasswordMessage(b"md5" + b"0" * 32 + b"\x00"),
    m.PasswordMessage(b""),
    m.FunctionCall(1598, (1,), (b"\x00\x00\x00\x2a", None), 1),
    m.FunctionCall(0xFFFFFFFF, (), (), 0),
    m.FunctionCall(42, (0, 1), (b"", None, b"text"), -1),
    m.CopyData(b"1\tAlice\n"),
    m.CopyData(b""),
    m.CopyDone(),
    m.CopyFail("aborted by user: ¡no!"),
    m.CopyFail(""),
]

BACKEND_SAMPLES: list[m.BackendMessage] = [
    m.AuthenticationOk(),
    m.AuthenticationCleartextPassword(),
    m.AuthenticationMD5Password(b"\x01\x02\x03\x04"),
    m.AuthenticationSASL(("SCRAM-SHA-256-PLUS", "SCRAM-SHA-256")),
    m.AuthenticationSASL(()),
    m.AuthenticationSASLContinue(b"r=abc,s=c2FsdA==,i=4096"),
    m.AuthenticationSASLFinal(b"v=c2lnbmF0dXJl"),
    m.AuthenticationOther(7, b""),
    m.AuthenticationOther(8, b"\x00gss-continue\xff"),
    m.ParameterStatus("server_version", "16.2"),
    m.ParameterStatus("application_name", ""),
    m.ParameterStatus("TimeZone", "Europe/Zürich"),
    m.BackendKeyData(12345, 0xDEADBEEF),
    m.BackendKeyData(-1, 0),
    m.ReadyForQuery("I"),
    m.ReadyForQuery("T"),
    m.ReadyForQuery("E"),
    m.RowDescription(()),
    m.RowDescription((_FIELD_INT4,)),
    m.RowDescription((_FIELD_INT4, _FIELD_UNICODE, _FIELD_EXTREMES)),
    m.DataRow(()),
    m.DataRow((b"1",)),
    m.DataRow((None, b"", b"\x00\x01\xff", "日本語".encode())),
    m.CommandComplete("SELECT 1"),
    m.CommandComplete("INSERT 0 5"),
    m.CommandComplete(""),
    m.EmptyQueryResponse(),
    m.ErrorResponse({"S": "ERROR", "V": "ERROR", "C": "42601", "M": "syntax error at or near \"SELEC\""}),
    m.ErrorResponse({}),
    m.ErrorResponse({"S": "FEHLER", "C": "22P02", "M": "ungültige Eingabe", "H": "", "P": "8"}),
    m.NoticeResponse({"S": "NOTICE", "C": "00000", "M": "table \"t\" does not exist, skipping"}),
    m.NoticeResponse({}),
    m.NotificationResponse(4242, "events", '{"id": 1}'),
    m.NotificationResponse(-7, "チャンネル", ""),
    m.ParseComplete(),
    m.BindComplete(),
    m.CloseComplete(),
    m.NoData(),
    m.PortalSuspended(),
    m.ParameterDescription(()),
    m.ParameterDescription((23, 25, 0xFFFFFFFF)),
    m.CopyResponse("G", 0, (0, 0)),
    m.CopyResponse("H", 1, (1,)),
    m.CopyResponse("W", 0, ()),
    m.CopyData(b"2\tBob\n"),
    m.CopyDone(),
    m.NegotiateProtocolVersion(0, ()),
    m.NegotiateProtocolVersion(2, ("_pq_.compression", "_pq_.ünknown")),
    m.FunctionCallResponse(b"\x00\x00\x00\x01"),
    m.FunctionCallResponse(b""),
    m.FunctionCallResponse(None),
]

STARTUP_SAMPLES: list[m.StartupPacket] = [
    m.StartupMessage({"user": "postgres"}),
    m.StartupMessage({"user": "ålice", "database": "données", "application_name": ""}),
    m.StartupMessage({}),
    m.StartupMessage({"user": "u", "_pq_.extension": "on"}, protocol=(3 << 16) | 2),
    m.SSLRequest(),
    m.GSSENCRequest(),
    m.CancelRequest(12345, 0xCAFEBABE),
    m.CancelRequest(-2**31, 0),
]


def split_frame(raw: bytes) -> tuple[int, bytes]:
    """(type byte, payload) of one complete typed frame, checking that its length is right."""
    (length,) = struct.unpack("!I", raw[1:5])
    assert length == len(raw) - 1, f"length field {length} but frame has {len(raw)} bytes"
    return raw[0], raw[5:]


def split_startup(raw: bytes) -> bytes:
    """Payload of one complete untyped startup packet, checking that its length is right."""
    (length,) = struct.unpack("!I", raw[:4])
    assert length == len(raw), f"length field {length} but packet has {len(raw)} bytes"
    return raw[4:]


def union_members(union: object) -> set[type]:
    """The classes of a `A | B | ...` alias, flattening nested unions."""
    members: set[type] = set()
    for arg in typing.get_args(union):
        if typing.get_args(arg):
            members |= union_members(arg)
        else:
            members.add(arg)
    return members
