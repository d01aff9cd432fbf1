# edge-metrics-exporter: a static binary FROM scratch.
# scripts/images.sh builds the binaries and this image with the tags compose and the chart use
# and labels from `git describe` (VERSION, REVISION, CREATED). To build it by hand:
#
# Build context: a directory holding bin/<arch>/edge-metrics-exporter for each arch, e.g. dist/
# after scripts/build-arm64.sh (ARCHS="amd64 arm64"). BuildKit/buildx sets TARGETARCH from
# --platform; the classic builder does not, so pass --build-arg TARGETARCH=arm64 there:
#   docker buildx build --platform linux/amd64,linux/arm64 -f docker/edge-metrics-exporter.Dockerfile dist/
#   docker build --build-arg TARGETARCH=arm64 -f docker/edge-metrics-exporter.Dockerfile dist/
#
# Runs as root ON PURPOSE: tegrastats reads root-only clocks, rails and debugfs and there is no
# sudo in the image. Mount the host's tegrastats and the libraries it links (docs/DEPLOY.md):
#   -v /usr/bin/tegrastats:/usr/bin/tegrastats:ro -v /lib:/lib:ro (+ /usr/lib/aarch64-linux-gnu)
# or set tegrastats.logfile to a file that a host tegrastats writes. The config DIRECTORY must be
# mounted read-write: the exporter saves config.yaml by temp file + rename.
FROM scratch

ARG TARGETARCH
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown

LABEL org.opencontainers.image.title="edge-metrics-exporter" \
      org.opencontainers.image.description="Prometheus exporter for NVIDIA Jetson tegrastats and Shelly wall-plug power" \
      org.opencontainers.image.source="https://github.com/edge-metrics/edge-metrics" \
      org.opencontainers.image.documentation="https://github.com/edge-metrics/edge-metrics/blob/main/docs/DEPLOY.md" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="edge-metrics" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"

COPY bin/${TARGETARCH}/edge-metrics-exporter /edge-metrics-exporter
# WORKDIR creates the config directory (scratch has no mkdir), so the image also starts
# without a mounted config: the exporter then writes its defaults there.
WORKDIR /etc/edge-metrics
ENV LOCAL_CONFIG_PATH=/etc/edge-metrics/config.yaml \
    RUST_LOG=info

# 9102: Prometheus /metrics; 9101: management API (/health, /config, /metrics/list, /reload).
EXPOSE 9102/tcp 9101/tcp
USER 0:0
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/edge-metrics-exporter", "healthcheck"]
ENTRYPOINT ["/edge-metrics-exporter"]
CMD ["--config", "/etc/edge-metrics/config.yaml"]
