from __future__ import annotations

import argparse
import asyncio
import io
import json
from pathlib import Path

import pytest

from sqlgate.errors import SqlgateError
from sqlgate.recording import (
    Recorder,
    RecordingEvent,
    StatementOutcome,
    list_sessions,
    replay,
)
from sqlgate.recording.cli import add_arguments
from sqlgate.recording.replay import format_table
from sqlgate.store import Store
from tests.unit.store.fixtures import outcome, session_info, statement, write_config

T0 = 1_714_564_800.0  # 2024-05-01T12:00:00Z
M0 = 1000.0  # monotonic clock at connect


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def _transcript_session(store: Store) -> str:
    """A session with a masked SELECT, a block, a failing statement, a notice and an end."""
    mono = Clock(M0)  # what the recorder stamps itself: session start/end, outcomes
    rec = Recorder(store, monotonic=mono)
    await rec.start()
    info = session_info("3f2a9c0d1e2b4f5a6b7c8d9e0f1a2b3c", started_at=T0)
    rec.session_started(info)
    sid = info.session_id
    rec.statement(
        statement(sid, 1, "SELECT id, email FROM users LIMIT 2", at=T0 + 0.5, mono=M0 + 0.5)
    )
    rec.event(RecordingEvent.columns(sid, M0 + 0.51, 1, ["id", "email"]))
    rec.event(RecordingEvent.rows(sid, M0 + 0.52, 1, [[1, "****"], [22, "b****@example.org"]]))
    mono.now = M0 + 0.53
    rec.outcome(StatementOutcome(sid, 1, 3.14, 2, "SELECT 2", None, None))
    rec.statement(statement(sid, 2, "DROP TABLE users", at=T0 + 2, mono=M0 + 2.5, decision="block"))
    mono.now = M0 + 2.6
    rec.outcome(StatementOutcome(sid, 2, 0.2, None, None, "42501",
                                 "blocked by policy ai-agents rule 1: destructive commands are not allowed"))  # fmt: skip
    rec.statement(statement(sid, 3, "UPDATE t SET x = $1\nWHERE id = $2", at=T0 + 3, mono=M0 + 3.0,
                            params=("it's", None)))  # fmt: skip
    rec.event(RecordingEvent.notice(sid, M0 + 3.1, "warning", "t is deprecated", seq=3))
    mono.now = M0 + 3.2
    rec.outcome(outcome(sid, 3, rows=4, tag="UPDATE 4"))
    rec.statement(statement(sid, 4, "SELECT * FROM big", at=T0 + 4, mono=M0 + 4.0))
    rec.event(RecordingEvent.columns(sid, M0 + 4.1, 4, ["n"]))
    rec.event(RecordingEvent.rows(sid, M0 + 4.2, 4, [[1], [2]], truncated=True))
    mono.now = M0 + 4.3
    rec.outcome(StatementOutcome(sid, 4, 12.0, 5000, "SELECT 5000", None, None))
    mono.now = M0 + 5.0
    rec.session_ended(sid, T0 + 5, "client closed")
    await rec.close()
    return sid


async def test_replay_prints_a_psql_like_transcript(store: Store) -> None:
    sid = await _transcript_session(store)
    out = io.StringIO()
    await replay(store, sid, out, speed=0)
    text = out.getvalue()
    assert text.startswith(
        f"-- sqlgate session {sid}\n"
        "-- connected 2024-05-01T12:00:00.000Z: alice@example.com (sub alice; groups analysts, eng) "
        "from 10.0.0.5:51234 to target 'app' (postgres), application psql\n"
    )
    assert (
        "app=> SELECT id, email FROM users LIMIT 2;\n"
        "-- #1 ALLOW by policy ai-agents, rule 6: reads are fine [+"
    ) in text
    assert (
        " id |       email\n"
        "----+-------------------\n"
        "  1 | ****\n"
        " 22 | b****@example.org\n"
        "(2 rows)\n"
        "-- 3.1 ms\n"
    ) in text
    assert (
        "app=> DROP TABLE users;\n-- #2 BLOCK by policy ai-agents, rule 1: destructive commands are not allowed"
        in text
    )
    assert ("ERROR:  blocked by policy ai-agents rule 1: destructive commands are not allowed "
            "(SQLSTATE 42501)") in text  # fmt: skip
    assert (
        "app=> UPDATE t SET x = $1\napp-> WHERE id = $2;\n-- params: $1='it''s', $2=NULL\n" in text
    )
    assert "WARNING:  t is deprecated\nUPDATE 4\n" in text
    assert "(2 rows recorded of 5000)" in text
    assert "-- disconnected 2024-05-01T12:00:05.000Z: client closed" in text


async def test_replay_waits_the_recorded_gaps_scaled_by_speed(store: Store) -> None:
    sid = await _transcript_session(store)
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    await replay(store, sid, io.StringIO(), speed=2.0, sleep=fake_sleep)
    # start, +0.5 statement 1, +0.01 columns, +0.01 rows, +0.01 outcome, +1.97 statement 2, ...
    expected = [0.5, 0.01, 0.01, 0.01, 1.97, 0.1, 0.4, 0.1, 0.1, 0.8, 0.1, 0.1, 0.1, 0.7]
    assert waits == pytest.approx([e / 2 for e in expected], abs=1e-6)
    assert sum(waits) == pytest.approx(5.0 / 2)
    instant: list[float] = []

    async def no_sleep(seconds: float) -> None:
        instant.append(seconds)

    await replay(store, sid, io.StringIO(), speed=0, sleep=no_sleep)
    assert instant == []


async def test_replay_json_gives_the_raw_events(store: Store) -> None:
    sid = await _transcript_session(store)
    out = io.StringIO()
    await replay(store, sid[:8], out, as_json=True)  # a unique prefix is enough
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0]["session"]["session_id"] == sid
    assert lines[0]["session"]["statements"] == 4
    kinds = [line["kind"] for line in lines[1:]]
    assert kinds[0] == "session_start" and kinds[-1] == "session_end"
    assert kinds[1:5] == ["statement", "columns", "rows", "outcome"]
    rows = next(line for line in lines[1:] if line["kind"] == "rows")
    assert rows["data"]["rows"] == [[1, "****"], [22, "b****@example.org"]]
    assert lines[2]["data"]["sql"] == "SELECT id, email FROM users LIMIT 2"


async def test_replay_of_an_unknown_session_says_where_to_look(store: Store) -> None:
    with pytest.raises(SqlgateError, match="sessions list"):
        await replay(store, "ffffffffffff", io.StringIO())


async def test_statement_cut_off_by_a_dying_session_still_shows(store: Store) -> None:
    rec = Recorder(store)
    await rec.start()
    info = session_info(started_at=T0)
    rec.session_started(info)
    rec.statement(statement(info.session_id, 1, "SELECT n FROM t"))
    rec.event(RecordingEvent.columns(info.session_id, 1.0, 1, ["n"]))
    rec.event(RecordingEvent.rows(info.session_id, 1.1, 1, [[7]]))
    await rec.close()
    out = io.StringIO()
    await replay(store, info.session_id, out, speed=0)
    assert out.getvalue().endswith(" n\n---\n 7\n(1 row)\n")


def test_format_table_aligns_like_psql() -> None:
    assert format_table(["a", "long_name"], [[1, "x"], [None, "multi\nline"], [3.5, True]]) == [
        "  a  |  long_name",
        "-----+-------------",
        "   1 | x",
        "     | multi\\nline",
        " 3.5 | t",
    ]


async def test_sessions_are_listed_newest_first_with_filters(store: Store) -> None:
    from sqlgate.core import Identity

    bob = Identity("bob", "Bob@Example.com", frozenset(), "idp", None)
    rec = Recorder(store)
    await rec.start()
    a = session_info(started_at=T0)
    b = session_info(started_at=T0 + 10, identity=bob, target="warehouse")
    for info in (a, b):
        rec.session_started(info)
        rec.statement(statement(info.session_id, 1))
    rec.session_ended(a.session_id, T0 + 3, "client closed")
    await rec.close()
    assert [s.session_id for s in await list_sessions(store)] == [b.session_id, a.session_id]
    assert [s.session_id for s in await list_sessions(store, identity="bob@example.com")] == [
        b.session_id
    ]
    assert [s.session_id for s in await list_sessions(store, identity="alice")] == [a.session_id]
    assert [s.session_id for s in await list_sessions(store, target="app")] == [a.session_id]
    assert [s.session_id for s in await list_sessions(store, since=T0 + 5)] == [b.session_id]
    listed = (await list_sessions(store, identity="alice"))[0]
    assert (listed.statements, listed.ended_at, listed.end_reason) == (1, T0 + 3, "client closed")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sqlgate")
    add_arguments(parser.add_subparsers(dest="command"))
    return parser


async def test_cli_sessions_list_and_replay(
    store: Store, store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sid = await _transcript_session(store)
    config = str(write_config(tmp_path, store_url))
    args = _parser().parse_args(["sessions", "list", "--config", config, "--identity", "alice",
                                 "--since", "2024-05-01"])  # fmt: skip
    assert await asyncio.to_thread(args.func, args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == [
        "SESSION",
        "STARTED",
        "DURATION",
        "IDENTITY",
        "TARGET",
        "CLIENT",
        "STMTS",
        "END",
    ]
    assert out[1].split() == [sid, "2024-05-01T12:00:00.000Z", "5.0s", "alice@example.com", "app",
                              "10.0.0.5:51234", "4", "client", "closed"]  # fmt: skip
    args = _parser().parse_args(["replay", sid, "--config", config, "--speed", "0"])
    assert await asyncio.to_thread(args.func, args) == 0
    assert "app=> DROP TABLE users;" in capsys.readouterr().out
    args = _parser().parse_args(["replay", sid, "--config", config, "--json"])
    assert await asyncio.to_thread(args.func, args) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["session"]["session_id"] == sid
