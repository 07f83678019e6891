#!/usr/bin/env bash
# Installs the OCI registry and client the OCI tests and benchmark use: Debian's
# docker-registry (the CNCF distribution server, 2.8: no OCI 1.1 referrers API, so airlock's
# fallback tag scheme is what it exercises) and skopeo (the interoperability checks and the
# `skopeo copy` baseline of benches/oci.rs). Idempotent: installs only what is missing.
# Prints two lines, `AIRLOCK_DOCKER_REGISTRY=<path>` and `AIRLOCK_SKOPEO=<path>`, which the
# tests and the bench read from the environment (absent, they look the programs up on PATH).
set -euo pipefail

registry="${AIRLOCK_DOCKER_REGISTRY:-$(command -v docker-registry || echo /usr/bin/docker-registry)}"
skopeo="${AIRLOCK_SKOPEO:-$(command -v skopeo || echo /usr/bin/skopeo)}"

missing=()
[ -x "$registry" ] || missing+=(docker-registry)
[ -x "$skopeo" ] || missing+=(skopeo)

if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup-oci: ${missing[*]} missing and installing needs root (apt-get install ${missing[*]})" >&2
        exit 1
    fi
    echo "setup-oci: installing ${missing[*]} from the Debian archive..." >&2
    apt-get update -qq
    # The package's own registry service is not started: tests run their own on loopback.
    RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    registry=/usr/bin/docker-registry
    skopeo=/usr/bin/skopeo
fi

"$registry" --version >&2
"$skopeo" --version >&2
echo "AIRLOCK_DOCKER_REGISTRY=$registry"
echo "AIRLOCK_SKOPEO=$skopeo"
