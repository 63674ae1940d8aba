"""Shared real servers for integration tests: one PostgreSQL per session, gateways per module."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support.gateway import RunningGateway, gateway_yaml, start_gateway
from tests.support.pgserver import PgServer, start_pg_server

SVC_PASSWORD = secrets.token_hex(12)
os.environ["SQLGATE_TEST_SVC_PASSWORD"] = SVC_PASSWORD
os.environ.setdefault("SQLGATE_TEST_MASK_KEY", secrets.token_hex(32))

SEED = """
CREATE TABLE users (id serial PRIMARY KEY, name text, email text, ssn text, phone text,
                    card text, created_at timestamptz DEFAULT now());
INSERT INTO users (name, email, ssn, phone, card) VALUES
  ('Alice Archer', 'alice@example.com', '123-45-6789', '+1 415 555 0101', '4111111111111111'),
  ('Bob Baker', 'bob@example.org', '478-65-4321', '+1 212 555 0199', '5500005555555559'),
  ('Carol Chen', 'carol@example.net', '555-12-3456', '+44 20 7946 0958', '340000000000009');
CREATE VIEW user_contacts AS SELECT id, name AS full_name, email FROM users;
CREATE VIEW contacts_again AS SELECT c.id, c.email AS mail FROM user_contacts c;
CREATE MATERIALIZED VIEW user_emails AS SELECT id, lower(email) AS e FROM users;
CREATE FUNCTION email_of(uid int) RETURNS text LANGUAGE sql AS 'SELECT email FROM users WHERE id = uid';
CREATE TABLE orders (id serial PRIMARY KEY, user_id int REFERENCES users(id), amount numeric);
INSERT INTO orders (user_id, amount) SELECT 1 + (g % 3), g FROM generate_series(1, 100) g;
"""

POLICIES = """
  - name: ai-agents
    when: {groups: [code-assistant], targets: [app]}
    rules:
      - {action: block, operations: [drop_database, drop_schema, drop_table, truncate], reason: destructive commands are not allowed}
      - {action: block, categories: [dcl]}
      - {action: block, functions: [pg_read_file, pg_read_binary_file, lo_export, lo_import, "dblink*", pg_terminate_backend]}
      - {action: block, operations: [update_without_where, delete_without_where]}
      - {action: review, categories: [ddl]}
      - {action: allow, categories: [read, write, tcl, session, copy_out, copy_in]}
    default: block
  - name: masked-agents
    when: {groups: [pii-agent]}
    rules:
      - {action: allow, categories: [read, tcl, session, copy_out]}
    masks:
      - {columns: [public.users.email, public.users.card], strategy: redact}
      - {columns: ["*.ssn"], strategy: partial, keep_last: 4}
      - {columns: [users.phone], strategy: partial, keep_last: 4}
      - {columns: [public.users.name], strategy: hash}
      - {columns: [public.orders.user_id], strategy: hash}
    default: block
  - name: masked-open-agents
    when: {groups: [pii-open]}
    inference: "off"  # masking alone, so result shapes can be tested
    rules:
      - {action: allow, categories: [read, tcl, session, copy_out]}
    masks:
      - {columns: [public.users.email, public.users.card], strategy: redact}
      - {columns: ["*.ssn"], strategy: partial, keep_last: 4}
      - {columns: [users.phone], strategy: partial, keep_last: 4}
      - {columns: [public.users.name], strategy: hash}
      - {columns: [public.orders.user_id], strategy: hash}
    default: block
  - name: strict-agents
    when: {groups: [strict-agent]}
    inference: strict
    rules:
      - {action: allow, categories: [read, tcl, session]}
    masks:
      - {columns: [public.users.email], strategy: redact}
    default: block
  - name: loose-agents
    when: {groups: [loose-agent]}
    inference: "off"
    rules:
      - {action: allow, categories: [read, tcl, session]}
    masks:
      - {columns: [public.users.email], strategy: redact}
    default: block
  - name: masked-writers
    when: {groups: [pii-writer]}
    inference: "off"
    rules:
      - {action: allow, categories: [read, write, ddl, tcl, session]}
    masks:
      - {columns: [public.users.email, "*.ssn"], strategy: redact}
    default: block
  - name: detecting-agents
    when: {groups: [detector-agent]}
    rules:
      - {action: allow, categories: [read, tcl, session]}
    detectors: [email, credit_card, ssn, phone]
    default: block
  - name: humans
    when: {groups: [engineering]}
    rules:
      - {action: allow, categories: [read, write, ddl, tcl, session, copy_out, copy_in, procedural, admin]}
    default: allow
"""


def seed_app_database(server: PgServer) -> None:
    server.create_role("sqlgate_svc", SVC_PASSWORD)
    server.create_database("app", owner="sqlgate_svc")
    with psycopg.connect(
        server.dsn(user="sqlgate_svc", password=SVC_PASSWORD, dbname="app"), autocommit=True
    ) as conn:
        conn.execute(SEED)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    server = start_pg_server(tmp_path_factory.mktemp("pg"), auth="scram-sha-256")
    try:
        seed_app_database(server)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def gateway(
    pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    work: Path = tmp_path_factory.mktemp("gw")
    running = start_gateway(gateway_yaml(pg_server.port, work, policies=POLICIES))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def human_token(gateway: RunningGateway) -> str:
    return gateway.token("erin", ["engineering"], email="erin@corp.example")


@pytest.fixture(scope="session")
def agent_token(gateway: RunningGateway) -> str:
    return gateway.token("agent-7", ["code-assistant"])


@pytest.fixture(scope="session")
def pii_token(gateway: RunningGateway) -> str:
    return gateway.token("agent-pii", ["pii-agent"])


@pytest.fixture(scope="session")
def pii_open_token(gateway: RunningGateway) -> str:
    """An identity with the same masks but no inference checks: for result-shape tests."""
    return gateway.token("agent-pii-open", ["pii-open"])
