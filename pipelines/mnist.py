"""MNIST from its four IDX files, read from `MNIST_DIR` or else `data/mnist/` in the checkout.

The test split is for evaluation only: training data (characters, cheques) is made from the
training split, evaluation data from the test split, never mixed.
"""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPLITS = ("train", "test")
# The last TRAIN_HELD_OUT digits of the training split are held out: LeNet validates on them
# (`train_chars`), and cheques written with them (`cheques.digit_pool`) validate a reader.
TRAIN_HELD_OUT = 5000
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000),
}


class MnistError(ValueError):
    """MNIST could not be read: the message says where we looked and what we expected."""


@dataclass(frozen=True)
class Mnist:
    """One split: `images` (N, 28, 28) uint8 (ink high), `labels` (N,) uint8."""

    split: str
    images: np.ndarray
    labels: np.ndarray


def mnist_dir() -> Path:
    env = os.environ.get("MNIST_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "data" / "mnist"


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise MnistError(f"MNIST file {path} is missing") from None
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise MnistError(f"MNIST file {path} is corrupt: {err}") from None
    if len(raw) < 4 + 4 * ndim:
        raise MnistError(f"MNIST file {path} is corrupt: only {len(raw)} bytes")
    zero, dtype_code, dims = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08 or dims != ndim:
        raise MnistError(
            f"MNIST file {path} is corrupt: bad IDX header (expected unsigned-byte data "
            f"with {ndim} dimensions)"
        )
    shape = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    body = raw[4 + 4 * ndim :]
    if len(body) != int(np.prod(shape)):
        raise MnistError(
            f"MNIST file {path} is corrupt: header says {shape} ({int(np.prod(shape))} bytes) "
            f"but {len(body)} bytes follow"
        )
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def load_mnist(split: str, root: Path | str | None = None) -> Mnist:
    """Read one split; raises MnistError (a ValueError) with a one-line reason."""
    if split not in SPLITS:
        raise ValueError(f"unknown MNIST split {split!r}; expected 'train' or 'test'")
    folder = Path(root) if root is not None else mnist_dir()
    if not folder.is_dir():
        raise MnistError(
            f"MNIST folder {folder} does not exist: set MNIST_DIR to a folder holding "
            f"{', '.join(f for s in SPLITS for f in _FILES[s][:2])}"
        )
    image_file, label_file, count = _FILES[split]
    images = _read_idx(folder / image_file, 3)
    labels = _read_idx(folder / label_file, 1)
    if images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise MnistError(
            f"MNIST files in {folder} disagree: {images.shape} images, {labels.shape} labels"
        )
    if len(images) != count:
        raise MnistError(f"MNIST {split} split in {folder} has {len(images)} images, "
                         f"expected {count}")
    if labels.max(initial=0) > 9:
        raise MnistError(f"MNIST file {folder / label_file} is corrupt: label above 9")
    return Mnist(split, images, labels)
