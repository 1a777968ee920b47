"""Synthetic cheques with handwritten amounts: the library API and the data set format.

A cheque is a pure function of (seed, split, format, bitonal, fields_only): a layout is drawn,
printed on a security background, the amount is written with MNIST digits of `split` (training
split for training data, test split for evaluation data, never mixed), distractor handwriting is
added (a date written with digits of the same split, payee, legal amount, signature), and a scan
is simulated. Labels give the written text, its normalisation, the field box and one box per
written character (after the scan's rotation).

Data set on disk: `DIR/NNNNN.png` (greyscale) and `DIR/labels.jsonl`, one JSON object per image:
`{"file", "text", "amount", "grammar", "field_box": [x, y, w, h], "chars": [{"char", "box"}],
"mnist_indices", "split"}`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipelines.amount_text import sample_amount_text
from pipelines.amounts import normalize_amount
from pipelines.cheque_compose import compose_cheque
from pipelines.images import load_gray
from pipelines.mnist import SPLITS, TRAIN_HELD_OUT, Mnist, load_mnist
from pipelines.scan_effects import mottled, rough_scan

FORMATS = ("us", "eu", "mixed")
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class CharBox:
    char: str
    box: Box  # x, y, w, h


@dataclass
class ChequeSample:
    """`image` (H, W) uint8 greyscale, paper light and ink dark."""

    image: np.ndarray
    text: str
    amount: str
    grammar: str
    field_box: Box
    chars: list[CharBox]
    mnist_indices: list[int]
    split: str


@dataclass(frozen=True)
class LabelledImage:
    """One entry of a data set on disk; `load()` reads its image (H, W) uint8."""

    path: Path
    text: str
    amount: str
    grammar: str
    field_box: Box
    chars: list[CharBox]
    mnist_indices: list[int]
    split: str

    def load(self) -> np.ndarray:
        try:  # as the reader reads it: the pixels trained on are those read
            return load_gray(self.path)
        except ValueError as err:
            raise ValueError(f"cannot read image: {err}") from None


_MNIST: dict[str, Mnist] = {}
_POOLS: dict[tuple[str, str], tuple[Mnist, int]] = {}
DIGIT_POOLS = ("all", "fit", "held-out")


def mnist_split(split: str) -> Mnist:
    """The MNIST split, loaded once per process."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if split not in _MNIST:
        _MNIST[split] = load_mnist(split)
    return _MNIST[split]


def digit_pool(split: str, pool: str = "all") -> tuple[Mnist, int]:
    """The digits a data set of `split` is written with, and the split's index of the first:
    all of the split's ("all"), or of the training split those LeNet trains on ("fit": all but
    the last TRAIN_HELD_OUT) or validates on ("held-out"), so that a reader's training cheques
    and its validation cheques share no digit image. Loaded once per process."""
    if pool not in DIGIT_POOLS:
        raise ValueError(f"unknown digit pool {pool!r}; expected one of {', '.join(DIGIT_POOLS)}")
    if pool != "all" and split != "train":
        raise ValueError(f"the {pool!r} digit pool is part of the training split, not {split!r}")
    if pool == "all":
        return mnist_split(split), 0
    if (split, pool) not in _POOLS:
        digits = mnist_split(split)
        cut = len(digits.labels) - TRAIN_HELD_OUT
        part = slice(0, cut) if pool == "fit" else slice(cut, None)
        _POOLS[split, pool] = (Mnist(split, digits.images[part], digits.labels[part]),
                               part.start)
    return _POOLS[split, pool]


def _check_args(rng_seed: int, split: str, fmt: str, digits: Mnist | None) -> None:
    if isinstance(rng_seed, bool) or not isinstance(rng_seed, (int, np.integer)) or rng_seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {rng_seed!r}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if digits is not None and digits.split != split:
        raise ValueError(f"digits come from the {digits.split!r} split but split={split!r}: "
                         "training and test digits are never mixed")


def generate_cheque(rng_seed: int, split: str, digits: Mnist | None = None, fmt: str = "us",
                    bitonal: bool = False, fields_only: bool = False,
                    raised_cents: bool = False, underlined_cents: bool = False) -> ChequeSample:
    """One synthetic cheque (or only its amount field), a pure function of the arguments.
    `raised_cents`: the amount's cents are written small and raised ("125⁰⁰");
    `underlined_cents`: raised cents are underlined (no effect on other amounts)."""
    _check_args(rng_seed, split, fmt, digits)
    digits = mnist_split(split) if digits is None else digits
    rng = np.random.default_rng(int(rng_seed))
    grammar = fmt if fmt != "mixed" else ("eu" if rng.random() < 0.3 else "us")
    c = compose_cheque(rng, digits, lambda allow_dollar: sample_amount_text(
        rng, grammar, allow_dollar, raised_cents), bitonal, fields_only,
        raised_cents and underlined_cents)
    amount = normalize_amount(c.text, grammar)
    return ChequeSample(c.image, c.text, amount, grammar, c.field_box,
                        [CharBox(ch, b) for ch, b in c.chars], c.mnist_indices, split)


def derive_seed(seed: int, index: int) -> int:
    """The seed of cheque `index` of a data set made with `seed`."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint64)[0]
               >> 1)


def generate_cheques(n: int, seed: int, split: str, digits: Mnist | None = None,
                     fmt: str = "us", bitonal: bool | float = False,
                     fields_only: bool = False, raised_cents: float = 0.0,
                     underlined_cents: float = 0.0) -> Iterator[ChequeSample]:
    """`n` cheques; cheque i uses `derive_seed(seed, i)`. `bitonal` may be a fraction, and so
    are `raised_cents`, the share of amounts written with raised cents (`has_raised_cents`),
    and `underlined_cents`, the share of those whose raised cents are underlined
    (`has_underlined_cents`)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    _check_args(seed, split, fmt, digits)
    for i in range(n):
        yield generate_cheque(derive_seed(seed, i), split, digits, fmt,
                              is_bitonal(bitonal, seed, i), fields_only,
                              has_raised_cents(raised_cents, seed, i),
                              has_underlined_cents(underlined_cents, seed, i))


def is_bitonal(bitonal: bool | float, seed: int, index: int) -> bool:
    """Whether cheque `index` is bitonal when a fraction `bitonal` of them is."""
    return _drawn(float(bitonal), seed, index, 1)


def has_raised_cents(raised_cents: float, seed: int, index: int) -> bool:
    """Whether cheque `index`'s cents are written raised when a fraction `raised_cents` of them
    are (a draw of its own: the other cheques of a data set are the same with or without)."""
    return _drawn(float(raised_cents), seed, index, 6)


def has_underlined_cents(underlined_cents: float, seed: int, index: int) -> bool:
    """Whether cheque `index`'s raised cents, if it has them, are underlined when a fraction
    `underlined_cents` of them are (a draw of its own, as `has_raised_cents`)."""
    return _drawn(float(underlined_cents), seed, index, 7)


def is_rough(rough: float, seed: int, index: int) -> bool:
    """Whether cheque `index` gets a rough scan (`scan_effects.rough_scan`) when a fraction
    `rough` of them does (bitonal ones never: a black-and-white scan is not blurred or grey)."""
    return _drawn(rough, seed, index, 2)


def rough_rng(seed: int, index: int) -> np.random.Generator:
    """The random stream of cheque `index`'s rough scan, apart from its generator's, so that
    a data set's other cheques are the same with or without rough scans."""
    return np.random.default_rng([int(seed), int(index), 3])


def roughened(image: np.ndarray, rough: float, seed: int, index: int,
              bitonal: bool) -> np.ndarray:
    """Cheque `index`'s image as scanned: a rough scan when it is drawn (`is_rough`) and not
    bitonal, else as generated."""
    if bitonal or not is_rough(rough, seed, index):
        return image
    return rough_scan(image, rough_rng(seed, index))


def on_mottled_paper(image: np.ndarray, mottled_fraction: float, seed: int, index: int,
                     bitonal: bool) -> np.ndarray:
    """Cheque `index`'s image on a mottled background (`scan_effects.mottled`) when it is drawn,
    a fraction `mottled_fraction` of the cheques, and not bitonal (a black-and-white scan
    drops the background), else as it is. The draw and the background have random streams of
    their own, so the other cheques of a data set are the same with or without."""
    if bitonal or not _drawn(mottled_fraction, seed, index, 4):
        return image
    return mottled(image, np.random.default_rng([int(seed), int(index), 5]))


def _drawn(frac: float, seed: int, index: int, stream: int) -> bool:
    if frac <= 0 or frac >= 1:
        return frac >= 1
    return bool(np.random.default_rng([int(seed), int(index), stream]).random() < frac)


def encode_png(image: np.ndarray) -> bytes:
    """A greyscale image as PNG bytes, every row Sub-filtered: `pipelines.png` undoes those
    with array operations (a generated cheque's file loads in 4.7 ms; with the mostly Paeth
    rows libpng chooses itself, 9.4 ms), and they encode faster (~11 ms against ~18) for ~4%
    more bytes."""
    ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1,
                                        cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
                                        cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB])
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def to_label(sample: ChequeSample, file: str) -> dict:
    return {
        "file": file, "text": sample.text, "amount": sample.amount, "grammar": sample.grammar,
        "field_box": list(sample.field_box),
        "chars": [{"char": c.char, "box": list(c.box)} for c in sample.chars],
        "mnist_indices": list(sample.mnist_indices), "split": sample.split,
    }


def prepare_dir(out_dir: Path | str, overwrite: bool = False) -> Path:
    """Create `out_dir`; refuse one whose labels.jsonl holds data unless `overwrite`."""
    out = Path(out_dir)
    labels = out / "labels.jsonl"
    if labels.exists() and labels.stat().st_size > 0 and not overwrite:
        raise FileExistsError(f"{labels} already holds labels; pass --overwrite to replace them")
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_records(records: Iterable[tuple[bytes, dict]], out_dir: Path | str,
                  overwrite: bool = False) -> int:
    """Write (png bytes, label) pairs as a data set; returns the count."""
    out = prepare_dir(out_dir, overwrite)
    count = 0
    with open(out / "labels.jsonl", "w", encoding="utf-8") as f:
        for png, label in records:
            (out / label["file"]).write_bytes(png)
            f.write(json.dumps(label) + "\n")
            count += 1
    return count


def file_name(index: int) -> str:
    return f"{index:05d}.png"


def write_dataset(samples: Iterable[ChequeSample], out_dir: Path | str,
                  overwrite: bool = False) -> int:
    """Write `samples` as `out_dir/NNNNN.png` + `out_dir/labels.jsonl`; returns the count."""
    return write_records(((encode_png(s.image), to_label(s, file_name(i)))
                          for i, s in enumerate(samples)), out_dir, overwrite)


def _box(value: object, where: str) -> Box:
    if not (isinstance(value, list) and len(value) == 4 and all(isinstance(v, int)
                                                                for v in value)):
        raise ValueError(f"{where}: box must be [x, y, w, h] integers, got {value!r}")
    return (value[0], value[1], value[2], value[3])


def read_dataset(directory: Path | str) -> list[LabelledImage]:
    """The entries of a data set folder; ValueError naming the file and line of any problem."""
    folder = Path(directory)
    labels = folder / "labels.jsonl"
    if not labels.is_file():
        raise ValueError(f"{labels} is missing: not a cheque data set")
    entries = []
    with open(labels, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{labels}:{lineno}"
            try:
                rec = json.loads(line)
                entry = LabelledImage(
                    path=folder / rec["file"], text=rec["text"], amount=rec["amount"],
                    grammar=rec["grammar"], field_box=_box(rec["field_box"], where),
                    chars=[CharBox(c["char"], _box(c["box"], where)) for c in rec["chars"]],
                    mnist_indices=[int(i) for i in rec["mnist_indices"]], split=rec["split"])
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise ValueError(f"{where}: corrupt label ({type(err).__name__}: {err})") from None
            if not entry.path.is_file():
                raise ValueError(f"{where}: image {entry.path} is missing")
            entries.append(entry)
    return entries
