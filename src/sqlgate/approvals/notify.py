"""Tell people about new requests and decisions: signed JSON webhooks and Slack messages.

Delivery happens in the background, in order per sink, with retries, so a slow or dead
endpoint never delays or fails the statement or the decision it reports. Webhook URLs (a
Slack one is a secret) and signing keys never reach the logs: a sink is logged by scheme and
host only.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from sqlgate import __version__
from sqlgate.config import Config
from sqlgate.errors import ConfigError
from sqlgate.store.approvals import Approval

from .views import admin_url, approval_json, iso

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Sqlgate-Signature"
_SLACK_SQL_LIMIT = 2800  # a Slack section block holds at most 3000 characters


class ApprovalEvent(StrEnum):
    REQUESTED = "approval.requested"
    APPROVED = "approval.approved"
    DENIED = "approval.denied"
    EXPIRED = "approval.expired"
    CANCELLED = "approval.cancelled"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One POST to make, rendered once so every retry sends (and signs) the same bytes."""

    event: ApprovalEvent
    sink: str
    url: str
    body: bytes
    headers: dict[str, str]


class Sink(Protocol):
    label: str

    def render(
        self, event: ApprovalEvent, approval: Approval, link: str | None, delivery_id: str
    ) -> Delivery: ...


def sign(secret: bytes, body: bytes) -> str:
    """The `X-Sqlgate-Signature` value: `sha256=` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def _label(kind: str, url: str) -> str:
    parts = urlsplit(url)
    return f"{kind} {parts.scheme}://{parts.hostname or '?'}"


class WebhookSink:
    """A JSON POST of the event and the full approval object, HMAC-signed when a secret is set."""

    def __init__(self, url: str, secret: bytes | None = None) -> None:
        self.url = url
        self.label = _label("webhook", url)
        self._secret = secret

    def render(
        self, event: ApprovalEvent, approval: Approval, link: str | None, delivery_id: str
    ) -> Delivery:
        document = {
            "event": event.value,
            "delivery_id": delivery_id,
            "sent_at": iso(time.time()),
            "approval": approval_json(approval),
            "url": link,
        }
        body = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"sqlgate/{__version__}",
            "X-Sqlgate-Event": event.value,
            "X-Sqlgate-Delivery": delivery_id,
        }
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._secret, body)
        return Delivery(event, self.label, self.url, body, headers)


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(event: ApprovalEvent, approval: Approval, link: str | None) -> dict[str, Any]:
    """A Slack incoming-webhook payload: headline, the statement, and where to decide."""
    who = _slack_escape(approval.requester_email or approval.requester_sub)
    rule = "default" if approval.rule is None else f"rule {approval.rule}"
    decider = approval.decided_by or {}
    decided = _slack_escape(str(decider.get("email") or decider.get("sub") or "?"))
    because = _slack_escape(approval.decision_reason or "no reason given")
    target = _slack_escape(approval.target)
    headline = {
        ApprovalEvent.REQUESTED: f":hourglass: *Approval requested* by *{who}* on `{target}`",
        ApprovalEvent.APPROVED: f":white_check_mark: *Approved* by *{decided}*: {because}",
        ApprovalEvent.DENIED: f":no_entry: *Denied* by *{decided}*: {because}",
        ApprovalEvent.EXPIRED: ":alarm_clock: *Expired* without a decision",
        ApprovalEvent.CANCELLED: f":heavy_multiplication_x: *Cancelled*: {because}",
    }[event]
    policy = _slack_escape(f"policy {approval.policy or '?'} {rule}: {approval.reason}")
    sql = approval.sql.replace("```", "` ` `")
    if len(sql) > _SLACK_SQL_LIMIT:
        sql = sql[:_SLACK_SQL_LIMIT] + "\n... (truncated)"
    where = f"<{link}|request {approval.id}>" if link else f"request `{approval.id}`"
    footer = f"{where} from {who} on `{target}`"
    if event is ApprovalEvent.REQUESTED:
        footer += (
            f" · `sqlgate approvals approve {approval.id}` or "
            f"`sqlgate approvals deny {approval.id} --reason ...`"
        )
    return {
        "text": f"sqlgate {event.value.split('.')[1]}: request {approval.id} by {who}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"{headline}\n{policy}"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"```{_slack_escape(sql)}```"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": footer}]},
        ],
    }


class SlackSink:
    """A Slack incoming webhook; the URL is the secret, so it comes from an environment variable."""

    def __init__(self, url: str, env_name: str = "slack") -> None:
        self.url = url
        self.label = f"slack (${env_name})"

    def render(
        self, event: ApprovalEvent, approval: Approval, link: str | None, delivery_id: str
    ) -> Delivery:
        body = json.dumps(slack_message(event, approval, link), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "User-Agent": f"sqlgate/{__version__}"}
        return Delivery(event, self.label, self.url, body, headers)


def _env(name: str, key: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ConfigError(f"{key}: environment variable {name} is not set")
    return value


def sinks_from_config(config: Config) -> list[Sink]:
    """The configured notifiers; a named environment variable that is unset is a ConfigError."""
    sinks: list[Sink] = []
    for index, item in enumerate(config.approvals.notify):
        key = f"approvals.notify[{index}]"
        if item.webhook is not None:
            secret = None
            if item.secret_env is not None:
                secret = _env(item.secret_env, f"{key}.secret_env").encode()
            sinks.append(WebhookSink(item.webhook, secret))
        elif item.slack_webhook_env is not None:
            url = _env(item.slack_webhook_env, f"{key}.slack_webhook_env")
            sinks.append(SlackSink(url, item.slack_webhook_env))
    return sinks


@dataclass(slots=True)
class _Lane:
    """One sink's queue: events reach a sink in the order they happened, and a dead sink
    retrying delays only its own deliveries."""

    sink: Sink
    queue: asyncio.Queue[Delivery]
    task: asyncio.Task[None] | None = None


class Notifier:
    """A bounded queue per sink and a background task per sink posting with retries.

    `publish` never blocks and never raises: when a queue is full the event is dropped and
    counted, because the decision path must not wait for a chat server.
    """

    def __init__(
        self,
        sinks: Sequence[Sink],
        *,
        link_base: str | None = None,
        attempts: int = 4,
        backoff: float = 1.0,
        timeout: float = 5.0,
        queue_size: int = 1000,
    ) -> None:
        self.sinks = list(sinks)
        self._lanes = [_Lane(sink, asyncio.Queue(queue_size)) for sink in self.sinks]
        self._link_base = link_base
        self._attempts = max(1, attempts)
        self._backoff = backoff
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None
        self.delivered = 0
        self.failed = 0
        self.dropped = 0

    @classmethod
    def from_config(cls, config: Config, **options: Any) -> Notifier:
        """Sinks from `approvals.notify`, links to the request under the admin URL."""
        return cls(sinks_from_config(config), link_base=admin_url(config, local=False), **options)

    def link(self, approval_id: str) -> str | None:
        return None if self._link_base is None else f"{self._link_base}/api/approvals/{approval_id}"

    def publish(self, event: ApprovalEvent, approval: Approval) -> None:
        """Queue the event for every sink; returns at once."""
        delivery_id = uuid.uuid4().hex
        for lane in self._lanes:
            try:
                delivery = lane.sink.render(event, approval, self.link(approval.id), delivery_id)
                lane.queue.put_nowait(delivery)
            except asyncio.QueueFull:
                self.dropped += 1
                logger.warning(
                    "approval notification queue is full: dropped %s for %s", event, lane.sink.label
                )
            except Exception:
                logger.exception("cannot render the %s notification for %s", event, lane.sink.label)

    async def start(self) -> None:
        if self._client is None and self._lanes:
            self._client = httpx.AsyncClient(timeout=self._timeout, follow_redirects=False)
            for lane in self._lanes:
                lane.task = asyncio.create_task(self._run(lane), name="sqlgate-approval-notify")

    async def drain(self) -> None:
        """Wait until everything queued so far was delivered or given up on."""
        if self._client is not None:
            await asyncio.gather(*(lane.queue.join() for lane in self._lanes))

    async def close(self, grace: float = 5.0) -> None:
        """Give queued deliveries `grace` seconds, then stop."""
        if self._client is None:
            return
        try:
            async with asyncio.timeout(grace):
                await self.drain()
        except TimeoutError:
            left = sum(lane.queue.qsize() for lane in self._lanes)
            logger.warning("stopping with %d approval notification(s) undelivered", left)
        tasks = [lane.task for lane in self._lanes if lane.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for lane in self._lanes:
            lane.task = None
        await self._client.aclose()
        self._client = None

    async def _run(self, lane: _Lane) -> None:
        while True:
            delivery = await lane.queue.get()
            try:
                if await self._deliver(delivery):
                    self.delivered += 1
                else:
                    self.failed += 1
            except Exception:
                self.failed += 1
                logger.exception("approval notification to %s failed", delivery.sink)
            finally:
                lane.queue.task_done()

    async def _deliver(self, delivery: Delivery) -> bool:
        assert self._client is not None
        for attempt in range(1, self._attempts + 1):
            try:
                response = await self._client.post(
                    delivery.url, content=delivery.body, headers=delivery.headers
                )
            except httpx.HTTPError as exc:
                # The exception text can quote the URL, which may be a secret: type name only.
                problem, retry = type(exc).__name__, True
            else:
                if response.is_success:
                    return True
                code = response.status_code
                problem, retry = f"HTTP {code}", code >= 500 or code in (408, 429)
            if not retry or attempt == self._attempts:
                logger.warning(
                    "approval notification %s to %s failed after %d attempt(s): %s",
                    delivery.event, delivery.sink, attempt, problem,
                )  # fmt: skip
                return False
            await asyncio.sleep(self._backoff * 2 ** (attempt - 1))
        return False
