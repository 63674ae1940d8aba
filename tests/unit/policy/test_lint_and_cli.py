"""`sqlgate policy lint` finds what validates but misleads; `sqlgate policy check` explains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sqlgate.cli import main
from sqlgate.config import Config, parse_config
from sqlgate.policy.lint import lint

from .conftest import EXAMPLE

HEADER = """identity: {dev_issuer: true}
targets:
  - {name: app, host: 127.0.0.1, database: app, credentials: {user: u, password: p}}
policies:
"""

CLEAN = (
    HEADER
    + """  - name: agents
    when: {groups: [agent]}
    rules:
      - {action: block, operations: [drop_table, truncate], reason: destructive}
      - {action: block, categories: [dcl]}
      - {action: block, functions: ["dblink*"], tables: [secrets]}
      - {action: review, categories: [ddl]}
      - {action: allow, categories: [read, tcl, session]}
    masks:
      - {columns: [public.users.email, "*.ssn", users.name], strategy: redact}
    default: block
  - name: humans
    when: {groups: [engineering]}
    rules:
      - {action: review, operations: [drop_table]}
      - {action: allow, categories: [read, write, ddl]}
    default: allow
"""
)


def _lint(policies: str) -> list[str]:
    return lint(parse_config(HEADER + policies, "lint.yaml"))


# ------------------------------------------------------------------------------------------
# lint()


def test_lint_reports_nothing_for_a_clean_config() -> None:
    assert lint(parse_config(CLEAN)) == []


def test_lint_reports_nothing_for_the_example_config(example_config: Config) -> None:
    assert lint(example_config) == []


def test_lint_reports_an_unknown_category() -> None:
    problems = _lint(
        """  - name: p
    rules:
      - {action: allow, categories: [read, reads]}
"""
    )
    assert len(problems) == 1
    assert problems[0].startswith("policy \"p\" rule 1: unknown category 'reads'")
    assert "known:" in problems[0] and "read" in problems[0]


def test_lint_reports_an_unknown_operation() -> None:
    problems = _lint(
        """  - name: p
    rules:
      - {action: allow, categories: [read]}
      - {action: block, operations: [drop_table, drop_tables]}
"""
    )
    assert problems == [
        "policy \"p\" rule 2: unknown operation 'drop_tables' (see docs/policy.md for the list)"
    ]


def test_lint_accepts_the_function_call_operation() -> None:
    assert (
        _lint(
            """  - name: p
    rules:
      - {action: block, operations: [function_call]}
"""
        )
        == []
    )


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        ("{action: allow, categories: [read, write]}", "{action: block, categories: [read]}"),
        (
            "{action: block, operations: [drop_table, truncate]}",
            "{action: review, operations: [truncate]}",
        ),
        (
            "{action: allow, categories: [read]}",
            "{action: block, categories: [read], operations: [select]}",
        ),
        (
            "{action: block, tables: [secrets]}",
            "{action: review, tables: [secrets], categories: [write]}",
        ),
    ],
)
def test_lint_reports_a_rule_shadowed_by_an_earlier_broader_rule(earlier: str, later: str) -> None:
    problems = _lint(
        f"""  - name: p
    rules:
      - {earlier}
      - {later}
"""
    )
    assert problems == [
        'policy "p" rule 2: unreachable, rule 1 already matches everything it matches'
    ]


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        # the later rule is broader: it still matches statements the earlier one does not
        ("{action: block, categories: [read], tables: [a]}", "{action: allow, categories: [read]}"),
        ("{action: block, categories: [read]}", "{action: allow, categories: [read, write]}"),
        ("{action: block, operations: [truncate]}", "{action: review, categories: [ddl]}"),
        ("{action: block, functions: [f]}", "{action: block, functions: [g]}"),
        ("{action: block, statement_regex: a}", "{action: block, statement_regex: b}"),
    ],
)
def test_lint_does_not_report_a_later_rule_that_can_still_match(earlier: str, later: str) -> None:
    assert (
        _lint(
            f"""  - name: p
    rules:
      - {earlier}
      - {later}
"""
        )
        == []
    )


def test_lint_reports_a_policy_shadowed_by_an_earlier_catch_all_policy() -> None:
    problems = _lint(
        """  - name: everyone
    rules:
      - {action: allow, categories: [read]}
  - name: agents
    when: {groups: [agent]}
    rules:
      - {action: block, categories: [read]}
"""
    )
    assert problems == [
        'policy "agents": unreachable, policy "everyone" before it matches every identity '
        "and target"
    ]


def test_lint_does_not_report_a_policy_after_a_narrower_one() -> None:
    assert (
        _lint(
            """  - name: agents
    when: {groups: [agent]}
    rules:
      - {action: block, categories: [read]}
  - name: everyone
    rules:
      - {action: allow, categories: [read]}
"""
        )
        == []
    )


@pytest.mark.parametrize("column", ["email", "users.", ".email"])
def test_lint_reports_a_mask_column_that_names_no_column(column: str) -> None:
    problems = _lint(
        f"""  - name: p
    rules:
      - {{action: allow, categories: [read]}}
    masks:
      - {{columns: [public.users.name, "{column}"], strategy: redact}}
"""
    )
    assert problems == [
        f'policy "p" mask 1: {column!r} names no column; write schema.table.column, '
        "table.column or *.column"
    ]


def test_lint_reports_every_problem_of_a_config() -> None:
    problems = _lint(
        """  - name: first
    rules:
      - {action: allow, categories: [readd]}
    masks:
      - {columns: [ssn]}
  - name: second
    when: {groups: [g]}
    rules:
      - {action: block, operations: [nope]}
"""
    )
    assert len(problems) == 4
    assert any("unknown category 'readd'" in p for p in problems)
    assert any("'ssn' names no column" in p for p in problems)
    assert any('policy "second": unreachable' in p for p in problems)
    assert any("unknown operation 'nope'" in p for p in problems)


# ------------------------------------------------------------------------------------------
# sqlgate policy check


def _check(*args: str) -> list[str]:
    return ["policy", "check", "--config", str(EXAMPLE), *args]


def test_policy_check_prints_block_with_policy_and_rule(
    example_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(_check("--groups", "code-assistant", "--target", "app", "DROP TABLE users"))
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "BLOCK (policy 'ai-agents', rule 1): destructive commands are not allowed"
    assert lines[1].split() == ["ddl", "drop_table", "tables=public.users", "functions=-"]


def test_policy_check_json_is_parseable_and_complete(
    example_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        _check("--groups", "code-assistant", "--target", "app", "--json", "DROP TABLE users")
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["verdict"] == "block"
    assert result["policy"] == "ai-agents"
    assert result["rule"] == 1
    assert result["reason"] == "destructive commands are not allowed"
    assert result["analysis"] == [
        {
            "text": "DROP TABLE users",
            "category": "ddl",
            "operations": ["drop_table"],
            "tables": ["public.users"],
            "functions": [],
        }
    ]


def test_policy_check_names_the_default_when_no_rule_matched(
    example_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    main(_check("--groups", "code-assistant", "--target", "app", "COPY t TO PROGRAM 'id'"))
    first = capsys.readouterr().out.splitlines()[0]
    assert first == "BLOCK (policy 'ai-agents', default): no rule allows this statement"


def test_policy_check_shows_an_allowed_read(
    example_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    main(_check("--groups", "code-assistant", "--target", "app", "SELECT * FROM t"))
    assert capsys.readouterr().out.splitlines()[0] == "ALLOW (policy 'ai-agents', rule 6): allowed"


def test_policy_check_json_for_a_multi_statement_request_lists_each_statement(
    example_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    main(
        _check("--groups", "code-assistant", "--target", "app", "--json", "SELECT 1; DROP TABLE t")
    )
    result = json.loads(capsys.readouterr().out)
    assert (result["verdict"], result["rule"]) == ("block", 1)
    assert [a["text"] for a in result["analysis"]] == ["SELECT 1", "DROP TABLE t"]
    assert [a["category"] for a in result["analysis"]] == ["read", "ddl"]


def test_policy_check_json_reports_a_parse_error(
    example_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    main(_check("--groups", "code-assistant", "--target", "app", "--json", "SELEC 1"))
    result = json.loads(capsys.readouterr().out)
    assert result["verdict"] == "block"
    assert result["rule"] is None
    assert "cannot parse statement" in result["analysis"]["error"]


def test_policy_check_accepts_comma_separated_groups(
    example_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    main(_check("--groups", "engineering,code-assistant", "--target", "app", "--json", "SELECT 1"))
    assert json.loads(capsys.readouterr().out)["policy"] == "ai-agents"


def test_policy_check_says_an_identity_without_a_policy_is_refused_at_login(
    example_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(_check("--groups", "nobody", "--target", "app", "--json", "SELECT 1"))
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["verdict"] == "refused at login"
    assert "nobody" in result["reason"] and "'app'" in result["reason"]
    assert "policy" not in result


def test_policy_check_of_the_example_needs_the_mask_hash_key(
    example_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SQLGATE_MASK_KEY")
    code = main(_check("--groups", "code-assistant", "--target", "app", "SELECT 1"))
    assert code == 2
    assert "SQLGATE_MASK_KEY" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------
# sqlgate policy lint


def test_policy_lint_exits_0_for_a_clean_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "clean.yaml"
    path.write_text(CLEAN)
    assert main(["policy", "lint", "--config", str(path)]) == 0
    assert capsys.readouterr().out.strip() == f"{path}: no problems found"


def test_policy_lint_exits_0_for_the_example(
    example_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["policy", "lint", "--config", str(EXAMPLE)]) == 0


def test_policy_lint_exits_1_and_prints_each_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "problems.yaml"
    path.write_text(
        HEADER
        + """  - name: p
    rules:
      - {action: allow, categories: [read, write]}
      - {action: block, categories: [read]}
      - {action: block, operations: [dorp_table]}
"""
    )
    assert main(["policy", "lint", "--config", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        'policy "p" rule 2: unreachable, rule 1 already matches everything it matches',
        "policy \"p\" rule 3: unknown operation 'dorp_table' (see docs/policy.md for the list)",
    ]


@pytest.mark.parametrize("command", ["lint", "check"])
def test_unknown_key_makes_the_cli_exit_2_naming_file_line_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    text = CLEAN.replace(
        "      - {action: block, categories: [dcl]}",
        "      - {action: block, categories: [dcl], resaon: typo}",
    )
    path = tmp_path / "typo.yaml"
    path.write_text(text)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "resaon" in row)
    args = ["policy", command, "--config", str(path)]
    if command == "check":
        args += ["--groups", "agent", "--target", "app", "SELECT 1"]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{path}:{line}: policies.0.rules.1.resaon: unknown key" in captured.err


def test_unknown_top_level_key_is_reported_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "top.yaml"
    path.write_text(CLEAN + "polices: []\n")
    line = len(CLEAN.splitlines()) + 1
    assert main(["policy", "lint", "--config", str(path)]) == 2
    assert f"{path}:{line}: polices: unknown key" in capsys.readouterr().err


def test_missing_config_file_makes_the_cli_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "absent.yaml"
    assert main(["policy", "lint", "--config", str(path)]) == 2
    assert f"cannot read config file {path}" in capsys.readouterr().err
