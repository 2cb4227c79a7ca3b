#!/usr/bin/env bash
# Builds the local base image (default tag aifactory-base:bookworm) when the engine lacks it:
# Debian bookworm's python3.11 from Debian's own packages (debootstrap), imported with
# `docker import`. It stands in for python:3.11-slim-bookworm where no image registry is
# reachable; the Dockerfiles take it as `--build-arg BASE_IMAGE=...`.
#
# What it changes against a plain Debian root, and why:
# - `python` and `pip` on PATH and pip allowed to install system-wide (EXTERNALLY-MANAGED
#   removed), as in the python:3.11-slim image the Dockerfiles are written for;
# - the host's CA bundle, so pip inside a build reaches the package index through a network
#   that re-signs TLS.
set -euo pipefail

TAG=${1:-aifactory-base:bookworm}
DOCKER=${DOCKER:-$(command -v /usr/bin/docker || command -v docker)}
SUITE=bookworm

if "$DOCKER" image inspect "$TAG" >/dev/null 2>&1; then
  echo "base image: $TAG present"
  exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
# The mirror apt already uses here (a deb822 source or a one-line list), else Debian's.
MIRROR=$(grep -h -m1 -E '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | head -n1 || true)
if [ -z "$MIRROR" ]; then
  MIRROR=$(grep -h -m1 -E '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' || true)
fi
MIRROR=${MIRROR:-http://deb.debian.org/debian}

ROOT=$(mktemp -d /var/tmp/aifactory-base.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT
echo "base image: debootstrap $SUITE from $MIRROR"
debootstrap --variant=minbase \
  --include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates \
  "$SUITE" "$ROOT" "$MIRROR" >"$ROOT.log" 2>&1 || {
  tail -n 20 "$ROOT.log" >&2
  exit 1
}
rm -f "$ROOT.log"
rm -f "$ROOT"/usr/lib/python3*/EXTERNALLY-MANAGED
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
fi
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/*
tar -C "$ROOT" -c . | "$DOCKER" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
  --change 'CMD ["python3"]' \
  - "$TAG" >/dev/null
echo "base image: $TAG built"
