"""Page skew: finding it, straightening a page, and boxes back in the scan's pixels."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.page import box_to_scan, page_skew, reading_canvas

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
LABELS = [json.loads(line) for line in (SAMPLES / "labels.jsonl").read_text().splitlines()]


def turned(gray: np.ndarray, degrees: float) -> np.ndarray:
    """`gray` turned counter-clockwise on a canvas holding all of it (independently of
    `straighten`)."""
    h, w = gray.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    cw, ch = int(h * sin + w * cos), int(h * cos + w * sin)
    m[0, 2] += cw / 2 - w / 2
    m[1, 2] += ch / 2 - h / 2
    return cv2.warpAffine(gray, m, (cw, ch), borderValue=int(np.median(gray)))


@pytest.mark.parametrize("degrees", [-8.0, 5.0, 10.0])
def test_page_skew_measures_a_turn_of_the_page(degrees):
    gray = cv2.imread(str(SAMPLES / LABELS[4]["file"]), cv2.IMREAD_GRAYSCALE)
    level = page_skew(gray)
    assert abs(level) <= 2.0  # the generator tilts cheques by up to 1.5 degrees
    assert abs(page_skew(turned(gray, degrees)) - level - degrees) <= 0.5


@settings(max_examples=40, deadline=None)
@given(st.floats(-12, 12), st.sampled_from([1.0, 1.5, 2.5]), st.booleans(),
       st.integers(0, 250), st.integers(0, 100), st.integers(8, 60), st.integers(8, 40))
def test_a_box_read_cut_enlarged_and_straightened_maps_back_to_the_same_ink(angle, scale, cut,
                                                                             x, y, w, h):
    """Ink in box (x, y, w, h) of a scan lies, in the page as read (`reading_canvas`: cut
    around it, enlarged, straightened), in some box; that box mapped back by `box_to_scan`
    holds the scan box and is not much larger."""
    scan = np.full((160, 320), 255, np.uint8)
    w, h = min(w, 320 - x), min(h, 160 - y)
    scan[y : y + h, x : x + w] = 0
    crop = None
    if cut:  # paper around the ink, as `content_box` leaves it
        x0, y0 = max(0, x - w), max(0, y - h)
        crop = (x0, y0, min(320, x + 2 * w) - x0, min(160, y + 2 * h) - y0)
    canvas, to_scan = reading_canvas(scan, crop, scale, angle)
    if to_scan is None:
        to_scan = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    ys, xs = np.nonzero(canvas < 128)
    inked = (int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
             int(ys.max() - ys.min() + 1))
    bx, by, bw, bh = box_to_scan(inked, to_scan, scan.shape)
    assert bx <= x + 1 and by <= y + 1
    assert bx + bw >= x + w - 1 and by + bh >= y + h - 1
    grow = np.sin(np.radians(abs(angle))) * (w + h) * 2 + 4
    assert bw <= w + grow and bh <= h + grow
    assert 0 <= bx and 0 <= by and bx + bw <= 320 and by + bh <= 160


def test_a_skewed_scan_is_read_straightened():
    """A cheque turned 8 degrees misreads as it is; `prepare` straightens it, and it reads as
    upright, its boxes in the skewed scan's own pixels. A level scan is not straightened."""
    from pipelines.preparation import prepare
    from pipelines.reader import decode_batch, load_reader, read_cheque

    reader = load_reader()
    rec = LABELS[4]
    gray = cv2.imread(str(SAMPLES / rec["file"]), cv2.IMREAD_GRAYSCALE)
    skewed = turned(gray, 8.0)
    as_is = prepare(skewed, field_scorer=reader.field_proposer, straighten_from=None)
    assert as_is.to_scan is None
    assert decode_batch(reader, [as_is], rec["grammar"])[0].amount != rec["amount"]
    prep = prepare(skewed, field_scorer=reader.field_proposer)
    assert abs(prep.skew - 8.0) <= 1.5 and prep.scan_shape == skewed.shape
    assert prepare(gray, field_scorer=reader.field_proposer).to_scan is None
    reading = read_cheque(skewed, reader, grammar=rec["grammar"])
    assert reading.amount == rec["amount"] and reading.confidence > 0.9
    # the field box, in the skewed scan, holds the ink of the amount (dark pixels inside)
    x, y, w, h = reading.field_box
    assert 0 <= x and 0 <= y and x + w <= skewed.shape[1] and y + h <= skewed.shape[0]
    assert (skewed[y : y + h, x : x + w] < 100).mean() > 0.02
    upright = read_cheque(gray, reader, grammar=rec["grammar"])
    assert len(reading.segments) == len(upright.segments)


def test_explain_draws_a_straightened_reading(tmp_path, capsys):
    """`--explain` on a skewed scan, read straightened, draws the straightened page."""
    from pipelines.read_cheque import main

    rec = LABELS[4]
    gray = cv2.imread(str(SAMPLES / rec["file"]), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(tmp_path / "skewed.png"), turned(gray, 8.0))
    code = main([str(tmp_path / "skewed.png"), "--grammar", rec["grammar"], "--explain",
                 str(tmp_path / "why.png")])
    out = capsys.readouterr().out
    assert code == 0 and out.split("\t")[1] == rec["amount"]
    picture = cv2.imread(str(tmp_path / "why.png"))
    assert picture is not None and picture.shape[1] >= 900


def test_a_small_scan_is_read_enlarged():
    """A cheque scanned at about 100 dpi (a third of the samples' size) is read enlarged, its
    field box in the small scan's own pixels."""
    from pipelines.preparation import MIN_LONG_SIDE, prepare
    from pipelines.reader import load_reader, read_cheque

    reader = load_reader()
    rec = LABELS[4]
    gray = cv2.imread(str(SAMPLES / rec["file"]), cv2.IMREAD_GRAYSCALE)
    small = cv2.resize(gray, None, fx=0.35, fy=0.35, interpolation=cv2.INTER_AREA)
    assert max(small.shape) < MIN_LONG_SIDE
    prep = prepare(small, field_scorer=reader.field_proposer)
    assert prep.scale > 2 and prep.scan_shape == small.shape
    reading = read_cheque(small, reader, grammar=rec["grammar"])
    assert reading.amount == rec["amount"]
    big = read_cheque(gray, reader, grammar=rec["grammar"]).field_box
    x, y, w, h = reading.field_box
    assert abs(x - big[0] * 0.35) < 8 and abs(y - big[1] * 0.35) < 8
    assert abs(w - big[2] * 0.35) < 10 and abs(h - big[3] * 0.35) < 10
    assert prepare(gray, field_scorer=reader.field_proposer).scale == 1.0


def test_a_large_scan_is_read_reduced():
    """A cheque scanned at about 600 dpi (twice the samples' size) is read reduced to the
    training cheques' size, its field box in the large scan's own pixels; so is an amount-field
    image three times the training fields' height."""
    from pipelines.preparation import DOWNSCALE_TO, MAX_FIELD_HEIGHT, MAX_LONG_SIDE, prepare
    from pipelines.reader import load_reader, read_cheque

    reader = load_reader()
    rec = LABELS[4]
    gray = cv2.imread(str(SAMPLES / rec["file"]), cv2.IMREAD_GRAYSCALE)
    large = cv2.resize(gray, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    assert max(large.shape) > MAX_LONG_SIDE
    prep = prepare(large, field_scorer=reader.field_proposer)
    assert abs(max(prep.image_shape) - DOWNSCALE_TO) <= 1 and prep.scan_shape == large.shape
    reading = read_cheque(large, reader, grammar=rec["grammar"])
    assert reading.amount == rec["amount"]
    x, y, w, h = read_cheque(gray, reader, grammar=rec["grammar"]).field_box
    bx, by, bw, bh = reading.field_box
    assert abs(bx - 2 * x) < 16 and abs(by - 2 * y) < 16
    assert abs(bw - 2 * w) < 20 and abs(bh - 2 * h) < 20
    field = cv2.resize(gray[y - 10 : y + h + 10, x - 10 : x + w + 10], None, fx=3, fy=3,
                       interpolation=cv2.INTER_CUBIC)
    assert field.shape[0] > MAX_FIELD_HEIGHT
    assert prepare(field, is_field=True).scale < 1
    assert read_cheque(field, reader, grammar=rec["grammar"], is_field=True).amount == rec["amount"]


@pytest.mark.parametrize("where", ["top", "bottom"])
def test_a_cheque_with_its_voucher_is_read(where, monkeypatch):
    """A business cheque on a letter page whose other two thirds are printed remittance text:
    the field search also looks at each third of the page as a page of its own. Searched as one
    portrait page (and turned), the cheque's amount lost to the text lines."""
    import pipelines.preparation as preparation
    from pipelines.reader import load_reader, read_cheque

    reader = load_reader()
    rec = LABELS[8]
    cheque = cv2.imread(str(SAMPLES / rec["file"]), cv2.IMREAD_GRAYSCALE)
    h, w = cheque.shape
    page = np.full((int(w * 11 / 8.5), w), 245, np.uint8)
    top = 0 if where == "top" else page.shape[0] - h
    page[top : top + h] = cheque
    for y in range(40, page.shape[0] - 30, 55):
        if not top - 20 < y < top + h + 40:
            cv2.putText(page, f"INVOICE 10{y}  NET 30  REMITTANCE ADVICE {7 * y}.00", (60, y),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.9, 40, 2)
    reading = read_cheque(page, reader, grammar=rec["grammar"])
    assert reading.amount == rec["amount"]
    x, y, bw, bh = reading.field_box
    assert top < y and y + bh < top + h
    monkeypatch.setattr(preparation, "BANDED_PAGE_ASPECT", 0.0)
    assert read_cheque(page, reader, grammar=rec["grammar"]).amount != rec["amount"]


def test_a_small_field_image_is_read_enlarged():
    """An amount-field image under MIN_FIELD_HEIGHT pixels tall is read enlarged; its field
    box is the whole small image."""
    from pipelines.preparation import MIN_FIELD_HEIGHT, prepare
    from pipelines.reader import load_reader, read_cheque

    reader = load_reader()
    rec = LABELS[4]
    gray = cv2.imread(str(SAMPLES / rec["file"]), cv2.IMREAD_GRAYSCALE)
    x, y, w, h = read_cheque(gray, reader, grammar=rec["grammar"]).field_box
    field = gray[y - 10 : y + h + 10, x - 10 : x + w + 10]
    small = cv2.resize(field, None, fx=0.4, fy=0.4, interpolation=cv2.INTER_AREA)
    assert small.shape[0] < MIN_FIELD_HEIGHT
    prep = prepare(small, is_field=True)
    assert prep.scale > 1 and prep.scan_shape == small.shape
    reading = read_cheque(small, reader, grammar=rec["grammar"], is_field=True)
    assert reading.amount == rec["amount"]
    fx, fy, fw, fh = reading.field_box
    assert fx >= 0 and fy >= 0 and fx + fw <= small.shape[1] and fy + fh <= small.shape[0]


def test_a_cheque_on_a_larger_scanned_page_is_read_cut_out():
    """A cheque scanned on an A4 page (top left, as on a flatbed) is cut out of the page and
    read as on its own, boxes in the page's pixels; a cheque filling its scan is not cut."""
    from pipelines.preparation import prepare
    from pipelines.reader import load_reader, read_cheque

    reader = load_reader()
    rec = LABELS[4]
    gray = cv2.imread(str(SAMPLES / rec["file"]), cv2.IMREAD_GRAYSCALE)
    page = np.full((3508, 2480), 250, np.uint8)
    page[100 : 100 + gray.shape[0], 120 : 120 + gray.shape[1]] = gray
    prep = prepare(page, field_scorer=reader.field_proposer)
    x, y, w, h = prep.crop
    assert x <= 120 and y <= 100 and x + w >= 120 + gray.shape[1] - 20
    assert y + h >= 100 + gray.shape[0] - 20 and w * h < 0.3 * page.size
    assert prepare(gray, field_scorer=reader.field_proposer).crop is None
    alone = read_cheque(gray, reader, grammar=rec["grammar"])
    reading = read_cheque(page, reader, grammar=rec["grammar"])
    assert reading.amount == alone.amount == rec["amount"]
    bx, by, bw, bh = reading.field_box
    assert abs(bx - 120 - alone.field_box[0]) <= 3 and abs(by - 100 - alone.field_box[1]) <= 3
