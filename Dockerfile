# syntax=docker/dockerfile:1
# Multi-stage build: a builder with the Rust toolchain and cmake (Pingora
# needs it), and a slim runtime with only the binary and its configuration.

FROM rust:1.95-bookworm AS builder
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p gateway \
 && cp target/release/gateway /usr/local/bin/gateway

FROM debian:bookworm-slim
# DL3008 (pin apt package versions): Debian's stable point releases replace
# versions in place, so a pinned version stops resolving within weeks and
# breaks the build; the base image tag pins the distribution instead.
# The ignore is inline (not in .hadolint.yaml) so `hadolint Dockerfile`
# gives the same answer from any directory.
# Every directory the gateway may write by default is created here and
# owned by its user, so enabling clicks works without a volume:
# /var/lib/gateway/clicks ([clicks] dir), its spill/ (sink = "http") and
# /var/lib/gateway/data (for an embedded store).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin gateway \
 && mkdir -p /etc/gateway /var/lib/gateway/clicks/spill /var/lib/gateway/data \
 && chown gateway:gateway /etc/gateway /var/lib/gateway /var/lib/gateway/clicks \
      /var/lib/gateway/clicks/spill /var/lib/gateway/data
COPY --from=builder /usr/local/bin/gateway /usr/local/bin/gateway
COPY --chown=gateway:gateway config/ /etc/gateway/
WORKDIR /etc/gateway
# In a container the proxy listens on every interface; the admin listener
# stays on loopback unless GATEWAY_ADMIN_LISTEN says otherwise, so only the
# proxy port is exposed.
ENV GATEWAY_SERVER_LISTEN=0.0.0.0:8080 \
    GATEWAY_RULES_PATH=/etc/gateway/rules.toml \
    GATEWAY_SERVER_UPGRADE_SOCK=/tmp/gateway_upgrade.sock \
    GATEWAY_LOG_FORMAT=json \
    GATEWAY_STORE_URL=sqlite:///var/lib/gateway/data/gateway.db \
    GATEWAY_CLICKS_DIR=/var/lib/gateway/clicks \
    GATEWAY_API_LISTEN=0.0.0.0:8081
USER 10001:10001
EXPOSE 8080 8081
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/gateway", "health", "-c", "/etc/gateway/gateway.toml"]
ENTRYPOINT ["/usr/local/bin/gateway"]
CMD ["run", "-c", "/etc/gateway/gateway.toml"]
