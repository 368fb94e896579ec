"""A resumable event subscription over ``StreamEvents``.

The stream can end at any time: the server restarts (``SHUTTING_DOWN``), the connection drops
(``UNAVAILABLE``), or this reader falls behind (``SUBSCRIBER_TOO_SLOW``). Each time, the
subscription opens a new stream with ``after_sequence`` = the last sequence it yielded, so the
caller sees every matching event once, in order, across any number of ends.

Not the end's ``resume_after_sequence``: it is the last event the server sent, and a client
library may report a failed status before messages it still buffers (grpc-js does), so it can be
ahead of the last event this side saw. Resuming from our own costs the server a re-scan of events
the filter leaves out, never an event.
"""

from __future__ import annotations

import datetime as _dt
import random
import threading
import time
from typing import Callable, Iterator, Optional, Tuple

import grpc

from . import errors
from .v1 import event_pb2, normalizer_service_pb2

OnSkipped = Callable[[normalizer_service_pb2.EventsSkipped], None]


class Subscription:
    """An iterator of ``Event``s; see ``Client.subscribe``.

    ``cursor`` is the sequence after which the stream would resume: the last event yielded (or
    the last one retention removed, after ``on_skipped``). ``None`` until known. ``close()`` (from any thread) ends
    the iteration.
    """

    def __init__(
        self,
        *,
        stub,
        metadata: Tuple[Tuple[str, str], ...],
        event_filter: normalizer_service_pb2.EventFilter,
        after: Optional[int],
        earliest: bool,
        since: Optional[_dt.datetime],
        on_skipped: Optional[OnSkipped],
        backoff: Tuple[float, float],
    ) -> None:
        self._stub = stub
        self._metadata = metadata
        self._filter = event_filter
        self.cursor: Optional[int] = after
        self._earliest = earliest
        self._since = since
        self._on_skipped = on_skipped
        self._min_backoff, self._max_backoff = backoff
        self._closed = threading.Event()
        self._call = None
        self._iterator: Optional[Iterator[event_pb2.Event]] = None
        self._pinned = False
        # "From now on" means from this call, not from the first iteration; if the server is
        # unreachable now, the first connection pins it.
        try:
            self._resolve_latest()
        except grpc.RpcError:
            pass
        #: How many times the subscription has reconnected, for logs and tests.
        self.reconnects = 0

    def __iter__(self) -> Iterator[event_pb2.Event]:
        if self._iterator is None:
            self._iterator = self._events()
        return self._iterator

    def __next__(self) -> event_pb2.Event:
        return next(iter(self))

    def close(self) -> None:
        self._closed.set()
        call = self._call
        if call is not None:
            call.cancel()

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self) -> normalizer_service_pb2.StreamEventsRequest:
        request = normalizer_service_pb2.StreamEventsRequest(filter=self._filter)
        if self.cursor is not None:
            request.after_sequence = self.cursor
        elif self._since is not None:
            request.since.FromDatetime(self._since)
        elif self._earliest:
            request.position = normalizer_service_pb2.START_POSITION_EARLIEST
        else:
            request.position = normalizer_service_pb2.START_POSITION_LATEST
        return request

    def _resolve_latest(self) -> None:
        """Pins "from now on" to the newest stored sequence, so a stream that ends before its
        first event resumes from there instead of from a later "latest", losing what came in
        between."""
        if self._pinned or self.cursor is not None or self._since is not None or self._earliest:
            return
        try:
            page = self._stub.ListEvents(
                normalizer_service_pb2.ListEventsRequest(page_size=1),
                metadata=self._metadata,
                timeout=30,
            )
        except grpc.RpcError as rpc_error:
            if errors.from_rpc_error(rpc_error).retryable:
                raise
            # Not allowed to list (an API key scoped to streams): LATEST, unpinned.
            self._pinned = True
            return
        # An empty log (or one retention emptied) has no sequence to pin: LATEST it is.
        if page.events:
            self.cursor = page.events[0].sequence

    def _events(self) -> Iterator[event_pb2.Event]:
        attempt = 0
        while not self._closed.is_set():
            try:
                self._resolve_latest()
                self._call = self._stub.StreamEvents(self._request(), metadata=self._metadata)
                if self._closed.is_set():
                    self._call.cancel()
                for response in self._call:
                    attempt = 0
                    kind = response.WhichOneof("message")
                    if kind == "event":
                        event = response.event
                        if self.cursor is not None and event.sequence <= self.cursor:
                            continue
                        self.cursor = event.sequence
                        yield event
                    elif kind == "events_skipped":
                        self._skipped(response.events_skipped)
                    # Heartbeats only prove the connection is alive.
                # A stream the server ended without an error: resume like any other end.
            except grpc.RpcError as rpc_error:
                if self._closed.is_set():
                    return
                error = errors.from_rpc_error(rpc_error)
                if not error.retryable:
                    raise error from None
            finally:
                # Also when the caller stops iterating: the server stops sending.
                if self._call is not None:
                    self._call.cancel()
                self._call = None
            if self._closed.wait(self._delay(attempt)):
                return
            attempt += 1
            self.reconnects += 1

    def _skipped(self, skipped: normalizer_service_pb2.EventsSkipped) -> None:
        if self._on_skipped is None:
            raise errors.EventsSkippedError(skipped.after_sequence, skipped.last_skipped_sequence)
        self._on_skipped(skipped)
        self.cursor = max(self.cursor or 0, skipped.last_skipped_sequence)

    def _delay(self, attempt: int) -> float:
        """Exponential backoff with jitter, so subscribers cut off together (a restart) do not
        all reconnect in the same instant."""
        ceiling = min(self._max_backoff, self._min_backoff * (2 ** min(attempt, 30)))
        return random.uniform(ceiling / 2, ceiling)
