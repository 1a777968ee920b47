"""Character normalisation (`charimage`), synthetic data (`chardata`) and distortions."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from pipelines.chardata import RUBBISH_KINDS, build_chars, symbol_images
from pipelines.charimage import (
    BACKGROUND,
    FOREGROUND,
    to_context_batch,
    to_context_ink,
    to_lenet_batch,
    to_lenet_ink,
    to_lenet_input,
)
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


def _field_with_two_strokes() -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """A 40 x 80 field: a candidate stroke at rows 10-29, columns 20-23, and a neighbour
    stroke 8 columns to its right. Returns the field, the candidate's patch and its corner."""
    field = np.zeros((40, 80), np.float32)
    field[10:30, 20:24] = 1.0
    field[14:30, 32:36] = 0.7
    at = (6, 16)
    patch = np.zeros((28, 12), np.float32)  # the candidate only, with a margin
    patch[4:24, 4:8] = 1.0
    return field, patch, at


def test_the_context_overlays_the_candidate_and_shows_its_neighbour() -> None:
    field, patch, at = _field_with_two_strokes()
    # A 20-px line maps at scale 1: pixels move whole, so the picture can be checked exactly.
    alone = to_lenet_ink(patch, 20.0, -4.0)
    around = to_context_ink(patch, 20.0, -4.0, field, at)
    rows, cols = np.nonzero(alone)
    assert np.array_equal(around[rows, cols], alone[rows, cols])  # the candidate itself
    extra = (around > 0) & (alone == 0)
    assert extra.any()
    ey, ex = np.nonzero(extra)
    # the neighbour: 8 columns to the right of the candidate's, 4 rows lower at the top
    assert ex.min() == cols.min() + 12 and ex.max() == cols.max() + 12
    assert ey.min() == rows.min() + 4 and ey.max() == rows.max()
    assert np.allclose(around[extra], 0.7)
    # with nothing around it, a candidate is its own surroundings
    assert np.array_equal(to_context_ink(patch, 20.0, -4.0, np.pad(patch, 5), (5, 5)), alone)


def test_the_context_scales_with_the_line_like_the_candidate() -> None:
    field, patch, at = _field_with_two_strokes()
    big = cv2.resize(field, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    big_patch = cv2.resize(patch, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    small = to_context_ink(patch, 20.0, -4.0, field, at)
    large = to_context_ink(big_patch, 40.0, -8.0, big, (2 * at[0], 2 * at[1]))
    assert np.abs(small - large).max() < 0.05


def test_context_batch_helper() -> None:
    field, patch, at = _field_with_two_strokes()
    x = to_context_batch([patch, patch], [20.0, 20.0], [-4.0, -4.0], [field, field], [at, at])
    assert x.shape == (2, 1, 32, 32) and x.dtype == np.float32
    expected = BACKGROUND + (FOREGROUND - BACKGROUND) * to_context_ink(patch, 20.0, -4.0, field,
                                                                        at)
    assert np.array_equal(x[0, 0], expected) and np.array_equal(x[1, 0], expected)
    assert np.all(to_context_ink(np.zeros((5, 5)), 20.0, 0.0, field, at) == 0)
    with pytest.raises(ValueError, match="2 patches"):
        to_context_batch([patch, patch], [20.0], [-4.0], [field], [at])


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
