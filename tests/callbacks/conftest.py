"""Callback tests talk to 127.0.0.1 only: every connect is checked (see loopback.guard_loopback)."""

from __future__ import annotations

import pytest

from tests.callbacks.loopback import guard_loopback


@pytest.fixture(autouse=True)
def connections(monkeypatch):
    return guard_loopback(monkeypatch)
