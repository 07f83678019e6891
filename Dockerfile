# The serving image for SageMaker real-time endpoints: `airlock-serve` (serve/README.md) on
# port 8080 with the model under /opt/ml/model (SageMaker mounts
# models/<name>/<version>/bundle/ there). The trust policy and the public keys it names are
# baked in at build time from one folder (--build-arg TRUST_DIR=path/to/folder, holding
# trust.toml and the keys by paths relative to it): the container refuses to start on any
# bundle that policy does not verify and approve.
#
#   docker build --build-arg TRUST_DIR=trust -t airlock-serve .
#
# SageMaker runs the image as `docker run IMAGE serve`, which replaces CMD: the entry point
# takes `serve` and reads the rest from the environment (SAGEMAKER_BIND_TO_PORT,
# SAGEMAKER_MODEL_SERVER_WORKERS; SM_MODEL_DIR and AIRLOCK_TRUST for local runs).
# serve/tests/sagemaker_start.rs runs the ENTRYPOINT and CMD below as SageMaker does.
#
# Not built in CI (no Docker engine there).

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p airlock-serve --bin airlock-serve

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 airlock
COPY --from=build /src/target/release/airlock-serve /usr/local/bin/airlock-serve
ARG TRUST_DIR=trust
COPY ${TRUST_DIR}/ /etc/airlock/
# Only root may change whose signatures count (the policy and its keys are refused when
# group or others can write them), and no private key belongs in a serving image.
RUN chown -R root:root /etc/airlock && chmod -R go-w /etc/airlock \
    && test -f /etc/airlock/trust.toml \
    && if find /etc/airlock -name '*.key' | grep -q .; then \
         echo "refusing to bake private keys into the image: $(find /etc/airlock -name '*.key')" >&2; exit 1; \
       fi
USER airlock
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/airlock-serve"]
CMD ["serve"]
