#!/usr/bin/env bash
# Installs nginx (Debian's nginx-light) for the router benchmark, which compares
# `airlock route` with nginx doing plain forwarding to the same upstream
# (benches/route.rs). Idempotent: does nothing when nginx is there. Prints its path.
set -euo pipefail

nginx="${AIRLOCK_NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"

if [ ! -x "$nginx" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup-nginx: nginx is missing and installing it needs root (apt-get install nginx-light)" >&2
        exit 1
    fi
    echo "setup-nginx: installing nginx-light from the Debian archive..." >&2
    apt-get update -qq
    # The package's own service is not started: the bench runs its own nginx on loopback.
    RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light >&2
    nginx=/usr/sbin/nginx
fi

"$nginx" -v >&2
echo "$nginx"
