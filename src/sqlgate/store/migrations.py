"""Versioned schema migrations, as ordered SQL per dialect, applied at start.

Append a new `Migration` to change the schema; never edit one that has shipped. Every
replica runs `migrate()` at start: a lock makes concurrent starts apply each version once,
and a store newer than this sqlgate is refused rather than used with the wrong schema.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlgate.store.base import Store, StoreError, StoreNotInitialized, Tx


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]


def _tables(ident: str, real: str, bigint: str) -> tuple[str, ...]:
    """Version 1 for both dialects: only the identity column and number types differ."""
    return (
        f"""CREATE TABLE sessions (
            session_id TEXT PRIMARY KEY,
            started_at {real} NOT NULL,
            ended_at {real},
            end_reason TEXT,
            subject TEXT NOT NULL,
            email TEXT,
            groups_json TEXT NOT NULL,
            issuer TEXT,
            client_addr TEXT,
            application_name TEXT,
            target TEXT NOT NULL,
            protocol TEXT NOT NULL,
            chain_id TEXT NOT NULL
        )""",
        "CREATE INDEX sessions_started ON sessions (started_at)",
        "CREATE INDEX sessions_subject ON sessions (subject, started_at)",
        "CREATE INDEX sessions_target ON sessions (target, started_at)",
        f"""CREATE TABLE session_events (
            id {ident},
            session_id TEXT NOT NULL,
            mono {real} NOT NULL,
            kind TEXT NOT NULL,
            statement_seq {bigint},
            data TEXT NOT NULL
        )""",
        "CREATE INDEX session_events_session ON session_events (session_id, id)",
        f"""CREATE TABLE audit_chains (
            chain_id TEXT PRIMARY KEY,
            writer TEXT NOT NULL,
            started_at {real} NOT NULL,
            updated_at {real} NOT NULL,
            head_seq {bigint} NOT NULL,
            head_hash TEXT NOT NULL,
            anchor_seq {bigint} NOT NULL,
            anchor_hash TEXT NOT NULL,
            last_batch {bigint} NOT NULL
        )""",
        f"""CREATE TABLE audit_log (
            id {ident},
            chain_id TEXT NOT NULL,
            chain_seq {bigint} NOT NULL,
            kind TEXT NOT NULL,
            at {real} NOT NULL,
            session_id TEXT,
            statement_seq {bigint},
            subject TEXT,
            email TEXT,
            groups_json TEXT,
            issuer TEXT,
            client_addr TEXT,
            target TEXT,
            application_name TEXT,
            sql TEXT,
            params TEXT,
            category TEXT,
            operations TEXT,
            decision TEXT,
            policy TEXT,
            rule INTEGER,
            reason TEXT,
            approval_id TEXT,
            row_count {bigint},
            duration_ms {real},
            command_tag TEXT,
            sqlstate TEXT,
            error_message TEXT,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL,
            UNIQUE (chain_id, chain_seq)
        )""",
        "CREATE INDEX audit_log_at ON audit_log (at, id)",
        "CREATE INDEX audit_log_session ON audit_log (session_id, statement_seq)",
        f"""CREATE TABLE approvals (
            id TEXT PRIMARY KEY,
            status TEXT NOT NULL CHECK (
                status IN ('pending', 'approved', 'denied', 'expired', 'cancelled')),
            requester_sub TEXT NOT NULL,
            requester_email TEXT,
            requester_groups TEXT NOT NULL,
            session_id TEXT,
            target TEXT NOT NULL,
            sql TEXT NOT NULL,
            normalized_sql TEXT NOT NULL,
            policy TEXT,
            rule INTEGER,
            reason TEXT NOT NULL,
            decided_by TEXT,
            decision_reason TEXT,
            created_at {real} NOT NULL,
            decided_at {real},
            expires_at {real} NOT NULL,
            grant_used_at {real}
        )""",
        "CREATE INDEX approvals_status ON approvals (status, created_at)",
        f"""CREATE TABLE approval_grants (
            id TEXT PRIMARY KEY,
            approval_id TEXT NOT NULL REFERENCES approvals (id) ON DELETE CASCADE,
            subject TEXT NOT NULL,
            target TEXT NOT NULL,
            normalized_sql TEXT NOT NULL,
            created_at {real} NOT NULL,
            expires_at {real} NOT NULL,
            used_at {real}
        )""",
        "CREATE INDEX approval_grants_lookup ON approval_grants "
        "(subject, target, normalized_sql, expires_at)",
        "CREATE INDEX approval_grants_approval ON approval_grants (approval_id)",
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "sessions, recordings, audit chains, approvals",
        sqlite=_tables("INTEGER PRIMARY KEY AUTOINCREMENT", "REAL", "INTEGER"),
        postgres=_tables(
            "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "DOUBLE PRECISION", "BIGINT"
        ),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version

_CREATE_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at {real} NOT NULL
)"""


async def _applied(tx: Tx) -> set[int]:
    rows = await tx.fetchall("SELECT version FROM schema_migrations")
    return {int(r["version"]) for r in rows}


async def migrate(store: Store) -> list[int]:
    """Bring the schema to LATEST_VERSION; returns the versions applied now (often none)."""
    real = "REAL" if store.dialect == "sqlite" else "DOUBLE PRECISION"
    async with store.transaction() as tx:
        await tx.lock("migrations")
        await tx.execute(_CREATE_TABLE.format(real=real))
        done = await _applied(tx)
        newer = sorted(v for v in done if v > LATEST_VERSION)
        if newer:
            raise StoreError(
                f"the store's schema is at version {max(newer)} but this sqlgate knows only up "
                f"to {LATEST_VERSION}: upgrade sqlgate (every replica sharing the store)"
            )
        applied: list[int] = []
        for migration in MIGRATIONS:
            if migration.version in done:
                continue
            statements = migration.sqlite if store.dialect == "sqlite" else migration.postgres
            for statement in statements:
                await tx.execute(statement)
            await tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, time.time()),
            )
            applied.append(migration.version)
        return applied


async def schema_version(store: Store) -> int | None:
    """The highest applied version, or None when the store has no sqlgate schema."""
    table = (
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        if store.dialect == "sqlite"
        else "SELECT 1 FROM pg_catalog.pg_tables WHERE tablename = 'schema_migrations'"
        " AND schemaname = ANY (current_schemas(false))"
    )
    if await store.fetchval(table) is None:
        return None
    value = await store.fetchval("SELECT MAX(version) FROM schema_migrations")
    return None if value is None else int(value)


async def require_current(store: Store) -> None:
    """For tools that read a store the gateway created: refuse a missing or other schema."""
    version = await schema_version(store)
    if version is None:
        raise StoreNotInitialized(
            "the store has no sqlgate tables: check store.url, or start the gateway once "
            "(`sqlgate serve`) to create them"
        )
    if version != LATEST_VERSION:
        raise StoreError(
            f"the store's schema is at version {version}, this sqlgate expects "
            f"{LATEST_VERSION}: run the matching sqlgate version (the gateway migrates at start)"
        )
