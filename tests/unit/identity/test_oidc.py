"""TokenValidator against a real loopback IdP: what it accepts, and why it refuses the rest."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc.jwk import ECKey, KeySet, OctKey, RSAKey

from sqlgate.config import OidcConfig
from sqlgate.core import Identity
from sqlgate.errors import AuthenticationFailed
from sqlgate.identity import (
    MAX_TOKEN_BYTES,
    JwksCache,
    MultiIssuerValidator,
    StaticKeys,
    TokenValidator,
)

from ._support import (
    AUDIENCE,
    UNSET,
    FakeIdp,
    b64,
    default_claims,
    sign,
    sign_raw,
    unsigned,
)

DUPLICATE_ALG = b'{"alg": "RS256", "alg": "none"}'


async def refused(validator: TokenValidator, token: str) -> str:
    with pytest.raises(AuthenticationFailed) as info:
        await validator.validate(token)
    return info.value.reason


def public(key: RSAKey | ECKey) -> RSAKey | ECKey:
    return type(key).import_key(key.as_dict(private=False))


# --- accepted tokens -------------------------------------------------------------------------


async def test_rs256_token_gives_identity(
    validator: TokenValidator, idp: FakeIdp, rsa_key: RSAKey
) -> None:
    claims = default_claims(idp.issuer)
    identity = await validator.validate(sign(rsa_key, claims))
    assert identity == Identity(
        subject="agent-1",
        email="agent1@example.com",
        groups=frozenset({"analysts", "readers"}),
        issuer=idp.issuer,
        expires_at=float(claims["exp"]),
    )
    assert identity.claims == claims


async def test_es256_token_validates(
    validator: TokenValidator, idp: FakeIdp, ec_key: ECKey
) -> None:
    identity = await validator.validate(sign(ec_key, default_claims(idp.issuer, sub="es-agent")))
    assert identity.subject == "es-agent"


async def test_groups_from_realm_access_roles(
    cache: JwksCache, idp: FakeIdp, rsa_key: RSAKey
) -> None:
    config = OidcConfig(issuer=idp.issuer, audience=AUDIENCE, groups_claim="realm_access.roles")
    validator = TokenValidator(config, cache)
    claims = default_claims(idp.issuer, groups=UNSET, realm_access={"roles": ["dba", "ops"]})
    identity = await validator.validate(sign(rsa_key, claims))
    assert identity.groups == {"dba", "ops"}


@pytest.mark.parametrize(
    ("value", "groups"),
    [
        ("analysts", {"analysts"}),
        ("data team, read only", {"data team, read only"}),  # a string is ONE group
        (["a", "b", "a"], {"a", "b"}),
        (["a", 7, None, {"x": 1}, ""], {"a"}),  # non-string items are ignored
        ([], set()),
        ({"roles": ["a"]}, set()),
        (42, set()),
        (True, set()),
    ],
)
async def test_group_claim_shapes(
    validator: TokenValidator, idp: FakeIdp, rsa_key: RSAKey, value: Any, groups: set[str]
) -> None:
    identity = await validator.validate(sign(rsa_key, default_claims(idp.issuer, groups=value)))
    assert identity.groups == groups


async def test_missing_group_claim_means_no_groups(
    validator: TokenValidator, idp: FakeIdp, rsa_key: RSAKey
) -> None:
    identity = await validator.validate(sign(rsa_key, default_claims(idp.issuer, groups=UNSET)))
    assert identity.groups == frozenset()


async def test_namespaced_group_claim_with_dots_is_read_verbatim(
    cache: JwksCache, idp: FakeIdp, rsa_key: RSAKey
) -> None:
    claim = "https://sqlgate.example.com/roles"
    config = OidcConfig(issuer=idp.issuer, audience=AUDIENCE, groups_claim=claim)
    validator = TokenValidator(config, cache)
    identity = await validator.validate(sign(rsa_key, default_claims(idp.issuer, **{claim: "x"})))
    assert identity.groups == {"x"}


async def test_unverified_email_is_dropped_and_username_is_not_an_email(
    validator: TokenValidator, idp: FakeIdp, rsa_key: RSAKey
) -> None:
    claims = default_claims(idp.issuer, email_verified=False)
    assert (await validator.validate(sign(rsa_key, claims))).email is None
    claims = default_claims(idp.issuer, email=UNSET, preferred_username="boss@example.com")
    identity = await validator.validate(sign(rsa_key, claims))
    assert identity.email is None
    assert identity.display == "agent-1"


@pytest.mark.parametrize(
    ("token_aud", "config_aud"),
    [
        ("sqlgate", "sqlgate"),
        (["account", "sqlgate"], "sqlgate"),
        ("sqlgate", ["other", "sqlgate"]),
        (["a", "b"], ["b", "c"]),
    ],
)
async def test_any_audience_overlap_is_accepted(
    cache: JwksCache,
    idp: FakeIdp,
    rsa_key: RSAKey,
    token_aud: str | list[str],
    config_aud: str | list[str],
) -> None:
    validator = TokenValidator(OidcConfig(issuer=idp.issuer, audience=config_aud), cache)
    identity = await validator.validate(sign(rsa_key, default_claims(idp.issuer, aud=token_aud)))
    assert identity.subject == "agent-1"


async def test_token_without_kid_uses_the_only_fitting_key(idp: FakeIdp, rsa_key: RSAKey) -> None:
    config = OidcConfig(issuer=idp.issuer, audience=AUDIENCE)
    validator = TokenValidator(config, StaticKeys([public(rsa_key)]))
    token = sign(rsa_key, default_claims(idp.issuer), kid=UNSET)
    assert (await validator.validate(token)).subject == "agent-1"


async def test_token_without_kid_is_refused_when_several_keys_fit(
    idp: FakeIdp, rsa_key: RSAKey, rsa_key_2: RSAKey, ec_key: ECKey
) -> None:
    config = OidcConfig(issuer=idp.issuer, audience=AUDIENCE)
    # one RSA and one EC key: an ES256 token without kid is unambiguous, an RS256 one is not
    validator = TokenValidator(config, StaticKeys([public(ec_key), public(rsa_key)]))
    assert await validator.validate(sign(ec_key, default_claims(idp.issuer), kid=UNSET))
    validator = TokenValidator(config, StaticKeys([public(rsa_key), public(rsa_key_2)]))
    token = sign(rsa_key, default_claims(idp.issuer), kid=UNSET)
    assert await refused(validator, token) == "missing kid"


# --- refused tokens --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"exp": -100}, "expired"),
        ({"nbf": +600}, "not yet valid"),
        ({"iat": +600}, "issued in the future"),
        ({"aud": "someone-else"}, "wrong audience"),
        ({"aud": ["a", "b"]}, "wrong audience"),
        ({"aud": []}, "wrong audience"),
        ({"aud": [["sqlgate"]]}, "wrong audience"),
        ({"aud": UNSET}, "missing claim: aud"),
        ({"iss": "https://evil.example.com"}, "wrong issuer"),
        ({"iss": UNSET}, "missing claim: iss"),
        ({"exp": UNSET}, "missing claim: exp"),
        ({"exp": "tomorrow"}, "invalid claim: exp"),
        ({"exp": True}, "invalid claim: exp"),
        ({"nbf": [1]}, "invalid claim: nbf"),
        ({"sub": UNSET}, "missing claim: sub"),
        ({"sub": ""}, "invalid claim: sub"),
        ({"sub": 42}, "invalid claim: sub"),
    ],
)
async def test_bad_claims_are_refused(
    validator: TokenValidator,
    idp: FakeIdp,
    rsa_key: RSAKey,
    overrides: dict[str, Any],
    reason: str,
) -> None:
    now = int(time.time())
    for name in ("exp", "nbf", "iat"):
        if isinstance(overrides.get(name), int) and not isinstance(overrides[name], bool):
            overrides = {**overrides, name: now + overrides[name]}
    claims = default_claims(idp.issuer, **overrides)
    assert await refused(validator, sign(rsa_key, claims)) == reason


@pytest.mark.parametrize(
    ("shift", "name", "reason"),
    [
        (-20, "exp", None),
        (-31, "exp", "expired"),
        (-30, "exp", "expired"),  # exp is the first instant the token is no longer valid
        (+20, "nbf", None),
        (+31, "nbf", "not yet valid"),
        (+20, "iat", None),
        (+31, "iat", "issued in the future"),
    ],
)
async def test_leeway_is_honoured(
    cache: JwksCache, idp: FakeIdp, rsa_key: RSAKey, shift: int, name: str, reason: str | None
) -> None:
    now = 1_800_000_000.0
    config = OidcConfig(issuer=idp.issuer, audience=AUDIENCE, leeway_seconds=30)
    validator = TokenValidator(config, cache, clock=lambda: now)
    claims = default_claims(idp.issuer, iat=int(now), nbf=int(now), exp=int(now) + 300)
    claims[name] = int(now) + shift
    token = sign(rsa_key, claims)
    if reason is None:
        assert (await validator.validate(token)).subject == "agent-1"
    else:
        assert await refused(validator, token) == reason


async def test_token_signed_by_another_key_with_the_same_kid_is_refused(
    validator: TokenValidator, idp: FakeIdp, impostor_key: RSAKey
) -> None:
    assert impostor_key.kid == "rsa-1"
    assert await refused(validator, sign(impostor_key, default_claims(idp.issuer))) == (
        "bad signature"
    )


async def test_tampered_payload_is_refused(
    validator: TokenValidator, idp: FakeIdp, rsa_key: RSAKey
) -> None:
    header, _, signature = sign(rsa_key, default_claims(idp.issuer)).split(".")
    forged = b64(default_claims(idp.issuer, groups=["admins"]))
    assert await refused(validator, f"{header}.{forged}.{signature}") == "bad signature"


async def test_alg_none_is_refused_before_any_key_lookup(
    validator: TokenValidator, cache: JwksCache, idp: FakeIdp
) -> None:
    fetches = idp.jwks_requests
    for alg in ("none", "None", "NONE"):
        token = unsigned({"alg": alg, "kid": "rsa-1", "typ": "JWT"}, default_claims(idp.issuer))
        assert await refused(validator, token) == "algorithm not allowed"
    token = unsigned({"alg": "none", "kid": "no-such-kid"}, default_claims(idp.issuer))
    assert await refused(validator, token) == "algorithm not allowed"
    assert idp.jwks_requests == fetches


async def test_hs256_signed_with_the_rsa_public_key_pem_is_refused(
    idp: FakeIdp, cache: JwksCache, rsa_key: RSAKey
) -> None:
    pem = rsa_key.as_pem(private=False)
    header = b64({"alg": "HS256", "kid": "rsa-1", "typ": "JWT"})
    payload = b64(default_claims(idp.issuer))
    mac = hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    token = f"{header}.{payload}.{b64(mac)}"
    # Even a config that slipped HS256 past the config model's own check does not accept it.
    sneaky = OidcConfig.model_construct(
        **{
            **OidcConfig(issuer=idp.issuer, audience=AUDIENCE).model_dump(),
            "algorithms": ["HS256", "RS256"],
        }
    )
    for config in (OidcConfig(issuer=idp.issuer, audience=AUDIENCE), sneaky):
        assert await refused(TokenValidator(config, cache), token) == "algorithm not allowed"


async def test_key_of_the_wrong_family_is_never_used(
    validator: TokenValidator, idp: FakeIdp, ec_key: ECKey
) -> None:
    # An ES256 header pointing at the RSA key's kid: the key exists but cannot serve ES256.
    token = sign(ec_key, default_claims(idp.issuer), kid="rsa-1")
    assert await refused(validator, token) == "key does not fit algorithm"


async def test_algorithm_outside_the_configured_list_is_refused(
    validator: TokenValidator, idp: FakeIdp, rsa_key: RSAKey
) -> None:
    token = sign(rsa_key, default_claims(idp.issuer), alg="PS256")
    assert await refused(validator, token) == "algorithm not allowed"


async def test_unknown_kid_is_refused(
    validator: TokenValidator, idp: FakeIdp, rsa_key_2: RSAKey
) -> None:
    assert await refused(validator, sign(rsa_key_2, default_claims(idp.issuer))) == "unknown key"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("", "empty token"),
        ("garbage", "malformed token"),
        ("a.b", "malformed token"),
        ("a.b.c", "malformed token"),
        ("...", "malformed token"),
        ("a.b.c.d.e", "malformed token"),  # compact JWE: not supported
        ("ëyJ.ëyJ.ëyJ", "malformed token"),
        (f"{b64(b'not json')}.e30.c2ln", "malformed token"),
        (f"{b64(b'[1, 2]')}.e30.c2ln", "malformed token"),
        (f"{b64(DUPLICATE_ALG)}.e30.c2ln", "malformed token"),
        (f"{b64(b'[' * 5000)}.e30.c2ln", "malformed token"),
        (f"{b64({'kid': 'rsa-1'})}.e30.c2ln", "algorithm not allowed"),
        (f"{b64({'alg': 'RS256', 'kid': 7})}.e30.c2ln", "malformed token"),
        (f"{b64({'alg': 'RS256', 'kid': 'rsa-1'})}..c2ln", "malformed token"),
        (f"{b64({'alg': 'RS256', 'kid': 'rsa-1'})}.e30.", "malformed token"),
        (f"{b64({'alg': 'RS256', 'kid': 'rsa-1'})}.e30.c2ln", "bad signature"),
    ],
)
async def test_garbage_is_refused(validator: TokenValidator, token: str, reason: str) -> None:
    assert await refused(validator, token) == reason


async def test_oversize_token_is_refused_before_parsing(validator: TokenValidator) -> None:
    assert await refused(validator, "a" * (MAX_TOKEN_BYTES + 1)) == "token too large"


async def test_jws_extensions_and_foreign_token_types_are_refused(
    validator: TokenValidator, idp: FakeIdp, rsa_key: RSAKey
) -> None:
    claims = default_claims(idp.issuer)
    crit = unsigned({"alg": "RS256", "kid": "rsa-1", "crit": ["exp"], "exp": 1}, claims, b"x")
    assert await refused(validator, crit) == "unsupported header: crit"
    b64_off = unsigned({"alg": "RS256", "kid": "rsa-1", "b64": False}, claims, b"x")
    assert await refused(validator, b64_off) == "unsupported header: b64"
    logout = sign(rsa_key, claims, typ="logout+jwt")
    assert await refused(validator, logout) == "wrong token type"
    for typ in ("JWT", "at+jwt", "application/at+JWT"):
        assert await validator.validate(sign(rsa_key, claims, typ=typ))


@pytest.mark.parametrize(
    "payload",
    [
        b'{"iss": "%s", "aud": "sqlgate", "sub": "a", "exp": Infinity}',
        b'{"iss": "%s", "aud": "sqlgate", "sub": "a", "exp": NaN}',
        b'{"iss": "%s", "aud": "sqlgate", "sub": "a", "exp": 1e999}',
        b'{"iss": "%s", "aud": "sqlgate", "sub": "a", "exp": 9999999999, "sub": "admin"}',
        b'["%s"]',
    ],
)
async def test_claims_json_must_be_strict(
    validator: TokenValidator, idp: FakeIdp, rsa_key: RSAKey, payload: bytes
) -> None:
    token = sign_raw(rsa_key, payload.replace(b"%s", idp.issuer.encode()))
    assert await refused(validator, token) in {"malformed token", "invalid claim: exp"}


async def test_symmetric_key_in_jwks_is_never_used(idp: FakeIdp, rsa_key: RSAKey) -> None:
    secret = OctKey.import_key(b"s" * 32, parameters={"kid": "shared"})
    idp.publish(rsa_key, secret)
    config = OidcConfig(issuer=idp.issuer, audience=AUDIENCE)
    cache = JwksCache(config)
    await cache.start()
    try:
        assert cache.index is not None and cache.index.kids == {"rsa-1"}
        validator = TokenValidator(config, cache)
        header = b64({"alg": "RS256", "kid": "shared"})
        payload = b64(default_claims(idp.issuer))
        token = f"{header}.{payload}.{b64(b'x' * 256)}"
        assert await refused(validator, token) == "unknown key"
    finally:
        await cache.aclose()


@pytest.mark.filterwarnings("ignore:Key size should be >= 2048 bits")
async def test_weak_rsa_keys_are_not_trusted(idp: FakeIdp) -> None:
    weak = RSAKey.generate_key(1024, parameters={"kid": "weak"})
    strong = ECKey.generate_key("P-256", parameters={"kid": "ok"})
    validator = TokenValidator(
        OidcConfig(issuer=idp.issuer, audience=AUDIENCE),
        StaticKeys([public(weak), public(strong)]),
    )
    assert await refused(validator, sign(weak, default_claims(idp.issuer))) == "unknown key"


# --- several issuers -------------------------------------------------------------------------


async def test_multi_issuer_routes_by_issuer(
    validator: TokenValidator, idp: FakeIdp, rsa_key: RSAKey, ec_key: ECKey
) -> None:
    other_issuer = "http://127.0.0.1:1/dev-issuer"
    other_key = ECKey.generate_key("P-256", parameters={"kid": "dev"})
    other = TokenValidator(
        OidcConfig(issuer=other_issuer, audience=AUDIENCE), StaticKeys([public(other_key)])
    )
    both = MultiIssuerValidator([validator, other])
    assert (await both.validate(sign(rsa_key, default_claims(idp.issuer)))).issuer == idp.issuer
    dev = await both.validate(sign(other_key, default_claims(other_issuer)))
    assert dev.issuer == other_issuer
    # a token naming one issuer but signed by the other's key is still refused
    with pytest.raises(AuthenticationFailed, match="unknown key"):
        await both.validate(sign(ec_key, default_claims(other_issuer)))
    with pytest.raises(AuthenticationFailed, match="wrong issuer"):
        await both.validate(sign(rsa_key, default_claims("https://nobody.example.com")))


# --- properties ------------------------------------------------------------------------------


def _static_validator(issuer: str, key: RSAKey) -> TokenValidator:
    return TokenValidator(
        OidcConfig(issuer=issuer, audience=AUDIENCE), StaticKeys(KeySet([public(key)]))
    )


_segment = st.binary(max_size=120).map(b64)
_headers = st.fixed_dictionaries(
    {"alg": st.sampled_from(["RS256", "ES256", "none", "HS256", "PS256"])},
    optional={"kid": st.sampled_from(["k", "rsa-1", ""]), "typ": st.text(max_size=8)},
).map(b64)
_tokens = st.one_of(
    st.text(max_size=300),
    st.lists(_segment, min_size=1, max_size=6).map(".".join),
    st.tuples(_headers, _segment, _segment).map(".".join),
)


@settings(max_examples=300, deadline=None)
@given(_tokens)
def test_arbitrary_input_only_ever_fails_authentication(rsa_key: RSAKey, text: str) -> None:
    validator = _static_validator("https://idp.example.com", rsa_key)
    with pytest.raises(AuthenticationFailed):
        asyncio.run(validator.validate(text))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_single_character_change_is_refused_or_harmless(rsa_key: RSAKey, data: Any) -> None:
    issuer = "https://idp.example.com"
    validator = _static_validator(issuer, rsa_key)
    claims = default_claims(issuer)
    token = sign(rsa_key, claims)
    position = data.draw(st.integers(0, len(token) - 1))
    char = data.draw(
        st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ")
    )
    mutated = token[:position] + char + token[position + 1 :]
    try:
        identity = asyncio.run(validator.validate(mutated))
    except AuthenticationFailed:
        return
    # Only a change that decodes to the same bytes (unused trailing base64 bits) can pass.
    assert identity.claims == claims
