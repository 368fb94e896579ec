"""A subscription whose events retention removed hears of it: an error by default, a callback
when given one. Its own server: retention keeps only the newest events."""

import time

import hooknorm
import pytest
from hooknorm_server import HooknormServer, gigs_event


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = HooknormServer(
        tmp_path_factory.mktemp("hooknorm"),
        store_extra="retention_max_count = 3\nretention_interval_seconds = 1",
    )
    yield running
    running.stop()


def test_events_removed_by_retention_are_reported(client, numbers):
    sent = [client.normalize(**gigs_event(next(numbers), "sim.retired")) for _ in range(8)]
    # Retention runs every second; wait until the oldest is gone.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        page = client.stub.ListEvents(
            hooknorm.v1.normalizer_service_pb2.ListEventsRequest(page_size=10), metadata=client.metadata
        )
        if len(page.events) <= 3:
            break
        time.sleep(0.2)
    kept = [e.sequence for e in page.events][::-1]
    assert kept == [e.sequence for e in sent[-3:]]

    with pytest.raises(hooknorm.EventsSkippedError) as raised:
        for _ in client.subscribe(after=0):
            pytest.fail("no event comes before the notice")
    assert raised.value.after_sequence == 0
    assert raised.value.last_skipped_sequence == kept[0] - 1

    notices = []
    subscription = client.subscribe(after=0, on_skipped=notices.append)
    got = []
    for event in subscription:
        got.append(event.sequence)
        if event.sequence == kept[-1]:
            break
    assert got == kept
    assert [(n.after_sequence, n.last_skipped_sequence) for n in notices] == [(0, kept[0] - 1)]
