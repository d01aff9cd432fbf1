# prometheus-agent: Debian's Prometheus (2.42) in agent mode, FROM scratch, for pushing a node's
# metrics through NAT with remote_write (compose.remote-write.yaml; docs/DEPLOY.md, "Remote
# write"). It scrapes the exporter and the bridge on the node's loopback, keeps what it has not
# sent yet in a write-ahead log under /var/lib/prometheus-agent, and sends it when the link is
# back.
#
# Build context: the directory deploy/prometheus-agent/image-context.sh stages (rootfs/ with
# /bin/prometheus, the loader and C library its ELF header names, and the CA bundle):
#   deploy/prometheus-agent/image-context.sh dist/prometheus-agent [amd64|arm64]
#   docker build -f docker/prometheus-agent.Dockerfile -t prometheus-agent dist/prometheus-agent
#
# The context is for one architecture (this machine's by default; arm64 from Debian's arm64
# package and libc6:arm64). There is no RUN, so the classic builder builds either; for arm64 it
# records its own architecture, which docker/set-image-arch.py corrects.
# The upstream image (quay.io/prometheus/prometheus:v2.x) takes the same arguments instead.

# An empty directory to copy with its owner: a fresh named volume takes the owner of the image's
# directory, so the agent (uid 65532) can write its WAL there.
FROM scratch AS wal-dir
WORKDIR /wal

FROM scratch

# The project's version, like the other images; the Prometheus inside is Debian's (2.42 on
# Debian 12), which `prometheus --version` in the image prints.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown

LABEL org.opencontainers.image.title="prometheus-agent" \
      org.opencontainers.image.description="Debian's Prometheus in agent mode: scrapes edge-metrics on the node and remote-writes it, with a WAL for link outages" \
      org.opencontainers.image.source="https://github.com/edge-metrics/edge-metrics" \
      org.opencontainers.image.documentation="https://github.com/edge-metrics/edge-metrics/blob/main/docs/DEPLOY.md" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="edge-metrics" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"

COPY rootfs/ /
COPY --from=wal-dir --chown=65532:65532 /wal /var/lib/prometheus-agent
WORKDIR /var/lib/prometheus-agent

# The WAL: samples not yet accepted by the remote end survive restarts and link outages here.
VOLUME ["/var/lib/prometheus-agent"]
USER 65532:65532
# No HEALTHCHECK: there is no probe program in the image; Prometheus answers GET /-/ready and
# /-/healthy on its listen address, which Kubernetes probes (helm/edge-metrics).
ENTRYPOINT ["/bin/prometheus"]
CMD ["--enable-feature=agent,expand-external-labels", \
     "--config.file=/etc/prometheus-agent/agent.yml", \
     "--storage.agent.path=/var/lib/prometheus-agent", \
     "--web.listen-address=127.0.0.1:9090"]
