"""Normalisation of written amounts: the one definition shared by labels, the reader and the
benchmarks.

US: `$1,234.56` -> `1234.56`, `1234 56/100` -> `1234.56`, `1234.00` -> `1234.00`,
`1,234` -> `1234`, `1234.-` -> `1234`, `*25*` -> `25`, `0 75/100` -> `0.75`.
European: `1.234,56` -> `1234.56`. Digits: the digits alone in order (`13.254,00` -> `1325400`).
"""

from __future__ import annotations

import re

GRAMMARS = ("us", "eu", "digits")

_US = re.compile(
    r"^\$?\s*\**\s*(?P<d>\d{1,3}(?:,\d{3})+|\d+)"
    r"(?:\.(?P<c>\d\d)|\s+(?P<f>\d\d)/100|\.-)?\s*\**$"
)
_EU = re.compile(
    r"^\$?\s*\**\s*(?P<d>\d{1,3}(?:\.\d{3})+|\d+)"
    r"(?:,(?P<c>\d\d)|\s+(?P<f>\d\d)/100|,-)?\s*\**$"
)


def normalize_amount(text: str, grammar: str = "us") -> str:
    """The normalised amount of a written amount; ValueError if it is not a valid amount."""
    if grammar not in GRAMMARS:
        raise ValueError(f"unknown grammar {grammar!r}; expected one of {', '.join(GRAMMARS)}")
    if grammar == "digits":
        digits = "".join(ch for ch in text if ch.isdigit())
        if not digits:
            raise ValueError(f"amount {text!r} has no digits")
        return digits
    match = (_US if grammar == "us" else _EU).match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a well-formed {grammar} amount")
    dollars = re.sub(r"[.,]", "", match["d"])
    dollars = dollars.lstrip("0") or "0"
    cents = match["c"] or match["f"]
    return f"{dollars}.{cents}" if cents is not None else dollars


def is_valid_amount(text: str, grammar: str = "us") -> bool:
    try:
        normalize_amount(text, grammar)
    except ValueError:
        return False
    return True
