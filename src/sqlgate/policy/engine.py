"""The policy engine: which policy applies to an identity, and what it decides per statement.

Policies are tried in config order and the first whose `when` matches applies. Inside it,
rules are tried in order and the first that matches decides; otherwise the policy's
`default` does. A rule's criteria are ANDed (all that are given must match) and each list
is ORed (any entry matches).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from sqlgate.config import Action, Config, PolicyConfig, RuleConfig
from sqlgate.core import Decision, Identity, Verdict
from sqlgate.sql import Category, StatementAnalysis

_VERDICTS = {
    Action.ALLOW: Verdict.ALLOW,
    Action.BLOCK: Verdict.BLOCK,
    Action.REVIEW: Verdict.REVIEW,
}

# A statement can do more than its top-level category says (`CREATE TABLE x AS WITH d AS
# (DELETE ...)` is ddl that deletes). Block and review rules also see these implied
# categories; allow rules do not, so nothing is allowed on the strength of a lesser part.
_IMPLIED_CATEGORY = {
    **dict.fromkeys(
        (
            "insert",
            "update",
            "delete",
            "merge",
            "update_without_where",
            "delete_without_where",
            "lock",
            "refresh_materialized_view",
        ),
        "write",
    ),
    **dict.fromkeys(
        ("grant", "revoke", "create_role", "alter_role", "drop_role", "set_role"), "dcl"
    ),
    **dict.fromkeys(("do_block", "call"), "procedural"),
    **dict.fromkeys(
        ("copy_to_program", "copy_from_program", "copy_to_file", "copy_from_file"), "admin"
    ),
}


def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern.lower()))


@dataclass(frozen=True, slots=True)
class CompiledRule:
    index: int  # 1-based, as users count rules in the config
    action: Action
    categories: frozenset[str]
    operations: frozenset[str]
    tables: tuple[re.Pattern[str], ...]
    functions: tuple[re.Pattern[str], ...]
    regex: re.Pattern[str] | None
    reason: str | None

    @classmethod
    def compile(cls, index: int, rule: RuleConfig) -> CompiledRule:
        tables = tuple(_glob(t if "." in t else f"*.{t}") for t in rule.tables)
        # Function globs are schema-insensitive: `pg_catalog.pg_read_file` == `pg_read_file`.
        functions = tuple(_glob(f.rsplit(".", 1)[-1]) for f in rule.functions)
        regex = (
            re.compile(rule.statement_regex, re.IGNORECASE | re.DOTALL)
            if rule.statement_regex
            else None
        )
        return cls(
            index,
            rule.action,
            frozenset(rule.categories),
            frozenset(rule.operations),
            tables,
            functions,
            regex,
            rule.reason,
        )

    def matches(self, analysis: StatementAnalysis) -> bool:
        if (
            analysis.category is Category.UNKNOWN
            and self.action is Action.ALLOW
            and ("unknown" not in self.categories)
        ):
            # Fail closed: only a rule that names `unknown` may allow what was not classified.
            return False
        if (
            self.categories
            and analysis.category.value not in self.categories
            and (
                self.action is Action.ALLOW
                or not any(
                    _IMPLIED_CATEGORY.get(op) in self.categories for op in analysis.operations
                )
            )
        ):
            return False
        if self.operations and self.operations.isdisjoint(analysis.operations):
            return False
        if self.tables and not any(
            p.fullmatch(t.lower().replace('"', "")) for p in self.tables for t in analysis.tables
        ):
            return False
        if self.functions and not any(
            p.fullmatch(f) for p in self.functions for f in analysis.functions
        ):
            return False
        return self.regex is None or self.regex.search(analysis.text) is not None

    def describe(self, analysis: StatementAnalysis) -> str:
        if self.reason:
            return self.reason
        hits = sorted(self.operations & analysis.operations)
        functions = sorted(
            f for f in analysis.functions if any(p.fullmatch(f) for p in self.functions)
        )
        tables = sorted(
            t
            for t in analysis.tables
            if any(p.fullmatch(t.lower().replace('"', "")) for p in self.tables)
        )
        if hits:
            what = hits[0]
        elif functions:
            what = f"calling {functions[0]}()"
        elif tables:
            what = f"{analysis.category.value} on {tables[0]}"
        elif self.regex is not None:
            what = "a statement matching this rule's pattern"
        else:
            what = analysis.category.value
        return f"{what} is not allowed" if self.action is Action.BLOCK else f"{what} needs approval"


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    config: PolicyConfig
    rules: tuple[CompiledRule, ...]

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def reads_text(self) -> bool:
        """A rule matches on statement text, so constants can change the decision."""
        return any(rule.regex is not None for rule in self.rules)

    @classmethod
    def compile(cls, policy: PolicyConfig) -> CompiledPolicy:
        return cls(policy, tuple(CompiledRule.compile(i, r) for i, r in enumerate(policy.rules, 1)))

    def decide_one(self, analysis: StatementAnalysis) -> Decision:
        for rule in self.rules:
            if rule.matches(analysis):
                return Decision(
                    _VERDICTS[rule.action],
                    self.name,
                    rule.index,
                    rule.describe(analysis) if rule.action is not Action.ALLOW else "allowed",
                    category=analysis.category.value,
                    operations=analysis.operations,
                )
        default = self.config.default
        if analysis.category is Category.UNKNOWN and default is not Action.ALLOW:
            return Decision(
                Verdict.BLOCK,
                self.name,
                None,
                "the gateway cannot classify this statement, and this policy refuses what it "
                "cannot classify",
                category=analysis.category.value,
                operations=analysis.operations,
            )
        reason = {
            Action.ALLOW: "allowed by default",
            Action.BLOCK: "no rule allows this statement",
            Action.REVIEW: "no rule covers this statement; it needs approval",
        }[default]
        return Decision(
            _VERDICTS[default],
            self.name,
            None,
            reason,
            category=analysis.category.value,
            operations=analysis.operations,
        )

    def decide(self, analyses: tuple[StatementAnalysis, ...]) -> Decision:
        """One decision for a whole request: any block refuses it all, then any review holds it."""
        if not analyses:
            return Decision(Verdict.ALLOW, self.name, None, "empty statement")
        decisions = [self.decide_one(a) for a in analyses]
        for verdict in (Verdict.BLOCK, Verdict.REVIEW):
            for decision in decisions:
                if decision.verdict is verdict:
                    return decision
        if len(decisions) == 1:
            return decisions[0]
        first = decisions[0]
        return Decision(
            Verdict.ALLOW,
            first.policy,
            first.rule,
            first.reason,
            category=first.category,
            operations=frozenset().union(*(d.operations for d in decisions)),
        )

    def unparsable(self, error: str) -> Decision:
        if self.config.default is Action.ALLOW:
            return Decision(Verdict.ALLOW, self.name, None, "unparsed, allowed by default")
        return Decision(
            Verdict.BLOCK,
            self.name,
            None,
            f"the statement could not be parsed ({error}), and this policy refuses what it "
            "cannot parse",
            sqlstate="42601",
            category="unknown",
        )


class PolicySet:
    """All policies of one config version, compiled."""

    def __init__(self, config: Config, version: int = 1) -> None:
        self.version = version
        self.policies = tuple(CompiledPolicy.compile(p) for p in config.policies)

    def policy_for(self, identity: Identity, target: str) -> CompiledPolicy | None:
        for policy in self.policies:
            if policy.config.when.matches(identity.groups, identity.subject, target):
                return policy
        return None
