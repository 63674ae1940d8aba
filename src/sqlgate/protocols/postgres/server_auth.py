"""The gateway's side of authenticating to a PostgreSQL server (SCRAM-SHA-256, md5, cleartext).

Sans-IO: feed each Authentication message the server sends, get back the bytes to answer with.
The password is the gateway's own credential for the target; it never comes from the client.
"""

from __future__ import annotations

import hashlib

import scramp

from sqlgate.errors import BackendError
from sqlgate.protocols.postgres.messages import (
    Authentication,
    AuthenticationCleartextPassword,
    AuthenticationMD5Password,
    AuthenticationOk,
    AuthenticationOther,
    AuthenticationSASL,
    AuthenticationSASLContinue,
    AuthenticationSASLFinal,
    PasswordMessage,
    sasl_initial_response,
    sasl_response,
)

_SCRAM = "SCRAM-SHA-256"


def md5_password(user: str, password: str, salt: bytes) -> str:
    """PostgreSQL's md5 response: md5(md5(password + user) + salt), hex, prefixed."""
    inner = hashlib.md5((password + user).encode()).hexdigest()
    return "md5" + hashlib.md5(inner.encode() + salt).hexdigest()


class ServerAuthExchange:
    """Answers a server's authentication requests for one login."""

    def __init__(self, user: str, password: str | None) -> None:
        self._user = user
        self._password = password
        self._scram: scramp.ScramClient | None = None
        self.done = False

    def _need_password(self, method: str) -> str:
        if self._password is None:
            raise BackendError(
                f"the server asks for {method} authentication but no password is configured "
                f"for server user {self._user!r}: set credentials.password_env or password_file"
            )
        return self._password

    def respond(self, message: Authentication) -> bytes | None:
        """Bytes to send back, or None when nothing is to be sent."""
        if isinstance(message, AuthenticationOk):
            self.done = True
            return None
        if isinstance(message, AuthenticationCleartextPassword):
            password = self._need_password("password")
            return PasswordMessage(password.encode() + b"\x00").encode()
        if isinstance(message, AuthenticationMD5Password):
            password = self._need_password("md5")
            response = md5_password(self._user, password, message.salt)
            return PasswordMessage(response.encode() + b"\x00").encode()
        if isinstance(message, AuthenticationSASL):
            if _SCRAM not in message.mechanisms:
                raise BackendError(
                    f"the server offers SASL mechanisms {list(message.mechanisms)}; "
                    f"sqlgate speaks {_SCRAM}"
                )
            password = self._need_password(_SCRAM)
            self._scram = scramp.ScramClient([_SCRAM], self._user, password)
            return sasl_initial_response(_SCRAM, self._scram.get_client_first().encode())
        if isinstance(message, AuthenticationSASLContinue):
            if self._scram is None:
                raise BackendError("server sent SASLContinue before SASL started")
            try:
                self._scram.set_server_first(message.data.decode())
            except (scramp.ScramException, UnicodeDecodeError) as exc:
                raise BackendError(f"SCRAM exchange with the server failed: {exc}") from None
            return sasl_response(self._scram.get_client_final().encode())
        if isinstance(message, AuthenticationSASLFinal):
            if self._scram is None:
                raise BackendError("server sent SASLFinal before SASL started")
            try:
                self._scram.set_server_final(message.data.decode())
            except (scramp.ScramException, UnicodeDecodeError) as exc:
                # A wrong server signature means we are not talking to the real server.
                raise BackendError(f"the server failed SCRAM verification: {exc}") from None
            return None
        assert isinstance(message, AuthenticationOther)
        raise BackendError(
            f"the server asks for an authentication method sqlgate does not support "
            f"(code {message.code}); use scram-sha-256, md5, password or trust for the "
            "gateway's login"
        )
