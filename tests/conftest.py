"""Shared fixtures: the local stage in a temp home, a chalice test client, loopback servers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Each xdist worker has a core; torch's OpenMP threads (one per core by default) in every
    # trainer and server a worker starts would otherwise spin against the other workers' and
    # slow tiny steps tenfold. Set before anything imports torch; children inherit it.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

from chalicelib import settings, wiring

LOCAL_ENV = {
    "AIFACTORY_STAGE": "local",
    "AIFACTORY_API_KEY": "test-api-key",
    "AIFACTORY_DOCKER": "0",
    "AIFACTORY_STOP_GRACE_SECONDS": "30",
}


@pytest.fixture(autouse=True)
def _fresh_settings():
    """Settings are cached per process: no test sees another's environment."""
    settings.reset()
    wiring.reset()
    yield
    settings.reset()
    wiring.reset()


@pytest.fixture
def local_stage(tmp_path, monkeypatch):
    home = tmp_path / "home"
    for name, value in {**LOCAL_ENV, "AIFACTORY_HOME": str(home)}.items():
        monkeypatch.setenv(name, value)
    for name in (
        "AIFACTORY_PUBLIC_URL",
        "AIFACTORY_ALLOWED_IMAGES",
        "AIFACTORY_ALLOWED_INSTANCE_TYPES",
        "AIFACTORY_DATA_ROOTS",
        "AIFACTORY_MAX_CONCURRENT_JOBS",
    ):
        monkeypatch.delenv(name, raising=False)
    settings.reset()
    wiring.reset()
    yield home
    settings.reset()
    wiring.reset()


@pytest.fixture
def client(local_stage):
    from chalice.test import Client

    from app import app

    with Client(app, stage_name="local") as test_client:
        settings.reset()  # the Client applied the stage's environment variables
        wiring.reset()
        yield test_client


@pytest.fixture
def api_headers():
    return {"x-api-key": LOCAL_ENV["AIFACTORY_API_KEY"], "Content-Type": "application/json"}


# Folders whose fixtures are session-wide (one trained checkpoint per task, the built images):
# under xdist they run on one worker so those are made once.
SESSION_SHARED_FOLDERS = {"inference", "docker"}
TESTS = Path(__file__).parent
SHARED_SCOPES = {"module", "package", "session", "class"}


def _shares_a_fixture(item) -> bool:
    """A fixture of ours (not pytest's own session-wide tmp_path_factory) made once for many tests."""
    defs = getattr(item, "_fixtureinfo", None)
    return defs is not None and any(
        d.scope in SHARED_SCOPES and d.func.__module__.startswith("tests")
        for ds in defs.name2fixturedefs.values()
        for d in ds
    )


def pytest_collection_modifyitems(config, items):
    """`make test` runs the suite on every core with `--dist loadgroup`: the tests of a file that
    share a module fixture (a trained job) stay on one worker, so it is trained once, never once
    per worker; a test that shares nothing goes wherever a worker is free."""
    for item in items:
        parts = Path(str(item.path)).relative_to(TESTS).parts
        if parts[0] in SESSION_SHARED_FOLDERS:
            item.add_marker(pytest.mark.xdist_group(parts[0]))
        elif _shares_a_fixture(item):
            item.add_marker(pytest.mark.xdist_group("/".join(parts)))
