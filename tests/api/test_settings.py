"""Settings: one table of environment variables, read once, documented in the README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chalicelib import settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_readme_documents_exactly_the_table():
    documented = set(re.findall(r"^\| `(AIFACTORY_[A-Z0-9_]+)` \|", README, re.M))
    assert documented == {setting.env for setting in settings.TABLE}


def test_stage_decides_the_stage_dependent_defaults(monkeypatch):
    monkeypatch.setenv("AIFACTORY_STAGE", "dev")
    settings.reset()
    config = settings.current()
    assert (config.is_local, config.allow_private_urls, config.max_instance_count) == (False, False, 8)
    monkeypatch.setenv("AIFACTORY_ALLOW_PRIVATE_URLS", "true")
    assert settings.current() is config  # read once, until reset
    settings.reset()
    assert settings.current().allow_private_urls is True


def test_settings_are_read_only():
    with pytest.raises(AttributeError, match="read-only"):
        settings.current().stage = "prod"


def test_readme_table_is_the_generated_one():
    """`python -m chalicelib.settings` prints the table; paste it into README.md when a row changes."""
    assert settings.markdown_table() in README


def test_every_key_setting_is_secret_and_kept_from_children():
    """A new key setting cannot be forgotten: a name that says key (or token, password) is a
    secret, and every secret is left out of container code's environment."""
    import re

    from chalicelib.adapters.local.source_tree import CONTAINERS_NEVER_SEE, RUNNER_NEVER_SEES
    from chalicelib.settings import SECRET_ENVIRONMENT, TABLE

    flags = {"AIFACTORY_CHECK_API_KEY"}  # whether to check a key: a switch, not a key
    named_like_keys = {s.env for s in TABLE if re.search(r"_KEY$|TOKEN|PASSWORD", s.env)} - flags
    assert named_like_keys and named_like_keys <= SECRET_ENVIRONMENT
    assert CONTAINERS_NEVER_SEE == SECRET_ENVIRONMENT
    assert "AIFACTORY_API_KEY" in RUNNER_NEVER_SEES


def test_container_code_gets_no_key(monkeypatch):
    from chalicelib.adapters.local.source_tree import TRAINER_CODE, container_env
    from chalicelib.settings import SECRET_ENVIRONMENT

    for env in SECRET_ENVIRONMENT:
        monkeypatch.setenv(env, "marker")
    assert not SECRET_ENVIRONMENT & set(container_env(TRAINER_CODE))


def test_an_empty_api_key_file_is_replaced_never_trusted(local_stage, monkeypatch):
    """A full disk at first start once left `<home>/api_key` empty; an empty key would match a
    request that sends no `x-api-key` at all."""
    monkeypatch.delenv("AIFACTORY_API_KEY")
    settings.reset()
    local_stage.mkdir(parents=True, exist_ok=True)
    (local_stage / "api_key").write_text("")
    key = settings.current().api_key
    assert len(key) >= 24 and (local_stage / "api_key").read_text() == key
    assert oct((local_stage / "api_key").stat().st_mode & 0o777) == "0o600"


def test_the_api_key_file_is_not_left_behind_when_the_disk_is_full(local_stage, monkeypatch):
    import errno
    import os

    import pytest

    monkeypatch.delenv("AIFACTORY_API_KEY")
    settings.reset()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        _ = settings.current().api_key
    monkeypatch.undo()
    assert sorted(p.name for p in local_stage.iterdir()) == []
