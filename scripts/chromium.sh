#!/usr/bin/env bash
# Debian's Chromium for the browser test of the forecast page (Playwright drives this binary;
# it downloads no browser of its own). Sourced by scripts/test.sh (or run on its own).
# Installs the `chromium` package only when it is missing and we are root with apt-get;
# otherwise it changes nothing and the browser test skips, saying why. Exports
# AIRQUALITY_TEST_CHROMIUM (the executable) when one is found; a value set by the caller wins.
set -euo pipefail

_aq_chromium_setup() {
  if [ -n "${AIRQUALITY_TEST_CHROMIUM:-}" ]; then
    return 0
  fi
  if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
      echo "==> chromium: not installed, and not root with apt-get: the browser test skips"
      return 0
    fi
    echo "==> chromium: installing Debian's chromium"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium \
      >/dev/null
  fi
  AIRQUALITY_TEST_CHROMIUM="$(command -v chromium)"
  export AIRQUALITY_TEST_CHROMIUM
  echo "==> chromium: $AIRQUALITY_TEST_CHROMIUM"
}

_aq_chromium_setup
