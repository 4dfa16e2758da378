#!/usr/bin/env bash
# Real S3 clients against a real 6-node (4+2) local cluster: boto3 and the
# AWS CLI from PyPI (current default settings), rclone and s3cmd from
# Debian. Installs what is missing, starts the cluster, runs every check,
# stops the cluster. BIG_BYTES (default 1 GiB) sizes the largest object.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$ROOT/tests/clients"
CACHE="${CAIRN_CACHE_DIR:-$HOME/.cache/cairn}"
VENV="$CACHE/venv"

"$ROOT/scripts/setup.sh"
packages=()
command -v rclone >/dev/null || packages+=(rclone)
command -v s3cmd >/dev/null || packages+=(s3cmd)
python3 -c 'import venv, ensurepip' 2>/dev/null || packages+=(python3 python3-venv python3-pip)
if [ ${#packages[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${packages[@]}" >/dev/null
fi
if [ ! -x "$VENV/bin/aws" ] || ! "$VENV/bin/python" -c 'import boto3' 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet awscli boto3
fi
export PATH="$VENV/bin:$PATH"
# The cluster speaks plain HTTP on loopback; a CA bundle set for the
# machine's outbound TLS only confuses clients (rclone refuses to start).
unset AWS_CA_BUNDLE

. "$ROOT/scripts/lib/scratch-cluster.sh"
scratch_cluster clients
echo "clients: aws $(aws --version 2>&1 | cut -d' ' -f1), boto3 $(python -c 'import boto3; print(boto3.__version__)'), $(rclone version | head -1), s3cmd $(s3cmd --version | cut -d' ' -f3)"

passed=0; failed=0
run() {
    local name="$1"; shift
    if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "clients: $name failed" >&2; fi
}
run boto3 python "$HERE/boto3_check.py"     # first: creates the shared 2,500-key bucket
run awscli bash "$HERE/awscli_check.sh"
run rclone bash "$HERE/rclone_check.sh"
run s3cmd bash "$HERE/s3cmd_check.sh"
echo "clients: $passed passed, $failed failed"
[ "$failed" = 0 ]
