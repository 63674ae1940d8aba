"""The policy engine's matching rules, proved on small configs built with `parse_config`.

Policies: first whose `when` matches applies. Rules: first that matches decides. Criteria of a
rule are ANDed, entries of one list ORed. Table and function globs, statement_regex, the
`default`, the decision cache and reloads, and the session's search_path tracking.
"""

from __future__ import annotations

import pytest

from sqlgate.config import Config, parse_config
from sqlgate.core import Decision, Dialect, Identity, Statement, StatementSource, Verdict
from sqlgate.policy.session import PolicyService, PolicySession

HEADER = """identity: {dev_issuer: true}
targets:
  - {name: app, host: 127.0.0.1, database: app, credentials: {user: u, password: p}}
  - {name: other, host: 127.0.0.1, database: other, credentials: {user: u, password: p}}
"""


def _config(policies: str) -> Config:
    return parse_config(HEADER + "policies:\n" + policies, "test.yaml")


def _policy(
    rules: str, *, name: str = "p", when: str = "{groups: [g]}", default: str = "block"
) -> str:
    """One policy entry; `rules` are flow-style YAML mappings, one per line."""
    body = "".join(f"      - {line.strip()}\n" for line in rules.strip().splitlines())
    return (
        f"  - name: {name}\n    when: {when}\n    rules:\n{body}    default: {default}\n"
        if body
        else f"  - name: {name}\n    when: {when}\n    default: {default}\n"
    )


def _identity(*groups: str, subject: str = "alice") -> Identity:
    return Identity(subject, None, frozenset(groups), "test", None)


def _session(
    service: PolicyService, *groups: str, target: str = "app", subject: str = "alice"
) -> PolicySession:
    session = service.open_session(_identity(*groups, subject=subject), target)
    assert session is not None
    return session


def _service(rules: str, default: str = "block") -> PolicyService:
    return PolicyService(_config(_policy(rules, default=default)))


def _statement(sql: str, source: StatementSource = StatementSource.SIMPLE) -> Statement:
    return Statement(sql, Dialect.POSTGRES, source, "app")


def _judge(session: PolicySession, sql: str) -> Decision:
    return session.judge(_statement(sql))


def _run(
    session: PolicySession, sql: str, source: StatementSource = StatementSource.SIMPLE
) -> Decision:
    """Judge and, when allowed, report the statement forwarded, as the proxy does."""
    statement = _statement(sql, source)
    decision = session.judge(statement)
    if decision.verdict is Verdict.ALLOW:
        session.statement_forwarded(statement, decision)
    return decision


def _outcome(session: PolicySession, sql: str) -> tuple[Verdict, int | None]:
    decision = _judge(session, sql)
    return decision.verdict, decision.rule


# ------------------------------------------------------------------------------------------
# which policy


def test_first_matching_policy_wins_even_when_a_later_one_also_matches() -> None:
    config = _config(
        _policy("{action: allow, categories: [read]}", name="first")
        + _policy("{action: block, categories: [read]}", name="second")
    )
    decision = _judge(_session(PolicyService(config), "g"), "SELECT 1")
    assert (decision.verdict, decision.policy, decision.rule) == (Verdict.ALLOW, "first", 1)


def test_a_later_policy_applies_when_an_earlier_one_does_not_match() -> None:
    config = _config(
        _policy("{action: allow, categories: [read]}", name="agents", when="{groups: [agent]}")
        + _policy("{action: block, categories: [read]}", name="rest", when="{groups: [g]}")
    )
    service = PolicyService(config)
    assert _judge(_session(service, "g"), "SELECT 1").policy == "rest"
    assert _judge(_session(service, "g", "agent"), "SELECT 1").policy == "agents"


def test_when_groups_targets_and_subjects_must_all_match() -> None:
    config = _config(
        _policy(
            "{action: allow, categories: [read]}",
            when="{groups: [g], targets: [app], subjects: ['alice*']}",
        )
    )
    service = PolicyService(config)
    assert service.open_session(_identity("g", subject="alice@example.com"), "app") is not None
    assert service.open_session(_identity("g", subject="bob"), "app") is None
    assert service.open_session(_identity("g", subject="alice"), "other") is None
    assert service.open_session(_identity("h", subject="alice"), "app") is None


def test_when_lists_are_ored_and_take_globs() -> None:
    config = _config(
        _policy(
            "{action: allow, categories: [read]}",
            when="{groups: ['team-*', admins], targets: [app, 'oth*']}",
        )
    )
    service = PolicyService(config)
    assert service.open_session(_identity("team-data"), "app") is not None
    assert service.open_session(_identity("admins"), "other") is not None
    assert service.open_session(_identity("teams"), "app") is None
    assert service.open_session(_identity("admins"), "elsewhere") is None


def test_empty_when_matches_every_identity_and_target() -> None:
    service = PolicyService(_config(_policy("{action: allow, categories: [read]}", when="{}")))
    assert service.open_session(_identity(), "app") is not None
    assert service.open_session(_identity("x"), "other") is not None


def test_no_policies_refuses_everyone() -> None:
    service = PolicyService(parse_config(HEADER))
    assert service.open_session(_identity("g"), "app") is None


# ------------------------------------------------------------------------------------------
# which rule


def test_first_matching_rule_wins() -> None:
    allow_first = _service(
        """
        {action: allow, categories: [read]}
        {action: block, categories: [read]}
        """
    )
    block_first = _service(
        """
        {action: block, categories: [read]}
        {action: allow, categories: [read]}
        """
    )
    assert _outcome(_session(allow_first, "g"), "SELECT 1") == (Verdict.ALLOW, 1)
    assert _outcome(_session(block_first, "g"), "SELECT 1") == (Verdict.BLOCK, 1)


def test_rule_numbers_count_from_one_in_config_order() -> None:
    service = _service(
        """
        {action: block, operations: [truncate]}
        {action: review, categories: [ddl]}
        {action: allow, categories: [read]}
        """
    )
    session = _session(service, "g")
    assert _outcome(session, "TRUNCATE t") == (Verdict.BLOCK, 1)
    assert _outcome(session, "CREATE TABLE x (a int)") == (Verdict.REVIEW, 2)
    assert _outcome(session, "SELECT 1") == (Verdict.ALLOW, 3)
    assert _outcome(session, "INSERT INTO t VALUES (1)") == (Verdict.BLOCK, None)


def test_criteria_of_one_rule_are_anded() -> None:
    service = _service(
        """
        {action: block, categories: [read], tables: [secret], reason: no secret reads}
        {action: allow, categories: [read, write]}
        """
    )
    session = _session(service, "g")
    assert _outcome(session, "SELECT * FROM secret") == (Verdict.BLOCK, 1)
    assert _outcome(session, "SELECT * FROM public_data") == (Verdict.ALLOW, 2)  # table differs
    assert _outcome(session, "SELECT 1") == (Verdict.ALLOW, 2)  # no table at all
    assert _outcome(session, "DELETE FROM secret WHERE id = 1") == (Verdict.ALLOW, 2)  # write


def test_operations_and_functions_are_anded_too() -> None:
    service = _service(
        """
        {action: block, operations: [insert], functions: [now]}
        {action: allow, categories: [read, write]}
        """
    )
    session = _session(service, "g")
    assert _outcome(session, "INSERT INTO t VALUES (now())") == (Verdict.BLOCK, 1)
    assert _outcome(session, "INSERT INTO t VALUES (1)") == (Verdict.ALLOW, 2)
    assert _outcome(session, "SELECT now()") == (Verdict.ALLOW, 2)


def test_regex_is_anded_with_the_category() -> None:
    service = _service(
        """
        {action: block, categories: [write], statement_regex: 'audit'}
        {action: allow, categories: [read, write]}
        """
    )
    session = _session(service, "g")
    assert _outcome(session, "DELETE FROM audit_log WHERE id = 1") == (Verdict.BLOCK, 1)
    assert _outcome(session, "SELECT * FROM audit_log") == (Verdict.ALLOW, 2)


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 1", (Verdict.ALLOW, 1)),
        ("INSERT INTO t VALUES (1)", (Verdict.ALLOW, 1)),
        ("CREATE TABLE x (a int)", (Verdict.BLOCK, None)),
    ],
)
def test_entries_of_the_categories_list_are_ored(
    sql: str, expected: tuple[Verdict, int | None]
) -> None:
    session = _session(_service("{action: allow, categories: [read, write]}"), "g")
    assert _outcome(session, sql) == expected


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("INSERT INTO t VALUES (1)", (Verdict.REVIEW, 1)),
        ("DELETE FROM t WHERE id = 1", (Verdict.REVIEW, 1)),
        ("UPDATE t SET a = 1 WHERE id = 1", (Verdict.ALLOW, 2)),
    ],
)
def test_entries_of_the_operations_list_are_ored(
    sql: str, expected: tuple[Verdict, int | None]
) -> None:
    service = _service(
        """
        {action: review, operations: [insert, delete]}
        {action: allow, categories: [write]}
        """
    )
    assert _outcome(_session(service, "g"), sql) == expected


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT * FROM a", (Verdict.BLOCK, 1)),
        ("SELECT * FROM b", (Verdict.BLOCK, 1)),
        ("SELECT * FROM c JOIN b ON true", (Verdict.BLOCK, 1)),  # any table of the statement
        ("SELECT * FROM c", (Verdict.ALLOW, 2)),
    ],
)
def test_entries_of_the_tables_list_are_ored(
    sql: str, expected: tuple[Verdict, int | None]
) -> None:
    service = _service(
        """
        {action: block, tables: [a, b]}
        {action: allow, categories: [read]}
        """
    )
    assert _outcome(_session(service, "g"), sql) == expected


# ------------------------------------------------------------------------------------------
# table globs


@pytest.mark.parametrize(
    ("sql", "blocked"),
    [
        ("SELECT * FROM t", True),  # unqualified: public.t under the initial search_path
        ("SELECT * FROM public.orders", True),
        ("SELECT * FROM PUBLIC.Orders", True),
        ('SELECT * FROM "public"."Orders"', True),
        ("SELECT * FROM sales.orders", False),
        ("SELECT * FROM publicity.orders", False),
        ("SELECT 1", False),
    ],
)
def test_schema_glob_matches_only_that_schema(sql: str, blocked: bool) -> None:
    service = _service(
        """
        {action: block, tables: ['public.*']}
        {action: allow, categories: [read]}
        """
    )
    decision = _judge(_session(service, "g"), sql)
    assert (decision.verdict is Verdict.BLOCK) is blocked, decision


@pytest.mark.parametrize(
    ("sql", "blocked"),
    [
        ("SELECT * FROM users", True),
        ("SELECT * FROM public.users", True),
        ("SELECT * FROM crm.users", True),
        ('SELECT * FROM "Users"', True),
        ("SELECT * FROM a JOIN crm.users u ON true", True),
        ("UPDATE crm.users SET a = 1 WHERE id = 1", True),
        ("SELECT * FROM users_archive", False),
        ("SELECT * FROM old_users", False),
        ("WITH users AS (SELECT 1) SELECT * FROM users", False),  # a CTE is not a table
    ],
)
def test_table_pattern_without_schema_matches_that_table_in_any_schema(
    sql: str, blocked: bool
) -> None:
    service = _service(
        """
        {action: block, tables: [users], reason: users are private}
        {action: allow, categories: [read, write]}
        """
    )
    decision = _judge(_session(service, "g"), sql)
    assert (decision.verdict is Verdict.BLOCK) is blocked, decision
    if blocked:
        assert decision.reason == "users are private"


def test_table_glob_with_wildcards_in_the_name() -> None:
    service = _service(
        """
        {action: block, tables: ['*.secret_*', 'audit.log?']}
        {action: allow, categories: [read]}
        """
    )
    session = _session(service, "g")
    assert _outcome(session, "SELECT * FROM secret_keys") == (Verdict.BLOCK, 1)
    assert _outcome(session, "SELECT * FROM vault.secret_x") == (Verdict.BLOCK, 1)
    assert _outcome(session, "SELECT * FROM audit.log1") == (Verdict.BLOCK, 1)
    assert _outcome(session, "SELECT * FROM audit.log12") == (Verdict.ALLOW, 2)
    assert _outcome(session, "SELECT * FROM secrets") == (Verdict.ALLOW, 2)


def test_default_reason_of_a_table_rule_names_the_table() -> None:
    service = _service("{action: block, tables: [secret]}")
    decision = _judge(_session(service, "g"), "SELECT * FROM secret")
    assert decision.reason == "read on public.secret is not allowed"


# ------------------------------------------------------------------------------------------
# function globs


@pytest.mark.parametrize(
    ("sql", "blocked"),
    [
        ("SELECT dblink('c', 'q')", True),
        ("SELECT dblink_exec('c', 'q')", True),
        ("SELECT public.dblink_exec('c', 'q')", True),
        ("SELECT ext.DBLINK_CONNECT('c')", True),
        ("SELECT * FROM dblink('c', 'q') AS t(a int)", True),
        ("SELECT my_dblink('c')", False),
        ("SELECT 'dblink(1)'", False),
        ("SELECT 1", False),
    ],
)
def test_function_glob_is_schema_and_case_insensitive(sql: str, blocked: bool) -> None:
    service = _service(
        """
        {action: block, functions: ['dblink*']}
        {action: allow, categories: [read]}
        """
    )
    decision = _judge(_session(service, "g"), sql)
    assert (decision.verdict is Verdict.BLOCK) is blocked, decision


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT pg_read_file('x')",
        "SELECT pg_catalog.pg_read_file('x')",
        "SELECT public.pg_read_file('x')",
        "SELECT PG_READ_FILE('x')",
    ],
)
def test_schema_in_a_function_pattern_is_ignored(sql: str) -> None:
    service = _service(
        """
        {action: block, functions: [pg_catalog.pg_read_file]}
        {action: allow, categories: [read]}
        """
    )
    assert _outcome(_session(service, "g"), sql) == (Verdict.BLOCK, 1)


def test_default_reason_of_a_function_rule_names_the_function() -> None:
    service = _service("{action: block, functions: ['lo_*']}")
    decision = _judge(_session(service, "g"), "SELECT lo_export(1, '/tmp/x')")
    assert decision.reason == "calling lo_export() is not allowed"


# ------------------------------------------------------------------------------------------
# statement_regex


@pytest.mark.parametrize(
    ("sql", "blocked"),
    [
        ("SELECT pg_sleep(1)", True),
        ("select PG_SLEEP(1)", True),
        ("SELECT 'pg_sleep'", True),  # the raw text, literals included
        ("SELECT 1; SELECT Pg_Sleep(10)", True),
        ("SELECT pg_sleeper()", False),
        ("SELECT 1", False),
    ],
)
def test_statement_regex_is_case_insensitive_and_searches_the_raw_text(
    sql: str, blocked: bool
) -> None:
    service = _service(
        """
        {action: block, statement_regex: '\\bpg_sleep\\b', reason: no sleeping}
        {action: allow, categories: [read]}
        """
    )
    decision = _judge(_session(service, "g"), sql)
    assert (decision.verdict is Verdict.BLOCK) is blocked, decision
    if blocked:
        assert decision.reason == "no sleeping"


def test_statement_regex_dot_matches_newlines() -> None:
    service = _service(
        """
        {action: review, statement_regex: 'select.*from\\s+payroll'}
        {action: allow, categories: [read]}
        """
    )
    assert _outcome(_session(service, "g"), "SELECT *\nFROM\npayroll") == (Verdict.REVIEW, 1)


def test_default_reason_of_a_regex_rule() -> None:
    service = _service("{action: review, statement_regex: 'x'}", default="allow")
    decision = _judge(_session(service, "g"), "SELECT x FROM t")
    assert decision.reason == "a statement matching this rule's pattern needs approval"


# ------------------------------------------------------------------------------------------
# default, unknown, unparsable


def test_default_review_holds_what_no_rule_covers() -> None:
    session = _session(_service("{action: allow, categories: [read]}", default="review"), "g")
    decision = _judge(session, "INSERT INTO t VALUES (1)")
    assert (decision.verdict, decision.rule) == (Verdict.REVIEW, None)
    assert decision.reason == "no rule covers this statement; it needs approval"
    assert _outcome(session, "SELECT 1") == (Verdict.ALLOW, 1)


def test_default_review_still_blocks_what_cannot_be_classified() -> None:
    session = _session(_service("{action: allow, categories: [read]}", default="review"), "g")
    assert _outcome(session, "EXECUTE never_prepared") == (Verdict.BLOCK, None)


def test_default_review_still_blocks_what_cannot_be_parsed() -> None:
    session = _session(_service("{action: allow, categories: [read]}", default="review"), "g")
    decision = _judge(session, "SELEC 1")
    assert (decision.verdict, decision.sqlstate) == (Verdict.BLOCK, "42601")


def test_default_allow_lets_unclassified_and_unparsable_statements_through() -> None:
    session = _session(_service("{action: block, categories: [ddl]}", default="allow"), "g")
    assert _outcome(session, "EXECUTE never_prepared") == (Verdict.ALLOW, None)
    assert _outcome(session, "SELEC 1") == (Verdict.ALLOW, None)


def test_policy_without_rules_applies_its_default() -> None:
    service = PolicyService(_config(_policy("", default="review")))
    assert _outcome(_session(service, "g"), "SELECT 1") == (Verdict.REVIEW, None)


@pytest.mark.parametrize(
    ("rule", "allowed"),
    [
        ("{action: allow, categories: [read, session, tcl]}", False),
        ("{action: allow, operations: [execute]}", False),
        ("{action: allow, statement_regex: '.'}", False),
        ("{action: allow, categories: [unknown]}", True),
        ("{action: allow, categories: [read, unknown]}", True),
    ],
)
def test_only_a_rule_naming_unknown_may_allow_an_unclassified_statement(
    rule: str, allowed: bool
) -> None:
    session = _session(_service(rule), "g")
    verdict = _judge(session, "EXECUTE never_prepared").verdict
    assert (verdict is Verdict.ALLOW) is allowed


def test_block_and_review_rules_match_unclassified_statements_without_naming_unknown() -> None:
    service = _service(
        """
        {action: review, operations: [execute]}
        {action: allow, categories: [unknown]}
        """
    )
    assert _outcome(_session(service, "g"), "EXECUTE never_prepared") == (Verdict.REVIEW, 1)


async def test_review_is_refused_when_approvals_are_not_wired_in() -> None:
    session = _session(_service("{action: review, categories: [ddl]}"), "g")
    statement = _statement("CREATE TABLE x (a int)")
    decision = session.judge(statement)
    assert decision.verdict is Verdict.REVIEW
    resolved = await session.resolve_review(statement, decision)
    assert resolved.verdict is Verdict.BLOCK
    assert "approvals are not enabled" in resolved.reason


# ------------------------------------------------------------------------------------------
# decision cache and reload


RELOAD_BEFORE = _policy(
    """
    {action: block, operations: [drop_table], reason: old rule}
    {action: allow, categories: [read]}
    """,
    name="p",
)
RELOAD_AFTER = _policy(
    """
    {action: review, operations: [drop_table], reason: new rule}
    {action: block, categories: [read], reason: reads are off now}
    """,
    name="p",
)


def test_decision_cache_returns_the_same_decision_on_repeat() -> None:
    service = PolicyService(_config(RELOAD_BEFORE))
    first = _judge(_session(service, "g"), "DROP TABLE t")
    assert service.cached_decision("p", "DROP TABLE t", ("public",)) == first
    again = _judge(_session(service, "g"), "DROP TABLE t")  # another session, same service
    assert again == first
    assert again is first


def test_decision_cache_is_keyed_by_search_path() -> None:
    service = _service(
        """
        {action: block, tables: ['s1.*']}
        {action: allow, categories: [read, session]}
        """
    )
    session = _session(service, "g")
    assert _outcome(session, "SELECT * FROM t") == (Verdict.ALLOW, 2)
    _run(session, "SET search_path TO s1")
    assert _outcome(session, "SELECT * FROM t") == (Verdict.BLOCK, 1)


def test_reload_clears_the_decision_cache() -> None:
    service = PolicyService(_config(RELOAD_BEFORE))
    _judge(_session(service, "g"), "DROP TABLE t")
    service.reload(_config(RELOAD_AFTER))
    assert service.cached_decision("p", "DROP TABLE t", ("public",)) is None
    decision = _judge(_session(service, "g"), "DROP TABLE t")
    assert (decision.verdict, decision.reason) == (Verdict.REVIEW, "new rule")


def test_live_session_picks_up_a_reloaded_policy_at_its_next_statement() -> None:
    service = PolicyService(_config(RELOAD_BEFORE))
    session = _session(service, "g")
    assert _outcome(session, "SELECT 1") == (Verdict.ALLOW, 2)
    assert _judge(session, "DROP TABLE t").reason == "old rule"
    service.reload(_config(RELOAD_AFTER))
    assert _outcome(session, "SELECT 1") == (Verdict.BLOCK, 2)
    assert _judge(session, "DROP TABLE t").reason == "new rule"


def test_live_session_moves_to_another_policy_when_the_reload_says_so() -> None:
    service = PolicyService(_config(_policy("{action: allow, categories: [read]}", name="old")))
    session = _session(service, "g")
    service.reload(
        _config(
            _policy("{action: block, categories: [read]}", name="strict", when="{groups: [g]}")
            + _policy("{action: allow, categories: [read]}", name="old", when="{groups: [g]}")
        )
    )
    decision = _judge(session, "SELECT 1")
    assert (decision.verdict, decision.policy) == (Verdict.BLOCK, "strict")


def test_session_whose_identity_no_longer_matches_after_reload_is_blocked() -> None:
    service = PolicyService(_config(RELOAD_BEFORE))
    session = _session(service, "g")
    assert _judge(session, "SELECT 1").verdict is Verdict.ALLOW
    service.reload(
        _config(_policy("{action: allow, categories: [read]}", name="p", when="{groups: [h]}"))
    )
    for sql in ("SELECT 1", "SELEC 1", ""):
        decision = _judge(session, sql)
        assert decision.verdict is Verdict.BLOCK
        assert decision.policy is None and decision.rule is None
        assert decision.reason == "no policy grants this identity access to this target any more"
    fast_path = session.judge(_statement("-- fast-path", StatementSource.FUNCTION_CALL))
    assert fast_path.verdict is Verdict.BLOCK
    assert service.open_session(_identity("g"), "app") is None


def test_failed_reload_leaves_the_old_policies_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlgate.errors import ConfigError

    monkeypatch.delenv("MISSING_MASK_KEY", raising=False)
    service = PolicyService(_config(RELOAD_BEFORE))
    session = _session(service, "g")
    broken = parse_config(
        HEADER
        + "masking: {hash_key_env: MISSING_MASK_KEY}\npolicies:\n"
        + RELOAD_AFTER
        + "    masks:\n      - {columns: ['*.ssn'], strategy: hash}\n"
    )
    with pytest.raises(ConfigError):
        service.reload(broken)
    assert _outcome(session, "SELECT 1") == (Verdict.ALLOW, 2)
    assert service.policies.version == 1


# ------------------------------------------------------------------------------------------
# search_path tracking

SCHEMA_RULES = """
{action: block, tables: [s1.t], reason: s1.t is off limits}
{action: allow, categories: [read, session, tcl]}
"""


def test_set_search_path_makes_unqualified_names_resolve_in_the_new_schema() -> None:
    session = _session(_service(SCHEMA_RULES), "g")
    assert _outcome(session, "SELECT * FROM t") == (Verdict.ALLOW, 2)  # public.t
    assert _run(session, "SET search_path TO s1").verdict is Verdict.ALLOW
    assert session.search_path == ("public", "s1")  # every schema seen, never shrinking
    decision = _judge(session, "SELECT * FROM t")
    assert (decision.verdict, decision.rule, decision.reason) == (
        Verdict.BLOCK,
        1,
        "s1.t is off limits",
    )


def test_search_path_change_counts_only_once_forwarded() -> None:
    session = _session(_service(SCHEMA_RULES), "g")
    session.judge(_statement("SET search_path TO s1"))  # judged, never forwarded
    assert _outcome(session, "SELECT * FROM t") == (Verdict.ALLOW, 2)


def test_unqualified_name_is_checked_in_every_schema_of_the_path() -> None:
    session = _session(_service(SCHEMA_RULES), "g")
    _run(session, "SET search_path TO public, s1")
    assert _outcome(session, "SELECT * FROM t") == (Verdict.BLOCK, 1)
    _run(session, "SET search_path = 'other', \"s1\"")
    assert _outcome(session, "SELECT * FROM t") == (Verdict.BLOCK, 1)


def test_search_path_set_in_the_same_request_applies_from_the_next_request() -> None:
    session = _session(_service(SCHEMA_RULES), "g")
    assert _run(session, "SET search_path TO s1; SELECT 1").verdict is Verdict.ALLOW
    assert _outcome(session, "SELECT * FROM t") == (Verdict.BLOCK, 1)


@pytest.mark.parametrize(
    "reset",
    ["RESET search_path", "SET search_path TO DEFAULT", "RESET ALL", "SET search_path = DEFAULT"],
)
def test_resetting_search_path_keeps_every_schema_seen(reset: str) -> None:
    # The gateway cannot know whether a SET took effect, was rolled back or was SET LOCAL,
    # so an unqualified name stays checked in every schema the session ever named.
    session = _session(_service(SCHEMA_RULES), "g")
    _run(session, "SET search_path TO s1")
    assert _outcome(session, "SELECT * FROM t") == (Verdict.BLOCK, 1)
    assert _run(session, reset).verdict is Verdict.ALLOW
    assert _outcome(session, "SELECT * FROM t") == (Verdict.BLOCK, 1)


def test_schema_qualified_name_ignores_search_path() -> None:
    session = _session(_service(SCHEMA_RULES), "g")
    assert _outcome(session, "SELECT * FROM s1.t") == (Verdict.BLOCK, 1)
    _run(session, "SET search_path TO s1")
    assert _outcome(session, "SELECT * FROM public.t") == (Verdict.ALLOW, 2)


def test_search_path_is_tracked_per_session() -> None:
    service = _service(SCHEMA_RULES)
    one, two = _session(service, "g"), _session(service, "g")
    _run(one, "SET search_path TO s1")
    assert _outcome(one, "SELECT * FROM t") == (Verdict.BLOCK, 1)
    assert _outcome(two, "SELECT * FROM t") == (Verdict.ALLOW, 2)


def test_pg_prefixed_names_are_also_checked_in_pg_catalog() -> None:
    service = _service(
        """
        {action: block, tables: [pg_catalog.pg_authid]}
        {action: allow, categories: [read, session]}
        """
    )
    session = _session(service, "g")
    _run(session, "SET search_path TO s1")
    assert _outcome(session, "SELECT * FROM pg_authid") == (Verdict.BLOCK, 1)


# --- search_path gaps: the session's view and the server's must not drift apart. Each of
# --- these lets a statement read s1.t (server) while the gateway judges it as public.t.

DRIFT_RULES = """
{action: block, tables: [public.secret], reason: public.secret is off limits}
{action: allow, categories: [read, session, tcl]}
"""


def test_set_local_search_path_does_not_outlive_its_transaction() -> None:
    # PostgreSQL: SET LOCAL lasts until the end of the transaction, then the old path is back.
    session = _session(_service(DRIFT_RULES), "g")
    for sql in ("BEGIN", "SET LOCAL search_path TO s1", "COMMIT"):
        assert _run(session, sql).verdict is Verdict.ALLOW
    # The server reads public.secret here.
    assert _outcome(session, "SELECT * FROM secret") == (Verdict.BLOCK, 1)


def test_search_path_set_in_a_rolled_back_transaction_is_not_kept() -> None:
    # PostgreSQL: a SET inside a transaction that rolls back is undone.
    session = _session(_service(DRIFT_RULES), "g")
    for sql in ("BEGIN", "SET search_path TO s1", "ROLLBACK"):
        assert _run(session, sql).verdict is Verdict.ALLOW
    assert _outcome(session, "SELECT * FROM secret") == (Verdict.BLOCK, 1)


def test_execute_is_judged_under_the_search_path_the_server_will_use() -> None:
    # PostgreSQL re-parses a prepared statement when search_path changed since it was
    # prepared: EXECUTE q below reads public.secret.
    session = _session(_service(DRIFT_RULES), "g")
    assert _run(session, "SET search_path TO s1").verdict is Verdict.ALLOW
    # `secret` may resolve to public.secret at EXECUTE time: refused already at PREPARE.
    assert _outcome(session, "PREPARE q AS SELECT * FROM secret") == (Verdict.BLOCK, 1)
    assert _run(session, "PREPARE q2 AS SELECT * FROM other").verdict is Verdict.ALLOW
    assert _run(session, "SET search_path TO public").verdict is Verdict.ALLOW
    assert _outcome(session, "EXECUTE q2") == (Verdict.ALLOW, 2)


# --- category escalation gaps: a statement that does something of another category


def test_grant_inside_create_schema_is_caught_by_a_dcl_block_rule() -> None:
    # PostgreSQL accepts GRANT as a CREATE SCHEMA element and applies it to any object:
    # CREATE SCHEMA s GRANT SELECT, DELETE ON public.t TO bob grants on public.t.
    service = _service(
        """
        {action: block, categories: [dcl], reason: no privilege changes}
        {action: allow, categories: [read, ddl]}
        """
    )
    decision = _judge(_session(service, "g"), "CREATE SCHEMA s GRANT ALL ON public.users TO PUBLIC")
    assert "grant" in decision.operations
    assert (decision.verdict, decision.rule) == (Verdict.BLOCK, 1)


def test_delete_inside_create_table_as_is_caught_by_a_write_block_rule() -> None:
    # PostgreSQL runs the data-modifying CTE of CREATE TABLE AS / SELECT INTO: rows go.
    service = _service(
        """
        {action: block, categories: [write], reason: no writes}
        {action: allow, categories: [read, ddl]}
        """
    )
    session = _session(service, "g")
    for sql in (
        "CREATE TABLE x AS WITH d AS (DELETE FROM t WHERE id > 0 RETURNING *) SELECT * FROM d",
        "WITH d AS (DELETE FROM t WHERE id > 0 RETURNING *) SELECT * INTO x FROM d",
    ):
        decision = _judge(session, sql)
        assert "delete" in decision.operations
        assert (decision.verdict, decision.rule) == (Verdict.BLOCK, 1), sql
