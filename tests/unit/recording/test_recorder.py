from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from sqlgate.audit import verify
from sqlgate.config import parse_config
from sqlgate.recording import Recorder, RecordingEvent, RecordingSettings
from sqlgate.store import Store, StoreSettings, open_store
from tests.unit.store.fixtures import (
    CONFIG_TEMPLATE,
    outcome,
    raw_execute,
    session_info,
    statement,
)


def _recorder(store: Store, **settings: object) -> Recorder:
    return Recorder(store, StoreSettings(**settings))  # type: ignore[arg-type]


async def test_statements_are_written_in_batches_of_the_configured_size(store: Store) -> None:
    rec = _recorder(store, batch_size=500)
    info = session_info()
    rec.session_started(info)
    for seq in range(1, 1200):  # 1 start + 1199 statements = 1200 items
        assert rec.statement(statement(info.session_id, seq))
    assert rec.queue_depth == 1200
    await rec.start()
    await rec.flush()
    assert rec.queue_depth == 0
    assert await store.fetchval("SELECT last_batch FROM audit_chains") == 3
    assert await store.fetchval("SELECT COUNT(*) FROM audit_log WHERE kind = 'statement'") == 1199
    await rec.close()


async def test_a_trickle_is_grouped_by_the_flush_interval(store: Store) -> None:
    rec = _recorder(store, flush_interval_seconds=0.5)
    await rec.start()
    info = session_info()
    rec.session_started(info)
    for seq in range(1, 5):
        await _sleep(0.01)  # the writer is awake and waiting for more
        rec.statement(statement(info.session_id, seq))
    for _ in range(250):
        if rec.queue_depth == 0 and rec.records_written == 5:
            break
        await _sleep(0.02)
    assert await store.fetchval("SELECT last_batch FROM audit_chains") == 1
    await rec.close()


async def test_order_is_kept_per_session_and_in_the_chain(store: Store) -> None:
    rec = _recorder(store, batch_size=7)
    a, b = session_info(), session_info()
    rec.session_started(a)
    rec.session_started(b)
    for seq in range(1, 21):
        for info in (a, b):
            rec.statement(statement(info.session_id, seq, f"SELECT {seq}"))
            rec.event(RecordingEvent.rows(info.session_id, time.monotonic(), seq, [[seq]]))
            rec.outcome(outcome(info.session_id, seq))
    rec.session_ended(a.session_id, time.time(), "client closed")
    await rec.start()
    await rec.flush()
    for info in (a, b):
        rows = await store.fetchall(
            "SELECT kind, statement_seq FROM session_events WHERE session_id = ? ORDER BY id",
            (info.session_id,),
        )
        kinds = [r["kind"] for r in rows]
        assert kinds[0] == "session_start"
        seqs = [r["statement_seq"] for r in rows if r["kind"] == "statement"]
        assert seqs == list(range(1, 21))
        assert kinds[1:4] == ["statement", "rows", "outcome"]
    chain = await store.fetchall(
        "SELECT chain_seq, kind, session_id, statement_seq FROM audit_log ORDER BY chain_seq"
    )
    assert [r["chain_seq"] for r in chain] == list(range(1, len(chain) + 1))
    a_stmts = [
        r["statement_seq"]
        for r in chain
        if r["session_id"] == a.session_id and r["kind"] == "statement"
    ]
    assert a_stmts == list(range(1, 21))
    assert chain[-1]["kind"] == "session_end"
    session = await store.fetchone(
        "SELECT ended_at, end_reason FROM sessions WHERE session_id = ?", (a.session_id,)
    )
    assert session is not None and session["end_reason"] == "client closed"
    assert (await verify(store)).ok
    await rec.close()


async def test_full_queue_in_block_mode_refuses_statements(store: Store) -> None:
    rec = _recorder(store, queue_size=3, on_full="block")  # writer not started: nothing drains
    info = session_info()
    assert [rec.statement(statement(info.session_id, i)) for i in range(1, 5)] == [
        True,
        True,
        True,
        False,
    ]
    assert rec.refused == 1 and rec.dropped == 0
    assert not rec.healthy
    # The outcome of an admitted statement still gets in: it must not be lost.
    rec.outcome(outcome(info.session_id, 3))
    assert rec.queue_depth == 4
    await rec.start()
    await rec.flush()
    assert rec.healthy
    assert rec.statement(statement(info.session_id, 5))
    await rec.flush()
    seqs = [r["statement_seq"] for r in await store.fetchall(
        "SELECT statement_seq FROM audit_log WHERE kind = 'statement' ORDER BY chain_seq")]  # fmt: skip
    assert seqs == [1, 2, 3, 5]
    await rec.close()


async def test_full_queue_in_drop_mode_counts_and_logs_the_drops(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    rec = _recorder(store, queue_size=3, on_full="drop")
    info = session_info()
    with caplog.at_level("ERROR", logger="sqlgate.recording"):
        results = [
            rec.statement(statement(info.session_id, i, "SELECT 'secret-literal'"))
            for i in range(1, 8)
        ]
    assert results == [True] * 7
    assert rec.dropped == 4 and rec.refused == 0
    full = [r for r in caplog.records if "queue full" in r.getMessage()]
    assert len(full) == 1  # rate-limited: one line, not one per statement
    assert "UNRECORDED" in full[0].getMessage()
    assert "secret-literal" not in caplog.text
    await rec.start()
    await rec.flush()
    assert await store.fetchval("SELECT COUNT(*) FROM audit_log WHERE kind = 'statement'") == 3
    await rec.close()


async def test_close_writes_everything_still_queued(store_url: str) -> None:
    store = await open_store(store_url)
    rec = _recorder(store)
    await rec.start()
    info = session_info()
    rec.session_started(info)
    for seq in range(1, 51):
        rec.statement(statement(info.session_id, seq))
        rec.outcome(outcome(info.session_id, seq))
    rec.session_ended(info.session_id, time.time(), "server shutdown")
    await rec.close()
    assert not rec.statement(statement(info.session_id, 51))  # closed: refuse, never run unrecorded
    await store.close()
    again = await open_store(store_url)
    try:
        assert await again.fetchval("SELECT COUNT(*) FROM audit_log") == 1 + 100 + 1
        assert (await verify(again)).ok
    finally:
        await again.close()


async def test_audit_records_carry_the_session_identity(store: Store) -> None:
    rec = _recorder(store)
    await rec.start()
    info = session_info()
    rec.session_started(info)
    rec.statement(
        statement(info.session_id, 1, "SELECT * FROM users WHERE id = $1", params=("42", None))
    )
    rec.outcome(outcome(info.session_id, 1, rows=1))
    rec.login_failed(time.time(), "10.9.9.9:4000", "token expired 30s ago", "mallory")
    await rec.flush()
    row = await store.fetchone("SELECT * FROM audit_log WHERE kind = 'statement'")
    assert row is not None
    assert (row["subject"], row["email"], row["target"], row["client_addr"]) == (
        "alice", "alice@example.com", "app", "10.0.0.5:51234")  # fmt: skip
    assert json.loads(row["groups_json"]) == ["analysts", "eng"]
    assert json.loads(row["params"]) == ["42", None]
    assert (row["decision"], row["policy"], row["rule"]) == ("allow", "ai-agents", 6)
    failed = await store.fetchone("SELECT * FROM audit_log WHERE kind = 'login_failed'")
    assert failed is not None
    assert (failed["subject"], failed["reason"], failed["client_addr"]) == (
        "mallory", "token expired 30s ago", "10.9.9.9:4000")  # fmt: skip
    await rec.close()


async def test_text_the_stores_cannot_hold_is_made_safe_not_fatal(store: Store) -> None:
    rec = _recorder(store)
    await rec.start()
    info = session_info()
    rec.session_started(info)
    rec.statement(statement(info.session_id, 1, "SELECT 'a\x00b', '\udcff'"))
    rec.event(
        RecordingEvent(
            info.session_id,
            time.monotonic(),
            "rows",
            {"seq": 1, "rows": [["\x00", "\udcff", b"raw"]]},
        )
    )
    await rec.flush()
    assert rec.healthy
    assert (
        await store.fetchval("SELECT sql FROM audit_log WHERE kind = 'statement'")
        == "SELECT 'a\ufffdb', '?'"
    )
    assert (await verify(store)).ok
    await rec.close()


async def test_writer_retries_until_the_store_accepts_and_the_chain_stays_whole(
    store_url: str,
) -> None:
    store = await open_store(store_url)
    rec = _recorder(store, flush_interval_seconds=0.01)
    await rec.start()
    info = session_info()
    rec.session_started(info)
    rec.statement(statement(info.session_id, 1))
    await rec.flush()
    raw_execute(store_url, "ALTER TABLE session_events RENAME TO session_events_away")
    rec.statement(statement(info.session_id, 2))
    deadline = time.monotonic() + 10
    while rec.healthy and time.monotonic() < deadline:
        await _sleep(0.02)
    assert not rec.healthy
    raw_execute(store_url, "ALTER TABLE session_events_away RENAME TO session_events")
    rec.statement(statement(info.session_id, 3))
    await rec.flush()
    assert rec.healthy
    seqs = [r["statement_seq"] for r in await store.fetchall(
        "SELECT statement_seq FROM audit_log WHERE kind = 'statement' ORDER BY chain_seq")]  # fmt: skip
    assert seqs == [1, 2, 3]
    assert (await verify(store)).ok
    await rec.close()
    await store.close()


async def test_open_from_config_and_expose_settings(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    config = parse_config(CONFIG_TEMPLATE.format(url=url))
    rec = await Recorder.open(config)
    try:
        assert rec.row_cap == 100
        assert rec.healthy and rec.queue_depth == 0 and rec.dropped == 0
        info = session_info()
        rec.session_started(info)
        await rec.flush()
        assert await rec.store.fetchval("SELECT COUNT(*) FROM sessions") == 1
    finally:
        await rec.close()
    assert (tmp_path / "state.db").exists()


def test_row_cap_comes_from_recording_settings(tmp_path: Path) -> None:
    rec = Recorder(object(), recording_settings=RecordingSettings(max_rows_per_statement=7))  # type: ignore[arg-type]
    assert rec.row_cap == 7


async def test_stdout_sink_mirrors_each_committed_record(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    from sqlgate.audit.sink import StdoutSink

    rec = Recorder(store, sink=StdoutSink())
    await rec.start()
    info = session_info()
    rec.session_started(info)
    rec.statement(statement(info.session_id, 1))
    await rec.flush()
    await rec.close()
    lines = [json.loads(line)["sqlgate_audit"] for line in capsys.readouterr().out.splitlines()]
    assert [line["kind"] for line in lines] == ["session_start", "statement"]
    stored = await store.fetchall("SELECT hash FROM audit_log ORDER BY chain_seq")
    assert [line["hash"] for line in lines] == [r["hash"] for r in stored]


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


async def test_a_malformed_item_is_skipped_without_a_gap_in_the_chain(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    import dataclasses

    rec = _recorder(store)
    await rec.start()
    info = session_info()
    rec.session_started(info)
    rec.statement(dataclasses.replace(statement(info.session_id, 1), rule="not a number"))  # type: ignore[arg-type]
    rec.event(RecordingEvent(info.session_id, None, "rows", {}))  # type: ignore[arg-type]
    rec.statement(statement(info.session_id, 2))
    with caplog.at_level("ERROR", logger="sqlgate.recording"):
        await rec.flush()
    assert rec.healthy
    assert caplog.text.count("skipping a malformed recording item") == 2
    assert rec.dropped == 2
    rows = await store.fetchall("SELECT chain_seq, statement_seq FROM audit_log ORDER BY chain_seq")
    assert [(r["chain_seq"], r["statement_seq"]) for r in rows] == [(1, None), (2, 2)]
    assert (await verify(store)).ok
    await rec.close()


async def test_close_gives_up_after_the_drain_time_and_says_what_was_lost(
    store: Store, store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    rec = _recorder(store, flush_interval_seconds=0.01)
    await rec.start()
    info = session_info()
    raw_execute(store_url, "ALTER TABLE sessions RENAME TO sessions_away")
    rec.session_started(info)
    rec.statement(statement(info.session_id, 1))
    with caplog.at_level("ERROR", logger="sqlgate.recording"):
        await rec.close(drain_seconds=0.3)
    assert "recorder closed with 2 events unwritten" in caplog.text
    assert not rec.statement(statement(info.session_id, 2))
