#!/usr/bin/env bash
# What `make test` needs beyond the virtualenv, set up where this machine allows, so a fresh
# clone's `make test` is the whole story (`.ci/run` only calls it):
#   - Debian's chromium and chromium-driver for the dashboard's browser test;
#   - a Docker engine, the trainer and inference images and the SageMaker SDK's virtualenv
#     for tests/docker (layer-cached: only the first run builds).
# Nothing here is fatal: what cannot be had is one loud line, and the tests that need it skip
# saying why. AIFACTORY_TEST_DEPS=0 skips this script (a machine set up by hand).
set -uo pipefail
cd "$(dirname "$0")/.."

[ "${AIFACTORY_TEST_DEPS:-1}" = 0 ] && exit 0

can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  if can_apt; then
    echo "test deps: installing Debian's chromium and chromium-driver (the dashboard's browser test)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
      || echo "!!! test deps: chromium did not install; tests/dashboard will skip"
  else
    echo "!!! test deps: no chromium and no root apt-get to install it; tests/dashboard will skip"
  fi
fi

if bash scripts/docker/engine.sh; then
  make --no-print-directory docker-images \
    || echo "!!! test deps: an image did not build (build/docker/<image>.log); tests/docker will skip what needs it"
  make --no-print-directory docker-sagemaker-sdk \
    || echo "!!! test deps: the SageMaker SDK did not install; its local-mode test will skip"
else
  echo "!!! test deps: no Docker engine could start; tests/docker will skip"
fi
exit 0
