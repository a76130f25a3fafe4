# syntax=docker/dockerfile:1
#
# Herald container image: a Rust build stage and a small Debian runtime.
#
#   docker build -t herald:local .
#   docker run --rm -p 6001:6001 -p 9601:9601 herald:local            # development app
#   docker run --rm -p 6001:6001 -v "$PWD/herald.toml:/etc/herald/herald.toml:ro" \
#       -e HERALD_REDIS_URL=redis://redis:6379/0 herald:local --config /etc/herald/herald.toml
#
# Ports: 6001 WebSocket /app/{key} and HTTP API /apps/{id}/…; 9601 /metrics, /health, /ready.
# Needs BuildKit (the default builder of current Docker) for the cache mounts below.

# The builder and the runtime must be the same Debian release: the binary links against the
# builder's glibc. Override both together, e.g. --build-arg DEBIAN_RELEASE=trixie.
ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
WORKDIR /src
# Only what the build reads (see .dockerignore): the workspace manifest, the lockfile, the crates.
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
# The cache mounts keep the crates.io downloads and the target directory between builds; the
# binary is copied out of the cached target directory because a cache mount is not part of the
# image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p herald-server \
    && install -D -m 0755 target/release/herald /out/herald

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# No extra packages, not even ca-certificates: HTTPS webhooks trust the Mozilla roots built into
# the binary (webpki-roots), plus webhook_ca_file for a private CA (mount that PEM file next to
# herald.toml). Add ca-certificates if Herald ever reads the system trust store.
#
# A fixed numeric user, so Kubernetes can check runAsNonRoot without resolving names.
RUN groupadd --system --gid 10001 herald \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin herald \
    && mkdir -p /etc/herald
COPY --from=build /out/herald /usr/local/bin/herald
USER 10001:10001
EXPOSE 6001 9601
# Healthcheck without curl: the slim image has no HTTP client, and installing curl would add
# libcurl and its TLS stack for one probe. bash (always in Debian images) speaks enough HTTP
# through its /dev/tcp redirection: send GET /health to the admin port, accept only a 200 status
# line. It checks liveness (/health), not readiness: /ready is 503 while Redis is unreachable or
# the node is full, which is no reason to restart a container; load balancers probe /ready
# themselves (see docker-compose.yml and deploy/). If you move metrics_bind off port 9601,
# override this HEALTHCHECK.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9601 && printf 'GET /health HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && read -r -t 2 _ code _ <&3 && [ \"$code\" = 200 ]"]
# SIGTERM starts Herald's drain (readiness off, clients told 4200 in paced batches); give the
# container at least drain_secs + 10 s to stop (docker stop -t 30, compose stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/herald"]
CMD []
