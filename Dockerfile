# syntax=docker/dockerfile:1
#
# The portier container image: the `portier` binary alone on a distroless runtime.
#
#   docker build -t portier --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" .
#
# Runtime: glibc + distroless/cc, not a static musl binary. portier's TLS is rustls with the
# ring provider (no OpenSSL), so the binary needs only libc and libgcc_s, which
# distroless/cc ships (with CA certificates and tzdata) and nothing else: no shell, no
# package manager. A static musl build would allow distroless/static, but musl's allocator
# is markedly slower under the multi-threaded tokio runtime, and the request path is a
# latency budget (p99 <= 1 ms). The builder and the runtime are the same Debian release, so
# the binary never needs a newer glibc than the runtime has.
#
# Stages: chef (cargo-chef) -> planner (dependency recipe) -> builder (dependencies in
# their own cached layer, then the crate) -> runtime.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=trixie

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS chef
ARG CARGO_CHEF_VERSION=0.1.76
WORKDIR /src
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"

# The recipe is the dependency skeleton (manifests, lock file): it changes only when they do.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# Dependencies only: this layer is reused until Cargo.toml or Cargo.lock change.
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --bin portier \
    && install -D -m 0755 target/release/portier /out/portier

# distroless/cc for Debian 13 (trixie), the same release as the builder. :nonroot is
# user 65532; pin it by digest in release builds.
FROM gcr.io/distroless/cc-debian13:nonroot AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="portier" \
      org.opencontainers.image.description="Fast validating and mutating Kubernetes admission webhook with hot-reloaded policies" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/portier-dev/portier" \
      org.opencontainers.image.documentation="https://github.com/portier-dev/portier#install-in-a-cluster" \
      org.opencontainers.image.vendor="portier"
COPY --from=builder --chown=0:0 /out/portier /portier
# Non-root, numeric (so the kubelet can check runAsNonRoot). The chart sets the same ids.
USER 65532:65532
# Logs as JSON, one object a line, for log collectors (--log-format overrides it).
ENV PORTIER_LOG_FORMAT=json
# 8443: the webhook, HTTPS (/validate, /mutate). 9090: operations, plain HTTP (/metrics,
# /healthz, /readyz). The chart's ports.webhook and ports.metrics.
EXPOSE 8443 9090
ENTRYPOINT ["/portier"]
CMD ["--help"]
