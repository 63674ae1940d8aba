"""How long one login's token check takes with cached keys (no network).

    python bench/bench_identity.py [--n 5000]

Prints microseconds per `TokenValidator.validate` for RS256 (2048-bit) and ES256 tokens,
next to the bare `cryptography` signature check, so the gap is the validator's own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from joserfc import jwt
from joserfc.jwk import ECKey, Key, KeySet, RSAKey

from sqlgate.config import OidcConfig
from sqlgate.identity import StaticKeys, TokenValidator

ISSUER = "https://idp.example.com/realms/bench"


def _token(key: Key, alg: str) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": ["sqlgate", "account"],
        "sub": "agent-7",
        "email": "agent7@example.com",
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "realm_access": {"roles": ["analysts", "offline_access", "default-roles"]},
        "scope": "openid email profile",
    }
    return jwt.encode({"alg": alg, "kid": key.kid or ""}, claims, key, algorithms=[alg])


def _per_op(fn: Callable[[], object], n: int) -> float:
    for _ in range(min(n // 10, 200)):
        fn()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n)
    return best * 1e6


async def _validate_per_op(validator: TokenValidator, token: str, n: int) -> float:
    for _ in range(min(n // 10, 200)):
        await validator.validate(token)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            await validator.validate(token)
        best = min(best, (time.perf_counter() - start) / n)
    return best * 1e6


async def main(n: int) -> None:
    rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})
    es = ECKey.generate_key("P-256", parameters={"kid": "ec-1"})
    decoys = [RSAKey.generate_key(2048, parameters={"kid": f"old-{i}"}) for i in range(3)]
    public_keys: list[Key] = [ECKey.import_key(es.as_dict(private=False))]
    public_keys += [RSAKey.import_key(k.as_dict(private=False)) for k in (rsa, *decoys)]
    public = KeySet(public_keys)
    config = OidcConfig(issuer=ISSUER, audience="sqlgate", groups_claim="realm_access.roles")
    validator = TokenValidator(config, StaticKeys(public))

    msg = b"x" * 600
    rsa_sig = rsa.private_key.sign(msg, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr]
    ec_sig = es.private_key.sign(msg, ec.ECDSA(hashes.SHA256()))  # type: ignore[union-attr]
    rsa_pub = rsa.public_key
    ec_pub = es.public_key

    print(f"{'':8}{'validate':>14}{'bare verify':>14}")
    for alg, key, bare in (
        ("RS256", rsa, lambda: rsa_pub.verify(rsa_sig, msg, padding.PKCS1v15(), hashes.SHA256())),
        ("ES256", es, lambda: ec_pub.verify(ec_sig, msg, ec.ECDSA(hashes.SHA256()))),
    ):
        token = _token(key, alg)
        identity = await validator.validate(token)
        assert identity.groups == {"analysts", "offline_access", "default-roles"}
        full = await _validate_per_op(validator, token, n)
        crypto = _per_op(bare, n)
        print(f"{alg:8}{full:11.1f} µs{crypto:11.1f} µs")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="validations per round")
    asyncio.run(main(parser.parse_args().n))
