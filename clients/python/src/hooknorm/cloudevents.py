"""The ``Event`` as a CloudEvents 1.0 event, mapped as ``hooknorm tail --format cloudevents``
maps it (README, "CloudEvents"; ``src/cloudevents.rs``).

``to_cloudevent`` gives the structured-mode event as a dict (hand it to any CloudEvents SDK, or
``json.dumps`` it); ``to_cloudevent_json`` gives one line of JSON whose ``data`` is the
provider's text (every number as written), less the whitespace between tokens.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Optional

from google.protobuf import json_format

from .v1 import event_pb2

#: The reverse-DNS prefix of every CloudEvents ``type`` hooknorm emits.
TYPE_PREFIX = "io.hooknorm."

_PROVIDERS = {
    event_pb2.PROVIDER_GIGS: "gigs",
    event_pb2.PROVIDER_ABOWIRE: "abowire",
    event_pb2.PROVIDER_MOBILE_MANAGER: "mobile_manager",
}

_NO_DATA = object()


def _attributes(event: event_pb2.Event, has_data: bool) -> Dict[str, Any]:
    attributes: Dict[str, Any] = {
        "specversion": "1.0",
        "id": event.id,
        "source": f"/hooknorm/{event.source}",
        "type": f"{TYPE_PREFIX}{event.type}",
    }
    if event.HasField("subject"):
        subject = event.subject
        attributes["subject"] = f"{subject.kind}/{subject.id}" if subject.id else subject.kind
    if event.HasField("occurred_at"):
        attributes["time"] = event.occurred_at.ToJsonString()
    if has_data:
        attributes["datacontenttype"] = "application/json"
    # The Sequence extension compares values as strings: zero-padded, "9" sorts before "10".
    attributes["sequence"] = f"{event.sequence:020d}"
    provider = _PROVIDERS.get(event.provider)
    if provider is not None:
        attributes["provider"] = provider
    if event.provider_event_type:
        attributes["providereventtype"] = event.provider_event_type
    if event.traceparent:
        attributes["traceparent"] = event.traceparent
    return attributes


def _whole(value: Any) -> Any:
    """``Struct`` numbers are doubles; a whole one is written as the integer it most likely was."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _whole(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole(v) for v in value]
    return value


def _rebuilt_data(event: event_pb2.Event) -> Any:
    # Events stored before data_json existed have only the Struct (large integers rounded).
    if event.HasField("data"):
        return _whole(json_format.MessageToDict(event.data))
    return _NO_DATA


def to_cloudevent(event: event_pb2.Event) -> Dict[str, Any]:
    """The structured-mode CloudEvent for ``event``, as a dict; ``data`` is the payload parsed
    from ``data_json`` (Python keeps every integer exact)."""
    data: Any = json.loads(event.data_json) if event.data_json else _rebuilt_data(event)
    attributes = _attributes(event, data is not _NO_DATA)
    if data is not _NO_DATA:
        attributes["data"] = data
    return attributes


def _compact(text: str) -> str:
    """``text`` (JSON) without the whitespace between its tokens; strings and numbers keep their
    text. Providers may pretty-print, and a structured-mode event must fit on one line."""
    out = []
    in_string = escaped = False
    for c in text:
        if in_string:
            in_string = escaped or c != '"'
            escaped = not escaped and c == "\\"
        elif c in " \t\n\r":
            continue
        else:
            in_string = c == '"'
        out.append(c)
    return "".join(out)


def to_cloudevent_json(event: event_pb2.Event) -> str:
    """The structured-mode CloudEvent for ``event`` as one line of JSON, ``data`` spliced in as
    the provider's text (``hooknorm tail --format cloudevents`` prints the same)."""
    if not event.data_json:
        return json.dumps(to_cloudevent(event), separators=(",", ":"))
    data = _compact(event.data_json)
    json.loads(data)  # refuses to splice text that is not JSON
    head = json.dumps(_attributes(event, True), separators=(",", ":"))
    return f'{head[:-1]},"data":{data}}}'

