#!/usr/bin/env bash
# Create (or update) the Flower venv that `airlock federate` runs SuperLink, SuperNodes and
# `flwr run` from: flwr pinned to the version airlock's Flower app is written for
# (federation/flower/pyproject.toml). Idempotent and quick when nothing changed. Prints the
# venv's bin folder (what `airlock federate --flower-bin` and $AIRLOCK_FLOWER_BIN take).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${AIRLOCK_FLOWER_VENV:-$HOME/.cache/airlock/flwr-venv}"
version="$(sed -n 's/^dependencies = \["flwr==\(.*\)"\]/\1/p' "$here/../federation/flower/pyproject.toml")"
[[ -n "$version" ]] || { echo "cannot read the pinned flwr version" >&2; exit 1; }
stamp="$venv/.flwr-version"
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv" >&2
fi
if [[ "$(cat "$stamp" 2>/dev/null)" != "$version" ]]; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check "flwr==$version" >&2
  echo "$version" > "$stamp"
fi
echo "$venv/bin"
