"""`python -m pipelines.train reader`: assemble the reader and train its modules one by one.

This is the module-by-module training that global training starts from (paper X: LeNet-5 first
on isolated characters, then on characters segmented from cheques, rejecting non-characters):
1. the isolated-character LeNet (a `train chars` checkpoint) is loaded;
2. training-split amount fields, and the fields the reader proposes on whole training
   cheques, are generated and over-segmented; each candidate character takes the class of the
   labelled character it fits (`arc_labels`), is rubbish, or, when it fits a character nearly
   but not best, is left out;
3. the segment scorer learns P(candidate is a true character | geometry) on those labels;
4. LeNet is fine-tuned on the segmented candidates, one candidate at a time (character-level
   labels, never a whole amount);
5. the field scorer (trained first: it proposes the cheques' fields) is trained on
   training-split cheques (`pipelines.field_training`) unless one is given;
and everything is saved as one reader checkpoint. With `--arch`, step 1 is a new recognizer of
that architecture, trained from scratch in step 4; with `--heads R`, the scorers and grammars
of reader R are taken instead of steps 3 and 5.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from pipelines.charset import RUBBISH, class_index
from pipelines.lenet import channels_for, losses_for
from pipelines.metrics import boxes_match, iou
from pipelines.preparation import FieldChooser, Prepared, box_in_scan, prepare
from pipelines.reader import ChequeReader, save_reader
from pipelines.recognizer import ARCHS, DEFAULT_WEIGHTS, build_model, load_recognizer
from pipelines.train_global import lr_factor

MODERN_CHARS_WEIGHTS = DEFAULT_WEIGHTS.with_name("lenet5-modern.pt")

IGNORE = -1  # a candidate label that trains nothing
# A candidate takes a character's class only when its box fits that character (IoU) within
# POSITIVE_BAND of the best-fitting candidate for it: a labelled box holds the digit's grey
# edges, so even the right candidate's IoU is often 0.7-0.9, while a fragment of the digit can
# still reach 0.5. Labelling every match (`boxes_match`) made 3.5 "true" candidates per
# character of validation fields, fragments and digits-with-a-speck among them, and the
# fine-tuned LeNet then read halves of digits as digits. Candidates fitting less well, down to
# IGNORE_BAND below the best, are near misses left out rather than called rubbish; below that
# they are rubbish.
POSITIVE_BAND = 0.1
IGNORE_BAND = 0.25
# With those labels about 70% of the candidates are rubbish; at full weight LeNet called 10.9%
# of the true characters of validation fields rubbish (6.5% at 0.35), and the reader dropped
# them (a leading '1' skipped as rubbish before the amount).
RUBBISH_WEIGHT = 0.35


def arc_labels(prep: Prepared, char_boxes: Sequence[tuple[int, int, int, int]],
               chars: Sequence[str]) -> Tensor:
    """Class of every candidate character of a prepared image (A,) long, its labelled boxes
    `char_boxes` in the image's own pixels: the class of the labelled character it fits best
    when its box matches it (`metrics.boxes_match`), holds no other labelled character (so
    that a digit merged with its '.' is not the digit) and fits it within POSITIVE_BAND of the
    IoU of the character's best-fitting candidate; IGNORE when it matches so but fits less
    well, down to IGNORE_BAND; else RUBBISH."""
    boxes = []
    for field, seg in zip(prep.fields, prep.segmentations):
        fx, fy, _, _ = field.box
        # the page as read may be cut out, enlarged or straightened: back to the image's pixels
        boxes += [box_in_scan((fx + int(x), fy + int(y), int(w), int(h)), field.turns,
                              prep.image_shape, prep.to_scan, prep.scan_shape)
                  for x, y, w, h in seg.field_boxes()]
    return torch.tensor(label_boxes(boxes, char_boxes, chars), dtype=torch.long)


def label_boxes(boxes: Sequence[tuple[int, int, int, int]],
                char_boxes: Sequence[tuple[int, int, int, int]],
                chars: Sequence[str]) -> list[int]:
    """`arc_labels` for candidate boxes in the labelled boxes' frame."""
    matches = [_match(box, char_boxes) for box in boxes]
    best_fit: dict[int, float] = {}
    for m in matches:
        if m is not None:
            best_fit[m[0]] = max(best_fit.get(m[0], 0.0), m[1])
    labels = []
    for m in matches:
        if m is None:
            labels.append(RUBBISH)
        elif m[1] >= best_fit[m[0]] - POSITIVE_BAND:
            labels.append(class_index(chars[m[0]]))  # a raised digit ('⁵') is its digit's class
        elif m[1] >= best_fit[m[0]] - IGNORE_BAND:
            labels.append(IGNORE)
        else:
            labels.append(RUBBISH)
    return labels


def _match(box: tuple[int, int, int, int],
           char_boxes: Sequence[tuple[int, int, int, int]]) -> tuple[int, float] | None:
    """(index, IoU) of the labelled character that `box` matches, or None."""
    if not char_boxes:
        return None
    fits = [iou(box, other) for other in char_boxes]
    best = int(np.argmax(fits))
    if not boxes_match(box, char_boxes[best]):
        return None
    for j, other in enumerate(char_boxes):
        if j != best and overlap_fraction(other, box) > 0.5:
            return None
    return best, fits[best]


def overlap_fraction(inner: Sequence[int], outer: Sequence[int]) -> float:
    """The fraction of box `inner`'s area that lies inside box `outer`."""
    ix = max(0, min(inner[0] + inner[2], outer[0] + outer[2]) - max(inner[0], outer[0]))
    iy = max(0, min(inner[1] + inner[3], outer[1] + outer[3]) - max(inner[1], outer[1]))
    return ix * iy / max(inner[2] * inner[3], 1)


@dataclass
class Candidates:
    """Every candidate character of a set of segmented fields, one row each."""

    inputs: Tensor  # (N, 2, 32, 32) float16 `Prepared.inputs` (half the memory; exact enough)
    features: Tensor  # (N, F) float32 geometry for the segment scorer
    labels: Tensor  # (N,) long: a class, RUBBISH or IGNORE (`arc_labels`)
    fields: Tensor  # (N,) long: the index of the image (field or cheque) each came from

    def select(self, keep: Tensor) -> Candidates:
        return Candidates(self.inputs[keep], self.features[keep], self.labels[keep],
                          self.fields[keep])

    @staticmethod
    def joined(parts: Sequence[Candidates]) -> Candidates:
        """The candidates of all `parts`, their images numbered on (no two share an index)."""
        offsets = np.cumsum([0] + [int(p.fields.max()) + 1 if len(p.fields) else 0
                                   for p in parts[:-1]])
        return Candidates(torch.cat([p.inputs for p in parts]),
                          torch.cat([p.features for p in parts]),
                          torch.cat([p.labels for p in parts]),
                          torch.cat([p.fields + int(o) for p, o in zip(parts, offsets)]))


# How the training fields are written (`make_cheques.make_sample`'s options): mixed US/EU
# amounts, 10% bitonal, 10% with raised cents, as the global training cheques are.
FIELD_JOB = {"split": "train", "format": "mixed", "bitonal": 0.1, "fields_only": True,
             "rough": 0.0, "raised": 0.1, "underlined": 0.0}
# Whole cheques written the same way: their candidates are those of the fields the reader
# proposes, cut as it cuts them (box sides, printed words and lines, other fields' ink).
CHEQUE_JOB = dict(FIELD_JOB, fields_only=False)


def segmented_sample(job: dict, index: int, field_scorer: FieldChooser | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Image `index` of the data set `job` describes (an amount field, or a whole cheque whose
    fields `field_scorer` proposes as the reader's proposer does), over-segmented: its
    candidates' LeNet inputs (float16), geometry features and labels; None when no ink is
    found."""
    from pipelines.make_cheques import make_sample

    image, sample = make_sample(job, index)
    try:
        prep = prepare(image, is_field=job["fields_only"], field_scorer=field_scorer)
    except ValueError:
        return None
    labels = arc_labels(prep, [c.box for c in sample.chars], [c.char for c in sample.chars])
    features = np.concatenate([np.asarray(s.features, np.float32) for s in prep.segmentations])
    return prep.inputs.astype(np.float16), features, labels.numpy()


def segmented_set(n: int, seed: int, pool: str = "fit", workers: int = 1,
                  job: dict = FIELD_JOB, field_scorer: FieldChooser | None = None
                  ) -> Candidates:
    """The candidates of `n` training-split images that `job` describes (amount fields by
    default; CHEQUE_JOB: whole cheques, their fields proposed by `field_scorer`) written with
    the digits of `pool` (`cheques.digit_pool`), segmented by `workers` processes."""
    from functools import partial
    from multiprocessing import get_context

    from tqdm import tqdm

    from pipelines.cheques import digit_pool

    job = dict(job, seed=seed, pool=pool)
    digit_pool(job["split"], pool)  # load once before forking
    one = partial(segmented_sample, job, field_scorer=field_scorer)
    what = "fields" if job["fields_only"] else "cheques"
    bar = partial(tqdm, total=n, desc=f"segmenting {what}", unit="image", file=sys.stderr)
    if workers <= 1:
        rows = list(bar(map(one, range(n))))
    else:
        with get_context("fork").Pool(workers) as procs:
            rows = list(bar(procs.imap(one, range(n), chunksize=16)))
    kept = [(i, r) for i, r in enumerate(rows) if r is not None]
    if not kept:
        raise ValueError(f"no training {what[:-1]} held readable ink")
    return Candidates(
        torch.from_numpy(np.concatenate([r[0] for _, r in kept])),
        torch.from_numpy(np.concatenate([r[1] for _, r in kept])),
        torch.from_numpy(np.concatenate([r[2] for _, r in kept])).long(),
        torch.cat([torch.full((len(r[2]),), i, dtype=torch.long) for i, r in kept]))


def recognizer_loss(model: nn.Module, penalties: Tensor, targets: Tensor,
                    rubbish_weight: float = 1.0) -> Tensor:
    """The recognizer's own criterion (`lenet.losses_for`: the paper's MAP loss for LeNet-5,
    NLL for the modern net), rubbish examples weighted by `rubbish_weight`."""
    weight = torch.where(targets == RUBBISH, rubbish_weight, 1.0).to(penalties.dtype)
    return (losses_for(model, penalties, targets) * weight).sum() / weight.sum()


def fit_segment_scorer(reader: ChequeReader, cands: Candidates, max_iter: int = 300) -> float:
    """Full-batch logistic fit of P(true character | geometry) on the labelled candidates, by
    L-BFGS (200 full-batch Adam steps, as before, stopped far from the optimum: loss 0.41
    against 0.23, and the module-by-module reader read 69% of 800 validation cheques against
    81% with the scorer fitted further); returns the final loss."""
    known = cands.labels != IGNORE
    feats = cands.features[known]
    good = (cands.labels[known] != RUBBISH).float()
    opt = torch.optim.LBFGS(reader.segment_scorer.parameters(), lr=1.0, max_iter=max_iter,
                            history_size=20, line_search_fn="strong_wolfe")

    def loss() -> Tensor:
        penalty = reader.segment_scorer(feats)  # = -log P(good) when the net learns the logit
        # -log P(bad) = -log(1 - exp(-penalty)), written stably:
        bad_penalty = -torch.log(-torch.expm1(-penalty.clamp_min(1e-6)))
        return (good * penalty + (1 - good) * bad_penalty).mean()

    def closure() -> Tensor:
        opt.zero_grad()
        value = loss()
        value.backward()
        return value

    opt.step(closure)
    with torch.no_grad():
        return float(loss())


def fine_tune_recognizer(reader: ChequeReader, cands: Candidates, epochs: int, lr: float,
                         seed: int, batch_size: int = 256,
                         rubbish_weight: float = RUBBISH_WEIGHT,
                         report: Callable[[int, float], None] | None = None,
                         rubbish_share: float = 1.0, shift: bool = False) -> list[float]:
    """Fine-tune LeNet on segmented candidates (Adam, cosine decay of `lr` to 0); returns the
    mean loss of each epoch. IGNORE candidates are left out; each epoch draws a random
    `rubbish_share` of the rubbish ones (all true characters), and with `shift` moves each
    batch by a random pixel or none each way. `report(epoch, loss)` is called after each
    epoch."""
    known = cands.select(cands.labels != IGNORE)
    model = reader.recognizer
    device = next(model.parameters()).device
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    rubbish = known.labels == RUBBISH
    per_epoch = int((~rubbish).sum()) + round(float(rubbish.sum()) * rubbish_share)
    total_steps, step = epochs * math.ceil(per_epoch / batch_size), 0
    losses = []
    for epoch in range(epochs):
        model.train()
        drawn = torch.nonzero(~rubbish | (torch.rand(len(rubbish), generator=gen)
                                          < rubbish_share))[:, 0]
        order = drawn[torch.randperm(len(drawn), generator=gen)]
        total = 0.0
        for at in range(0, len(order), batch_size):
            idx = order[at : at + batch_size]
            for group in opt.param_groups:
                group["lr"] = lr * lr_factor("cosine", step, total_steps)
            step += 1
            opt.zero_grad()
            x = channels_for(model, known.inputs[idx]).to(device, torch.float32)
            if shift:  # roll wraps an edge row or column round: background, as the edges are
                dy, dx = torch.randint(-1, 2, (2,), generator=gen).tolist()
                x = torch.roll(x, (dy, dx), (2, 3))
            y = known.labels[idx].to(device)
            loss = recognizer_loss(model, model(x), y, rubbish_weight)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / max(1, len(order)))
        model.eval()
        if report is not None:
            report(epoch + 1, losses[-1])
    model.eval()
    return losses


def candidate_accuracy(reader: ChequeReader, cands: Candidates) -> tuple[float, float]:
    """(share of true characters read as their class, share of rubbish read as rubbish) over
    the labelled candidates, IGNORE left out."""
    model = reader.recognizer
    device = next(model.parameters()).device
    with torch.no_grad():
        best = torch.cat([model(channels_for(model, cands.inputs[at : at + 4096])
                                .to(device, torch.float32))
                          .argmin(1).cpu() for at in range(0, len(cands.labels), 4096)])
    true = (cands.labels != RUBBISH) & (cands.labels != IGNORE)
    rubbish = cands.labels == RUBBISH
    return (float((best[true] == cands.labels[true]).float().mean()),
            float((best[rubbish] == RUBBISH).float().mean()))


def reader_heads(path: Path, member: int = 1) -> ChequeReader:
    """The reader at `path`, or reader `member` (from 1) of the mixture there, whose scorers
    and grammars a new recognizer is to read with; ValueError when there is none."""
    from pipelines.reader import ReaderMixture, load_reader

    found = load_reader(path)
    readers = found.members if isinstance(found, ReaderMixture) else [found]
    if member > len(readers):
        raise ValueError(f"weights file {path} holds {len(readers)} reader(s), not {member}")
    return readers[member - 1]


def get_args_parser() -> argparse.ArgumentParser:
    from pipelines.cheques import DIGIT_POOLS
    from pipelines.cli import int_at_least

    p = argparse.ArgumentParser(prog="python -m pipelines.train reader")
    p.add_argument("--chars", type=Path, default=MODERN_CHARS_WEIGHTS,
                   help="isolated-character checkpoint (default: the shipped lenet5-modern.pt, "
                        "the net the shipped readers are built on)")
    p.add_argument("--n", type=int_at_least(1), default=8000,
                   help="training fields to segment (8000)")
    p.add_argument("--cheques", type=int_at_least(0), default=16000,
                   help="training cheques whose proposed fields are segmented too, as the "
                        "reader cuts them (16000)")
    p.add_argument("--val", type=int_at_least(0), default=500,
                   help="validation fields, written with the held-out digits (500)")
    p.add_argument("--digit-pool", choices=DIGIT_POOLS, default="fit",
                   help="MNIST training digits the training fields are written with (fit: all "
                        "but the held-out 5,000 that the validation fields use)")
    p.add_argument("--epochs", type=int_at_least(0), default=6,
                   help="LeNet fine-tuning passes (6)")
    p.add_argument("--lr", type=float, default=2e-3,
                   help="LeNet fine-tuning step, decayed to 0 (2e-3)")
    p.add_argument("--rubbish-weight", type=float, default=RUBBISH_WEIGHT,
                   help=f"weight of rubbish candidates in LeNet's loss ({RUBBISH_WEIGHT})")
    p.add_argument("--rubbish-share", type=float, default=1.0,
                   help="share of the rubbish candidates drawn in each pass (1: all)")
    p.add_argument("--shift", action="store_true",
                   help="move each batch of candidates by a random pixel or none each way")
    p.add_argument("--no-fine-tune", action="store_true", help="keep LeNet as trained on chars")
    p.add_argument("--arch", choices=sorted(ARCHS),
                   help="train a recognizer of this architecture from scratch on the "
                        "candidates instead of fine-tuning --chars")
    p.add_argument("--heads", type=Path,
                   help="take the segment, raised-digit and field scorers and the grammars "
                        "from this reader (or mixture: see --heads-member) instead of fitting "
                        "the segment scorer and training a field scorer")
    p.add_argument("--heads-member", type=int_at_least(1), default=1,
                   help="which reader of a --heads mixture (1)")
    p.add_argument("--field-scorer", type=Path,
                   help="a trained field scorer (`python -m pipelines.field_training`); "
                        "default: train one here on --field-cheques cheques")
    p.add_argument("--field-cheques", type=int_at_least(1), default=2000,
                   help="training cheques for the field scorer (2000)")
    p.add_argument("--workers", type=int_at_least(1), default=2,
                   help="processes that segment the fields (2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("runs/reader-modules.pt"))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if not (0 < args.rubbish_weight <= 1 and 0 < args.rubbish_share <= 1) or not args.lr > 0:
        print("train reader: --rubbish-weight and --rubbish-share must be in (0, 1] and --lr "
              "positive", file=sys.stderr)
        return 2
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    start = time.time()
    from pipelines.field_training import fit_field_scorer, load_scorer

    try:
        reader = ChequeReader(build_model(args.arch) if args.arch
                              else load_recognizer(args.chars))
        if args.heads is not None:
            heads = reader_heads(args.heads, args.heads_member)
            own = reader.state_dict()
            reader.load_state_dict({k: v for k, v in heads.state_dict().items()
                                    if not k.startswith("recognizer.")}
                                   | {k: v for k, v in own.items()
                                      if k.startswith("recognizer.")})
            scorer = reader.field_proposer
        elif args.field_scorer is not None:
            scorer = load_scorer(args.field_scorer)
        else:
            scorer, metrics = fit_field_scorer(n=args.field_cheques, seed=args.seed)
            print(f"field scorer: {metrics}")
        parts = [segmented_set(args.n, args.seed, args.digit_pool, args.workers)]
        if args.cheques:
            parts.append(segmented_set(args.cheques, args.seed + 2, args.digit_pool,
                                       args.workers, CHEQUE_JOB, scorer))
        train = Candidates.joined(parts)
        val = (segmented_set(args.val, args.seed + 1, "held-out", args.workers)
               if args.val else None)
    except ValueError as err:  # a bad checkpoint, MNIST missing
        print(f"train reader: {err}", file=sys.stderr)
        return 2
    labels = train.labels
    true = float(((labels != RUBBISH) & (labels != IGNORE)).float().mean())
    print(f"{len(labels)} candidate characters: {true:.1%} true characters, "
          f"{float((labels == IGNORE).float().mean()):.1%} left out")
    if args.heads is None:
        loss = fit_segment_scorer(reader, train)
        print(f"segment scorer: loss {loss:.4f}")

    def show(when: str) -> None:
        if val is not None:
            true, rubbish = candidate_accuracy(reader, val)
            print(f"validation candidates {when}: true characters {true:.2%} read right, "
                  f"rubbish {rubbish:.2%}", flush=True)

    show("before fine-tuning")
    if not args.no_fine_tune and args.epochs:
        def report(epoch: int, loss: float) -> None:
            print(f"epoch {epoch}: loss {loss:.4f} ({time.time() - start:.0f} s)", flush=True)
            show(f"after epoch {epoch}")

        fine_tune_recognizer(reader, train, args.epochs, args.lr, args.seed,
                             rubbish_weight=args.rubbish_weight, report=report,
                             rubbish_share=args.rubbish_share, shift=args.shift)
    if args.heads is None:
        reader.field_scorer.load_state_dict(scorer.state_dict())
        reader.field_proposer.load_state_dict(scorer.state_dict())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_reader(reader, args.out, config={"command": " ".join(sys.argv), "seed": args.seed,
                                          "n": args.n, "cheques": args.cheques,
                                          "epochs": args.epochs, "digit_pool": args.digit_pool,
                                          "rubbish_weight": args.rubbish_weight,
                                          "rubbish_share": args.rubbish_share,
                                          "shift": args.shift, "arch": args.arch,
                                          "heads": None if args.heads is None else
                                          f"{args.heads} (reader {args.heads_member})"})
    print(f"wrote {args.out} in {time.time() - start:.0f} s")
    return 0
