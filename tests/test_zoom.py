"""Reading a scan again at other sizes: the page prepared at a zoom, the sum rule over views
and readers (`reader.pooled_readings`), and when the reader takes that second look."""

from pathlib import Path

import pytest
import torch

import gtn
from pipelines import reader as reader_module
from pipelines.images import load_gray
from pipelines.metrics import iou
from pipelines.preparation import box_in_scan, prepare
from pipelines.reader import (
    ZOOM_LOOK_BELOW,
    ZOOMS,
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


def test_a_zoomed_reading_is_the_mean_posterior_over_views_and_readers(gray):
    """Against each reader's posterior of the amount read in each view, computed from its own
    graphs of a page prepared at that zoom."""
    mixture = load_reader()
    read = read_cheque(gray, mixture, zoom_below=1.01)  # every scan gets the zoomed look
    posteriors = []
    for zoom in (1.0, *ZOOMS):
        prep = prepare(gray, field_scorer=mixture.field_proposer, zoom=zoom)
        for m in mixture.members:
            with torch.no_grad():
                interp = m.interpretation_graphs([prep])
                whole = gtn.forward_score(m.amount_graphs([prep], "us"))
                paths = gtn.forward_score(m.constrained_graphs(interp, "us", [read.amount]))
            posteriors.append(float((paths - whole).exp()))
    assert len(posteriors) == 2 * (1 + len(ZOOMS))
    assert read.confidence == pytest.approx(sum(posteriors) / len(posteriors), rel=1e-6)
    assert read.amount == "240.47"


def test_only_readings_under_the_threshold_are_zoomed(trained, gray, monkeypatch):
    looks = []
    real = reader_module.zoomed_views

    def counted(*args, **kwargs):
        looks.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(reader_module, "zoomed_views", counted)
    prep = prepare(gray, field_scorer=trained.field_proposer)
    first = decode_batch(trained, [prep], "us")[0]
    (_, sure), = read_prepared(trained, [prep], [gray], False, "us",
                               zoom_below=first.confidence - 1e-6)
    assert not looks and (sure.amount, sure.confidence) == (first.amount, first.confidence)
    read_prepared(trained, [prep], [gray], False, "us", zoom_below=first.confidence + 1e-6)
    assert len(looks) == 1
    read_prepared(trained, [prep], [gray], False, "us", zoom_below=0.0)
    assert len(looks) == 1


def test_the_command_line_help_gives_the_default():
    from pipelines.read_cheque import get_args_parser

    assert f"default {ZOOM_LOOK_BELOW};" in " ".join(get_args_parser().format_help().split())


def test_views_already_decoded_are_not_decoded_again(gray, monkeypatch):
    mixture = load_reader()
    prep = prepare(gray, field_scorer=mixture.field_proposer)
    zoomed = prepare(gray, field_scorer=mixture.field_proposer, zoom=1.25)
    (_, fresh), = pooled_readings(mixture, [[prep, zoomed]], "us")
    decoded = {}
    monkeypatch.setattr(reader_module, "ASK_OTHERS_BELOW", 1.1)  # both readers read `prep`
    decode_batch(mixture, [prep], "us", decoded=decoded)
    asked = []
    for k, m in enumerate(mixture.members):
        real = m.interpretation_graphs
        monkeypatch.setattr(m, "interpretation_graphs",
                            lambda batch, k=k, real=real: asked.append((k, len(batch)))
                            or real(batch))
    (view, again), = pooled_readings(mixture, [[prep, zoomed]], "us", decoded=decoded)
    assert asked == [(0, 1), (1, 1)]  # each reader reads the zoomed view alone
    assert view in (prep, zoomed)
    assert (again.amount, again.text) == (fresh.amount, fresh.text)
    assert again.confidence == pytest.approx(fresh.confidence, abs=1e-9)
