"""Normalisation of written amounts: the one definition shared by labels, the reader and the
benchmarks.

US: `$1,234.56` -> `1234.56`, `1234 56/100` -> `1234.56`, `1234.00` -> `1234.00`,
`1,234` -> `1234`, `1234.-` -> `1234`, `*25*` -> `25`, `0 75/100` -> `0.75`.
Cents written small and raised, after the dollars or after their separator: `125⁰⁰` ->
`125.00`, `$1,234.⁵⁶` -> `1234.56`.
European: `1.234,56` -> `1234.56`. Digits: the digits alone in order (`13.254,00` -> `1325400`,
`125⁰⁰` -> `12500`).
"""

from __future__ import annotations

import re

from pipelines.charset import RAISED_DIGITS, TO_PLAIN_DIGITS

GRAMMARS = ("us", "eu", "digits")

_RAISED = f"[{RAISED_DIGITS}]"
_US = re.compile(
    r"^\$?\s*\**\s*(?P<d>[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)"
    rf"(?:\.(?P<c>[0-9][0-9])|\s+(?P<f>[0-9][0-9])/100|\.-|\.?(?P<r>{_RAISED}{{2}}))?\s*\**$"
)
_EU = re.compile(
    r"^\$?\s*\**\s*(?P<d>[0-9]{1,3}(?:\.[0-9]{3})+|[0-9]+)"
    rf"(?:,(?P<c>[0-9][0-9])|\s+(?P<f>[0-9][0-9])/100|,-|,?(?P<r>{_RAISED}{{2}}))?\s*\**$"
)


def normalize_amount(text: str, grammar: str = "us") -> str:
    """The normalised amount of a written amount; ValueError if it is not a valid amount."""
    if grammar not in GRAMMARS:
        raise ValueError(f"unknown grammar {grammar!r}; expected one of {', '.join(GRAMMARS)}")
    if grammar == "digits":
        digits = "".join(ch for ch in text.translate(TO_PLAIN_DIGITS) if ch in "0123456789")
        if not digits:
            raise ValueError(f"amount {text!r} has no digits")
        return digits
    match = (_US if grammar == "us" else _EU).match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a well-formed {grammar} amount")
    dollars = re.sub(r"[.,]", "", match["d"])
    dollars = dollars.lstrip("0") or "0"
    cents = match["c"] or match["f"] or (match["r"] or "").translate(TO_PLAIN_DIGITS) or None
    return f"{dollars}.{cents}" if cents is not None else dollars


def is_valid_amount(text: str, grammar: str = "us") -> bool:
    try:
        normalize_amount(text, grammar)
    except ValueError:
        return False
    return True
