"""Reading many sources in batches: this process decodes (LeNet and graphs) a batch while the
helper processes take the second looks an earlier batch asked for.

A batch's reading (`reader.reading_steps`) decodes, asks for second looks at the scans it read
with little confidence, decodes those, and may ask again. Waiting for each round of looks would
leave this process idle while the helpers look, and the helpers idle while it decodes: so up
to LOOKING_AHEAD batches are read at once, each going on when its looks are taken.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from pipelines.preparation import Prepared
from pipelines.prepare_pool import LookOrder, PreparedSources
from pipelines.reader import (
    DEFAULT_REJECT_BELOW,
    ZOOM_LOOK_BELOW,
    ChequeReader,
    LookSteps,
    ReaderMixture,
    Reading,
    Source,
    reading_steps,
)

BATCH = 32  # sources decoded together
# Batches being read at once: the newest one decoding, the others waiting for looks.
LOOKING_AHEAD = 2


@dataclass
class _Part:
    """The sources of a batch read with one grammar (`ids`: their places in the batch), their
    reading, and the looks it waits for or its result."""

    ids: list[int]
    steps: LookSteps[list[tuple[Prepared, Reading]]]
    order: LookOrder | None = None
    result: list[tuple[Prepared, Reading]] | None = None


@dataclass
class _Batch:
    size: int
    parts: list[_Part]
    failed: dict[int, Reading] = field(default_factory=dict)  # by place, unprepared sources

    @property
    def finished(self) -> bool:
        return all(part.result is not None for part in self.parts)


def read_all(reader: ChequeReader | ReaderMixture, prepared: PreparedSources,
             sources: Sequence[Source], is_field: bool, grammars: Sequence[str],
             reject_below: float = DEFAULT_REJECT_BELOW, alternatives: int = 0,
             keep_images: bool = False, zoom_below: float = ZOOM_LOOK_BELOW,
             batch: int = BATCH) -> Iterator[tuple[Prepared | None, Reading]]:
    """The preparation kept and the reading of each source, in order, as
    `reader.read_prepared` gives them: `prepared` yields the first preparation of each of
    `sources` (`prepare_pool.prepare_all`) and takes the second looks; `grammars[i]` is the
    grammar `sources[i]` is read with. A source that could not be prepared gets a failed
    reading (its `error`) and no preparation."""
    if len(grammars) != len(sources):
        raise ValueError(f"{len(sources)} sources but {len(grammars)} grammars")
    reading: deque[_Batch] = deque()
    for start in range(0, len(sources), batch):
        size = min(batch, len(sources) - start)
        reading.append(_begin(reader, prepared, sources[start : start + size], is_field,
                              grammars[start : start + size], reject_below, alternatives,
                              keep_images, zoom_below))
        for older in reading:
            for part in older.parts:
                _go_on(part, prepared, wait=False)
        while reading and (len(reading) > LOOKING_AHEAD or reading[0].finished):
            yield from _finish(reading.popleft(), prepared)
    while reading:
        yield from _finish(reading.popleft(), prepared)


def _begin(reader: ChequeReader | ReaderMixture, prepared: PreparedSources,
           sources: Sequence[Source], is_field: bool, grammars: Sequence[str],
           reject_below: float, alternatives: int, keep_images: bool, zoom_below: float
           ) -> _Batch:
    """Take the next `len(sources)` preparations and decode them, up to their first looks."""
    preps: dict[int, Prepared] = {}
    by_grammar: dict[str, list[int]] = {}
    failed: dict[int, Reading] = {}
    for k in range(len(sources)):
        prep = next(prepared)
        if isinstance(prep, str):
            failed[k] = Reading(None, None, 0.0, True, None, error=prep)
        else:
            preps[k] = prep
            by_grammar.setdefault(grammars[k], []).append(k)
    parts = []
    for grammar, ids in by_grammar.items():
        part = _Part(ids, reading_steps(reader, [preps[k] for k in ids],
                                        [sources[k] for k in ids], is_field, grammar,
                                        reject_below, alternatives, keep_images, zoom_below))
        try:
            part.order = prepared.ask_looks(next(part.steps))
        except StopIteration as done:
            part.result = done.value
        parts.append(part)
    return _Batch(len(sources), parts, failed)


def _go_on(part: _Part, prepared: PreparedSources, wait: bool) -> None:
    """Hand a part's reading the views of the looks it asked for, once they are taken (or
    waiting for them), and run it to its next looks or its result; with `wait`, to its
    result."""
    while part.order is not None and (wait or prepared.looks_ready(part.order)):
        try:
            asked = part.steps.send(prepared.looks_taken(part.order))
        except StopIteration as done:
            part.order, part.result = None, done.value
        else:
            part.order = prepared.ask_looks(asked)


def _finish(batch: _Batch, prepared: PreparedSources
            ) -> Iterator[tuple[Prepared | None, Reading]]:
    for part in batch.parts:
        _go_on(part, prepared, wait=True)
    kept: dict[int, tuple[Prepared | None, Reading]] = {
        k: (None, r) for k, r in batch.failed.items()}
    for part in batch.parts:
        assert part.result is not None
        kept.update(zip(part.ids, part.result))
    for k in range(batch.size):
        yield kept[k]
