# The serving image for SageMaker real-time endpoints: `airlock serve` on port 8080 with the
# model under /opt/ml/model (SageMaker mounts models/<name>/<version>/bundle/ there). The
# trust policy is baked in at build time (--build-arg TRUST=path/to/trust.toml): the
# container refuses to start on any bundle that policy does not verify and approve.
#
#   docker build --build-arg TRUST=trust.toml -t airlock-serve .
#
# Not built in CI (no Docker engine there).

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin airlock

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 airlock
COPY --from=build /src/target/release/airlock /usr/local/bin/airlock
ARG TRUST=trust.toml
COPY ${TRUST} /etc/airlock/trust.toml
USER airlock
EXPOSE 8080
# SageMaker runs the image as `docker run IMAGE serve`.
ENTRYPOINT ["/usr/local/bin/airlock"]
CMD ["serve", "--model-dir", "/opt/ml/model", "--trust", "/etc/airlock/trust.toml", "--port", "8080"]
