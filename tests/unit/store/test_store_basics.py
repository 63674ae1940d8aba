from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest

from sqlgate.store import Store, open_store


async def test_failed_transaction_rolls_back_and_store_stays_usable(store: Store) -> None:
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            await tx.execute("INSERT INTO audit_chains (chain_id, writer, started_at, updated_at, head_seq, "
                             "head_hash, anchor_seq, anchor_hash, last_batch) VALUES ('c', 'w', 0, 0, 0, 'h', 0, 'h', 0)")  # fmt: skip
            raise RuntimeError("boom")
    assert await store.fetchval("SELECT COUNT(*) FROM audit_chains") == 0
    assert await store.execute("UPDATE audit_chains SET writer = 'x'") == 0


async def test_sql_error_inside_transaction_rolls_back(store: Store) -> None:
    with pytest.raises(Exception, match=r"(?i)no such table|does not exist"):
        async with store.transaction() as tx:
            await tx.execute("INSERT INTO approvals (id, status, requester_sub, requester_groups, target, sql, "
                             "normalized_sql, reason, created_at, expires_at) VALUES "
                             "('a', 'pending', 's', '[]', 't', 'q', 'q', 'r', 0, 1)")  # fmt: skip
            await tx.execute("SELECT * FROM no_such_table")
    assert await store.fetchval("SELECT COUNT(*) FROM approvals") == 0


async def test_reads_do_not_wait_for_an_open_write_transaction(store: Store) -> None:
    entered = asyncio.Event()
    release = asyncio.Event()

    async def writer() -> None:
        async with store.transaction() as tx:
            await tx.execute("INSERT INTO audit_chains (chain_id, writer, started_at, updated_at, head_seq, "
                             "head_hash, anchor_seq, anchor_hash, last_batch) VALUES ('c', 'w', 0, 0, 0, 'h', 0, 'h', 0)")  # fmt: skip
            entered.set()
            await release.wait()

    task = asyncio.create_task(writer())
    await entered.wait()
    # The uncommitted row is invisible, and the read does not block on the writer.
    assert await asyncio.wait_for(store.fetchval("SELECT COUNT(*) FROM audit_chains"), 5) == 0
    release.set()
    await task
    assert await store.fetchval("SELECT COUNT(*) FROM audit_chains") == 1


async def test_percent_and_question_marks_in_values_survive(store: Store) -> None:
    await store.execute("INSERT INTO audit_chains (chain_id, writer, started_at, updated_at, head_seq, "
                        "head_hash, anchor_seq, anchor_hash, last_batch) VALUES (?, ?, 0, 0, 0, 'h', 0, 'h', 0)",
                        ("c%s?", "50% done?"))  # fmt: skip
    assert (
        await store.fetchval("SELECT writer FROM audit_chains WHERE chain_id = ?", ("c%s?",))
        == "50% done?"
    )


async def test_new_sqlite_store_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = await open_store(f"sqlite:///{path}")
    try:
        await store.execute("CREATE TABLE t (x INTEGER)")
        assert _modes(path) == {0o600}
    finally:
        await store.close()


def _modes(db: Path) -> set[int]:
    """Permission bits of the database file and its WAL companions."""
    files = [db, *db.parent.glob(f"{db.name}-*")]
    return {stat.S_IMODE(f.stat().st_mode) for f in files}
