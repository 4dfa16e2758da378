#!/usr/bin/env bash
# An external S3 conformance suite against a real 6-node (4+2) local
# cluster, from outside: s3s-e2e, the end-to-end suite of the s3s project
# (crates.io, pinned below, installed once into the cache with its own
# lock file), which drives the gateway with aws-sdk-s3 as a client would.
# Every case runs but STS AssumeRole (Cairn has no STS endpoint).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CACHE="${CAIRN_CACHE_DIR:-$HOME/.cache/cairn}"
SUITE_VERSION="0.14.1"
SUITE="$CACHE/s3s-e2e-$SUITE_VERSION/bin/s3s-e2e"

"$ROOT/scripts/setup.sh"
if [ ! -x "$SUITE" ]; then
    echo "conformance: installing s3s-e2e $SUITE_VERSION (once)"
    cargo install --quiet --locked --target-dir "$CACHE/s3s-e2e-build" \
        --root "$CACHE/s3s-e2e-$SUITE_VERSION" --version "$SUITE_VERSION" s3s-e2e
    rm -rf "$CACHE/s3s-e2e-build"
fi

. "$ROOT/scripts/lib/scratch-cluster.sh"
scratch_cluster conformance
# The SDK finds the endpoint and credentials in the environment.
export AWS_ENDPOINT_URL="$S3_ENDPOINT"
unset AWS_CA_BUNDLE
"$SUITE" --filter '^Basic/' --filter '^Advanced/(Multipart|Tagging|ListPagination|PresignedUrl)/'
