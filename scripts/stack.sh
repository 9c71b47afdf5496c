#!/usr/bin/env bash
# The production stack, started for real: every service of docker-compose.yml run natively
# (no Docker engine needed) with compose's own commands, environments (a generated .env),
# volumes, health checks and start-up order, reachable under compose's host names, then
# operated end to end through the Dagster webserver's GraphQL API and put through three
# faults (airquality_assets_tests/stack/). scripts/test.sh runs it after the suite (so CI does).
#
# Needs root: the stack lives in its own network and mount namespaces (nothing on the
# machine's ports or /etc/hosts changes), and Debian's PostgreSQL, Prometheus, Pushgateway
# and tini stand in for the upstream images. Without root it says so and skips, unless
# AIRQUALITY_REQUIRE_STACK=1 (CI), where that is a failure. Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
unset DAGSTER_HOME AIRQUALITY_DATA_DIR

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1 || ! command -v unshare >/dev/null 2>&1; then
  echo "==> stack: skipped: needs root, apt-get and unshare (namespaces, Debian's servers)"
  [ "${AIRQUALITY_REQUIRE_STACK:-0}" != 1 ] || { echo "AIRQUALITY_REQUIRE_STACK=1: failing" >&2; exit 1; }
  exit 0
fi
missing=()
command -v pg_ctlcluster >/dev/null 2>&1 || missing+=(postgresql)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-pushgateway >/dev/null 2>&1 || missing+=(prometheus-pushgateway)
command -v tini >/dev/null 2>&1 || missing+=(tini)
command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "==> stack: installing ${missing[*]} (Debian packages)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

echo "==> stack: docker-compose.yml, natively, in private network and mount namespaces"
export AIRQUALITY_STACK=1
# the namespaces the stack must not run in (the fixture refuses to touch /etc/hosts there)
AIRQUALITY_STACK_OUTER_NS="$(readlink /proc/self/ns/net) $(readlink /proc/self/ns/mnt)"
export AIRQUALITY_STACK_OUTER_NS
started=$(date +%s)
status=0
unshare --net --mount --propagation private -- /bin/sh -c 'ip link set lo up && exec "$@"' sh \
  .venv/bin/python -m pytest airquality_assets_tests/stack -p no:cacheprovider "$@" || status=$?
echo "==> stack: $(( $(date +%s) - started )) s in all (exit $status)"
exit "$status"
