"""The configuration contract: the example loads, mistakes name their file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlgate.config import BackendTls, load_config, parse_config
from sqlgate.errors import ConfigError
from sqlgate.runtime import check_dev_issuer_safety, check_secrets

EXAMPLE = Path(__file__).resolve().parents[2].parent / "shared" / "spec" / "sqlgate.example.yaml"

MINIMAL = """identity: {dev_issuer: true}
targets:
  - name: app
    host: 127.0.0.1
    database: app
    credentials: {user: u, password: p}
"""


def test_example_config_contract_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_DB_PASSWORD", "secret-1")
    monkeypatch.setenv("APP_RO_PASSWORD", "secret-2")
    config = load_config(EXAMPLE)
    target = config.target("app")
    assert target is not None and target.tls is BackendTls.PREFER
    assert target.credentials.secret() == "secret-1"
    assert target.credentials_for(frozenset({"code-assistant"})).user == "app_readonly"
    assert target.credentials_for(frozenset({"other"})).user == "sqlgate_svc"
    assert [p.name for p in config.policies] == ["ai-agents", "humans"]
    assert config.listen.address("postgres") == ("127.0.0.1", 6432)
    assert config.approvals.mode == "hold" and config.approvals.timeout_seconds == 900


def test_unknown_key_names_file_line_and_key() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(MINIMAL + "    colour: blue\n", "gw.yaml")
    assert "gw.yaml:7: targets.0.colour: unknown key" in str(info.value)


def test_wrong_type_says_what_is_expected() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(MINIMAL.replace("host: 127.0.0.1", "host: 127.0.0.1\n    port: many"),
                     "gw.yaml")
    assert "gw.yaml:5: targets.0.port:" in str(info.value)
    assert "integer" in str(info.value)


def test_hmac_and_none_algorithms_are_refused() -> None:
    text = MINIMAL.replace("identity: {dev_issuer: true}",
                           "identity:\n  oidc: {issuer: https://i, audience: a, algorithms: [HS256]}")
    with pytest.raises(ConfigError, match="never accepted"):
        parse_config(text)


def test_missing_password_env_fails_at_start_with_its_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NOPE_PASSWORD", raising=False)
    config = parse_config(MINIMAL.replace("password: p", "password_env: NOPE_PASSWORD"))
    with pytest.raises(ConfigError, match="NOPE_PASSWORD"):
        check_secrets(config)


def test_password_file_is_read_and_secret_never_in_repr(tmp_path: Path) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text("s3cret-value\n")
    config = parse_config(MINIMAL.replace("password: p", f"password_file: {secret_file}"))
    assert config.targets[0].credentials.secret() == "s3cret-value"
    inline = parse_config(MINIMAL.replace("password: p", "password: inline-secret"))
    assert "inline-secret" not in repr(inline) and "inline-secret" not in str(inline)


def test_dev_issuer_refused_on_public_listener_unless_forced() -> None:
    exposed = parse_config("listen: {postgres: 0.0.0.0:6432}\n" + MINIMAL)
    with pytest.raises(ConfigError, match="development only"):
        check_dev_issuer_safety(exposed)
    forced = parse_config("listen: {postgres: 0.0.0.0:6432}\n" + MINIMAL.replace(
        "{dev_issuer: true}", "{dev_issuer: true, dev_issuer_force: true}"))
    check_dev_issuer_safety(forced)
    check_dev_issuer_safety(parse_config(MINIMAL))


def test_identity_needs_an_issuer() -> None:
    with pytest.raises(ConfigError, match=r"identity\.oidc"):
        parse_config(MINIMAL.replace("identity: {dev_issuer: true}", "identity: {}"))


def test_duplicate_target_names_are_refused() -> None:
    doubled = MINIMAL + MINIMAL.split("targets:\n")[1]
    with pytest.raises(ConfigError, match="duplicate target names: app"):
        parse_config(doubled)
