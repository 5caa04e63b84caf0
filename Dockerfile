# syntax=docker/dockerfile:1
# One Dockerfile, three images: SERVICE is tuner, dispatcher or collector. Build from the
# repository root (the uv workspace is the build context):
#   docker build --build-arg SERVICE=dispatcher -t kubesweep-dispatcher .   # api|worker|watch
#   docker build --build-arg SERVICE=tuner      -t kubesweep-tuner .
#   docker build --build-arg SERVICE=collector  -t kubesweep-collector .
# Each image carries only its own package's dependencies (ARCHITECTURE.md section 8), so e.g.
# the collector, which every trial pod can reach, holds no Kubernetes or Azure client.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9
ARG SERVICE=dispatcher

FROM ${UV_IMAGE} AS uv

# ---- build stage: resolve the locked dependencies into /app/.venv with uv ----
FROM ${PYTHON_IMAGE} AS build
ARG SERVICE
COPY --from=uv /uv /usr/local/bin/uv
# Byte-compile now (the runtime filesystem is read-only); copy instead of hard-linking from the
# cache mount; never download a Python: use the base image's 3.11.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# 1) Third-party dependencies only. `--locked` needs every workspace member's pyproject.toml;
#    this layer is rebuilt only when uv.lock or a pyproject.toml changes, not on code edits.
COPY pyproject.toml uv.lock ./
COPY shared/pyproject.toml shared/pyproject.toml
COPY services/tuner/pyproject.toml services/tuner/pyproject.toml
COPY services/dispatcher/pyproject.toml services/dispatcher/pyproject.toml
COPY services/collector/pyproject.toml services/collector/pyproject.toml
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-workspace --package kubesweep-${SERVICE}
# 2) The workspace packages this service needs, installed non-editable: the runtime stage
#    copies only /app/.venv, not /src.
COPY shared/src shared/src
COPY services/${SERVICE}/src services/${SERVICE}/src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable --package kubesweep-${SERVICE}

# ---- runtime stage: the venv on a clean slim Python, as an unprivileged user ----
FROM ${PYTHON_IMAGE}
ARG SERVICE
# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
# /var/lib/kubesweep belongs to it: a new Docker named volume mounted there (compose's shared
# `storage`) copies that ownership, so the non-root services can write to it.
RUN groupadd --system --gid 10001 kubesweep \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/kubesweep --create-home \
    --shell /usr/sbin/nologin kubesweep \
 && mkdir -p /var/lib/kubesweep/storage /var/lib/kubesweep/work \
 && chown -R 10001:10001 /var/lib/kubesweep
COPY --from=build /app/.venv /app/.venv
# The image's default command is its service's console script (the dispatcher's is its API).
RUN ln -s "kubesweep-${SERVICE}" /app/.venv/bin/kubesweep-service
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    KUBESWEEP_LOG_FORMAT=json
USER 10001:10001
WORKDIR /home/kubesweep
CMD ["kubesweep-service"]
