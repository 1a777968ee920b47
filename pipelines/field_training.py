"""Training and evaluating the field scorer on synthetic cheques.

A candidate is *good* when it holds the labelled amount field (at least `MIN_INSIDE` of the
label's area inside it) without being much bigger (at most `MAX_AREA_RATIO` times its area).
The scorer is trained with a softmax over each cheque's candidates whose target is the good
candidate that best overlaps the label (cheques without a good candidate are skipped).

    python -m pipelines.field_training --n 2000 --seed 0 --epochs 40 --workers 2
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from pipelines.cheques import derive_seed, generate_cheque
from pipelines.cli import positive_int
from pipelines.field_scorer import FieldScorer
from pipelines.fields import NUM_FIELD_FEATURES, propose_fields

Box = tuple[int, int, int, int]
MIN_INSIDE = 0.95
MAX_AREA_RATIO = 3.0
TRAIN_SEED_BASE = 1_000_003  # training cheques never reuse the evaluation seeds 0, 1, ...
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "field_scorer.pt"


@dataclass(frozen=True)
class ScorerConfig:
    hidden: int = 32
    num_features: int = NUM_FIELD_FEATURES


@dataclass
class ChequeFields:
    """The candidates of one cheque: features (K, F), which are good, the target index."""

    features: torch.Tensor
    good: torch.Tensor  # (K,) bool
    target: int  # best-overlapping good candidate, -1 when none
    ms: float  # CPU milliseconds of propose_fields


def overlap(cand: Box, label: Box) -> tuple[float, float, float]:
    """(fraction of the label inside the candidate, candidate/label area ratio, IoU)."""
    cx, cy, cw, ch = cand
    fx, fy, fw, fh = label
    ix = max(0, min(cx + cw, fx + fw) - max(cx, fx))
    iy = max(0, min(cy + ch, fy + fh) - max(cy, fy))
    inter, la, ca = ix * iy, max(fw * fh, 1), cw * ch
    return inter / la, ca / la, inter / max(la + ca - inter, 1)


def is_good(cand: Box, label: Box) -> bool:
    inside, ratio, _ = overlap(cand, label)
    return inside >= MIN_INSIDE and ratio <= MAX_AREA_RATIO


def cheque_args(i: int, seed: int, split: str) -> tuple[int, str, bool]:
    """(generator seed, format, bitonal) of cheque i: us/eu alternate, one in four bitonal."""
    rng_seed = seed + i if split == "test" else derive_seed(TRAIN_SEED_BASE + seed, i)
    return rng_seed, ("us", "eu")[i % 2], i % 4 == 3


def cheque_fields(i: int, seed: int, split: str) -> ChequeFields:
    rng_seed, fmt, bitonal = cheque_args(i, seed, split)
    sample = generate_cheque(rng_seed, split, fmt=fmt, bitonal=bitonal)
    t = time.process_time()
    cands = propose_fields(sample.image)
    ms = (time.process_time() - t) * 1000
    if not cands:
        return ChequeFields(torch.zeros(0, NUM_FIELD_FEATURES), torch.zeros(0, dtype=torch.bool),
                            -1, ms)
    stats = [overlap(c.box, sample.field_box) for c in cands]
    good = [s[0] >= MIN_INSIDE and s[1] <= MAX_AREA_RATIO for s in stats]
    ious = [s[2] if g else -1.0 for s, g in zip(stats, good)]
    target = int(np.argmax(ious)) if any(good) else -1
    return ChequeFields(torch.from_numpy(np.stack([c.features for c in cands])), torch.tensor(good),
                        target, ms)


def _chunk(args: tuple[list[int], int, str]) -> list[ChequeFields]:
    torch.set_num_threads(1)
    idx, seed, split = args
    return [cheque_fields(i, seed, split) for i in idx]


def collect(n: int, seed: int, split: str, workers: int = 1) -> list[ChequeFields]:
    """Candidates of `n` cheques of `split`, in cheque order whatever `workers`."""
    if workers <= 1:
        return _chunk((list(range(n)), seed, split))
    parts = [(list(range(k, n, workers)), seed, split) for k in range(workers)]
    with ProcessPoolExecutor(workers) as pool:
        done = list(pool.map(_chunk, parts))
    out: list[ChequeFields | None] = [None] * n
    for (idx, _, _), res in zip(parts, done):
        for i, r in zip(idx, res):
            out[i] = r
    return [r for r in out if r is not None]


def ranking_metrics(scorer: FieldScorer, data: list[ChequeFields]) -> dict[str, float]:
    """Recall (some candidate good), top-1 and top-3 (a good one among the best 1 / 3)."""
    hits = {"recall": 0, "top1": 0, "top3": 0}
    with torch.no_grad():
        for d in data:
            if not d.good.any():
                continue
            hits["recall"] += 1
            order = torch.argsort(scorer(d.features), descending=True, stable=True)
            hits["top1"] += int(d.good[order[0]])
            hits["top3"] += int(d.good[order[:3]].any())
    return {k: v / max(len(data), 1) for k, v in hits.items()}


def train_scorer(data: list[ChequeFields], epochs: int, seed: int,
                 config: ScorerConfig = ScorerConfig()) -> FieldScorer:
    """Softmax over each cheque's candidates, target the best good one; Adam, batches of 32."""
    torch.manual_seed(seed)
    scorer = FieldScorer(config.hidden, config.num_features)
    usable = [d for d in data if d.target >= 0]
    opt = torch.optim.Adam(scorer.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(epochs, 1))
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(usable), generator=gen).tolist()
        for at in range(0, len(perm), 32):
            batch = [usable[i] for i in perm[at : at + 32]]
            feats = torch.cat([d.features for d in batch])
            scores = scorer(feats)
            loss, start = torch.zeros(()), 0
            for d in batch:
                s = scores[start : start + len(d.features)]
                # The best good candidate, against every candidate that is not good.
                keep = ~d.good
                keep[d.target] = True
                loss = loss + torch.logsumexp(s[keep], 0) - s[d.target]
                start += len(d.features)
            opt.zero_grad()
            (loss / len(batch)).backward()
            opt.step()
        sched.step()
    return scorer.eval()


def fit_field_scorer(n: int = 2000, seed: int = 0, epochs: int = 40,
                     workers: int = 1) -> tuple[FieldScorer, dict[str, float]]:
    """Train a FieldScorer on `n` train-split cheques (90% fit, 10% validation)."""
    if n < 10:
        raise ValueError(f"n must be at least 10, got {n}")
    data = collect(n, seed, "train", workers)
    n_val = max(1, n // 10)
    train, val = data[:-n_val], data[-n_val:]
    scorer = train_scorer(train, epochs, seed)
    metrics = {f"train_{k}": v for k, v in ranking_metrics(scorer, train).items()}
    metrics.update({f"val_{k}": v for k, v in ranking_metrics(scorer, val).items()})
    return scorer, metrics


def evaluate_fields(scorer: FieldScorer, n: int = 300, seed: int = 0, split: str = "test",
                    workers: int = 1) -> dict[str, float]:
    """Recall, top-1, top-3 on cheques seed..seed+n-1 and CPU ms per cheque (propose + score)."""
    data = collect(n, seed, split, workers)
    metrics = ranking_metrics(scorer, data)
    t = time.process_time()
    with torch.no_grad():
        for d in data:
            if len(d.features):
                scorer(d.features)
    score_ms = (time.process_time() - t) * 1000 / max(n, 1)
    metrics["ms_per_cheque"] = float(np.mean([d.ms for d in data])) + score_ms
    metrics["candidates"] = float(np.mean([len(d.features) for d in data]))
    return metrics


def save_scorer(scorer: FieldScorer, path: Path | str, config: ScorerConfig,
                extra: dict | None = None) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": scorer.state_dict(), "config": {**asdict(config), **(extra or {})}},
               path)


def load_scorer(path: Path | str = DEFAULT_WEIGHTS) -> FieldScorer:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    cfg = ckpt["config"]
    scorer = FieldScorer(int(cfg["hidden"]), int(cfg["num_features"]))
    scorer.load_state_dict(ckpt["state_dict"])
    return scorer.eval()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--workers", type=positive_int, default=1)
    p.add_argument("--eval-n", type=int, default=300)
    p.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS)
    args = p.parse_args(argv)
    t = time.time()
    scorer, metrics = fit_field_scorer(args.n, args.seed, args.epochs, args.workers)
    print({k: round(v, 4) for k, v in metrics.items()}, f"{time.time() - t:.0f}s")
    call = (f"fit_field_scorer(n={args.n}, seed={args.seed}, epochs={args.epochs}, "
            f"workers={args.workers})")
    save_scorer(scorer, args.out, ScorerConfig(), {"trained_by": call})
    if args.eval_n:
        test = evaluate_fields(scorer, args.eval_n, 0, "test", args.workers)
        print("test", {k: round(v, 4) for k, v in test.items()})


if __name__ == "__main__":
    main()
