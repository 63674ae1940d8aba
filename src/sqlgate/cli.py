"""The `sqlgate` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlgate import __version__
from sqlgate.errors import SqlgateError


def _run_async(coro: object) -> None:
    try:
        import uvloop

        uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:
        asyncio.run(coro)  # type: ignore[arg-type]


def cmd_serve(args: argparse.Namespace) -> int:
    from sqlgate.config import load_config
    from sqlgate.logs import setup_logging
    from sqlgate.runtime import serve

    config = load_config(args.config)
    setup_logging(config.logging.level, config.logging.json_format)
    workers = args.workers if args.workers is not None else config.server.workers
    if workers == 0:
        workers = os.cpu_count() or 1
    if workers == 1:
        _run_async(serve(Path(args.config)))
        return 0

    def run_worker(index: int, count: int, supervisor_pid: int) -> None:
        _run_async(serve(Path(args.config), worker=(index, count), supervisor_pid=supervisor_pid))

    from sqlgate.supervisor import supervise

    return supervise(workers, run_worker)


def cmd_token(args: argparse.Namespace) -> int:
    from sqlgate.config import load_config
    from sqlgate.runtime import dev_issuer_for

    config = load_config(args.config)
    if not config.identity.dev_issuer:
        raise SqlgateError(
            f"{args.config}: identity.dev_issuer is not enabled; `sqlgate token` mints "
            "development tokens only. Get real tokens from your identity provider."
        )
    issuer = dev_issuer_for(config)
    groups = [g for item in args.groups for g in item.split(",") if g]
    token = issuer.mint(args.sub, groups, email=args.email, ttl_seconds=args.ttl)
    print(token)
    return 0


def cmd_policy_check(args: argparse.Namespace) -> int:
    from sqlgate.config import load_config
    from sqlgate.core import Dialect, Identity, Statement, StatementSource
    from sqlgate.policy.session import PolicyService
    from sqlgate.sql import SqlParseError

    config = load_config(args.config)
    service = PolicyService(config)
    groups = frozenset(g for item in args.groups for g in item.split(",") if g)
    identity = Identity(args.sub, None, groups, "policy-check", None)
    session = service.open_session(identity, args.target)
    analysis = service.analyze(args.sql, ("public",))
    result: dict[str, Any]
    if session is None:
        result = {
            "verdict": "refused at login",
            "reason": f"no policy grants groups {sorted(groups)} access to {args.target!r}",
        }
    else:
        decision = session.judge(
            Statement(args.sql, Dialect.POSTGRES, StatementSource.SIMPLE, args.target)
        )
        result = {
            "verdict": decision.verdict.value,
            "policy": decision.policy,
            "rule": decision.rule,
            "reason": decision.reason,
        }
    if isinstance(analysis, SqlParseError):
        result["analysis"] = {"error": str(analysis)}
    else:
        result["analysis"] = [
            {
                "text": a.text,
                "category": a.category.value,
                "operations": sorted(a.operations),
                "tables": sorted(a.tables),
                "functions": sorted(a.functions),
            }
            for a in analysis
        ]
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        rule = result.get("rule")
        where = f" (policy {result.get('policy')!r}, {'rule ' + str(rule) if rule else 'default'})"
        print(
            f"{str(result['verdict']).upper()}{where if 'policy' in result else ''}: "
            f"{result['reason']}"
        )
        for item in result["analysis"] if isinstance(result["analysis"], list) else []:
            print(
                f"  {item['category']:<10} {','.join(item['operations'])}  "
                f"tables={','.join(item['tables']) or '-'} "
                f"functions={','.join(item['functions']) or '-'}"
            )
        if isinstance(result["analysis"], dict):
            print(f"  parse error: {result['analysis']['error']}")
    return 0


def cmd_policy_lint(args: argparse.Namespace) -> int:
    from sqlgate.config import load_config
    from sqlgate.policy.lint import lint

    problems = lint(load_config(args.config))
    for problem in problems:
        print(problem)
    if not problems:
        print(f"{args.config}: no problems found")
    return 1 if problems else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sqlgate",
        description="A database access gateway: OIDC login, statement policy, PII masking, "
        "approvals and recording for PostgreSQL and MySQL clients.",
    )
    parser.add_argument("--version", action="version", version=f"sqlgate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", "-c", required=True, help="path to sqlgate.yaml")
    serve.add_argument("--workers", type=int, default=None,
                       help="worker processes sharing the port (default: server.workers, "
                       "whose default 0 means one per CPU core)")
    serve.set_defaults(func=cmd_serve)

    token = sub.add_parser("token", help="mint a development token (identity.dev_issuer only)")
    token.add_argument("--config", "-c", required=True, help="path to sqlgate.yaml")
    token.add_argument("--sub", required=True, help="subject (who the token is for)")
    token.add_argument(
        "--groups", action="append", default=[], help="group(s), comma-separated or repeated"
    )
    token.add_argument("--email", default=None)
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    token.set_defaults(func=cmd_token)

    policy = sub.add_parser("policy", help="check statements against the policy, lint it")
    psub = policy.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    check = psub.add_parser("check", help="show the decision for one statement")
    check.add_argument("--config", "-c", required=True)
    check.add_argument("--groups", action="append", default=[])
    check.add_argument("--sub", default="policy-check")
    check.add_argument("--target", required=True)
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.add_argument("sql")
    check.set_defaults(func=cmd_policy_check)
    lint = psub.add_parser("lint", help="report unreachable rules and unknown names")
    lint.add_argument("--config", "-c", required=True)
    lint.set_defaults(func=cmd_policy_lint)

    from sqlgate.approvals.cli import add_arguments as add_approval_commands
    from sqlgate.audit.cli import add_arguments as add_audit_commands
    from sqlgate.recording.cli import add_arguments as add_recording_commands

    add_approval_commands(sub)
    add_audit_commands(sub)
    add_recording_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except SqlgateError as exc:
        print(f"sqlgate: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
