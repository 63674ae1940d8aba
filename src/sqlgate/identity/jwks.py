"""The issuer's signing keys: fetched by OIDC discovery, cached, refreshed on rotation.

Key selection is done here, once per key set, not per token: every key is indexed by
`(kid, alg)` for exactly the algorithms its type and curve fit (checked with joserfc's own
algorithm models), so a token can never pick a key of the wrong family (the classic
"HS256 signed with the RSA public key" confusion) and symmetric keys are never used at all.

Refetching is driven by tokens: an unknown `kid` asks for one refresh, but at most one fetch
runs at a time and at most one starts every `jwks_min_refresh_seconds`, so a flood of forged
kids costs the IdP one request per interval. A failed fetch keeps the old keys; it never lets
an unverified token through.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry, Key, KeySet, OctKey, RSAKey
from joserfc.jws import JWSRegistry

from sqlgate.config import ASYMMETRIC_ALGORITHMS, OidcConfig
from sqlgate.errors import AuthenticationFailed

__all__ = ["ASYMMETRIC_ALGORITHMS", "JwksCache", "KeyIndex", "KeySource", "StaticKeys"]

logger = logging.getLogger(__name__)


MIN_RSA_BITS = 2048
MAX_JWKS_BYTES = 1 << 20
MAX_JWKS_KEYS = 100


class KeySource(Protocol):
    """Where a TokenValidator gets verification keys from."""

    async def keys_for(self, kid: str | None, alg: str) -> tuple[Key, ...]:
        """Candidate keys for a token header, or AuthenticationFailed naming why there are none."""
        ...


@dataclass(frozen=True, slots=True)
class KeyIndex:
    """An immutable snapshot of a key set, indexed for O(1) lookup by `(kid, alg)`."""

    by_kid: Mapping[tuple[str, str], tuple[Key, ...]]
    kids: frozenset[str]
    by_alg: Mapping[str, tuple[Key, ...]]
    key_set: KeySet

    @classmethod
    def build(cls, keys: Iterable[Key], source: str = "key set") -> KeyIndex:
        """Index keys for signature verification; unusable keys are skipped with a warning."""
        by_kid: dict[tuple[str, str], list[Key]] = {}
        by_alg: dict[str, list[Key]] = {}
        kids: set[str] = set()
        usable: list[Key] = []
        for key in keys:
            algs = _algorithms_for(key, source)
            if not algs:
                continue
            usable.append(key)
            kid = key.get("kid")
            if isinstance(kid, str):
                kids.add(kid)
            for alg in algs:
                by_alg.setdefault(alg, []).append(key)
                if isinstance(kid, str):
                    by_kid.setdefault((kid, alg), []).append(key)
        return cls(
            by_kid={k: tuple(v) for k, v in by_kid.items()},
            kids=frozenset(kids),
            by_alg={k: tuple(v) for k, v in by_alg.items()},
            key_set=KeySet(usable),
        )

    def __len__(self) -> int:
        return len(self.key_set.keys)

    def lookup(self, kid: str | None, alg: str) -> tuple[Key, ...] | None:
        """Keys for this header; None when the kid (or, without kid, any key) is unknown.

        Raises AuthenticationFailed when the answer is a definite no that a refetch cannot
        change: the kid exists but its key does not fit `alg`, or no kid was sent and several
        keys would fit.
        """
        if kid is not None:
            found = self.by_kid.get((kid, alg))
            if found is not None:
                return found
            if kid in self.kids:
                raise AuthenticationFailed("key does not fit algorithm")
            return None
        candidates = self.by_alg.get(alg)
        if not candidates:
            return None
        if len(candidates) > 1:
            raise AuthenticationFailed("missing kid")
        return candidates


def _algorithms_for(key: Key, source: str) -> tuple[str, ...]:
    """The asymmetric JWS algorithms this key can verify, as joserfc's models judge it."""
    if isinstance(key, OctKey):
        logger.warning(
            "ignoring a symmetric (oct) key in %s: only asymmetric keys are used", source
        )
        return ()
    if isinstance(key, RSAKey) and key.public_key.key_size < MIN_RSA_BITS:
        logger.warning(
            "ignoring RSA key %r in %s: %d bits is below the minimum of %d",
            key.get("kid"),
            source,
            key.public_key.key_size,
            MIN_RSA_BITS,
        )
        return ()
    ops = key.get("key_ops")
    if isinstance(ops, list) and "verify" not in ops:
        return ()
    fits: list[str] = []
    for name in ASYMMETRIC_ALGORITHMS:
        model = JWSRegistry.algorithms.get(name)
        if model is None:
            continue
        try:
            model.check_key(key)  # key type, curve, `use` and `alg` must all agree
        except JoseError:
            continue
        fits.append(name)
    return tuple(fits)


def import_jwks(document: object, source: str) -> KeyIndex:
    """Parse a JWKS document; keys that cannot be imported are skipped with a warning."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document (expected an object with a `keys` list)")
    entries: list[Any] = document["keys"]
    if len(entries) > MAX_JWKS_KEYS:
        raise ValueError(f"{len(entries)} keys is more than the {MAX_JWKS_KEYS} accepted")
    keys: list[Key] = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        kty = entry.get("kty")
        if kty not in JWKRegistry.key_types or kty == "oct":
            logger.debug("skipping key of type %r in %s", kty, source)
            continue
        try:
            keys.append(JWKRegistry.import_key(entry))
        except (JoseError, ValueError, TypeError) as exc:
            logger.warning("skipping invalid key %r in %s: %s", entry.get("kid"), source, exc)
    index = KeyIndex.build(keys, source)
    if not len(index):
        raise ValueError("no usable signing keys")
    return index


class StaticKeys:
    """A fixed key set (the built-in dev issuer, tests): never fetches anything."""

    def __init__(self, keys: KeySet | Iterable[Key]) -> None:
        self._index = KeyIndex.build(keys, "static key set")

    @property
    def index(self) -> KeyIndex:
        return self._index

    async def keys_for(self, kid: str | None, alg: str) -> tuple[Key, ...]:
        found = self._index.lookup(kid, alg)
        if found is None:
            raise AuthenticationFailed("unknown key")
        return found


class _FetchError(Exception):
    pass


def _tls_verify(config: OidcConfig) -> ssl.SSLContext | bool:
    """System trust by default; `oidc.ca_file` (when the config has it) for a private CA."""
    ca_file = getattr(config, "ca_file", None)
    if ca_file is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise _FetchError(f"cannot use oidc.ca_file {ca_file}: {exc}") from None


def _plaintext_remote(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme != "http":
        return False
    host = parts.hostname or ""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


class JwksCache:
    """The issuer's JWKS, kept fresh without letting anyone make the gateway hammer the IdP.

    Call `await start()` once (a failed first fetch is logged, not raised: logins fail until
    keys arrive) and `await aclose()` at shutdown.
    """

    def __init__(
        self,
        config: OidcConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._config = config
        self._clock = clock
        self._client = client
        self._owns_client = client is None
        self._issuer = config.issuer.rstrip("/")
        self._jwks_uri: str | None = config.jwks_uri
        self._index: KeyIndex | None = None
        self._fetched_at: float | None = None
        self._last_attempt: float | None = None
        self._inflight: asyncio.Task[bool] | None = None
        self.fetch_count = 0

    @property
    def index(self) -> KeyIndex | None:
        """The current key snapshot, None until the first successful fetch."""
        return self._index

    @property
    def ready(self) -> bool:
        return self._index is not None

    async def start(self) -> None:
        """Fetch the keys once; a failure is logged and retried when the next login needs keys."""
        for url in (self._config.issuer, self._config.jwks_uri):
            if url is not None and _plaintext_remote(url):
                logger.warning(
                    "%s is plain HTTP to a non-loopback host: anyone on the path can substitute "
                    "signing keys; use https",
                    url,
                )
        await self._refresh(wait=True, force=True)

    async def aclose(self) -> None:
        task = self._inflight
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None

    async def refresh(self) -> bool:
        """Fetch now (joining a fetch already running), ignoring the rate limit; True on success."""
        return await self._refresh(wait=True, force=True)

    async def keys_for(self, kid: str | None, alg: str) -> tuple[Key, ...]:
        index = self._index
        if index is not None:
            assert self._fetched_at is not None
            if self._clock() - self._fetched_at > self._config.jwks_max_age_seconds:
                # Stale keys stay usable while a background fetch replaces them.
                self._start_fetch_if_allowed()
            found = index.lookup(kid, alg)
            if found is not None:
                return found
        # Unknown kid (rotation?) or no keys yet: one shared, rate-limited refetch.
        await self._refresh(wait=True, force=False)
        index = self._index
        if index is None:
            raise AuthenticationFailed("signing keys unavailable")
        found = index.lookup(kid, alg)
        if found is None:
            raise AuthenticationFailed("unknown key")
        return found

    def _start_fetch_if_allowed(self, force: bool = False) -> asyncio.Task[bool] | None:
        if self._inflight is not None:
            return self._inflight
        now = self._clock()
        if (
            not force
            and self._last_attempt is not None
            and now - self._last_attempt < self._config.jwks_min_refresh_seconds
        ):
            return None
        self._last_attempt = now
        task = asyncio.get_running_loop().create_task(self._fetch())
        self._inflight = task
        task.add_done_callback(self._fetch_done)
        return task

    def _fetch_done(self, task: asyncio.Task[bool]) -> None:
        if self._inflight is task:
            self._inflight = None

    async def _refresh(self, *, wait: bool, force: bool) -> bool:
        task = self._start_fetch_if_allowed(force)
        if task is None or not wait:
            return False
        # shield: one waiting login being cancelled must not cancel everybody's fetch
        return await asyncio.shield(task)

    async def _fetch(self) -> bool:
        self.fetch_count += 1
        discovered = self._config.jwks_uri is None
        where = self._jwks_uri or self._issuer
        try:
            if self._jwks_uri is None:
                self._jwks_uri = await self._discover()
            where = self._jwks_uri
            document = await self._get_json(self._jwks_uri)
            index = import_jwks(document, self._jwks_uri)
        except Exception as exc:  # whatever went wrong, the old keys stay
            if not isinstance(exc, _FetchError | ValueError):
                logger.exception("unexpected error while fetching signing keys from %s", where)
            if discovered:
                self._jwks_uri = None  # the IdP may have moved its JWKS: rediscover next time
            if self._index is None:
                logger.warning(
                    "cannot fetch signing keys from %s: %s; logins fail until keys arrive",
                    where,
                    exc,
                )
            else:
                logger.warning(
                    "cannot refresh signing keys from %s: %s; keeping %d cached keys",
                    where,
                    exc,
                    len(self._index),
                )
            return False
        previous = self._index
        self._index = index
        self._fetched_at = self._clock()
        if previous is None or previous.kids != index.kids:
            logger.info(
                "loaded %d signing keys from %s (kids: %s)",
                len(index),
                where,
                ", ".join(sorted(index.kids)) or "none",
            )
        return True

    async def _discover(self) -> str:
        url = f"{self._issuer}/.well-known/openid-configuration"
        document = await self._get_json(url)
        if not isinstance(document, dict):
            raise _FetchError(f"{url} is not an OpenID configuration document")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or urlsplit(jwks_uri).scheme not in ("http", "https"):
            raise _FetchError(f"{url} has no valid jwks_uri")
        if document.get("issuer") != self._config.issuer:
            logger.warning(
                "discovery document at %s names issuer %r, not the configured %r: "
                "tokens will likely fail the issuer check",
                url,
                document.get("issuer"),
                self._config.issuer,
            )
        return jwks_uri

    async def _get_json(self, url: str) -> object:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self._config.http_timeout_seconds,
                follow_redirects=False,
                headers={"Accept": "application/json"},
                verify=_tls_verify(self._config),
            )
        try:
            async with self._client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise _FetchError(f"HTTP {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        raise _FetchError(f"response larger than {MAX_JWKS_BYTES} bytes")
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise _FetchError(detail) from exc
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise _FetchError("response is not JSON") from None
