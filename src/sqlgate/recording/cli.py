"""`sqlgate sessions list` and `sqlgate replay SESSION_ID`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any, TextIO

from sqlgate.audit.cli import open_config_store, parse_time
from sqlgate.audit.export import iso_time
from sqlgate.recording.replay import replay
from sqlgate.recording.sessions import SessionSummary, list_sessions


def add_arguments(subparsers: Any) -> None:
    """Add `sessions list` and `replay` to the `sqlgate` parser's subcommands."""
    sessions = subparsers.add_parser("sessions", help="list recorded sessions")
    actions = sessions.add_subparsers(dest="sessions_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="recorded sessions, newest first")
    listing.add_argument("--config", "-c", required=True, help="path to sqlgate.yaml")
    listing.add_argument("--identity", help="subject or email")
    listing.add_argument("--target", help="target name")
    listing.add_argument("--since", help="ISO 8601 time (naive times are UTC)")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(func=cmd_sessions_list)

    play = subparsers.add_parser("replay", help="replay a recorded session as a transcript")
    play.add_argument("session_id", metavar="SESSION_ID", help="full id or a unique prefix")
    play.add_argument("--config", "-c", required=True, help="path to sqlgate.yaml")
    play.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="time scale: 1 real time, 10 ten times faster, 0 all at once",
    )
    play.add_argument("--json", action="store_true", help="raw events as JSON lines")
    play.set_defaults(func=cmd_replay)


def cmd_sessions_list(args: argparse.Namespace) -> int:
    since = parse_time(args.since, "--since") if args.since else None
    return asyncio.run(_sessions_list(args, since, sys.stdout))


async def _sessions_list(args: argparse.Namespace, since: float | None, out: TextIO) -> int:
    store = await open_config_store(args.config)
    try:
        found = await list_sessions(
            store,
            identity=args.identity,
            target=args.target,
            since=since,
            limit=args.limit,
        )
    finally:
        await store.close()
    if getattr(args, "json", False):
        for s in found:
            out.write(json.dumps({f: getattr(s, f) for f in SessionSummary.__dataclass_fields__})
                      + "\n")  # fmt: skip
        return 0
    if not found:
        out.write("no recorded sessions match\n")
        return 0
    header = ("SESSION", "STARTED", "DURATION", "IDENTITY", "TARGET", "CLIENT", "STMTS", "END")
    rows = [header, *(_row(s) for s in found)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for row in rows:
        out.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() + "\n")
    return 0


def _row(s: SessionSummary) -> tuple[str, ...]:
    duration = "not ended" if s.ended_at is None else f"{s.ended_at - s.started_at:.1f}s"
    return (
        s.session_id,
        iso_time(s.started_at),
        duration,
        s.identity,
        s.target,
        s.client_addr or "-",
        str(s.statements),
        s.end_reason or "-",
    )


def cmd_replay(args: argparse.Namespace) -> int:
    if args.speed < 0:
        print("sqlgate: --speed must be 0 (all at once) or positive", file=sys.stderr)
        return 2
    return asyncio.run(_replay(args, sys.stdout))


async def _replay(args: argparse.Namespace, out: TextIO) -> int:
    store = await open_config_store(args.config)
    try:
        await replay(store, args.session_id, out, speed=args.speed, as_json=args.json)
    finally:
        await store.close()
    return 0
