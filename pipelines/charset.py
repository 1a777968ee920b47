"""The character set of handwritten cheque amounts: 17 classes, as the 1998 check reader's
recognizer had (digits, the amount punctuation, and a rubbish class for non-characters)."""

from __future__ import annotations

DIGITS = "0123456789"
SYMBOLS = ".,-/$*"
CLASSES: tuple[str, ...] = tuple(DIGITS) + tuple(SYMBOLS) + ("<rubbish>",)
NUM_CLASSES = len(CLASSES)  # 17
RUBBISH = NUM_CLASSES - 1
CLASS_INDEX: dict[str, int] = {c: i for i, c in enumerate(CLASSES)}


def class_index(char: str) -> int:
    """Index of a written character; raises ValueError naming the allowed set."""
    try:
        return CLASS_INDEX[char]
    except KeyError:
        raise ValueError(
            f"character {char!r} is not in the cheque character set {''.join(DIGITS + SYMBOLS)!r}"
        ) from None
