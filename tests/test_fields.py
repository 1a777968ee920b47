"""Field proposals and the field scorer (pipelines/fields.py, pipelines/field_training.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from pipelines.field_scorer import FieldScorer
from pipelines.field_training import DEFAULT_WEIGHTS, is_good, load_scorer
from pipelines.fields import NUM_FIELD_FEATURES, propose_fields, whole_image_field
from pipelines.mnist import mnist_dir

HAVE_MNIST = (mnist_dir() / "t10k-images-idx3-ubyte.gz").is_file()
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason="MNIST_DIR holds no MNIST")
SEEDS = [(0, "us", False), (1, "eu", False), (2, "us", True), (3, "eu", True)]


@pytest.fixture(scope="module")
def cheques() -> list:
    from pipelines.cheques import generate_cheque

    return [generate_cheque(s, "test", fmt=f, bitonal=b) for s, f, b in SEEDS]


@needs_mnist
def test_proposals_contain_the_field(cheques: list) -> None:
    for c in cheques:
        cands = propose_fields(c.image)
        assert any(is_good(k.box, c.field_box) for k in cands), c.field_box
        H, W = c.image.shape
        for k in cands:
            x, y, w, h = k.box
            assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= W and y + h <= H
            assert k.features.shape == (NUM_FIELD_FEATURES,)
            assert np.isfinite(k.features).all()


@needs_mnist
def test_proposals_do_not_depend_on_resolution(cheques: list) -> None:
    import cv2

    c = cheques[0]
    big = cv2.resize(c.image, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_LINEAR)
    label = tuple(int(round(v * 1.5)) for v in c.field_box)
    assert any(is_good(k.box, label) for k in propose_fields(big))


def test_blank_page_has_no_candidates() -> None:
    assert propose_fields(np.full((700, 1600), 235, np.uint8)) == []
    assert propose_fields(np.zeros((700, 1600), np.uint8)) == []


@pytest.mark.parametrize("shape", [(0, 0), (1, 1), (5, 300), (300, 5), (20, 20), (40, 2000),
                                   (3000, 60)])
def test_odd_sizes_do_not_crash(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    for c in propose_fields(img):
        assert c.features.shape == (NUM_FIELD_FEATURES,)


@needs_mnist
def test_features_in_chunks_equal_features_at_once(cheques: list,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import pipelines.fields as fields

    for c in cheques[:2]:
        at_once = [(k.box, k.features) for k in propose_fields(c.image)]
        monkeypatch.setattr(fields, "FEATURE_CELLS", 1)  # one candidate a chunk
        chunked = [(k.box, k.features) for k in propose_fields(c.image)]
        monkeypatch.undo()
        assert [b for b, _ in chunked] == [b for b, _ in at_once]
        np.testing.assert_array_equal(np.stack([f for _, f in chunked]),
                                      np.stack([f for _, f in at_once]))


def test_bad_input_names_the_problem() -> None:
    with pytest.raises(TypeError, match="uint8"):
        propose_fields(np.zeros((100, 100), np.float32))


def test_scorer_shapes() -> None:
    scorer = FieldScorer()
    assert scorer(torch.zeros(7, NUM_FIELD_FEATURES)).shape == (7,)
    assert scorer(torch.zeros(0, NUM_FIELD_FEATURES)).shape == (0,)
    assert whole_image_field(np.zeros((30, 40), np.uint8)).box == (0, 0, 40, 30)


def test_the_numpy_ranker_gives_the_scorers_scores() -> None:
    torch.manual_seed(0)
    scorer = FieldScorer()
    features = torch.randn(9, NUM_FIELD_FEATURES)
    with torch.no_grad():
        expected = scorer(features).numpy()
    ranked = scorer.ranker()(features.numpy())
    assert ranked.shape == (9,) and ranked.dtype == np.float32
    np.testing.assert_allclose(ranked, expected, rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # a copy: later training does not change the ranker
        next(scorer.parameters()).add_(1.0)
    np.testing.assert_allclose(scorer.ranker()(features.numpy()) - ranked,
                               scorer(features).detach().numpy() - expected, atol=1e-5)


@needs_mnist
@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="no trained field scorer")
def test_trained_scorer_ranks_the_field_in_top3(cheques: list) -> None:
    scorer = load_scorer(DEFAULT_WEIGHTS)
    for c in cheques:
        cands = propose_fields(c.image)
        with torch.no_grad():
            scores = scorer(torch.from_numpy(np.stack([k.features for k in cands])))
        top = torch.argsort(scores, descending=True)[:3].tolist()
        assert any(is_good(cands[i].box, c.field_box) for i in top)


def _lines_by_pairs(boxes: np.ndarray) -> list[list[int]]:
    """text_lines written pair by pair, with networkx for the groups (an independent check)."""
    import networkx as nx

    from pipelines.fields import LINE_GAP, PUNCT_GAP

    b = boxes.astype(np.float64)
    g = nx.Graph()
    g.add_nodes_from(range(len(b)))
    h, w = b[:, 3] - b[:, 1], b[:, 2] - b[:, 0]
    small = (h < 5) | (h * w < 16)
    for i in range(len(b)):
        for j in range(i + 1, len(b)):
            hmin, hmax = min(h[i], h[j]), max(h[i], h[j])
            vov = min(b[i, 3], b[j, 3]) - max(b[i, 1], b[j, 1])
            gap = max(b[i, 0], b[j, 0]) - min(b[i, 2], b[j, 2])
            similar = hmax <= 3.5 * hmin and vov >= 0.4 * hmin and gap <= LINE_GAP * hmin
            band = vov >= 0.6 * hmin and gap <= PUNCT_GAP * hmax
            if similar or (band and not (small[i] and small[j])):
                g.add_edge(i, j)
    groups = [sorted(c, key=lambda k: (b[k, 0], k)) for c in nx.connected_components(g)]
    return sorted((c for c in groups if not small[c].all()), key=min)


@pytest.mark.parametrize("seed", range(6))
def test_text_lines_match_a_pair_by_pair_grouping(seed, monkeypatch):
    import pipelines.fields as fields

    monkeypatch.setattr(fields, "LINK_BLOCK", 7)  # several blocks of pairs
    rng = np.random.default_rng(seed)
    n = 60
    x0, y0 = rng.integers(0, 300, n), rng.integers(0, 60, n)
    boxes = np.stack([x0, y0, x0 + rng.integers(1, 25, n), y0 + rng.integers(1, 30, n)], 1)
    got = [g.tolist() for g in fields.text_lines(boxes)]
    assert got == _lines_by_pairs(boxes)


@pytest.mark.parametrize("seed", range(4))
def test_first_rows_keeps_each_distinct_row_once_in_order(seed):
    from pipelines.fields import _first_rows

    rows = np.random.default_rng(seed).integers(0, 3, (60, 4)).astype(np.float64)
    seen, expected = set(), []
    for k, r in enumerate(map(tuple, rows.tolist())):
        if r not in seen:
            seen.add(r)
            expected.append(k)
    assert _first_rows(rows).tolist() == expected
    assert _first_rows(rows[:0]).tolist() == []


def test_spread_is_the_python_formula():
    from pipelines.fields import _spread

    rng = np.random.default_rng(0)
    h = [rng.integers(1, 40, rng.integers(1, 8)).astype(np.float64) for _ in range(50)]
    n, s1, s2 = (np.array([f(x) for x in h]) for f in (len, np.sum, lambda x: np.sum(x * x)))
    expected = []
    for k in range(len(h)):
        mean = s1[k] / n[k]
        expected.append(max(s2[k] / n[k] - mean * mean, 0.0) ** 0.5 / (mean + 1))
    assert _spread(n, s1, s2).tolist() == expected


def _piece_starts_line_by_line(b, starts, rules_v):
    """The pieces' starts, one line at a time in plain Python (an independent check)."""
    from pipelines.fields import PIECE_GAP
    from pipelines.numeric import median

    out = []
    for s, e in zip(starts.tolist(), starts[1:].tolist() + [len(b)]):
        line = b[s:e].tolist()
        hs = [y1 - y0 for _, y0, _, y1 in line]
        tall = [h for h in hs if h >= 5]
        line_h = median(np.array(tall)) if tall else float(max(hs))
        y0, y1 = min(r[1] for r in line), max(r[3] for r in line)
        cuts = [x for a, z, x in rules_v.tolist() if min(z, y1) - max(a, y0) > 0.5 * (y1 - y0)]
        out.append(s)
        right = line[0][2]
        for k in range(1, len(line)):
            left = line[k][0]
            if left - right > PIECE_GAP * line_h or any(right - 2 <= c <= left + 2 for c in cuts):
                out.append(s + k)
            right = max(right, line[k][2])
    return out


@pytest.mark.parametrize("seed", range(6))
def test_piece_starts_match_a_line_by_line_scan(seed):
    from pipelines.fields import PageInk, _piece_starts

    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 9, 7)
    starts = np.cumsum(sizes) - sizes
    x0, y0 = rng.integers(0, 250, sizes.sum()), rng.integers(0, 10, sizes.sum())
    b = np.stack([x0, y0, x0 + rng.integers(1, 30, len(x0)), y0 + rng.integers(3, 40, len(x0))],
                 1).astype(np.int32)
    b[:, [0, 2]] += np.repeat(np.arange(7) * 500, sizes)[:, None]  # each line sorted by x
    order = np.lexsort((b[:, 0], np.repeat(np.arange(7), sizes)))
    b = b[order]
    z = rng.integers(0, 20, 30)  # many across most of a line, some among its components
    x = rng.integers(0, 7, 30) * 500 + rng.integers(0, 280, 30) + 0.5
    rules_v = np.stack([z, z + rng.integers(20, 60, 30), x], 1).astype(np.float32)
    page = PageInk((60, 4000), np.zeros((61, 4001)), b, np.zeros((0, 3), np.float32), rules_v,
                   np.zeros((0, 4), np.float32), 10.0, np.zeros((60, 4000), np.uint8))
    assert _piece_starts(b, starts, page).tolist() == _piece_starts_line_by_line(b, starts,
                                                                                 rules_v)


@pytest.mark.parametrize("seed", range(3))
def test_rects_are_the_bounding_rects_of_the_outer_contours(seed):
    import cv2

    from pipelines.fields import _rects

    rng = np.random.default_rng(seed)
    mask = (rng.random((60, 90)) < 0.3).astype(np.uint8)
    mask[20:40, 30:60] = 1
    mask[25:35, 35:55] = 0  # a hole, with a component inside it
    mask[29:31, 44:46] = 1
    contours, hier = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    expected = [cv2.boundingRect(c) for c, h in zip(contours, hier[0]) if h[3] < 0]
    assert [(x, y, x1 - x, y1 - y) for x, y, x1, y1 in _rects(mask).tolist()] == expected
    assert _rects(np.zeros((5, 5), np.uint8)).shape == (0, 4)


@given(st.integers(1, 9), st.integers(1, 9), st.data())
def test_turned_boxes_hold_the_turned_pixels(height: int, width: int, data) -> None:
    from pipelines.fields import turn_box, unturn_box

    image = np.arange(height * width).reshape(height, width)
    x, y = data.draw(st.integers(0, width - 1)), data.draw(st.integers(0, height - 1))
    w, h = data.draw(st.integers(1, width - x)), data.draw(st.integers(1, height - y))
    for turns in range(4):
        tx, ty, tw, th = turn_box((x, y, w, h), turns, image.shape)
        turned = np.rot90(image, turns)
        assert np.array_equal(turned[ty : ty + th, tx : tx + tw],
                              np.rot90(image[y : y + h, x : x + w], turns))
        assert unturn_box((tx, ty, tw, th), turns, image.shape) == (x, y, w, h)


@needs_mnist
@pytest.mark.parametrize("seed", [10, 21, 33])
def test_grainy_pages_are_smoothed_before_ink_is_found(seed, monkeypatch):
    """Rough scans (noise, dust, JPEG) whose page grain is over GRAINY_PAGE: unsmoothed,
    a quarter or more of the page would read as ink; smoothed, the ink is the writing."""
    import cv2

    from pipelines import fields
    from pipelines.cheques import generate_cheque
    from pipelines.numeric import median_u8
    from pipelines.scan_effects import rough_scan

    c = generate_cheque(seed, "test")
    small = fields.to_working(rough_scan(c.image, np.random.default_rng(seed)))
    below = cv2.subtract(cv2.dilate(small, np.ones((15, 15), np.uint8)), small)
    assert median_u8(below[::2, ::2]) > fields.GRAINY_PAGE
    ink = fields.ink_masks(small)[0].mean()
    clean = fields.ink_masks(fields.to_working(c.image))[0].mean()
    monkeypatch.setattr(fields, "GRAINY_PAGE", 255)
    monkeypatch.setattr(fields, "NOISY_PAGE", 255)
    monkeypatch.setattr(fields, "TEXTURED_PAGE", 256)  # the raw max filter
    unsmoothed = fields.ink_masks(small)[0].mean()
    assert ink < 2 * clean < 0.2 < unsmoothed


def test_noise_and_white_dust_do_not_turn_the_paper_into_ink(monkeypatch) -> None:
    """A page with pixel noise (sigma 6) and dust, grain between NOISY_PAGE and GRAINY_PAGE:
    a white speck raises the max-filter paper level over its whole window. With the paper
    level from the median-smoothed page, the writing is ink and the paper is not; with the
    raw maximum, a third of the paper was."""
    import cv2

    from pipelines import fields
    from pipelines.numeric import median_u8

    rng = np.random.default_rng(0)
    writing = np.zeros((340, 800), np.uint8)
    cv2.putText(writing, "194.23", (520, 160), cv2.FONT_HERSHEY_SIMPLEX, 2.0, 255, 3)
    stroke = writing > 0
    page = np.where(stroke, 120.0, 190.0) + rng.normal(0, 6, stroke.shape)
    dust = rng.random(page.shape) < 0.004
    page[dust] = np.where(rng.random(int(dust.sum())) < 0.5, 0, 255)
    gray = np.clip(page, 0, 255).astype(np.uint8)
    below = cv2.subtract(cv2.dilate(gray, np.ones((15, 15), np.uint8)), gray)
    assert fields.NOISY_PAGE < median_u8(below[::2, ::2]) <= fields.GRAINY_PAGE
    ink = fields.ink_masks(gray)[0].astype(bool)
    assert ink[stroke].mean() > 0.98 and ink[~stroke].mean() < 0.001
    monkeypatch.setattr(fields, "NOISY_PAGE", 255)
    assert fields.ink_masks(gray)[0].astype(bool)[~stroke].mean() > 0.2


def test_faint_pen_ink_finds_a_grey_pen_that_the_ink_mask_misses() -> None:
    """A grey pen 28 levels darker than its paper, blurred, under noise (sigma 8): the ink mask
    keeps little of it, the faint-pen mask most of it and next to none of the paper."""
    import cv2

    from pipelines import fields

    rng = np.random.default_rng(3)
    writing = np.zeros((340, 800), np.uint8)
    cv2.putText(writing, "305.71", (480, 160), cv2.FONT_HERSHEY_SIMPLEX, 2.0, 255, 3)
    stroke = writing > 0
    page = cv2.GaussianBlur(np.where(stroke, 172.0, 200.0), (0, 0), 1.0)
    gray = np.clip(page + rng.normal(0, 8, page.shape), 0, 255).astype(np.uint8)
    core = cv2.erode(writing, np.ones((3, 3), np.uint8)) > 0  # the stroke's middle
    ink = fields.ink_masks(gray)[0].astype(bool)
    faint = fields.faint_pen_ink(gray).astype(bool)
    assert ink[core].mean() < 0.3
    assert faint[core].mean() > 0.9
    far = cv2.dilate(writing, np.ones((9, 9), np.uint8)) == 0
    assert faint[far].mean() < 0.002


def test_a_mottled_page_takes_its_paper_level_from_a_closing(monkeypatch) -> None:
    """Writing on a mottled (pictorial) background whose shade varies by ~8% over a few strokes'
    widths: the max filter's paper level sits on the mottling's light peaks, and its dark spots
    read as ink; the closing's follows the background between the strokes."""
    import cv2

    from pipelines import fields

    rng = np.random.default_rng(5)
    writing = np.zeros((340, 800), np.uint8)
    cv2.putText(writing, "7682.50", (430, 160), cv2.FONT_HERSHEY_SIMPLEX, 2.0, 255, 3)
    stroke = writing > 0
    mottle = cv2.GaussianBlur(rng.normal(0, 1, writing.shape).astype(np.float32), (0, 0), 6)
    shade = np.clip(0.85 + 0.08 * mottle / mottle.std(), 0.5, 1.0)
    gray = np.clip(np.where(stroke, 70.0, 225.0) * shade, 0, 255).astype(np.uint8)
    far = cv2.dilate(writing, np.ones((9, 9), np.uint8)) == 0
    ink = fields.ink_masks(gray)[0].astype(bool)
    assert ink[stroke].mean() > 0.98 and ink[far].mean() < 0.002
    monkeypatch.setattr(fields, "TEXTURED_PAGE", 256)
    assert fields.ink_masks(gray)[0].astype(bool)[far].mean() > 0.02


@needs_mnist
def test_clean_pages_are_not_smoothed(cheques: list, monkeypatch) -> None:
    """Clean pages (grain at most NOISY_PAGE, texture under TEXTURED_PAGE) keep the raw
    max-filter paper level."""
    from pipelines import fields

    for c in cheques:
        small = fields.to_working(c.image)
        ink = fields.ink_masks(small)
        monkeypatch.setattr(fields, "GRAINY_PAGE", 255)
        monkeypatch.setattr(fields, "NOISY_PAGE", 255)
        monkeypatch.setattr(fields, "TEXTURED_PAGE", 256)
        assert all(np.array_equal(a, b) for a, b in zip(ink, fields.ink_masks(small)))
        monkeypatch.undo()


def test_box_sides_are_rules_and_a_tall_handwritten_one_is_not() -> None:
    """A box's sides meet its top and bottom; a long straight '1' standing on the underline
    (or a stroke lengthening a side past the corner) must not change that."""
    from pipelines.fields import find_rules

    page = np.zeros((200, 800), np.uint8)
    page[40:42, 500:700] = 1  # the amount box: top, bottom, sides
    page[90:92, 500:700] = 1
    page[40:92, 500:502] = 1
    page[40:92, 698:700] = 1
    page[25:41, 698:700] = 1  # a stroke of the date crossing the corner above a side
    page[150:152, 100:400] = 1  # an underline with a tall straight '1' standing on it
    page[110:151, 200:203] = 1
    _, vert = find_rules(page)
    assert vert[45:88, 500:502].all() and vert[45:88, 698:700].all()
    assert not vert[110:150, 200:203].any()


def test_leaning_box_sides_are_rules_without_the_ink_written_against_them() -> None:
    """Under perspective a box's sides lean: each stays one rule, as long as it leans no more
    than ~13 degrees, and a '$' written against the left side is not taken into it."""
    import cv2

    from pipelines.fields import find_rules, on_its_line

    page = np.zeros((200, 800), np.uint8)
    for y in (40, 100):
        page[y : y + 2, 500:700] = 1  # top and bottom of the box
    for x_top, x_bottom in ((500, 512), (700, 688)):  # sides leaning ~11 degrees
        cv2.line(page, (x_top, 41), (x_bottom, 101), 1, 2)
    cv2.circle(page, (514, 62), 6, 1, 2)  # a '$' written against the left side
    _, vert = find_rules(page)
    on_left = [vert[y, 500:515].any() for y in range(46, 96)]
    on_right = [vert[y, 685:702].any() for y in range(46, 96)]
    assert all(on_left) and all(on_right)
    assert not vert[55:70, 510:522].any()
    # the line fit alone: a straight run keeps its pixels, the blob beside it is dropped
    run = np.zeros((40, 20), np.uint8)
    cv2.line(run, (3, 0), (9, 39), 1, 2)
    run[10:16, 12:18] = 1
    kept = on_its_line(run)
    assert kept[10:16, 13:18].sum() == 0 and kept.sum() >= 0.9 * (run.sum() - 36)
