"""The gateway's login to a PostgreSQL server: md5, cleartext and SCRAM-SHA-256 against scramp."""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Callable

import pytest
import scramp

from sqlgate.errors import BackendError
from sqlgate.protocols.postgres import messages as m
from sqlgate.protocols.postgres.server_auth import ServerAuthExchange, md5_password

from .pg_samples import split_frame

SCRAM = "SCRAM-SHA-256"
SALT = b"\x01\x02\x03\x04"


def over_the_wire(message: m.Authentication) -> m.Authentication:
    """Encode an Authentication message as a server would send it and decode it again."""
    decoded = m.decode_backend(*split_frame(message.encode()))
    assert isinstance(decoded, type(message))
    return decoded


def password_payload(raw: bytes | None) -> bytes:
    """The payload of the 'p' message the exchange answered with."""
    assert raw is not None
    type_code, payload = split_frame(raw)
    assert type_code == ord("p")
    return payload


def parse_sasl_initial(payload: bytes) -> tuple[str, bytes]:
    mechanism, _, rest = payload.partition(b"\x00")
    (length,) = struct.unpack("!i", rest[:4])
    data = rest[4:]
    assert length == len(data)
    return mechanism.decode(), data


# ---------------------------------------------------------------------------------------------
# md5 and cleartext


def expected_md5(user: str, password: str, salt: bytes) -> str:
    inner = hashlib.md5(password.encode("utf-8") + user.encode("utf-8")).hexdigest()
    return "md5" + hashlib.md5(inner.encode("ascii") + salt).hexdigest()


def test_md5_password_matches_independent_computation() -> None:
    assert md5_password("postgres", "secret", SALT) == expected_md5("postgres", "secret", SALT)


def test_md5_password_matches_known_vector() -> None:
    assert md5_password("postgres", "secret", SALT) == "md5bb41a296aab6baccb36ff243a562abff"


def test_md5_password_depends_on_salt_and_user() -> None:
    base = md5_password("postgres", "secret", SALT)
    assert md5_password("postgres", "secret", b"\x04\x03\x02\x01") != base
    assert md5_password("admin", "secret", SALT) != base


def test_md5_password_encodes_non_ascii_user_and_password_as_utf8() -> None:
    assert md5_password("jürgen", "pässwörd", SALT) == expected_md5("jürgen", "pässwörd", SALT)


def test_md5_request_is_answered_with_nul_terminated_hash_password_message() -> None:
    exchange = ServerAuthExchange("postgres", "secret")
    raw = exchange.respond(over_the_wire(m.AuthenticationMD5Password(SALT)))
    assert password_payload(raw) == expected_md5("postgres", "secret", SALT).encode() + b"\x00"
    assert m.decode_frontend(*split_frame(raw or b"")) == m.PasswordMessage(
        b"md5bb41a296aab6baccb36ff243a562abff\x00"
    )
    assert not exchange.done


def test_cleartext_request_is_answered_with_the_password() -> None:
    exchange = ServerAuthExchange("postgres", "pässwörd")
    raw = exchange.respond(over_the_wire(m.AuthenticationCleartextPassword()))
    assert password_payload(raw) == "pässwörd".encode() + b"\x00"


def test_empty_configured_password_is_still_a_password() -> None:
    raw = ServerAuthExchange("postgres", "").respond(m.AuthenticationCleartextPassword())
    assert password_payload(raw) == b"\x00"


@pytest.mark.parametrize(
    "request_",
    [
        m.AuthenticationCleartextPassword(),
        m.AuthenticationMD5Password(SALT),
        m.AuthenticationSASL((SCRAM,)),
    ],
    ids=["cleartext", "md5", "scram"],
)
def test_password_request_without_configured_password_names_the_user(
    request_: m.Authentication,
) -> None:
    exchange = ServerAuthExchange("reporting_bot", None)
    with pytest.raises(BackendError, match="'reporting_bot'") as info:
        exchange.respond(request_)
    assert "no password is configured" in str(info.value)
    assert not exchange.done


# ---------------------------------------------------------------------------------------------
# Outcome and unsupported methods


def test_authentication_ok_sets_done_and_sends_nothing() -> None:
    exchange = ServerAuthExchange("postgres", None)
    assert exchange.done is False
    assert exchange.respond(over_the_wire(m.AuthenticationOk())) is None
    assert exchange.done is True


def test_password_exchange_is_not_done_until_authentication_ok() -> None:
    exchange = ServerAuthExchange("postgres", "secret")
    exchange.respond(m.AuthenticationMD5Password(SALT))
    assert exchange.done is False
    exchange.respond(m.AuthenticationOk())
    assert exchange.done is True


@pytest.mark.parametrize("code", [2, 7, 8, 9])
def test_unsupported_method_raises_backend_error_naming_the_code(code: int) -> None:
    exchange = ServerAuthExchange("postgres", "secret")
    with pytest.raises(BackendError, match=f"code {code}"):
        exchange.respond(over_the_wire(m.AuthenticationOther(code, b"")))


# ---------------------------------------------------------------------------------------------
# SCRAM-SHA-256 against a real scramp server


class ScramServer:
    """scramp's server side, holding the verifier PostgreSQL would store for `password`."""

    def __init__(self, password: str) -> None:
        mechanism = scramp.ScramMechanism(SCRAM)
        self.auth_info: tuple[bytes, bytes, bytes, int] = mechanism.make_auth_info(
            password, iteration_count=4096
        )
        self.usernames: list[str] = []
        self.server = mechanism.make_server(self._lookup)

    def _lookup(self, username: str) -> tuple[bytes, bytes, bytes, int]:
        self.usernames.append(username)
        return self.auth_info


def start_scram(exchange: ServerAuthExchange, server: ScramServer) -> tuple[str, bytes]:
    """Offer SASL; feed the client-first to the server; return (mechanism, client-first)."""
    offer = over_the_wire(m.AuthenticationSASL(("SCRAM-SHA-256-PLUS", SCRAM)))
    mechanism, client_first = parse_sasl_initial(password_payload(exchange.respond(offer)))
    server.server.set_client_first(client_first.decode())
    return mechanism, client_first


def continue_scram(exchange: ServerAuthExchange, server: ScramServer) -> bytes:
    """Send the server-first; return the client-final the exchange answered with."""
    server_first = server.server.get_server_first().encode()
    answer = exchange.respond(over_the_wire(m.AuthenticationSASLContinue(server_first)))
    return password_payload(answer)


def test_full_scram_exchange_is_accepted_by_the_server_and_verifies_it() -> None:
    server = ScramServer("correct horse ✓")
    exchange = ServerAuthExchange("gateway", "correct horse ✓")

    mechanism, client_first = start_scram(exchange, server)
    assert mechanism == SCRAM
    assert client_first.startswith(b"n,,")
    assert server.usernames == ["gateway"]

    client_final = continue_scram(exchange, server)
    server.server.set_client_final(client_final.decode())  # raises if the proof is wrong

    server_final = server.server.get_server_final().encode()
    assert server_final.startswith(b"v=")
    assert exchange.respond(over_the_wire(m.AuthenticationSASLFinal(server_final))) is None
    assert exchange.done is False
    assert exchange.respond(over_the_wire(m.AuthenticationOk())) is None
    assert exchange.done is True


def test_scram_client_proof_is_rejected_by_a_server_holding_another_password() -> None:
    server = ScramServer("the real password")
    exchange = ServerAuthExchange("gateway", "a wrong password")
    start_scram(exchange, server)
    client_final = continue_scram(exchange, server)
    with pytest.raises(scramp.ScramException):
        server.server.set_client_final(client_final.decode())


def test_wrong_server_signature_raises_backend_error() -> None:
    server = ScramServer("secret")
    exchange = ServerAuthExchange("gateway", "secret")
    start_scram(exchange, server)
    server.server.set_client_final(continue_scram(exchange, server).decode())
    genuine = server.server.get_server_final()
    forged = "v=" + base64.b64encode(hashlib.sha256(b"impostor").digest()).decode()
    assert forged != genuine
    with pytest.raises(BackendError, match="SCRAM verification"):
        exchange.respond(over_the_wire(m.AuthenticationSASLFinal(forged.encode())))
    assert exchange.done is False


def test_server_final_error_attribute_raises_backend_error() -> None:
    server = ScramServer("secret")
    exchange = ServerAuthExchange("gateway", "secret")
    start_scram(exchange, server)
    continue_scram(exchange, server)
    with pytest.raises(BackendError):
        exchange.respond(m.AuthenticationSASLFinal(b"e=invalid-proof"))


def test_server_first_with_a_nonce_not_extending_ours_raises_backend_error() -> None:
    exchange = ServerAuthExchange("gateway", "secret")
    exchange.respond(m.AuthenticationSASL((SCRAM,)))
    bogus = b"r=not-our-nonce,s=" + base64.b64encode(b"salt") + b",i=4096"
    with pytest.raises(BackendError, match="SCRAM exchange"):
        exchange.respond(m.AuthenticationSASLContinue(bogus))


def test_server_first_that_is_not_utf8_raises_backend_error() -> None:
    exchange = ServerAuthExchange("gateway", "secret")
    exchange.respond(m.AuthenticationSASL((SCRAM,)))
    with pytest.raises(BackendError):
        exchange.respond(m.AuthenticationSASLContinue(b"r=\xff\xfe"))


def test_server_final_that_is_not_utf8_raises_backend_error() -> None:
    server = ScramServer("secret")
    exchange = ServerAuthExchange("gateway", "secret")
    start_scram(exchange, server)
    continue_scram(exchange, server)
    with pytest.raises(BackendError):
        exchange.respond(m.AuthenticationSASLFinal(b"v=\xff"))


@pytest.mark.parametrize(
    "mechanisms",
    [(), ("SCRAM-SHA-256-PLUS",), ("SCRAM-SHA-1", "OAUTHBEARER"), ("scram-sha-256",)],
    ids=["none", "plus-only", "others", "lowercase"],
)
def test_sasl_without_scram_sha_256_raises_backend_error(mechanisms: tuple[str, ...]) -> None:
    exchange = ServerAuthExchange("gateway", "secret")
    with pytest.raises(BackendError, match=SCRAM):
        exchange.respond(over_the_wire(m.AuthenticationSASL(mechanisms)))


@pytest.mark.parametrize(
    "make",
    [lambda: m.AuthenticationSASLContinue(b"r=x"), lambda: m.AuthenticationSASLFinal(b"v=x")],
    ids=["continue", "final"],
)
def test_sasl_step_before_sasl_started_raises_backend_error(
    make: Callable[[], m.Authentication],
) -> None:
    exchange = ServerAuthExchange("gateway", "secret")
    with pytest.raises(BackendError, match="before SASL started"):
        exchange.respond(make())


def test_each_scram_login_uses_a_fresh_client_nonce() -> None:
    firsts = set()
    for _ in range(3):
        exchange = ServerAuthExchange("gateway", "secret")
        raw = exchange.respond(m.AuthenticationSASL((SCRAM,)))
        firsts.add(parse_sasl_initial(password_payload(raw))[1])
    assert len(firsts) == 3
