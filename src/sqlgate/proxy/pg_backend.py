"""Opening the gateway's own connection to a PostgreSQL target and logging in to it."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field

from sqlgate.config import BackendTls, Credentials, TargetConfig
from sqlgate.errors import BackendError, ProtocolError
from sqlgate.protocols.postgres.framing import FrameBuffer
from sqlgate.protocols.postgres.messages import (
    BackendKeyData,
    ErrorResponse,
    SSLRequest,
    StartupMessage,
    decode_backend,
)
from sqlgate.protocols.postgres.server_auth import ServerAuthExchange

# Client startup parameters passed on to the server. Anything else (notably `options`, which
# can set any GUC such as session_authorization, and `replication`) stays with the gateway.
FORWARDED_PARAMETERS = frozenset(
    {
        "application_name",
        "client_encoding",
        "DateStyle",
        "TimeZone",
        "IntervalStyle",
        "extra_float_digits",
        "search_path",
        "lc_monetary",
        "lc_numeric",
        "lc_time",
        "standard_conforming_strings",
    }
)


@dataclass
class BackendConnection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    key: BackendKeyData
    tls: bool
    startup_frames: list[bytes] = field(default_factory=list)  # ParameterStatus/Notice, as sent


async def _negotiate_tls(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    target: TargetConfig,
    ctx: ssl.SSLContext,
) -> bool:
    writer.write(SSLRequest().encode())
    await writer.drain()
    answer = await reader.readexactly(1)
    if answer == b"S":
        await writer.start_tls(ctx, server_hostname=target.host)
        return True
    if answer == b"N":
        if target.tls in (BackendTls.REQUIRE, BackendTls.VERIFY_FULL):
            raise BackendError(
                f"target {target.name!r} requires TLS (tls: {target.tls}) but the server "
                "does not offer it"
            )
        return False
    raise BackendError(f"unexpected answer {answer!r} to SSLRequest from target {target.name!r}")


async def connect_backend(
    target: TargetConfig,
    credentials: Credentials,
    client_params: dict[str, str],
    ctx: ssl.SSLContext | None,
    max_message_bytes: int,
) -> BackendConnection:
    """Connect, negotiate TLS, authenticate, and read up to the first ReadyForQuery."""
    try:
        async with asyncio.timeout(target.connect_timeout_seconds):
            reader, writer = await asyncio.open_connection(target.host, target.port)
            try:
                return await _login(
                    reader, writer, target, credentials, client_params, ctx, max_message_bytes
                )
            except BaseException:
                writer.close()
                raise
    except TimeoutError:
        raise BackendError(f"timed out connecting to target {target.name!r}") from None
    except (OSError, asyncio.IncompleteReadError, ssl.SSLError) as exc:
        raise BackendError(f"cannot connect to target {target.name!r}: {exc}") from None


async def _login(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    target: TargetConfig,
    credentials: Credentials,
    client_params: dict[str, str],
    ctx: ssl.SSLContext | None,
    max_message_bytes: int,
) -> BackendConnection:
    use_tls = await _negotiate_tls(reader, writer, target, ctx) if ctx is not None else False
    params = {"user": credentials.user, "database": target.database}
    params.update((k, v) for k, v in client_params.items() if k in FORWARDED_PARAMETERS)
    writer.write(StartupMessage(params).encode())
    auth = ServerAuthExchange(credentials.user, credentials.secret())
    frames = FrameBuffer(max_message_bytes)
    startup_frames: list[bytes] = []
    key: BackendKeyData | None = None
    while True:
        await writer.drain()
        data = await reader.read(65536)
        if not data:
            raise BackendError(f"target {target.name!r} closed the connection during login")
        chunk, found = frames.push(data)
        for type_code, start, end in found:
            raw = chunk[start:end]
            message = decode_backend(type_code, raw[5:])
            if type_code == ord("R"):
                reply = auth.respond(message)  # type: ignore[arg-type]
                if reply is not None:
                    writer.write(reply)
            elif isinstance(message, ErrorResponse):
                raise BackendError(
                    f"target {target.name!r} refused the gateway's login as "
                    f"{credentials.user!r}: {message.message} (SQLSTATE {message.sqlstate})"
                )
            elif isinstance(message, BackendKeyData):
                key = message
            elif type_code in (ord("S"), ord("N")):
                startup_frames.append(raw)
            elif type_code == ord("Z"):
                if not auth.done:
                    raise ProtocolError("server sent ReadyForQuery before authentication ended")
                if key is None:
                    key = BackendKeyData(0, 0)
                if frames.pending:
                    raise ProtocolError("server sent data after ReadyForQuery during login")
                return BackendConnection(reader, writer, key, use_tls, startup_frames)
            # NegotiateProtocolVersion and anything else harmless during login is ignored.
