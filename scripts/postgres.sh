#!/usr/bin/env bash
# A local PostgreSQL server for the deployment tests, plus promtool for the Prometheus checks.
# Sourced by scripts/test.sh (or run on its own). Idempotent and fast once installed: it
# installs Debian's postgresql (and prometheus, for promtool) only when missing, starts the
# newest cluster if it is down, and (re)creates a test role with a random password.
#
# Exports AIRQUALITY_TEST_POSTGRES_URL (a libpq URL of the server's "postgres" database for
# that role); the tests create and drop their own databases with it. Without root and
# apt-get it changes nothing: point AIRQUALITY_TEST_POSTGRES_URL at a server you run
# yourself (the role needs CREATEDB), or the PostgreSQL tests skip and say why.
set -euo pipefail

_aq_pg_setup() {
  local missing=()
  command -v pg_ctlcluster >/dev/null 2>&1 || missing+=(postgresql)
  command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "==> postgres: not root or no apt-get; leaving PostgreSQL to you" \
         "(AIRQUALITY_TEST_POSTGRES_URL=${AIRQUALITY_TEST_POSTGRES_URL:-unset})"
    return 0
  fi
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "==> postgres: installing ${missing[*]} (Debian packages)"
    apt-get update -qq
    # Services are not started by the package (no init system here); we start the cluster.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  fi

  local version cluster port status
  version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
  if ! pg_lsclusters -h | awk -v v="$version" '$1 == v' | grep -q .; then
    pg_createcluster "$version" main >/dev/null
  fi
  read -r _ cluster port status _ < <(pg_lsclusters -h | awk -v v="$version" '$1 == v' | head -n 1)
  if [ "$status" != online ]; then
    pg_ctlcluster "$version" "$cluster" start
  fi
  local tries=0
  until pg_isready -q -h 127.0.0.1 -p "$port"; do
    tries=$((tries + 1))
    [ "$tries" -lt 50 ] || { echo "postgres: server did not come up on port $port" >&2; return 1; }
    sleep 0.2
  done

  # A login role for the tests with a random password, generated once and kept (root only)
  # beside the cluster, so concurrent or repeated runs on one machine agree on it; nothing
  # to commit.
  local role=airquality_tests password pwfile
  pwfile="$(getent passwd postgres | cut -d: -f6)/airquality_tests.password"
  if [ ! -s "$pwfile" ]; then
    ( umask 077; set -o noclobber
      head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$pwfile" ) 2>/dev/null || true
  fi
  password="$(cat "$pwfile")"
  runuser -u postgres -- psql -q -p "$port" -v ON_ERROR_STOP=1 -d postgres <<SQL >/dev/null
SELECT 'CREATE ROLE $role LOGIN CREATEDB'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$role') \gexec
ALTER ROLE $role WITH LOGIN CREATEDB PASSWORD '$password';
-- DROP DATABASE ... WITH (FORCE) at a test's end must be able to end a connection that is
-- still starting up (a run process finishing late has no role yet, so owning it is not enough).
GRANT pg_signal_backend TO $role;
SQL
  export AIRQUALITY_TEST_POSTGRES_URL="postgresql://$role:$password@127.0.0.1:$port/postgres"
  echo "==> postgres: PostgreSQL $version cluster $cluster online on 127.0.0.1:$port;" \
       "promtool: $(command -v promtool || echo missing)"
}

_aq_pg_setup
