"""Content detectors mask PII and secrets inside text values, and leave everything else alone."""

from __future__ import annotations

import base64
import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sqlgate.masking.detectors import DETECTOR_NAMES, DetectorSet

ALL = DetectorSet(DETECTOR_NAMES)


def b64(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


JWT = f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64({'sub': '42', 'name': 'Alice'})}.c2lnbmF0dXJl"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\nbase64body==\n-----END RSA PRIVATE KEY-----"

POSITIVE = {
    "email": [
        "alice@example.com",
        "first.last+tag@mail.example.co.uk",
        "o'hara_99@sub-domain.io",
        "jörg.müller@exämple.de",
    ],
    "credit_card": [
        "4111111111111111",
        "5500005555555559",
        "340000000000009",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "3782 822463 10005",
        "6011000990139424",
    ],
    "ssn": ["123-45-6789", "555-12-3456", "123 45 6789", "078-05-1120"],
    "phone": [
        "+1 415 555 0101",
        "+44 20 7946 0958",
        "+14155550101",
        "+1 (415) 555-0101",
        "+44 (0)20 7946 0958",
        "+49-30-1234567",
        "(415) 555-0101",
        "(415)555-0101",
        "415-555-0101",
        "415.555.0101",
        "415 555 0101",
        "1-800-555-0199",
        "020 7946 0958",
        "07700 900123",
        "01 23 45 67 89",
        "(030) 1234567",
        "030-12345678",
    ],
    "iban": [
        "GB82 WEST 1234 5698 7654 32",
        "GB82WEST12345698765432",
        "DE89 3704 0044 0532 0130 00",
        "FR14 2004 1010 0505 0001 3M02 606",
        "NO9386011117947",
        "BE68 5390 0754 7034",
    ],
    "ip": [
        "192.168.1.1",
        "8.8.8.8",
        "255.255.255.255",
        "0.0.0.0",
        "fe80::1",
        "::1",
        "2001:db8::8a2e:370:7334",
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        "::ffff:192.0.2.128",
    ],
    "jwt": [JWT, f"{b64({'alg': 'none'})}.{b64({'sub': '1'})}."],
    "cloud_key": [
        "AKIAIOSFODNN7EXAMPLE",
        "ASIAY34FZKBOKMUTVV7A",
        "AIza" + "SyA1b2C3d4E5f6G7h8I9j0K_lMnOpQrS-tu",
        "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
        "gho_" + "x" * 36,
        "ghs_" + "Y9" * 18,
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRS",
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "xoxp-1234-5678-abcdef",
        PEM,
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNz\n-----END OPENSSH PRIVATE KEY-----",
    ],
}

NEGATIVE = {
    "email": ["user@localhost", "@alice", "a@b.c", "alice at example dot com", "x@@y.com"],
    "credit_card": [
        "4111111111111112",  # Luhn fails
        "4111 1111 1111 1112",
        "5500-0055-5555-5550",
        "123456789012",  # too short
        "41111111111111110000",  # 20 digits: longer than any card
        "x41111111111111119",  # a Luhn-valid 16 inside a longer digit run
        "2024-01-05",
        "1234 5678",
    ],
    "ssn": [
        "000-12-3456",
        "666-12-3456",
        "900-12-3456",
        "987-65-4321",
        "123-00-4567",
        "123-45-0000",
        "123456789",
        "1123-45-6789",
        "123-45-67890",
        "12-345-6789",
    ],
    "phone": [
        "2024-01-05",
        "05.01.2024",
        "3.14159265",
        "+3.14159265",
        "12345",
        "order 12345678",
        "4155550101",
        "0.0001234567",
        "10:30",
        "1,234,567.89",
        "+1 555",
        "123-4567",
        "2024-01-05 10:30:00",
        "v1.2.3",
        "+123456789012345678",
    ],
    "iban": [
        "GB82 WEST 1234 5698 7654 33",
        "GB83WEST12345698765432",
        "DE00 3704 0044 0532 0130 00",
        "ISBN 978 0 306 40615 7",
        "AB12",
    ],
    "ip": [
        "256.1.1.1",
        "1.2.3.256",
        "192.168.1",
        "1.2.3.4.5",
        "192.168.01.1",
        "12:30:45",
        "00:1a:2b:3c:4d:5e",
        "Db::Add",
        "std::vector",
        "10.0.19041.1",
        "1.2.3.999",
    ],
    "jwt": [
        "eyJhbGciOi.eyJzdWIi.sig",  # segments that do not decode to JSON objects
        f"{b64(['a'])}.{b64(['b'])}.sig",  # JSON, but arrays
        f"{b64({'alg': 'HS256'})}.notjson.sig",
        "eyJ",
    ],
    "cloud_key": [
        "AKIAIOSFODNN7EXAMPL",
        "AKIAiosfodnn7example",
        "ghp_short",
        "xoxq-123456789012",
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkq\n-----END PUBLIC KEY-----",
        "-----BEGIN CERTIFICATE-----",
        "AIzaShort",
    ],
}


def _cases(table: dict[str, list[str]]) -> list[tuple[str, str]]:
    return [(name, value) for name, values in table.items() for value in values]


@pytest.mark.parametrize(("name", "value"), _cases(POSITIVE))
def test_detector_masks_its_values_alone_and_in_a_sentence(name: str, value: str) -> None:
    detectors = DetectorSet([name])
    assert detectors.mask(value) == "****"
    assert detectors.mask(f"see {value} for details") == "see **** for details"
    assert detectors.mask(f"({value}),") == "(****),"


@pytest.mark.parametrize(("name", "value"), _cases(NEGATIVE))
def test_detector_leaves_lookalikes_alone(name: str, value: str) -> None:
    assert DetectorSet([name]).mask(value) is None
    assert DetectorSet([name]).mask(f"note: {value}.") is None


def test_every_detector_name_has_cases() -> None:
    assert set(POSITIVE) == set(NEGATIVE) == DETECTOR_NAMES


def test_nothing_matched_is_none_so_the_original_bytes_are_forwarded() -> None:
    for value in ["", "Widget, blue, 12 pcs", "order 42 shipped 2024-01-05", "a" * 5000]:
        assert ALL.mask(value) is None
        assert ALL.mask_bytes(value.encode()) is None


def test_multiple_matches_of_different_kinds_in_one_value() -> None:
    text = (
        "Alice (alice@example.com, +1 415 555 0101) paid with 4111 1111 1111 1111, "
        "ssn 123-45-6789, from 10.0.0.7 to GB82 WEST 1234 5698 7654 32; bob@example.org too."
    )
    assert ALL.mask(text) == (
        "Alice (****, ****) paid with ****, ssn ****, from **** to ****; **** too."
    )


def test_only_enabled_detectors_run() -> None:
    emails = DetectorSet(["email"])
    assert emails.mask("123-45-6789 and 4111111111111111") is None
    assert emails.mask("123-45-6789 and a@b.io") == "123-45-6789 and ****"
    assert DetectorSet([]).mask("alice@example.com") is None


def test_replacement_is_configurable() -> None:
    detectors = DetectorSet(["email", "ssn"], replacement="[redacted]")
    assert detectors.mask("a@b.io / 123-45-6789") == "[redacted] / [redacted]"
    assert DetectorSet(["email"], replacement="").mask("<a@b.io>") == "<>"


def test_unknown_detector_name_is_refused_with_the_known_ones_listed() -> None:
    with pytest.raises(ValueError, match="unknown detector 'passport'") as info:
        DetectorSet(["email", "passport"])
    assert "credit_card" in str(info.value) and "cloud_key" in str(info.value)


def test_a_replacement_that_is_itself_pii_is_refused() -> None:
    with pytest.raises(ValueError, match="replacement"):
        DetectorSet(["email"], replacement="x@example.com")


def test_a_single_name_string_is_one_detector_not_its_letters() -> None:
    assert DetectorSet("email").mask("a@b.io") == "****"


def test_card_followed_by_expiry_is_still_masked() -> None:
    assert ALL.mask("card 4111 1111 1111 1111 12/26") == "card **** 12/26"
    assert ALL.mask("4111-1111-1111-1111-07") == "****-07"


def test_failed_card_candidate_does_not_hide_the_phone_or_ssn_in_it() -> None:
    # Luhn fails as a card; the same digits are a UK phone number followed by "12".
    assert DetectorSet(["credit_card", "phone"]).mask("call 0207 946 0958 12") == "call **** 12"
    # The card candidate swallows "123"; the ssn that starts inside it is still found.
    assert ALL.mask("4111 1111 1111 1112 123-45-6789") == "4111 1111 1111 1112 ****"


def test_iban_that_fills_its_last_group_is_cut_before_the_next_word() -> None:
    assert ALL.mask("BE68 5390 0754 7034 2024") == "**** 2024"


def test_aws_secret_masks_the_value_and_keeps_the_name() -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    detectors = DetectorSet(["cloud_key"])
    assert detectors.mask(f"aws_secret_access_key = {secret}") == "aws_secret_access_key = ****"
    assert detectors.mask(f'{{"SecretAccessKey": "{secret}"}}') == '{"SecretAccessKey": "****"}'
    assert detectors.mask(f"AWS_SECRET_ACCESS_KEY={secret}") == "AWS_SECRET_ACCESS_KEY=****"
    assert detectors.mask(f"note: {secret}") is None  # 40 characters alone are not a secret


def test_private_key_block_is_masked_whole_even_when_truncated() -> None:
    detectors = DetectorSet(["cloud_key"])
    assert detectors.mask(f"key:\n{PEM}\nend") == "key:\n****\nend"
    assert detectors.mask("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEI") == "****"


def test_masking_can_not_leave_a_new_match_behind() -> None:
    # "a@b.co@c.de": the first match leaves "****@c.de", itself an email, so it is rescanned.
    assert ALL.mask("a@b.co@c.de") == "****"


@pytest.mark.parametrize(
    "value",
    [
        "a" * 50_000 + "@",
        "a@" * 25_000,
        "a@" + "b." * 25_000,
        "1 " * 25_000,
        "1-" * 25_000,
        "AB12 " * 10_000,
        "fe80::" * 10_000,
        "eyJa" * 10_000 + ".eyJ",
        "4111 1111 1111 1112 " * 2_500,
        "-----BEGIN PRIVATE KEY-----" * 2_000,
    ],
    ids=lambda v: repr(v[:12]),
)
def test_adversarial_values_scan_in_linear_time(value: str) -> None:
    start = time.perf_counter()
    ALL.mask(value)
    assert time.perf_counter() - start < 5  # about 0.1 s; a backtracking blow-up is minutes


def test_mask_bytes_matches_mask_on_utf8() -> None:
    text = "Zoë <zoë@example.com>, tel. +33 1 23 45 67 89"
    masked = ALL.mask(text)
    assert masked == "Zoë <****>, tel. ****"
    assert ALL.mask_bytes(text.encode()) == masked.encode()


def test_mask_bytes_keeps_bytes_that_are_not_utf8_exactly() -> None:
    value = b"\xff\xfe caf\xc3\xa9 \x80alice@example.com\xc3 and 123-45-6789\xed\xa0\x80"
    assert ALL.mask_bytes(value) == b"\xff\xfe caf\xc3\xa9 \x80****\xc3 and ****\xed\xa0\x80"
    assert ALL.mask_bytes(b"\xff\xfe not pii \x80") is None


# --- properties ------------------------------------------------------------------------------

SAMPLES = [v for values in POSITIVE.values() for v in values] + [
    v for values in NEGATIVE.values() for v in values
]
FRAGMENTS = st.one_of(
    st.sampled_from(SAMPLES),
    st.text(max_size=12),
    st.text(alphabet="0123456789 -.+()@:/_", max_size=24),
    st.text(alphabet="AKIASeyJghp_xoxb-GBWEST0123456789. ", max_size=24),
)
TEXTS = st.lists(FRAGMENTS, max_size=8).map("".join)


@settings(max_examples=400, deadline=None)
@given(text=TEXTS)
def test_mask_never_raises_and_leaves_nothing_detectable(text: str) -> None:
    masked = ALL.mask(text)
    if masked is not None:
        assert ALL.mask(masked) is None


@settings(max_examples=200, deadline=None)
@given(
    names=st.sets(st.sampled_from(sorted(DETECTOR_NAMES))),
    text=TEXTS,
    replacement=st.sampled_from(["****", "", "X", "[pii]", "-", "0"]),
)
def test_any_subset_and_marker_leaves_nothing_detectable(
    names: set[str], text: str, replacement: str
) -> None:
    detectors = DetectorSet(names, replacement)
    masked = detectors.mask(text)
    if masked is not None:
        assert detectors.mask(masked) is None


@settings(max_examples=200, deadline=None)
@given(value=st.binary(max_size=64) | TEXTS.map(str.encode))
def test_mask_bytes_never_raises_and_leaves_nothing_detectable(value: bytes) -> None:
    masked = ALL.mask_bytes(value)
    if masked is not None:
        assert ALL.mask_bytes(masked) is None
