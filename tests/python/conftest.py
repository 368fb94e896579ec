"""pytest fixtures for the client suites: one real `hooknorm serve` per test module."""

import itertools

import hooknorm
import pytest
from hooknorm_server import API_KEY, HooknormServer


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = HooknormServer(tmp_path_factory.mktemp("hooknorm"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(server):
    with hooknorm.Client(server.addr, api_key=API_KEY) as connected:
        yield connected


# Distinct Gigs event numbers across a whole run, so no two tests send the same event.
_numbers = itertools.count(1)


@pytest.fixture
def numbers():
    return _numbers
