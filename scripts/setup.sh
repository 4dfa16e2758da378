#!/usr/bin/env bash
# Install what a fresh Debian machine lacks to build and run Cairn's scripts:
# libclang (RocksDB's bindgen) and curl (health checks in local-cluster.sh).
# Safe to run repeatedly; does nothing when everything is present.
set -euo pipefail

have_libclang() {
    ldconfig -p 2>/dev/null | grep -q 'libclang[-.0-9]*\.so' && return 0
    compgen -G '/usr/lib/llvm-*/lib/libclang*.so*' >/dev/null
}

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
