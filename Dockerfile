# syntax=docker/dockerfile:1
# Multi-stage build: a builder with the Rust toolchain and cmake (Pingora
# needs it), and a slim runtime with only the binary and its configuration.

FROM rust:1.95-bookworm AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p gateway \
 && cp target/release/gateway /usr/local/bin/gateway

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin gateway \
 && mkdir -p /etc/gateway \
 && chown gateway:gateway /etc/gateway
COPY --from=builder /usr/local/bin/gateway /usr/local/bin/gateway
COPY --chown=gateway:gateway config/ /etc/gateway/
WORKDIR /etc/gateway
# In a container the proxy listens on every interface; the admin listener
# stays on loopback unless GATEWAY_ADMIN_LISTEN says otherwise.
ENV GATEWAY_SERVER_LISTEN=0.0.0.0:8080 \
    GATEWAY_RULES_PATH=/etc/gateway/rules.toml \
    GATEWAY_SERVER_UPGRADE_SOCK=/tmp/gateway_upgrade.sock \
    GATEWAY_LOG_FORMAT=json
USER 10001:10001
EXPOSE 8080 9901
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/gateway", "health", "-c", "/etc/gateway/gateway.toml"]
ENTRYPOINT ["/usr/local/bin/gateway"]
CMD ["run", "-c", "/etc/gateway/gateway.toml"]
