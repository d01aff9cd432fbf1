# edge-metrics-config-server: a static binary FROM scratch, running as an unprivileged numeric
# user, with its SQLite database in a volume.
# scripts/images.sh builds the binaries and this image with the tags compose and the chart use
# and labels from `git describe` (VERSION, REVISION, CREATED). To build it by hand:
#
# Build context: a directory holding bin/<arch>/edge-metrics-config-server for each arch (dist/
# after scripts/build-arm64.sh). The classic builder needs --build-arg TARGETARCH=<amd64|arm64>:
#   docker buildx build --platform linux/amd64,linux/arm64 -f docker/edge-metrics-config-server.Dockerfile dist/
#   docker build --build-arg TARGETARCH=arm64 -f docker/edge-metrics-config-server.Dockerfile dist/
#
# It listens on every address of the container (8080), which the server allows only with tokens:
# without CONFIG_SERVER_OPERATOR_TOKEN and CONFIG_SERVER_DEVICE_TOKEN (or their _FILE variants)
# it exits 64 and says how to set them. Run it with a named volume on the data directory:
#   docker run -d -v edge-metrics-config:/var/lib/edge-metrics-config-server -p 8080:8080 \
#     -e CONFIG_SERVER_OPERATOR_TOKEN=admin:<secret> -e CONFIG_SERVER_DEVICE_TOKEN=<secret> \
#     ghcr.io/edge-metrics/edge-metrics-config-server:0.1.0
# PostgreSQL instead: CONFIG_SERVER_DATABASE=postgres://user:pass@host:5432/db (docs/CONFIG-SERVER.md).

# An empty directory to copy with its owner: scratch has no mkdir or chown, and WORKDIR makes
# a root-owned directory under the classic builder. A fresh named volume takes the owner of the
# image's directory, so the server can create its database there.
FROM scratch AS data-dir
WORKDIR /data

FROM scratch

ARG TARGETARCH
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown

LABEL org.opencontainers.image.title="edge-metrics-config-server" \
      org.opencontainers.image.description="Config Server for edge-metrics exporters: fleet, device-type and device layers with versions, history and tokens, on SQLite or PostgreSQL" \
      org.opencontainers.image.source="https://github.com/edge-metrics/edge-metrics" \
      org.opencontainers.image.documentation="https://github.com/edge-metrics/edge-metrics/blob/main/docs/CONFIG-SERVER.md" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="edge-metrics" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"

COPY bin/${TARGETARCH}/edge-metrics-config-server /edge-metrics-config-server
COPY --from=data-dir --chown=65532:65532 /data /var/lib/edge-metrics-config-server
WORKDIR /var/lib/edge-metrics-config-server
ENV CONFIG_SERVER_LISTEN=0.0.0.0:8080 \
    CONFIG_SERVER_DATABASE=sqlite:///var/lib/edge-metrics-config-server/config-server.db \
    RUST_LOG=info

# 8080: the API (GET/PUT /config/{device}, defaults, history, /devices, /health, /metrics).
EXPOSE 8080/tcp
# The database file and its -wal and -shm companions.
VOLUME ["/var/lib/edge-metrics-config-server"]
# nobody-style numeric user: no /etc/passwd in scratch, and Kubernetes' runAsNonRoot needs a
# numeric USER to verify.
USER 65532:65532
# GETs /health on 127.0.0.1 at CONFIG_SERVER_LISTEN's port (0.0.0.0 is probed on loopback).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/edge-metrics-config-server", "healthcheck"]
ENTRYPOINT ["/edge-metrics-config-server"]
