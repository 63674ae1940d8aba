"""`sqlgate approvals list|show|approve|deny`: the approvals API from a terminal.

The token comes from `--token` or `SQLGATE_TOKEN` and is only ever sent to the server, never
printed. The server is `--url`, else `SQLGATE_URL`, else the config's `listen.admin` when
`--config` is given, else http://127.0.0.1:8080.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import httpx

from sqlgate.errors import SqlgateError
from sqlgate.store.approvals import ApprovalStatus

DEFAULT_URL = "http://127.0.0.1:8080"
_SQL_COLUMN = 60


def add_arguments(subparsers: Any) -> None:
    """Add `approvals list|show|approve|deny` to the `sqlgate` parser's subcommands."""
    approvals = subparsers.add_parser(
        "approvals", help="list, show, approve or deny statements waiting for review"
    )
    actions = approvals.add_subparsers(dest="approvals_command", metavar="ACTION", required=True)

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--url", help=f"sqlgate admin URL (default: {DEFAULT_URL})")
        parser.add_argument(
            "--config", "-c", help="sqlgate.yaml, to take the URL from listen.admin"
        )
        parser.add_argument("--token", help="your OIDC token (default: $SQLGATE_TOKEN)")
        parser.add_argument("--timeout", type=float, default=10.0, help="HTTP timeout in seconds")
        parser.add_argument("--json", action="store_true", help="print the server's JSON")

    listing = actions.add_parser("list", help="requests, newest first (default: pending)")
    common(listing)
    listing.add_argument(
        "--status",
        default="pending",
        choices=["all", *(s.value for s in ApprovalStatus)],
        help="which requests (default: pending)",
    )
    listing.add_argument("--limit", type=int, default=100)
    listing.set_defaults(func=cmd_list)

    show = actions.add_parser("show", help="one request in full")
    common(show)
    show.add_argument("id")
    show.set_defaults(func=cmd_show)

    approve = actions.add_parser("approve", help="let the statement run")
    common(approve)
    approve.add_argument("id")
    approve.add_argument("--reason", "-m", default=None, help="why (recorded and shown)")
    approve.set_defaults(func=cmd_approve)

    deny = actions.add_parser("deny", help="refuse the statement")
    common(deny)
    deny.add_argument("id")
    deny.add_argument("--reason", "-m", required=True, help="why (the requester sees it)")
    deny.set_defaults(func=cmd_deny)


def cmd_list(args: argparse.Namespace) -> int:
    found = _call(args, "GET", "/api/approvals", params={"status": args.status,
                                                         "limit": str(args.limit)})  # fmt: skip
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    items = found.get("approvals", [])
    if not items:
        print(f"no {'' if args.status == 'all' else args.status + ' '}approval requests")
        return 0
    print(f"{'ID':<32}  {'STATUS':<9}  {'AGE':>5}  {'REQUESTED BY':<24}  {'TARGET':<10}  SQL")
    for item in items:
        sql = " ".join(str(item.get("sql", "")).split())
        if len(sql) > _SQL_COLUMN:
            sql = sql[: _SQL_COLUMN - 3] + "..."
        print(
            f"{item['id']:<32}  {item['status']:<9}  {_age(item.get('created_at')):>5}  "
            f"{_who(item.get('requested_by')):<24}  {item.get('target', ''):<10}  {sql}"
        )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    _print_one(args, _call(args, "GET", f"/api/approvals/{_id(args.id)}"))
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    return _decide(args, "approve")


def cmd_deny(args: argparse.Namespace) -> int:
    return _decide(args, "deny")


def _decide(args: argparse.Namespace, action: str) -> int:
    body = {"reason": args.reason} if args.reason else {}
    result = _call(args, "POST", f"/api/approvals/{_id(args.id)}/{action}", body=body)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"request {result['id']} {result['status']}")
    return 0


def _print_one(args: argparse.Namespace, item: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(item, indent=2))
        return
    rule = "default" if item.get("rule") is None else f"rule {item['rule']}"
    lines = [
        ("id", item["id"]),
        ("status", item["status"]),
        ("requested by", _who(item.get("requested_by"), full=True)),
        ("target", item.get("target")),
        ("policy", f"{item.get('policy')} {rule}: {item.get('rule_reason')}"),
        ("created", item.get("created_at")),
        ("expires", item.get("expires_at")),
    ]
    if item.get("decided_at"):
        lines += [
            ("decided by", _who(item.get("decided_by"), full=True) or "-"),
            ("decided", item.get("decided_at")),
            ("reason", item.get("reason") or "-"),
        ]
    for label, value in lines:
        print(f"{label + ':':<14}{value}")
    print()
    print(item.get("sql", ""))


def _id(value: str) -> str:
    if not value or any(c in value for c in "/?#% "):
        raise SqlgateError(f"{value!r} is not an approval request id")
    return value


def _who(person: Any, full: bool = False) -> str:
    if not isinstance(person, dict):
        return ""
    name = str(person.get("email") or person.get("sub") or "")
    if full and person.get("email") and person.get("sub"):
        name = f"{person['email']} (sub {person['sub']})"
    return name


def _age(created_at: Any) -> str:
    import datetime as dt

    try:
        seconds = time.time() - dt.datetime.fromisoformat(str(created_at)).timestamp()
    except ValueError:
        return "?"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{max(0, int(seconds))}s"


def server_url(args: argparse.Namespace) -> str:
    """--url, $SQLGATE_URL, the config's listen.admin, or the default, without a final /."""
    if getattr(args, "url", None):
        return str(args.url).rstrip("/")
    if os.environ.get("SQLGATE_URL"):
        return os.environ["SQLGATE_URL"].rstrip("/")
    if getattr(args, "config", None):
        from sqlgate.config import load_config

        from .views import admin_url

        url = admin_url(load_config(args.config), local=True)
        if url is None:
            raise SqlgateError(f"{args.config}: listen.admin is off; give the server with --url")
        return url
    return DEFAULT_URL


def _token(args: argparse.Namespace) -> str:
    token = (getattr(args, "token", None) or os.environ.get("SQLGATE_TOKEN") or "").strip()
    if not token:
        raise SqlgateError(
            "no token: pass --token or set SQLGATE_TOKEN to an OIDC token of an approver "
            "(with identity.dev_issuer: `sqlgate token --config ... --sub you --groups dba`)"
        )
    return token


def _call(
    args: argparse.Namespace,
    method: str,
    path: str,
    *,
    params: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
) -> Any:
    """One API request; every failure becomes a SqlgateError that says what to do."""
    base = server_url(args)
    headers = {"Authorization": f"Bearer {_token(args)}", "Accept": "application/json"}
    try:
        with httpx.Client(base_url=base, timeout=args.timeout) as client:
            response = client.request(method, path, params=params, json=body, headers=headers)
    except httpx.HTTPError as exc:
        raise SqlgateError(
            f"cannot reach sqlgate at {base} ({type(exc).__name__}): is the gateway running "
            "and is that its admin address? (--url, --config)"
        ) from None
    try:
        document = response.json()
    except ValueError:
        document = None
    message = document.get("error") if isinstance(document, dict) else None
    message = message or response.text.strip()[:200] or response.reason_phrase
    if response.status_code == 401:
        raise SqlgateError(
            f"the server did not accept your token (401: {message}); get a fresh OIDC token "
            "and pass it with --token or SQLGATE_TOKEN"
        )
    if response.status_code == 403:
        raise SqlgateError(f"not allowed (403): {message}")
    if response.status_code == 404:
        if document is None:
            raise SqlgateError(
                f"{base}{path} was not found (404): is {base} a sqlgate admin address "
                "with approvals enabled?"
            )
        raise SqlgateError(f"not found (404): {message}; `sqlgate approvals list` shows them")
    if response.status_code == 409:
        raise SqlgateError(f"too late (409): {message}; nothing was changed")
    if response.status_code >= 400:
        raise SqlgateError(f"the server refused the request ({response.status_code}): {message}")
    if document is None:
        raise SqlgateError(f"{base} did not answer with JSON: is it a sqlgate admin address?")
    return document


def main(argv: list[str] | None = None) -> int:
    """Run `approvals ...` on its own (the gateway's CLI hooks `add_arguments` instead)."""
    parser = argparse.ArgumentParser(prog="sqlgate")
    add_arguments(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except SqlgateError as exc:
        print(f"sqlgate: {exc}", file=sys.stderr)
        return 2
