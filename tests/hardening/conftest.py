"""Fixtures of the hardening suite: the real local server (`make run`'s process) on a free port."""

from __future__ import annotations

import pytest

from tests.servers import ApiServer

CHANNEL_TIMEOUT = 2  # seconds a silent connection is kept: short, so the stall test ends soon


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    home = tmp_path_factory.mktemp("api") / "home"
    server = ApiServer(
        home,
        extra_env={"AIFACTORY_MAX_CONCURRENT_JOBS": "0"},  # jobs queue, nothing trains
        args=["--channel-timeout", str(CHANNEL_TIMEOUT), "--threads", "4"],
    )
    with server:
        yield server
