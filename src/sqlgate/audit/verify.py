"""Check every audit chain: gapless sequence, links, hashes, and the stored chain head.

Each chain starts from its anchor (the last purged record's seq and hash, or the genesis hash)
and must end exactly at its head (seq and hash stored in `audit_chains` in the same
transaction as the records), so an edited, deleted, inserted, reordered or truncated record
is found and named. When a record's hash fails, the session recording (an independent copy)
is consulted to say which field was changed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlgate.audit.chain import STORED_COLUMNS, AuditKind, record_hash
from sqlgate.store.base import Row, Store, Tx

_PAGE = 1000
_SELECT = f"SELECT id, {', '.join(STORED_COLUMNS)} FROM audit_log"


@dataclass(frozen=True, slots=True)
class VerifyProblem:
    """The first broken record of one chain."""

    chain_id: str
    seq: int
    record_id: int | None  # None when the record is missing altogether
    what: str

    def __str__(self) -> str:
        where = f"id {self.record_id}" if self.record_id is not None else "missing"
        return f"chain {self.chain_id} seq {self.seq} ({where}): {self.what}"


@dataclass(frozen=True, slots=True)
class ChainReport:
    chain_id: str
    writer: str | None
    records: int  # records checked (up to the first problem)
    first_seq: int  # anchor_seq + 1
    head_seq: int
    problem: VerifyProblem | None


@dataclass(frozen=True, slots=True)
class VerifyResult:
    chains: tuple[ChainReport, ...]
    problems: tuple[VerifyProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def records(self) -> int:
        return sum(c.records for c in self.chains)

    @property
    def first_problem(self) -> VerifyProblem | None:
        return self.problems[0] if self.problems else None


async def verify(store: Store) -> VerifyResult:
    """Verify all chains in one consistent snapshot."""
    async with store.transaction(readonly=True) as tx:
        chains = await tx.fetchall(
            "SELECT chain_id, writer, head_seq, head_hash, anchor_seq, anchor_hash "
            "FROM audit_chains ORDER BY started_at, chain_id"
        )
        reports = [await check_chain(tx, chain) for chain in chains]
        problems = [r.problem for r in reports if r.problem is not None]
        known = {c["chain_id"] for c in chains}
        for row in await tx.fetchall(
            "SELECT chain_id, MIN(chain_seq) AS seq, MIN(id) AS id FROM audit_log "
            "GROUP BY chain_id ORDER BY chain_id"
        ):
            if row["chain_id"] not in known:
                problems.append(
                    VerifyProblem(
                        row["chain_id"],
                        int(row["seq"]),
                        int(row["id"]),
                        "records of a chain that has no head in audit_chains (inserted?)",
                    )
                )
    return VerifyResult(tuple(reports), tuple(problems))


async def check_chain(tx: Tx, chain: Row, *, upto: int | None = None) -> ChainReport:
    """Walk one chain from its anchor to its head (or to `upto`, for the purge)."""
    chain_id: str = chain["chain_id"]
    anchor_seq = int(chain["anchor_seq"])
    head_seq = int(chain["head_seq"])
    last_seq = head_seq if upto is None else min(upto, head_seq)
    expected = anchor_seq + 1
    prev_hash: str = chain["anchor_hash"]
    last_id = -1
    checked = 0

    def report(problem: VerifyProblem | None) -> ChainReport:
        return ChainReport(
            chain_id, chain.get("writer"), checked, anchor_seq + 1, head_seq, problem
        )

    def fail(seq: int, record_id: int | None, what: str) -> ChainReport:
        return report(VerifyProblem(chain_id, seq, record_id, what))

    if anchor_seq > head_seq:
        return fail(anchor_seq, None, f"anchor seq {anchor_seq} is past the head {head_seq}")
    while expected <= last_seq:
        rows = await tx.fetchall(
            f"{_SELECT} WHERE chain_id = ? AND chain_seq >= ? AND chain_seq <= ? "
            "ORDER BY chain_seq LIMIT ?",
            (chain_id, expected, last_seq, _PAGE),
        )
        if not rows:
            break
        for row in rows:
            seq, record_id = int(row["chain_seq"]), int(row["id"])
            if seq != expected:
                return fail(
                    expected,
                    None,
                    f"record is missing (deleted?): after seq {expected - 1} comes seq {seq} "
                    f"(id {record_id})",
                )
            if row["prev_hash"] != prev_hash:
                return fail(
                    seq,
                    record_id,
                    f"prev_hash {row['prev_hash'][:16]}... does not match the hash of seq "
                    f"{seq - 1} ({prev_hash[:16]}...): records reordered, replaced or deleted",
                )
            computed = record_hash(row)
            if computed != row["hash"]:
                hint = await _which_fields(tx, row)
                return fail(seq, record_id, f"content does not match its hash: {hint}")
            if record_id <= last_id:
                return fail(seq, record_id, f"record id {record_id} is out of order (reordered)")
            prev_hash, last_id = row["hash"], record_id
            expected += 1
            checked += 1
    if expected <= last_seq:
        return fail(
            expected,
            None,
            f"records {expected}..{last_seq} are missing: the chain head says seq {head_seq}",
        )
    if upto is None:
        if prev_hash != chain["head_hash"]:
            return fail(head_seq, last_id if last_id >= 0 else None,
                        "the last record's hash does not match the stored chain head")  # fmt: skip
        extra = await tx.fetchone(
            "SELECT MIN(chain_seq) AS seq, MIN(id) AS id FROM audit_log "
            "WHERE chain_id = ? AND chain_seq > ?",
            (chain_id, head_seq),
        )
        if extra is not None and extra["seq"] is not None:
            return fail(
                int(extra["seq"]), int(extra["id"]), "record beyond the chain head (inserted?)"
            )
    return report(None)


_STATEMENT_FIELDS = ("at", "sql", "params", "category", "operations", "decision", "policy",
                     "rule", "reason", "approval_id")  # fmt: skip
_OUTCOME_FIELDS = {"row_count": "rows", "duration_ms": "duration_ms",
                   "command_tag": "command_tag", "sqlstate": "sqlstate",
                   "error_message": "error_message"}  # fmt: skip
_SESSION_FIELDS = ("subject", "email", "groups_json", "issuer", "client_addr", "target",
                   "application_name")  # fmt: skip


def _decoded(column: str, value: Any) -> Any:
    if column in ("params", "operations") and isinstance(value, str):
        return json.loads(value)
    return value


async def _which_fields(tx: Tx, row: Row) -> str:
    """Name the changed fields by comparing with the independent copies: the session
    recording (statement text, decision, outcome) and the session row (identity)."""
    kind, session_id, seq = row["kind"], row["session_id"], row["statement_seq"]
    differs: list[str] = []
    compared = False
    if session_id is not None and kind in (AuditKind.STATEMENT, AuditKind.OUTCOME):
        event = await tx.fetchone(
            "SELECT data FROM session_events WHERE session_id = ? AND kind = ? "
            "AND statement_seq = ? ORDER BY id LIMIT 1",
            (session_id, kind, seq),
        )
        if event is not None:
            compared = True
            data = json.loads(event["data"])
            if kind == AuditKind.STATEMENT:
                differs += [c for c in _STATEMENT_FIELDS if _decoded(c, row[c]) != data.get(c)]
            else:
                differs += [c for c, k in _OUTCOME_FIELDS.items() if row[c] != data.get(k)]
    if session_id is not None and kind != AuditKind.OUTCOME:
        session = await tx.fetchone(
            f"SELECT {', '.join(_SESSION_FIELDS)} FROM sessions WHERE session_id = ?",
            (session_id,),
        )
        if session is not None:
            compared = True
            differs += [c for c in _SESSION_FIELDS if row[c] != session[c]]
    if differs:
        return "differs from the session recording in " + ", ".join(differs)
    if compared:
        return "a hashed field was changed (the recording does not say which)"
    return "a hashed field was changed (no recording left to compare with)"
