# syntax=docker/dockerfile:1
# nexus-mcp: one static-ish binary on distroless (no shell, no package manager), running as a non-root user.

# ---- build --------------------------------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
WORKDIR /src

# Dependency layer: the manifests and stub sources, so source edits do not rebuild every crate.
COPY Cargo.toml Cargo.lock ./
COPY bench/loadgen/Cargo.toml bench/loadgen/Cargo.toml
RUN mkdir -p src config bench/loadgen/src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs config/default.toml \
    && echo 'fn main() {}' > bench/loadgen/src/main.rs \
    && cargo build --release --locked -p nexus-mcp \
    && rm -rf src config

COPY config config
COPY src src
RUN touch src/main.rs src/lib.rs && cargo build --release --locked -p nexus-mcp

# ---- run ----------------------------------------------------------------------------------------------------------
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /src/target/release/nexus-mcp /usr/local/bin/nexus-mcp

# Configuration is mounted at /etc/nexus-mcp (config.toml, tokens, ssh/, and secrets as files); every default is
# compiled in. The image's listen address is the container's, so bearer tokens are required (server.auth_tokens_file).
ENV NEXUS_CONFIG=/etc/nexus-mcp/config.toml \
    NEXUS_SERVER__LISTEN=0.0.0.0:3000 \
    NEXUS_LOG__FORMAT=json
# distroless "nonroot" is uid/gid 65532.
USER 65532:65532
EXPOSE 3000

# Liveness only: a MongoDB or bastion outage must not make Docker kill a process that is healing itself.
# Readiness (/ready) is for load balancers and `depends_on` of clients.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/nexus-mcp", "health", "--url", "http://127.0.0.1:3000/health"]

ENTRYPOINT ["/usr/local/bin/nexus-mcp"]
CMD ["serve"]
