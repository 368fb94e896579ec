"""The Python client against a real `hooknorm serve`: normalize, typed errors, filtered and
resumable subscriptions."""

import json
import signal
import threading
import time

import grpc
import hooknorm
import pytest
from hooknorm.v1 import event_pb2
from hooknorm_server import API_KEY, GIGS_SECRET, READ_KEY, gigs_event, gigs_request, sample_request


def head(client):
    """The newest stored sequence (0 for an empty log)."""
    page = client.stub.ListEvents(
        hooknorm.v1.normalizer_service_pb2.ListEventsRequest(page_size=1),
        metadata=client.metadata,
    )
    return page.events[0].sequence if page.events else 0


def take_until(subscription, last_sequence, timeout=30.0, on_event=None):
    """Iterates `subscription` until the event with `last_sequence`; closes it on a timeout."""
    watchdog = threading.Timer(timeout, subscription.close)
    watchdog.start()
    seen = []
    try:
        for event in subscription:
            seen.append(event)
            if on_event is not None:
                on_event(event)
            if event.sequence >= last_sequence:
                break
    finally:
        watchdog.cancel()
        subscription.close()
    return seen


@pytest.mark.parametrize(
    "provider, expected_type, subject_kind, enum",
    [
        ("gigs", "subscription.activated", "subscription", event_pb2.PROVIDER_GIGS),
        ("abowire", "api_key.revoked", "api_key", event_pb2.PROVIDER_ABOWIRE),
        ("mobile_manager", "alert.triggered", "sim", event_pb2.PROVIDER_MOBILE_MANAGER),
    ],
)
def test_normalizes_each_providers_sample(client, provider, expected_type, subject_kind, enum):
    request = sample_request(provider)
    event = client.normalize(**request)
    assert isinstance(event, hooknorm.Event)
    assert event.provider == enum
    assert event.type == expected_type
    assert event.subject.kind == subject_kind
    assert event.sequence > 0
    payload = json.loads(request["body"])
    expected_data = {"gigs": payload.get("data"), "abowire": payload.get("payload")}.get(provider, payload)
    assert json.loads(event.data_json) == expected_data
    # A redelivery is answered with the event as first stored.
    assert client.normalize(**request).sequence == event.sequence


def test_the_basic_view_answers_without_payloads_and_stores_them(client):
    request = gigs_event(990001, "subscription.activated")
    event = client.normalize(**request, view="basic")
    assert event.sequence > 0 and event.id and event.type == "subscription.activated"
    assert event.data_json == "" and not event.HasField("data")
    assert event.WhichOneof("detail") is None
    # Stored whole: the redelivery asking for the full view gets the payload.
    full = client.normalize(**request)
    assert full.sequence == event.sequence and json.loads(full.data_json)["id"] == "sub_990001"
    with pytest.raises(ValueError):
        client.normalize(**request, view="everything")


def test_a_bad_signature_is_a_verification_error(client):
    request = gigs_request(b'{"object":"event","id":"evt_forged"}', secret="whsec_" + "A" * 32)
    with pytest.raises(hooknorm.VerificationError) as raised:
        client.normalize(**request)
    error = raised.value
    assert error.reason == "SIGNATURE_MISMATCH"
    assert error.code == grpc.StatusCode.UNAUTHENTICATED
    assert not error.retryable
    assert isinstance(error, hooknorm.HooknormError)


def test_an_unknown_source_is_a_not_found_error(client):
    request = sample_request("abowire")
    request["source"] = "no-such-source"
    with pytest.raises(hooknorm.NotFoundError) as raised:
        client.normalize(**request)
    assert raised.value.reason == "UNKNOWN_SOURCE"
    assert raised.value.code == grpc.StatusCode.NOT_FOUND
    assert raised.value.metadata.get("source") == "no-such-source"
    assert not raised.value.retryable


def test_a_missing_or_narrow_api_key_is_an_access_denied_error(server, numbers):
    with hooknorm.Client(server.addr) as anonymous:
        with pytest.raises(hooknorm.AccessDeniedError) as missing:
            anonymous.normalize(**gigs_event(next(numbers), "subscription.activated"))
    assert missing.value.reason == "MISSING_API_KEY"
    assert missing.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert not missing.value.retryable
    with hooknorm.Client(server.addr, api_key=READ_KEY) as reader:
        with pytest.raises(hooknorm.AccessDeniedError) as denied:
            reader.normalize(**gigs_event(next(numbers), "subscription.activated"))
        assert denied.value.reason == "PERMISSION_DENIED"
        assert denied.value.code == grpc.StatusCode.PERMISSION_DENIED
        assert head(reader) >= 0, "the read key reads"


def test_a_filtered_subscription_gets_only_matching_events_in_order(client, numbers):
    start = head(client)
    sent = []
    for event_type in [
        "subscription.activated",
        "sim.retired",
        "subscriptionChange.applied",  # subscription_change.applied: not `subscription.*`
        "subscription.ended",
    ]:
        sent.append(client.normalize(**gigs_event(next(numbers), event_type)))
    sent.append(client.normalize(**sample_request("abowire")))
    sentinel = client.normalize(**gigs_event(next(numbers), "subscription.canceled"))
    subscription = client.subscribe({"types": ["subscription.*"], "sources": ["gigs"]}, after=start)
    got = take_until(subscription, sentinel.sequence)
    expected = [e.sequence for e in sent + [sentinel] if e.type.startswith("subscription.") and e.sequence > start]
    assert [e.sequence for e in got] == expected
    assert all(e.type.startswith("subscription.") for e in got)
    assert subscription.cursor == sentinel.sequence


def test_the_latest_position_starts_after_the_events_stored_before_subscribing(client, numbers):
    before = client.normalize(**gigs_event(next(numbers), "subscription.activated"))
    subscription = client.subscribe({"sources": ["gigs"]})
    after = client.normalize(**gigs_event(next(numbers), "subscription.activated"))
    got = take_until(subscription, after.sequence)
    assert [e.sequence for e in got] == [after.sequence]
    assert before.sequence < after.sequence


def test_a_subscription_cut_off_by_restarts_mid_stream_gets_every_event_once_in_order(
    server, client, numbers
):
    start = head(client)
    # 2 KiB events: far more than the server's stream buffer and the HTTP/2 window hold, so
    # both restarts cut the stream while stored events are still to come.
    padding = ',"notes":"%s"' % ("x" * 2048)
    first = [
        client.normalize(**gigs_event(next(numbers), "subscription.activated", padding)) for _ in range(200)
    ]
    subscription = client.subscribe({"sources": ["gigs"]}, after=start, min_backoff=0.05, max_backoff=0.5)
    received = []
    restarted = threading.Event()
    more = []

    def restart_mid_stream():
        while len(received) < 40:
            time.sleep(0.005)
        server.restart(signal.SIGKILL)  # a crash: the connection just drops
        while len(received) < 100:
            time.sleep(0.005)
        server.restart(signal.SIGTERM)  # a graceful stop: SHUTTING_DOWN with a resume cursor
        with hooknorm.Client(server.addr, api_key=API_KEY) as publisher:
            more.extend(
                publisher.normalize(**gigs_event(next(numbers), "subscription.activated")) for _ in range(50)
            )
        restarted.set()

    restarter = threading.Thread(target=restart_mid_stream)
    restarter.start()
    watchdog = threading.Timer(60, subscription.close)
    watchdog.start()
    try:
        for event in subscription:
            received.append(event.sequence)
            time.sleep(0.01)
            if restarted.is_set() and event.sequence == more[-1].sequence:
                break
    finally:
        watchdog.cancel()
        subscription.close()
        restarter.join(timeout=60)
    expected = [e.sequence for e in first + more]
    assert received == expected, "every event exactly once, in order"
    assert subscription.reconnects >= 2
    assert subscription.cursor == expected[-1]

