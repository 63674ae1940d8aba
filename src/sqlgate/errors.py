"""The exception hierarchy: every error sqlgate raises on purpose derives from SqlgateError.

Protocol errors, authentication failures, policy refusals and config errors are distinct
types so that callers can answer each the right way (close the connection, send 28P01,
send 42501, refuse to start).
"""

from __future__ import annotations


class SqlgateError(Exception):
    """Root of all sqlgate errors."""


class ConfigError(SqlgateError):
    """The configuration is invalid; the message names the file, the key and what is expected."""


class ProtocolError(SqlgateError):
    """The peer sent bytes that break the wire protocol; the connection must end."""


class AuthenticationFailed(SqlgateError):
    """A client could not be authenticated.

    `reason` is for logs and the audit trail only; the client sees a short generic message so
    that a probe learns nothing about which check failed.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BackendError(SqlgateError):
    """The gateway could not connect or authenticate to the target database server."""
