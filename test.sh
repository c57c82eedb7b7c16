#!/usr/bin/env bash
# luatalloc — set up (Debian packages) and run every test: TallocCore (unit + differential against
# libtalloc), the Lua module, the chapter scripts, the command line against lua5.4, the REPL in a pty.
#   ./test.sh                 # everything
#   ./test.sh --filter Pool   # forwarded to swift test
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh
# the error boundary first (a second): Swift names no Lua API function that can raise (DESIGN §4)
.ci/check-boundary
swift build --build-tests
swift test --skip-build "$@"
