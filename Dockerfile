# The chat gateway's image: `gateway`, `worker` and `mock-llm` on a slim Debian base,
# running as UID 65532 with nothing written to the root filesystem.
#
#   docker build -t chat-gateway .                        # from source (the default target)
#   docker build --target prebuilt -t chat-gateway .      # binaries already in target/release
#   docker build --target prebuilt --build-arg PROFILE_DIR=debug -t chat-gateway .
#
# `prebuilt` comes before the Rust builder stage on purpose: Docker's classic builder
# builds every stage above the target, so an air-gapped build of `prebuilt` must not
# need the `rust` image. Both targets share the `base` stage, so they differ only in
# where the three binaries come from.

ARG BASE_IMAGE=debian:bookworm-slim
ARG RUST_IMAGE=rust:1.95-slim-bookworm

FROM ${BASE_IMAGE} AS base
# rustls reads the system's roots (rustls-native-certs) to reach an LLM over https.
# debian:bookworm-slim lacks them; a base that already has them is left untouched,
# which keeps the air-gapped build offline.
RUN if [ ! -s /etc/ssl/certs/ca-certificates.crt ]; then \
      apt-get update \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
      && rm -rf /var/lib/apt/lists/*; \
    fi
# The agent file and other read-only config are mounted here (see the Helm chart).
RUN mkdir -p /etc/chat-gateway
ENV CHAT_SERVICE_HOST=0.0.0.0 \
    CHAT_SERVICE_PORT=8002 \
    WORKER_HTTP_HOST=0.0.0.0 \
    WORKER_HTTP_PORT=8003 \
    MOCK_LLM_HOST=0.0.0.0 \
    LOG_FORMAT=json
# Numeric, so no passwd entry is needed and Kubernetes' runAsNonRoot can check it.
USER 65532:65532
WORKDIR /tmp
EXPOSE 8002 8003 8090
# Every binary drains on SIGTERM (sockets closed with 1012, in-flight answers finished).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/gateway"]

# Binaries built outside Docker: `cargo build --release` (PROFILE_DIR=release) or the
# debug build scripts/test.sh already makes (PROFILE_DIR=debug, what CI's deploy test uses).
FROM base AS prebuilt
ARG PROFILE_DIR=release
COPY target/${PROFILE_DIR}/gateway target/${PROFILE_DIR}/worker target/${PROFILE_DIR}/mock-llm /usr/local/bin/

# The source build.
FROM ${RUST_IMAGE} AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY shared shared
COPY gateway gateway
COPY worker worker
COPY loadtest loadtest
RUN cargo build --release --locked --bin gateway --bin worker --bin mock-llm \
    && mkdir -p /out \
    && cp target/release/gateway target/release/worker target/release/mock-llm /out/

# Default target: the runtime image built from source.
FROM base AS runtime
COPY --from=builder /out/ /usr/local/bin/
