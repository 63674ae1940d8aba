"""`sqlgate serve`: build the components from the config, run them, drain on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from sqlgate.api.app import AdminServer, build_app, start_admin
from sqlgate.api.auth import require_identity
from sqlgate.api.records import record_routes
from sqlgate.approvals.service import ApprovalService
from sqlgate.config import Config, is_loopback, load_config
from sqlgate.errors import ConfigError
from sqlgate.identity import (
    DevIssuer,
    FailedLoginLimiter,
    JwksCache,
    MultiIssuerValidator,
    TokenAuthenticator,
    TokenValidator,
    dev_issuer_routes,
    dev_issuer_url,
    dev_issuer_validator,
)
from sqlgate.policy.session import PolicyService
from sqlgate.proxy.gateway import Gateway
from sqlgate.proxy.pg_catalog import PgCatalog
from sqlgate.recording.recorder import Recorder
from sqlgate.store import Store, open_store

log = logging.getLogger(__name__)


def dev_issuer_for(config: Config) -> DevIssuer:
    """The development issuer whose URL is derived from the admin listener."""
    admin = config.listen.address("admin")
    if admin is None:
        raise ConfigError("identity.dev_issuer needs listen.admin: the JWKS is served there")
    host, port = admin
    return DevIssuer.load_or_create(config.identity.dev_issuer_key_file, dev_issuer_url(host, port))


def check_dev_issuer_safety(config: Config) -> None:
    if not config.identity.dev_issuer:
        return
    hosts = [
        a[0]
        for a in (
            config.listen.address("postgres"),
            config.listen.address("mysql"),
            config.listen.address("admin"),
        )
        if a is not None
    ]
    exposed = [h for h in hosts if not is_loopback(h)]
    if exposed and not config.identity.dev_issuer_force:
        raise ConfigError(
            f"identity.dev_issuer is for development only and a listener is not on loopback "
            f"({', '.join(exposed)}): anyone who can mint tokens could log in. Bind to "
            "127.0.0.1, or set identity.dev_issuer_force: true if you really mean it"
        )


def check_secrets(config: Config) -> None:
    """Read every server password once at start, so a missing one fails now, not at login."""
    for target in config.targets:
        for credentials in (target.credentials, *target.credentials_by_group.values()):
            credentials.secret()


@dataclass
class Runtime:
    """Everything one gateway process runs; tests drive it directly."""

    config: Config
    config_path: Path | None = None
    gateway: Gateway | None = None
    policies: PolicyService | None = None
    admin: AdminServer | None = None
    dev_issuer: DevIssuer | None = None
    worker: tuple[int, int] = (0, 1)  # (index, count) when forked by the supervisor
    supervisor_pid: int | None = None
    verifier: MultiIssuerValidator | None = None
    recorder: Recorder | None = None
    approvals: ApprovalService | None = None
    _own_store: Store | None = None
    _jwks: JwksCache | None = None
    _admin_task: asyncio.Task[None] | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _catalogs: dict[str, PgCatalog] = field(default_factory=dict)

    async def start(self, *, reuse_port: bool = False) -> None:
        config = self.config
        check_dev_issuer_safety(config)
        check_secrets(config)
        validators: list[TokenValidator] = []
        routes: list[BaseRoute] = []
        if config.identity.oidc is not None:
            self._jwks = JwksCache(config.identity.oidc)
            await self._jwks.start()
            validators.append(TokenValidator(config.identity.oidc, self._jwks))
        if config.identity.dev_issuer:
            self.dev_issuer = dev_issuer_for(config)
            validators.append(
                dev_issuer_validator(
                    self.dev_issuer,
                    leeway_seconds=config.identity.oidc.leeway_seconds
                    if config.identity.oidc
                    else 30,
                )
            )
            routes.extend(dev_issuer_routes(self.dev_issuer))
            log.warning(
                "DEVELOPMENT TOKEN ISSUER ENABLED (%s): anyone with `sqlgate token` on this "
                "host can mint tokens. Never use it in production.",
                self.dev_issuer.issuer,
            )
        limiter = FailedLoginLimiter(config.identity.failed_logins_per_minute)
        self.verifier = MultiIssuerValidator(validators)
        authenticator = TokenAuthenticator(self.verifier, limiter)
        routes.append(Route("/api/reload", self._api_reload, methods=["POST"]))
        self.policies = PolicyService(config, self.catalog_for)
        if config.recording.enabled:
            self.recorder = await Recorder.open(config)
            store = self.recorder.store
        else:
            store = self._own_store = await open_store(config.store.url)
        self.approvals = ApprovalService(config, store, self.verifier)
        await self.approvals.start()
        self.policies.approvals = self.approvals
        routes.extend(self.approvals.routes())
        self.gateway = Gateway(
            config,
            authenticator,
            self.policies,
            worker=self.worker,
            supervisor_pid=self.supervisor_pid,
            recorder=self.recorder,
            on_login_failure=self._login_failed,
        )
        await self.gateway.start(reuse_port=reuse_port or self.worker[1] > 1)
        if self.recorder is not None:
            routes.extend(record_routes(self.recorder.store, self.verifier, lambda: self.config))
        admin = config.listen.address("admin")
        if admin is not None and self.worker[0] == 0:  # one admin listener per gateway
            app = build_app(self.readiness, routes)
            self.admin, self._admin_task = await start_admin(app, admin[0], admin[1])

    def catalog_for(self, target: str) -> PgCatalog:
        """The shared catalog cache of one target (for masking provenance)."""
        catalog = self._catalogs.get(target)
        if catalog is None:
            config = self.config.target(target)
            if config is None:
                raise ConfigError(f"unknown target {target!r}")
            catalog = PgCatalog(config, self.config.limits.max_message_bytes)
            self._catalogs[target] = catalog
        return catalog

    def _login_failed(self, client_host: str, reason: str) -> None:
        if self.recorder is not None:
            self.recorder.login_failed(time.time(), client_host, reason, None)

    def readiness(self) -> dict[str, bool]:
        gateway = self.gateway
        checks = {"listeners": gateway is not None and bool(gateway.bound)}
        if self._jwks is not None:
            checks["jwks"] = self._jwks.ready
        if self.recorder is not None:
            checks["store"] = self.recorder.healthy
        return checks

    def reload(self) -> str | None:
        """Re-read the config file; a broken one is rejected and the running one kept.

        Returns None on success, else why the new config was rejected. Policies apply to
        live sessions from their next statement; listeners and targets need a restart.
        """
        if self.config_path is None or self.policies is None:
            return "no config file to reload from"
        try:
            new = load_config(self.config_path)
            check_secrets(new)
            self.policies.reload(new)
        except ConfigError as exc:
            log.error("config reload rejected, keeping the running config: %s", exc)
            return str(exc)
        self.config = new
        if self.gateway is not None:
            self.gateway.config = new
        log.info(
            "config reloaded from %s (policy version %d)",
            self.config_path,
            self.policies.policies.version,
        )
        return None

    async def _api_reload(self, request: Request) -> JSONResponse:
        assert self.verifier is not None and self.policies is not None
        identity = await require_identity(request, self.verifier, self.config.admin_groups)
        log.info("reload requested through the API by %s", identity.display)
        if self.worker[1] > 1 and self.supervisor_pid is not None:
            # Every worker must reload: check the file here, then let the supervisor
            # pass SIGHUP to all of them.
            try:
                load_config(self.config_path) if self.config_path else None
            except ConfigError as exc:
                return JSONResponse({"reloaded": False, "error": str(exc)}, status_code=422)
            os.kill(self.supervisor_pid, signal.SIGHUP)
            return JSONResponse({"reloaded": True, "workers": self.worker[1]})
        problem = self.reload()
        if problem is not None:
            return JSONResponse({"reloaded": False, "error": problem}, status_code=422)
        return JSONResponse({"reloaded": True, "policy_version": self.policies.policies.version})

    def request_stop(self) -> None:
        self._stop.set()

    async def wait(self) -> None:
        await self._stop.wait()

    async def stop(self) -> None:
        if self.gateway is not None:
            await self.gateway.drain(self.config.server.shutdown_grace_seconds)
        if self.admin is not None and self._admin_task is not None:
            self.admin.should_exit = True
            await self._admin_task
        if self._jwks is not None:
            await self._jwks.aclose()
        for catalog in self._catalogs.values():
            await catalog.close()
        if self.approvals is not None:
            await self.approvals.close()
        if self.recorder is not None:
            await self.recorder.close(self.config.server.shutdown_grace_seconds)
        if self._own_store is not None:
            await self._own_store.close()


async def serve(
    config_path: Path, *, worker: tuple[int, int] = (0, 1), supervisor_pid: int | None = None
) -> None:
    runtime = Runtime(
        load_config(config_path), config_path, worker=worker, supervisor_pid=supervisor_pid
    )
    await runtime.start()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, runtime.request_stop)
    loop.add_signal_handler(signal.SIGINT, runtime.request_stop)
    loop.add_signal_handler(signal.SIGHUP, runtime.reload)
    log.info("sqlgate ready (worker %d of %d)", worker[0] + 1, worker[1])
    await runtime.wait()
    log.info("shutting down")
    await runtime.stop()
