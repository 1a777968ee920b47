import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.amount_text import (
    MAX_CENTS,
    RAISED_STYLE,
    STYLES,
    format_amount,
    sample_amount_text,
    sample_cents,
)
from pipelines.amounts import normalize_amount


def _expected(cents: int, style: str) -> str:
    d, c = divmod(cents, 100)
    return str(d) if style in ("whole", "dash") else f"{d}.{c:02d}"


@given(cents=st.integers(1, MAX_CENTS), style=st.sampled_from((*STYLES, RAISED_STYLE)),
       grammar=st.sampled_from(["us", "eu"]), group=st.booleans(),
       lead=st.integers(0, 3), trail=st.integers(0, 3), dollar=st.booleans(),
       space=st.booleans())
def test_every_format_parses_back(cents, style, grammar, group, lead, trail, dollar, space):
    if style in ("whole", "dash") and cents % 100:
        with pytest.raises(ValueError):
            format_amount(cents, grammar, style)
        return
    text = format_amount(cents, grammar, style, group, lead, trail, dollar, space)
    assert normalize_amount(text, grammar) == _expected(cents, style)


@pytest.mark.parametrize("args, text", [
    ((123456, "us", "decimal", True), "1,234.56"), ((123456, "us", "decimal"), "1234.56"),
    ((123400, "us", "decimal"), "1234.00"), ((123400, "us", "whole"), "1234"),
    ((123400, "us", "whole", True), "1,234"), ((2550, "us", "decimal"), "25.50"),
    ((123456, "us", "fraction"), "1234 56/100"), ((123400, "us", "dash"), "1234.-"),
    ((123456, "us", "decimal", True, 1, 1), "*1,234.56*"),
    ((1200, "us", "decimal", False, 0, 0, True, True), "$ 12.00"),
    ((123456, "eu", "decimal", True), "1.234,56"), ((123400, "eu", "dash"), "1234,-"),
    ((12500, "us", "raised"), "125⁰⁰"), ((123456, "us", "raised", True, 0, 0, True), "$1,234⁵⁶"),
    ((123407, "eu", "raised", True), "1.234⁰⁷"),
])
def test_formats_people_write(args, text):
    assert format_amount(*args) == text


def test_bad_arguments_are_refused():
    for bad in [dict(cents=0), dict(cents=MAX_CENTS + 1), dict(cents=5, grammar="fr"),
                dict(cents=5, style="roman")]:
        with pytest.raises(ValueError):
            format_amount(**bad)


def test_sampled_amounts_are_realistic():
    rng = np.random.default_rng(0)
    cents = np.array([sample_cents(rng) for _ in range(3000)])
    assert cents.min() >= 1 and cents.max() <= MAX_CENTS
    assert 0.35 < np.mean(cents % 100 == 0) < 0.7  # many round amounts
    assert np.mean(cents < 10000) > 0.3  # small amounts common
    assert np.mean(cents >= 1_000_000) > 0.02  # some five-digit amounts
    for _ in range(300):
        a = sample_amount_text(rng, str(rng.choice(["us", "eu"])), allow_dollar=False)
        assert "$" not in a.text and normalize_amount(a.text, a.grammar) == a.amount


def test_raised_cents_change_only_the_style():
    """Asking for raised cents draws everything else as without them."""
    for seed in range(200):
        plain = sample_amount_text(np.random.default_rng(seed), "us")
        raised = sample_amount_text(np.random.default_rng(seed), "us", raised_cents=True)
        assert raised.cents == plain.cents and raised.grammar == plain.grammar
        dollars, cents = divmod(raised.cents, 100)
        assert raised.amount == f"{dollars}.{cents:02d}"
