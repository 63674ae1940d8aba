"""Typed PostgreSQL v3 protocol messages, with decoding from and encoding to payload bytes.

Every message is a frozen dataclass. `decode_frontend` / `decode_backend` take the type byte
and the payload (the bytes after the 4-byte length) and raise `ProtocolError` on anything
malformed; `encode` returns the complete frame. Nothing here does I/O.

Reference: PostgreSQL documentation, "Frontend/Backend Protocol", "Message Formats".
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlgate.errors import ProtocolError

PROTOCOL_V3 = 196608  # 3 << 16
SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
CANCEL_REQUEST_CODE = 80877102

_I16 = struct.Struct("!h")
_U16 = struct.Struct("!H")
_I32 = struct.Struct("!i")
_HEADER = struct.Struct("!cI")


# ---------------------------------------------------------------------------------------------
# Payload reading


class _Reader:
    """Cursor over a payload; every read checks bounds so malformed input is a ProtocolError."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def _take(self, n: int) -> bytes:
        if n < 0 or self._pos + n > len(self._data):
            raise ProtocolError("message is shorter than its contents claim")
        chunk = self._data[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def byte(self) -> int:
        return self._take(1)[0]

    def int16(self) -> int:
        return int(_I16.unpack(self._take(2))[0])

    def uint16(self) -> int:
        return int(_U16.unpack(self._take(2))[0])

    def int32(self) -> int:
        return int(_I32.unpack(self._take(4))[0])

    def cstring(self) -> str:
        end = self._data.find(b"\x00", self._pos)
        if end < 0:
            raise ProtocolError("string is not NUL-terminated")
        raw = self._data[self._pos : end]
        self._pos = end + 1
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("string is not valid UTF-8") from None

    def bytes_(self, n: int) -> bytes:
        return self._take(n)

    def rest(self) -> bytes:
        chunk = self._data[self._pos :]
        self._pos = len(self._data)
        return chunk

    def value(self) -> bytes | None:
        """A length-prefixed value where -1 means NULL (DataRow, Bind, FunctionCall)."""
        n = self.int32()
        if n == -1:
            return None
        if n < -1:
            raise ProtocolError(f"negative value length {n}")
        return self._take(n)

    def end(self) -> None:
        if self._pos != len(self._data):
            raise ProtocolError("message has trailing bytes")


def _cstr(value: str) -> bytes:
    raw = value.encode("utf-8")
    if b"\x00" in raw:
        raise ValueError("protocol strings cannot contain NUL")
    return raw + b"\x00"


def _values(values: Sequence[bytes | None]) -> bytes:
    parts = [_U16.pack(len(values))]
    for v in values:
        parts.append(_I32.pack(-1) if v is None else _I32.pack(len(v)) + v)
    return b"".join(parts)


def frame(type_code: bytes, payload: bytes) -> bytes:
    """A complete message: type byte, length (including itself), payload."""
    return _HEADER.pack(type_code, len(payload) + 4) + payload


# ---------------------------------------------------------------------------------------------
# Startup-phase messages (no type byte)


@dataclass(frozen=True, slots=True)
class StartupMessage:
    params: dict[str, str]
    protocol: int = PROTOCOL_V3

    def encode(self) -> bytes:
        body = _I32.pack(self.protocol)
        body += b"".join(_cstr(k) + _cstr(v) for k, v in self.params.items()) + b"\x00"
        return _I32.pack(len(body) + 4) + body


@dataclass(frozen=True, slots=True)
class SSLRequest:
    def encode(self) -> bytes:
        return _I32.pack(8) + _I32.pack(SSL_REQUEST_CODE)


@dataclass(frozen=True, slots=True)
class GSSENCRequest:
    def encode(self) -> bytes:
        return _I32.pack(8) + _I32.pack(GSSENC_REQUEST_CODE)


@dataclass(frozen=True, slots=True)
class CancelRequest:
    process_id: int
    secret_key: int

    def encode(self) -> bytes:
        return (
            _I32.pack(16)
            + _I32.pack(CANCEL_REQUEST_CODE)
            + struct.pack("!iI", self.process_id, self.secret_key)
        )


StartupPacket = StartupMessage | SSLRequest | GSSENCRequest | CancelRequest


def decode_startup(payload: bytes) -> StartupPacket:
    """Decode the untyped first packet of a connection (payload excludes the length)."""
    r = _Reader(payload)
    code = r.int32()
    if code == SSL_REQUEST_CODE:
        r.end()
        return SSLRequest()
    if code == GSSENC_REQUEST_CODE:
        r.end()
        return GSSENCRequest()
    if code == CANCEL_REQUEST_CODE:
        pid = r.int32()
        secret = struct.unpack("!I", r.bytes_(4))[0]
        r.end()
        return CancelRequest(pid, secret)
    if code >> 16 != 3:
        raise ProtocolError(f"unsupported protocol version {code >> 16}.{code & 0xFFFF}")
    params: dict[str, str] = {}
    while True:
        key = r.cstring()
        if key == "":
            break
        if key in params:
            raise ProtocolError(f"startup parameter {key!r} given twice")
        params[key] = r.cstring()
    r.end()
    return StartupMessage(params, code)


# ---------------------------------------------------------------------------------------------
# Frontend messages


@dataclass(frozen=True, slots=True)
class Query:
    sql: str

    def encode(self) -> bytes:
        return frame(b"Q", _cstr(self.sql))


@dataclass(frozen=True, slots=True)
class Parse:
    name: str
    sql: str
    param_types: tuple[int, ...] = ()

    def encode(self) -> bytes:
        types = b"".join(struct.pack("!I", t) for t in self.param_types)
        return frame(
            b"P", _cstr(self.name) + _cstr(self.sql) + _U16.pack(len(self.param_types)) + types
        )


@dataclass(frozen=True, slots=True)
class Bind:
    portal: str
    statement: str
    param_formats: tuple[int, ...] = ()
    params: tuple[bytes | None, ...] = ()
    result_formats: tuple[int, ...] = ()

    def encode(self) -> bytes:
        body = _cstr(self.portal) + _cstr(self.statement)
        body += _U16.pack(len(self.param_formats)) + b"".join(
            _I16.pack(f) for f in self.param_formats
        )
        body += _values(self.params)
        body += _U16.pack(len(self.result_formats)) + b"".join(
            _I16.pack(f) for f in self.result_formats
        )
        return frame(b"B", body)


@dataclass(frozen=True, slots=True)
class Describe:
    kind: str  # "S" statement or "P" portal
    name: str

    def encode(self) -> bytes:
        return frame(b"D", self.kind.encode() + _cstr(self.name))


@dataclass(frozen=True, slots=True)
class Execute:
    portal: str
    max_rows: int = 0

    def encode(self) -> bytes:
        return frame(b"E", _cstr(self.portal) + _I32.pack(self.max_rows))


@dataclass(frozen=True, slots=True)
class Close:
    kind: str  # "S" or "P"
    name: str

    def encode(self) -> bytes:
        return frame(b"C", self.kind.encode() + _cstr(self.name))


@dataclass(frozen=True, slots=True)
class Sync:
    def encode(self) -> bytes:
        return frame(b"S", b"")


@dataclass(frozen=True, slots=True)
class Flush:
    def encode(self) -> bytes:
        return frame(b"H", b"")


@dataclass(frozen=True, slots=True)
class Terminate:
    def encode(self) -> bytes:
        return frame(b"X", b"")


@dataclass(frozen=True, slots=True)
class PasswordMessage:
    """'p': a cleartext/md5 password, or SASL data; which one depends on the auth exchange."""

    data: bytes

    @property
    def password(self) -> str:
        if not self.data.endswith(b"\x00"):
            raise ProtocolError("password is not NUL-terminated")
        try:
            return self.data[:-1].decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("password is not valid UTF-8") from None

    def encode(self) -> bytes:
        return frame(b"p", self.data)


def sasl_initial_response(mechanism: str, data: bytes) -> bytes:
    return frame(b"p", _cstr(mechanism) + _I32.pack(len(data)) + data)


def sasl_response(data: bytes) -> bytes:
    return frame(b"p", data)


@dataclass(frozen=True, slots=True)
class FunctionCall:
    function_oid: int
    arg_formats: tuple[int, ...]
    args: tuple[bytes | None, ...]
    result_format: int

    def encode(self) -> bytes:
        body = struct.pack("!I", self.function_oid)
        body += _U16.pack(len(self.arg_formats)) + b"".join(_I16.pack(f) for f in self.arg_formats)
        body += _values(self.args) + _I16.pack(self.result_format)
        return frame(b"F", body)


@dataclass(frozen=True, slots=True)
class CopyData:
    data: bytes

    def encode(self) -> bytes:
        return frame(b"d", self.data)


@dataclass(frozen=True, slots=True)
class CopyDone:
    def encode(self) -> bytes:
        return frame(b"c", b"")


@dataclass(frozen=True, slots=True)
class CopyFail:
    message: str

    def encode(self) -> bytes:
        return frame(b"f", _cstr(self.message))


def _decode_query(r: _Reader) -> Query:
    return Query(r.cstring())


def _decode_parse(r: _Reader) -> Parse:
    name, sql = r.cstring(), r.cstring()
    n = r.uint16()
    types = tuple(struct.unpack("!I", r.bytes_(4))[0] for _ in range(n))
    return Parse(name, sql, types)


def _formats(r: _Reader) -> tuple[int, ...]:
    n = r.uint16()
    return tuple(r.int16() for _ in range(n))


def _decode_bind(r: _Reader) -> Bind:
    portal, statement = r.cstring(), r.cstring()
    fmts = _formats(r)
    n = r.uint16()
    params = tuple(r.value() for _ in range(n))
    return Bind(portal, statement, fmts, params, _formats(r))


def _kind_and_name(r: _Reader) -> tuple[str, str]:
    kind = chr(r.byte())
    if kind not in ("S", "P"):
        raise ProtocolError(f"expected 'S' or 'P', got {kind!r}")
    return kind, r.cstring()


def _decode_function_call(r: _Reader) -> FunctionCall:
    oid = struct.unpack("!I", r.bytes_(4))[0]
    fmts = _formats(r)
    n = r.uint16()
    args = tuple(r.value() for _ in range(n))
    return FunctionCall(oid, fmts, args, r.int16())


FrontendMessage = (
    Query
    | Parse
    | Bind
    | Describe
    | Execute
    | Close
    | Sync
    | Flush
    | Terminate
    | PasswordMessage
    | FunctionCall
    | CopyData
    | CopyDone
    | CopyFail
)

_FRONTEND: dict[int, Callable[[_Reader], FrontendMessage]] = {
    ord("Q"): _decode_query,
    ord("P"): _decode_parse,
    ord("B"): _decode_bind,
    ord("D"): lambda r: Describe(*_kind_and_name(r)),
    ord("E"): lambda r: Execute(r.cstring(), r.int32()),
    ord("C"): lambda r: Close(*_kind_and_name(r)),
    ord("S"): lambda r: Sync(),
    ord("H"): lambda r: Flush(),
    ord("X"): lambda r: Terminate(),
    ord("p"): lambda r: PasswordMessage(r.rest()),
    ord("F"): _decode_function_call,
    ord("d"): lambda r: CopyData(r.rest()),
    ord("c"): lambda r: CopyDone(),
    ord("f"): lambda r: CopyFail(r.cstring()),
}


def decode_frontend(type_code: int, payload: bytes) -> FrontendMessage:
    """Decode one frontend (client to server) message."""
    decoder = _FRONTEND.get(type_code)
    if decoder is None:
        raise ProtocolError(f"unknown frontend message type {type_code!r}")
    r = _Reader(payload)
    message = decoder(r)
    r.end()
    return message


# ---------------------------------------------------------------------------------------------
# Backend messages


@dataclass(frozen=True, slots=True)
class AuthenticationOk:
    def encode(self) -> bytes:
        return frame(b"R", _I32.pack(0))


@dataclass(frozen=True, slots=True)
class AuthenticationCleartextPassword:
    def encode(self) -> bytes:
        return frame(b"R", _I32.pack(3))


@dataclass(frozen=True, slots=True)
class AuthenticationMD5Password:
    salt: bytes

    def encode(self) -> bytes:
        return frame(b"R", _I32.pack(5) + self.salt)


@dataclass(frozen=True, slots=True)
class AuthenticationSASL:
    mechanisms: tuple[str, ...]

    def encode(self) -> bytes:
        return frame(b"R", _I32.pack(10) + b"".join(_cstr(m) for m in self.mechanisms) + b"\x00")


@dataclass(frozen=True, slots=True)
class AuthenticationSASLContinue:
    data: bytes

    def encode(self) -> bytes:
        return frame(b"R", _I32.pack(11) + self.data)


@dataclass(frozen=True, slots=True)
class AuthenticationSASLFinal:
    data: bytes

    def encode(self) -> bytes:
        return frame(b"R", _I32.pack(12) + self.data)


@dataclass(frozen=True, slots=True)
class AuthenticationOther:
    """A method the gateway does not speak to servers (Kerberos, GSS, SSPI)."""

    code: int
    data: bytes

    def encode(self) -> bytes:
        return frame(b"R", _I32.pack(self.code) + self.data)


Authentication = (
    AuthenticationOk
    | AuthenticationCleartextPassword
    | AuthenticationMD5Password
    | AuthenticationSASL
    | AuthenticationSASLContinue
    | AuthenticationSASLFinal
    | AuthenticationOther
)


def _decode_auth(r: _Reader) -> Authentication:
    code = r.int32()
    if code == 0:
        return AuthenticationOk()
    if code == 3:
        return AuthenticationCleartextPassword()
    if code == 5:
        return AuthenticationMD5Password(r.bytes_(4))
    if code == 10:
        mechanisms = []
        while (m := r.cstring()) != "":
            mechanisms.append(m)
        return AuthenticationSASL(tuple(mechanisms))
    if code == 11:
        return AuthenticationSASLContinue(r.rest())
    if code == 12:
        return AuthenticationSASLFinal(r.rest())
    return AuthenticationOther(code, r.rest())


@dataclass(frozen=True, slots=True)
class ParameterStatus:
    name: str
    value: str

    def encode(self) -> bytes:
        return frame(b"S", _cstr(self.name) + _cstr(self.value))


@dataclass(frozen=True, slots=True)
class BackendKeyData:
    process_id: int
    secret_key: int

    def encode(self) -> bytes:
        return frame(b"K", struct.pack("!iI", self.process_id, self.secret_key))


@dataclass(frozen=True, slots=True)
class ReadyForQuery:
    status: str  # "I" idle, "T" in transaction, "E" failed transaction

    def encode(self) -> bytes:
        return frame(b"Z", self.status.encode())


@dataclass(frozen=True, slots=True)
class FieldDescription:
    name: str
    table_oid: int
    column_number: int
    type_oid: int
    type_size: int
    type_modifier: int
    format_code: int


_FIELD = struct.Struct("!IhIhih")


@dataclass(frozen=True, slots=True)
class RowDescription:
    fields: tuple[FieldDescription, ...]

    def encode(self) -> bytes:
        body = _I16.pack(len(self.fields)) + b"".join(
            _cstr(f.name)
            + _FIELD.pack(
                f.table_oid,
                f.column_number,
                f.type_oid,
                f.type_size,
                f.type_modifier,
                f.format_code,
            )
            for f in self.fields
        )
        return frame(b"T", body)


def _decode_row_description(r: _Reader) -> RowDescription:
    n = r.int16()
    if n < 0:
        raise ProtocolError("negative field count")
    fields = []
    for _ in range(n):
        name = r.cstring()
        fields.append(FieldDescription(name, *_FIELD.unpack(r.bytes_(_FIELD.size))))
    return RowDescription(tuple(fields))


@dataclass(frozen=True, slots=True)
class DataRow:
    values: tuple[bytes | None, ...]

    def encode(self) -> bytes:
        return frame(b"D", _values(self.values))


def _decode_data_row(r: _Reader) -> DataRow:
    n = r.int16()
    if n < 0:
        raise ProtocolError("negative column count")
    return DataRow(tuple(r.value() for _ in range(n)))


@dataclass(frozen=True, slots=True)
class CommandComplete:
    tag: str

    def encode(self) -> bytes:
        return frame(b"C", _cstr(self.tag))


@dataclass(frozen=True, slots=True)
class EmptyQueryResponse:
    def encode(self) -> bytes:
        return frame(b"I", b"")


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    """Error fields by their one-letter codes: S severity, C SQLSTATE, M message, H hint..."""

    fields: dict[str, str] = field(default_factory=dict)

    @property
    def sqlstate(self) -> str:
        return self.fields.get("C", "")

    @property
    def message(self) -> str:
        return self.fields.get("M", "")

    def encode(self) -> bytes:
        return frame(b"E", _encode_fields(self.fields))


@dataclass(frozen=True, slots=True)
class NoticeResponse:
    fields: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        return frame(b"N", _encode_fields(self.fields))


def _encode_fields(fields: dict[str, str]) -> bytes:
    if any(len(k) != 1 or k == "\x00" for k in fields):
        raise ValueError("error and notice field codes are single non-NUL characters")
    return b"".join(k.encode("latin-1") + _cstr(v) for k, v in fields.items()) + b"\x00"


def _decode_fields(r: _Reader) -> dict[str, str]:
    fields: dict[str, str] = {}
    while (code := r.byte()) != 0:
        fields[chr(code)] = r.cstring()
    return fields


@dataclass(frozen=True, slots=True)
class NotificationResponse:
    process_id: int
    channel: str
    payload: str

    def encode(self) -> bytes:
        return frame(b"A", _I32.pack(self.process_id) + _cstr(self.channel) + _cstr(self.payload))


@dataclass(frozen=True, slots=True)
class ParseComplete:
    def encode(self) -> bytes:
        return frame(b"1", b"")


@dataclass(frozen=True, slots=True)
class BindComplete:
    def encode(self) -> bytes:
        return frame(b"2", b"")


@dataclass(frozen=True, slots=True)
class CloseComplete:
    def encode(self) -> bytes:
        return frame(b"3", b"")


@dataclass(frozen=True, slots=True)
class NoData:
    def encode(self) -> bytes:
        return frame(b"n", b"")


@dataclass(frozen=True, slots=True)
class PortalSuspended:
    def encode(self) -> bytes:
        return frame(b"s", b"")


@dataclass(frozen=True, slots=True)
class ParameterDescription:
    type_oids: tuple[int, ...]

    def encode(self) -> bytes:
        return frame(
            b"t",
            _U16.pack(len(self.type_oids)) + b"".join(struct.pack("!I", t) for t in self.type_oids),
        )


@dataclass(frozen=True, slots=True)
class CopyResponse:
    """CopyInResponse 'G', CopyOutResponse 'H' or CopyBothResponse 'W'."""

    kind: str
    overall_format: int
    column_formats: tuple[int, ...]

    def encode(self) -> bytes:
        body = bytes([self.overall_format]) + _I16.pack(len(self.column_formats))
        body += b"".join(_I16.pack(f) for f in self.column_formats)
        return frame(self.kind.encode(), body)


@dataclass(frozen=True, slots=True)
class NegotiateProtocolVersion:
    newest_minor: int
    unrecognized: tuple[str, ...]

    def encode(self) -> bytes:
        body = _I32.pack(self.newest_minor) + _I32.pack(len(self.unrecognized))
        return frame(b"v", body + b"".join(_cstr(o) for o in self.unrecognized))


@dataclass(frozen=True, slots=True)
class FunctionCallResponse:
    value: bytes | None

    def encode(self) -> bytes:
        v = _I32.pack(-1) if self.value is None else _I32.pack(len(self.value)) + self.value
        return frame(b"V", v)


def _decode_copy_response(kind: str) -> Callable[[_Reader], CopyResponse]:
    def decode(r: _Reader) -> CopyResponse:
        overall = r.byte()
        return CopyResponse(kind, overall, _formats(r))

    return decode


def _decode_negotiate(r: _Reader) -> NegotiateProtocolVersion:
    minor, n = r.int32(), r.int32()
    if n < 0:
        raise ProtocolError("negative option count")
    return NegotiateProtocolVersion(minor, tuple(r.cstring() for _ in range(n)))


def _decode_ready(r: _Reader) -> ReadyForQuery:
    status = chr(r.byte())
    if status not in "ITE":
        raise ProtocolError(f"bad transaction status {status!r}")
    return ReadyForQuery(status)


BackendMessage = (
    Authentication
    | ParameterStatus
    | BackendKeyData
    | ReadyForQuery
    | RowDescription
    | DataRow
    | CommandComplete
    | EmptyQueryResponse
    | ErrorResponse
    | NoticeResponse
    | NotificationResponse
    | ParseComplete
    | BindComplete
    | CloseComplete
    | NoData
    | PortalSuspended
    | ParameterDescription
    | CopyResponse
    | CopyData
    | CopyDone
    | NegotiateProtocolVersion
    | FunctionCallResponse
)

_BACKEND: dict[int, Callable[[_Reader], BackendMessage]] = {
    ord("R"): _decode_auth,
    ord("S"): lambda r: ParameterStatus(r.cstring(), r.cstring()),
    ord("K"): lambda r: BackendKeyData(r.int32(), struct.unpack("!I", r.bytes_(4))[0]),
    ord("Z"): _decode_ready,
    ord("T"): _decode_row_description,
    ord("D"): _decode_data_row,
    ord("C"): lambda r: CommandComplete(r.cstring()),
    ord("I"): lambda r: EmptyQueryResponse(),
    ord("E"): lambda r: ErrorResponse(_decode_fields(r)),
    ord("N"): lambda r: NoticeResponse(_decode_fields(r)),
    ord("A"): lambda r: NotificationResponse(r.int32(), r.cstring(), r.cstring()),
    ord("1"): lambda r: ParseComplete(),
    ord("2"): lambda r: BindComplete(),
    ord("3"): lambda r: CloseComplete(),
    ord("n"): lambda r: NoData(),
    ord("s"): lambda r: PortalSuspended(),
    ord("t"): lambda r: ParameterDescription(
        tuple(struct.unpack("!I", r.bytes_(4))[0] for _ in range(r.uint16()))
    ),
    ord("G"): _decode_copy_response("G"),
    ord("H"): _decode_copy_response("H"),
    ord("W"): _decode_copy_response("W"),
    ord("d"): lambda r: CopyData(r.rest()),
    ord("c"): lambda r: CopyDone(),
    ord("v"): _decode_negotiate,
    ord("V"): lambda r: FunctionCallResponse(r.value()),
}


def decode_backend(type_code: int, payload: bytes) -> BackendMessage:
    """Decode one backend (server to client) message."""
    decoder = _BACKEND.get(type_code)
    if decoder is None:
        raise ProtocolError(f"unknown backend message type {type_code!r}")
    r = _Reader(payload)
    message = decoder(r)
    r.end()
    return message


def error_response(
    sqlstate: str,
    message: str,
    *,
    severity: str = "ERROR",
    hint: str | None = None,
    detail: str | None = None,
) -> ErrorResponse:
    """An ErrorResponse as the gateway sends it: severity (both forms), code, message, hint."""
    fields = {"S": severity, "V": severity, "C": sqlstate, "M": message}
    if detail:
        fields["D"] = detail
    if hint:
        fields["H"] = hint
    return ErrorResponse(fields)
