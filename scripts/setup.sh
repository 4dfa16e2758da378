#!/usr/bin/env bash
# Install what a fresh Debian machine lacks to build and run Cairn's scripts:
# libclang and clang's headers (RocksDB's bindgen) and curl (health checks in
# local-cluster.sh). Safe to run repeatedly; does nothing when everything is
# present. The detection is in scripts/lib/prerequisites.sh and tested by
# tests/scripts/prerequisites_test.sh.
set -euo pipefail
# shellcheck source=lib/prerequisites.sh
. "$(dirname "$0")/lib/prerequisites.sh"

missing=()
have_libclang || missing+=(libclang-dev)
command -v curl >/dev/null || missing+=(curl)
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null; then SUDO="sudo"; else
        echo "setup: run as root or install ${missing[*]} yourself" >&2
        exit 1
    fi
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
if ! have_libclang; then
    echo "setup: libclang-dev is installed but bindgen's libclang or clang's headers are still missing" >&2
    exit 1
fi
