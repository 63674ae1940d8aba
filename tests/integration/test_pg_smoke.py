from __future__ import annotations

import psycopg

from tests.support.gateway import RunningGateway


def test_psycopg_select_through_gateway(gateway: RunningGateway, human_token: str) -> None:
    with psycopg.connect(gateway.dsn(human_token)) as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (3,)
