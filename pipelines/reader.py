"""The cheque reader: field extraction -> segmentation -> recognition -> grammar -> Viterbi.

Each stage hands the next a graph of alternatives. `ChequeReader` holds every learnable part
(LeNet, the segment scorer, the field scorer, the grammars' weights) so that the whole chain can
be trained globally; `read_cheque` is the one-call function for library users.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

import gtn
from pipelines.amounts import GRAMMARS
from pipelines.charimage import to_lenet_batch
from pipelines.charset import CLASSES, RUBBISH
from pipelines.fields import FieldCandidate, FieldScorer, propose_fields, whole_image_field
from pipelines.grammar import CENTS_OPEN, AmountGrammar, amount_to_labels, labels_to_amount
from pipelines.lenet import for_inference
from pipelines.recognition import SegmentScorer, interpretation_graph
from pipelines.recognizer import load_recognizer
from pipelines.segmentation import Segmentation, segment_field

DEFAULT_READER_WEIGHTS = Path(__file__).resolve().parent / "weights" / "reader.pt"
DEFAULT_REJECT_BELOW = 0.5
GRAMMAR_VERSION = 2  # bump when the grammars' states or arcs change: old weights no longer fit


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


@dataclass
class Prepared:
    """The fixed (non-learnable) front of the pipeline for one image: candidate fields, their
    segmentations and LeNet inputs. Reused across epochs in training."""

    fields: list[FieldCandidate]
    segmentations: list[Segmentation]
    inputs: Tensor  # (sum of arcs, 1, 32, 32)
    field_features: Tensor  # (K, F)

    @property
    def arc_counts(self) -> list[int]:
        return [s.num_arcs for s in self.segmentations]


# Reading keeps the candidate fields the proposer scores within this much (log) of its best:
# chosen on validation cheques (see the model card), it reads as well as keeping all three.
FIELD_BEAM = 4.0


def prepare(image: np.ndarray, is_field: bool = False, max_fields: int = 3,
            field_scorer: FieldScorer | None = None, field_beam: float = FIELD_BEAM) -> Prepared:
    """Propose fields (or take the whole image), segment each and normalise every candidate
    character for LeNet. Raises ValueError when no field holds ink.

    With a `field_scorer`, the `max_fields` best candidates are kept, less those scoring more
    than `field_beam` below the best (a beam: reading prunes, training keeps all alternatives).
    """
    if is_field:
        candidates = [whole_image_field(image)]
    else:
        candidates = propose_fields(image)
        if field_scorer is not None and len(candidates) > 1:
            with torch.no_grad():
                scores = field_scorer(torch.stack([c.features for c in candidates]))
            keep = torch.argsort(scores, descending=True)[:max_fields]
            keep = keep[scores[keep] >= scores[keep[0]] - field_beam].tolist()
            candidates = [candidates[i] for i in sorted(keep)]
        candidates = candidates[:max_fields]
    fields, segs = [], []
    for cand in candidates:
        x, y, w, h = cand.box
        try:
            seg = segment_field(image[y : y + h, x : x + w])
        except ValueError:
            continue  # a candidate without ink is no field
        fields.append(cand)
        segs.append(seg)
    if not segs:
        raise ValueError("no handwriting found in any candidate amount field")
    patches, heights, tops = [], [], []
    for seg in segs:
        p, t = seg.arc_patches()
        patches += p
        tops += t.tolist()
        heights += [seg.line.height] * len(p)
    inputs = to_lenet_batch(patches, heights, tops)
    feats = torch.stack([c.features for c in fields])
    return Prepared(fields, segs, inputs, feats)


# Reading drops a segment's classes scoring this much (log) below its best class: arcs
# carrying under exp(-CLASS_BEAM) of the weight, most of the graph (chosen on validation
# cheques, see the model card).
CLASS_BEAM = 12.0
LENET_CHUNK = 256  # characters per LeNet call when reading


class ChequeReader(nn.Module):
    """Every learnable part of the reader, and the graphs it builds."""

    def __init__(self, recognizer: nn.Module) -> None:
        super().__init__()
        # channels-last convolutions are about a third faster on the CPU for these small maps
        self.recognizer = recognizer.to(memory_format=torch.channels_last)
        self.segment_scorer = SegmentScorer()
        self.field_scorer = FieldScorer()
        # Which candidate fields `prepare` keeps is decided by this frozen copy of the field
        # scorer as it was before global training: training only ever saw (and re-weighed)
        # the candidates it kept, so the trained scorer is no judge of the others.
        self.field_proposer = FieldScorer().requires_grad_(False)
        self.grammars = nn.ModuleDict({name: AmountGrammar(name) for name in GRAMMARS})

    def interpretation_graphs(self, batch: Sequence[Prepared]) -> list[gtn.Graph]:
        """Interpretation graphs of a batch, with one LeNet pass over all candidate characters."""
        inputs = torch.cat([p.inputs for p in batch])
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
        features = torch.cat([torch.as_tensor(s.features) for p in batch for s in p.segmentations])
        seg_pen = self.segment_scorer(features)
        graphs, at = [], 0
        for p in batch:
            cls, seg = [], []
            for n in p.arc_counts:
                cls.append(penalties[at : at + n])
                seg.append(seg_pen[at : at + n])
                at += n
            field_scores = (self.field_scorer(p.field_features) if len(p.fields) > 1
                            else torch.zeros(1))
            field_scores = torch.log_softmax(field_scores, 0)
            graphs.append(interpretation_graph(p.segmentations, cls, seg, field_scores,
                                               CLASS_BEAM if reading else math.inf))
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
        if o >= CENTS_OPEN and text[-1:].isdigit():
            text += " "  # cents written as a fraction, after a space: "1234 56/100"
        text += CLASSES[i]
    seg_ids = graph.payload[idx].tolist() if graph.payload is not None else []
    starts = np.cumsum([0] + prep.arc_counts)
    k = int(np.searchsorted(starts, seg_ids[0], side="right") - 1) if seg_ids else 0
    fx, fy, _, _ = prep.fields[k].box
    boxes = prep.segmentations[k].field_boxes()
    segments = []
    for s, i in zip(seg_ids, ilabels):
        x, y, w, h = (int(v) for v in boxes[s - starts[k]])
        # The arc's score is -(class penalty + segment penalty): report their sum.
        pen = -float(graph.weight[idx[len(segments)]]) if i >= 0 else float("nan")
        segments.append(SegmentReading((fx + x, fy + y, w, h), CLASSES[i], pen))
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
def decode_batch(reader: ChequeReader, batch: Sequence[Prepared], grammar: str,
                 reject_below: float = DEFAULT_REJECT_BELOW, alternatives: int = 0
                 ) -> list[Reading]:
    """Viterbi readings of prepared images, with the confidence of each: the posterior of the
    best amount (forward score of its paths minus that of all paths)."""
    interpretations = reader.interpretation_graphs(batch)
    graphs = reader.with_grammar(interpretations, grammar)
    readings = [_decode(g, arcs, p) for g, arcs, p in zip(graphs, gtn.viterbi_paths(graphs),
                                                          batch)]
    scored = [i for i, r in enumerate(readings) if r.amount is not None]
    if scored:
        constrained = reader.constrained_graphs(
            [interpretations[i] for i in scored], grammar,
            [readings[i].amount for i in scored])  # type: ignore[misc]
        post = gtn.forward_score(constrained) - gtn.forward_score([graphs[i] for i in scored])
        for i, lp in zip(scored, post.tolist()):
            conf = float(np.exp(min(lp, 0.0)))
            readings[i].confidence = conf
            readings[i].rejected = conf < reject_below
    if alternatives:
        for g, r in zip(graphs, readings):
            r.alternatives = [(labels_to_amount(list(o)), float(s))
                              for o, s in gtn.nbest(g, alternatives)]
    return readings


def load_reader(path: str | Path | None = None, device: str = "cpu") -> ChequeReader:
    """The reader with trained weights: a whole-reader checkpoint (default: the shipped one),
    or a recognizer-only checkpoint (the other parts then start untrained)."""
    target = Path(path) if path is not None else DEFAULT_READER_WEIGHTS
    if path is None and not target.exists():
        return ChequeReader(load_recognizer(None, device)).eval()
    try:
        ckpt = torch.load(target, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"weights file {target} does not exist") from None
    except Exception as err:  # torch raises many types for a bad file
        raise ValueError(f"weights file {target} is not a readable checkpoint: {err}") from None
    if not isinstance(ckpt, dict):
        raise ValueError(f"weights file {target} does not hold a checkpoint dictionary")
    if ckpt.get("kind") != "reader":
        return ChequeReader(load_recognizer(target, device)).eval()
    from pipelines.recognizer import build_model

    if ckpt.get("grammar_version") != GRAMMAR_VERSION:
        raise ValueError(f"weights file {target} was made for another version of the amount "
                         f"grammars ({ckpt.get('grammar_version')}, this reader has "
                         f"{GRAMMAR_VERSION}); retrain it with `python -m pipelines.train`")
    reader = ChequeReader(build_model(ckpt["arch"]))
    state = dict(ckpt["state_dict"])
    if not any(k.startswith("field_proposer.") for k in state):  # made before it existed
        state.update({"field_proposer." + k[len("field_scorer."):]: v for k, v in state.items()
                      if k.startswith("field_scorer.")})
    try:
        reader.load_state_dict(state)
    except (RuntimeError, KeyError) as err:
        raise ValueError(f"weights file {target} does not fit the reader: {err}") from None
    return reader.to(device).eval()


def save_reader(reader: ChequeReader, path: str | Path, **extra: object) -> None:
    """A whole-reader checkpoint, loadable with `torch.load(..., weights_only=True)`."""
    arch = getattr(reader.recognizer, "arch", "lenet5")
    torch.save({"kind": "reader", "arch": arch, "grammar_version": GRAMMAR_VERSION,
                "state_dict": reader.state_dict(), **extra}, Path(path))


def read_cheque(image: np.ndarray | str | Path, reader: ChequeReader | None = None,
                grammar: str = "us", is_field: bool = False,
                reject_below: float = DEFAULT_REJECT_BELOW) -> Reading:
    """Read the amount of one cheque scan (a path or an (H, W[, 3]) array)."""
    from pipelines.images import as_gray, load_gray

    gray = load_gray(image) if isinstance(image, (str, Path)) else as_gray(image)
    reader = reader if reader is not None else load_reader()
    prep = prepare(gray, is_field=is_field, field_scorer=reader.field_proposer)
    return decode_batch(reader, [prep], grammar, reject_below)[0]


_WORKER_FIELD_SCORER: FieldScorer | None = None


def _init_worker(scorer_state: dict[str, Tensor]) -> None:
    global _WORKER_FIELD_SCORER
    torch.set_num_threads(1)
    _WORKER_FIELD_SCORER = FieldScorer()
    _WORKER_FIELD_SCORER.load_state_dict(scorer_state)


def prepare_source(source: bytes | str | Path, is_field: bool,
                   field_scorer: FieldScorer | None, keep_images: bool = True
                   ) -> Prepared | str:
    """`prepare` on an encoded image (bytes) or a file; a failure comes back as its message.
    Without `keep_images` the segmentations lose their pictures (only --explain draws them)."""
    import cv2

    from pipelines.images import ImageError, load_gray

    try:
        if isinstance(source, bytes):
            gray = cv2.imdecode(np.frombuffer(source, np.uint8), cv2.IMREAD_GRAYSCALE)
            if gray is None:
                return "the image bytes could not be decoded"
        else:
            gray = load_gray(source)
        prep = prepare(gray, is_field=is_field, field_scorer=field_scorer)
    except (ImageError, ValueError) as err:
        return str(err)
    except Exception as err:  # a reader bug must not stop the other inputs
        return f"could not read {source if not isinstance(source, bytes) else 'image'}: " \
               f"{type(err).__name__}: {err}"
    if keep_images:
        return prep
    return replace(prep, segmentations=[s.without_images() for s in prep.segmentations])


def _prepare_in_worker(job: tuple[bytes | str | Path, bool, bool]) -> Prepared | str:
    return prepare_source(job[0], job[1], _WORKER_FIELD_SCORER, job[2])


def prepare_all(sources: Sequence[bytes | str | Path], is_field: bool,
                field_scorer: FieldScorer, workers: int = 1, keep_images: bool = True
                ):  # type: ignore[no-untyped-def]
    """Yield `prepare_source` of each source in order, the image analysis running in
    `workers` processes: this one and `workers - 1` helpers.

    This process decodes what is ready and, whenever the next result is not (while the
    helpers start, say), prepares the earliest source no helper has taken yet itself: so
    `workers` processes keep as many cores busy, without a process more than cores."""
    jobs = [(s, is_field, keep_images) for s in sources]
    if workers <= 1 or len(sources) < 2:
        for s in sources:
            yield prepare_source(s, is_field, field_scorer, keep_images)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    state = {k: v.detach().clone() for k, v in field_scorer.state_dict().items()}
    pool = ProcessPoolExecutor(workers - 1, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(state,))
    try:
        futures = [pool.submit(_prepare_in_worker, job) for job in jobs]
        here: dict[int, Prepared | str] = {}
        untaken = 0  # futures before this one are running, done or cancelled
        broken = False
        for i, fut in enumerate(futures):
            untaken = max(untaken, i + 1)
            while not broken and not fut.done() and untaken < len(futures):
                if futures[untaken].cancel():  # no worker has it: read it here
                    here[untaken] = prepare_source(*jobs[untaken][:2], field_scorer,
                                                   keep_images)
                untaken += 1
            if i in here:
                yield here.pop(i)
                continue
            if not broken:
                try:
                    yield fut.result()
                    continue
                except BrokenProcessPool:  # a helper died (out of memory, say): go on here
                    broken = True
            yield prepare_source(*jobs[i][:2], field_scorer, keep_images)
    finally:  # a caller that stops early (or Ctrl-C) does not wait for the rest
        pool.shutdown(wait=True, cancel_futures=True)
