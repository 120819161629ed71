# tagguard's MCP server in a small, non-root image.
#
#   docker build -t tagguard .
#   docker run --rm -p 127.0.0.1:8080:8080 -e TAGGUARD_AUTH_TOKEN=change-me tagguard
#
# The container listens on 0.0.0.0:8080, which tagguard refuses without a bearer token:
# set TAGGUARD_AUTH_TOKEN. The default source is the synthetic demo estate; set
# TAGGUARD_SOURCE=aws and pass AWS credentials (environment, or a read-only ~/.aws mount) to
# scan a real account. See docker-compose.yml.

# --- build -------------------------------------------------------------------------------
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Manifests first, so that a change to the sources does not refetch every crate.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs benches/validation.rs benches/pipeline.rs \
    && cargo fetch --locked
COPY src src
COPY benches benches
COPY policies policies
COPY config config
# The dummy sources above are older than the real ones; touch so cargo rebuilds the crate.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin tagguard \
    && strip target/release/tagguard \
    && mkdir -p /out/data

# --- run ---------------------------------------------------------------------------------
# distroless/cc: glibc, libgcc and CA certificates (for TLS to AWS), no shell, user 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/tagguard /usr/local/bin/tagguard
# History, audit log and cache (tagguard.redb). Owned by the runtime user, so that a named
# volume mounted here starts writable; mount a volume to keep them across containers.
COPY --from=build --chown=65532:65532 /out/data /data
USER nonroot
ENV TAGGUARD_HTTP_ADDR=0.0.0.0:8080 \
    TAGGUARD_SOURCE=demo \
    TAGGUARD_DATA_DIR=/data \
    TAGGUARD_HEALTH_ADDR=127.0.0.1:8080
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/tagguard", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/tagguard"]
CMD ["serve"]
