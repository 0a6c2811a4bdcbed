"""Run the codec's stages concurrently: video decoding, the model and entropy coding each take
turns on different resources (CPU decoder threads, the GPU, one CPU core), so a stage that
works a chunk or two ahead of the next keeps them all busy.

`ahead(iterable)` iterates in a worker thread, at most `depth` items ahead of its consumer.
Exceptions reach the consumer unchanged (and in order: items produced before the failure are
delivered first); closing the consumer early stops the worker and closes its iterable in the
worker's own thread. `depth=0` iterates inline (no thread), for debugging and measurement.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

# Chunks a stage may run ahead of the next; each costs one chunk of memory (frames or bits).
DEPTH = 2

_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


def ahead(iterable: Iterable[T], depth: int | None = None, name: str = "vtoken-stage") -> Iterator[T]:
    """Items of `iterable`, produced in a worker thread up to `depth` (default DEPTH) items ahead."""
    depth = DEPTH if depth is None else depth
    if depth <= 0:
        yield from iterable
        return
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    begin = threading.Event()

    def put(item) -> bool:
        # Wait for room, but give up once the consumer has gone.
        while not stop.is_set():
            try:
                items.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        # Touch nothing until the consumer knows this thread exists: an interrupt inside
        # start() would otherwise leave a worker no one stops or joins, still inside
        # `iterable` when the caller closes it. A consumer gone before this began (stop is
        # set before begin) leaves `iterable` untouched, to the caller.
        begin.wait()
        if stop.is_set():
            return
        it = iter(iterable)
        try:
            for item in it:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(_Failure(exc))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()  # a generator's cleanup (e.g. closing its video file) runs here

    worker = threading.Thread(target=work, name=name, daemon=True)
    started = False
    try:
        worker.start()
        started = True  # only once start() has returned: the thread exists to be joined
        begin.set()
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        begin.set()  # after stop: a worker not yet begun leaves without touching anything
        if started:
            _join(worker)


def _join(worker: threading.Thread) -> None:
    """Join `worker` even through an interrupt (the handler raises wherever the main thread
    is, join included): the worker may be inside the upstream iterator, which the caller
    closes or frees next. With `stop` set the wait is at most one item; the interrupt is
    raised once the worker has gone."""
    pending: BaseException | None = None
    while True:
        try:
            worker.join()
            break
        except KeyboardInterrupt as exc:
            pending = exc
    if pending is not None:
        raise pending
