# Detection of the prerequisites scripts/setup.sh installs. Sourced, not run.
#
# Every check looks under $PREREQ_ROOT (empty: the machine itself), so
# tests/scripts/prerequisites_test.sh can point it at fake trees.

# The library directories clang-sys (RocksDB's bindgen) searches on Linux:
# LIBCLANG_PATH, the dynamic loader's cache, and the usual LLVM locations.
libclang_search_dirs() {
    local root="${PREREQ_ROOT:-}" d
    [ -n "${LIBCLANG_PATH:-}" ] && echo "$root$LIBCLANG_PATH"
    if [ -z "$root" ]; then
        ldconfig -p 2>/dev/null | awk -F'=> ' '/libclang/ {print $2}' | xargs -r -n1 dirname
    fi
    for d in "$root"/usr/lib/llvm-*/lib "$root"/usr/lib/x86_64-linux-gnu "$root"/usr/lib64 \
        "$root"/usr/lib "$root"/usr/local/lib "$root"/lib/x86_64-linux-gnu "$root"/lib; do
        [ -d "$d" ] && echo "$d"
    done
}

# True when a directory holds the C library bindgen loads: libclang.so,
# libclang.so.N, libclang-N.so or libclang-N.so.N. Not libclang-cpp.so.N,
# the C++ interface library (package libclang-cpp14), which bindgen skips.
libclang_in_dir() { # DIR
    local f name
    for f in "$1"/libclang*.so*; do
        [ -e "$f" ] || continue
        name="${f##*/}"
        if [[ "$name" =~ ^libclang(-[0-9][0-9.]*)?\.so(\.[0-9][0-9.]*)?$ ]]; then return 0; fi
    done
    return 1
}

# Clang's own headers (stddef.h and friends, package libclang-common-N-dev):
# without them bindgen finds the library but fails on RocksDB's c.h.
have_clang_headers() {
    local root="${PREREQ_ROOT:-}"
    compgen -G "$root/usr/lib/llvm-*/lib/clang/*/include/stddef.h" >/dev/null ||
        compgen -G "$root/usr/lib/clang/*/include/stddef.h" >/dev/null ||
        compgen -G "$root/usr/local/lib/clang/*/include/stddef.h" >/dev/null
}

# libclang as RocksDB's build needs it: what package libclang-dev provides.
have_libclang() {
    local d found=1
    while read -r d; do
        if libclang_in_dir "$d"; then found=0; break; fi
    done < <(libclang_search_dirs | sort -u)
    [ "$found" = 0 ] && have_clang_headers
}
