"""Mask strategies that keep every value valid for its column's declared type.

A client driver must never fail to decode a masked row, in text or binary format. So text
types get text, JSON types get a JSON string, integers keep being integers (hash), and every
other type gets NULL, which any driver decodes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass

from sqlgate.config import MaskRule, MaskStrategy

# PostgreSQL type OIDs whose text and binary forms are both the UTF-8 text.
TEXT_TYPES = frozenset({25, 1043, 1042, 19, 18, 705})
JSON_TYPE, JSONB_TYPE = 114, 3802
INT_TYPES = {21: struct.Struct("!h"), 23: struct.Struct("!i"), 20: struct.Struct("!q")}
_INT_RANGE = {21: 2**15 - 1, 23: 2**31 - 1, 20: 2**63 - 1}

Masker = Callable[[bytes], bytes | None]
"""Takes one non-NULL value as sent by the server, returns what the client gets instead."""


@dataclass(frozen=True, slots=True)
class MaskSettings:
    marker: str
    hash_key: bytes


def _text_of(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")


def _bytes_of(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _partial(text: str, keep_first: int, keep_last: int) -> str:
    n = len(text)
    if n <= keep_first + keep_last:
        return "*" * n  # too short to reveal anything safely
    return text[:keep_first] + "*" * (n - keep_first - keep_last) + text[n - keep_last :]


def _email(text: str, marker: str) -> str:
    local, at, domain = text.rpartition("@")
    if not at or not local or "." not in domain:
        return marker
    labels = domain.split(".")
    shaped = [("*" * len(label)) for label in labels[:-1]] + [labels[-1]]
    return "****@" + ".".join(shaped)


def _digest(key: bytes, canonical: bytes) -> bytes:
    return hmac.new(key, canonical, hashlib.sha256).digest()


def build_masker(
    rule: MaskRule, type_oid: int, binary: bool, settings: MaskSettings
) -> Masker:
    """The value transform for one column under one mask rule."""
    strategy = rule.strategy
    if strategy is MaskStrategy.NULL:
        return lambda _value: None
    if strategy is MaskStrategy.HASH and type_oid in INT_TYPES:
        packer, limit = INT_TYPES[type_oid], _INT_RANGE[type_oid]
        key = settings.hash_key

        def hash_int(value: bytes) -> bytes:
            number = packer.unpack(value)[0] if binary else int(value)
            canonical = str(number).encode()
            hashed = int.from_bytes(_digest(key, canonical)[:8], "big") % limit
            return packer.pack(hashed) if binary else str(hashed).encode()

        return hash_int
    is_text = type_oid in TEXT_TYPES
    is_json = type_oid in (JSON_TYPE, JSONB_TYPE)
    if not (is_text or is_json):
        return lambda _value: None

    transform: Callable[[str], str]
    if strategy is MaskStrategy.REDACT:
        marker = settings.marker
        transform = lambda _text: marker  # noqa: E731
    elif strategy is MaskStrategy.PARTIAL:
        first, last = rule.keep_first, rule.keep_last
        transform = lambda text: _partial(text, first, last)  # noqa: E731
    elif strategy is MaskStrategy.EMAIL:
        marker = settings.marker
        transform = lambda text: _email(text, marker)  # noqa: E731
    else:  # HASH on text
        key = settings.hash_key
        transform = lambda text: "h:" + _digest(key, _bytes_of(text)).hex()[:16]  # noqa: E731

    if is_text:
        return lambda value: _bytes_of(transform(_text_of(value)))
    jsonb_binary = type_oid == JSONB_TYPE and binary

    def mask_json(value: bytes) -> bytes:
        raw = value[1:] if jsonb_binary else value
        masked = json.dumps(transform(_text_of(raw))).encode()
        return b"\x01" + masked if jsonb_binary else masked

    return mask_json


def redact_rule() -> MaskRule:
    """The rule applied to derived values that a masked column may flow into."""
    return MaskRule(columns=["*"], strategy=MaskStrategy.REDACT)
