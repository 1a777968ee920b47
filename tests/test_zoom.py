"""Reading a scan again at other sizes and pen widths: the page prepared at a zoom, its fields
drawn thicker or thinner, the sum rule over views and readers (`reader.pooled_readings`), and
when the reader takes those looks."""

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from skimage.morphology import dilation

import gtn
from pipelines import preparation
from pipelines import reader as reader_module
from pipelines.images import load_gray
from pipelines.metrics import iou
from pipelines.preparation import (
    Look,
    LooksHere,
    box_in_scan,
    drawn_thicker,
    other_views,
    prepare,
)
from pipelines.reader import (
    LOOKS,
    ZOOM_LOOK_BELOW,
    Reading,
    decode_batch,
    load_reader,
    load_trainable_reader,
    pooled_readings,
    read_cheque,
    read_prepared,
)

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "00004.png"


@pytest.fixture(scope="module")
def trained():
    return load_trainable_reader()


@pytest.fixture(scope="module")
def gray():
    return load_gray(SAMPLE)


def scan_box(prep, k=0):
    f = prep.fields[k]
    return box_in_scan(f.box, f.turns, prep.image_shape, prep.to_scan, prep.scan_shape)


def test_a_page_prepared_at_a_zoom_is_read_that_much_larger(trained, gray):
    plain = prepare(gray, field_scorer=trained.field_proposer)
    for zoom in (0.8, 1.25):
        prep = prepare(gray, field_scorer=trained.field_proposer, zoom=zoom)
        assert prep.scale == pytest.approx(plain.scale * zoom)
        assert prep.image_shape == pytest.approx(
            tuple(round(v * zoom) for v in plain.image_shape), abs=1)
        # its fields come back in the scan's own pixels, where the first look found them
        assert max(iou(scan_box(prep, k), scan_box(plain)) for k in range(len(prep.fields))) > 0.7


def test_identical_views_read_as_one(trained, gray):
    prep = prepare(gray, field_scorer=trained.field_proposer)
    alone = decode_batch(trained, [prep], "us")[0]
    (view, pooled), = pooled_readings(trained, [[prep, prep, prep]], "us")
    assert view is prep
    assert (pooled.amount, pooled.text, pooled.field_box) == (
        alone.amount, alone.text, alone.field_box)
    assert pooled.confidence == pytest.approx(alone.confidence, abs=1e-9)


def test_a_view_without_a_field_gives_every_amount_nothing(trained, gray):
    prep = prepare(gray, field_scorer=trained.field_proposer)
    alone = decode_batch(trained, [prep], "us")[0]
    (_, half), (_, whole) = pooled_readings(trained, [[prep, None], [prep, prep]], "us",
                                            reject_below=0.6)
    assert half.amount == whole.amount == alone.amount
    assert half.confidence == pytest.approx(alone.confidence / 2, abs=1e-9)
    assert half.rejected and not whole.rejected


def test_a_reading_in_other_views_is_the_mean_posterior_over_views_and_readers(gray):
    """Against each reader's posterior of the amount read in each view, computed from its own
    graphs of a page prepared at that zoom with that pen."""
    mixture = load_reader()
    read = read_cheque(gray, mixture, zoom_below=1.01)  # every round of looks, for every scan
    looks = [Look(), *(look for looks in LOOKS for look in looks)]
    posteriors = []
    for look in looks:
        prep = prepare(gray, field_scorer=mixture.field_proposer, zoom=look.zoom, pen=look.pen)
        for m in mixture.members:
            with torch.no_grad():
                interp = m.interpretation_graphs([prep])
                whole = gtn.forward_score(m.amount_graphs([prep], "us"))
                paths = gtn.forward_score(m.constrained_graphs(interp, "us", [read.amount]))
            posteriors.append(float((paths - whole).exp()))
    assert len(posteriors) == 4 * len(looks) == 20  # the default's four readers
    assert read.confidence == pytest.approx(sum(posteriors) / len(posteriors), rel=1e-6)
    assert read.amount == "240.47"


def test_only_readings_under_the_threshold_are_looked_at_again(trained, gray):
    looks = []
    here = LooksHere(trained.field_proposer)

    def counted(asked):
        looks.extend(look.looks for look in asked)
        return here(asked)

    prep = prepare(gray, field_scorer=trained.field_proposer)
    first = decode_batch(trained, [prep], "us")[0]
    (_, sure), = read_prepared(trained, [prep], [gray], False, "us",
                               zoom_below=first.confidence - 1e-6, looker=counted)
    assert not looks and (sure.amount, sure.confidence) == (first.amount, first.confidence)
    read_prepared(trained, [prep], [gray], False, "us", zoom_below=1.01, looker=counted)
    assert looks == list(LOOKS)  # never that sure: every round
    read_prepared(trained, [prep], [gray], False, "us", zoom_below=0.0, looker=counted)
    assert looks == list(LOOKS)


def test_a_round_of_looks_is_for_the_readings_still_unsure(trained, gray, monkeypatch):
    """Stubbed views and pooling: an image the first round makes sure of gets no second round,
    one still unsure gets it with every view so far, one read upside down gets none."""
    prep = prepare(gray, field_scorer=trained.field_proposer)
    upside = replace(prep, fields=[replace(f, turns=2) for f in prep.fields])
    made, pooled_over = [], []

    def views(asked):
        made.extend(look.looks for look in asked)
        return [[(len(made) - len(asked) + n + 1, k) for k in range(len(look.looks))]
                for n, look in enumerate(asked)]  # tokens standing for views

    def pooled(reader, views_of, grammar, reject_below, alternatives, decoded):
        pooled_over.append(views_of)
        sure = [0.95, 0.3][: len(views_of)] if len(pooled_over) == 1 else [0.4]
        return [(vs[0], Reading("1", "1", c, False, None, field_index=0))
                for vs, c in zip(views_of, sure)]

    monkeypatch.setattr(reader_module, "pooled_readings", pooled)
    monkeypatch.setattr(reader_module, "LOOKS", ((Look(zoom=0.8),), (Look(pen=1),)))
    unsure = Reading("1", "1", 0.1, True, None, field_index=0)
    got = reader_module.read_other_views(trained, [gray] * 3, [(prep, unsure)] * 2
                                         + [(upside, unsure)], False, "us", zoom_below=0.6,
                                         looker=views)
    assert made == [(Look(zoom=0.8),)] * 2 + [(Look(pen=1),)]
    assert pooled_over == [[[prep, (1, 0)], [prep, (2, 0)]], [[prep, (2, 0), (3, 0)]]]
    assert sorted(got) == [0, 1] and got[0][1].confidence == 0.95
    assert got[1][1].confidence == 0.4


def test_a_field_drawn_thicker_is_a_grey_erosion():
    rng = np.random.default_rng(0)
    gray = np.full((40, 60), 230, np.uint8)
    cv2.putText(gray, "47", (5, 32), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 40, 2)
    gray = cv2.subtract(gray, rng.integers(0, 20, gray.shape, dtype=np.uint8))
    assert drawn_thicker(gray, 0) is gray
    for pen in (1, 2):
        square = np.ones((2 * pen + 1,) * 2, bool)
        np.testing.assert_array_equal(drawn_thicker(gray, pen), 255 - dilation(255 - gray, square))
        np.testing.assert_array_equal(drawn_thicker(gray, -pen), dilation(gray, square))
    ink = lambda g: int((g < 128).sum())  # noqa: E731
    assert ink(drawn_thicker(gray, -1)) < ink(gray) < ink(drawn_thicker(gray, 1))


def test_views_at_one_size_share_a_field_search(trained, gray, monkeypatch):
    searches = []
    real = preparation.search_fields
    looks = (Look(pen=-1), Look(zoom=1.25), Look(pen=1))
    with monkeypatch.context() as m:
        m.setattr(preparation, "search_fields",
                  lambda *a, **k: searches.append(k["zoom"]) or real(*a, **k))
        views = other_views(gray, False, trained.field_proposer, looks)
    assert searches == [1.0, 1.25]
    for look, view in zip(looks, views):
        alone = prepare(gray, field_scorer=trained.field_proposer, zoom=look.zoom, pen=look.pen)
        np.testing.assert_array_equal(view.inputs, alone.inputs)
    assert not np.array_equal(views[0].inputs, views[2].inputs)


def test_the_command_line_help_gives_the_default():
    from pipelines.read_cheque import get_args_parser

    assert f"default {ZOOM_LOOK_BELOW};" in " ".join(get_args_parser().format_help().split())


def test_views_already_decoded_are_not_decoded_again(gray, monkeypatch):
    mixture = load_reader()
    prep = prepare(gray, field_scorer=mixture.field_proposer)
    zoomed = prepare(gray, field_scorer=mixture.field_proposer, zoom=1.25)
    (_, fresh), = pooled_readings(mixture, [[prep, zoomed]], "us")
    decoded = {}
    mixture.ask_below = (1.1, 1.1, 1.1)  # all four readers read `prep`
    decode_batch(mixture, [prep], "us", decoded=decoded)
    asked = []
    for k, m in enumerate(mixture.members):
        real = m.interpretation_graphs
        monkeypatch.setattr(m, "interpretation_graphs",
                            lambda batch, k=k, real=real: asked.append((k, len(batch)))
                            or real(batch))
    (view, again), = pooled_readings(mixture, [[prep, zoomed]], "us", decoded=decoded)
    assert asked == [(0, 1), (1, 1), (2, 1), (3, 1)]  # each reads the zoomed view alone
    assert view in (prep, zoomed)
    assert (again.amount, again.text) == (fresh.amount, fresh.text)
    assert again.confidence == pytest.approx(fresh.confidence, abs=1e-9)
