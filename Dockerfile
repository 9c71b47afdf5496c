# One image for every project service in docker-compose.yml: the Dagster code server,
# webserver and daemon, the MLflow server and the BentoML service. Dependencies are
# installed before the source is copied, so a code change rebuilds only the last layers.
# Nothing here needs BuildKit: Debian's docker.io builds it with its classic builder too.
# BASE_IMAGE: any image with Python 3.11 as `python` and `pip` (scripts/docker_image.sh
# makes one from Debian's packages where no image registry is reachable).
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 KERAS_BACKEND=jax \
    DAGSTER_HOME=/opt/dagster/home AIRQUALITY_DATA_DIR=/data
WORKDIR /opt/dagster/app

# The runtime dependencies of pyproject.toml at the versions in requirements.lock (the lock
# also pins the test tools; the constraint file keeps those out of the image).
# `--build-arg EXTRAS=k8s` for the Kubernetes image (deploy/k8s/README.md).
ARG EXTRAS=""
COPY pyproject.toml requirements.lock ./
RUN pip install --no-cache-dir uv==0.13.8 \
    && uv pip install --system --no-cache -r pyproject.toml \
       ${EXTRAS:+--extra "$EXTRAS"} --constraint requirements.lock

COPY README.md workspace.yaml ./
COPY airquality_assets ./airquality_assets
COPY bento ./bento
COPY deploy ./deploy
RUN uv pip install --system --no-deps -e . \
    && mkdir -p "$DAGSTER_HOME" /data/mlartifacts /data/bentoml \
    && cp deploy/dagster.yaml "$DAGSTER_HOME/dagster.yaml" \
    && useradd --create-home --uid 10001 airquality \
    && chown -R airquality "$DAGSTER_HOME" /data
USER airquality
