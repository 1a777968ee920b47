"""The cheque reader: field extraction -> segmentation -> recognition -> grammar -> Viterbi.

Each stage hands the next a graph of alternatives. `ChequeReader` holds every learnable part
(LeNet, the segment scorer, the field scorer, the grammars' weights) so that the whole chain can
be trained globally; `read_cheque` is the one-call function for library users.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import torch
from torch import nn

import gtn
from pipelines.amounts import GRAMMARS
from pipelines.charset import CLASSES, LABELS, NUM_CLASSES, RUBBISH
from pipelines.field_scorer import FieldScorer
from pipelines.grammar import CENTS_OPEN, AmountGrammar, amount_to_labels, labels_to_amount
from pipelines.lenet import for_inference, input_channels
from pipelines.preparation import (
    Look,
    LooksHere,
    Prepared,
    SecondLook,
    box_in_scan,
    prepare,
)
from pipelines.recognition import RaisedScorer, SegmentScorer, interpretation_graph
from pipelines.recognizer import load_recognizer

if TYPE_CHECKING:
    from pipelines.images import Page

# The shipped readers: the default reads with a mixture of four readers trained apart
# (`save_mixture`: `reader.pt`, then two globally trained `cnn-context` readers and a
# `cnn-wide` one);
# TRAINED_READER_WEIGHTS, the globally trained LeNet-5 reader, is where training starts by
# default.
DEFAULT_READER_WEIGHTS = Path(__file__).resolve().parent / "weights" / "reader-mixture.pt"
TRAINED_READER_WEIGHTS = DEFAULT_READER_WEIGHTS.with_name("reader.pt")
DEFAULT_REJECT_BELOW = 0.5
# A reading less confident than this is tried again with the scan turned upside down, keeping
# a more confident reading. On 300 training-split cheques,
# 76% of the upside-down scans and 1.7% of the upright ones read below it (none of those
# correctly); at 0.3, 87% and 2.7%, but the retries, run by the calling process, then cost ~10%
# of the batch reading speed.
RETRY_BELOW = 0.2
# A reading whose characters fit badly, costing more than this on average along its path
# (`SegmentReading.penalty`), is read again upside down too, however confident. On 300
# training-split cheques the median cost was 0.7 upright and 4.4 turned over; with
# RETRY_BELOW, 99.7% of the turned-over readings and 4% of the upright ones are read again
# (at 2.5: also 99.7%, but 5.7% of the upright ones).
RETRY_PENALTY = 3.0
# A cheque scan read less confidently than this is read again with the fields that a look in
# a pale pen's ink finds added to its own (`preparation.faint_pen_view`): heavy noise and blur
# over a grey pen had left the amount out of the field search's ink, and the reader read the
# date or a blot. See the README for the measurements.
FAINT_PEN_BELOW = 0.6
GRAMMAR_VERSION = 3  # bump when the grammars' states or arcs change: old weights no longer fit
# Version 2 had no raised cents: its grammar weights are a prefix of version 3's
# (`AmountGrammar.load_older`), and its reader had no raised scorer (it starts as made).
OLDER_GRAMMAR_VERSION = 2


@dataclass(frozen=True)
class SegmentReading:
    """One character of the chosen path: its box in image pixels, its class, and its penalty
    on the path (minus the arc's score: recognizer plus segment penalty, less the grammar's
    arc weight and, on a field's first arc, the field score)."""

    box: tuple[int, int, int, int]
    char: str
    penalty: float


@dataclass
class Reading:
    """What the reader says about one image."""

    amount: str | None
    text: str | None
    confidence: float
    rejected: bool
    field_box: tuple[int, int, int, int] | None
    error: str | None = None
    segments: list[SegmentReading] = field(default_factory=list)
    alternatives: list[tuple[str, float]] = field(default_factory=list)
    field_index: int | None = None  # which candidate field of the Prepared image was read


# Reading drops a segment's classes scoring this much (log) below its best class: arcs
# carrying under exp(-CLASS_BEAM) of the weight, most of the graph (chosen on validation
# cheques, see the model card).
CLASS_BEAM = 12.0
LENET_CHUNK = 256  # characters per LeNet call when reading
# By default a mixture of readers asks each reader after the first only where the readers
# before it read with a confidence under this (`ReaderMixture.ask_below`); above it, that
# reading stands with its own confidence. For the previous default mixture (two LeNets; the
# model card), on 3,200 validation cheques, asking the others where the first was at least
# this sure turned no cheque from right to wrong or back (nor the error at 5% and 10% reject),
# and not asking spares the second decoding of 56% of them (at 0.9: 68%, with error at 10%
# reject 3.75% instead of 3.68%). For the shipped one (`reader.pt` + the wide reader), asking
# the wide reader on every cheque read 1 more of the 3,200 (94.16% against 94.13%) at about
# 18% fewer cheques a second.
ASK_OTHERS_BELOW = 0.95
# A scan read less confidently than this (after `read_again`) is also read at 0.8 and 1.25
# times the size it was read at, and one still under it then with its handwriting drawn a
# pixel a side thinner and thicker (the rounds of LOOKS); the amount is chosen by the sum
# rule over the views so far and the readers (`read_other_views`): the cuts, the ink found
# and the characters' pixels all change with the size and the pen, so the views err apart.
# With both rounds, 0.7 read more validation cheques, rough scans and fields than 0.6 (0.8
# as many as 0.7, more slowly); the README has the measurements.
ZOOM_LOOK_BELOW = 0.7
LOOKS = ((Look(zoom=0.8), Look(zoom=1.25)), (Look(pen=-1), Look(pen=1)))


class ChequeReader(nn.Module):
    """Every learnable part of the reader, and the graphs it builds."""

    def __init__(self, recognizer: nn.Module) -> None:
        super().__init__()
        # channels-last convolutions are about a third faster on the CPU for these small maps
        self.recognizer = recognizer.to(memory_format=torch.channels_last)
        self.segment_scorer = SegmentScorer()
        self.raised_scorer = RaisedScorer()
        self.field_scorer = FieldScorer()
        # Which candidate fields `prepare` keeps is decided by this frozen copy of the field
        # scorer as it was before global training: training only ever saw (and re-weighed)
        # the candidates it kept, so the trained scorer is no judge of the others.
        self.field_proposer = FieldScorer().requires_grad_(False)
        self.grammars = nn.ModuleDict({name: AmountGrammar(name) for name in GRAMMARS})

    def interpretation_graphs(self, batch: Sequence[Prepared]) -> list[gtn.Graph]:
        """Interpretation graphs of a batch, with one LeNet pass over all candidate characters
        (and, after them, the raised-digit candidates normalised on their own)."""
        plain = sum(len(p.inputs) for p in batch)
        # A raised digit is normalised on its own, with nothing around it: its one channel
        # stands for every channel the recognizer reads (`lenet.ContextCNN`).
        channels = input_channels(self.recognizer)
        inputs = torch.from_numpy(np.concatenate(
            [p.inputs[:, :channels] for p in batch]
            + [np.repeat(p.raised_inputs, channels, 1) for p in batch], dtype=np.float32))
        device = next(self.recognizer.parameters()).device
        # Reading (no gradient, eval mode) runs a folded copy of LeNet: same penalties, faster.
        reading = not torch.is_grad_enabled() and not self.recognizer.training
        inputs = inputs.to(device, memory_format=torch.channels_last)
        # In chunks that keep LeNet's feature maps in cache: 2x faster than one pass when
        # reading, a third faster forward and backward when training. A recognizer in training
        # mode gets one pass, so that batch norm sees the whole batch.
        chunks = inputs.split(LENET_CHUNK) if not self.recognizer.training else (inputs,)
        if reading:
            net = for_inference(self.recognizer).to(memory_format=torch.channels_last)
            penalties = torch.cat([net(c) for c in chunks]).cpu()
        else:
            penalties = torch.cat([self.recognizer(c) for c in chunks]).cpu()
        penalties, raised_pen = penalties[:plain], penalties[plain:]
        features = torch.cat([torch.as_tensor(s.features) for p in batch for s in p.segmentations])
        seg_pen = self.segment_scorer(features)
        geometry = torch.cat([torch.as_tensor(s.raised_geometry) for p in batch
                              for s in p.segmentations])
        raised = self.raised_scorer(geometry, features)
        graphs, at, at_raised = [], 0, 0
        for p in batch:
            cls, seg, logits, up = [], [], [], []
            for n, r in zip(p.arc_counts, p.raised_counts):
                cls.append(penalties[at : at + n])
                seg.append(seg_pen[at : at + n])
                logits.append(raised[at : at + n])
                up.append(raised_pen[at_raised : at_raised + r])
                at += n
                at_raised += r
            field_scores = (self.field_scorer(torch.from_numpy(p.field_features))
                            if len(p.fields) > 1 else torch.zeros(1))
            field_scores = torch.log_softmax(field_scores, 0)
            graphs.append(interpretation_graph(p.segmentations, cls, seg, field_scores,
                                               CLASS_BEAM if reading else math.inf, logits, up))
        return graphs

    def amount_graphs(self, batch: Sequence[Prepared], grammar: str) -> list[gtn.Graph]:
        """Interpretation graphs composed with the grammar: output labels spell amounts."""
        return self.with_grammar(self.interpretation_graphs(batch), grammar)

    def with_grammar(self, interpretations: Sequence[gtn.Graph], grammar: str
                     ) -> list[gtn.Graph]:
        """Interpretation graphs composed with the grammar (the amount graphs)."""
        return gtn.compose_many(list(interpretations), self.grammars[grammar].graph())

    def writings(self, grammar: str, amounts: Sequence[str]) -> list[gtn.Graph]:
        """For each amount, the grammar restricted to the ways of writing it: a transducer from
        written characters to that amount's labels."""
        inverse = gtn.invert(self.grammars[grammar].graph())
        return [gtn.invert(w) for w in gtn.compose_many(
            [gtn.linear_graph(amount_to_labels(a)) for a in amounts], inverse)]

    def constrained_graphs(self, interpretations: Sequence[gtn.Graph], grammar: str,
                           amounts: Sequence[str]) -> list[gtn.Graph]:
        """The paths of each interpretation graph composed with the grammar that read the given
        amount: interpretation o (grammar o amount), the same graph as (interpretation o
        grammar) o amount, made about 4x faster by restricting the small grammar first."""
        return gtn.compose_pairs(list(interpretations), self.writings(grammar, amounts))


class ReaderMixture:
    """Readers that read together, inference only: each reads the same prepared images (they
    share one field proposer, so the images are prepared once) and `mixture_readings` combines
    their amount posteriors. Readers trained apart (one with a LeNet of its own) make
    different mistakes: see the model card for what two of them gain."""

    def __init__(self, members: Sequence[ChequeReader],
                 ask_below: Sequence[float] | None = None) -> None:
        if len(members) < 2:
            raise ValueError(f"a mixture needs at least two readers, got {len(members)}")
        ask = [ASK_OTHERS_BELOW] * (len(members) - 1) if ask_below is None else list(ask_below)
        if len(ask) != len(members) - 1 or not all(a >= 0.0 for a in ask):
            raise ValueError(f"a mixture of {len(members)} readers needs {len(members) - 1} "
                             f"confidences (at least 0; over 1: always) to ask its readers "
                             f"after the first below, got {ask}")
        first = members[0].field_proposer.state_dict()
        for k, m in enumerate(members[1:], 2):
            mine = m.field_proposer.state_dict()
            if any(not torch.equal(v, mine[name]) for name, v in first.items()):
                raise ValueError(f"reader {k} of the mixture proposes fields with other weights "
                                 "than reader 1: the readers of a mixture must share their "
                                 "field proposer")
        self.members = list(members)
        # members[k] (k >= 1) reads where members[:k] together read with a confidence under
        # ask_below[k - 1]: a costly reader can be kept for the hardest scans.
        self.ask_below = tuple(float(a) for a in ask)

    @property
    def field_proposer(self) -> FieldScorer:
        return self.members[0].field_proposer

    def eval(self) -> ReaderMixture:
        for m in self.members:
            m.eval()
        return self


def _decode(graph: gtn.Graph, arcs: list[int], prep: Prepared) -> Reading:
    """The best path (arc indices) of an amount graph as a Reading (confidence filled in
    later)."""
    if not arcs:
        return Reading(None, None, 0.0, True, None)
    idx = torch.tensor(arcs)
    ilabels = graph.ilabel[idx].tolist()
    olabels = [o for o in graph.olabel[idx].tolist() if o != gtn.EPSILON]
    text = ""
    for i, o in zip(ilabels, graph.olabel[idx].tolist()):
        if i == RUBBISH:
            continue
        if o >= CENTS_OPEN and text[-1:].isdigit() and i < NUM_CLASSES:
            text += " "  # cents written as a fraction, after a space: "1234 56/100"
        text += LABELS[i]
    seg_ids = graph.payload[idx].tolist() if graph.payload is not None else []
    starts = np.cumsum([0] + prep.arc_counts)
    k = int(np.searchsorted(starts, seg_ids[0], side="right") - 1) if seg_ids else 0
    field = prep.fields[k]
    fx, fy, _, _ = field.box
    boxes = prep.segmentations[k].field_boxes()
    segments = []
    for s, i in zip(seg_ids, ilabels):
        x, y, w, h = (int(v) for v in boxes[s - starts[k]])
        box = box_in_scan((fx + x, fy + y, w, h), field.turns, prep.image_shape, prep.to_scan,
                          prep.scan_shape)
        # The arc's score is -(class penalty + segment penalty): report their sum.
        pen = -float(graph.weight[idx[len(segments)]]) if i >= 0 else float("nan")
        segments.append(SegmentReading(box, LABELS[i], pen))
    written = [s.box for s in segments if s.char != CLASSES[RUBBISH]] or [s.box for s in segments]
    return Reading(labels_to_amount(olabels), text, 0.0, False, union_box(written),
                   segments=segments, field_index=k)


def union_box(boxes: Sequence[tuple[int, int, int, int]], margin: int = 4
              ) -> tuple[int, int, int, int]:
    """The box around `boxes` (x, y, w, h), grown by `margin` pixels on every side."""
    x0 = min(b[0] for b in boxes) - margin
    y0 = min(b[1] for b in boxes) - margin
    x1 = max(b[0] + b[2] for b in boxes) + margin
    y1 = max(b[1] + b[3] for b in boxes) + margin
    return (max(x0, 0), max(y0, 0), x1 - max(x0, 0), y1 - max(y0, 0))


@torch.no_grad()
def decode_batch(reader: ChequeReader | ReaderMixture, batch: Sequence[Prepared],
                 grammar: str, reject_below: float = DEFAULT_REJECT_BELOW, alternatives: int = 0,
                 decoded: Decodings | None = None) -> list[Reading]:
    """Viterbi readings of prepared images, with the confidence of each: the posterior of the
    best amount (forward score of its paths minus that of all paths). A mixture of readers
    reads with its first reader; where the readers so far are less sure than the mixture's
    `ask_below` for the next one, that one reads too, and the reading is `mixture_readings`
    of all so far. What each reader found is added to `decoded` when given (for
    `pooled_readings`)."""
    members = reader.members if isinstance(reader, ReaderMixture) else [reader]
    decoded = {} if decoded is None else decoded
    readings, first_posteriors = _best_readings(members[0], batch, grammar, alternatives)
    _remember(decoded, 0, batch, readings, first_posteriors)
    for r in readings:
        r.rejected = r.amount is None or r.confidence < reject_below
    for asked, below in enumerate(reader.ask_below if isinstance(reader, ReaderMixture) else (),
                                  2):
        unsure = [i for i, r in enumerate(readings) if r.confidence < below]
        if not unsure:
            break
        pooled = _pool(members[:asked], [[batch[i]] for i in unsure], grammar, reject_below,
                       alternatives, decoded)
        for i, (_, r) in zip(unsure, pooled):
            readings[i] = r
    return readings


# The log posterior of amounts read from prepared images: [(image index, amount), ...] ->
# log p(amount | image), -inf where no path reads it.
LogPosteriors = Callable[[Sequence[tuple[int, str]]], list[float]]


@dataclass(frozen=True)
class Decoded:
    """What one reader's `_best_readings` found for one prepared image: its reading, and the
    log posteriors of other amounts (`log_posteriors` of the batch, where the image is at
    `index`). It holds the image, whose id keys it in `Decodings`."""

    prep: Prepared
    reading: Reading
    log_posteriors: LogPosteriors
    index: int


# What readers found for images already decoded: (member of the reader, id(image)) -> Decoded.
Decodings = dict[tuple[int, int], Decoded]


def _remember(decoded: Decodings | None, member: int, batch: Sequence[Prepared],
              readings: Sequence[Reading], log_posteriors: LogPosteriors) -> None:
    if decoded is not None:
        for i, (prep, r) in enumerate(zip(batch, readings)):
            decoded[member, id(prep)] = Decoded(prep, replace(r), log_posteriors, i)


def _known(decoded: Decodings, member: int, prep: Prepared) -> Decoded | None:
    found = decoded.get((member, id(prep)))
    return found if found is not None and found.prep is prep else None


def _best_readings(reader: ChequeReader, batch: Sequence[Prepared], grammar: str,
                   alternatives: int) -> tuple[list[Reading], LogPosteriors]:
    """The Viterbi reading of each prepared image with its confidence (not yet rejected or
    not), and the log posterior of any other amounts of the same images."""
    interpretations = reader.interpretation_graphs(batch)
    graphs = reader.with_grammar(interpretations, grammar)
    readings = [_decode(g, arcs, p) for g, arcs, p in zip(graphs, gtn.viterbi_paths(graphs),
                                                          batch)]
    totals: dict[int, torch.Tensor] = {}  # forward score of each image's whole amount graph

    def log_posteriors(pairs: Sequence[tuple[int, str]]) -> list[float]:
        if not pairs:
            return []
        todo = sorted({i for i, _ in pairs} - totals.keys())
        if todo:
            totals.update(zip(todo, gtn.forward_score([graphs[i] for i in todo])))
        constrained = reader.constrained_graphs([interpretations[i] for i, _ in pairs], grammar,
                                                [a for _, a in pairs])
        whole = torch.stack([totals[i] for i, _ in pairs])
        return (gtn.forward_score(constrained) - whole).tolist()

    scored = [(i, r.amount) for i, r in enumerate(readings) if r.amount is not None]
    for (i, _), lp in zip(scored, log_posteriors(scored)):
        readings[i].confidence = float(np.exp(min(lp, 0.0)))
    if alternatives:
        for g, r in zip(graphs, readings):
            r.alternatives = [(labels_to_amount(list(o)), float(s))
                              for o, s in gtn.nbest(g, alternatives)]
    return readings, log_posteriors


def mixture_readings(members: Sequence[tuple[list[Reading], LogPosteriors]],
                     reject_below: float = DEFAULT_REJECT_BELOW) -> list[Reading]:
    """Readings of a mixture of readers with equal weights, from each member's
    `_best_readings` of the same images. The amount read is, among the members' best
    amounts, the one whose mean posterior over the members is highest (the sum rule: a
    member without a path gives every amount 0), and that mean is its confidence. The text,
    field and segments are those of the member that gives the amount the highest posterior
    among those that read it."""
    return [r for r, _ in _mixture_choices(members, reject_below)]


def _mixture_choices(members: Sequence[tuple[list[Reading], LogPosteriors]],
                     reject_below: float) -> list[tuple[Reading, int]]:
    """`mixture_readings`, each with the index of the member whose reading it is."""
    n = len(members[0][0])
    candidates = [list(dict.fromkeys(rs[i].amount for rs, _ in members
                                     if rs[i].amount is not None)) for i in range(n)]
    posterior: list[dict[tuple[int, str], float]] = []  # of each member
    for readings, log_posteriors in members:
        known = {(i, r.amount): r.confidence for i, r in enumerate(readings)
                 if r.amount is not None}
        # a member that found no path gives every amount 0 (its graph has no complete path)
        others = [(i, a) for i, r in enumerate(readings) if r.amount is not None
                  for a in candidates[i] if a != r.amount]
        known.update((pair, float(np.exp(min(lp, 0.0))))
                     for pair, lp in zip(others, log_posteriors(others)))
        posterior.append(known)
    out = []
    for i in range(n):
        if not candidates[i]:
            out.append((replace(members[0][0][i], rejected=True), 0))
            continue
        mean = {a: sum(p.get((i, a), 0.0) for p in posterior) / len(members)
                for a in candidates[i]}
        best = max(candidates[i], key=lambda a: mean[a])  # ties: the first member's
        source = max((m for m, (rs, _) in enumerate(members) if rs[i].amount == best),
                     key=lambda m: posterior[m][(i, best)])
        out.append((replace(members[source][0][i], confidence=mean[best],
                            rejected=mean[best] < reject_below), source))
    return out


@torch.no_grad()
def pooled_readings(reader: ChequeReader | ReaderMixture,
                    views: Sequence[Sequence[Prepared | None]], grammar: str,
                    reject_below: float = DEFAULT_REJECT_BELOW, alternatives: int = 0,
                    decoded: Decodings | None = None) -> list[tuple[Prepared, Reading]]:
    """The reading of each image from several views of it (`views[i]`, the same number for
    every image; None: a view that found no field), each read by every reader of `reader`:
    `mixture_readings` over the (reader, view) pairs, a view without a field giving every
    amount 0. Views a reader has read already (in `decoded`) are not decoded again. With the
    view whose reading it is."""
    members = reader.members if isinstance(reader, ReaderMixture) else [reader]
    return _pool(members, views, grammar, reject_below, alternatives, decoded)


def _pool(members: Sequence[ChequeReader], views: Sequence[Sequence[Prepared | None]],
          grammar: str, reject_below: float, alternatives: int, decoded: Decodings | None
          ) -> list[tuple[Prepared, Reading]]:
    """`pooled_readings` by the readers `members` (`decoded` keyed by their index)."""
    n_views = len(views[0]) if views else 0
    decoded = {} if decoded is None else decoded
    sources: list[tuple[list[Reading], LogPosteriors]] = []
    for k, member in enumerate(members):
        todo = list({id(p): p for vs in views for p in vs
                     if p is not None and _known(decoded, k, p) is None}.values())
        if todo:
            _remember(decoded, k, todo, *_best_readings(member, todo, grammar, alternatives))
        for v in range(n_views):
            found = [None if vs[v] is None else _known(decoded, k, vs[v]) for vs in views]
            sources.append(([Reading(None, None, 0.0, True, None) if f is None else f.reading
                             for f in found], partial(_ask, found)))
    return [(views[i][source % n_views], reading) for i, (reading, source)
            in enumerate(_mixture_choices(sources, reject_below))]


def _ask(found: Sequence[Decoded | None], pairs: Sequence[tuple[int, str]]) -> list[float]:
    """The log posteriors of (image, amount) pairs where image i was decoded as `found[i]`
    (None: no path, -inf), asking each batch's `log_posteriors` once."""
    out = [-math.inf] * len(pairs)
    batches: dict[int, tuple[LogPosteriors, list[int], list[tuple[int, str]]]] = {}
    for k, (i, amount) in enumerate(pairs):
        f = found[i]
        if f is not None:
            fn, ks, asked = batches.setdefault(id(f.log_posteriors), (f.log_posteriors, [], []))
            ks.append(k)
            asked.append((f.index, amount))
    for fn, ks, asked in batches.values():
        for k, lp in zip(ks, fn(asked)):
            out[k] = lp
    return out


def load_reader(path: str | Path | None = None, device: str = "cpu"
                ) -> ChequeReader | ReaderMixture:
    """The reader with trained weights: a whole-reader checkpoint (default: the shipped one,
    a mixture of readers), a mixture of such (`save_mixture`), or a recognizer-only
    checkpoint (the other parts then start untrained). LeNet runs on `device`; the graphs and
    the small scorers stay on the CPU, where the graph operations are fast
    (`interpretation_graphs` brings LeNet's penalties back)."""
    target = Path(path) if path is not None else DEFAULT_READER_WEIGHTS
    if path is None and not target.exists():
        return ChequeReader(load_recognizer(None, device)).eval()
    try:
        ckpt = torch.load(target, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"weights file {target} does not exist") from None
    except Exception as err:  # torch raises many types for a bad file
        raise ValueError(f"weights file {target} is not a readable checkpoint: {err}") from None
    if not isinstance(ckpt, dict):
        raise ValueError(f"weights file {target} does not hold a checkpoint dictionary")
    if ckpt.get("kind") == "mixture":
        members = ckpt.get("members")
        if not isinstance(members, list) or not all(
                isinstance(m, dict) and m.get("kind") == "reader" for m in members):
            raise ValueError(f"weights file {target} is a mixture without a list of reader "
                             "checkpoints")
        ask_below = ckpt.get("ask_below")
        if ask_below is not None and not (isinstance(ask_below, list) and all(
                isinstance(a, float) for a in ask_below)):
            raise ValueError(f"weights file {target} is a mixture whose ask_below is not a "
                             "list of confidences")
        return ReaderMixture([_reader_from(m, f"{target} (reader {k})", device)
                              for k, m in enumerate(members, 1)], ask_below).eval()
    if ckpt.get("kind") != "reader":
        return ChequeReader(load_recognizer(target, device)).eval()
    return _reader_from(ckpt, str(target), device)


def first_readers(reader: ChequeReader | ReaderMixture, count: int
                  ) -> ChequeReader | ReaderMixture:
    """The first `count` readers of `reader` (a lone reader counts as one), asked as the
    mixture asks them: fewer readers read faster and less surely (the model card measures
    each count of the shipped mixture). ValueError when it has fewer, or `count` < 1."""
    members = reader.members if isinstance(reader, ReaderMixture) else [reader]
    if not 1 <= count <= len(members):
        held = f"{len(members)} reader" + ("s" if len(members) > 1 else "")
        raise ValueError(f"the weights hold {held}: the number of readers must be within "
                         f"1..{len(members)}, got {count}")
    if count == len(members):
        return reader
    if count == 1:
        return members[0]
    assert isinstance(reader, ReaderMixture)
    return ReaderMixture(members[:count], reader.ask_below[: count - 1]).eval()


def load_trainable_reader(path: str | Path | None = None, device: str = "cpu"
                          ) -> ChequeReader:
    """`load_reader` of a checkpoint that can be trained (one reader, not a mixture); the
    default is the globally trained reader, TRAINED_READER_WEIGHTS (an untrained reader around
    the shipped recognizer where that file is missing)."""
    target = Path(path) if path is not None else TRAINED_READER_WEIGHTS
    if path is None and not target.exists():
        return ChequeReader(load_recognizer(None, device)).eval()
    reader = load_reader(target, device)
    if isinstance(reader, ReaderMixture):
        raise ValueError(f"weights file {target} is a mixture of readers, which reads but does "
                         "not train: start from one of its readers")
    return reader


def _reader_from(ckpt: dict, name: str, device: str) -> ChequeReader:
    """The reader of a whole-reader checkpoint dictionary (`name` says where it came from)."""
    from pipelines.recognizer import build_model

    version = ckpt.get("grammar_version")
    if version not in (GRAMMAR_VERSION, OLDER_GRAMMAR_VERSION):
        raise ValueError(f"weights file {name} was made for another version of the amount "
                         f"grammars ({version}, this reader has "
                         f"{GRAMMAR_VERSION}); retrain it with `python -m pipelines.train`")
    reader = ChequeReader(build_model(ckpt["arch"]))
    state = dict(ckpt["state_dict"])
    older: dict[str, torch.Tensor] = {}
    if version == OLDER_GRAMMAR_VERSION:  # made before raised cents: see load_older
        older = {g: state.get(f"grammars.{g}.weight") for g in reader.grammars}
        state = {k: v for k, v in state.items() if not k.startswith("grammars.")}
        state.update({k: v for k, v in reader.state_dict().items()
                      if k.startswith(("raised_scorer.", "grammars.")) and k not in state})
    if not any(k.startswith("field_proposer.") for k in state):  # made before it existed
        state.update({"field_proposer." + k[len("field_scorer."):]: v for k, v in state.items()
                      if k.startswith("field_scorer.")})
    try:
        reader.load_state_dict(state)
        for grammar, weight in older.items():
            if weight is None:
                raise KeyError(f"grammars.{grammar}.weight")
            reader.grammars[grammar].load_older(weight)
    except (RuntimeError, KeyError, ValueError) as err:
        raise ValueError(f"weights file {name} does not fit the reader: {err}") from None
    reader.recognizer.to(device)
    return reader.eval()


def save_reader(reader: ChequeReader, path: str | Path, **extra: object) -> None:
    """A whole-reader checkpoint, loadable with `torch.load(..., weights_only=True)`."""
    arch = getattr(reader.recognizer, "arch", "lenet5")
    torch.save({"kind": "reader", "arch": arch, "grammar_version": GRAMMAR_VERSION,
                "state_dict": reader.state_dict(), **extra}, Path(path))


def save_mixture(paths: Sequence[str | Path], out: str | Path,
                 ask_below: Sequence[float] | None = None, **extra: object) -> int:
    """One checkpoint holding the whole-reader checkpoints at `paths` (a mixture's: each of
    its readers, in order), read as a mixture that asks its readers after the first below
    `ask_below` (`ReaderMixture`; default ASK_OTHERS_BELOW for each). Raises ValueError when
    one is a recognizer only, or the readers do not share a field proposer. Returns the
    number of readers."""
    members, readers = [], []
    for path in paths:
        reader = load_reader(path)  # a missing or unreadable file: its own message
        ckpt = torch.load(Path(path), map_location="cpu", weights_only=True)
        if ckpt.get("kind") == "mixture" and isinstance(reader, ReaderMixture):
            members += ckpt["members"]
            readers += reader.members
        elif ckpt.get("kind") == "reader" and isinstance(reader, ChequeReader):
            members.append(ckpt)
            readers.append(reader)
        else:
            raise ValueError(f"weights file {path} is not a whole reader (a recognizer): a "
                             "mixture is made of whole readers")
    mixture = ReaderMixture(readers, ask_below)  # one field proposer for all, or ValueError
    torch.save({"kind": "mixture", "members": members, "ask_below": list(mixture.ask_below),
                **extra}, Path(out))
    return len(readers)


# Takes second looks (`preparation.take_look` of each): `preparation.LooksHere` in this
# process, or `prepare_pool.PreparedSources.take_looks` in helper processes.
Looker = Callable[[Sequence[SecondLook]], list[list[Prepared | None]]]
Source = bytes | str | Path | np.ndarray
Result = TypeVar("Result")
# A reading that asks for second looks on its way: it yields the looks it wants, is sent
# their views (`take_look` of each) and returns its result. Whoever runs it may do other work
# while the looks are taken (`batch_reading.read_all`); `run_steps` waits for them.
LookSteps = Generator[list[SecondLook], list[list[Prepared | None]], Result]


def run_steps(steps: LookSteps[Result], looker: Looker) -> Result:
    """Run `steps` to its result, `looker` taking the looks it asks for."""
    try:
        asked = next(steps)
        while True:
            asked = steps.send(looker(asked))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def read_again(reader: ChequeReader | ReaderMixture, sources: Sequence[Source],
               preps: Sequence[Prepared], readings: Sequence[Reading], is_field: bool,
               grammars: Sequence[str], reject_below: float = DEFAULT_REJECT_BELOW,
               alternatives: int = 0, keep_images: bool = False,
               decoded: Decodings | None = None, looker: Looker | None = None
               ) -> dict[int, tuple[Prepared, Reading]]:
    """Read again the images read with little confidence (not those that failed). A cheque
    scan under FAINT_PEN_BELOW is read again with the fields a look in a pale pen's ink finds
    added to its first preparation (`preparation.faint_pen_view`), and that reading replaces
    the first: it chose among more fields. One under RETRY_BELOW, or whose path costs over
    RETRY_PENALTY a character, is read upside down (`preparation.upside_down_view`), and that
    reading is kept where it is more confident than the first (or the faint-pen one) and is
    not rejected (by `reject_below`: an upright scan is far likelier, so a rejected view says
    no more). Return the preparation and reading kept, by index, where they changed.
    `sources[i]` is the encoded image, file or greyscale array that gave `preps[i]` and
    `readings[i]`, read with grammar `grammars[i]`. What the readers find is added to
    `decoded` (`decode_batch`); `looker` takes the looks (default: this process)."""
    return run_steps(read_again_steps(reader, sources, preps, readings, is_field, grammars,
                                      reject_below, alternatives, keep_images, decoded),
                     LooksHere(reader.field_proposer) if looker is None else looker)


def read_again_steps(reader: ChequeReader | ReaderMixture, sources: Sequence[Source],
                     preps: Sequence[Prepared], readings: Sequence[Reading], is_field: bool,
                     grammars: Sequence[str], reject_below: float = DEFAULT_REJECT_BELOW,
                     alternatives: int = 0, keep_images: bool = False,
                     decoded: Decodings | None = None
                     ) -> LookSteps[dict[int, tuple[Prepared, Reading]]]:
    """`read_again` as `LookSteps`."""
    looks: list[tuple[int, SecondLook]] = []  # faint-pen looks first: a turned one competes
    for i, r in enumerate(readings):
        if r.error is not None:
            continue
        if not is_field and r.confidence < FAINT_PEN_BELOW:
            looks.append((i, SecondLook(sources[i], is_field, keep_images, faint_pen=True,
                                        first=preps[i])))
        if r.confidence < RETRY_BELOW or fits_badly(r):
            looks.append((i, SecondLook(sources[i], is_field, keep_images, upside_down=True)))
    taken = (yield [look for _, look in looks]) if looks else []
    views = [(i, view, look.faint_pen) for (i, look), (view,) in zip(looks, taken)
             if view is not None]
    better: dict[int, tuple[Prepared, Reading]] = {}
    for grammar in sorted({grammars[i] for i, _, _ in views}):
        mine = [v for v in views if grammars[v[0]] == grammar]
        for (i, prep, faint), again in zip(mine, decode_batch(
                reader, [p for _, p, _ in mine], grammar, reject_below, alternatives, decoded)):
            best = better[i][1] if i in better else readings[i]
            if faint or (again.confidence > best.confidence and not again.rejected):
                better[i] = (prep, again)
    return better


def fits_badly(reading: Reading) -> bool:
    """Whether the characters of a reading's path cost over RETRY_PENALTY on average."""
    pens = [s.penalty for s in reading.segments]
    return bool(pens) and sum(pens) / len(pens) > RETRY_PENALTY


def read_prepared(reader: ChequeReader | ReaderMixture, preps: Sequence[Prepared],
                  sources: Sequence[Source], is_field: bool, grammar: str,
                  reject_below: float = DEFAULT_REJECT_BELOW, alternatives: int = 0,
                  keep_images: bool = False, zoom_below: float = ZOOM_LOOK_BELOW,
                  looker: Looker | None = None) -> list[tuple[Prepared, Reading]]:
    """`decode_batch` of prepared images, then `read_again` of those read with little
    confidence, then `read_other_views` of those still read less confidently than `zoom_below`
    (0: none): the preparation and reading kept for each (`sources[i]` gave `preps[i]`).
    `looker` takes the second looks (default: this process, decoding each source once)."""
    return run_steps(reading_steps(reader, preps, sources, is_field, grammar, reject_below,
                                   alternatives, keep_images, zoom_below),
                     LooksHere(reader.field_proposer) if looker is None else looker)


def reading_steps(reader: ChequeReader | ReaderMixture, preps: Sequence[Prepared],
                  sources: Sequence[Source], is_field: bool, grammar: str,
                  reject_below: float = DEFAULT_REJECT_BELOW, alternatives: int = 0,
                  keep_images: bool = False, zoom_below: float = ZOOM_LOOK_BELOW
                  ) -> LookSteps[list[tuple[Prepared, Reading]]]:
    """`read_prepared` as `LookSteps`."""
    decoded: Decodings = {}  # what each reader found, not to decode a view twice
    readings = decode_batch(reader, preps, grammar, reject_below, alternatives, decoded)
    again = yield from read_again_steps(reader, sources, preps, readings, is_field,
                                        [grammar] * len(preps), reject_below, alternatives,
                                        keep_images, decoded)
    kept = [again.get(i, (p, r)) for i, (p, r) in enumerate(zip(preps, readings))]
    looked = yield from read_other_views_steps(reader, sources, kept, is_field, grammar,
                                               reject_below, alternatives, keep_images,
                                               zoom_below, decoded)
    return [looked.get(i, pair) for i, pair in enumerate(kept)]


def read_other_views(reader: ChequeReader | ReaderMixture, sources: Sequence[Source],
                     kept: Sequence[tuple[Prepared, Reading]], is_field: bool, grammar: str,
                     reject_below: float = DEFAULT_REJECT_BELOW, alternatives: int = 0,
                     keep_images: bool = False, zoom_below: float = ZOOM_LOOK_BELOW,
                     decoded: Decodings | None = None, looker: Looker | None = None
                     ) -> dict[int, tuple[Prepared, Reading]]:
    """Read again the images whose reading (`kept[i]`, from `sources[i]`) is less confident
    than `zoom_below`, in the views of each round of LOOKS in turn (other sizes, then other
    pen widths), and take `pooled_readings` of the view read and every view so far; an image
    read at least that confidently after a round gets no more. Not those that failed or were
    read upside down (the other views are upright). `decoded`: as `pooled_readings`';
    `looker` as `read_prepared`'s. The preparation and reading, by index."""
    return run_steps(read_other_views_steps(reader, sources, kept, is_field, grammar,
                                            reject_below, alternatives, keep_images,
                                            zoom_below, decoded),
                     LooksHere(reader.field_proposer) if looker is None else looker)


def read_other_views_steps(reader: ChequeReader | ReaderMixture, sources: Sequence[Source],
                           kept: Sequence[tuple[Prepared, Reading]], is_field: bool,
                           grammar: str, reject_below: float = DEFAULT_REJECT_BELOW,
                           alternatives: int = 0, keep_images: bool = False,
                           zoom_below: float = ZOOM_LOOK_BELOW, decoded: Decodings | None = None
                           ) -> LookSteps[dict[int, tuple[Prepared, Reading]]]:
    """`read_other_views` as `LookSteps`."""
    decoded = {} if decoded is None else decoded
    seen: dict[int, list[Prepared | None]] = {}  # the views of each image so far
    looked: dict[int, tuple[Prepared, Reading]] = {}
    for looks in LOOKS:
        todo = []
        for i, (prep, r) in enumerate(kept):
            r = looked[i][1] if i in looked else r
            if r.error is not None or r.confidence >= zoom_below or (i not in seen and (
                    r.field_index is not None and prep.fields[r.field_index].turns == 2)):
                continue
            todo.append(i)
        if not todo:
            break
        taken = yield [SecondLook(sources[i], is_field, keep_images, looks=looks) for i in todo]
        for i, views in zip(todo, taken):
            seen[i] = seen.get(i, [kept[i][0]]) + views
        pooled = pooled_readings(reader, [seen[i] for i in todo], grammar, reject_below,
                                 alternatives, decoded)
        looked.update(zip(todo, pooled))
    return looked


def read_cheque(image: np.ndarray | str | Path | Page,
                reader: ChequeReader | ReaderMixture | None = None,
                grammar: str = "us", is_field: bool = False,
                reject_below: float = DEFAULT_REJECT_BELOW,
                zoom_below: float = ZOOM_LOOK_BELOW) -> Reading:
    """Read the amount of one cheque scan (a path, `images.Page(path, k)` for page k (from 0)
    of a multi-page file, or an (H, W[, 3]) array); a scan read with little confidence is read
    again with the fields a search in a pale pen's ink adds, or upside down (`read_again`),
    and one still read less confidently than `zoom_below` at other sizes and pen widths
    (`read_other_views`)."""
    from pipelines.images import Page, as_gray, load_gray

    gray = load_gray(image) if isinstance(image, (str, Path, Page)) else as_gray(image)
    reader = reader if reader is not None else load_reader()
    prep = prepare(gray, is_field=is_field, field_scorer=reader.field_proposer)
    return read_prepared(reader, [prep], [gray], is_field, grammar, reject_below,
                         zoom_below=zoom_below)[0][1]
