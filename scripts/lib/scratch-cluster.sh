# Sourced by the test scripts that need a cluster of their own:
# `scratch_cluster NAME` makes a scratch directory (exported as WORK),
# starts a 6-node (4+2) local cluster with one gateway in it, exports its
# environment (S3_ENDPOINT, AWS_*, CAIRN_ADMIN_*), and stops and removes
# everything when the script exits. ROOT must name the repository.
scratch_cluster() {
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/cairn-$1.XXXXXX")"
    export WORK
    trap '"$ROOT/scripts/local-cluster.sh" down "$WORK/cluster" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
    "$ROOT/scripts/local-cluster.sh" up "$WORK/cluster" 6 1
    set -a
    . "$WORK/cluster/cluster.env"
    set +a
}
