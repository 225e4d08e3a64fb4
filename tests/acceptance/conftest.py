import os

import pytest

from harness import SynapseServer, WardServer


def pytest_configure(config):
    config.addinivalue_line("markers", "portable: passes against any spec-conforming homeserver (run against Synapse too)")


@pytest.fixture
def homeserver():
    """The server under test: Ward with token registration, or Synapse configured alike when
    WARD_TEST_TARGET=synapse (see scripts/test-against-synapse)."""
    server = SynapseServer() if os.environ.get("WARD_TEST_TARGET") == "synapse" else WardServer("token")
    try:
        yield server.start()
    finally:
        server.cleanup()


@pytest.fixture
def ward_factory():
    """Starts Ward servers with custom settings; stops them all at the end of the test."""
    started = []

    def make(registration="open", env=None, data_dir=None, start=True, rtc_api_key=None, rtc_api_secret=None):
        s = WardServer(registration, env=env, data_dir=data_dir, rtc_api_key=rtc_api_key,
                       rtc_api_secret=rtc_api_secret)
        started.append(s)
        return s.start() if start else s

    yield make
    for s in started:
        s.cleanup()
