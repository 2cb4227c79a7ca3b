#!/usr/bin/env bash
# Makes a Docker engine answer on this machine: installs Debian's docker.io when dockerd is
# missing and starts dockerd (as root, overlay2) when `docker info` fails. Exits non-zero,
# with one line saying why, when no engine can be had (not root, no apt, dockerd dies).
#
# Why a script and not a service unit: CI and the development machines have no init system
# that starts services, so whoever needs the engine starts it (make docker-images, .ci/run).
set -euo pipefail

LOG=${AIFACTORY_DOCKERD_LOG:-/var/log/aifactory-dockerd.log}
# Debian's client (20.10) speaks to Debian's engine and carries BuildKit itself; a newer
# static client elsewhere on PATH needs the buildx plugin for BuildKit builds.
DOCKER=${DOCKER:-$(command -v /usr/bin/docker || command -v docker || true)}

engine_up() { [ -n "$DOCKER" ] && "$DOCKER" info >/dev/null 2>&1; }

if engine_up; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "docker engine: none answers and starting one needs root (run: sudo $0)" >&2
  exit 1
fi
if ! command -v dockerd >/dev/null 2>&1 || [ ! -x /usr/bin/docker ]; then
  echo "docker engine: installing Debian's docker.io" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
  DOCKER=/usr/bin/docker
fi
echo "docker engine: starting dockerd (log: $LOG)" >&2
setsid dockerd >>"$LOG" 2>&1 </dev/null &
for _ in $(seq 1 60); do
  if engine_up; then
    exit 0
  fi
  sleep 1
done
echo "docker engine: dockerd did not answer within 60 s; last lines of $LOG:" >&2
tail -n 5 "$LOG" >&2 || true
exit 1
