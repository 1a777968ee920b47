"""The reader's image analysis shared between this process and helper processes.

`prepare_all` gives the first preparation of each source, in order, while the reader decodes
(LeNet and graphs) in this process; its `ask_looks` hands the second looks the reader asks for
meanwhile (`preparation.SecondLook`) to the helpers, and `looks_taken` gives their views, this
process preparing later sources while it waits: so both cores stay busy when many scans are
looked at again (`batch_reading.read_all` decodes other batches meanwhile).
"""

from __future__ import annotations

import functools
import multiprocessing
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as ResultLate  # not the builtin before 3.11
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, TypeAlias, TypeVar

from pipelines.fields import FieldRanker
from pipelines.preparation import (
    FieldChooser,
    LooksHere,
    Prepared,
    SecondLook,
    as_ranker,
    prepare_source,
    take_look,
)

if TYPE_CHECKING:
    from pipelines.images import Page

# Jobs queued for each helper: it finishes one, and gets the next as soon as the pool's thread
# sees the result, without waiting for this process (busy decoding) to ask. A short queue lets
# a second look this process asks for wait behind few first preparations (2, 3 and 6 read the
# 500 test cheques as fast).
HELPER_QUEUE = 3
# Most results held (handed out or prepared here, not yet taken by the caller): 0.3-0.7 MB
# each without pictures, 1-1.3 MB with them. The default reader read the 500 test cheques as
# fast holding at most 96 as 192.
PREPARED_AHEAD = 96
# Sources whose decoded pixels this process keeps for the rounds of second looks it takes
# itself (two batches of 32 being read at once), so as to decode each once.
GRAYS_KEPT = 64
# How often (s) a wait for a helper's result looks whether a helper died: one killed while it
# sends a result leaves the pool's reader blocked on the rest of the message, and the pool
# never learns it is broken (CPython's ProcessPoolExecutor, 3.11).
HELPER_CHECK_S = 0.5

Source: TypeAlias = "bytes | str | Path | Page"
Result = TypeVar("Result")
Job = TypeVar("Job")
_WORKER_RANKER: FieldRanker | None = None


def _helper_died(pool: object) -> bool:
    """Whether a process of a ProcessPoolExecutor has exited (its processes are private)."""
    return any(p.exitcode is not None for p in list(getattr(pool, "_processes", {}).values()))


def _abandon(pool: object) -> None:
    """Kill a pool's helpers and close this process's end of their result pipe, so that a
    reader blocked on a result a dead helper half sent reads end-of-file: the pool then
    learns it is broken and can shut down (else its thread would block for ever)."""
    for p in list(getattr(pool, "_processes", {}).values()):
        p.kill()
        p.join()
    writer = getattr(getattr(pool, "_result_queue", None), "_writer", None)
    if writer is not None:
        writer.close()


def _init_worker(ranker: FieldRanker | None) -> None:
    global _WORKER_RANKER
    _WORKER_RANKER = ranker


def _prepare_in_worker(job: tuple[Source, bool, bool]) -> Prepared | str:
    return prepare_source(job[0], job[1], _WORKER_RANKER, job[2])


def _look_in_worker(look: SecondLook) -> list[Prepared | None]:
    return take_look(look, _WORKER_RANKER)


@dataclass(frozen=True)
class LookOrder:
    """Second looks asked for (`PreparedSources.ask_looks`): the helpers take `looks[k]` for
    each of the futures `sent[k]`, this process the rest."""

    looks: Sequence[SecondLook]
    sent: list[Future]


class PreparedSources(Iterator[Prepared | str]):
    """`prepare_source` of each source in order (see `prepare_all`), and second looks taken
    meanwhile (`ask_looks`, `looks_taken`). A context manager: leaving it (or reading past
    the last source) stops the helpers."""

    def __init__(self, sources: Sequence[Source], is_field: bool,
                 field_scorer: FieldChooser | None, workers: int = 1,
                 keep_images: bool = True) -> None:
        self.ranker = as_ranker(field_scorer)
        self.looks_here = LooksHere(self.ranker, GRAYS_KEPT)
        self.jobs = [(s, is_field, keep_images) for s in sources]
        self.workers = workers
        self.next_index = 0
        # Sources are handed out lazily, never taken back: cancelling a queued future races
        # with the pool failing it when a helper dies (an error in the pool's thread on 3.11).
        self.unsent = deque(range(len(self.jobs)))
        self.sent: dict[int, Future] = {}
        self.here: dict[int, Prepared | str] = {}
        self.pending = 0  # jobs handed to helpers and not finished
        self.broken = False
        # The pool's thread hands out work too (`_finished`); re-entrant, as a callback added
        # to a future already done runs at once, in the thread that adds it.
        self.lock = threading.RLock()
        self.pool: ProcessPoolExecutor | None = None
        if workers > 1 and len(self.jobs) >= 2:
            self.pool = ProcessPoolExecutor(
                workers - 1, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker, initargs=(self.ranker,))
            self._hand_out()

    def __iter__(self) -> PreparedSources:
        return self

    def __next__(self) -> Prepared | str:
        i = self.next_index
        if i >= len(self.jobs):
            self.close()
            raise StopIteration
        try:
            while i not in self.here:
                self._work_towards(i)
        except BaseException:  # Ctrl-C or a bug: do not wait for the helpers' queue
            self.close()
            raise
        self.next_index += 1
        return self.here.pop(i)

    def _work_towards(self, i: int) -> None:
        """One step towards source `i`'s result: whenever it is not ready (while the helpers
        start, say), this process prepares the earliest source not yet handed out itself, so
        that `workers` processes keep as many cores busy."""
        self._hand_out()
        with self.lock:
            fut = self.sent.get(i)
            if fut is not None and (fut.done() or self.broken or not self.unsent):
                del self.sent[i]
            else:
                fut = None
        if fut is not None:
            self.here[i] = self._collect(fut, functools.partial(self._prepare, i))
        else:  # i itself when it was not handed out
            self._prepare_here(most=len(self.jobs))

    def _submit(self, job: Callable[[Job], Result], arg: Job) -> Future | None:
        """Hand a job to the helpers (with the lock held); None when they cannot take it."""
        if self.pool is None or self.broken:
            return None
        try:
            fut = self.pool.submit(job, arg)
        except (BrokenProcessPool, RuntimeError):  # a helper died, or the pool shut down
            self.broken = True
            return None
        self.pending += 1
        fut.add_done_callback(self._finished)
        return fut

    def _hand_out(self) -> None:
        """Keep HELPER_QUEUE jobs queued for each helper, while at most PREPARED_AHEAD
        results are held."""
        with self.lock:
            while self.unsent and self.pending < (self.workers - 1) * HELPER_QUEUE and len(
                    self.sent) + len(self.here) < PREPARED_AHEAD:
                j = self.unsent.popleft()
                fut = self._submit(_prepare_in_worker, self.jobs[j])
                if fut is None:
                    self.unsent.appendleft(j)
                    return
                self.sent[j] = fut

    def _finished(self, fut: Future) -> None:
        """A helper's job ended (in the pool's thread): the helper gets another."""
        with self.lock:
            self.pending -= 1
        if not fut.cancelled() and fut.exception() is None:  # not when the pool broke
            self._hand_out()

    def _prepare(self, j: int) -> Prepared | str:
        return prepare_source(*self.jobs[j][:2], self.ranker, self.jobs[j][2])

    def _prepare_here(self, most: int = PREPARED_AHEAD) -> bool:
        """Prepare the earliest source not handed out here, unless none is left or `most`
        results are held; whether one was."""
        with self.lock:
            if not self.unsent or len(self.sent) + len(self.here) >= most:
                return False
            j = self.unsent.popleft()
        self.here[j] = self._prepare(j)
        return True

    def _collect(self, fut: Future, here: Callable[[], Result]) -> Result:
        """A helper's result, waiting for it; `here()` when a helper died (out of memory, say):
        this process then does the rest of the work itself."""
        try:
            while not (self.broken or fut.done()):
                try:
                    fut.result(timeout=HELPER_CHECK_S)
                except ResultLate:
                    self.broken = _helper_died(self.pool)
            result = fut.result(timeout=0)
        except (BrokenProcessPool, ResultLate, CancelledError):
            self.broken = True
            return here()
        return result  # type: ignore[no-any-return]

    def take_looks(self, looks: Sequence[SecondLook]) -> list[list[Prepared | None]]:
        """`preparation.take_look` of each look (`looks_taken(ask_looks(looks))`)."""
        return self.looks_taken(self.ask_looks(looks))

    def ask_looks(self, looks: Sequence[SecondLook]) -> LookOrder:
        """Hand second looks to the helpers, who take them after the few jobs queued for them;
        when no source is left to prepare, this process keeps the later half to take itself.
        Without helpers, it keeps all. `looks_taken` gives their views."""
        with self.lock:
            keep = len(looks) // 2 if not self.unsent else 0
            sent = []
            for look in looks[: len(looks) - keep]:
                fut = self._submit(_look_in_worker, look)
                if fut is None:
                    break
                sent.append(fut)
        return LookOrder(looks, sent)

    def looks_ready(self, order: LookOrder) -> bool:
        """Whether `looks_taken(order)` would not wait for the helpers."""
        return self.broken or all(fut.done() for fut in order.sent)

    def looks_taken(self, order: LookOrder) -> list[list[Prepared | None]]:
        """The views of each look of an order (`preparation.take_look`): this process takes
        those it kept, then prepares later sources while the helpers take theirs."""
        looks, sent = order.looks, order.sent
        out: list[list[Prepared | None]] = [
            [] if k < len(sent) else self.looks_here.take(look) for k, look in enumerate(looks)]
        for k, fut in enumerate(sent):
            while not (fut.done() or self.broken) and self._prepare_here():
                pass
            out[k] = self._collect(fut, functools.partial(self.looks_here.take, looks[k]))
        return out

    def close(self) -> None:
        """Stop the helpers (sources they were handed and did not give back are prepared
        here if asked for later)."""
        with self.lock:  # the pool's thread hands out nothing more
            pool, self.pool = self.pool, None
        if pool is None:
            return
        if self.broken and _helper_died(pool):
            _abandon(pool)
        pool.shutdown(wait=True, cancel_futures=True)
        with self.lock:
            self.unsent = deque(sorted([*self.unsent, *self.sent]))
            self.sent.clear()

    def __enter__(self) -> PreparedSources:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()


def prepare_all(sources: Sequence[Source], is_field: bool, field_scorer: FieldChooser | None,
                workers: int = 1, keep_images: bool = True) -> PreparedSources:
    """`prepare_source` of each source, in order, the image analysis running in `workers`
    processes: this one and `workers - 1` helpers.

    Helpers are handed a few sources at a time, in order. Whenever the next result is not
    ready (while the helpers start, say), this process prepares the earliest source not yet
    handed out itself: so `workers` processes keep as many cores busy, without a process more
    than cores. If a helper dies (out of memory, say), this process prepares the rest. Use it
    in a `with` block (or read every source): the helpers stop when it ends."""
    return PreparedSources(sources, is_field, field_scorer, workers, keep_images)
