# syntax=docker/dockerfile:1
# Driftlock OTLP gateway image.
#   build:   docker build -t driftlock/otlp-gateway:0.1.0 .
#   run:     docker run -p 4317:4317 -p 4318:4318 -p 8080:8080 driftlock/otlp-gateway:0.1.0
#   migrate: docker run --rm -e DATABASE_URL=postgresql://... driftlock/otlp-gateway:0.1.0 migrate
# docs/operations.md explains every knob; tests/deploy/test_deploy_dockerfile.py keeps this file honest.

# ---------------------------------------------------------------------------------------- build stage
# Installs the package and its dependencies into a self-contained venv; only the venv leaves this stage.
FROM python:3.11-slim AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# Metadata first so the dependency layer is reused while only the sources change.
COPY pyproject.toml README.md ./
COPY detectors ./detectors
COPY otlp_gateway ./otlp_gateway
RUN pip install --no-cache-dir . \
    && python -m compileall -q /opt/venv/lib

# -------------------------------------------------------------------------------------- runtime stage
FROM python:3.11-slim AS runtime

LABEL org.opencontainers.image.title="driftlock-otlp-gateway" \
      org.opencontainers.image.description="OTLP receiver/forwarder with compression-based anomaly detection" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed numeric uid/gid so Kubernetes' runAsNonRoot can verify it and volumes can be chowned to it.
RUN groupadd --system --gid 10001 driftlock \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/driftlock --no-create-home \
       --shell /usr/sbin/nologin driftlock \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/driftlock /opt/numba-cache

COPY --from=build /opt/venv /opt/venv
COPY config/gateway.yaml /etc/driftlock/gateway.yaml

# NUMBA_CPU_NAME=generic: the kernels cached below are compiled for a generic x86-64, so the cache stays
# valid on whatever node the image lands on (a host-specific cache is silently recompiled on another
# CPU model, which costs seconds at every start). Unset it to trade portability for host-tuned code.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NUMBA_CACHE_DIR=/opt/numba-cache \
    NUMBA_CPU_NAME=generic \
    HOME=/var/lib/driftlock

USER 10001:10001
WORKDIR /var/lib/driftlock

# Compile every detector kernel now, as the runtime user, in the final filesystem layout: numba's cache
# is keyed on the source file's path and mtime, which are exactly those the container will see.
RUN otlp-gateway warmup --config /etc/driftlock/gateway.yaml

# 4317 OTLP/gRPC, 4318 OTLP/HTTP, 8080 REST API, UI, /healthz, /readyz, /metrics.
EXPOSE 4317 4318 8080
VOLUME ["/var/lib/driftlock"]

# The slim image has no curl: a stdlib one-liner. /healthz answers 503 while starting or draining.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"]

# SIGTERM: stop accepting, drain within shutdown_grace_seconds, exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["otlp-gateway"]
CMD ["serve", "--config", "/etc/driftlock/gateway.yaml", "--data-dir", "/var/lib/driftlock"]
