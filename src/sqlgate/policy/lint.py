"""`sqlgate policy lint`: mistakes that validate but do not do what the author meant."""

from __future__ import annotations

from sqlgate.config import Config, RuleConfig
from sqlgate.sql import CATEGORIES, OPERATIONS


def _covers(earlier: RuleConfig, later: RuleConfig) -> bool:
    """True when every statement `later` matches is already matched by `earlier`."""
    if earlier.tables or earlier.functions or earlier.statement_regex:
        same = (earlier.tables, earlier.functions, earlier.statement_regex) == (
            later.tables,
            later.functions,
            later.statement_regex,
        )
        if not same:
            return False
    if earlier.categories and not (
        later.categories and set(later.categories) <= set(earlier.categories)
    ):
        return False
    return not earlier.operations or bool(
        later.operations and set(later.operations) <= set(earlier.operations)
    )


def lint(config: Config) -> list[str]:
    """Human-readable problems, one per line; empty when the policy looks sound."""
    problems: list[str] = []
    for p_index, policy in enumerate(config.policies):
        where = f'policy "{policy.name}"'
        earlier_policies = config.policies[:p_index]
        for other in earlier_policies:
            w = other.when
            if not (w.groups or w.targets or w.subjects):
                problems.append(
                    f'{where}: unreachable, policy "{other.name}" before it '
                    "matches every identity and target"
                )
                break
        for r_index, rule in enumerate(policy.rules, 1):
            for category in rule.categories:
                if category not in CATEGORIES:
                    problems.append(
                        f"{where} rule {r_index}: unknown category {category!r} "
                        f"(known: {', '.join(sorted(CATEGORIES))})"
                    )
            for operation in rule.operations:
                if operation not in OPERATIONS and operation != "function_call":
                    problems.append(
                        f"{where} rule {r_index}: unknown operation {operation!r} "
                        "(see docs/policy.md for the list)"
                    )
            for e_index, earlier in enumerate(policy.rules[: r_index - 1], 1):
                if _covers(earlier, rule):
                    problems.append(
                        f"{where} rule {r_index}: unreachable, rule {e_index} "
                        "already matches everything it matches"
                    )
                    break
        for m_index, mask in enumerate(policy.masks, 1):
            for column in mask.columns:
                if column.count(".") < 1 or column.endswith(".") or column.startswith("."):
                    problems.append(
                        f"{where} mask {m_index}: {column!r} names no column; write "
                        "schema.table.column, table.column or *.column"
                    )
    return problems
