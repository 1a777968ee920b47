"""Field proposals and the field scorer (pipelines/fields.py, pipelines/field_training.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

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
