#!/usr/bin/env bash
# Install what a fresh Debian machine lacks to build Cairn: libclang for
# RocksDB's bindgen. Safe to run repeatedly; does nothing when present.
set -euo pipefail

have_libclang() {
    ldconfig -p 2>/dev/null | grep -q 'libclang[-.0-9]*\.so' && return 0
    compgen -G '/usr/lib/llvm-*/lib/libclang*.so*' >/dev/null
}

if have_libclang; then
    exit 0
fi
echo "setup: libclang not found; installing libclang-dev" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null; then SUDO="sudo"; else
        echo "setup: run as root or install libclang-dev yourself" >&2
        exit 1
    fi
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libclang-dev >/dev/null
