"""The printed cheque: US personal and business layouts at 200 dpi and their printed text.

`sample_layout` draws where everything goes; `draw_print` prints the bank, payer, cheque
number, date / payee / legal-amount / memo / signature lines, the courtesy-amount box (a box, a
line or nothing, with or without a printed `$`) and a MICR-like line, onto a background.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

Box = tuple[int, int, int, int]
Line = tuple[int, int, int]  # x0, x1, y

FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_COMPLEX_SMALL,
)
SCRIPT_FONTS = (cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, cv2.FONT_HERSHEY_SCRIPT_COMPLEX)
_BANK_WORDS = ("FIRST", "NATIONAL", "CITIZENS", "UNION", "PEOPLES", "FARMERS", "COMMERCE",
               "PACIFIC", "ATLANTIC", "HERITAGE", "SUMMIT", "RIVER", "VALLEY", "STATE")
_BANK_KINDS = ("BANK", "SAVINGS BANK", "CREDIT UNION", "TRUST COMPANY", "BANK, N.A.")
_FIRST = ("JOHN", "MARY", "ROBERT", "LINDA", "JAMES", "SUSAN", "DAVID", "KAREN", "PAUL", "ANNA")
_LAST = ("SMITH", "JOHNSON", "BROWN", "MILLER", "DAVIS", "GARCIA", "WILSON", "MOORE", "TAYLOR")
_STREETS = ("MAIN ST", "OAK AVENUE", "PINE ROAD", "MAPLE DR", "ELM STREET", "HIGHLAND AVE")
_CITIES = ("SPRINGFIELD, IL", "RIVERSIDE, CA", "FAIRVIEW, TX", "MADISON, WI", "CLINTON, NJ")
_COMPANY = ("ACME SUPPLY CO.", "NORTHWIND TRADERS INC.", "BLUE RIVER LOGISTICS LLC",
            "SUMMIT DENTAL GROUP", "GREENLEAF LANDSCAPING", "METRO ELECTRIC CORP.")


@dataclass(frozen=True)
class Layout:
    """Where the parts of one cheque go, in pixels of the (height, width) image."""

    kind: str  # "personal" or "business"
    width: int
    height: int
    amount_box: Box  # the courtesy-amount box where the amount is written
    box_style: str  # "box", "line" or "none"
    printed_dollar: bool
    date_line: Line
    payee_line: Line
    legal_line: Line
    memo_line: Line
    signature_line: Line
    micr_y: int


def sample_layout(rng: np.random.Generator) -> Layout:
    business = rng.random() < 0.35
    w = int(rng.integers(1720, 1900)) if business else int(rng.integers(1560, 1650))
    h = int(rng.integers(740, 820)) if business else int(rng.integers(680, 720))
    box_w = int(rng.uniform(0.17, 0.24) * w)
    box_h = int(rng.uniform(0.10, 0.14) * h)
    box_x = int(rng.uniform(0.70, 0.95) * w - box_w)
    box_x = min(max(box_x, int(0.66 * w)), w - box_w - 30)
    payee_y = int(rng.uniform(0.36, 0.45) * h)
    box_y = payee_y - box_h + int(rng.uniform(-0.02, 0.04) * h)
    legal_y = payee_y + int(rng.uniform(0.12, 0.16) * h)
    date_y = int(rng.uniform(0.2, 0.27) * h)
    date_x0 = int(rng.uniform(0.58, 0.7) * w)
    sig_y = int(rng.uniform(0.74, 0.82) * h)
    return Layout(
        kind="business" if business else "personal",
        width=w, height=h,
        amount_box=(box_x, box_y, box_w, box_h),
        box_style=str(rng.choice(["box", "line", "none"], p=[0.6, 0.25, 0.15])),
        printed_dollar=bool(rng.random() < 0.8),
        date_line=(date_x0, date_x0 + int(rng.uniform(0.16, 0.24) * w), date_y),
        payee_line=(int(0.04 * w) + 170, box_x - int(rng.uniform(0.03, 0.06) * w), payee_y),
        legal_line=(int(0.04 * w), int(rng.uniform(0.78, 0.86) * w), legal_y),
        memo_line=(int(0.04 * w) + 80, int(rng.uniform(0.38, 0.48) * w), sig_y),
        signature_line=(int(rng.uniform(0.56, 0.62) * w), int(0.95 * w), sig_y),
        micr_y=int(rng.uniform(0.88, 0.93) * h),
    )


def _text(img: np.ndarray, text: str, org: tuple[int, int], rng: np.random.Generator,
          scale: float, font: int | None = None, ink: int | None = None,
          thick: int | None = None) -> int:
    """Print `text` with its baseline at org; returns the text width in px."""
    font = int(rng.choice(FONTS)) if font is None else font
    ink = int(rng.integers(10, 70)) if ink is None else ink
    thick = max(1, int(round(scale * rng.uniform(1.2, 2.2)))) if thick is None else thick
    cv2.putText(img, text, org, font, scale, ink, thick, cv2.LINE_AA)
    return cv2.getTextSize(text, font, scale, thick)[0][0]


def _line(img: np.ndarray, line: Line, ink: int, thick: int = 2) -> None:
    x0, x1, y = line
    cv2.line(img, (x0, y), (x1, y), ink, thick, cv2.LINE_AA)


def _micr(img: np.ndarray, x: int, y: int, rng: np.random.Generator, ink: int) -> None:
    """A MICR-like line: transit symbols (bars and squares) around routing/account numbers."""
    scale = float(rng.uniform(1.0, 1.3))
    font = int(rng.choice([cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_SIMPLEX]))

    def symbol(x: int) -> int:
        s = int(14 * scale)
        cv2.rectangle(img, (x, y - 2 * s), (x + 4, y), ink, -1)
        cv2.rectangle(img, (x + 8, y - s), (x + 14, y), ink, -1)
        return x + 14 + s

    groups = [str(rng.integers(10**8, 10**9)), str(rng.integers(10**9, 10**11)),
              f"{int(rng.integers(100, 9999)):04d}"]
    for g in groups:
        x = symbol(x)
        x += _text(img, g, (x, y), rng, scale, font, ink, 2) + 12
    symbol(x)


def draw_print(img: np.ndarray, layout: Layout, rng: np.random.Generator) -> None:
    """Print everything of `layout` except the handwriting onto `img` (in place)."""
    w, h = layout.width, layout.height
    ink = int(rng.integers(10, 60))
    font = int(rng.choice(FONTS))
    left = int(0.04 * w)
    # Payer block, top left.
    if layout.kind == "business":
        _text(img, str(rng.choice(_COMPANY)), (left, int(0.1 * h)), rng, 1.2, font, ink, 2)
    else:
        name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
        _text(img, name, (left, int(0.09 * h)), rng, 0.9, font, ink, 2)
    _text(img, f"{int(rng.integers(1, 9999))} {rng.choice(_STREETS)}", (left, int(0.14 * h)),
          rng, 0.65, font, ink, 1)
    _text(img, f"{rng.choice(_CITIES)} {int(rng.integers(10000, 99999))}",
          (left, int(0.185 * h)), rng, 0.65, font, ink, 1)
    # Bank name: top centre or above the memo line.
    bank = f"{rng.choice(_BANK_WORDS)} {rng.choice(_BANK_WORDS)} {rng.choice(_BANK_KINDS)}"
    bank_y = int(0.1 * h) if rng.random() < 0.5 else int(0.66 * h)
    _text(img, bank, (int(rng.uniform(0.3, 0.42) * w), bank_y), rng, float(rng.uniform(0.8, 1.2)))
    # Cheque number top right.
    number = str(int(rng.integers(100, 99999)))
    _text(img, number, (int(0.88 * w), int(0.09 * h)), rng, 0.9, font, ink, 2)
    if layout.kind == "business" and rng.random() < 0.7:
        _text(img, "VOID AFTER 90 DAYS", (int(0.62 * w), int(0.7 * h)), rng, 0.55, font, ink, 1)
    # Date.
    x0, x1, y = layout.date_line
    _text(img, "DATE", (x0 - 80, y - 4), rng, 0.7, font, ink, 1)
    _line(img, layout.date_line, ink)
    # Payee.
    x0, x1, y = layout.payee_line
    _text(img, "PAY TO THE", (left, y - 34), rng, 0.6, font, ink, 1)
    _text(img, "ORDER OF", (left, y - 6), rng, 0.6, font, ink, 1)
    _line(img, layout.payee_line, ink)
    # Courtesy-amount box.
    bx, by, bw, bh = layout.amount_box
    if layout.box_style == "box":
        cv2.rectangle(img, (bx, by), (bx + bw, by + bh), ink, int(rng.integers(1, 4)))
    elif layout.box_style == "line":
        _line(img, (bx, bx + bw, by + bh), ink)
    if layout.printed_dollar:
        size = float(rng.uniform(1.0, 1.6))
        _text(img, "$", (bx - int(30 * size), by + bh - 8), rng, size, font, ink, 2)
    if layout.kind == "business" and rng.random() < 0.5:
        cap = f"NOT VALID OVER ${int(rng.choice([5, 10, 25, 50]))},000.00"
        _text(img, cap, (bx, by + bh + 24), rng, 0.5, font, ink, 1)
    # Legal amount line ending in DOLLARS.
    x0, x1, y = layout.legal_line
    _line(img, layout.legal_line, ink)
    _text(img, "DOLLARS", (x1 + 10, y - 4), rng, 0.75, font, ink, 2)
    # Memo and signature.
    x0, x1, y = layout.memo_line
    _text(img, str(rng.choice(["MEMO", "FOR"])), (left, y - 4), rng, 0.6, font, ink, 1)
    _line(img, layout.memo_line, ink, 1)
    _line(img, layout.signature_line, ink, 1)
    if rng.random() < 0.5:
        x0, x1, y = layout.signature_line
        _text(img, "AUTHORIZED SIGNATURE", (x0 + 20, y + 22), rng, 0.45, font, ink, 1)
    _micr(img, int(rng.uniform(0.08, 0.2) * w), layout.micr_y, rng, ink)
