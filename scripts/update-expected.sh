#!/usr/bin/env bash
# Regenerates scripts/expected/*.txt from the current luatalloc (read the diff before committing it).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --product luatalloc >&2
for f in scripts/[0-9]*.lua; do
  name=$(basename "$f" .lua)
  .build/debug/luatalloc "$f" > "scripts/expected/$name.txt"
done
