"""hooknorm's Python client.

- ``Client(target, api_key=..., tls=...)``: ``normalize(...)`` forwards a webhook as received and
  returns the typed ``Event``; ``subscribe(filter, after=cursor)`` iterates events, resuming on
  its own across restarts and disconnects.
- ``hooknorm.errors``: one exception class per kind of refusal, with the ``ErrorInfo`` reason.
- ``to_cloudevent(event)``: the event as a CloudEvents 1.0 structured-mode dict.
- ``hooknorm.v1``: the messages and stub generated from ``proto/hooknorm/v1`` at install time.
"""

from .client import Client, event_filter
from .cloudevents import TYPE_PREFIX, to_cloudevent, to_cloudevent_json
from .errors import (
    AccessDeniedError,
    CursorOutOfRangeError,
    EventsSkippedError,
    HooknormError,
    InvalidRequestError,
    NotFoundError,
    SubscriberTooSlowError,
    UnavailableError,
    VerificationError,
)
from .subscription import Subscription
from .v1.event_pb2 import Event, ResourceRef
from .v1.normalizer_service_pb2 import EventFilter, EventsSkipped

__all__ = [
    "AccessDeniedError",
    "Client",
    "CursorOutOfRangeError",
    "Event",
    "EventFilter",
    "EventsSkipped",
    "EventsSkippedError",
    "HooknormError",
    "InvalidRequestError",
    "NotFoundError",
    "ResourceRef",
    "Subscription",
    "SubscriberTooSlowError",
    "TYPE_PREFIX",
    "UnavailableError",
    "VerificationError",
    "event_filter",
    "to_cloudevent",
    "to_cloudevent_json",
]
