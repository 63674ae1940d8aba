"""The admin HTTP listener: health, readiness, and (as later components land) the API."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from sqlgate.errors import ConfigError


def build_app(ready: Callable[[], dict[str, bool]], extra_routes: list[BaseRoute]) -> Starlette:
    """`ready` reports each readiness check; /readyz is 200 only when all pass."""

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> JSONResponse:
        checks = ready()
        ok = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": checks},
            status_code=200 if ok else 503,
        )

    routes: list[BaseRoute] = [Route("/healthz", healthz), Route("/readyz", readyz), *extra_routes]
    return Starlette(routes=routes)


class AdminServer(uvicorn.Server):
    """uvicorn inside our event loop; signals stay with the gateway, not uvicorn."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    @property
    def port(self) -> int:
        return int(self.servers[0].sockets[0].getsockname()[1])


async def start_admin(
    app: Starlette, host: str, port: int
) -> tuple[AdminServer, asyncio.Task[None]]:
    """Serve the admin app; raises ConfigError when the address cannot be bound."""
    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, access_log=False, lifespan="off"
    )
    server = AdminServer(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            try:
                task.result()
            except SystemExit:
                pass
            raise ConfigError(f"cannot listen on listen.admin {host}:{port} (address in use?)")
        await asyncio.sleep(0.01)
    return server, task
