"""Turn `store.url` into an open, migrated Store."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from sqlgate.store.base import Store, StoreError
from sqlgate.store.migrations import migrate as apply_migrations
from sqlgate.store.migrations import require_current


def make_store(url: str, *, create: bool = True, pool_size: int = 4) -> Store:
    """A Store for `sqlite:///path` or `postgresql://...`, not yet opened."""
    if url.startswith("sqlite:"):
        from sqlgate.store.sqlite import SqliteStore

        if not url.startswith("sqlite:///"):
            raise StoreError(
                f"store.url {url!r}: write sqlite:///relative/path.db or "
                "sqlite:////absolute/path.db"
            )
        path = url.removeprefix("sqlite:///")
        if not path:
            raise StoreError("store.url sqlite:/// needs a file name, e.g. sqlite:///sqlgate.db")
        return SqliteStore(path, create=create)
    if url.startswith(("postgresql://", "postgres://")):
        from sqlgate.store.postgres import PostgresStore

        return PostgresStore(url, pool_size=pool_size)
    raise StoreError(
        f"store.url {redact_url(url)!r} is not supported: use sqlite:///path.db or "
        "postgresql://user@host/dbname"
    )


async def open_store(
    url: str, *, migrate: bool = True, create: bool = True, pool_size: int = 4
) -> Store:
    """Open the store; `migrate=True` (the gateway) applies migrations, `migrate=False`
    (read-only tools) insists the schema is already current."""
    store = make_store(url, create=create, pool_size=pool_size)
    await store.open()
    try:
        if migrate:
            await apply_migrations(store)
        else:
            await require_current(store)
    except BaseException:
        await store.close()
        raise
    return store


def redact_url(url: str) -> str:
    """The URL with any password replaced, for log lines and error messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable store url>"
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))
