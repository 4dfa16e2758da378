#!/usr/bin/env bash
# Start an all-in-one Cairn cluster: 6 embedded storage nodes (4+2) and the
# S3 endpoint on 127.0.0.1:9000, data under DATA_DIR (default ./data).
#   scripts/dev.sh [DATA_DIR] [extra cairn-gateway flags, e.g. --listen 127.0.0.1:9100]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
DATA_DIR="data"
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then
    DATA_DIR="$1"
    shift
fi
cargo build --release --locked --bin cairn-gateway --bin cairn
exec "${CARGO_TARGET_DIR:-target}/release/cairn-gateway" --dev --data "$DATA_DIR" "$@"
