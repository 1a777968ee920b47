"""`batch_reading.read_all`: several batches read at once, each going on when its looks are
taken, give what `reader.read_prepared` gives each batch on its own, in order."""

import json
from pathlib import Path

import pytest

from pipelines.batch_reading import read_all
from pipelines.preparation import prepare_source
from pipelines.prepare_pool import prepare_all
from pipelines.reader import load_reader, read_prepared

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
LABELS = [json.loads(line) for line in (SAMPLES / "labels.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def mixture():
    return load_reader()


@pytest.mark.parametrize("workers", [1, 2])
def test_read_all_reads_as_each_batch_read_alone(mixture, workers):
    """Every reading looked at again (zoom_below above 1), both grammars in a batch, a source
    that does not decode; batches of 4, so that several are read at once."""
    sources = [(SAMPLES / rec["file"]).read_bytes() for rec in LABELS[:9]]
    sources.insert(5, b"not an image")
    grammars = [rec["grammar"] for rec in LABELS[:9]]
    grammars.insert(5, "us")
    with prepare_all(sources, False, mixture.field_proposer, workers,
                     keep_images=False) as prepared:
        got = list(read_all(mixture, prepared, sources, False, grammars, zoom_below=1.01,
                            batch=4))
    expected = []
    for at in range(0, len(sources), 4):
        preps = {i: prepare_source(sources[i], False, mixture.field_proposer, False)
                 for i in range(at, min(at + 4, len(sources)))}
        by_grammar: dict[str, list[int]] = {}
        for i, prep in preps.items():
            if not isinstance(prep, str):
                by_grammar.setdefault(grammars[i], []).append(i)
        alone = {i: (None, prep) for i, prep in preps.items() if isinstance(prep, str)}
        for grammar, ids in by_grammar.items():
            alone.update(zip(ids, read_prepared(mixture, [preps[i] for i in ids],
                                                [sources[i] for i in ids], False, grammar,
                                                zoom_below=1.01)))
        expected += [alone[i] for i in sorted(alone)]
    assert len(got) == len(expected) == len(sources)
    assert got[5][0] is None and got[5][1].error == expected[5][1]
    for (prep, reading), (prep_alone, reading_alone) in zip(got, expected):
        if prep is None:
            continue
        assert (reading.amount, reading.confidence) == (reading_alone.amount,
                                                        reading_alone.confidence)
        assert [f.box for f in prep.fields] == [f.box for f in prep_alone.fields]
    assert sum(r.amount == rec["amount"] for (_, r), rec in zip(
        got[:5] + got[6:], LABELS[:9])) >= 7


def test_read_all_wants_a_grammar_for_each_source(mixture):
    with prepare_all([], False, mixture.field_proposer) as prepared, pytest.raises(
            ValueError, match="2 sources but 1 grammars"):
        list(read_all(mixture, prepared, [b"a", b"b"], False, ["us"]))
