"""The Chalice project one stage deploys: a copy of what the Lambda ships plus the rendered
config, kept under build/deploy/<stage>/ so Chalice's record of what it deployed
(`.chalice/deployed/<stage>.json`, needed by the next deploy and by destroy) survives.

The repository's `.chalice/config.json` stays the committed template; nothing here edits it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
BUILD = ROOT / "build" / "deploy"
SHIPPED = ("app.py", "chalicelib", "vendor", "requirements.txt")  # what `chalice package` zips
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")


def project_dir(stage: str, build: Path = BUILD) -> Path:
    return build / stage / "project"


def write_project(target: Path, config: dict[str, Any], root: Path = ROOT) -> Path:
    """Refreshes the code under `target` and writes `.chalice/config.json`; keeps `.chalice/deployed`."""
    target.mkdir(parents=True, exist_ok=True)
    for name in SHIPPED:
        source, dest = root / name, target / name
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        elif dest.exists() or dest.is_symlink():
            dest.unlink()
        if source.is_dir():
            shutil.copytree(source, dest, ignore=_IGNORE, symlinks=False)
        elif source.exists():
            shutil.copy2(source, dest)
    chalice_dir = target / ".chalice"
    chalice_dir.mkdir(exist_ok=True)
    (chalice_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return target


def chalice(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    executable = Path(sys.executable).with_name("chalice")
    command = [str(executable), "--project-dir", str(project), *args]
    return subprocess.run(command, check=True, env={**os.environ, **(env or {})}, cwd=project)


def deployed(project: Path, stage: str) -> dict[str, Any] | None:
    """Chalice's record of the stage: `{"rest_api_id", "rest_api_url", "lambda_arn"}` or None."""
    path = project / ".chalice" / "deployed" / f"{stage}.json"
    if not path.exists():
        return None
    resources = {r["name"]: r for r in json.loads(path.read_text()).get("resources", [])}
    api = resources.get("rest_api", {})
    handler = resources.get("api_handler", {})
    return {
        "rest_api_id": api.get("rest_api_id", ""),
        "rest_api_url": api.get("rest_api_url", ""),
        "lambda_arn": handler.get("lambda_arn", ""),
    }
