"""Content detectors: PII and secrets found inside text values and masked in place.

A `DetectorSet` scans one value and returns it with every match replaced by the marker, or
None when nothing matched so that the caller forwards the original bytes untouched. It runs
once per scanned cell, so each detector is guarded by cheap tests (enough ASCII digits, a
needle such as ``@`` or ``eyJ``) and its regex runs only when a match is possible.

Rules, in brief (each pattern below says more):

- ``email``: ``local@domain.tld`` with a dot-atom local part and a 2+ letter TLD.
- ``credit_card``: 13-19 digits, contiguous or in groups split by single spaces or dashes,
  not inside a longer digit run, Luhn-checked. Grouped digits followed by a short group
  ("4111 1111 1111 1111 12/26") mask the longest group-boundary prefix that passes.
- ``ssn``: ``ddd-dd-dddd`` or ``ddd dd dddd``; area 000, 666 and 9xx, group 00 and
  serial 0000 are never issued and so never matched. Nine bare digits are not an SSN.
- ``phone``, one of:

  * international: ``+``, a country code not starting with 0, 8-15 digits in all, a single
    space, dash or dot or a parenthesis between digits (``+1 (415) 555-0101``,
    ``+44 (0)20 7946 0958``, ``+14155550101``); ``+3.14159265`` is a decimal, not a phone;
  * North American: ``(415) 555-0101``, ``415-555-0101``, ``415.555.0101``,
    ``415 555 0101``, optionally led by ``1-``; area code and exchange start with 2-9 and
    the two separators are the same;
  * national with a trunk 0: ``020 7946 0958``, ``07700 900123``, ``01 23 45 67 89``,
    ``(030) 1234567``: 10-11 digits in 2-5 groups split by one repeated separator.

  Never a phone: a digit run without ``+`` or separators (``4155550101`` is more often an
  id), dates (``2024-01-05``, ``05.01.2024``), decimals, times, short numbers, and digits
  that touch a letter or continue a longer run.
- ``iban``: country code, check digits and 11-30 letters or digits, optionally in groups of
  four split by spaces, mod-97 checked.
- ``ip``: IPv4 with octets 0-255; IPv6 full, compressed or IPv4-suffixed, validated with
  `ipaddress` and holding at least one digit (so ``Db::Add`` is not an address).
- ``jwt``: three base64url segments whose first two begin ``eyJ`` and decode to JSON objects.
- ``cloud_key``: AWS access key ids (``AKIA``/``ASIA``) and secret keys (the 40 characters
  after ``aws_secret_access_key`` or ``SecretAccessKey``), GCP API keys (``AIza``), GitHub
  tokens (``ghp_``, ``gho_``, ``ghs_``, ``ghu_``, ``ghr_``, ``github_pat_``), Slack tokens
  (``xox[abprs]-``), PEM private-key blocks (to the end of the value when the END line is
  missing).

Masking rescans its own output, since what is left around a replaced span can join into a
new match; a value still not clean after a few passes is replaced whole.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["DETECTOR_NAMES", "DetectorSet"]

Span = tuple[int, int]
Check = Callable[[re.Match[str]], Span | None]
"""Validates one regex match; returns the span to mask, or None when it is not a hit."""

_ASCII = re.ASCII
_DIGITS = b"0123456789"
_DIGIT_RUN = re.compile(r"[0-9]+", _ASCII)


def _digits(text: str) -> str:
    return "".join(_DIGIT_RUN.findall(text))


# Every pattern starts with one literal or one character class and checks what precedes the
# match with a lookbehind placed after that first character: the regex engine then skips to
# the next candidate character in C instead of trying every position (10-50x faster on a
# paragraph than a pattern that starts with a lookbehind). The numeric patterns (card, ssn,
# national phone, IPv4) are kept without that first character, [0-9] or [(0-9], so that a set
# joins the ones it enables into one alternation: a paragraph is scanned for digits once.

# --- email -----------------------------------------------------------------------------------

_LOCAL = r"[\w!#$%&'*+/=?^`{|}~.\-]"
_LABEL = r"[^\W_](?:[\w\-]{0,61}[^\W_])?"
# Found from the '@': the domain by regex, the local part by walking back over the run of
# local-part characters (reversed, so a long run with no '@' after it is never walked).
_EMAIL = re.compile(rf"@(?:{_LABEL}\.)+[^\W\d_]{{2,63}}")
_LOCAL_RUN = re.compile(rf"{_LOCAL}+")
_MAX_LOCAL = 256


def _check_email(match: re.Match[str]) -> Span | None:
    at = match.start()
    run = _LOCAL_RUN.match(match.string[max(0, at - _MAX_LOCAL) : at][::-1])
    return None if run is None else (at - run.end(), match.end())


# --- credit_card -----------------------------------------------------------------------------

_CARD = (
    # 12 more digits ahead, each after at most one separator, or nothing here is a card
    r"(?<![0-9]{2})(?=(?:[ \-]?[0-9]){12})(?:[0-9]{12,18}(?![0-9])"
    # In groups: 4-6 digits, 2-4 groups of 3-7 (4-4-4-4, 4-6-5 Amex, 4-6-4 Diners,
    # 4-4-4-4-3), then maybe a short group that the check can cut off ("... 1111 12/26").
    r"|(?<![0-9] [0-9])[0-9]{3,5}(?: [0-9]{3,7}){2,4}(?: [0-9]{1,2})?(?![0-9])"
    r"|(?<![0-9]-[0-9])[0-9]{3,5}(?:-[0-9]{3,7}){2,4}(?:-[0-9]{1,2})?(?![0-9]))"
)


def _luhn(digits: str) -> bool:
    total = sum(map(int, digits[-1::-2]))
    for ch in digits[-2::-2]:
        doubled = 2 * (ord(ch) - 48)
        total += doubled - 9 if doubled > 9 else doubled
    return total % 10 == 0


def _prefixes(match: re.Match[str], sep: str) -> list[tuple[int, str]]:
    """Group-boundary prefixes of a match, longest first, as (end offset, characters)."""
    text = match.group()
    start = match.start()
    out = [(match.end(), text)]
    cut = text.rfind(sep)
    while cut > 0:
        out.append((start + cut, text[:cut]))
        cut = text.rfind(sep, 0, cut)
    return out


def _check_card(match: re.Match[str]) -> Span | None:
    text = match.group()
    if text.isdigit():
        return match.span() if _luhn(text) else None
    # A card written in groups is often followed by more digits ("... 1111 12/26"), so the
    # longest group-boundary prefix that is a card wins.
    sep = " " if " " in text else "-"
    for end, prefix in _prefixes(match, sep):
        digits = prefix.replace(sep, "")
        if 13 <= len(digits) <= 19 and _luhn(digits):
            return match.start(), end
    return None


# --- ssn -------------------------------------------------------------------------------------

_SSN = (
    r"(?<![0-9]{2})(?:(?<![0-9]-[0-9])[0-9]{2}-[0-9]{2}-[0-9]{4}(?!-?[0-9])"
    r"|(?<![0-9] [0-9])[0-9]{2} [0-9]{2} [0-9]{4}(?! ?[0-9]))"
)


def _check_ssn(match: re.Match[str]) -> Span | None:
    text = match.group()
    area, group, serial = text[:3], text[4:6], text[7:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return None
    return match.span()


# --- phone -----------------------------------------------------------------------------------

# International: '+', a country code not starting with 0, 8-15 digits in all, each digit
# optionally preceded by one separator (space, dash, dot) or a parenthesis:
# "+1 (415) 555-0101", "+44 20 7946 0958", "+44 (0)20 7946 0958", "+14155550101".
_SEP = r"(?:[ .\-]|[ .\-]?\(|\)[ .\-]?)"
_PHONE_INTL = re.compile(rf"\+(?<![0-9A-Za-z+]\+)[1-9](?:{_SEP}?[0-9]){{7,14}}(?![0-9])", _ASCII)
_DECIMAL = re.compile(r"\+[0-9]+\.[0-9]+", _ASCII)

_NXX = r"[2-9][0-9]{2}"
_PHONE_NATIONAL = (
    r"(?<![0-9A-Za-z+][(0-9])(?<![0-9][.\-][(0-9])(?:(?P<nanp>"
    # North American: (NXX) NXX-XXXX, or NXX-NXX-XXXX with one consistent separator (space,
    # dash or dot), optionally led by "1-" or "1 ".
    rf"(?<=1)[ .\-](?:\({_NXX}\) ?{_NXX}[ .\-]|{_NXX}(?P<s1>[ .\-]){_NXX}(?P=s1))[0-9]{{4}}"
    rf"|(?<=\()[2-9][0-9]{{2}}\) ?{_NXX}[ .\-][0-9]{{4}}"
    rf"|(?<=[2-9])[0-9]{{2}}(?P<s2>[ .\-]){_NXX}(?P=s2)[0-9]{{4}}"
    # National with a trunk 0 (UK, EU, ...): 10-11 digits, the area code optionally in
    # parentheses, groups of 2-8 digits split by one consistent separator (space, dash or
    # dot): "020 7946 0958", "07700 900123", "01 23 45 67 89", "(030) 1234567".
    r")|(?P<trunk>(?<=\()0[1-9][0-9]{0,3}\) ?[0-9]{2,8}(?: [0-9]{2,8}){0,3}"
    r"|(?<=0)[1-9][0-9]{0,3}(?P<ts>[ .\-])[0-9]{2,8}(?:(?P=ts)[0-9]{2,8}){0,3}"
    r"))(?![0-9]|[.\-][0-9])"
)


def _check_phone_intl(match: re.Match[str]) -> Span | None:
    # "+3.14159265" is a signed decimal, not a phone
    return None if _DECIMAL.fullmatch(match.group()) else match.span()


def _check_phone_national(match: re.Match[str]) -> Span | None:
    if match.group("nanp") is not None:
        return match.span()
    # A trunk number followed by another group ("020 7946 0958 12") masks the longest
    # prefix that has the digits of a phone number.
    sep = match.group("ts") or " "
    for end, prefix in _prefixes(match, sep):
        if 10 <= len(_digits(prefix)) <= 11:
            return match.start(), end
    return None


# --- iban ------------------------------------------------------------------------------------

_IBAN = re.compile(
    r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z][0-9]{2}"
    r"(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,8}(?: [A-Z0-9]{1,3})?)(?![A-Za-z0-9])",
    _ASCII,
)


def _mod97(iban: str) -> bool:
    if not 15 <= len(iban) <= 34:
        return False
    rotated = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in rotated)) % 97 == 1


def _check_iban(match: re.Match[str]) -> Span | None:
    # Grouped IBANs that fill their last group ("BE68 5390 0754 7034") can run into a
    # following word of four characters; the longest valid prefix is the IBAN.
    for end, prefix in _prefixes(match, " "):
        if _mod97(prefix.replace(" ", "")):
            return match.start(), end
    return None


# --- ip --------------------------------------------------------------------------------------

_IPV4 = r"(?<![0-9A-Za-z.][0-9])[0-9]{0,2}(?:\.[0-9]{1,3}){3}(?![0-9A-Za-z]|\.[0-9])"
_IPV6 = re.compile(
    r"[0-9A-Fa-f:](?<![0-9A-Za-z:.][0-9A-Fa-f:])[0-9A-Fa-f:]{1,38}"
    r"(?:(?<=:)[0-9]{1,3}(?:\.[0-9]{1,3}){3})?(?![0-9A-Za-z:]|\.[0-9])",
    _ASCII,
)


def _check_ipv4(match: re.Match[str]) -> Span | None:
    for octet in match.group().split("."):
        if int(octet) > 255 or (len(octet) > 1 and octet[0] == "0"):
            return None
    return match.span()


def _maybe_ipv6(text: str) -> bool:
    # Every IPv6 address has "::" or at least six colons (seven, or six and an IPv4 tail).
    return "::" in text or text.count(":") >= 6


def _check_ipv6(match: re.Match[str]) -> Span | None:
    text = match.group()
    if text.count(":") < 2 or _DIGIT_RUN.search(text) is None:
        return None
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return None
    return match.span()


# --- jwt -------------------------------------------------------------------------------------

_JWT = re.compile(
    r"eyJ(?<![A-Za-z0-9_\-]eyJ)[A-Za-z0-9_\-]+\.eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*", _ASCII
)


def _is_json_object(segment: str) -> bool:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        return isinstance(json.loads(raw), dict)
    except (binascii.Error, ValueError, RecursionError):
        return False


def _check_jwt(match: re.Match[str]) -> Span | None:
    header, payload, _ = match.group().split(".")
    return match.span() if _is_json_object(header) and _is_json_object(payload) else None


# --- cloud_key -------------------------------------------------------------------------------

_AWS_KEY_ID = re.compile(r"A(?<![A-Za-z0-9]A)(?:KI|SI)A[A-Z0-9]{16}(?![A-Za-z0-9])", _ASCII)
# The secret itself has no prefix; it is found by the name it is stored under, and only the
# 40 characters after the name are masked.
_AWS_SECRET = re.compile(
    r"(?i:aws_?secret_?(?:access_?)?key|secretaccesskey)[\"']?\s{0,4}[:=]>?\s{0,4}[\"']?"
    r"(?P<secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])",
    _ASCII,
)
_GCP_KEY = re.compile(r"AIza(?<![A-Za-z0-9_\-]AIza)[A-Za-z0-9_\-]{35}(?![A-Za-z0-9_\-])", _ASCII)
_GITHUB = re.compile(
    r"g(?<![A-Za-z0-9_]g)(?:h[opsur]_[A-Za-z0-9]{20,251}|ithub_pat_[A-Za-z0-9_]{20,244})"
    r"(?![A-Za-z0-9_])",
    _ASCII,
)
_SLACK = re.compile(
    r"xox(?<![A-Za-z0-9_\-]xox)[abprs]-[A-Za-z0-9][A-Za-z0-9\-]{8,250}(?![A-Za-z0-9_\-])",
    _ASCII,
)
# A header without its END line (a truncated value) masks to the end of the value.
_PEM = re.compile(
    r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
    r"(?:[\s\S]*?-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----|[\s\S]*)",
    _ASCII,
)


def _check_aws_secret(match: re.Match[str]) -> Span | None:
    return match.span("secret")


# --- the set ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Part:
    """One regex of a detector and the cheap tests that let a scan skip it."""

    name: str
    pattern: re.Pattern[str]
    check: Check | None = None
    min_length: int = 0
    """The shortest text the pattern matches."""
    min_digits: int = 0
    """A value with fewer ASCII digits cannot match."""
    needles: tuple[str, ...] = ()
    """A value that contains none of these cannot match; () means no such test."""
    gate: Callable[[str], bool] | None = None
    """A last cheap test before the regex runs."""
    first: str = ""
    rest: str = ""
    """Numeric parts: the pattern's first character class and the pattern after it."""


def _numeric(
    name: str, first: str, rest: str, check: Check, min_length: int, min_digits: int
) -> _Part:
    pattern = re.compile(first + rest, _ASCII)
    return _Part(name, pattern, check, min_length, min_digits, first=first, rest=rest)


_PARTS = (
    _Part("email", _EMAIL, _check_email, min_length=6, needles=("@",)),
    _numeric("credit_card", "[0-9]", _CARD, _check_card, 13, 13),
    _numeric("ssn", "[0-9]", _SSN, _check_ssn, 11, 9),
    _Part("phone", _PHONE_INTL, _check_phone_intl, 9, 8, needles=("+",)),
    _numeric("phone", "[(0-9]", _PHONE_NATIONAL, _check_phone_national, 11, 10),
    # 2 check digits and at least 4 in the account number: registry formats whose account
    # part could be all letters exist on paper only, and "Widget 12" must not pay for a scan.
    _Part("iban", _IBAN, _check_iban, 15, 6),
    _numeric("ip", "[0-9]", _IPV4, _check_ipv4, 7, 4),
    _Part("ip", _IPV6, _check_ipv6, 3, 1, needles=(":",), gate=_maybe_ipv6),
    _Part("jwt", _JWT, _check_jwt, 10, needles=("eyJ",)),
    _Part("cloud_key", _AWS_KEY_ID, None, 20, needles=("AKIA", "ASIA")),
    _Part("cloud_key", _AWS_SECRET, _check_aws_secret, 53, needles=("ecret", "ECRET")),
    _Part("cloud_key", _GCP_KEY, None, 39, needles=("AIza",)),
    _Part("cloud_key", _GITHUB, None, 24, needles=("gh", "github_pat_")),
    _Part("cloud_key", _SLACK, None, 14, needles=("xox",)),
    _Part("cloud_key", _PEM, None, 27, needles=("PRIVATE KEY",)),
)

DETECTOR_NAMES: frozenset[str] = frozenset(part.name for part in _PARTS)


def _alternation(parts: tuple[_Part, ...]) -> re.Pattern[str]:
    """One pattern for the numeric parts; the group named _<i> says part i matched."""
    lead = "[(0-9]" if any(p.first == "[(0-9]" for p in parts) else "[0-9]"
    alternatives = (
        f"(?P<_{i}>{'' if p.first == lead else '(?<=[0-9])'}{p.rest})" for i, p in enumerate(parts)
    )
    # Every numeric part starts where no digit precedes; saying so once up front lets the
    # digits inside a run fail at one lookbehind instead of at one per part.
    return re.compile(f"{lead}(?<![0-9][(0-9])(?:{'|'.join(alternatives)})", _ASCII)


_MAX_PASSES = 4


class DetectorSet:
    """The enabled content detectors of one policy, ready to mask text values."""

    def __init__(self, names: Iterable[str], replacement: str = "****") -> None:
        wanted = {names} if isinstance(names, str) else set(names)
        unknown = sorted(wanted - DETECTOR_NAMES)
        if unknown:
            raise ValueError(
                f"unknown detector {', '.join(map(repr, unknown))}; "
                f"known detectors: {', '.join(sorted(DETECTOR_NAMES))}"
            )
        self.names = frozenset(wanted)
        self.replacement = replacement
        enabled = tuple(p for p in _PARTS if p.name in wanted)
        # Flat tuples, shortest match first so that a scan stops at the first part that
        # needs a longer value: the scan of a value that matches nothing is mostly these tests.
        self._plan = tuple(
            sorted(
                (
                    (p.min_length, p.min_digits, p.needles, p.gate, p.pattern, p.check)
                    for p in enabled
                    if not p.rest
                ),
                key=lambda entry: entry[0],
            )
        )
        self._numeric_parts = tuple(p for p in enabled if p.rest)
        self._numeric = _alternation(self._numeric_parts) if self._numeric_parts else None
        self._numeric_length = min((p.min_length for p in self._numeric_parts), default=0)
        self._numeric_digits = min((p.min_digits for p in self._numeric_parts), default=0)
        self._by_group = {f"_{i}": p for i, p in enumerate(self._numeric_parts)}
        self._min_length = min((p.min_length for p in enabled), default=0)
        self._active = bool(enabled)
        if self._find(replacement):
            raise ValueError(
                f"replacement {replacement!r} is itself detected as PII; "
                "choose a marker such as '****'"
            )

    def mask(self, text: str) -> str | None:
        """`text` with every detected value replaced, or None when nothing was detected."""
        if len(text) < self._min_length or not self._active:
            return None
        spans = self._find(text)
        if not spans:
            return None
        return self._apply(text, spans)

    def mask_bytes(self, value: bytes) -> bytes | None:
        """`mask` on UTF-8 bytes; bytes that are not UTF-8 come back exactly as they were."""
        if len(value) < self._min_length or not self._active:
            return None
        text = value.decode("utf-8", "surrogateescape")
        spans = self._find(text, len(value) - len(value.translate(None, _DIGITS)))
        if not spans:
            return None
        return self._apply(text, spans).encode("utf-8", "surrogateescape")

    def _find(self, text: str, digits: int = -1) -> list[Span]:
        if digits < 0:
            raw = text.encode("utf-8", "surrogatepass")
            digits = len(raw) - len(raw.translate(None, _DIGITS))
        spans: list[Span] = []
        length = len(text)
        numeric = self._numeric
        if (
            numeric is not None
            and digits >= self._numeric_digits
            and length >= self._numeric_length
        ):
            self._find_numeric(numeric, text, spans)
        for min_length, min_digits, needles, gate, pattern, check in self._plan:
            if length < min_length:
                break
            if digits < min_digits:
                continue
            if needles:
                for needle in needles:
                    if needle in text:
                        break
                else:
                    continue
            if gate is not None and not gate(text):
                continue
            for match in pattern.finditer(text):
                if check is None:
                    spans.append(match.span())
                else:
                    span = check(match)
                    if span is not None:
                        spans.append(span)
        return spans

    def _find_numeric(self, numeric: re.Pattern[str], text: str, spans: list[Span]) -> None:
        pos = 0
        while (match := numeric.search(text, pos)) is not None:
            start = match.start()
            part = self._by_group[match.lastgroup or ""]
            span = part.check(match) if part.check is not None else match.span()
            if span is None:
                # The alternation tried the parts in order and stopped at the first that fit;
                # another may still match here ("0207 946 0958 12" fails Luhn as a card).
                span = self._retry(text, start, part)
            if span is None:
                pos = start + 1  # a failed candidate may hide one that starts inside it
            else:
                spans.append(span)
                pos = max(span[1], start + 1)

    def _retry(self, text: str, start: int, failed: _Part) -> Span | None:
        for part in self._numeric_parts:
            if part is failed or part.check is None:
                continue
            match = part.pattern.match(text, start)
            if match is not None and (span := part.check(match)) is not None:
                return span
        return None

    def _apply(self, text: str, spans: list[Span]) -> str:
        # Replacing can join what is left into a new match ("a@b.co@c.de" leaves
        # "****@c.de"), so rescan until clean; a value that never comes clean is replaced
        # whole.
        for _ in range(_MAX_PASSES):
            text = self._replace(text, spans)
            spans = self._find(text)
            if not spans:
                return text
        return self.replacement

    def _replace(self, text: str, spans: list[Span]) -> str:
        spans.sort()
        out: list[str] = []
        done = 0
        start, end = spans[0]
        for s, e in spans[1:]:
            if s <= end:
                end = max(end, e)
                continue
            out.append(text[done:start])
            out.append(self.replacement)
            done, start, end = end, s, e
        out.append(text[done:start])
        out.append(self.replacement)
        out.append(text[end:])
        return "".join(out)
