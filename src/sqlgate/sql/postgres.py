"""Statement analysis for PostgreSQL: parse with libpg_query (pglast), then classify and walk.

The parse tree comes from `pglast.parser.parse_sql_json` and is walked as plain dicts: that is
several times faster than building pglast's Python AST objects, and a generic walk over dicts
finds every function call, table and nested data-modifying statement wherever the grammar puts
it (CTEs, subqueries, DEFAULT and CHECK expressions, view bodies, EXPLAIN and PREPARE targets).

Classification is fail-closed: a statement type not listed in the tables below is
`Category.UNKNOWN` with operation "unknown", never a guess. Choices worth knowing:

- Operations are the whole truth, the category a summary: a data-modifying CTE makes a SELECT
  a write, and its operations show up wherever it hides (COPY (DELETE ... RETURNING) TO
  STDOUT is copy_out with "delete"; CREATE RULE/FUNCTION bodies that parse add theirs too).
- Plain EXPLAIN only plans: read + "explain", with the target's tables and functions but not
  its operations. EXPLAIN ANALYZE runs the target, so it is classified as the target.
- SET ROLE / SESSION AUTHORIZATION (in every spelling, RESET included) and DISCARD ALL (which
  resets the session authorization) are dcl + "set_role"; other SET/RESET/SHOW are session.
- TRUNCATE is ddl; LOCK and REFRESH MATERIALIZED VIEW are write; FETCH and MOVE are read
  (the cursor's query was judged at DECLARE); CLOSE, LISTEN, UNLISTEN, NOTIFY are session.
- Function bodies (CREATE FUNCTION ... AS $$...$$, DO blocks) are strings and stay unparsed.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from pglast import parser as _pg

from sqlgate.sql.model import Category, SqlParseError, StatementAnalysis

_loads: Callable[[str], Any]
try:  # orjson parses libpg_query's JSON about twice as fast; the stdlib is the fallback.
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - depends on the environment
    _loads = json.loads

__all__ = ["RESET_SEARCH_PATH", "analyze"]

Node = dict[str, Any]

# The search_path reported by SET search_path TO DEFAULT, RESET search_path, RESET ALL and
# DISCARD ALL: back to the server's default, which only the session knows (what it had at
# connection start). No SET yields an empty tuple, so it cannot be mistaken for a value.
RESET_SEARCH_PATH: tuple[str, ...] = ()

R, W, DDL, DCL, TCL, SES = (
    Category.READ,
    Category.WRITE,
    Category.DDL,
    Category.DCL,
    Category.TCL,
    Category.SESSION,
)
ADM, PROC, UNK = Category.ADMIN, Category.PROCEDURAL, Category.UNKNOWN


def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Statement node -> (category, operation) for every statement whose meaning does not depend on
# its fields. Statements that need a closer look are in _SPECIAL further down.
_SIMPLE: dict[str, tuple[Category, str]] = {
    "InsertStmt": (W, "insert"),  # the walker adds the DML operations themselves
    "UpdateStmt": (W, "update"),
    "DeleteStmt": (W, "delete"),
    "MergeStmt": (W, "merge"),
    "LockStmt": (W, "lock"),
    "RefreshMatViewStmt": (W, "refresh_materialized_view"),
    "TruncateStmt": (DDL, "truncate"),
    "CreateStmt": (DDL, "create_table"),
    "CreateForeignTableStmt": (DDL, "create_table"),
    "IndexStmt": (DDL, "create_index"),
    "ViewStmt": (DDL, "create_view"),
    "CreateFunctionStmt": (DDL, "create_function"),
    "CreatedbStmt": (DDL, "create_database"),
    "DropdbStmt": (DDL, "drop_database"),
    "DropTableSpaceStmt": (DDL, "drop_other"),
    "DropSubscriptionStmt": (DDL, "drop_other"),
    "DropUserMappingStmt": (DDL, "drop_other"),
    "DropOwnedStmt": (DDL, "drop_other"),
    **{
        name: (DDL, "create_other")
        for name in _names(
            "CreateAmStmt CreateCastStmt CreateConversionStmt CreateDomainStmt CreateEnumStmt "
            "CreateEventTrigStmt CreateFdwStmt CreateForeignServerStmt CreateOpClassStmt "
            "CreateOpFamilyStmt CreatePLangStmt CreatePolicyStmt CreatePublicationStmt "
            "CreateRangeStmt CreateSeqStmt CreateStatsStmt CreateSubscriptionStmt "
            "CreateTableSpaceStmt CreateTransformStmt CreateTrigStmt CreateUserMappingStmt "
            "CompositeTypeStmt DefineStmt RuleStmt ImportForeignSchemaStmt"
        )
    },
    **{
        name: (DDL, "alter_other")
        for name in _names(
            "AlterCollationStmt AlterDatabaseRefreshCollStmt AlterDatabaseSetStmt "
            "AlterDatabaseStmt AlterDomainStmt AlterEnumStmt AlterEventTrigStmt "
            "AlterExtensionContentsStmt AlterExtensionStmt AlterFdwStmt AlterForeignServerStmt "
            "AlterFunctionStmt AlterObjectDependsStmt AlterObjectSchemaStmt AlterOpFamilyStmt "
            "AlterOperatorStmt AlterOwnerStmt AlterPolicyStmt AlterPublicationStmt "
            "AlterSeqStmt AlterStatsStmt AlterSubscriptionStmt AlterTSConfigurationStmt "
            "AlterTSDictionaryStmt AlterTableMoveAllStmt AlterTableSpaceOptionsStmt "
            "AlterTypeStmt AlterUserMappingStmt ReplicaIdentityStmt"
        )
    },
    "CreateRoleStmt": (DCL, "create_role"),
    "AlterRoleStmt": (DCL, "alter_role"),
    "AlterRoleSetStmt": (DCL, "alter_role"),
    "ReassignOwnedStmt": (DCL, "alter_role"),
    "DropRoleStmt": (DCL, "drop_role"),
    "VariableShowStmt": (SES, "show"),
    "ConstraintsSetStmt": (SES, "set"),
    "ListenStmt": (SES, "listen"),
    "UnlistenStmt": (SES, "unlisten"),
    "NotifyStmt": (SES, "notify"),
    "ClosePortalStmt": (SES, "close_cursor"),
    "FetchStmt": (R, "fetch"),  # rows of a cursor whose DECLARE was judged already
    "DoStmt": (PROC, "do_block"),
    "CallStmt": (PROC, "call"),
    "ClusterStmt": (ADM, "cluster"),
    "ReindexStmt": (ADM, "reindex"),
    "CheckPointStmt": (ADM, "checkpoint"),
    "LoadStmt": (ADM, "load"),
    "AlterSystemStmt": (ADM, "alter_system"),
}

_TRANSACTION: dict[str, tuple[str, ...]] = {
    "TRANS_STMT_BEGIN": ("begin",),
    "TRANS_STMT_START": ("begin",),
    "TRANS_STMT_COMMIT": ("commit",),
    "TRANS_STMT_ROLLBACK": ("rollback",),
    "TRANS_STMT_SAVEPOINT": ("savepoint",),
    "TRANS_STMT_RELEASE": ("release",),
    "TRANS_STMT_ROLLBACK_TO": ("rollback",),
    "TRANS_STMT_PREPARE": ("prepare_transaction",),
    "TRANS_STMT_COMMIT_PREPARED": ("commit", "commit_prepared"),
    "TRANS_STMT_ROLLBACK_PREPARED": ("rollback", "rollback_prepared"),
}

_DROP: dict[str, str] = {
    "OBJECT_TABLE": "drop_table",
    "OBJECT_FOREIGN_TABLE": "drop_table",
    "OBJECT_SCHEMA": "drop_schema",
    "OBJECT_VIEW": "drop_view",
    "OBJECT_MATVIEW": "drop_view",
    "OBJECT_INDEX": "drop_index",
    "OBJECT_FUNCTION": "drop_function",
    "OBJECT_PROCEDURE": "drop_function",
    "OBJECT_ROUTINE": "drop_function",
    "OBJECT_AGGREGATE": "drop_function",
}

# Object types whose names (lists of String nodes, not RangeVars) are relations.
_RELATION_OBJECTS = frozenset(
    {"OBJECT_TABLE", "OBJECT_FOREIGN_TABLE", "OBJECT_VIEW", "OBJECT_MATVIEW", "OBJECT_SEQUENCE"}
)

# Settings that change the effective role: privilege changes, not session preferences.
_ROLE_SETTINGS = frozenset({"role", "session_authorization"})

# EXPLAIN option values that turn ANALYZE off (PostgreSQL's parse_bool); anything else is "on".
_FALSE_WORDS = frozenset({"f", "fa", "fal", "fals", "false", "n", "no", "of", "off", "0"})

# Walker dispatch: keys whose dict value needs attention. The walker does not descend into
# leaves (constants, names, column references): half of a tree's dicts are String wrappers.
_K_LEAF, _K_FUNC, _K_COLUMN, _K_DELETE, _K_UPDATE, _K_INSERT, _K_MERGE = range(7)
_K_LOCKING, _K_TRIGGER, _K_RELATION = range(7, 10)
_WALK_KEYS: dict[str, int] = {
    "String": _K_LEAF,
    "A_Const": _K_LEAF,
    "A_Star": _K_LEAF,
    "ParamRef": _K_LEAF,
    "alias": _K_LEAF,  # Alias: a name and column names
    "FuncCall": _K_FUNC,
    "funccall": _K_FUNC,  # CallStmt holds its FuncCall unwrapped
    "ColumnRef": _K_COLUMN,  # its fields are only String and A_Star nodes
    "DeleteStmt": _K_DELETE,
    "UpdateStmt": _K_UPDATE,
    "InsertStmt": _K_INSERT,
    "MergeStmt": _K_MERGE,
    "LockingClause": _K_LOCKING,
    "CreateTrigStmt": _K_TRIGGER,
    "CreateEventTrigStmt": _K_TRIGGER,
    # A DML target is always a real table, never a CTE of the same name.
    "relation": _K_RELATION,
}

# Lists of names only (operator names, type names, column aliases); a called function's name
# is recorded by _visit from its FuncCall.
_LEAF_LISTS = frozenset({"name", "names", "funcname", "colnames", "aliascolnames"})

_MERGE_ACTIONS = {"CMD_UPDATE": "update", "CMD_INSERT": "insert", "CMD_DELETE": "delete"}
_EMPTY: frozenset[str] = frozenset()


class _Facts:
    """What the walk over one statement found."""

    __slots__ = ("columns", "dml", "functions", "qualified_functions", "resolve", "tables")

    def __init__(self, resolve: Callable[[str], tuple[str, ...]]) -> None:
        self.tables: set[str] = set()
        self.columns: set[str] = set()
        self.functions: set[str] = set()
        self.qualified_functions: set[str] = set()
        self.dml: set[str] = set()  # operations of data-modifying statements found anywhere
        self.resolve = resolve

    def add_relation(self, schema: str | None, name: str) -> None:
        if schema is not None:
            self.tables.add(f"{_ident(schema)}.{_ident(name)}")
            return
        ident = _ident(name)
        for candidate in self.resolve(name):
            self.tables.add(f"{_ident(candidate)}.{ident}")

    def add_function(self, names: list[Node]) -> None:
        parts = [n["String"]["sval"].lower() for n in names if "String" in n]
        if parts:
            self.functions.add(parts[-1])
            self.qualified_functions.add(".".join(parts))


def _ident(name: str) -> str:
    """Quote a name only when it would otherwise make "schema.table" ambiguous."""
    if "." in name or '"' in name:
        return '"' + name.replace('"', '""') + '"'
    return name


def _walk(root: Any, facts: _Facts) -> None:
    """Visit every node under `root` once, iteratively, tracking which CTE names are in scope.

    A FROM-clause name that matches a CTE in scope is not a table; a CTE's own query sees only
    the CTEs before it (all of them under WITH RECURSIVE), so `WITH t AS (SELECT * FROM t)`
    still reads the real table t. Scope changes travel on the stack as frozensets, pushed
    below and above the nodes they govern, so the common case (no CTE) costs nothing.
    """
    stack: list[Any] = [root]
    pop, push, extend = stack.pop, stack.append, stack.extend
    walk_keys, leaf_lists = _WALK_KEYS, _LEAF_LISTS
    scope = _EMPTY
    while stack:
        node = pop()
        cls = node.__class__
        if cls is dict:
            if "relname" in node:  # a RangeVar, wrapped or not
                schema = node.get("schemaname")
                name = node["relname"]
                if schema is not None or name not in scope:
                    facts.add_relation(schema, name)
            elif "withClause" in node:
                _push_with(node, scope, push)
                continue
            for key, value in node.items():
                vcls = value.__class__
                if vcls is dict:
                    code = walk_keys.get(key)
                    if code is None:
                        push(value)
                    elif code == _K_RELATION:
                        if scope:
                            push(scope)
                            push(value)
                            push(_EMPTY)
                        else:
                            push(value)
                    elif code != _K_LEAF:
                        _visit(code, value, facts)
                        if code != _K_COLUMN:
                            push(value)
                elif vcls is list and key not in leaf_lists:
                    extend(value)
        elif cls is list:
            extend(node)
        elif cls is frozenset:
            scope = node


def _push_with(node: Node, scope: frozenset[str], push: Callable[[Any], None]) -> None:
    """Queue a statement that has a WITH clause: each CTE's query with the names it may see,
    then the statement body with all of them, then the outer scope back."""
    clause = node["withClause"]
    ctes = [c["CommonTableExpr"] for c in clause.get("ctes", ()) if "CommonTableExpr" in c]
    names = [c.get("ctename", "") for c in ctes]
    every = scope | frozenset(names)
    recursive = bool(clause.get("recursive"))
    push(scope)
    push({k: v for k, v in node.items() if k != "withClause"})
    push(every)
    for i, cte in enumerate(ctes):
        push(scope)
        push(cte.get("ctequery"))
        push(every if recursive else scope | frozenset(names[:i]))


def _visit(code: int, value: Node, facts: _Facts) -> None:
    """Record what a node of interest says (its children are walked by the caller)."""
    if code in (_K_FUNC, _K_TRIGGER):
        names = value.get("funcname")
        if names:
            facts.add_function(names)
    elif code == _K_COLUMN:
        parts = []
        for field in value.get("fields", ()):
            if "String" in field:
                parts.append(field["String"]["sval"])
            elif "A_Star" in field:
                parts.append("*")
        if parts:
            facts.columns.add(".".join(parts))
    elif code == _K_DELETE:
        facts.dml.add("delete")
        if "whereClause" not in value:
            facts.dml.add("delete_without_where")
    elif code == _K_UPDATE:
        facts.dml.add("update")
        if "whereClause" not in value:
            facts.dml.add("update_without_where")
        _target_columns(value.get("targetList", ()), facts)
    elif code == _K_INSERT:
        facts.dml.add("insert")
        _target_columns(value.get("cols", ()), facts)
        conflict = value.get("onConflictClause")
        if conflict and conflict.get("action") == "ONCONFLICT_UPDATE":
            facts.dml.add("update")
    elif code == _K_MERGE:
        facts.dml.add("merge")
        for clause in value.get("mergeWhenClauses", ()):
            action = _MERGE_ACTIONS.get(clause.get("MergeWhenClause", {}).get("commandType"))
            if action:
                facts.dml.add(action)
    elif code == _K_LOCKING:
        facts.dml.add("select_for_update")


def _target_columns(targets: Any, facts: _Facts) -> None:
    for target in targets:
        name = target.get("ResTarget", {}).get("name")
        if name:
            facts.columns.add(name)


class _Verdict:
    """Operations and session side effects of one top-level statement (the category is what
    _classify returns)."""

    __slots__ = (
        "deallocate_name",
        "execute_name",
        "executes",
        "operations",
        "prepare_name",
        "search_path",
    )

    def __init__(self) -> None:
        self.operations: set[str] = set()
        self.executes = True  # False when nested statements only get planned (plain EXPLAIN)
        self.prepare_name: str | None = None
        self.execute_name: str | None = None
        self.deallocate_name: str | None = None
        self.search_path: tuple[str, ...] | None = None


def _classify(stmt: Node, verdict: _Verdict, facts: _Facts) -> Category:
    """Return the category of a wrapped statement node and add its operations to `verdict`."""
    if len(stmt) != 1:
        verdict.operations.add("unknown")
        return UNK
    ((kind, body),) = stmt.items()
    simple = _SIMPLE.get(kind)
    if simple is not None:
        verdict.operations.add(simple[1])
        return simple[0]
    special = _SPECIAL.get(kind)
    if special is not None:
        return special(body, verdict, facts)
    verdict.operations.add("unknown")
    return UNK


def _select(body: Node, verdict: _Verdict, facts: _Facts) -> Category:
    verdict.operations.add("select")
    if "intoClause" in body:
        verdict.operations.add("create_table")
        return DDL
    return R


def _drop(body: Node, verdict: _Verdict, facts: _Facts) -> Category:
    kind = body.get("removeType", "")
    verdict.operations.add(_DROP.get(kind, "drop_other"))
    if kind in _RELATION_OBJECTS:
        for obj in body.get("objects", ()):
            _add_name_list(obj, facts)
    return DDL


def _add_name_list(obj: Any, facts: _Facts) -> None:
    """Add a relation written as a List of String nodes (DROP, COMMENT ON, SECURITY LABEL)."""
    items = obj.get("List", {}).get("items", ()) if obj.__class__ is dict else ()
    parts = [i["String"]["sval"] for i in items if "String" in i]
    if len(parts) == 1:
        facts.add_relation(None, parts[0])
    elif len(parts) >= 2:
        facts.add_relation(parts[-2], parts[-1])


def _comment(body: Node, verdict: _Verdict, facts: _Facts) -> Category:
    verdict.operations.add("comment")
    if body.get("objtype") in _RELATION_OBJECTS:
        _add_name_list(body.get("object"), facts)
    return DDL


def _security_label(body: Node, verdict: _Verdict, facts: _Facts) -> Category:
    verdict.operations.add("security_label")
    if body.get("objtype") in _RELATION_OBJECTS:
        _add_name_list(body.get("object"), facts)
    return DDL


def _variable_set(body: Node, verdict: _Verdict, facts: _Facts) -> Category:
    name = body.get("name", "").lower()  # GUC names are case-insensitive, even quoted ones
    kind = body.get("kind", "")
    reset = kind in ("VAR_RESET", "VAR_RESET_ALL")
    if name in _ROLE_SETTINGS:
        verdict.operations.add("set_role")
        return DCL
    verdict.operations.add("reset" if reset else "set")
    if name == "search_path":
        if kind == "VAR_SET_VALUE":
            verdict.search_path = tuple(_setting_words(body.get("args", ())))
        else:
            verdict.search_path = RESET_SEARCH_PATH
    elif kind == "VAR_RESET_ALL":
        verdict.search_path = RESET_SEARCH_PATH
    return SES


def _setting_words(args: Any) -> list[str]:
    """The values of SET name TO a, 'b', 3 as PostgreSQL turns them into a list setting."""
    words = []
    for arg in args:
        const = arg.get("A_Const", {})
        for field in ("sval", "ival", "fval"):
            if field in const:
                words.append(str(const[field].get(field, 0)))
    return words


def _discard(body: Node, verdict: _Verdict, facts: _Facts) -> Category:
    verdict.operations.add("discard")
    if body.get("target") == "DISCARD_ALL":
        # DISCARD ALL runs SET SESSION AUTHORIZATION DEFAULT: it drops any SET ROLE.
        verdict.operations.add("set_role")
        verdict.search_path = RESET_SEARCH_PATH
        return DCL
    return SES


def _transaction(body: Node, verdict: _Verdict, facts: _Facts) -> Category:
    ops = _TRANSACTION.get(body.get("kind", ""))
    if ops is None:
        verdict.operations.add("unknown")
        return UNK
    verdict.operations.update(ops)
    return TCL


def _copy(body: Node, verdict: _Verdict, facts: _Facts) -> Category:
    program = bool(body.get("is_program"))
    to_file = body.get("filename") is not None
    query = body.get("query")
    if query is not None:
        _classify(query, verdict, facts)  # the operations of COPY (query), DML included
    if body.get("is_from"):
        verdict.operations.add(
            "copy_from_program" if program else "copy_from_file" if to_file else "copy_from_stdin"
        )
        return Category.COPY_IN
    verdict.operations.add(
        "copy_to_program" if program else "copy_to_file" if to_file else "copy_to_stdout"
    )
    return Category.COPY_OUT


def _explain(body: Node, verdict: _Verdict, facts: _Facts) -> Category:
    verdict.operations.add("explain")
    if any(_is_analyze(opt.get("DefElem", {})) for opt in body.get("options", ())):
        return _classify(body.get("query", {}), verdict, facts)
    # Plain EXPLAIN only plans: the tables and functions are still reported, but not the
    # operations, since nothing is written.
    inner = _Verdict()
    _classify(body.get("query", {}), inner, facts)
    verdict.execute_name = inner.execute_name
    verdict.executes = False
    return R


def _is_analyze(option: Node) -> bool:
    if option.get("defname") != "analyze":
        return False
    arg = option.get("arg")
    if arg is None:
        return True
    if "String" in arg:
        return arg["String"].get("sval", "").lower() not in _FALSE_WORDS
    if "Integer" in arg:
        return bool(arg["Integer"].get("ival", 0))
    if "Boolean" in arg:
        return bool(arg["Boolean"].get("boolval", False))
    return True


def _prepare(body: Node, verdict: _Verdict, facts: _Facts) -> Category:
    verdict.operations.add("prepare")
    verdict.prepare_name = body.get("name", "")
    return _classify(body.get("query", {}), verdict, facts)


def _execute(body: Node, verdict: _Verdict, facts: _Facts) -> Category:
    verdict.operations.add("execute")
    verdict.execute_name = body.get("name", "")
    return UNK


def _deallocate(body: Node, verdict: _Verdict, facts: _Facts) -> Category:
    verdict.operations.add("deallocate")
    verdict.deallocate_name = "*" if body.get("isall") else body.get("name", "")
    return SES


def _declare_cursor(body: Node, verdict: _Verdict, facts: _Facts) -> Category:
    verdict.operations.add("declare_cursor")
    return _classify(body.get("query", {}), verdict, facts)


def _create_table_as(body: Node, verdict: _Verdict, facts: _Facts) -> Category:
    matview = body.get("objtype") == "OBJECT_MATVIEW"
    verdict.operations.add("create_view" if matview else "create_table")
    query = body.get("query", {})
    if "ExecuteStmt" in query:
        _execute(query["ExecuteStmt"], verdict, facts)
    return DDL


def _vacuum(body: Node, verdict: _Verdict, facts: _Facts) -> Category:
    if body.get("is_vacuumcmd"):
        verdict.operations.add("vacuum")
    if not body.get("is_vacuumcmd") or any(
        opt.get("DefElem", {}).get("defname") == "analyze" for opt in body.get("options", ())
    ):
        verdict.operations.add("analyze")
    return ADM


def _grant(body: Node, verdict: _Verdict, facts: _Facts) -> Category:
    verdict.operations.add("grant" if body.get("is_grant") else "revoke")
    return DCL


def _default_privileges(body: Node, verdict: _Verdict, facts: _Facts) -> Category:
    return _grant(body.get("action", {}), verdict, facts)


def _alter_table(body: Node, verdict: _Verdict, facts: _Facts) -> Category:
    table = body.get("objtype", "OBJECT_TABLE") in ("OBJECT_TABLE", "OBJECT_FOREIGN_TABLE")
    verdict.operations.add("alter_table" if table else "alter_other")
    return DDL


def _rename(body: Node, verdict: _Verdict, facts: _Facts) -> Category:
    rename = body.get("renameType", "")
    if rename == "OBJECT_ROLE":
        verdict.operations.add("alter_role")
        return DCL
    tables = ("OBJECT_TABLE", "OBJECT_FOREIGN_TABLE")
    on_table = rename in tables or (
        rename in ("OBJECT_COLUMN", "OBJECT_TABCONSTRAINT") and body.get("relationType") in tables
    )
    verdict.operations.add("alter_table" if on_table else "alter_other")
    return DDL


def _create_schema(body: Node, verdict: _Verdict, facts: _Facts) -> Category:
    verdict.operations.add("create_schema")
    category = DDL
    for element in body.get("schemaElts", ()):
        # CREATE SCHEMA s GRANT ... grants for real: the statement is as strong as its parts.
        if _classify(element, verdict, facts) is DCL:
            category = DCL
    return category


def _create_extension(body: Node, verdict: _Verdict, facts: _Facts) -> Category:
    verdict.operations.update(("create_other", "create_extension"))
    return DDL


_Special = Callable[[Node, _Verdict, _Facts], Category]
_SPECIAL: dict[str, _Special] = {
    "SelectStmt": _select,
    "DropStmt": _drop,
    "CommentStmt": _comment,
    "SecLabelStmt": _security_label,
    "VariableSetStmt": _variable_set,
    "DiscardStmt": _discard,
    "TransactionStmt": _transaction,
    "CopyStmt": _copy,
    "ExplainStmt": _explain,
    "PrepareStmt": _prepare,
    "ExecuteStmt": _execute,
    "DeallocateStmt": _deallocate,
    "DeclareCursorStmt": _declare_cursor,
    "CreateTableAsStmt": _create_table_as,
    "VacuumStmt": _vacuum,
    "GrantStmt": _grant,
    "GrantRoleStmt": _grant,
    "AlterDefaultPrivilegesStmt": _default_privileges,
    "AlterTableStmt": _alter_table,
    "RenameStmt": _rename,
    "CreateSchemaStmt": _create_schema,
    "CreateExtensionStmt": _create_extension,
}


def analyze(sql: str, search_path: tuple[str, ...] = ("public",)) -> tuple[StatementAnalysis, ...]:
    """Analyze every statement of `sql`, in order; () when it holds none (blank, comments).

    Unqualified table names are reported in each schema of `search_path` they could resolve
    to ("$user" entries are skipped: substitute the backend user's name before calling), and
    names starting with "pg_" also in pg_catalog, which PostgreSQL searches first. Raises
    SqlParseError for text that does not parse, and for any internal failure too, so that the
    gateway refuses what it could not judge instead of crashing.
    """
    try:
        return _analyze(sql, search_path)
    except SqlParseError:
        raise
    except Exception as exc:
        raise SqlParseError(f"cannot analyze statement: {type(exc).__name__}: {exc}") from exc


def parse_tree(sql: str) -> Node:
    """libpg_query's parse tree as plain dicts; SqlParseError for text it rejects."""
    if "\x00" in sql:
        # libpg_query reads a C string: it would silently ignore everything after the NUL.
        raise SqlParseError("statement text contains a NUL character", sql.index("\x00"))
    try:
        tree: Node = _loads(_pg.parse_sql_json(sql))
    except _pg.ParseError as exc:
        position = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else None
        raise SqlParseError(f"cannot parse statement: {exc.args[0]}", position) from None
    return tree


def _analyze(sql: str, search_path: tuple[str, ...]) -> tuple[StatementAnalysis, ...]:
    tree = parse_tree(sql)
    stmts = tree.get("stmts")
    if not stmts:
        return ()
    resolve = _resolver(tuple(search_path))
    source: str | bytes = sql if sql.isascii() else sql.encode()
    results = []
    for raw in stmts:
        stmt = raw["stmt"]
        start = raw.get("stmt_location", 0)
        length = raw.get("stmt_len", 0)
        piece = source[start : start + length] if length else source[start:]
        text = piece.decode() if isinstance(piece, bytes) else piece
        results.append(_analyze_statement(text.strip(), stmt, resolve))
    return tuple(results)


def _analyze_statement(
    text: str, stmt: Node, resolve: Callable[[str], tuple[str, ...]]
) -> StatementAnalysis:
    facts = _Facts(resolve)
    schema_stmt = stmt.get("CreateSchemaStmt")
    if schema_stmt is not None and "schemaElts" in schema_stmt:
        # Objects inside CREATE SCHEMA s ... are created in s, which is searched first.
        rest = {k: v for k, v in schema_stmt.items() if k != "schemaElts"}
        _walk(rest, facts)
        schema = schema_stmt.get("schemaname") or schema_stmt.get("authrole", {}).get(
            "rolename", ""
        )
        facts.resolve = _prefixed(schema, resolve)
        _walk(schema_stmt["schemaElts"], facts)
        facts.resolve = resolve
    else:
        _walk(stmt, facts)
    verdict = _Verdict()
    category = _classify(stmt, verdict, facts)
    operations = verdict.operations
    if verdict.executes and facts.dml:
        operations |= facts.dml
        if category is R and not facts.dml <= {"select_for_update"}:
            category = W  # a data-modifying CTE turns a SELECT into a write
    return StatementAnalysis(
        text=text,
        category=category,
        operations=frozenset(operations),
        tables=frozenset(facts.tables),
        columns=frozenset(facts.columns),
        functions=frozenset(facts.functions),
        qualified_functions=frozenset(facts.qualified_functions),
        prepare_name=verdict.prepare_name,
        execute_name=verdict.execute_name,
        deallocate_name=verdict.deallocate_name,
        search_path=verdict.search_path,
    )


@functools.lru_cache(maxsize=64)
def _resolver(search_path: tuple[str, ...]) -> Callable[[str], tuple[str, ...]]:
    """Map an unqualified relation name to every schema it may live in under `search_path`."""
    schemas = tuple(dict.fromkeys(s for s in search_path if s != "$user")) or ("public",)
    with_catalog = schemas if "pg_catalog" in schemas else ("pg_catalog", *schemas)

    def resolve(name: str) -> tuple[str, ...]:
        return with_catalog if name.startswith("pg_") else schemas

    return resolve


def _prefixed(
    schema: str, resolve: Callable[[str], tuple[str, ...]]
) -> Callable[[str], tuple[str, ...]]:
    def resolve_in_schema(name: str) -> tuple[str, ...]:
        return (schema, *(s for s in resolve(name) if s != schema))

    return resolve_in_schema
