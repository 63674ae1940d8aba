"""`sqlgate audit verify|export`: check the hash chains, dump the trail as JSON lines."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from sqlgate.audit.export import export
from sqlgate.audit.verify import verify
from sqlgate.errors import SqlgateError
from sqlgate.store.base import Store
from sqlgate.store.factory import open_store
from sqlgate.store.settings import StoreSettings

PROGRESS_EVERY = 10_000


def parse_time(value: str, option: str) -> float:
    """ISO 8601 date or date-time (naive means UTC) -> epoch seconds."""
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise SqlgateError(
            f"{option} {value!r}: expected an ISO 8601 time such as 2024-05-01 or "
            "2024-05-01T12:00:00Z"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


async def open_config_store(config_path: str) -> Store:
    """The store a config points at, for read-only tools: never created, never migrated."""
    from sqlgate.config import load_config

    settings = StoreSettings.from_config(load_config(config_path))
    return await open_store(settings.url, migrate=False, create=False, pool_size=1)


def add_arguments(subparsers: Any) -> None:
    """Add `audit verify` and `audit export` to the `sqlgate` parser's subcommands."""
    audit = subparsers.add_parser("audit", help="verify or export the audit trail")
    actions = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)

    check = actions.add_parser(
        "verify", help="check every hash chain; exits 1 and names the first broken record"
    )
    check.add_argument("--config", "-c", required=True, help="path to sqlgate.yaml")
    check.set_defaults(func=cmd_verify)

    dump = actions.add_parser("export", help="write audit records as JSON lines")
    dump.add_argument("--config", "-c", required=True, help="path to sqlgate.yaml")
    dump.add_argument("--since", help="ISO 8601 start (inclusive; naive times are UTC)")
    dump.add_argument("--until", help="ISO 8601 end (exclusive)")
    dump.add_argument("--output", "-o", help="file to write (default: standard output)")
    dump.add_argument(
        "--progress-every",
        type=int,
        default=PROGRESS_EVERY,
        metavar="N",
        help=f"report progress on stderr every N records (default {PROGRESS_EVERY})",
    )
    dump.set_defaults(func=cmd_export)


def cmd_verify(args: argparse.Namespace) -> int:
    return asyncio.run(_verify(args.config, sys.stdout))


async def _verify(config_path: str, out: TextIO) -> int:
    store = await open_config_store(config_path)
    try:
        result = await verify(store)
    finally:
        await store.close()
    if result.ok:
        out.write(
            f"audit trail OK: {len(result.chains)} chains, {result.records} records verified\n"
        )
        return 0
    out.write(
        f"audit trail FAILED verification: {len(result.problems)} broken chain(s) "
        f"of {len(result.chains)}\n"
    )
    for problem in result.problems:
        out.write(f"  {problem}\n")
    return 1


def cmd_export(args: argparse.Namespace) -> int:
    since = parse_time(args.since, "--since") if args.since else None
    until = parse_time(args.until, "--until") if args.until else None
    every = max(1, int(getattr(args, "progress_every", PROGRESS_EVERY)))
    if args.output:
        with Path(args.output).open("w", encoding="utf-8") as fh:
            count = asyncio.run(_export(args.config, since, until, fh, every))
        print(f"exported {count} records to {args.output}", file=sys.stderr)
    else:
        count = asyncio.run(_export(args.config, since, until, sys.stdout, every))
    return 0


async def _export(
    config_path: str, since: float | None, until: float | None, out: TextIO, every: int
) -> int:
    store = await open_config_store(config_path)
    count = 0
    try:
        async for record in export(store, since, until):
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
            if count % every == 0:
                print(f"exported {count} records...", file=sys.stderr, flush=True)
    finally:
        await store.close()
    out.flush()
    return count
