"""The one typed configuration model, loaded from YAML.

Defaults live here and only here. Unknown keys are errors that name the key and the line of
the file, because a silently ignored typo in a security policy is a hole.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from sqlgate.errors import ConfigError


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def is_loopback(host: str) -> bool:
    """True for loopback addresses (127.0.0.0/8, ::1) and the name `localhost`."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _parse_hostport(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    host = host.strip("[]") or "0.0.0.0"
    number = int(port)
    if not 0 <= number <= 65535:
        raise ValueError(f"port {number} is out of range 0-65535")
    return host, number


class Address(str):
    """A `host:port` listener address, validated on load."""

    @property
    def host(self) -> str:
        return _parse_hostport(self)[0]

    @property
    def port(self) -> int:
        return _parse_hostport(self)[1]


def _address(value: object) -> Address:
    if not isinstance(value, str):
        raise ValueError("expected a HOST:PORT string")
    _parse_hostport(value)
    return Address(value)


class ListenConfig(_Model):
    postgres: str | None = "127.0.0.1:6432"
    mysql: str | None = None
    admin: str | None = "127.0.0.1:8080"

    @field_validator("postgres", "mysql", "admin")
    @classmethod
    def _check(cls, value: str | None) -> str | None:
        return None if value is None else _address(value)

    def address(self, name: Literal["postgres", "mysql", "admin"]) -> tuple[str, int] | None:
        value = getattr(self, name)
        return None if value is None else _parse_hostport(value)


class TlsConfig(_Model):
    cert: Path | None = None
    key: Path | None = None
    allow_plaintext_on_loopback: bool = False

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if (self.cert is None) != (self.key is None):
            raise ValueError(
                "tls.cert and tls.key go together: set both, or neither for a self-signed one"
            )
        return self


#: Signature algorithms a token may use. Symmetric (HS*) and `none` are absent on purpose.
ASYMMETRIC_ALGORITHMS: tuple[str, ...] = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
    "EdDSA", "Ed25519", "Ed448",
)  # fmt: skip


class OidcConfig(_Model):
    issuer: str
    audience: str | list[str]
    jwks_uri: str | None = None
    groups_claim: str = "groups"
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])
    leeway_seconds: int = Field(default=30, ge=0, le=600)
    jwks_min_refresh_seconds: float = Field(default=30.0, ge=0)
    jwks_max_age_seconds: float = Field(default=3600.0, gt=0)
    http_timeout_seconds: float = Field(default=5.0, gt=0)
    ca_file: Path | None = None  # trust this CA for the IdP's HTTPS instead of the bundled roots

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        allowed = set(ASYMMETRIC_ALGORITHMS)
        bad = [a for a in value if a not in allowed]
        if bad or not value:
            raise ValueError(
                f"unsupported algorithms {bad or value}: use asymmetric ones "
                f"({', '.join(sorted(allowed))}); 'none' and HMAC algorithms are never accepted"
            )
        return value


class ExpiryAction(StrEnum):
    CLOSE = "close"
    KEEP = "keep"


class IdentityConfig(_Model):
    oidc: OidcConfig | None = None
    on_expiry: ExpiryAction = ExpiryAction.CLOSE
    dev_issuer: bool = False
    dev_issuer_key_file: Path = Path(".sqlgate/dev-issuer-key.json")
    dev_issuer_force: bool = False
    failed_logins_per_minute: int = Field(default=20, ge=1)

    @model_validator(mode="after")
    def _some_issuer(self) -> IdentityConfig:
        if self.oidc is None and not self.dev_issuer:
            raise ValueError("configure identity.oidc (your IdP) or identity.dev_issuer: true")
        return self


class StoreConfig(_Model):
    url: str = "sqlite:///sqlgate.db"
    queue_size: int = Field(default=10000, ge=1)
    on_full: Literal["block", "drop"] = "block"
    batch_size: int = Field(default=500, ge=1)
    flush_interval_seconds: float = Field(default=0.05, ge=0)
    pool_size: int = Field(default=4, ge=1)
    purge_interval_seconds: float = Field(default=3600, gt=0)


class AuditConfig(_Model):
    sink: Literal["none", "stdout", "syslog"] = "none"
    retention_days: float | None = Field(default=None, gt=0)
    readers: list[str] = Field(default_factory=list)  # empty: the approvers' groups


class RecordingConfig(_Model):
    enabled: bool = True
    max_rows_per_statement: int = Field(default=100, ge=0)
    retention_days: float | None = Field(default=None, gt=0)


class TargetKind(StrEnum):
    POSTGRES = "postgres"
    MYSQL = "mysql"


class BackendTls(StrEnum):
    DISABLE = "disable"
    PREFER = "prefer"
    REQUIRE = "require"
    VERIFY_FULL = "verify-full"


class Credentials(_Model):
    """A server login held by the gateway; the password is read once at load, never logged."""

    user: str
    password: SecretStr | None = None
    password_env: str | None = None
    password_file: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Credentials:
        sources = [
            s for s in (self.password, self.password_env, self.password_file) if s is not None
        ]
        if len(sources) > 1:
            raise ValueError("give only one of password, password_env, password_file")
        return self

    def secret(self) -> str | None:
        """The password, read from where the config says; None for passwordless (trust) logins."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ConfigError(
                    f"environment variable {self.password_env} (password for server user "
                    f"{self.user!r}) is not set"
                )
            return value
        if self.password_file is not None:
            try:
                return self.password_file.read_text().rstrip("\r\n")
            except OSError as exc:
                raise ConfigError(
                    f"cannot read password_file {self.password_file}: {exc.strerror}"
                ) from None
        return None


class TargetConfig(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    kind: TargetKind = TargetKind.POSTGRES
    host: str
    port: int = Field(default=5432, ge=1, le=65535)
    database: str
    tls: BackendTls = BackendTls.PREFER
    tls_ca_file: Path | None = None
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    credentials: Credentials
    credentials_by_group: dict[str, Credentials] = Field(default_factory=dict)

    def credentials_for(self, groups: frozenset[str]) -> Credentials:
        """The least-privilege login for these groups: the first matching group in config order."""
        for group, creds in self.credentials_by_group.items():
            if group in groups:
                return creds
        return self.credentials


class MaskStrategy(StrEnum):
    REDACT = "redact"
    PARTIAL = "partial"
    HASH = "hash"
    NULL = "null"
    EMAIL = "email"


class MaskRule(_Model):
    columns: list[str] = Field(min_length=1)
    strategy: MaskStrategy = MaskStrategy.REDACT
    keep_first: int = Field(default=0, ge=0)
    keep_last: int = Field(default=0, ge=0)


class MaskingConfig(_Model):
    hash_key_env: str | None = None
    redact_marker: str = "****"


class NotifierConfig(_Model):
    webhook: str | None = None
    secret_env: str | None = None
    slack_webhook_env: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> NotifierConfig:
        if (self.webhook is None) == (self.slack_webhook_env is None):
            raise ValueError("a notifier is either `webhook: URL` or `slack_webhook_env: VAR`")
        return self


class ApprovalsConfig(_Model):
    mode: Literal["hold", "defer"] = "hold"
    timeout_seconds: float = Field(default=900, gt=0)
    grant_ttl_seconds: float = Field(default=3600, gt=0)
    approvers: list[str] = Field(default_factory=list)
    notify: list[NotifierConfig] = Field(default_factory=list)


class Action(StrEnum):
    ALLOW = "allow"
    BLOCK = "block"
    REVIEW = "review"


class RuleConfig(_Model):
    action: Action
    categories: list[str] = Field(default_factory=list)
    operations: list[str] = Field(default_factory=list)
    tables: list[str] = Field(default_factory=list)
    functions: list[str] = Field(default_factory=list)
    statement_regex: str | None = None
    reason: str | None = None

    @field_validator("statement_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"statement_regex does not compile: {exc}") from None
        return value

    @model_validator(mode="after")
    def _matches_something(self) -> RuleConfig:
        if not (
            self.categories
            or self.operations
            or self.tables
            or self.functions
            or self.statement_regex
        ):
            raise ValueError(
                "a rule needs at least one of categories, operations, tables, functions, "
                "statement_regex (use the policy's `default` for a catch-all)"
            )
        return self


class PolicyWhen(_Model):
    groups: list[str] = Field(default_factory=list)
    targets: list[str] = Field(default_factory=list)
    subjects: list[str] = Field(default_factory=list)

    def matches(self, groups: frozenset[str], subject: str, target: str) -> bool:
        """Empty lists match everything; a non-empty list needs one hit (globs allowed)."""
        if self.groups and not any(
            fnmatch.fnmatchcase(g, pat) for pat in self.groups for g in groups
        ):
            return False
        if self.targets and not any(fnmatch.fnmatchcase(target, pat) for pat in self.targets):
            return False
        return not self.subjects or any(fnmatch.fnmatchcase(subject, p) for p in self.subjects)


class PolicyConfig(_Model):
    name: str
    when: PolicyWhen = Field(default_factory=PolicyWhen)
    rules: list[RuleConfig] = Field(default_factory=list)
    masks: list[MaskRule] = Field(default_factory=list)
    detectors: list[str] = Field(default_factory=list)
    default: Action = Action.BLOCK
    inference: Literal["strict", "equality", "off"] = "equality"
    on_unknown: Literal["mask", "block"] = "mask"


class LimitsConfig(_Model):
    max_message_bytes: int = Field(default=1 << 30, ge=1024)
    max_startup_bytes: int = Field(default=10_000, ge=256, le=1 << 20)
    auth_timeout_seconds: float = Field(default=30.0, gt=0)
    max_connections: int = Field(default=10_000, ge=1)


class LoggingConfig(_Model):
    level: Literal["debug", "info", "warning", "error"] = "info"
    json_format: bool = Field(default=False, alias="json")


class ApiConfig(_Model):
    admin_groups: list[str] = Field(default_factory=list)  # empty: the approvers' groups


class ServerConfig(_Model):
    shutdown_grace_seconds: float = Field(default=30.0, ge=0)
    workers: int = Field(default=0, ge=0)  # 0: one worker process per CPU core


class Config(_Model):
    listen: ListenConfig = Field(default_factory=ListenConfig)
    tls: TlsConfig = Field(default_factory=TlsConfig)
    identity: IdentityConfig
    store: StoreConfig = Field(default_factory=StoreConfig)
    targets: Annotated[list[TargetConfig], Field(min_length=1)]
    masking: MaskingConfig = Field(default_factory=MaskingConfig)
    approvals: ApprovalsConfig = Field(default_factory=ApprovalsConfig)
    policies: list[PolicyConfig] = Field(default_factory=list)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    recording: RecordingConfig = Field(default_factory=RecordingConfig)

    @property
    def admin_groups(self) -> frozenset[str]:
        return frozenset(self.api.admin_groups or self.approvals.approvers)

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        for kind, names in (
            ("target", [t.name for t in self.targets]),
            ("policy", [p.name for p in self.policies]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"duplicate {kind} names: {', '.join(dupes)}")
        return self

    def target(self, name: str) -> TargetConfig | None:
        for target in self.targets:
            if target.name == name:
                return target
        return None


# ---------------------------------------------------------------------------------------------
# Loading with line numbers


def _compose_with_lines(text: str, source: str) -> tuple[Any, dict[tuple[str | int, ...], int]]:
    """Parse YAML and remember the line of every key and list item, for error messages."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    lines: dict[tuple[str | int, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str | int, ...]) -> None:
        lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = (*path, str(key.value))
                walk(value, child)
                lines[child] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*path, index))

    if root is not None:
        walk(root, ())
    data = yaml.safe_load(text)
    return data, lines


def _line_for(loc: tuple[str | int, ...], lines: dict[tuple[str | int, ...], int]) -> int | None:
    for end in range(len(loc), -1, -1):
        line = lines.get(loc[:end])
        if line is not None:
            return line
    return None


def parse_config(text: str, source: str = "<config>") -> Config:
    """Validate YAML text into a Config; errors name the source, the line and the key."""
    data, lines = _compose_with_lines(text, source)
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: the top level must be a mapping of sections (listen, targets, ...)"
        )
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(
                p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))
            )
            key = ".".join(str(p) for p in loc) or "(top level)"
            line = _line_for(loc, lines)
            where = f"{source}:{line}" if line else source
            if err["type"] == "extra_forbidden":
                message = "unknown key (check the spelling; see docs/configuration.md)"
            else:
                message = err["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {key}: {message}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from None


def load_config(path: str | Path) -> Config:
    """Read and validate a config file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    return parse_config(text, str(path))
