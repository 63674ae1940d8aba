"""The running gateway: listeners, the session registry, cancel routing and graceful drain."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import secrets
import socket
import ssl
import struct
import tempfile
from collections.abc import Awaitable, Callable
from typing import Protocol

from sqlgate.config import Config, TargetConfig
from sqlgate.core import Identity
from sqlgate.hooks import SessionFactory, SessionHooks
from sqlgate.protocols.postgres.messages import CancelRequest
from sqlgate.proxy.pg_session import PgClientSession
from sqlgate.proxy.tls import backend_context, client_facing_context
from sqlgate.recording.recorder import Recorder

log = logging.getLogger(__name__)


class Authenticator(Protocol):
    async def authenticate(self, password: str, client_addr: str) -> Identity: ...


class Gateway:
    """Owns the listeners and every live session of one process."""

    def __init__(
        self,
        config: Config,
        authenticator: Authenticator,
        sessions: SessionFactory,
        *,
        on_login_failure: Callable[[str, str], None] | None = None,
        worker: tuple[int, int] = (0, 1),
        supervisor_pid: int | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        self.config = config
        self.authenticator = authenticator
        self.session_factory = sessions
        self.tls_context: ssl.SSLContext = client_facing_context(config.tls)
        self._backend_tls: dict[str, ssl.SSLContext | None] = {}
        self._sessions: dict[int, PgClientSession] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._servers: list[asyncio.Server] = []
        self._on_login_failure = on_login_failure
        self.bound: dict[str, tuple[str, int]] = {}
        self.worker_index, self.worker_count = worker
        self.recorder = recorder
        self._supervisor_pid = supervisor_pid or os.getpid()

    # ------------------------------------------------------------------ wiring for sessions

    def open_session(self, identity: Identity, target: str) -> SessionHooks | None:
        return self.session_factory.open_session(identity, target)

    def backend_tls(self, target: TargetConfig) -> ssl.SSLContext | None:
        if target.name not in self._backend_tls:
            self._backend_tls[target.name] = backend_context(target)
        return self._backend_tls[target.name]

    def login_failed(self, client_host: str, reason: str) -> None:
        if self._on_login_failure is not None:
            self._on_login_failure(client_host, reason)

    def register(self, session: PgClientSession) -> tuple[int, int]:
        """A fresh (process id, secret) the client will use to cancel its own queries."""
        # The process id tells which worker owns the session (pid % workers), so a cancel
        # request that lands on another worker can be passed to the right one.
        count, index = self.worker_count, self.worker_index
        while True:
            pid = (secrets.randbelow((2**31 - 2) // count) * count + index) or count
            if pid not in self._sessions and pid % count == index:
                break
        self._sessions[pid] = session
        return pid, secrets.randbits(32)

    def unregister(self, session: PgClientSession) -> None:
        if self._sessions.get(session.process_id) is session:
            del self._sessions[session.process_id]

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    async def cancel(self, process_id: int, secret_key: int) -> None:
        """Forward a CancelRequest to the server running that client's query, if it matches."""
        owner = process_id % self.worker_count
        if owner != self.worker_index:
            await self._pass_cancel(owner, process_id, secret_key)
            return
        session = self._sessions.get(process_id)
        if session is None or not hmac.compare_digest(
            session.secret_key.to_bytes(4, "big"), secret_key.to_bytes(4, "big")
        ):
            log.warning("ignored cancel request with an unknown key")
            return
        backend = session.backend
        target = self.config.target(session.target_name or "")
        if backend is None or target is None:
            return
        try:
            async with asyncio.timeout(target.connect_timeout_seconds):
                reader, writer = await asyncio.open_connection(target.host, target.port)
                writer.write(CancelRequest(backend.key.process_id, backend.key.secret_key).encode())
                await writer.drain()
                await reader.read(1)  # the server closes the connection when done
                writer.close()
            log.info("session %d: cancel forwarded to the server", process_id)
        except (OSError, TimeoutError) as exc:
            log.warning("session %d: cancel could not reach the server: %s", process_id, exc)

    def _cancel_socket(self, index: int) -> str:
        return os.path.join(
            tempfile.gettempdir(), f"sqlgate-cancel-{self._supervisor_pid}-{index}.sock"
        )

    async def _pass_cancel(self, owner: int, process_id: int, secret_key: int) -> None:
        try:
            _reader, writer = await asyncio.open_unix_connection(self._cancel_socket(owner))
            writer.write(struct.pack("!iI", process_id, secret_key))
            await writer.drain()
            writer.close()
        except OSError as exc:
            log.warning("could not pass a cancel request to worker %d: %s", owner, exc)

    async def _accept_cancel(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            process_id, secret_key = struct.unpack("!iI", await reader.readexactly(8))
            await self.cancel(process_id, secret_key)
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    # ------------------------------------------------------------------ listening

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept_postgres(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if len(self._tasks) >= self.config.limits.max_connections:
            log.warning("refusing connection: limits.max_connections reached")
            writer.close()
            return
        session = PgClientSession(self, reader, writer)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            await session.run()
        except Exception:
            log.exception("session from %s ended with an internal error", session.client_addr)

    async def start(self, *, reuse_port: bool = False) -> None:
        address = self.config.listen.address("postgres")
        if address is not None:
            server = await asyncio.start_server(
                self._accept_postgres,
                address[0],
                address[1],
                reuse_port=reuse_port or None,
                limit=2**20,
                backlog=1024,
            )
            self._servers.append(server)
            sockname = server.sockets[0].getsockname()
            self.bound["postgres"] = (sockname[0], sockname[1])
            log.info("PostgreSQL listener on %s:%d", *self.bound["postgres"])
        if self.worker_count > 1:
            path = self._cancel_socket(self.worker_index)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            self._servers.append(await asyncio.start_unix_server(self._accept_cancel, path))
            os.chmod(path, 0o600)

    async def drain(self, grace_seconds: float) -> None:
        """Stop accepting, let running transactions finish, then close what is left."""
        for server in self._servers:
            server.close()
        for session in list(self._sessions.values()):
            session.shutdown()
        if self._tasks:
            log.info("draining %d connection(s) for up to %.0fs", len(self._tasks), grace_seconds)
            _done, pending = await asyncio.wait(set(self._tasks), timeout=grace_seconds)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("closed %d connection(s) still busy at the deadline", len(pending))
                await asyncio.gather(*pending, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
        if self.worker_count > 1:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._cancel_socket(self.worker_index))
