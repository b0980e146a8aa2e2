"""Stages of a pass running at once: a producer ahead of the consumer, a consumer behind the producer, each in its
own thread with a bounded queue between them, so memory stays flat and the pass takes about as long as its slowest
stage rather than the sum of them.

Threads, not processes: decoding and encoding (PyAV), face tracking (MediaPipe), OpenCV and torch all release the
GIL in their native work, and frames need not be copied between processes. Each item is handled in order by one
thread, so the output is the same as running the stages one after another.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

_POLL_SECONDS = 0.1  # how often a blocked thread checks whether the pass was abandoned
_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _put(q: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Put ``item``, waiting for room; False when ``stop`` was set meanwhile."""
    while not stop.is_set():
        try:
            q.put(item, timeout=_POLL_SECONDS)
            return True
        except queue.Full:
            continue
    return False


class Prefetcher(Generic[T]):
    """Iterates ``source`` in a worker thread up to ``depth`` items ahead of the consumer.

    Errors raised by ``source`` are raised again, in order, where the consumer reaches them. ``close()`` (or
    leaving the ``with`` block) stops the worker, even while it waits for room.
    """

    def __init__(self, source: Iterable[T], depth: int = 2, name: str = "prefetch") -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(source,), name=name, daemon=True)
        self._thread.start()

    def _run(self, source: Iterable[T]) -> None:
        try:
            for item in source:
                if not _put(self._queue, item, self._stop):
                    return
            _put(self._queue, _DONE, self._stop)
        except BaseException as exc:  # handed to the consumer, which decides
            _put(self._queue, _Failure(exc), self._stop)

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> Prefetcher[T]:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Consumer(Generic[T]):
    """Runs ``handle(item)`` in a worker thread for each item given to ``submit``, in order, at most ``depth``
    items behind.

    An error in ``handle`` stops the worker; it is raised again by the next ``submit`` or by ``finish``.
    """

    def __init__(self, handle: Callable[[T], None], depth: int = 2, name: str = "consume") -> None:
        self._handle = handle
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                continue
            if item is _DONE:
                return
            try:
                self._handle(item)
            except BaseException as exc:
                self._error = exc
                self._stop.set()
                return

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def submit(self, item: T) -> None:
        self._raise()
        if not _put(self._queue, item, self._stop):
            self._thread.join()
            self._raise()
            raise RuntimeError("submit() after the consumer was closed")

    def finish(self) -> None:
        """Wait until every submitted item is handled; raises the worker's error, if any."""
        if _put(self._queue, _DONE, self._stop):
            self._thread.join()
        self._raise()

    def close(self) -> None:
        """Stop without waiting for the items still queued (after an error elsewhere)."""
        self._stop.set()
        self._thread.join()
