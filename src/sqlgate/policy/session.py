"""Per-session judging: the policy's view of one client session (implements SessionHooks).

Session state that changes what a statement means lives here: SQL-level prepared statements
(`EXECUTE p` is judged as what `PREPARE p` held) and the search_path used to qualify tables.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from sqlgate.config import Config, MaskStrategy
from sqlgate.core import Decision, Identity, Statement, StatementSource, Verdict
from sqlgate.errors import ConfigError
from sqlgate.masking import Catalog, MaskSet, MaskSettings, ResultPlanner
from sqlgate.policy.engine import CompiledPolicy, PolicySet
from sqlgate.policy.inference import InferenceGuard
from sqlgate.sql import Category, SqlParseError, StatementAnalysis, analyze
from sqlgate.sql.shape import shape_key

log = logging.getLogger(__name__)

_CACHE_LIMIT = 20_000

Analysis = tuple[StatementAnalysis, ...] | SqlParseError
CatalogLookup = Callable[[str], Catalog]


class ReviewResult(Protocol):
    @property
    def decision(self) -> Decision: ...

    @property
    def approval_id(self) -> str | None: ...


class Reviewer(Protocol):
    """What the policy needs of the approvals service (kept abstract: policy imports no API)."""

    async def resolve(
        self, identity: Identity, statement: Statement, decision: Decision, session_id: str | None
    ) -> ReviewResult: ...


_SHAPE = "\x00shape:"  # decision-cache keys by shape cannot collide with statement text


class PolicyService:
    """Holds the current policies and the caches shared by every session (SessionFactory)."""

    def __init__(self, config: Config, catalog_for: CatalogLookup | None = None) -> None:
        self.config = config
        self.policies = PolicySet(config)
        self.catalog_for = catalog_for
        self.approvals: Reviewer | None = None
        self.mask_settings = mask_settings(config)
        self._analyses: OrderedDict[tuple[str, tuple[str, ...]], Analysis] = OrderedDict()
        self._decisions: OrderedDict[tuple[str, str, tuple[str, ...]], Decision] = OrderedDict()
        self._planners: dict[tuple[str, str], ResultPlanner] = {}
        self._guards: dict[str, InferenceGuard] = {}

    def inference_guard(self, policy: CompiledPolicy) -> InferenceGuard:
        guard = self._guards.get(policy.name)
        if guard is None:
            guard = InferenceGuard(MaskSet(policy.config.masks), policy.config.inference)
            self._guards[policy.name] = guard
        return guard

    def planner(self, policy: CompiledPolicy, target: str) -> ResultPlanner | None:
        """The result planner for a policy on a target; None when the policy masks nothing."""
        if not (policy.config.masks or policy.config.detectors) or self.catalog_for is None:
            return None
        key = (policy.name, target)
        planner = self._planners.get(key)
        if planner is None:
            detector = None
            if policy.config.detectors:
                from sqlgate.masking.detectors import DetectorSet

                detector = DetectorSet(
                    policy.config.detectors, self.config.masking.redact_marker
                ).mask_bytes
            planner = ResultPlanner(
                MaskSet(policy.config.masks),
                self.mask_settings,
                self.catalog_for(target),
                lambda sql: self.analyze(sql, ("public",)),
                detector,
            )
            self._planners[key] = planner
        return planner

    def reload(self, config: Config) -> None:
        """Swap in a new config; live sessions pick up their policy at the next statement.

        Everything that can fail is computed first, so a failure leaves the old config whole.
        """
        settings = mask_settings(config)
        policies = PolicySet(config, self.policies.version + 1)
        self.mask_settings = settings
        self.policies = policies
        self.config = config
        self._decisions.clear()
        self._planners.clear()
        self._guards.clear()

    def open_session(self, identity: Identity, target: str) -> PolicySession | None:
        policy = self.policies.policy_for(identity, target)
        if policy is None:
            return None
        return PolicySession(self, identity, target, policy)

    def analyze(self, sql: str, search_path: tuple[str, ...]) -> Analysis:
        key = (sql, search_path)
        cached = self._analyses.get(key)
        if cached is not None:
            return cached
        try:
            result: Analysis = analyze(sql, search_path)
        except SqlParseError as exc:
            result = exc
        if len(self._analyses) >= _CACHE_LIMIT:
            self._analyses.popitem(last=False)  # oldest first; O(1), unlike del d[next(iter(d))]
        self._analyses[key] = result
        return result

    def cached_decision(self, policy: str, sql: str, path: tuple[str, ...]) -> Decision | None:
        return self._decisions.get((policy, sql, path))

    def remember_decision(
        self, policy: str, sql: str, path: tuple[str, ...], decision: Decision
    ) -> None:
        if len(self._decisions) >= _CACHE_LIMIT:
            self._decisions.popitem(last=False)
        self._decisions[(policy, sql, path)] = decision


class PolicySession:
    """Judges the statements of one session."""

    def __init__(
        self, service: PolicyService, identity: Identity, target: str, policy: CompiledPolicy
    ) -> None:
        self.service = service
        self.identity = identity
        self.target = target
        self.policy: CompiledPolicy | None = policy
        self.planner = service.planner(policy, target)
        self._version = service.policies.version
        # Every schema the server's search_path may have held in this session, never
        # shrinking: SET LOCAL, rolled back SETs and failed statements cannot make the
        # gateway resolve a name to a different table than the server does.
        self.search_path: tuple[str, ...] = ("public",)
        self.session_id: str | None = None  # set by the proxy once the session is recorded
        self.shapes_ok = True  # False once standard_conforming_strings may be off
        self._shaped_sql: str | None = None
        self.prepared: dict[str, str] = {}  # name -> the PREPARE statement's text

    def _current_policy(self) -> CompiledPolicy | None:
        if self._version != self.service.policies.version:
            self._version = self.service.policies.version
            self.policy = self.service.policies.policy_for(self.identity, self.target)
            if self.policy is not None:
                self.planner = self.service.planner(self.policy, self.target)
        return self.policy

    def judge(self, statement: Statement) -> Decision:
        policy = self._current_policy()
        if policy is None:
            return Decision(
                Verdict.BLOCK,
                None,
                None,
                "no policy grants this identity access to this target any more",
            )
        if statement.source is StatementSource.FUNCTION_CALL:
            if self.planner is not None:
                return Decision(
                    Verdict.BLOCK,
                    policy.name,
                    None,
                    "fast-path function calls bypass result masking",
                )
            return policy.decide((_function_call(statement.sql),))
        cached = self.service.cached_decision(policy.name, statement.sql, self.search_path)
        if cached is not None:
            return cached
        # The same statement with other constants gets the same decision: look it up by
        # shape (pgbench -S sends a new literal every time). Only where no rule reads text.
        shape = shape_key(statement.sql) if self.shapes_ok and not policy.reads_text else None
        if shape is not None:
            self._shaped_sql = statement.sql
            cached = self.service.cached_decision(policy.name, _SHAPE + shape, self.search_path)
            if cached is not None:
                return cached
        analysis = self.service.analyze(statement.sql, self.search_path)
        if isinstance(analysis, SqlParseError):
            return policy.unparsable(str(analysis))
        resolved = tuple(self._resolve_execute(a) for a in analysis)
        decision = policy.decide(resolved)
        if decision.verdict is not Verdict.BLOCK and self.planner is not None:
            decision = self._refuse_unmaskable_copy(policy, resolved, decision)
        if decision.verdict is not Verdict.BLOCK and self.planner is not None:
            guard = self.service.inference_guard(policy)
            reason = guard.check(statement.sql, self.search_path, resolved)
            if reason is not None:
                decision = Decision(
                    Verdict.BLOCK,
                    policy.name,
                    None,
                    reason,
                    category=decision.category,
                    operations=decision.operations,
                )
        if shape is not None and all(a.execute_name is None for a in analysis):
            self.service.remember_decision(policy.name, _SHAPE + shape, self.search_path, decision)
        elif all(a.execute_name is None for a in analysis):  # depends on the text alone
            self.service.remember_decision(policy.name, statement.sql, self.search_path, decision)
        return decision

    def _refuse_unmaskable_copy(
        self, policy: CompiledPolicy, analyses: tuple[StatementAnalysis, ...], decision: Decision
    ) -> Decision:
        """COPY TO STDOUT streams rows the masker does not see: refuse it where masks may apply."""
        assert self.planner is not None
        for item in analyses:
            if item.category is not Category.COPY_OUT:
                continue
            exposed = (
                self.planner.detector is not None
                or any(self.planner.masks.could_match_table(*_schema_table(t)) for t in item.tables)
                or not item.tables
            )
            if exposed:
                return Decision(
                    Verdict.BLOCK,
                    policy.name,
                    None,
                    "COPY ... TO is refused where masked columns could be copied; "
                    "use SELECT, whose results are masked",
                    category=item.category.value,
                    operations=item.operations,
                )
        return decision

    def _resolve_execute(self, analysis: StatementAnalysis) -> StatementAnalysis:
        """`EXECUTE p` is judged as what `PREPARE p` held, plus whatever wraps it.

        `CREATE TABLE x AS EXECUTE p` keeps its own ddl/create_table on top of p's
        operations, so a DDL rule still sees it.
        """
        if analysis.execute_name is None:
            return analysis
        text = self.prepared.get(analysis.execute_name)
        # PostgreSQL re-plans a prepared statement under the current search_path: so do we.
        prepared = None if text is None else self.service.analyze(text, self.search_path)
        if not isinstance(prepared, tuple) or len(prepared) != 1:
            return analysis  # unknown: stays as analyzed (UNKNOWN), so it fails closed
        inner = prepared[0]
        category = inner.category if analysis.category is Category.UNKNOWN else analysis.category
        return replace(
            inner,
            text=analysis.text,
            category=category,
            operations=inner.operations | analysis.operations | {"execute"},
            tables=inner.tables | analysis.tables,
            columns=inner.columns | analysis.columns,
            functions=inner.functions | analysis.functions,
            qualified_functions=inner.qualified_functions | analysis.qualified_functions,
            prepare_name=None,
            execute_name=analysis.execute_name,
        )

    async def resolve_review(self, statement: Statement, decision: Decision) -> Decision:
        approvals = self.service.approvals
        if approvals is not None:
            outcome = await approvals.resolve(self.identity, statement, decision, self.session_id)
            return replace(outcome.decision, approval_id=outcome.approval_id)
        # Without an approvals service there is nobody to ask: fail closed.
        return replace(
            decision,
            verdict=Verdict.BLOCK,
            reason=f"{decision.reason} (approval required, but approvals are not enabled)",
        )

    def statement_forwarded(self, statement: Statement, decision: Decision) -> None:
        if statement.source is not StatementSource.SIMPLE or statement.sql is self._shaped_sql:
            return  # a shaped statement is DML or a query: it changes no tracked state
        if "standard_conforming_strings" in statement.sql.lower():
            self.shapes_ok = False  # the shape lexer assumes it on
        analysis = self.service.analyze(statement.sql, self.search_path)
        if isinstance(analysis, SqlParseError):
            return
        for item in analysis:
            if item.prepare_name is not None:
                self.prepared[item.prepare_name] = item.text
            elif item.deallocate_name == "*":
                self.prepared.clear()
            elif item.deallocate_name is not None:
                self.prepared.pop(item.deallocate_name, None)
            elif "discard" in item.operations:
                self.prepared.clear()
            if item.search_path is not None:
                self.widen_search_path(item.search_path)

    def widen_search_path(self, schemas: tuple[str, ...] | list[str]) -> None:
        """Add schemas the server may now resolve unqualified names in."""
        added = tuple(
            s for s in dict.fromkeys(schemas) if s and s != "$user" and s not in self.search_path
        )
        if added:
            self.search_path = self.search_path + added


def _schema_table(qualified: str) -> tuple[str, str]:
    schema, _, table = qualified.partition(".")
    return schema.strip('"'), table.strip('"')


def mask_settings(config: Config) -> MaskSettings:
    """The marker and the hash key; the key must be shared by replicas, so it comes from env."""
    uses_hash = any(m.strategy is MaskStrategy.HASH for p in config.policies for m in p.masks)
    env = config.masking.hash_key_env
    key = os.environ.get(env) if env else None
    if key is None:
        if uses_hash:
            raise ConfigError(
                "a mask uses the `hash` strategy but no key is set: put a long random secret "
                "in an environment variable and name it in masking.hash_key_env"
                + (f" ({env} is not set)" if env else "")
            )
        key = secrets.token_hex(32)
    return MaskSettings(config.masking.redact_marker, key.encode())


def _function_call(text: str) -> StatementAnalysis:
    return StatementAnalysis(
        text=text,
        category=Category.UNKNOWN,
        operations=frozenset({"function_call"}),
        tables=frozenset(),
        columns=frozenset(),
        functions=frozenset(),
        qualified_functions=frozenset(),
    )
