"""Mask strategies keep values valid for their types; mask patterns pick the right rule."""

from __future__ import annotations

import json
import struct

import pytest

from sqlgate.config import MaskRule, MaskStrategy
from sqlgate.masking.rules import MaskSet
from sqlgate.masking.strategies import MaskSettings, build_masker

SETTINGS = MaskSettings("****", b"k" * 32)
TEXT, VARCHAR, JSONB, JSON, INT4, INT8, INT2, DATE = 25, 1043, 3802, 114, 23, 20, 21, 1082


def rule(strategy: MaskStrategy, **kw: int) -> MaskRule:
    return MaskRule(columns=["t.c"], strategy=strategy, **kw)


def test_redact_text_is_marker_and_other_types_null() -> None:
    assert build_masker(rule(MaskStrategy.REDACT), TEXT, False, SETTINGS)(b"alice") == b"****"
    assert build_masker(rule(MaskStrategy.REDACT), VARCHAR, True, SETTINGS)(b"a") == b"****"
    assert build_masker(rule(MaskStrategy.REDACT), DATE, False, SETTINGS)(b"2020-01-01") is None
    assert build_masker(rule(MaskStrategy.REDACT), INT4, True, SETTINGS)(b"\0\0\0\1") is None


def test_json_values_stay_valid_json_in_text_and_binary() -> None:
    text = build_masker(rule(MaskStrategy.REDACT), JSON, False, SETTINGS)(b'{"a": 1}')
    assert text is not None and json.loads(text) == "****"
    binary = build_masker(rule(MaskStrategy.REDACT), JSONB, True, SETTINGS)(b'\x01{"a": 1}')
    assert binary is not None and binary[:1] == b"\x01" and json.loads(binary[1:]) == "****"


@pytest.mark.parametrize(("value", "first", "last", "expected"), [
    ("123-45-6789", 0, 4, "*******6789"),
    ("4111111111111111", 4, 4, "4111********1111"),
    ("abc", 2, 2, "***"),  # too short to reveal anything
    ("", 0, 4, ""),
])
def test_partial_keeps_only_the_asked_characters(value: str, first: int, last: int,
                                                 expected: str) -> None:
    masker = build_masker(rule(MaskStrategy.PARTIAL, keep_first=first, keep_last=last),
                          TEXT, False, SETTINGS)
    assert masker(value.encode()) == expected.encode()


def test_hash_is_deterministic_keyed_and_format_independent() -> None:
    text = build_masker(rule(MaskStrategy.HASH), TEXT, False, SETTINGS)
    assert text(b"alice") == text(b"alice") != text(b"bob")
    other_key = build_masker(rule(MaskStrategy.HASH), TEXT, False, MaskSettings("*", b"x" * 32))
    assert other_key(b"alice") != text(b"alice")
    as_text = build_masker(rule(MaskStrategy.HASH), INT4, False, SETTINGS)(b"42")
    as_binary = build_masker(rule(MaskStrategy.HASH), INT4, True, SETTINGS)(struct.pack("!i", 42))
    assert as_text is not None and as_binary is not None
    assert int(as_text) == struct.unpack("!i", as_binary)[0] != 42
    small = build_masker(rule(MaskStrategy.HASH), INT2, True, SETTINGS)(struct.pack("!h", 7))
    assert small is not None and len(small) == 2
    big = build_masker(rule(MaskStrategy.HASH), INT8, False, SETTINGS)(b"-5")
    assert big is not None and 0 <= int(big) < 2**63


def test_email_keeps_shape_not_value() -> None:
    masker = build_masker(rule(MaskStrategy.EMAIL), TEXT, False, SETTINGS)
    assert masker(b"alice@example.com") == b"****@*******.com"
    assert masker(b"not an email") == b"****"


def test_null_strategy() -> None:
    assert build_masker(rule(MaskStrategy.NULL), TEXT, False, SETTINGS)(b"x") is None


def test_non_utf8_text_survives_masking_without_error() -> None:
    masker = build_masker(rule(MaskStrategy.PARTIAL, keep_last=1), TEXT, False, SETTINGS)
    assert masker(b"\xff\xfeab") == b"***b"


def test_mask_patterns_and_first_rule_wins() -> None:
    masks = MaskSet([
        MaskRule(columns=["public.users.email"], strategy=MaskStrategy.REDACT),
        MaskRule(columns=["*.ssn", "users.email"], strategy=MaskStrategy.PARTIAL, keep_last=4),
        MaskRule(columns=["billing.*.card*"], strategy=MaskStrategy.NULL),
    ])
    assert masks.rule_for("public", "users", "email").strategy is MaskStrategy.REDACT  # type: ignore[union-attr]
    assert masks.rule_for("crm", "users", "EMAIL").strategy is MaskStrategy.PARTIAL  # type: ignore[union-attr]
    assert masks.rule_for("x", "people", "ssn").strategy is MaskStrategy.PARTIAL  # type: ignore[union-attr]
    assert masks.rule_for("billing", "cards", "card_number").strategy is MaskStrategy.NULL  # type: ignore[union-attr]
    assert masks.rule_for("public", "users", "name") is None
    assert masks.could_match_table("billing", "anything")
    assert masks.could_match_table("public", "people")  # via *.ssn
    assert not MaskSet([MaskRule(columns=["a.b.c"])]).could_match_table("public", "users")
