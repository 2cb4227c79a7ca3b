"""Where the API is and which key to send: flags, then environment, then `make run`'s state.

`make run` keeps its state in `${AIFACTORY_HOME:-./.aifactory}`: the generated key in
`api_key` and, when the server writes it, its base URL in `url`. A CLI started in the
same directory therefore needs no flags at all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class Target:
    url: str
    api_key: str | None
    url_source: str
    key_source: str | None


def home(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get("AIFACTORY_HOME") or "./.aifactory")


def _read(path: Path) -> str | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return text or None


def resolve(
    url: str | None = None, api_key: str | None = None, environ: dict[str, str] | None = None
) -> Target:
    env = os.environ if environ is None else environ
    state = home(env)
    if url:
        url_source = "--url"
    elif env.get("AIFACTORY_URL"):
        url, url_source = env["AIFACTORY_URL"], "AIFACTORY_URL"
    elif found := _read(state / "url"):
        url, url_source = found, str(state / "url")
    else:
        url = f"http://127.0.0.1:{env['PORT']}" if env.get("PORT", "").isdigit() else DEFAULT_URL
        url_source = "default"
    key_source: str | None
    if api_key:
        key_source = "--api-key"
    elif env.get("AIFACTORY_API_KEY"):
        api_key, key_source = env["AIFACTORY_API_KEY"], "AIFACTORY_API_KEY"
    elif found := _read(state / "api_key"):
        api_key, key_source = found, str(state / "api_key")
    else:
        api_key, key_source = None, None
    return Target(url.rstrip("/"), api_key, url_source, key_source)
