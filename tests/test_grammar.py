"""The amount grammars accept exactly the well-formed amounts and write their normalisation."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import gtn
from pipelines.amount_text import sample_amount_text
from pipelines.amounts import is_valid_amount, normalize_amount
from pipelines.charset import CLASS_INDEX, LABELS, RAISED, RUBBISH
from pipelines.grammar import AmountGrammar, amount_to_labels, labels_to_amount

GRAMMAR = {name: AmountGrammar(name).graph() for name in ("us", "eu", "digits")}
LABEL_INDEX = {c: i for i, c in enumerate(LABELS)}


def readings(written: str, grammar: str) -> set[str]:
    """Every amount the grammar writes for the written characters (spaces are not ink)."""
    chars = gtn.linear_graph([LABEL_INDEX[c] for c in written.replace(" ", "")])
    composed = gtn.compose(chars, GRAMMAR[grammar])
    if composed.num_arcs == 0:
        return set()
    return {labels_to_amount(list(out)) for out, _ in gtn.nbest(composed, 5)}


@pytest.mark.parametrize("written,grammar,amount", [
    ("$1,234.56", "us", "1234.56"), ("1234 56/100", "us", "1234.56"),
    ("1234.00", "us", "1234.00"), ("1,234", "us", "1234"), ("1234.-", "us", "1234"),
    ("*25*", "us", "25"), ("0 75/100", "us", "0.75"), ("*1,234.56*", "us", "1234.56"),
    ("$ 12.00", "us", "12.00"), ("$***3.45", "us", "3.45"), ("1.234,56", "eu", "1234.56"),
    ("1234,-", "eu", "1234"), ("13.254,00", "digits", "1325400"), ("$4.5/", "digits", "45"),
    ("125⁰⁰", "us", "125.00"), ("$1,234.⁵⁶", "us", "1234.56"), ("*25⁷⁵*", "us", "25.75"),
    ("0⁹⁹", "us", "0.99"), ("1.234,⁵⁶", "eu", "1234.56"), ("1234⁵⁶", "eu", "1234.56"),
    ("125⁰⁰", "digits", "12500"),
])
def test_known_amounts(written, grammar, amount):
    assert readings(written, grammar) == {amount}
    if grammar != "digits":
        assert normalize_amount(written, grammar) == amount


@pytest.mark.parametrize("written,grammar", [
    ("1,23.45", "us"), ("12,34", "us"), ("$*", "us"), ("1.2.3", "us"), ("12.3", "us"),
    ("1/100", "us"), ("1,234", "eu"), ("$", "digits"), ("", "us"), ("5$", "us"),
    ("12⁵", "us"), ("⁵⁰", "us"), ("12⁵⁰⁰", "us"), ("12⁵⁰.00", "us"), ("1²3", "us"),
    ("12.5⁰", "us"), ("12 ⁵⁰/100", "us"),
])
def test_malformed_amounts_are_refused(written, grammar):
    assert readings(written, grammar) == set()


@given(st.integers(0, 2**32 - 1), st.sampled_from(["us", "eu"]), st.booleans())
def test_generated_amounts_read_as_their_normalisation(seed, grammar, raised):
    text = sample_amount_text(np.random.default_rng(seed), grammar, raised_cents=raised).text
    assert readings(text, grammar) == {normalize_amount(text, grammar)}


@given(st.text(alphabet="0123456789.,-/$*⁰⁵", max_size=9))
def test_grammar_agrees_with_the_normaliser(written):
    for grammar in ("us", "eu"):
        want = {normalize_amount(written, grammar)} if is_valid_amount(written, grammar) else set()
        # The normaliser strips leading zeros of the dollars; the grammar writes them.
        got = {a.lstrip("0") or "0" if not a.startswith("0.") else a for a in
               readings(written, grammar)}
        got = {("0" + a if a.startswith(".") else a) for a in got}
        assert got == want, (written, grammar)


def test_rubbish_is_skipped_at_a_cost():
    chars = gtn.linear_graph([CLASS_INDEX["4"], RUBBISH, CLASS_INDEX["2"]])
    composed = gtn.compose(chars, GRAMMAR["us"])
    (out, score), = gtn.nbest(composed, 2)
    assert labels_to_amount(list(out)) == "42" and score < -1.0


def test_labels_round_trip_and_bad_amounts():
    for amount in ["0", "7", "1234.56", "0.75", "99999.99"]:
        assert labels_to_amount(amount_to_labels(amount)) == amount
    for bad in ["", "1.5", "12.345", "1,2", "a"]:
        with pytest.raises(ValueError):
            amount_to_labels(bad)


def test_raised_digit_arcs_come_after_the_older_arcs():
    """A reader made before raised cents keeps its grammar weights (`load_older`): its arcs are
    this grammar's first ones, and no raised digit is read before them."""
    for name in ("us", "eu", "digits"):
        grammar = AmountGrammar(name)
        n = grammar.num_older_arcs
        assert (grammar.ilabel[:n] < RAISED).all() and (grammar.ilabel[n:] >= RAISED).any()
        older = torch.linspace(-1, 1, n)
        grammar.load_older(older)
        assert torch.equal(grammar.weight[:n].detach(), older)
        assert torch.equal(grammar.weight[n:].detach(), AmountGrammar(name).weight[n:].detach())
        with pytest.raises(ValueError, match="grammar weights of shape"):
            grammar.load_older(torch.zeros(n + 1))


def test_grammar_weights_are_learnable():
    grammar = AmountGrammar("us")
    chars = gtn.linear_graph([CLASS_INDEX[c] for c in "12.50"])
    score = gtn.forward_score(gtn.compose(chars, grammar.graph()))
    score.backward()
    assert grammar.weight.grad is not None and grammar.weight.grad.abs().sum() == 5
    with pytest.raises(ValueError, match="unknown grammar"):
        AmountGrammar("fr")
    assert torch.isfinite(score)
