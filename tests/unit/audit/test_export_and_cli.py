from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from sqlgate.audit import export
from sqlgate.audit.cli import add_arguments, cmd_export, cmd_verify, parse_time
from sqlgate.errors import SqlgateError
from sqlgate.recording import Recorder
from sqlgate.store import Store
from tests.unit.store.fixtures import raw_execute, write_config

from .helpers import record_session

T0 = 1_714_564_800.0  # 2024-05-01T12:00:00Z


async def test_export_yields_records_in_the_time_range_with_outcomes_merged(store: Store) -> None:
    rec = Recorder(store)
    await rec.start()
    await record_session(store, 3, recorder=rec, start_at=T0)  # at T0 .. T0+4
    await record_session(store, 3, recorder=rec, start_at=T0 + 100)  # at T0+100 .. T0+104
    await rec.close()
    got = [r async for r in export(store, T0 + 1, T0 + 100.5)]  # since inclusive, until exclusive
    assert [(r["kind"], r["statement_seq"]) for r in got] == [
        ("statement", 1), ("statement", 2), ("statement", 3), ("session_end", None),
        ("session_start", None),
    ]  # fmt: skip
    assert [r async for r in export(store, T0 + 1, T0 + 100)][-1]["kind"] == "session_end"
    assert [r["at"] for r in got] == sorted(r["at"] for r in got)
    first = got[0]
    assert first["time"] == "2024-05-01T12:00:01.000Z"
    assert first["sql"] == "SELECT 1 AS n" and first["groups"] == ["analysts", "eng"]
    assert first["operations"] == ["select"] and first["decision"] == "allow"
    assert first["outcome"]["row_count"] == 1 and first["outcome"]["duration_ms"] == 1.25
    assert len(first["hash"]) == 64
    json.dumps(got)  # JSON lines need nothing special
    everything = [r async for r in export(store)]
    assert len(everything) == 2 * (1 + 3 + 1)
    paged = [r async for r in export(store, page=2)]
    assert [r["id"] for r in paged] == [r["id"] for r in everything]


async def test_export_of_a_statement_whose_session_died_has_no_outcome(store: Store) -> None:
    from tests.unit.store.fixtures import session_info, statement

    rec = Recorder(store)
    await rec.start()
    info = session_info(started_at=T0)
    rec.session_started(info)
    rec.statement(statement(info.session_id, 1, at=T0 + 1))
    await rec.close()
    got = [r async for r in export(store, session_id=info.session_id)]
    assert got[-1]["kind"] == "statement" and got[-1]["outcome"] is None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sqlgate")
    add_arguments(parser.add_subparsers(dest="command"))
    return parser


async def test_cli_verify_exits_nonzero_on_tampering(
    store: Store, store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await record_session(store, 2)
    config = write_config(tmp_path, store_url)
    args = _parser().parse_args(["audit", "verify", "--config", str(config)])
    assert await _in_thread(args.func, args) == 0
    assert "audit trail OK: 1 chains, 6 records" in capsys.readouterr().out
    raw_execute(store_url, "UPDATE audit_log SET sql = 'SELECT 2 AS n' WHERE chain_seq = 2")
    assert await _in_thread(cmd_verify, args) == 1
    out = capsys.readouterr().out
    row_id = await store.fetchval("SELECT id FROM audit_log WHERE chain_seq = 2")
    assert "FAILED" in out and f"seq 2 (id {row_id})" in out and "sql" in out


async def test_cli_export_writes_json_lines_and_reports_progress(
    store: Store, store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await record_session(store, 4, start_at=T0)
    config = write_config(tmp_path, store_url)
    out = tmp_path / "audit.jsonl"
    args = _parser().parse_args(["audit", "export", "--config", str(config), "--since", "2024-05-01T12:00:01Z",
                                 "--until", "2024-05-01T12:00:05", "--output", str(out), "--progress-every", "2"])  # fmt: skip
    assert await _in_thread(cmd_export, args) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["statement_seq"] for r in lines] == [1, 2, 3, 4]
    err = capsys.readouterr().err
    assert "exported 2 records..." in err and "exported 4 records to" in err


def test_parse_time_accepts_dates_and_zones_and_explains_mistakes() -> None:
    assert parse_time("2024-05-01", "--since") == 1_714_521_600.0
    assert parse_time("2024-05-01T12:00:00Z", "--since") == T0
    assert parse_time("2024-05-01T14:00:00+02:00", "--since") == T0
    with pytest.raises(SqlgateError, match="--until 'yesterday'"):
        parse_time("yesterday", "--until")


async def test_cli_refuses_a_store_that_does_not_exist(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'missing.db'}")
    args = _parser().parse_args(["audit", "verify", "--config", str(config)])
    with pytest.raises(SqlgateError, match="no sqlgate store"):
        await _in_thread(cmd_verify, args)


async def _in_thread(func: object, args: argparse.Namespace) -> int:
    """The CLI commands call asyncio.run themselves: run them off this test's event loop."""
    import asyncio

    return int(await asyncio.to_thread(func, args))  # type: ignore[arg-type]
