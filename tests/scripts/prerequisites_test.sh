#!/usr/bin/env bash
# The prerequisite detection of scripts/setup.sh against fake library trees:
# what bindgen loads is found, what it skips is not. Run by scripts/test.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=../../scripts/lib/prerequisites.sh
. "$ROOT/scripts/lib/prerequisites.sh"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/cairn-prereq.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
unset LIBCLANG_PATH

failed=0
expect() { # present|absent NAME SETUP...
    local want="$1" name="$2"; shift 2
    local tree="$WORK/$name" got
    mkdir -p "$tree"
    for f in "$@"; do mkdir -p "$tree/$(dirname "$f")"; : >"$tree/$f"; done
    if PREREQ_ROOT="$tree" have_libclang; then got=present; else got=absent; fi
    if [ "$got" = "$want" ]; then echo "ok: $name: libclang $got"
    else echo "FAILED: $name: libclang $got, expected $want"; failed=1; fi
}

headers=usr/lib/llvm-14/lib/clang/14.0.6/include/stddef.h
# Debian's libclang-dev: libclang-14.so.1 and the libclang.so links, plus headers.
expect present libclang-dev usr/lib/x86_64-linux-gnu/libclang-14.so.1 \
    usr/lib/llvm-14/lib/libclang.so usr/lib/llvm-14/lib/libclang-14.so.1 "$headers"
expect present unversioned-link-only usr/lib/llvm-16/lib/libclang.so.16 "$headers"
expect absent nothing
# A fresh Debian machine: the C++ interface library only (package libclang-cpp14).
expect absent only-libclang-cpp lib/x86_64-linux-gnu/libclang-cpp.so.14 \
    usr/lib/llvm-14/lib/libclang-cpp.so.14 usr/lib/llvm-14/lib/libclang-cpp.so
# The library without clang's headers (libclang1-14 alone): bindgen cannot parse c.h.
expect absent library-without-headers usr/lib/x86_64-linux-gnu/libclang-14.so.1
# LIBCLANG_PATH is searched too.
LIBCLANG_PATH=/opt/llvm/lib expect present libclang-path opt/llvm/lib/libclang.so "$headers"
exit "$failed"
