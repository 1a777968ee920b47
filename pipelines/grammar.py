"""The amount grammar: a weighted transducer from written characters to the normalised amount.

Input labels are the recognizer's classes (`pipelines.charset`); output labels are the pieces of
the normalised amount: the digits 0-9 (labels 0-9) and a cents-opening ".d" (labels 10-19), so
that every arc writes at most one output symbol and the grammar needs no input epsilons:
`$1,234.56` reads `$ 1 , 2 3 4 . 5 6` and writes `1 2 3 4 .5 6`, that is "1234.56".

Three grammars, all deterministic on their input so that no two paths read the same characters
into the same amount (the forward score then counts each reading once; the one exception is
rubbish after a complete amount, which the mid-amount and the trailing skips both read):
- `us`: [`$`] [`*`...] dollars (plain digits, or `,`-grouped thousands) then nothing, `.dd`,
  `.-`, ` dd/100`, or two raised digits (`125⁰⁰`, `125.⁰⁰`); then [`*`...].
- `eu`: the same with `.` grouping thousands and `,` opening the cents (`1.234,56`, `1234,-`).
- `digits`: the digits in order (raised ones too), every other symbol read and dropped.
Raised digits are labels of the interpretation graph, not recognizer classes
(`pipelines.charset.RAISED`): the recognition transformer gives a candidate digit that sits
high and small a raised alternative. Their arcs come after all the others (states after all
the others too), so that the weights of a reader made before them are a prefix of its own
(`AmountGrammar.load_older`).
Every state can also read the rubbish class and write nothing, at a learnable cost, so that a
speck of noise does not make a field unreadable; before the first and after the last character
this costs less (printed `$` signs, box corners and stray marks sit at the field's ends).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

import gtn
from pipelines.amounts import GRAMMARS
from pipelines.charset import CLASS_INDEX, DIGITS, RAISED, RUBBISH

OUTPUT_SYMBOLS: tuple[str, ...] = tuple(DIGITS) + tuple("." + d for d in DIGITS)
CENTS_OPEN = 10  # output label of ".0"; ".d" is CENTS_OPEN + d
RUBBISH_SKIP_SCORE = -6.0  # initial log-weight of reading rubbish as nothing, mid-amount
EDGE_SKIP_SCORE = -1.5  # the same before the amount starts and after it ends


def amount_to_labels(amount: str) -> list[int]:
    """Output labels of a normalised amount: "1234.56" -> [1, 2, 3, 4, 15, 6]."""
    if not amount or any(c not in DIGITS + "." for c in amount) or amount.count(".") > 1:
        raise ValueError(f"{amount!r} is not a normalised amount (digits, optionally .dd)")
    dollars, _, cents = amount.partition(".")
    if "." in amount and (len(cents) != 2 or not dollars):
        raise ValueError(f"{amount!r} is not a normalised amount: cents need two digits")
    labels = [int(d) for d in dollars]
    if cents:
        labels += [CENTS_OPEN + int(cents[0]), int(cents[1])]
    return labels


def labels_to_amount(labels: list[int] | tuple[int, ...]) -> str:
    return "".join(OUTPUT_SYMBOLS[label] for label in labels)


@dataclass
class _Builder:
    """Arcs of a transducer under construction; states are named by strings."""

    states: dict[str, int] = field(default_factory=dict)
    arcs: list[tuple[int, int, int, int]] = field(default_factory=list)
    accept: set[int] = field(default_factory=set)

    def state(self, name: str) -> int:
        return self.states.setdefault(name, len(self.states))

    def arc(self, src: str, dst: str, char: str, out: int = gtn.EPSILON) -> None:
        self.arcs.append((self.state(src), self.state(dst), CLASS_INDEX[char], out))

    def digits(self, src: str, dst: str, cents_open: bool = False) -> None:
        for d in DIGITS:
            self.arc(src, dst, d, (CENTS_OPEN if cents_open else 0) + int(d))


def _amount_grammar(thousands: str, decimal: str) -> _Builder:
    b = _Builder()
    b.state("start")
    b.arc("start", "dollar", "$")
    for s in ("start", "dollar", "stars"):
        b.arc(s, "stars", "*")
        b.digits(s, "n1")
    # Dollars without separators: n1, n2, n3, then n4 for any longer run.
    b.digits("n1", "n2")
    b.digits("n2", "n3")
    b.digits("n3", "n4")
    b.digits("n4", "n4")
    # Grouped thousands: 1-3 digits, then (separator, three digits) repeated.
    for s in ("n1", "n2", "n3", "k3"):
        b.arc(s, "k0", thousands)
    b.digits("k0", "k1")
    b.digits("k1", "k2")
    b.digits("k2", "k3")
    for s in ("n1", "n2", "n3", "n4", "k3"):
        b.arc(s, "point", decimal)
        b.digits(s, "frac1", cents_open=True)  # "1234 56/100": no written separator
    b.digits("point", "cents1", cents_open=True)
    b.digits("cents1", "cents2")
    b.arc("point", "dash", "-")
    b.digits("frac1", "frac2")
    b.arc("frac2", "frac3", "/")
    b.arc("frac3", "frac4", "1")
    b.arc("frac4", "frac5", "0")
    b.arc("frac5", "frac6", "0")
    ends = ("n1", "n2", "n3", "n4", "k3", "cents2", "dash", "frac6")
    for s in (*ends, "trail"):
        b.arc(s, "trail", "*")
    b.accept = {b.state(s) for s in (*ends, "trail")}
    return b


# Where raised cents may follow, in the builder's state names: after the dollars (`125⁰⁰`) or
# after the decimal separator (`125.⁰⁰`).
RAISED_FROM = ("n1", "n2", "n3", "n4", "k3", "point")


def _digits_grammar() -> _Builder:
    b = _Builder()
    b.state("start")
    for s in ("start", "digits"):
        b.digits(s, "digits")
        for sym in "$*.,-/":
            b.arc(s, s, sym)
    b.accept = {b.state("digits")}
    return b


def build_grammar(name: str) -> _Builder:
    if name == "us":
        return _amount_grammar(thousands=",", decimal=".")
    if name == "eu":
        return _amount_grammar(thousands=".", decimal=",")
    if name == "digits":
        return _digits_grammar()
    raise ValueError(f"unknown grammar {name!r}; expected one of {', '.join(GRAMMARS)}")


def raised_arcs(b: _Builder, name: str, first_new: int, lead: int, trail: int
                ) -> tuple[list[tuple[int, int, int, int]], list[float], list[int]]:
    """The raised-digit arcs of grammar `name` built by `b`, whose extra states are numbered
    from `first_new` (`lead` and `trail` are its junk states): arcs (src, dst, input, output),
    their initial weights, and which new states accept."""
    def raised(src: int, dst: int, cents_open: bool) -> list[tuple[int, int, int, int]]:
        return [(src, dst, RAISED + d, (CENTS_OPEN if cents_open else 0) + d) for d in range(10)]

    if name == "digits":
        arcs = [a for s in (0, lead, b.state("digits")) for a in raised(s, b.state("digits"),
                                                                          False)]
        return arcs, [0.0] * len(arcs), []
    cents1, cents2 = first_new, first_new + 1
    arcs = [a for s in RAISED_FROM for a in raised(b.state(s), cents1, True)]
    arcs += raised(cents1, cents2, False)
    arcs += [(cents2, b.state("trail"), CLASS_INDEX["*"], gtn.EPSILON)]
    init = [0.0] * len(arcs)
    arcs += [(cents1, cents1, RUBBISH, gtn.EPSILON), (cents2, cents2, RUBBISH, gtn.EPSILON),
             (cents2, trail, RUBBISH, gtn.EPSILON)]
    init += [RUBBISH_SKIP_SCORE, RUBBISH_SKIP_SCORE, EDGE_SKIP_SCORE]
    return arcs, init, [cents2]


class AmountGrammar(nn.Module):
    """A grammar transducer with one learnable log-weight per arc (initially 0, and
    RUBBISH_SKIP_SCORE on the rubbish-skipping loops)."""

    def __init__(self, name: str = "us") -> None:
        super().__init__()
        b = build_grammar(name)
        self.name = name
        arcs = list(b.arcs)
        skip_from = len(arcs)
        arcs += [(s, s, RUBBISH, gtn.EPSILON) for s in range(1, len(b.states))]
        # Leading junk goes through a state of its own (so that its cheap loop is not usable
        # inside the amount), which then reads on as the start state would.
        lead = len(b.states)
        arcs += [(0, lead, RUBBISH, gtn.EPSILON), (lead, lead, RUBBISH, gtn.EPSILON)]
        arcs += [(lead, dst, i, o) for src, dst, i, o in b.arcs if src == 0]
        # Trailing junk: an accept state reached from every accept state by reading rubbish.
        trail = lead + 1
        arcs += [(s, trail, RUBBISH, gtn.EPSILON) for s in sorted(b.accept)]
        arcs += [(trail, trail, RUBBISH, gtn.EPSILON)]
        edge_from = skip_from + len(b.states) - 1
        older = torch.tensor(arcs, dtype=torch.long)
        init = torch.zeros(len(arcs))
        init[skip_from:edge_from] = RUBBISH_SKIP_SCORE
        is_edge_skip = (older[:, 2] == RUBBISH) & (torch.arange(len(arcs)) >= edge_from)
        init[is_edge_skip] = EDGE_SKIP_SCORE
        self.num_older_arcs = len(arcs)
        new_arcs, new_init, new_accept = raised_arcs(b, name, trail + 1, lead, trail)
        arcs += new_arcs
        init = torch.cat([init, torch.tensor(new_init)])
        table = torch.tensor(arcs, dtype=torch.long)
        self.register_buffer("src", table[:, 0])
        self.register_buffer("dst", table[:, 1])
        self.register_buffer("ilabel", table[:, 2])
        self.register_buffer("olabel", table[:, 3])
        num_states = max(trail + 1, int(table[:, :2].max()) + 1)
        start = torch.zeros(num_states, dtype=torch.bool)
        start[0] = True
        accept = torch.zeros(num_states, dtype=torch.bool)
        accept[sorted(b.accept) + [trail] + new_accept] = True
        self.register_buffer("start", start)
        self.register_buffer("accept", accept)
        self.weight = nn.Parameter(init)
        self.num_states = num_states

    def load_older(self, weight: torch.Tensor) -> None:
        """Take the arc weights of a grammar made before raised cents (GRAMMAR_VERSION 2):
        the same arcs, in the same order, before the raised-digit ones, which keep their
        initial weights."""
        if weight.shape != (self.num_older_arcs,):
            raise ValueError(f"{self.name} grammar weights of shape {tuple(weight.shape)}, "
                             f"expected ({self.num_older_arcs},)")
        with torch.no_grad():
            self.weight[: self.num_older_arcs] = weight

    def graph(self) -> gtn.Graph:
        """The grammar as a gtn transducer whose weights are this module's parameter."""
        return gtn.Graph.from_tensors(
            num_states=self.num_states, start=self.start, accept=self.accept, src=self.src,
            dst=self.dst, ilabel=self.ilabel, olabel=self.olabel, weight=self.weight,
        )
