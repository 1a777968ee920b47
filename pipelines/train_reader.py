"""`python -m pipelines.train reader`: assemble the reader and train its modules one by one.

This is the module-by-module training that global training starts from (paper X: LeNet-5 first
on isolated characters, then on characters segmented from cheques, rejecting non-characters):
1. the isolated-character LeNet (a `train chars` checkpoint) is loaded;
2. training-split amount fields are generated and over-segmented; each candidate character
   whose box matches a labelled character (`metrics.boxes_match`) takes that character's
   class, every
   other candidate is rubbish;
3. the segment scorer learns P(candidate is a true character | geometry) on those labels;
4. LeNet is fine-tuned on the segmented candidates (their labels as in 2);
5. the field scorer is trained on training-split cheques (`pipelines.field_training`);
and everything is saved as one reader checkpoint.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from pipelines.charset import RUBBISH, class_index
from pipelines.metrics import boxes_match, iou
from pipelines.preparation import Prepared, prepare
from pipelines.reader import ChequeReader, save_reader
from pipelines.recognizer import load_recognizer


def arc_labels(prep: Prepared, char_boxes: Sequence[tuple[int, int, int, int]],
                chars: Sequence[str]) -> Tensor:
    """Class of every candidate character of a prepared field: the labelled character whose box
    it matches (`metrics.boxes_match`) when it holds no other labelled character (so that a
    digit merged with its '.' is rubbish, not the digit), else rubbish. (A,) long."""
    labels = []
    for field, seg in zip(prep.fields, prep.segmentations):
        fx, fy, _, _ = field.box
        for x, y, w, h in seg.field_boxes():
            box = (fx + int(x), fy + int(y), int(w), int(h))
            labels.append(_match(box, char_boxes, chars))
    return torch.tensor(labels, dtype=torch.long)


def _match(box: tuple[int, int, int, int], char_boxes: Sequence[tuple[int, int, int, int]],
           chars: Sequence[str]) -> int:
    if not chars:
        return RUBBISH
    best = max(range(len(chars)), key=lambda j: iou(box, char_boxes[j]))
    if not boxes_match(box, char_boxes[best]):
        return RUBBISH
    for j, other in enumerate(char_boxes):
        if j != best and overlap_fraction(other, box) > 0.5:
            return RUBBISH
    return class_index(chars[best])  # a raised digit ('⁵') is its digit's class


def overlap_fraction(inner: Sequence[int], outer: Sequence[int]) -> float:
    """The fraction of box `inner`'s area that lies inside box `outer`."""
    ix = max(0, min(inner[0] + inner[2], outer[0] + outer[2]) - max(inner[0], outer[0]))
    iy = max(0, min(inner[1] + inner[3], outer[1] + outer[3]) - max(inner[1], outer[1]))
    return ix * iy / max(inner[2] * inner[3], 1)


def segmented_set(n: int, seed: int) -> tuple[list[Prepared], list[Tensor]]:
    """Prepared training-split amount fields and the class of each candidate character."""
    from tqdm import tqdm

    from pipelines.cheques import generate_cheques

    preps, labels = [], []
    for s in tqdm(generate_cheques(n, seed, "train", fmt="mixed", bitonal=0.1,
                                   fields_only=True), total=n, desc="segmenting fields",
                  unit="field", file=sys.stderr):
        try:
            prep = prepare(s.image, is_field=True)
        except ValueError:
            continue
        preps.append(prep)
        labels.append(arc_labels(prep, [c.box for c in s.chars], [c.char for c in s.chars]))
    return preps, labels


def recognizer_loss(model: nn.Module, penalties: Tensor, targets: Tensor) -> Tensor:
    """The recognizer's own criterion: the paper's MAP loss for LeNet-5, NLL for the modern net
    (whose penalties are -log-softmax)."""
    if getattr(model, "arch", "") == "lenet5":
        from pipelines.lenet import map_loss

        return map_loss(penalties, targets)
    return penalties.gather(1, targets[:, None]).mean()


def fit_segment_scorer(reader: ChequeReader, preps: Sequence[Prepared],
                       labels: Sequence[Tensor], epochs: int = 200) -> float:
    """Full-batch logistic fit of P(true character | geometry); returns the final loss."""
    feats = torch.cat([torch.as_tensor(s.features) for p in preps for s in p.segmentations])
    good = (torch.cat(list(labels)) != RUBBISH).float()
    opt = torch.optim.Adam(reader.segment_scorer.parameters(), lr=0.02)
    for _ in range(epochs):
        opt.zero_grad()
        penalty = reader.segment_scorer(feats)  # = -log P(good) when the net learns the logit
        # -log P(bad) = -log(1 - exp(-penalty)), written stably:
        bad_penalty = -torch.log(-torch.expm1(-penalty.clamp_min(1e-6)))
        loss = (good * penalty + (1 - good) * bad_penalty).mean()
        loss.backward()
        opt.step()
    return float(loss.detach())


def fine_tune_recognizer(reader: ChequeReader, preps: Sequence[Prepared],
                         labels: Sequence[Tensor], epochs: int, lr: float, seed: int,
                         batch_size: int = 256) -> list[float]:
    """Fine-tune LeNet on segmented candidates; returns the mean loss of each epoch."""
    x = torch.from_numpy(np.concatenate([p.inputs for p in preps]))
    y = torch.cat(list(labels))
    model = reader.recognizer
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=gen)
        total = 0.0
        for at in range(0, len(y), batch_size):
            idx = order[at : at + batch_size]
            opt.zero_grad()
            loss = recognizer_loss(model, model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(y))
    model.eval()
    return losses


def candidate_accuracy(reader: ChequeReader, preps: Sequence[Prepared],
                       labels: Sequence[Tensor]) -> float:
    with torch.no_grad():
        pen = reader.recognizer(torch.from_numpy(np.concatenate([p.inputs for p in preps])))
    return float((pen.argmin(1) == torch.cat(list(labels))).float().mean())


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipelines.train reader")
    p.add_argument("--chars", type=Path, help="isolated-character checkpoint (default: shipped)")
    p.add_argument("--n", type=int, default=3000, help="training fields to segment (3000)")
    p.add_argument("--val", type=int, default=300, help="held-out training fields (300)")
    p.add_argument("--epochs", type=int, default=3, help="LeNet fine-tuning passes (3)")
    p.add_argument("--lr", type=float, default=3e-4, help="LeNet fine-tuning step (3e-4)")
    p.add_argument("--no-fine-tune", action="store_true", help="keep LeNet as trained on chars")
    p.add_argument("--field-scorer", type=Path,
                   help="a trained field scorer (`python -m pipelines.field_training`); "
                        "default: train one here on --field-cheques cheques")
    p.add_argument("--field-cheques", type=int, default=2000,
                   help="training cheques for the field scorer (2000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("pipelines/weights/reader.pt"))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.n <= 0 or args.val < 0 or args.epochs < 0:
        print("train reader: --n must be positive, --val and --epochs non-negative",
              file=sys.stderr)
        return 2
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    start = time.time()
    try:
        reader = ChequeReader(load_recognizer(args.chars))
    except ValueError as err:
        print(f"train reader: {err}", file=sys.stderr)
        return 2
    preps, labels = segmented_set(args.n + args.val, args.seed)
    train_p, train_y = preps[: args.n], labels[: args.n]
    val_p, val_y = preps[args.n :], labels[args.n :]
    print(f"{sum(len(y) for y in train_y)} candidate characters, "
          f"{float(torch.cat(train_y).ne(RUBBISH).float().mean()):.1%} true characters")
    loss = fit_segment_scorer(reader, train_p, train_y)
    print(f"segment scorer: loss {loss:.4f}")
    if val_p:
        print(f"candidate accuracy before fine-tuning (validation): "
              f"{candidate_accuracy(reader, val_p, val_y):.4f}")
    if not args.no_fine_tune and args.epochs:
        losses = fine_tune_recognizer(reader, train_p, train_y, args.epochs, args.lr, args.seed)
        print("fine-tuning losses: " + ", ".join(f"{v:.4f}" for v in losses))
        if val_p:
            print(f"candidate accuracy after fine-tuning (validation): "
                  f"{candidate_accuracy(reader, val_p, val_y):.4f}")
    from pipelines.field_training import fit_field_scorer, load_scorer

    if args.field_scorer is not None:
        scorer = load_scorer(args.field_scorer)
    else:
        scorer, metrics = fit_field_scorer(n=args.field_cheques, seed=args.seed)
        print(f"field scorer: {metrics}")
    reader.field_scorer.load_state_dict(scorer.state_dict())
    reader.field_proposer.load_state_dict(scorer.state_dict())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_reader(reader, args.out, config={"command": " ".join(sys.argv), "seed": args.seed,
                                          "n": args.n, "epochs": args.epochs})
    print(f"wrote {args.out} in {time.time() - start:.0f} s")
    return 0
