"""Builds the trainer and inference images on the local Docker engine from the local base.

`make docker-images` runs it after `scripts/docker/engine.sh` (an engine answers) and
`scripts/docker/base-image.sh` (the debootstrap base exists). Three things differ from the
AWS build (`docker build -f containers/<image>/Dockerfile .` on python:3.11-slim):

- `BASE_IMAGE` is the local base: no image registry is reachable here.
- pip installs from a wheelhouse (`build/wheelhouse`, git-ignored) that `pip download`
  fills once from this machine's pip configuration (its local indexes hold torch and the
  CUDA wheels), served over the host's loopback while the build runs (`--network host`).
  No layer keeps the wheels, and no build downloads gigabytes.
- The context is the one `<Dockerfile>.dockerignore` describes, sent by docker-py to the
  engine's classic builder: BuildKit would fetch the `# syntax=` frontend from Docker Hub,
  and the classic builder reads only a root `.dockerignore` (the repository root holds a
  6 GB virtualenv).

Build arguments are part of the layer cache key, so the wheelhouse's URL is fixed
(127.0.0.1:$AIFACTORY_WHEELHOUSE_PORT, 18765 by default): an unchanged requirements file
keeps the dependency layer across runs, and a code change rebuilds only the COPY layers.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import http.server
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import docker
from docker.utils.build import tar

REPO = Path(__file__).resolve().parents[2]
WHEELHOUSE = REPO / "build" / "wheelhouse"
LOGS = REPO / "build" / "docker"
REQUIREMENTS = ("containers/trainer/requirements.txt", "containers/inference/requirements.txt")
BASE_IMAGE = os.environ.get("AIFACTORY_BASE_IMAGE", "aifactory-base:bookworm")
IMAGES = {
    "trainer": ("containers/trainer/Dockerfile", "local/aifactory-trainer:latest"),
    "inference": ("containers/inference/Dockerfile", "local/aifactory-inference:latest"),
}
PORT = int(os.environ.get("AIFACTORY_WHEELHOUSE_PORT", "18765"))


def requirements_digest() -> str:
    digest = hashlib.sha256()
    for name in REQUIREMENTS:
        digest.update((REPO / name).read_bytes())
    return digest.hexdigest()


def ensure_wheelhouse() -> Path:
    """Every wheel the images' requirements resolve to, once per change of those files."""
    stamp = WHEELHOUSE / ".requirements.sha256"
    wanted = requirements_digest()
    if stamp.exists() and stamp.read_text() == wanted:
        return WHEELHOUSE
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--only-binary=:all:",
        "-d",
        str(WHEELHOUSE),
    ]
    for name in REQUIREMENTS:
        command += ["-r", str(REPO / name)]
    subprocess.run(command, check=True, cwd=REPO)
    stamp.write_text(wanted)
    print(f"wheelhouse: {len(list(WHEELHOUSE.glob('*.whl')))} wheels in {time.monotonic() - started:.0f} s")
    return WHEELHOUSE


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@contextlib.contextmanager
def serve(directory: Path):
    """The wheelhouse as a pip `--find-links` page on the host's loopback."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{PORT}/"
    finally:
        server.shutdown()
        server.server_close()


def context(dockerfile: str):
    """The build context `<Dockerfile>.dockerignore` describes, as a tar file object."""
    ignore = REPO / f"{dockerfile}.dockerignore"
    patterns = [
        line.strip()
        for line in ignore.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    return tar(str(REPO), exclude=patterns, dockerfile=(dockerfile, None))


def build(client: docker.APIClient, name: str, find_links: str, base_image: str) -> float:
    dockerfile, tag = IMAGES[name]
    LOGS.mkdir(parents=True, exist_ok=True)
    log_path = LOGS / f"{name}.log"
    previous = _image_id(client, tag)
    started = time.monotonic()
    error = None
    with context(dockerfile) as archive, open(log_path, "w") as log:
        archive.seek(0)
        stream = client.build(
            fileobj=archive,
            custom_context=True,
            dockerfile=dockerfile,
            tag=tag,
            rm=True,
            forcerm=True,
            decode=True,
            network_mode="host",
            buildargs={"BASE_IMAGE": base_image, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": find_links},
        )
        for chunk in stream:
            if "stream" in chunk:
                log.write(chunk["stream"])
            if "error" in chunk:
                error = chunk["error"]
                log.write(f"ERROR: {error}\n")
    elapsed = time.monotonic() - started
    if error:
        tail = "".join(log_path.read_text().splitlines(keepends=True)[-15:])
        raise SystemExit(f"{tail}\nbuild of {tag} failed after {elapsed:.0f} s: {error} (log: {log_path})")
    print(f"image: {tag} built in {elapsed:.0f} s (log: {log_path})")
    if previous and previous != _image_id(client, tag):
        # The tag moved: the image it named is dangling. Its layers stay while a cached build
        # or a container uses them; only the image record goes.
        with contextlib.suppress(docker.errors.APIError):
            client.remove_image(previous)
    return elapsed


def _image_id(client: docker.APIClient, tag: str) -> str | None:
    try:
        return client.inspect_image(tag)["Id"]
    except docker.errors.ImageNotFound:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="*", help=f"some of {', '.join(IMAGES)} (default: all)")
    parser.add_argument("--base-image", default=BASE_IMAGE)
    args = parser.parse_args(argv)
    unknown = sorted(set(args.images) - set(IMAGES))
    if unknown:
        parser.error(f"unknown image {', '.join(unknown)}; choose from {', '.join(IMAGES)}")
    client = docker.APIClient(timeout=3600)
    client.inspect_image(args.base_image)  # fails fast, naming the image, before any download
    wheelhouse = ensure_wheelhouse()
    with serve(wheelhouse) as find_links:
        for name in args.images or list(IMAGES):
            build(client, name, find_links, args.base_image)
    return 0


if __name__ == "__main__":
    sys.exit(main())
