from __future__ import annotations

import hashlib
import json

from sqlgate.audit import GENESIS_HASH, record_hash, verify
from sqlgate.audit.chain import HASHED_COLUMNS, ChainHead
from sqlgate.recording import Recorder
from sqlgate.store import Store
from tests.unit.store.fixtures import raw_execute

from .helpers import record_session


async def _id_of(store: Store, seq: int) -> int:
    return int(await store.fetchval("SELECT id FROM audit_log WHERE chain_seq = ?", (seq,)))


async def test_untouched_chain_verifies(store: Store) -> None:
    await record_session(store, 5)
    result = await verify(store)
    assert result.ok, result.problems
    assert len(result.chains) == 1
    assert result.records == 1 + 5 * 2 + 1
    chain = result.chains[0]
    assert (chain.first_seq, chain.head_seq) == (1, 12)


async def test_edited_statement_text_is_named(store: Store, store_url: str) -> None:
    await record_session(store, 5)
    # statement 3 sits at chain seq 6 (see record_session)
    raw_execute(store_url, "UPDATE audit_log SET sql = 'SELECT 42' WHERE chain_seq = 6")
    result = await verify(store)
    assert not result.ok
    problem = result.first_problem
    assert problem is not None
    assert (problem.seq, problem.record_id) == (6, await _id_of(store, 6))
    assert "does not match its hash" in problem.what
    assert "differs from the session recording in sql" in problem.what


async def test_edited_outcome_is_named(store: Store, store_url: str) -> None:
    await record_session(store, 3)
    raw_execute(
        store_url, "UPDATE audit_log SET row_count = 0 WHERE chain_seq = 5"
    )  # outcome of #2
    problem = (await verify(store)).first_problem
    assert problem is not None and problem.seq == 5
    assert "row_count" in problem.what


async def test_deleted_record_in_the_middle_is_named(store: Store, store_url: str) -> None:
    await record_session(store, 5)
    raw_execute(store_url, "DELETE FROM audit_log WHERE chain_seq = 7")
    problem = (await verify(store)).first_problem
    assert problem is not None
    assert (problem.seq, problem.record_id) == (7, None)
    assert "missing" in problem.what and "seq 8" in problem.what


async def test_swapped_records_are_named(store: Store, store_url: str) -> None:
    await record_session(store, 5)
    id4, id5 = await _id_of(store, 4), await _id_of(store, 5)
    for sql in ("UPDATE audit_log SET chain_seq = -1 WHERE chain_seq = 4",
                "UPDATE audit_log SET chain_seq = 4 WHERE chain_seq = 5",
                "UPDATE audit_log SET chain_seq = 5 WHERE chain_seq = -1"):  # fmt: skip
        raw_execute(store_url, sql)
    problem = (await verify(store)).first_problem
    assert problem is not None
    assert (problem.seq, problem.record_id) == (4, id5)
    assert "prev_hash" in problem.what
    assert id4 != id5


async def test_swapped_ids_are_named(store: Store, store_url: str) -> None:
    await record_session(store, 3)
    id3, id4 = await _id_of(store, 3), await _id_of(store, 4)
    if store_url.startswith("postgresql"):
        raw_execute(store_url, "ALTER TABLE audit_log ALTER COLUMN id DROP IDENTITY")
    for sql in (f"UPDATE audit_log SET id = -1 WHERE id = {id3}",
                f"UPDATE audit_log SET id = {id3} WHERE id = {id4}",
                f"UPDATE audit_log SET id = {id4} WHERE id = -1"):  # fmt: skip
        raw_execute(store_url, sql)
    problem = (await verify(store)).first_problem
    assert problem is not None and problem.seq == 4 and "out of order" in problem.what


async def test_truncated_tail_is_found(store: Store, store_url: str) -> None:
    await record_session(store, 3)
    raw_execute(store_url, "DELETE FROM audit_log WHERE chain_seq >= 7")
    problem = (await verify(store)).first_problem
    assert problem is not None and problem.seq == 7 and "missing" in problem.what


async def test_forged_record_after_the_head_is_found(store: Store, store_url: str) -> None:
    await record_session(store, 2)
    head = await store.fetchone("SELECT * FROM audit_log ORDER BY chain_seq DESC LIMIT 1")
    assert head is not None
    forged = {c: head[c] for c in HASHED_COLUMNS}
    forged |= {"chain_seq": head["chain_seq"] + 1, "prev_hash": head["hash"], "sql": "GRANT ALL"}
    cols = [*HASHED_COLUMNS, "hash"]
    values = (*tuple(forged[c] for c in HASHED_COLUMNS), record_hash(forged))
    raw_execute(
        store_url,
        f"INSERT INTO audit_log ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
        values,
    )
    problem = (await verify(store)).first_problem
    assert problem is not None and problem.seq == head["chain_seq"] + 1
    assert "beyond the chain head" in problem.what


async def test_each_writer_has_its_own_chain_and_only_the_broken_one_fails(
    store: Store, store_url: str
) -> None:
    first, second = Recorder(store), Recorder(store)
    await first.start()
    await second.start()
    await record_session(store, 3, recorder=first)
    await record_session(store, 3, recorder=second)
    await record_session(store, 2, recorder=first)
    await first.close()
    await second.close()
    result = await verify(store)
    assert result.ok and len(result.chains) == 2
    raw_execute(store_url, "UPDATE audit_log SET decision = 'allow', reason = 'ok' WHERE chain_id = ? AND chain_seq = 2",
                (second.chain_id,))  # fmt: skip
    result = await verify(store)
    assert [p.chain_id for p in result.problems] == [second.chain_id]
    assert "reason" in result.problems[0].what or "decision" in result.problems[0].what


async def test_hash_is_reproducible_from_the_documented_recipe(store: Store) -> None:
    await record_session(store, 1)
    rows = await store.fetchall("SELECT * FROM audit_log ORDER BY chain_seq")
    prev = GENESIS_HASH
    for row in rows:
        doc = {k: v for k, v in row.items() if k not in ("id", "hash")}
        assert doc["prev_hash"] == prev
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert hashlib.sha256(text.encode()).hexdigest() == row["hash"]
        prev = row["hash"]


def test_seal_links_records_and_coerces_to_stored_types() -> None:
    head = ChainHead("c1")
    one = head.seal({"kind": "statement", "at": 1700000000, "rule": "3", "sql": "a\x00b"})
    two = head.seal({"kind": "statement", "at": 1700000001.5})
    assert (one["chain_seq"], two["chain_seq"]) == (1, 2)
    assert one["prev_hash"] == GENESIS_HASH and two["prev_hash"] == one["hash"]
    assert isinstance(one["at"], float) and one["rule"] == 3 and one["sql"] == "a\ufffdb"
    assert head.hash == two["hash"]
    assert "not_a_column" not in head.seal({"kind": "statement", "at": 0.0, "not_a_column": 1})
