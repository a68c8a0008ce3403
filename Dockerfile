# The plumise node in a container: the linux release binary on a slim Debian, as a non-root user.
# Build context: a folder with dist/plumise-linux-x64 and/or dist/plumise-linux-arm64 (from
# `deno task compile` or the release assets). Not built in CI; see docs/operations.md.
#   docker build -t plumise .            (or: docker compose up -d)
FROM debian:bookworm-slim AS pick
ARG TARGETARCH
COPY dist/ /dist/
RUN case "${TARGETARCH:-amd64}" in amd64) a=x64 ;; arm64) a=arm64 ;; *) echo "no binary for ${TARGETARCH}" >&2; exit 1 ;; esac \
 && install -m 755 "/dist/plumise-linux-$a" /plumise

FROM debian:bookworm-slim
# curl: the health check; ca-certificates: the hub, the chain and the Oracle over HTTPS
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/plumise --create-home --shell /usr/sbin/nologin plumise \
 && mkdir -p /var/cache/plumise \
 && chown plumise:plumise /var/cache/plumise \
 && chmod 700 /var/lib/plumise /var/cache/plumise
COPY --from=pick /plumise /usr/local/bin/plumise
# data (peer identity, throughput cache, keystore) and cache (HF checkpoints, onnxruntime library)
ENV PLUMISE_DATA_DIR=/var/lib/plumise \
    HF_HOME=/var/cache/plumise/huggingface \
    XDG_CACHE_HOME=/var/cache
VOLUME ["/var/lib/plumise", "/var/cache/plumise"]
USER plumise
WORKDIR /var/lib/plumise
# swarm (libp2p), API, direct path
EXPOSE 31330 31331 31332
HEALTHCHECK --interval=30s --timeout=5s --start-period=15m --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${API_PORT:-31331}/health" || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/plumise"]
CMD ["serve"]
