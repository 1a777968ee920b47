"""Second looks taken in helper processes (`prepare_pool.PreparedSources.ask_looks` and
`looks_taken`) against the same looks taken in this process (`preparation.LooksHere`)."""

import json
import multiprocessing
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from pipelines.preparation import Look, LooksHere, SecondLook, prepare_source
from pipelines.prepare_pool import prepare_all
from pipelines.reader import load_trainable_reader

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
LABELS = [json.loads(line) for line in (SAMPLES / "labels.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def reader():
    return load_trainable_reader()


@pytest.fixture(scope="module")
def looks(reader):
    """One look of each kind at two scans (as bytes and as a file): fields in a pale pen's
    ink, upside down, at other sizes and pen widths."""
    data = (SAMPLES / LABELS[3]["file"]).read_bytes()
    path = SAMPLES / LABELS[7]["file"]
    first = prepare_source(data, False, reader.field_proposer, keep_images=False)
    return [SecondLook(data, False, faint_pen=True, first=first),
            SecondLook(path, False, upside_down=True),
            SecondLook(data, False, looks=(Look(zoom=0.8), Look(zoom=1.25))),
            SecondLook(path, False, looks=(Look(pen=-1), Look(pen=1))),
            SecondLook(b"not an image", False, looks=(Look(zoom=0.8), Look(zoom=1.25)))]


def same_views(got, expected):
    assert [len(v) for v in got] == [len(v) for v in expected]
    for views_got, views_expected in zip(got, expected):
        for a, b in zip(views_got, views_expected):
            assert (a is None) == (b is None)
            if a is not None:
                assert [f.box for f in a.fields] == [f.box for f in b.fields]
                assert np.array_equal(a.inputs, b.inputs)


def test_looks_taken_by_a_helper_are_the_looks_taken_here(reader, looks):
    """While sources are left to prepare, the helper takes every look; the views are the
    ones this process takes, and the first preparations still come in order."""
    here = LooksHere(reader.field_proposer)(looks)
    assert here[-1] == [None, None]  # an image that does not decode: a look without views
    sources = [SAMPLES / rec["file"] for rec in LABELS]
    alone = list(prepare_all(sources, False, reader.field_proposer, workers=1,
                             keep_images=False))
    with prepare_all(sources, False, reader.field_proposer, workers=2,
                     keep_images=False) as prepared:
        order = prepared.ask_looks(looks)  # the helper is still starting
        assert len(order.sent) == len(looks)
        same_views(prepared.looks_taken(order), here)
        assert prepared.looks_ready(order)
        got = list(prepared)
    assert [p.inputs.shape for p in got] == [p.inputs.shape for p in alone]


def test_when_no_source_is_left_this_process_takes_half_the_looks(reader, looks):
    here = LooksHere(reader.field_proposer)(looks)
    sources = [SAMPLES / rec["file"] for rec in LABELS[:3]]
    with prepare_all(sources, False, reader.field_proposer, workers=2,
                     keep_images=False) as prepared:
        assert len(list(zip(range(3), prepared))) == 3
        order = prepared.ask_looks(looks)
        assert len(order.sent) == len(looks) - len(looks) // 2
        same_views(prepared.looks_taken(order), here)


def test_without_helpers_this_process_takes_every_look(reader, looks):
    here = LooksHere(reader.field_proposer)(looks)
    with prepare_all([SAMPLES / LABELS[0]["file"]] * 3, False, reader.field_proposer,
                     workers=1) as prepared:
        order = prepared.ask_looks(looks)
        assert order.sent == [] and prepared.looks_ready(order)
        same_views(prepared.take_looks(looks), here)


def test_looks_are_taken_here_when_the_helper_dies(reader, looks):
    here = LooksHere(reader.field_proposer)(looks)
    sources = [SAMPLES / rec["file"] for rec in LABELS] * 2
    with prepare_all(sources, False, reader.field_proposer, workers=2,
                     keep_images=False) as prepared:
        order = prepared.ask_looks(looks)
        for child in multiprocessing.active_children():  # as by the out-of-memory killer
            os.kill(child.pid, signal.SIGKILL)
        same_views(prepared.looks_taken(order), here)
        assert prepared.broken
        assert len(list(prepared)) == len(sources)
