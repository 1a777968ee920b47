"""Character normalisation (`charimage`), synthetic data (`chardata`) and distortions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipelines.chardata import RUBBISH_KINDS, build_chars, symbol_images
from pipelines.charimage import BACKGROUND, FOREGROUND, to_lenet_batch, to_lenet_input
from pipelines.charset import CLASS_INDEX, NUM_CLASSES, RUBBISH
from pipelines.distort import distort


def _ink_rows(img: np.ndarray) -> np.ndarray:
    return np.flatnonzero((img > BACKGROUND + 0.05).any(1))


def test_values_and_shape() -> None:
    patch = np.zeros((40, 20), np.uint8)
    patch[5:35, 8:12] = 255
    out = to_lenet_input(patch)
    assert out.shape == (32, 32) and out.dtype == np.float32
    assert np.isclose(out.min(), BACKGROUND) and np.isclose(out.max(), FOREGROUND)
    assert len(_ink_rows(out)) == 20  # paper mode: larger side 20 px


def test_float_and_uint8_patches_agree() -> None:
    patch = np.zeros((20, 10), np.uint8)
    patch[2:18, 3:7] = 255
    np.testing.assert_allclose(to_lenet_input(patch), to_lenet_input(patch / 255.0), atol=1e-5)


def test_dot_stays_small_and_low_with_line_height() -> None:
    dot = np.full((4, 4), 255, np.uint8)  # a '.' on the baseline of a 30-px line
    out = to_lenet_input(dot, line_height=30, top_offset=26)
    rows = _ink_rows(out)
    assert rows.min() >= 20 and rows.max() <= 27  # near the band's bottom (row 26)
    assert (out > 0.5).sum() <= 9
    paper = to_lenet_input(dot)  # paper mode blows it up to 20x20
    assert len(_ink_rows(paper)) == 20


def test_line_mode_keeps_a_digit_in_the_band_and_shrinks_wide_patches() -> None:
    digit = np.zeros((30, 15), np.uint8)
    digit[:, 6:9] = 255
    rows = _ink_rows(to_lenet_input(digit, line_height=30, top_offset=0))
    assert rows.min() == 6 and rows.max() == 25
    wide = np.full((10, 200), 255, np.uint8)
    out = to_lenet_input(wide, line_height=10, top_offset=0)
    assert ((out > 0).any(0)).sum() <= 28


def test_bad_patches_are_rejected() -> None:
    with pytest.raises(ValueError, match="2-D"):
        to_lenet_input(np.zeros((3, 3, 3)))
    with pytest.raises(ValueError, match="line_height"):
        to_lenet_input(np.ones((3, 3)), line_height=0)
    assert np.all(to_lenet_input(np.zeros((5, 5))) == np.float32(BACKGROUND))


def test_batch_helper() -> None:
    patches = [np.ones((10, 5)), np.ones((3, 3))]
    x = to_lenet_batch(patches, [None, 20.0], [None, 17.0])
    assert x.shape == (2, 1, 32, 32) and x.dtype == np.float32
    assert np.array_equal(x[0, 0], to_lenet_input(patches[0]))
    assert np.array_equal(x[1, 0], to_lenet_input(patches[1], 20.0, 17.0))
    with pytest.raises(ValueError, match="2 patches"):
        to_lenet_batch(patches, [None], [None])


def test_build_chars_covers_all_classes_reproducibly() -> None:
    rng = np.random.default_rng(0)
    digits = np.zeros((30, 28, 28), np.uint8)
    for i, d in enumerate(digits):  # crude fake digits: a ring of varying width
        d[4:24, 8 + i % 4 : 20] = 255
        d[8:20, 12:16] = 0
    labels = rng.integers(0, 10, 30).astype(np.uint8)
    a = build_chars(digits, labels, n_per_symbol=4, n_rubbish=12, seed=3)
    b = build_chars(digits, labels, n_per_symbol=4, n_rubbish=12, seed=3)
    assert torch.equal(a.images, b.images)
    assert a.images.shape == (30 + 24 + 12, 32, 32) and a.images.dtype == torch.uint8
    assert set(a.labels.tolist()) >= set(range(10, NUM_CLASSES))
    assert (a.labels == RUBBISH).sum() == 12
    for kind in RUBBISH_KINDS.values():
        assert kind(digits, rng).max() > 0


def test_dots_are_smaller_than_slashes() -> None:
    rng = np.random.default_rng(0)
    dots = symbol_images(".", 20, rng, paper_fraction=0.5)
    slashes = symbol_images("/", 20, rng, paper_fraction=0.0)
    assert (dots > 64).sum((1, 2)).mean() * 2 < (slashes > 64).sum((1, 2)).mean()
    assert CLASS_INDEX["."] != CLASS_INDEX["/"]


def test_distort_keeps_shape_background_and_is_seeded() -> None:
    x = torch.zeros(8, 1, 32, 32)
    x[:, :, 8:24, 14:18] = 1.0
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    a, b = distort(x, generator=g1), distort(x, generator=g2)
    assert a.shape == x.shape and torch.equal(a, b)
    assert a[:, :, :2].abs().max() < 1e-6  # the top rows stay background
    assert (a - x).abs().sum() > 0
