# shelly-bridge: a static binary FROM scratch, running as an unprivileged numeric user.
# scripts/images.sh builds the binaries and this image with the tags compose and the chart use
# and labels from `git describe` (VERSION, REVISION, CREATED). To build it by hand:
#
# Build context: a directory holding bin/<arch>/shelly-bridge for each arch (dist/ after
# scripts/build-arm64.sh). The classic builder needs --build-arg TARGETARCH=<amd64|arm64>:
#   docker buildx build --platform linux/amd64,linux/arm64 -f docker/shelly-bridge.Dockerfile dist/
#   docker build --build-arg TARGETARCH=arm64 -f docker/shelly-bridge.Dockerfile dist/
FROM scratch

ARG TARGETARCH
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown

LABEL org.opencontainers.image.title="shelly-bridge" \
      org.opencontainers.image.description="Keeps Shelly Gen2+ outbound WebSocket connections and serves their readings over HTTP" \
      org.opencontainers.image.source="https://github.com/edge-metrics/edge-metrics" \
      org.opencontainers.image.documentation="https://github.com/edge-metrics/edge-metrics/blob/main/docs/DEPLOY.md" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="edge-metrics" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"

COPY bin/${TARGETARCH}/shelly-bridge /shelly-bridge
ENV SHELLY_WS_PORT=8765 \
    SHELLY_HTTP_PORT=8766 \
    RUST_LOG=info

# 8765: WebSocket that Shelly plugs dial (outbound WebSocket); 8766: HTTP API for the exporter.
EXPOSE 8765/tcp 8766/tcp
# nobody-style numeric user: no /etc/passwd in scratch, and Kubernetes' runAsNonRoot needs a
# numeric USER to verify.
USER 65532:65532
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/shelly-bridge", "healthcheck"]
ENTRYPOINT ["/shelly-bridge"]
