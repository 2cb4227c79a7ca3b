"""Fixtures for the CLI tests: the real local API as a process on a free loopback port, and
`aifactory` driven in-process through `main(argv)` with the environment it reads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from aifactory import Client
from aifactory.cli import main
from tests.servers import ApiServer

KEY = "cli-test-key"


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture(scope="package")
def api(tmp_path_factory):
    home = tmp_path_factory.mktemp("cli") / "home"
    home.mkdir()
    server = ApiServer(home, api_key=KEY, extra_env={"AIFACTORY_MAX_CONCURRENT_JOBS": "2"})
    with server:
        yield server
    server.kill_jobs()


@pytest.fixture
def client(api):
    with Client(api.url, KEY) as c:
        yield c


@pytest.fixture
def cli(api, capsys, monkeypatch, tmp_path):
    """`cli("jobs")` runs `aifactory jobs` against the test server; returns code, stdout, stderr."""
    monkeypatch.setenv("AIFACTORY_URL", api.url)
    monkeypatch.setenv("AIFACTORY_API_KEY", KEY)
    monkeypatch.setenv("AIFACTORY_HOME", str(tmp_path / "no-state"))

    def run(*argv: str) -> Result:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="package")
def classification_data(tmp_path_factory) -> str:
    from trainer.vision.synthetic import generate

    root = tmp_path_factory.mktemp("cli-data")
    return str(generate(Path(root) / "cls", "classification", num_images=24, image_size=32, num_classes=2))
