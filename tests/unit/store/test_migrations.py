from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sqlgate.store import (
    LATEST_VERSION,
    StoreError,
    StoreNotInitialized,
    make_store,
    migrate,
    open_store,
    redact_url,
    schema_version,
)

from .fixtures import raw_execute

TABLES = {"schema_migrations", "sessions", "session_events", "audit_chains", "audit_log",
          "approvals", "approval_grants"}  # fmt: skip


async def test_migrations_apply_once_and_rerun_as_no_op(store_url: str) -> None:
    first = await open_store(store_url)
    try:
        assert await schema_version(first) == LATEST_VERSION
        assert await migrate(first) == []
        assert await migrate(first) == []
    finally:
        await first.close()
    again = await open_store(store_url)  # a restart migrates again: nothing to do
    try:
        rows = await again.fetchall("SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in rows] == list(range(1, LATEST_VERSION + 1))
    finally:
        await again.close()
    if store_url.startswith("sqlite"):
        names = {
            r[0]
            for r in raw_execute(store_url, "SELECT name FROM sqlite_master WHERE type = 'table'")
        }
    else:
        names = {
            r[0]
            for r in raw_execute(
                store_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
        }
    assert names >= TABLES


async def test_replicas_starting_together_migrate_once(store_url: str) -> None:
    stores = [make_store(store_url) for _ in range(4)]
    for s in stores:
        await s.open()
    try:
        applied = await asyncio.gather(*(migrate(s) for s in stores))
        assert sorted(applied, key=len) == [[], [], [], list(range(1, LATEST_VERSION + 1))]
    finally:
        for s in stores:
            await s.close()


async def test_store_newer_than_this_sqlgate_is_refused(store_url: str) -> None:
    first = await open_store(store_url)
    await first.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                        (LATEST_VERSION + 1, "from the future", 0.0))  # fmt: skip
    await first.close()
    with pytest.raises(StoreError, match="upgrade sqlgate"):
        await open_store(store_url)


async def test_read_only_tools_do_not_create_a_missing_sqlite_store(tmp_path: Path) -> None:
    path = tmp_path / "nothing-here.db"
    with pytest.raises(StoreNotInitialized, match="sqlgate serve"):
        await open_store(f"sqlite:///{path}", migrate=False, create=False)
    assert not path.exists()


async def test_read_only_tools_refuse_a_database_without_schema(
    store_url: str, tmp_path: Path
) -> None:
    if store_url.startswith("sqlite"):
        raw_execute(store_url, "CREATE TABLE unrelated (x INTEGER)")
    with pytest.raises(StoreNotInitialized):
        await open_store(store_url, migrate=False, create=False)


def test_unknown_url_scheme_is_refused_without_echoing_the_password() -> None:
    with pytest.raises(StoreError) as info:
        make_store("mysql://root:hunter2@db/sqlgate")
    assert "hunter2" not in str(info.value)
    assert "sqlite:///" in str(info.value)


def test_redact_url_hides_only_the_password() -> None:
    assert redact_url("postgresql://gw:s3cret@db.internal:5433/state") == (
        "postgresql://gw:***@db.internal:5433/state"
    )
    assert redact_url("postgresql://gw@db/state") == "postgresql://gw@db/state"


async def test_in_memory_sqlite_store_works_for_one_process() -> None:
    mem = await open_store("sqlite:///:memory:")
    try:
        assert await schema_version(mem) == LATEST_VERSION
    finally:
        await mem.close()
