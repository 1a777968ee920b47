"""The character set of handwritten cheque amounts: 17 classes, as the 1998 check reader's
recognizer had (digits, the amount punctuation, and a rubbish class for non-characters)."""

from __future__ import annotations

DIGITS = "0123456789"
SYMBOLS = ".,-/$*"
CLASSES: tuple[str, ...] = tuple(DIGITS) + tuple(SYMBOLS) + ("<rubbish>",)
NUM_CLASSES = len(CLASSES)  # 17
RUBBISH = NUM_CLASSES - 1
CLASS_INDEX: dict[str, int] = {c: i for i, c in enumerate(CLASSES)}
# Cents written small and raised ("125⁰⁰"): the recognizer reads them as the digits they are,
# and the interpretation graph gives a raised digit a label of its own (after the classes), so
# that the grammar can tell "125⁰⁰" from "12500".
RAISED_DIGITS = "⁰¹²³⁴⁵⁶⁷⁸⁹"
LABELS: tuple[str, ...] = CLASSES + tuple(RAISED_DIGITS)
NUM_LABELS = len(LABELS)  # 27
RAISED = NUM_CLASSES  # label of raised digit d: RAISED + d
TO_PLAIN_DIGITS = str.maketrans(RAISED_DIGITS, DIGITS)


def class_index(char: str) -> int:
    """Recognizer class of a written character (a raised digit is its digit); raises
    ValueError naming the allowed set."""
    try:
        return CLASS_INDEX[char.translate(TO_PLAIN_DIGITS)]
    except KeyError:
        raise ValueError(
            f"character {char!r} is not in the cheque character set {''.join(DIGITS + SYMBOLS)!r}"
        ) from None
