"""The loopback dataset server is on 127.0.0.1: allow private targets, as the local stage does."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_urls_allowed(monkeypatch):
    monkeypatch.setenv("AIFACTORY_ALLOW_PRIVATE_URLS", "true")
