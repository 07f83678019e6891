#!/usr/bin/env bash
# Every relative link in the repository's Markdown resolves to a file inside the repository,
# and no link points outside it (a user's clone holds nothing else).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
status=0
while IFS= read -r md; do
  dir=$(dirname "$md")
  # [text](target) links, without the anchor; skip absolute URLs and pure anchors.
  while IFS= read -r target; do
    [ -z "$target" ] && continue
    case "$target" in http://*|https://*|mailto:*|\#*) continue ;; esac
    path=${target%%#*}
    resolved=$(realpath -m "$dir/$path")
    case "$resolved" in
      "$root"/*) ;;
      *) echo "$md: link leaves the repository: $target" >&2; status=1; continue ;;
    esac
    if [ ! -e "$resolved" ]; then
      echo "$md: broken link: $target" >&2; status=1
    fi
  done < <(grep -o '\](\([^)]*\))' "$md" | sed 's/^](//; s/)$//')
done < <(git ls-files '*.md' ':!:fuzz/seeds/**')
exit $status
