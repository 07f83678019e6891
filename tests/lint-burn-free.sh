#!/usr/bin/env bash
# The crates that must not build burn (the deep-learning framework, with its GPU backends
# and large compile): trust, packaging, review, publishing and serving stay lean. For each,
# `cargo tree` of its normal dependencies must name no burn crate. Part of `make lint`.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO="${CARGO:-cargo}"

crates=(airlock-trust airlock-safetensors airlock-schemas airlock-review airlock-publisher
        airlock-model airlock-leak airlock-packager)
# The serve crate, once the workspace has one.
if "$CARGO" metadata --locked --no-deps --format-version 1 | grep -q '#airlock-serve@'; then
  crates+=(airlock-serve)
fi

failed=0
for crate in "${crates[@]}"; do
  tree=$("$CARGO" tree --locked -p "$crate" -e normal --prefix none)
  burn=$(grep -E '^burn(-[[:alnum:]_-]+)? v[0-9]' <<<"$tree" | sort -u || true)
  if [ -n "$burn" ]; then
    echo "lint: $crate must not depend on burn, but its dependencies include:" >&2
    sed 's/^/  /' <<<"$burn" >&2
    echo "  (see: $CARGO tree -p $crate -e normal -i burn)" >&2
    failed=1
  else
    echo "burn-free: $crate"
  fi
done
exit "$failed"
