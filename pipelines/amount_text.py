"""Sampling amounts and writing them the way people write them on cheques.

An amount is an integer number of cents from 1 (0.01) to 9,999,999 (99,999.99). Its written
form follows a grammar (`us`: `1,234.56`; `eu`: `1.234,56`) and a style:

| style      | us                | eu               | allowed cents |
| ---------- | ----------------- | ---------------- | ------------- |
| `decimal`  | `1234.56` `12.00` | `1234,56`        | any           |
| `whole`    | `1234`            | `1234`           | 0             |
| `dash`     | `1234.-`          | `1234,-`         | 0             |
| `fraction` | `1234 56/100`     | `1234 56/100`    | any           |
| `raised`   | `1234⁵⁶` `12⁰⁰`   | `1234⁵⁶`         | any           |

plus thousands grouping (`1,234` / `1.234`), guard stars (`*1,234.56*`) and a handwritten
dollar sign (`$12.00`, `$ 12.00`). Every text written here parses back with
`pipelines.amounts.normalize_amount(text, grammar)`. The `raised` style (cents written small
and raised, as many US cheques have them) is not among the random styles: a data set asks for
it (`sample_amount_text(..., raised_cents=True)`), so that the others stay as they were.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.amounts import normalize_amount
from pipelines.charset import RAISED_DIGITS

STYLES = ("decimal", "whole", "dash", "fraction")
RAISED_STYLE = "raised"
WRITING_GRAMMARS = ("us", "eu")
MAX_CENTS = 9_999_999


@dataclass(frozen=True)
class AmountText:
    """A written amount: `text` as written, `amount` its normalisation, `cents` its value."""

    text: str
    amount: str
    grammar: str
    cents: int


def _group(dollars: int, sep: str) -> str:
    s = str(dollars)
    parts = []
    while len(s) > 3:
        parts.append(s[-3:])
        s = s[:-3]
    parts.append(s)
    return sep.join(reversed(parts))


def format_amount(
    cents: int,
    grammar: str = "us",
    style: str = "decimal",
    group: bool = False,
    lead_stars: int = 0,
    trail_stars: int = 0,
    dollar: bool = False,
    dollar_space: bool = False,
) -> str:
    """The written form of `cents` (1..9,999,999); ValueError for impossible combinations."""
    if grammar not in WRITING_GRAMMARS:
        raise ValueError(f"unknown grammar {grammar!r}; expected one of {WRITING_GRAMMARS}")
    if style not in (*STYLES, RAISED_STYLE):
        raise ValueError(f"unknown style {style!r}; expected one of {(*STYLES, RAISED_STYLE)}")
    if not 1 <= cents <= MAX_CENTS:
        raise ValueError(f"amount {cents} cents is outside 1..{MAX_CENTS}")
    if lead_stars < 0 or trail_stars < 0:
        raise ValueError("star counts must be non-negative")
    dollars, cc = divmod(cents, 100)
    if style in ("whole", "dash") and cc:
        raise ValueError(f"style {style!r} cannot write {cents} cents (it has non-zero cents)")
    thousands, decimal = (",", ".") if grammar == "us" else (".", ",")
    body = _group(dollars, thousands) if group else str(dollars)
    if style == "decimal":
        body += f"{decimal}{cc:02d}"
    elif style == "dash":
        body += f"{decimal}-"
    elif style == "fraction":
        body += f" {cc:02d}/100"
    elif style == RAISED_STYLE:
        body += "".join(RAISED_DIGITS[int(d)] for d in f"{cc:02d}")
    text = "*" * lead_stars + body + "*" * trail_stars
    if dollar:
        text = "$" + (" " if dollar_space else "") + text
    return text


def sample_cents(rng: np.random.Generator) -> int:
    """A realistic amount in cents: small amounts common, many round ones, up to 99,999.99."""
    bucket = rng.choice(5, p=[0.02, 0.38, 0.32, 0.21, 0.07])
    lo, hi = [(0, 0), (1, 99), (100, 999), (1000, 9999), (10000, 99999)][bucket]
    dollars = int(round(np.exp(rng.uniform(np.log(lo + 0.5), np.log(hi + 0.5))))) if hi else 0
    dollars = min(max(dollars, lo), hi)
    r = rng.random()
    if dollars >= 100 and r < 0.3:  # round hundreds / tens / fives
        step = int(rng.choice([5, 10, 50, 100]))
        dollars = max(step, dollars // step * step)
    r = rng.random()
    if r < 0.5:
        cc = 0
    elif r < 0.65:
        cc = int(rng.choice([25, 50, 75, 95, 99]))
    else:
        cc = int(rng.integers(0, 100))
    if dollars == 0 and cc == 0:
        cc = int(rng.integers(1, 100))
    return dollars * 100 + cc


def sample_amount_text(
    rng: np.random.Generator, grammar: str = "us", allow_dollar: bool = True,
    raised_cents: bool = False,
) -> AmountText:
    """A random amount written in a random style of `grammar` ('us' or 'eu').

    `allow_dollar`: whether a handwritten `$` may be written (False when one is printed).
    `raised_cents`: write the cents small and raised (`12⁵⁰`, `12⁰⁰`) whatever the style
    drawn; every other choice is drawn as without it.
    """
    cents = sample_cents(rng)
    if cents % 100:
        style = str(rng.choice(["decimal", "fraction"], p=[0.85, 0.15]))
    else:
        style = str(rng.choice(STYLES, p=[0.35, 0.3, 0.2, 0.15]))
    group = cents >= 100_000 and rng.random() < 0.55
    lead = trail = 0
    if rng.random() < 0.12:
        lead = int(rng.choice([1, 1, 2, 3]))
        trail = lead if rng.random() < 0.7 else int(rng.integers(0, 2))
    dollar = allow_dollar and rng.random() < 0.3
    if raised_cents:
        style = RAISED_STYLE
    text = format_amount(cents, grammar, style, group, lead, trail, dollar,
                         dollar_space=dollar and rng.random() < 0.4)
    return AmountText(text, normalize_amount(text, grammar), grammar, cents)
