"""One PostgreSQL client connection: startup, TLS, token login, then the judged relay.

The relay forwards bytes untouched except where a hook must act. A refused statement is not
answered by the gateway out of band: it is replaced by a server-side `RAISE` carrying a
nonce, so the error arrives in exactly the place the client expects it, and inside a
transaction block the server really enters the failed state, as PostgreSQL would after any
error. The server's error is then swapped for the gateway's own message.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import struct
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlgate.config import ExpiryAction, is_loopback
from sqlgate.core import (
    ColumnDescription,
    Decision,
    Dialect,
    Identity,
    Statement,
    StatementSource,
    Verdict,
)
from sqlgate.errors import AuthenticationFailed, BackendError, ProtocolError
from sqlgate.masking import RowPlan
from sqlgate.protocols.postgres.datarow import build_data_row, split_data_row
from sqlgate.protocols.postgres.framing import FrameBuffer
from sqlgate.protocols.postgres.messages import (
    AuthenticationCleartextPassword,
    AuthenticationOk,
    BackendKeyData,
    Bind,
    CancelRequest,
    Close,
    Describe,
    ErrorResponse,
    Execute,
    GSSENCRequest,
    NegotiateProtocolVersion,
    NotificationResponse,
    Parse,
    PasswordMessage,
    Query,
    ReadyForQuery,
    SSLRequest,
    StartupMessage,
    StartupPacket,
    decode_backend,
    decode_frontend,
    decode_startup,
    error_response,
)
from sqlgate.proxy.pg_backend import BackendConnection, connect_backend
from sqlgate.proxy.session_log import SessionLog

if TYPE_CHECKING:
    from sqlgate.hooks import SessionHooks
    from sqlgate.proxy.gateway import Gateway

log = logging.getLogger(__name__)

READ_SIZE = 256 * 1024
_MAX_PASSWORD = 16 * 1024 + 16
_MAX_STASH = 16 * 1024 * 1024
_MULTIBYTE_ASCII_TRAIL = frozenset({"SJIS", "SHIFTJIS", "BIG5", "GBK", "GB18030", "JOHAB", "UHC"})
_Q, _P, _F, _X, _S, _H = (ord(c) for c in "QPFXSH")
_Z, _E, _ONE, _TWO = ord("Z"), ord("E"), ord("1"), ord("2")
_B, _D, _EXECUTE, _CLOSE = ord("B"), ord("D"), ord("E"), ord("C")
_STATEMENTS = frozenset({_Q, _P, _F})
_INTERCEPTED = frozenset({_Q, _P, _F, _X})
# With masking, the gateway must know which statement each result belongs to.
_INTERCEPTED_MASKING = _INTERCEPTED | {_B, _D, _EXECUTE, _CLOSE}
_T, _N_DATA, _DATA_ROW, _C_COMPLETE = ord("T"), ord("n"), ord("D"), ord("C")
_A_NOTIFY = ord("A")
_VALUE_QUOTING_CLASSES = frozenset({"22", "23"})  # data exceptions, constraint violations
_DDL_TAGS = (b"CREATE", b"ALTER", b"DROP", b"COMMENT", b"GRANT", b"REVOKE", b"SECURITY")
_REFUSAL_PREFIX = "sqlgate-refusal:"


class _Closed(Exception):
    """The session is over; the message (if any) has been sent."""


@dataclass(slots=True)
class _Substitution:
    """A refused request replaced by a server-side raise, waiting for its error to come back."""

    marker: str
    error: bytes  # the ErrorResponse frame the client gets instead of the server's
    sqlstate: str
    message: str
    sync_seq: int  # the ReadyForQuery number that ends the request
    extended: bool  # sent as Parse/Bind/Execute: the ParseComplete/BindComplete are dropped


@dataclass(slots=True)
class _Describe:
    """A Describe whose RowDescription (or NoData) the server has yet to send."""

    unit: int  # the ReadyForQuery number of its Sync
    sql: str | None
    portal: bool  # a portal description: rows of an Execute follow it
    injected: bool  # sent by the gateway, so its answer is not forwarded


class PgClientSession:
    """Serves one client socket from the first byte to the close."""

    def __init__(
        self, gateway: Gateway, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.gateway = gateway
        self.config = gateway.config
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.client_host: str = peer[0] if peer else "unknown"
        self.client_addr = f"{peer[0]}:{peer[1]}" if peer else "unknown"
        self.tls = False
        self.identity: Identity | None = None
        self.target_name: str | None = None
        self.hooks: SessionHooks | None = None
        self.backend: BackendConnection | None = None
        self.process_id = 0
        self.secret_key = 0
        self.transaction_status = "I"
        self._syncs_sent = 0  # Query/Sync/FunctionCall messages forwarded: each ends in 'Z'
        self._rfq_seen = 0
        self._subs: deque[_Substitution] = deque()
        self._skip_to_sync = False
        self._held: list[bytes] = []  # Parse/BindComplete that may belong to a refusal
        # Masking bookkeeping (only used when the policy masks something):
        self._statement_sql: dict[str, str] = {}  # prepared statement name -> SQL
        self._portal_statement: dict[str, str] = {}  # portal -> statement name
        self._simple_sql: dict[int, str] = {}  # ReadyForQuery number -> simple Query SQL
        self._describes: deque[_Describe] = deque()  # awaiting RowDescription/NoData
        self._described_portal: str | None = None
        self._plan: RowPlan | None = None
        self._row_formats: list[int] = []
        self._statement_decision: dict[str, Decision] = {}  # prepared name -> Parse's decision
        self._portal_params: dict[str, tuple[str | None, ...]] = {}
        self.log: SessionLog | None = None
        self._stash: list[bytes] = []  # client bytes read while a statement was held
        self._draining = False

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        try:
            try:
                async with asyncio.timeout(self.config.limits.auth_timeout_seconds):
                    ready = await self._startup()
            except TimeoutError:
                await self._fatal("08006", "sqlgate: authentication timed out")
                return
            if not ready:
                return
            await self._relay()
        except ProtocolError as exc:
            log.warning("closing connection from %s: protocol error: %s", self.client_addr, exc)
            await self._fatal("08P01", f"sqlgate: protocol violation: {exc}")
        except (ConnectionError, asyncio.IncompleteReadError):
            log.info("client %s disconnected", self.client_addr)
        except _Closed:
            pass
        finally:
            self.gateway.unregister(self)
            if self.log is not None:
                self.log.closed("client disconnected")
            self._close()

    def _close(self) -> None:
        for writer in (self.writer, self.backend.writer if self.backend else None):
            if writer is not None and not writer.is_closing():
                writer.close()

    async def _fatal(self, sqlstate: str, message: str, hint: str | None = None) -> None:
        """Send a FATAL error and end the session."""
        try:
            self.writer.write(
                error_response(sqlstate, message, severity="FATAL", hint=hint).encode()
            )
            await asyncio.wait_for(self.writer.drain(), 5)
        except (ConnectionError, TimeoutError, RuntimeError):
            pass

    def shutdown(self) -> None:
        """Gateway is draining: close now if idle, else after the current transaction."""
        self._draining = True
        if self.backend is None or self._idle():
            self._close()

    def _idle(self) -> bool:
        return self._syncs_sent == self._rfq_seen and self.transaction_status == "I"

    # ------------------------------------------------------------------ startup

    async def _read_startup_packet(self) -> StartupPacket:
        header = await self.reader.readexactly(4)
        (length,) = struct.unpack("!i", header)
        if length < 8 or length > self.config.limits.max_startup_bytes:
            raise ProtocolError(f"invalid startup packet length {length}")
        return decode_startup(await self.reader.readexactly(length - 4))

    async def _read_password(self) -> str:
        header = await self.reader.readexactly(5)
        type_code, length = header[0], struct.unpack("!i", header[1:])[0]
        if type_code != ord("p"):
            raise ProtocolError(f"expected a password message, got {bytes([type_code])!r}")
        # Tokens can be large (many groups): allow up to the validator's own 16 KiB cap.
        if length < 4 or length > max(self.config.limits.max_startup_bytes, _MAX_PASSWORD):
            raise ProtocolError(f"invalid password message length {length}")
        message = decode_frontend(type_code, await self.reader.readexactly(length - 4))
        assert isinstance(message, PasswordMessage)
        return message.password

    async def _startup(self) -> bool:
        """Run the connection up to the first ReadyForQuery; False if it ended instead."""
        while True:
            packet = await self._read_startup_packet()
            if isinstance(packet, SSLRequest):
                if self.tls:
                    raise ProtocolError("SSLRequest after TLS was already established")
                self.writer.write(b"S")
                await self.writer.drain()
                # Bytes pipelined behind the SSLRequest would be read as if they came over
                # TLS (CVE-2021-23214): refuse them.
                if len(getattr(self.reader, "_buffer", b"")):
                    raise ProtocolError("unencrypted data after SSLRequest")
                await self.writer.start_tls(self.gateway.tls_context)
                self.tls = True
            elif isinstance(packet, GSSENCRequest):
                self.writer.write(b"N")
                await self.writer.drain()
            elif isinstance(packet, CancelRequest):
                await self.gateway.cancel(packet.process_id, packet.secret_key)
                return False
            else:
                return await self._login(packet)

    async def _login(self, startup: StartupMessage) -> bool:
        params = startup.params
        user = params.get("user", "")
        database = params.get("database") or user
        if startup.protocol != 196608 or any(k.startswith("_pq_.") for k in params):
            unrecognized = tuple(k for k in params if k.startswith("_pq_."))
            self.writer.write(NegotiateProtocolVersion(0, unrecognized).encode())
        if not self.tls and not (
            self.config.tls.allow_plaintext_on_loopback and is_loopback(self.client_host)
        ):
            log.warning("refused plaintext connection from %s", self.client_addr)
            await self._fatal(
                "28000",
                "sqlgate: TLS is required: your token must not travel in plaintext",
                hint="connect with sslmode=require",
            )
            return False

        self.writer.write(AuthenticationCleartextPassword().encode())
        await self.writer.drain()
        password = await self._read_password()
        try:
            identity = await self.gateway.authenticator.authenticate(password, self.client_host)
        except AuthenticationFailed as exc:
            log.warning(
                "login failed from %s (user %r, database %r): %s",
                self.client_addr,
                user,
                database,
                exc.reason,
            )
            self.gateway.login_failed(self.client_host, exc.reason)
            await self._fatal("28P01", f'sqlgate: authentication failed for user "{user}"')
            return False
        self.identity = identity

        target = self.config.target(database)
        if target is None or target.kind != "postgres":
            log.warning("%s asked for unknown target %r", identity.display, database)
            await self._fatal("3D000", f'database "{database}" does not exist')
            return False
        self.target_name = target.name
        hooks = self.gateway.open_session(identity, target.name)
        if hooks is None:
            log.warning("no policy grants %s access to target %r", identity.display, target.name)
            await self._fatal(
                "28000",
                f'sqlgate: no policy grants {identity.display} access to target "{target.name}"',
                hint="ask an administrator to add a policy for one of your groups",
            )
            return False
        self.hooks = hooks

        credentials = target.credentials_for(identity.groups)
        # "$user" in the server's search_path, and a search_path given at startup.
        hooks.widen_search_path(
            [
                credentials.user,
                *(p.strip().strip('"') for p in params.get("search_path", "").split(",")),
            ]
        )
        try:
            self.backend = await connect_backend(
                target,
                credentials,
                params,
                self.gateway.backend_tls(target),
                self.config.limits.max_message_bytes,
            )
        except (BackendError, ProtocolError) as exc:
            log.error("backend connection for %s failed: %s", identity.display, exc)
            await self._fatal(
                "08006",
                f'sqlgate: cannot connect to target "{target.name}"',
                hint="the gateway logged the cause; try again or tell its operator",
            )
            return False

        recorder = self.gateway.recorder
        if recorder is not None:
            self.log = SessionLog(
                recorder,
                identity,
                self.client_addr,
                params.get("application_name"),
                target.name,
                "postgres",
                masked=hooks.planner is not None,
            )
            hooks.session_id = self.log.session_id
            if not self.log.started:
                await self._fatal(
                    "53000", "sqlgate: the audit trail is not keeping up", hint="try again shortly"
                )
                return False
        if any(b"standard_conforming_strings\x00off" in f for f in self.backend.startup_frames):
            hooks.shapes_ok = False  # the shape lexer assumes standard strings
        if params.get("client_encoding", "").upper().replace("_", "") in _MULTIBYTE_ASCII_TRAIL:
            hooks.shapes_ok = False  # encodings whose trailing bytes can look like quotes
        self.process_id, self.secret_key = self.gateway.register(self)
        out = [
            AuthenticationOk().encode(),
            *self.backend.startup_frames,
            BackendKeyData(self.process_id, self.secret_key).encode(),
            ReadyForQuery("I").encode(),
        ]
        self.writer.write(b"".join(out))
        await self.writer.drain()
        log.info(
            "session %d: %s (groups %s) connected to %s from %s%s",
            self.process_id,
            identity.display,
            sorted(identity.groups),
            target.name,
            self.client_addr,
            " over TLS" if self.tls else "",
        )
        return True

    # ------------------------------------------------------------------ relay

    async def _relay(self) -> None:
        upstream = asyncio.create_task(self._client_to_server())
        downstream = asyncio.create_task(self._server_to_client())
        done, pending = await asyncio.wait(
            (upstream, downstream), return_when=asyncio.FIRST_COMPLETED
        )
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            exc = task.exception()
            if exc is not None:
                raise exc

    async def _client_to_server(self) -> None:
        assert self.backend is not None
        reader, server = self.reader, self.backend.writer
        frames = FrameBuffer(self.config.limits.max_message_bytes)
        tracking = self.log is not None or (
            self.hooks is not None and self.hooks.planner is not None
        )
        intercepted = _INTERCEPTED_MASKING if tracking else _INTERCEPTED
        while True:
            data = self._stash.pop(0) if self._stash else await reader.read(READ_SIZE)
            if not data:
                return
            chunk, found = frames.push(data)
            out: list[bytes] = []
            run = 0  # start of the pass-through run not yet copied into `out`
            for type_code, start, end in found:
                if self._skip_to_sync:
                    if run < start:
                        out.append(chunk[run:start])
                    run = end
                    if type_code == _S or type_code == _H:
                        out.append(chunk[start:end])
                        if type_code == _S:
                            self._syncs_sent += 1
                            self._skip_to_sync = False
                    continue
                if type_code == _S:
                    # Bind/Execute of an existing prepared statement carries no SQL to judge,
                    # but it is a statement all the same: the token must still be valid.
                    self._check_expiry()
                    self._syncs_sent += 1
                    self._described_portal = None
                elif type_code in intercepted:
                    if run < start:
                        out.append(chunk[run:start])
                    run = end
                    if type_code == _X:
                        out.append(chunk[start:end])
                        server.write(b"".join(out))
                        await server.drain()
                        return
                    if type_code in _STATEMENTS:
                        out.append(await self._on_request(type_code, chunk[start:end], out))
                    else:
                        out.append(self._track_extended(type_code, chunk[start:end]))
            if run == 0 and not out:
                server.write(chunk)
            else:
                if run < len(chunk):
                    out.append(chunk[run:])
                server.write(b"".join(out))
            await server.drain()

    async def _on_request(self, type_code: int, raw: bytes, out: list[bytes]) -> bytes:
        """Judge one statement-carrying message; return the bytes to send in its place."""
        assert self.hooks is not None and self.target_name is not None
        self._check_expiry()
        message = decode_frontend(type_code, raw[5:])
        if isinstance(message, Query):
            statement = Statement(
                message.sql, Dialect.POSTGRES, StatementSource.SIMPLE, self.target_name
            )
        elif isinstance(message, Parse):
            statement = Statement(
                message.sql,
                Dialect.POSTGRES,
                StatementSource.PREPARE,
                self.target_name,
                prepared_name=message.name,
            )
        else:
            statement = Statement(
                f"-- fast-path function call (oid {getattr(message, 'function_oid', '?')})",
                Dialect.POSTGRES,
                StatementSource.FUNCTION_CALL,
                self.target_name,
            )
        decision = self.hooks.judge(statement)
        if decision.verdict is Verdict.REVIEW:
            # Send what came before, then wait for a human; the client's later bytes stay
            # unread in the socket meanwhile (backpressure, nothing for it to misread).
            assert self.backend is not None
            if out:
                self.backend.writer.write(b"".join(out))
                out.clear()
                await self.backend.writer.drain()
            decision = await self._wait_for_review(statement, decision)
        log = self.log
        if log is not None and (type_code != _P or decision.verdict is not Verdict.ALLOW):
            recorded = log.statement(self._syncs_sent + 1, statement.sql, decision)
            if not recorded and decision.verdict is Verdict.ALLOW:
                decision = _UNRECORDED
        if decision.verdict is Verdict.ALLOW:
            self.hooks.statement_forwarded(statement, decision)
            self._described_portal = None
            if type_code == _P:
                name = statement.prepared_name or ""
                self._statement_sql[name] = statement.sql
                self._statement_decision[name] = decision
            else:
                self._syncs_sent += 1
                if type_code == _Q:
                    self._simple_sql[self._syncs_sent] = statement.sql
            return raw
        return self._refuse(type_code, decision)

    async def _wait_for_review(self, statement: Statement, decision: Decision) -> Decision:
        """Wait for a human, watching the client: if it goes away, the request is cancelled.

        Bytes the client sends meanwhile are kept (up to a limit) and handled afterwards.
        """
        assert self.hooks is not None
        review = asyncio.ensure_future(self.hooks.resolve_review(statement, decision))
        try:
            while True:
                reading = asyncio.ensure_future(self.reader.read(READ_SIZE))
                done, _ = await asyncio.wait({review, reading}, return_when=asyncio.FIRST_COMPLETED)
                if reading in done:
                    data = reading.result()
                    if not data:
                        raise ConnectionError("client disconnected while its statement was held")
                    self._stash.append(data)
                    if sum(map(len, self._stash)) > _MAX_STASH:
                        raise ProtocolError("too much data sent while a statement was held")
                    if review not in done:
                        continue
                else:
                    reading.cancel()
                    await asyncio.gather(reading, return_exceptions=True)
                return review.result()
        finally:
            if not review.done():
                review.cancel()  # the approvals service marks the request cancelled
                await asyncio.gather(review, return_exceptions=True)

    def _track_extended(self, type_code: int, raw: bytes) -> bytes:
        """Note which statement each portal runs, so each result is masked by its own plan.

        Before an Execute that the client did not describe, the gateway sends its own
        Describe of the portal, whose answer it uses and does not forward.
        """
        message = decode_frontend(type_code, raw[5:])
        unit = self._syncs_sent + 1
        if isinstance(message, Bind):
            self._portal_statement[message.portal] = message.statement
            if self.log is not None:
                self._portal_params[message.portal] = _bind_params(message)
        elif isinstance(message, Describe):
            if message.kind == "P":
                sql = self._statement_sql.get(self._portal_statement.get(message.name, ""))
                self._describes.append(_Describe(unit, sql, True, False))
                self._described_portal = message.name
                return raw
            self._describes.append(
                _Describe(unit, self._statement_sql.get(message.name), False, False)
            )
        elif isinstance(message, Execute):
            self._record_execute(unit, message.portal)
            if self._described_portal != message.portal:
                sql = self._statement_sql.get(self._portal_statement.get(message.portal, ""))
                self._describes.append(_Describe(unit, sql, True, True))
                self._described_portal = None
                return Describe("P", message.portal).encode() + raw
        elif isinstance(message, Close):
            if message.kind == "S":
                self._statement_sql.pop(message.name, None)
            else:
                self._portal_statement.pop(message.name, None)
        self._described_portal = None
        return raw

    def _record_execute(self, unit: int, portal: str) -> None:
        """Each execution of a prepared statement is its own audit record."""
        if self.log is None:
            return
        name = self._portal_statement.get(portal, "")
        sql, decision = self._statement_sql.get(name), self._statement_decision.get(name)
        if sql is None or decision is None:
            return
        if not self.log.statement(unit, sql, decision, self._portal_params.get(portal)):
            # The Parse already ran, so the Execute cannot be swapped for a refusal: end
            # the session instead of running anything unrecorded.
            self.writer.write(
                error_response(
                    "53000",
                    "sqlgate: the audit trail is not keeping up; nothing runs unrecorded",
                    severity="FATAL",
                    hint="reconnect and try again shortly",
                ).encode()
            )
            raise _Closed

    def _refuse(self, type_code: int, decision: Decision) -> bytes:
        """Bytes that make the server raise in place of the refused request."""
        marker = _REFUSAL_PREFIX + secrets.token_hex(8)
        raise_sql = (
            "DO $sqlgate$BEGIN RAISE EXCEPTION USING ERRCODE = '42501', "
            f"MESSAGE = '{marker}'; END$sqlgate$"
        )
        message = decision_message(decision)
        error = error_response(decision.sqlstate, message, hint=decision_hint(decision)).encode()
        log.info(
            "session %d: blocked for %s by policy %r %s: %s",
            self.process_id,
            self.identity.display if self.identity else "?",
            decision.policy,
            decision.rule_label,
            decision.reason,
        )
        if type_code == _P:
            self._skip_to_sync = True
            self._subs.append(
                _Substitution(
                    marker, error, decision.sqlstate, message, self._syncs_sent + 1, extended=True
                )
            )
            return Parse("", raise_sql).encode() + Bind("", "").encode() + Execute("").encode()
        self._syncs_sent += 1
        self._subs.append(
            _Substitution(
                marker, error, decision.sqlstate, message, self._syncs_sent, extended=False
            )
        )
        return Query(raise_sql).encode()

    def _check_expiry(self) -> None:
        identity = self.identity
        if (
            identity is None
            or identity.expires_at is None
            or self.config.identity.on_expiry is ExpiryAction.KEEP
            or time.time() < identity.expires_at
        ):
            return
        log.info("session %d: token of %s expired; closing", self.process_id, identity.display)
        self.writer.write(
            error_response(
                "28000",
                "sqlgate: your token has expired",
                severity="FATAL",
                hint="reconnect with a fresh token",
            ).encode()
        )
        raise _Closed

    async def _server_to_client(self) -> None:
        assert self.backend is not None and self.hooks is not None
        reader, client = self.backend.reader, self.writer
        frames = FrameBuffer(self.config.limits.max_message_bytes)
        slow = self.hooks.planner is not None or self.log is not None
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                return
            chunk, found = frames.push(data)
            if slow or self._subs or self._held:
                client.write(await self._process_frames(chunk, found))
            else:
                for type_code, start, _end in found:
                    if type_code == _Z:
                        self._rfq_seen += 1
                        self.transaction_status = chr(chunk[start + 5])
                client.write(chunk)
            await client.drain()
            if self._draining and self._idle():
                await self._fatal(
                    "57P01", "sqlgate: terminating connection: gateway is shutting down"
                )
                return

    async def _process_frames(self, chunk: bytes, found: list[tuple[int, int, int]]) -> bytes:
        """The slow path: refusals swapped in, rows masked, the session recorded."""
        out: list[bytes] = []
        held = self._held
        subs = self._subs
        log = self.log
        run = 0  # start of the not yet copied pass-through run
        for type_code, start, end in found:
            if type_code == _DATA_ROW:
                plan = self._plan
                if plan is None and (log is None or not log.wants_rows()):
                    continue
                values = split_data_row(chunk[start:end])
                if plan is not None:
                    plan.apply(values)
                    out.append(chunk[run:start])
                    out.append(build_data_row(values))
                    run = end
                if log is not None and log.wants_rows():
                    log.row(_printable(values, self._row_formats))
                continue
            if run < start:
                out.append(chunk[run:start])
            run = end
            raw = chunk[start:end]
            if subs and subs[0].extended and (type_code == _ONE or type_code == _TWO):
                held.append(raw)
                continue
            if type_code == _E:
                error = decode_backend(type_code, raw[5:])
                assert isinstance(error, ErrorResponse)
                if subs and error.message == subs[0].marker:
                    refusal = subs.popleft()
                    if log is not None:
                        log.failed(self._rfq_seen + 1, refusal.sqlstate, refusal.message, ours=True)
                    out.append(refusal.error)
                    held.clear()
                    continue
                if (
                    self.hooks is not None
                    and self.hooks.planner is not None
                    and (error.sqlstate[:2] in _VALUE_QUOTING_CLASSES or error.sqlstate == "P0001")
                ):
                    # Data errors quote the offending value (`invalid input syntax for type
                    # integer: "alice@example.com"`): keep the SQLSTATE, withhold the text.
                    withheld = (
                        f"sqlgate: the server reported an error (SQLSTATE {error.sqlstate}); "
                        "its text was withheld because it may quote masked values"
                    )
                    raw = error_response(
                        error.sqlstate,
                        withheld,
                        severity=error.fields.get("S", "ERROR"),
                        hint="change the statement so it does not convert or compare "
                        "masked columns",
                    ).encode()
                    error = ErrorResponse({"C": error.sqlstate, "M": withheld})
                if log is not None:
                    log.failed(
                        self._rfq_seen + 1,
                        error.sqlstate,
                        error.message,
                        ours=error.message.startswith("sqlgate:"),
                    )
            if held:
                out.extend(held)
                held.clear()
            if type_code == _A_NOTIFY and self.hooks is not None and self.hooks.planner:
                # A notification payload bypasses result masking: identities with masks get
                # the channel, not the payload (they may still LISTEN for wake-ups).
                notice = decode_backend(type_code, raw[5:])
                assert isinstance(notice, NotificationResponse)
                out.append(NotificationResponse(notice.process_id, notice.channel, "").encode())
                continue
            if type_code == _T or type_code == _N_DATA:
                if not await self._describe_answered(type_code, raw):
                    continue  # the answer to the gateway's own Describe
            elif type_code == _C_COMPLETE:
                self._plan = None
                tag = raw[5:-1]
                if log is not None:
                    log.completed(self._rfq_seen + 1, tag.decode("utf-8", "replace"))
                if tag.startswith(_DDL_TAGS) and self.hooks and self.hooks.planner:
                    self.hooks.planner.catalog.invalidate()
            elif type_code == _Z:
                if log is not None:
                    log.unit_done(self._rfq_seen + 1)
                self._rfq_seen += 1
                self.transaction_status = chr(chunk[start + 5])
                self._plan = None
                self._simple_sql.pop(self._rfq_seen, None)
                while subs and subs[0].sync_seq <= self._rfq_seen:
                    subs.popleft()  # the server skipped it after an earlier error
                describes = self._describes
                while describes and describes[0].unit <= self._rfq_seen:
                    describes.popleft()  # skipped after an error
            out.append(raw)
        if run < len(chunk):
            out.append(chunk[run:])
        return b"".join(out)

    async def _describe_answered(self, type_code: int, raw: bytes) -> bool:
        """Set the masking plan for the rows that follow; False to drop the message."""
        planner = self.hooks.planner if self.hooks else None
        unit = self._rfq_seen + 1
        sql = self._simple_sql.get(unit)
        describe = None
        if sql is None:
            describes = self._describes
            while describes and describes[0].unit < unit:
                describes.popleft()
            if describes:
                describe = describes.popleft()
                sql = describe.sql
        if type_code == _N_DATA:
            self._plan = None
        elif describe is None or describe.portal:
            message = decode_backend(type_code, raw[5:])
            columns = [
                ColumnDescription(f.name, f.type_oid, f.table_oid, f.column_number, f.format_code)
                for f in getattr(message, "fields", ())
            ]
            self._row_formats = [c.format_code for c in columns]
            if self.log is not None:
                self.log.columns(unit, [c.name for c in columns])
            if planner is not None:
                # An unknown statement ("") has its derived columns treated as tainted.
                self._plan = await planner.plan(sql or "", columns)
        return describe is None or not describe.injected


_UNRECORDED = Decision(
    Verdict.BLOCK,
    None,
    None,
    "the audit trail is not keeping up, and nothing runs unrecorded; try again shortly",
    sqlstate="53000",
)


def _bind_params(bind: Bind) -> tuple[str | None, ...]:
    formats = bind.param_formats
    out: list[str | None] = []
    for index, value in enumerate(bind.params):
        fmt = formats[0] if len(formats) == 1 else (formats[index] if formats else 0)
        if value is None:
            out.append(None)
        elif fmt == 1:
            out.append("\\x" + value.hex())
        else:
            out.append(value.decode("utf-8", "replace"))
    return tuple(out)


def _printable(values: list[bytes | None], formats: list[int]) -> list[str | None]:
    """Row values for the recording: text as text, binary-format values as hex."""
    out: list[str | None] = []
    for index, value in enumerate(values):
        if value is None:
            out.append(None)
        elif index < len(formats) and formats[index] == 1:
            out.append("\\x" + value.hex())
        else:
            out.append(value.decode("utf-8", "replace"))
    return out


def decision_message(decision: Decision) -> str:
    where = f'policy "{decision.policy}" {decision.rule_label}' if decision.policy else "policy"
    return f"sqlgate: blocked by {where}: {decision.reason}"


def decision_hint(decision: Decision) -> str:
    if decision.approval_id is not None:
        request = decision.approval_id
        return f"approval request {request}: `sqlgate approvals show {request}`"
    if decision.verdict is Verdict.REVIEW:
        return "this statement needs approval; see `sqlgate approvals`"
    return "the gateway's policy does not allow this statement for your identity"
