#!/usr/bin/env bash
# The crates that must not build burn (the deep-learning framework, with its GPU backends
# and large compile): trust, review, publishing, data loading and the leak checks stay lean.
# The packager builds burn (through airlock-infer and airlock-trainer): its fold check and L3
# run the model's own forward pass, batched, for every model family, and L4 and RMIA train.
# For each,
# `cargo tree` of its normal dependencies must name no burn crate. Part of `make lint`.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO="${CARGO:-cargo}"

crates=(airlock-trust airlock-safetensors airlock-schemas airlock-review airlock-publisher airlock-router airlock-http
        airlock-model airlock-leak)
failed=0
# The serving image runs models, so airlock-serve builds burn (through airlock-infer), but
# nothing that trains, packages or talks to AWS.
tree=$("$CARGO" tree --locked -p airlock-serve -e normal --prefix none)
extra=$(grep -E '^(aws-[[:alnum:]_-]+|airlock-(trainer|packager|publisher|leak|review|pipeline)) v[0-9]' <<<"$tree" | sort -u || true)
if [ -n "$extra" ]; then
  echo "lint: airlock-serve must not build training, packaging or AWS code, but its dependencies include:" >&2
  sed 's/^/  /' <<<"$extra" >&2
  failed=1
else
  echo "lean: airlock-serve (inference only, no AWS SDK)"
fi
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
