import logging
import os
import sys

import pytest

from harness import SynapseServer, WardServer


def pytest_configure(config):
    config.addinivalue_line("markers", "portable: passes against any spec-conforming homeserver (run against Synapse too)")


def pytest_sessionfinish(session, exitstatus):
    session.config.ward_exitstatus = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """Ends the process without the interpreter's shutdown once LiveKit's native client (the
    `livekit` SDK) has been used.

    That library's tokio threads call back into Python for events and log lines. One that does
    so after shutdown has begun finds the interpreter finalizing; CPython 3.11-3.13 then end the
    calling thread with pthread_exit, whose forced unwind through the library's Rust frames
    aborts the whole process ("panic in a function that cannot unwind", exit 134). CI saw this
    once, after every test had passed. Leaving with os._exit, after pytest has reported and
    every fixture (and so every server) has been torn down, lets no callback meet a half-dead
    interpreter; the exit status is pytest's own.
    """
    ffi = sys.modules.get("livekit.rtc._ffi_client")
    if ffi is None or getattr(ffi.FfiClient, "_instance", None) is None:
        return
    status = getattr(config, "ward_exitstatus", None)
    if status is None:
        return
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


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
