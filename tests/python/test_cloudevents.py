"""`hooknorm tail --format cloudevents` and the Python client's `to_cloudevent`, read back by
the official CloudEvents SDK: attributes as documented (README, "CloudEvents"), `data` equal to
the payload as sent (large integers included), extensions present."""

import json
import os
import subprocess

import hooknorm
import pytest
from cloudevents.core.formats.json import JSONFormat
from hooknorm_server import API_KEY, binary, gigs_request, sample_request

# A Gigs event whose payload has integers a double cannot hold.
BIG_GIGS = (
    b'{"object":"event","id":"evt_ce_big","type":"com.gigs.usageThreshold.exceeded",'
    b'"time":"2026-02-03T04:05:06.789Z","specversion":"1.0","source":"https://api.gigs.com",'
    b'"project":"test","version":"2025-05-22","datacontenttype":"application/json",'
    b'"data":{"object":"usageThresholdExceeded","subscription":"sub_big","usedBytes":12345678901234567891,'
    b'"limit":9007199254740993,"ratio":1.10}}'
)


@pytest.fixture(scope="module")
def events(client):
    """One stored event per provider, plus the large-integer Gigs event, and the payloads sent."""
    requests = [sample_request("gigs"), gigs_request(BIG_GIGS, msg_id="msg_ce_big")]
    requests[0]["headers"]["traceparent"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    requests += [sample_request("abowire"), sample_request("mobile_manager")]
    stored = []
    for request in requests:
        body = json.loads(request["body"])
        payload = {"gigs": body.get("data"), "abowire": body.get("payload")}.get(request["source"], body)
        stored.append((client.normalize(**request), payload))
    return stored


def tail_cloudevents(server, after, count):
    """`count` lines of `hooknorm tail --format cloudevents --after <after>`."""
    process = subprocess.Popen(
        [binary(), "tail", "--format", "cloudevents", "--after", str(after), "--server", f"http://{server.addr}"],
        env={**os.environ, "HOOKNORM_API_KEY": API_KEY},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        return [process.stdout.readline() for _ in range(count)]
    finally:
        process.kill()
        process.wait()


def check(cloudevent, event, payload):
    """Asserts the documented mapping of `event` on a CloudEvent the SDK parsed."""
    assert cloudevent.get_specversion() == "1.0"
    assert cloudevent.get_id() == event.id
    assert cloudevent.get_source() == f"/hooknorm/{event.source}"
    assert cloudevent.get_type() == "io.hooknorm." + event.type
    assert cloudevent.get_subject() == f"{event.subject.kind}/{event.subject.id}"
    assert cloudevent.get_time() == event.occurred_at.ToDatetime().replace(tzinfo=cloudevent.get_time().tzinfo)
    assert cloudevent.get_datacontenttype() == "application/json"
    assert cloudevent.get_data() == payload
    assert cloudevent.get_extension("sequence") == f"{event.sequence:020d}"
    provider = {1: "gigs", 2: "abowire", 3: "mobile_manager"}[event.provider]
    assert cloudevent.get_extension("provider") == provider
    assert cloudevent.get_extension("providereventtype") == event.provider_event_type
    assert cloudevent.get_extension("traceparent") == (event.traceparent or None)


def test_tail_prints_cloudevents_the_sdk_reads(server, events):
    lines = tail_cloudevents(server, events[0][0].sequence - 1, len(events))
    by_id = {}
    for line in lines:
        assert line.endswith("\n") and "\n" not in line[:-1], "one event per line"
        cloudevent = JSONFormat().read(None, line)
        by_id[cloudevent.get_id()] = cloudevent
    assert set(by_id) == {event.id for event, _ in events}
    for event, payload in events:
        check(by_id[event.id], event, payload)
    big = by_id["gigs:evt_ce_big"].get_data()
    assert big["usedBytes"] == 12345678901234567891 and big["limit"] == 9007199254740993
    assert '"ratio":1.10' in next(line for line in lines if "evt_ce_big" in line), "data as sent"
    assert by_id[events[0][0].id].get_extension("traceparent").startswith("00-4bf92f35")


def test_the_python_client_maps_the_same_way(server, events):
    lines = tail_cloudevents(server, events[0][0].sequence - 1, len(events))
    from_tail = {json.loads(line)["id"]: line.rstrip("\n") for line in lines}
    for event, payload in events:
        as_dict = hooknorm.to_cloudevent(event)
        assert as_dict == json.loads(from_tail[event.id])
        check(JSONFormat().read(None, json.dumps(as_dict)), event, payload)
        as_json = hooknorm.to_cloudevent_json(event)
        assert "\n" not in as_json
        # The same payload text as the CLI's, number for number.
        assert as_json.partition('"data":')[2] == from_tail[event.id].partition('"data":')[2]
        check(JSONFormat().read(None, as_json), event, payload)
