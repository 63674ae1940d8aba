"""Login with tokens from a real OIDC issuer on loopback (discovery + JWKS over HTTP)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from joserfc.jwk import RSAKey

from tests.integration.conftest import POLICIES
from tests.support.gateway import gateway_yaml, start_gateway
from tests.support.pgserver import PgServer
from tests.unit.identity._support import FakeIdp, default_claims, sign


def test_idp_tokens_rotation_and_outage(pg_server: PgServer, tmp_path: Path) -> None:
    old_key = RSAKey.generate_key(2048, parameters={"kid": "k-old"})
    new_key = RSAKey.generate_key(2048, parameters={"kid": "k-new"})
    idp = FakeIdp()
    idp.publish(old_key)
    text = gateway_yaml(pg_server.port, tmp_path, policies=POLICIES).replace(
        "  dev_issuer: true\n",
        f"  oidc:\n    issuer: {idp.issuer}\n    audience: sqlgate\n"
        "    groups_claim: realm_access.roles\n    algorithms: [RS256]\n"
        "    jwks_min_refresh_seconds: 0\n",
    )
    gateway = start_gateway(text)
    try:
        def login(key: RSAKey) -> tuple[object, ...] | None:
            claims = default_claims(idp.issuer, realm_access={"roles": ["engineering"]})
            with psycopg.connect(gateway.dsn(sign(key, claims))) as conn:
                return conn.execute("SELECT 1").fetchone()

        assert login(old_key) == (1,)
        assert idp.discovery_requests == 1

        idp.publish(new_key)  # the IdP rotates; sqlgate is not restarted
        assert login(new_key) == (1,)

        idp.stop()  # the IdP goes down: known keys keep working, unknown ones never do
        assert login(new_key) == (1,)
        stranger = RSAKey.generate_key(2048, parameters={"kid": "k-stranger"})
        with pytest.raises(psycopg.OperationalError, match="authentication failed"):
            login(stranger)
    finally:
        gateway.stop()
        idp.stop()
