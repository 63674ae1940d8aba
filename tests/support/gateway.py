"""Run a real sqlgate Runtime in a background thread, for tests that use blocking clients."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from psycopg.conninfo import make_conninfo

from sqlgate.config import Config, parse_config
from sqlgate.runtime import Runtime

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningGateway:
    runtime: Runtime
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    host: str
    port: int
    admin_port: int

    @property
    def config(self) -> Config:
        return self.runtime.config

    def token(self, sub: str, groups: list[str], **kwargs: Any) -> str:
        assert self.runtime.dev_issuer is not None
        return self.runtime.dev_issuer.mint(sub, groups, **kwargs)

    def dsn(
        self,
        password: str,
        dbname: str = "app",
        sslmode: str = "require",
        user: str = "agent",
        **params: Any,
    ) -> str:
        return make_conninfo(
            host=self.host,
            port=self.port,
            dbname=dbname,
            user=user,
            password=password,
            sslmode=sslmode,
            connect_timeout=10,
            **params,
        )

    def call(self, fn: Callable[[], Coroutine[Any, Any, T]], timeout: float = 30) -> T:
        """Run a coroutine on the gateway's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(fn(), self.loop).result(timeout)

    def stop(self) -> None:
        if self.thread.is_alive():
            self.call(self.runtime.stop, timeout=60)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


def gateway_yaml(
    pg_port: int,
    work: Path,
    *,
    policies: str,
    extra: str = "",
    target_extra: str = "",
    port: int | None = None,
    admin_port: int | None = None,
) -> str:
    """A config for one `app` target on 127.0.0.1:pg_port, with the dev issuer."""
    return f"""
listen:
  postgres: 127.0.0.1:{port or free_port()}
  admin: 127.0.0.1:{admin_port or free_port()}
tls:
  allow_plaintext_on_loopback: true
identity:
  dev_issuer: true
  dev_issuer_key_file: {work / "dev-key.json"}
targets:
  - name: app
    host: 127.0.0.1
    port: {pg_port}
    database: app
    tls: disable
    credentials: {{user: sqlgate_svc, password_env: SQLGATE_TEST_SVC_PASSWORD}}
{target_extra}
server:
  shutdown_grace_seconds: 5
masking:
  hash_key_env: SQLGATE_TEST_MASK_KEY
store:
  url: sqlite:///{work / "sqlgate.db"}
approvals:
  approvers: [dba]
  timeout_seconds: 20
{extra}
policies:
{policies}
"""


def start_gateway(config_text: str) -> RunningGateway:
    """Start a Runtime on its own thread and event loop; raises what start() raised."""
    config = parse_config(config_text, "<test config>")
    loop = asyncio.new_event_loop()
    runtime = Runtime(config)
    started = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def boot() -> None:
            try:
                await runtime.start()
            except BaseException as exc:  # reported to the caller
                failure.append(exc)
            finally:
                started.set()

        boot_task = loop.create_task(boot())
        loop.run_forever()
        del boot_task

    thread = threading.Thread(target=run, name="sqlgate-test-gateway", daemon=True)
    thread.start()
    started.wait(30)
    if failure:
        loop.call_soon_threadsafe(loop.stop)
        raise failure[0]
    assert runtime.gateway is not None and runtime.admin is not None
    host, port = runtime.gateway.bound["postgres"]
    return RunningGateway(runtime, loop, thread, host, port, runtime.admin.port)
