"""Delete audit records past retention without breaking verification.

Only a prefix of each chain is ever deleted, and the last deleted record's seq and hash are
kept as the chain's anchor, which `verify` starts from. The prefix is verified before it is
deleted: a purge must not launder a tampered record into a clean anchor. Work is split into
short transactions so the gateway's writer is never held up for long.
"""

from __future__ import annotations

import logging

from sqlgate.audit.verify import check_chain
from sqlgate.store.base import Store

log = logging.getLogger("sqlgate.audit")

_MAX_PER_TX = 5000


async def purge_audit(store: Store, before: float) -> int:
    """Delete records older than `before` (epoch seconds); returns how many went."""
    chain_ids = [r["chain_id"] for r in await store.fetchall("SELECT chain_id FROM audit_chains")]
    total = 0
    for chain_id in chain_ids:
        while True:
            purged = await _purge_step(store, chain_id, before)
            total += purged
            if purged < _MAX_PER_TX:
                break
    return total


async def _purge_step(store: Store, chain_id: str, before: float) -> int:
    async with store.transaction() as tx:
        await tx.lock("audit-purge")
        chain = await tx.fetchone(
            "SELECT chain_id, writer, head_seq, head_hash, anchor_seq, anchor_hash "
            "FROM audit_chains WHERE chain_id = ?",
            (chain_id,),
        )
        if chain is None:
            return 0
        anchor_seq, head_seq = int(chain["anchor_seq"]), int(chain["head_seq"])
        # Keep everything from the first record that is still inside retention on, even if
        # a later clock step made some following records look older.
        keep_from = await tx.fetchval(
            "SELECT MIN(chain_seq) FROM audit_log WHERE chain_id = ? AND chain_seq > ? AND at >= ?",
            (chain_id, anchor_seq, before),
        )
        last = head_seq if keep_from is None else int(keep_from) - 1
        last = min(last, head_seq, anchor_seq + _MAX_PER_TX)
        if last <= anchor_seq:
            return 0
        report = await check_chain(tx, chain, upto=last)
        if report.problem is not None:
            log.error(
                "not purging audit chain %s: it fails verification (%s); run "
                "`sqlgate audit verify` and keep the evidence",
                chain_id,
                report.problem,
            )
            return 0
        anchor_hash = await tx.fetchval(
            "SELECT hash FROM audit_log WHERE chain_id = ? AND chain_seq = ?", (chain_id, last)
        )
        await tx.execute(
            "DELETE FROM audit_log WHERE chain_id = ? AND chain_seq <= ?", (chain_id, last)
        )
        await tx.execute(
            "UPDATE audit_chains SET anchor_seq = ?, anchor_hash = ? WHERE chain_id = ?",
            (last, anchor_hash, chain_id),
        )
        return last - anchor_seq
