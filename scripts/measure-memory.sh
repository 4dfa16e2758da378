#!/usr/bin/env bash
# Peak resident memory of the gateway while a 1 GiB object is uploaded and
# downloaded again (content verified) on a 6-node local cluster: once with
# one PUT, once by multipart with 10 parts of 8 MiB in flight (the AWS CLI's
# defaults). Prints the peaks (VmHWM) and fails above the limit.
#   scripts/measure-memory.sh [BYTES=1073741824] [LIMIT_MIB=256]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BYTES="${1:-1073741824}"
LIMIT_MIB="${2:-256}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
if [ -z "${CAIRN_BIN_DIR:-}" ]; then
    (cd "$ROOT" && cargo build --locked --quiet --bins)
    export CAIRN_BIN_DIR="$CARGO_TARGET_DIR/debug"
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/cairn-memory.XXXXXX")"
trap '"$ROOT/scripts/local-cluster.sh" down "$WORK/cluster" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
"$ROOT/scripts/local-cluster.sh" up "$WORK/cluster" 6 1 >/dev/null
set -a; . "$WORK/cluster/cluster.env"; set +a
pid="$(cat "$WORK/cluster/gateway1.pid")"
before_kib="$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")"
"$CAIRN_BIN_DIR/cairn-load" --single-object-bytes "$BYTES" --work-dir "$WORK"
single_kib="$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")"
"$CAIRN_BIN_DIR/cairn-load" --single-object-bytes "$BYTES" --work-dir "$WORK" \
    --part-bytes 8388608 --part-concurrency 10
peak_kib="$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")"
echo "gateway resident memory: $((before_kib / 1024)) MiB idle;" \
    "peak $((single_kib / 1024)) MiB during a $((BYTES / 1048576)) MiB single PUT + GET;" \
    "peak $((peak_kib / 1024)) MiB after the multipart upload (10 x 8 MiB parts in flight) + GET" \
    "(limit ${LIMIT_MIB} MiB)"
[ "$peak_kib" -le $((LIMIT_MIB * 1024)) ]
