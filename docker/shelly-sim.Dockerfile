# shelly-sim: simulated Shelly plugs for the demo (compose.demo.yaml) and the image tests, as a
# static binary FROM scratch running as an unprivileged numeric user. Not a production image:
# the shipped shelly-bridge image does not contain the simulator.
# scripts/images.sh builds the binaries and this image with the tags compose and the chart use
# and labels from `git describe` (VERSION, REVISION, CREATED). To build it by hand:
#
# Build context: a directory holding bin/<arch>/shelly-sim for each arch (dist/ after
# scripts/build-arm64.sh). The classic builder needs --build-arg TARGETARCH=<amd64|arm64>:
#   docker buildx build --platform linux/amd64,linux/arm64 -f docker/shelly-sim.Dockerfile dist/
#   docker build --build-arg TARGETARCH=arm64 -f docker/shelly-sim.Dockerfile dist/
FROM scratch

ARG TARGETARCH
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown

LABEL org.opencontainers.image.title="shelly-sim" \
      org.opencontainers.image.description="Simulated Shelly Gen2+ plugs that dial a shelly-bridge like real ones (demo and tests)" \
      org.opencontainers.image.source="https://github.com/edge-metrics/edge-metrics" \
      org.opencontainers.image.documentation="https://github.com/edge-metrics/edge-metrics/blob/main/docs/SHELLY.md" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="edge-metrics" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"

COPY bin/${TARGETARCH}/shelly-sim /shelly-sim
ENV RUST_LOG=info

# The simulator only dials out (--url ws://...); it listens on nothing and has no HTTP side to
# probe, so there is no HEALTHCHECK.
USER 65532:65532
ENTRYPOINT ["/shelly-sim"]
