#!/usr/bin/env bash
# The project's image, built and run by a real Docker engine where no image registry is
# reachable (not part of CI; see docs/deployment.md, "The image, on a real engine").
#
#  1. Debian's docker.io daemon (vfs storage: works where overlayfs does not), with no
#     bridge and no iptables rules: the build uses the host's network (to reach the package
#     registry), the containers none;
#  2. a base image made from Debian's packages (debootstrap bookworm + Python 3.11, then
#     `docker import`), shaped like python:3.11-slim for the Dockerfile: `python`, `pip`;
#  3. `docker build` with the classic builder (no BuildKit), BASE_IMAGE set to it;
#  4. containers of that image: the code location loads (`dagster definitions validate`),
#     and compose's mlflow command serves tracking under compose's health check.
#
# Root only. Leaves the engine's state under /var/lib/airquality-docker; stops the daemon.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[ "$(id -u)" = 0 ] || { echo "docker_image.sh: needs root" >&2; exit 1; }

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

STATE=/var/lib/airquality-docker
RUN=/run/airquality-docker
SOCK="$RUN/docker.sock"
mkdir -p "$STATE" "$RUN"
export DOCKER_HOST="unix://$SOCK" DOCKER_BUILDKIT=0
BASE=airquality-base:bookworm
started=$(date +%s)
step() { echo "==> [$(( $(date +%s) - started )) s] $*"; }

step "dockerd (vfs, no bridge)"
dockerd --storage-driver=vfs --bridge=none --iptables=false --ip6tables=false \
  --data-root "$STATE/engine" --exec-root "$RUN/exec" --pidfile "$RUN/dockerd.pid" \
  --host "unix://$SOCK" > "$STATE/dockerd.log" 2>&1 &
trap 'kill "$(cat "$RUN/dockerd.pid" 2>/dev/null)" 2>/dev/null || true' EXIT
for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
docker info --format 'engine {{.ServerVersion}}, storage {{.Driver}}'

if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  step "base image from Debian's packages (debootstrap bookworm)"
  rootfs="$(mktemp -d)"
  chmod 755 "$rootfs"  # mktemp makes it 0700: the image's / would shut out its non-root user
  debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates \
    bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
  # python:3.11-slim's interface: `python` and `pip` on PATH, pip allowed to install
  ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python"
  ln -sf /usr/bin/pip3 "$rootfs/usr/local/bin/pip"
  rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
  # this machine's trust store (package registries may be reached through its own CA)
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["python3"]' - "$BASE" >/dev/null
  rm -rf "$rootfs"
fi
docker run --rm "$BASE" python --version

step "docker build (classic builder) --build-arg BASE_IMAGE=$BASE"
docker build --network host --build-arg BASE_IMAGE="$BASE" -t airquality-assets:latest . \
  > "$STATE/build.log" 2>&1 || { tail -30 "$STATE/build.log"; exit 1; }
docker image inspect airquality-assets:latest --format 'image {{.Id}} {{.Size}} bytes'

step "container: the code location loads"
# (an empty instance folder: the image's own dagster.yaml wants compose's PostgreSQL settings)
docker run --rm --network none airquality-assets:latest sh -c \
  'mkdir -p /tmp/instance && DAGSTER_HOME=/tmp/instance dagster definitions validate -m airquality_assets.definitions' \
  2>&1 | tail -1

step "container: compose's mlflow command, compose's health check"
docker rm -f airquality-mlflow >/dev/null 2>&1 || true
docker run -d --name airquality-mlflow --network none airquality-assets:latest \
  mlflow server --host 0.0.0.0 --port 5000 --backend-store-uri sqlite:////data/mlflow.db \
  --artifacts-destination /data/mlartifacts --serve-artifacts \
  --allowed-hosts mlflow,mlflow:5000,localhost,localhost:5000,127.0.0.1,127.0.0.1:5000 >/dev/null
healthy=no
for _ in $(seq 90); do
  if docker exec airquality-mlflow python -c "import urllib.request as u; u.urlopen(u.Request('http://localhost:5000/api/2.0/mlflow/experiments/search?max_results=1', headers={'Host': 'mlflow:5000'}), timeout=4)" 2>/dev/null; then
    healthy=yes; break
  fi
  sleep 2
done
docker rm -f airquality-mlflow >/dev/null
echo "mlflow container healthy (tracking under Host mlflow:5000): $healthy"
step "done"
[ "$healthy" = yes ]
