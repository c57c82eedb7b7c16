#!/usr/bin/env bash
# luatalloc — set up (Debian packages), build in release mode, and run luatalloc with the given arguments:
#   ./run.sh scripts/01-pool-example.lua
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh
swift build -c release --product luatalloc >&2
exec .build/release/luatalloc "$@"
