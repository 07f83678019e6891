#!/usr/bin/env bash
# Create (or update) the test venv with tests/requirements.txt (and, without their
# dependencies, tests/requirements-nodeps.txt). Idempotent and quick when
# nothing changed. Prints the venv's python path.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${AIRLOCK_TEST_VENV:-$HOME/.cache/airlock/py-venv}"
stamp="$venv/.requirements.sha256"
want="$(cat "$here/requirements.txt" "$here/requirements-nodeps.txt" | sha256sum | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv" >&2
fi
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps \
    -r "$here/requirements-nodeps.txt" >&2
  echo "$want" > "$stamp"
fi
echo "$venv/bin/python"
