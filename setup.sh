#!/usr/bin/env bash
# luatalloc — installs what building, running and testing need (Debian 12), once. Idempotent.
# Called by run.sh and test.sh; safe to run by hand.
set -euo pipefail
PACKAGES=(pkg-config liblua5.4-dev lua5.4 libtalloc-dev libedit-dev valgrind graphviz tmux time luarocks dpkg-dev man-db)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
