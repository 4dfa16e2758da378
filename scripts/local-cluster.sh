#!/usr/bin/env bash
# A real multi-process Cairn cluster on loopback.
#
#   scripts/local-cluster.sh up DIR [NODES=6] [GATEWAYS=1]
#   scripts/local-cluster.sh kill-node DIR I        # SIGKILL node I (from 1)
#   scripts/local-cluster.sh start-node DIR I       # restart it on its data; returns once it serves
#   scripts/local-cluster.sh kill-gateway DIR I
#   scripts/local-cluster.sh start-gateway DIR I    # returns once it is ready (serves S3)
#   scripts/local-cluster.sh status DIR
#   scripts/local-cluster.sh down DIR               # stop everything it started
#
# `up` returns once every gateway is ready (has the layout and reaches a
# majority of the nodes: /_cairn/health/ready). It writes DIR/cluster.env
# (S3_ENDPOINT, S3_ENDPOINTS, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
# AWS_REGION, CAIRN_ADMIN_ENDPOINT, CAIRN_ADMIN_TOKEN).
# Binaries come from CAIRN_BIN_DIR, or are built (dev profile) first.
# CAIRN_GATEWAY_FLAGS adds flags to every gateway (e.g. --chunk-size-bytes 8388608),
# CAIRN_NODE_FLAGS to every node (e.g. --read-barrier read-index), and
# CAIRN_APPLY_FLAGS to the first `cairn layout apply` (e.g. --metadata-groups 64).
# CAIRN_DOWN_OUT_AFTER (seconds) is every node's --down-out-after; the value
# given to `up` is kept in DIR and used by later start-node and add-node.
#
#   add-node DIR [ZONE]   start one more node (not in the layout yet); its id
#                         is the last line printed: `cairn layout assign ID
#                         --zone ZONE` and `cairn layout apply` add it
#   remove-node DIR I     drain node I through the layout (remove + apply),
#                         wait until the migration away from it is complete
#                         and it is no longer in the layout, then stop it
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
START_TIMEOUT_S=60
# Longest wait for a drained node to leave the layout.
REMOVE_TIMEOUT_S=${REMOVE_TIMEOUT_S:-1800}

die() { echo "local-cluster: $*" >&2; exit 1; }

bin_dir() {
    if [ -n "${CAIRN_BIN_DIR:-}" ]; then echo "$CAIRN_BIN_DIR"; return; fi
    local target="${CARGO_TARGET_DIR:-$ROOT/target}"
    (cd "$ROOT" && "$ROOT/scripts/setup.sh" && cargo build --locked --quiet --bins) >&2
    echo "$target/debug"
}

random_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

wait_http() { # URL
    local deadline=$((SECONDS + START_TIMEOUT_S))
    until curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || die "$1 did not come up within ${START_TIMEOUT_S}s"
        sleep 0.1
    done
}

wait_file() { # PATH
    local deadline=$((SECONDS + START_TIMEOUT_S))
    until [ -s "$1" ]; do
        [ $SECONDS -lt $deadline ] || die "$1 did not appear within ${START_TIMEOUT_S}s"
        sleep 0.05
    done
}

start_node() { # DIR I
    local dir="$1" i="$2" bin
    bin="$(cat "$dir/bin-dir")"
    mkdir -p "$dir/node$i"
    local down_out="${CAIRN_DOWN_OUT_AFTER:-}" join=""
    if compgen -G "$dir/node*/addr" >/dev/null; then join="$(node_addrs "$dir")"; fi
    [ -z "$down_out" ] && [ -e "$dir/down-out-after" ] && down_out="$(cat "$dir/down-out-after")"
    # shellcheck disable=SC2086
    nohup "$bin/cairn-node" --data "$dir/node$i" --listen 127.0.0.1:0 \
        --cluster-secret-file "$dir/cluster-secret" ${down_out:+--down-out-after "$down_out"} \
        ${join:+--join "$join"} \
        ${CAIRN_NODE_FLAGS:-} >>"$dir/node$i.log" 2>&1 &
    echo $! >"$dir/node$i.pid"
    wait_file "$dir/node$i/addr"
    wait_http "http://$(cat "$dir/node$i/addr")/health"
}

node_id() { # DIR I -> the node's id, from its first log line
    grep -o 'cairn-node [0-9a-f]\{16\}' "$1/node$2.log" | tail -1 | cut -d' ' -f2
}

node_addrs() { # DIR -> comma-separated
    local dir="$1" out="" f
    for f in "$dir"/node*/addr; do out="${out:+$out,}$(cat "$f")"; done
    echo "$out"
}

start_gateway() { # DIR I
    local dir="$1" i="$2" bin listen
    bin="$(cat "$dir/bin-dir")"
    listen="127.0.0.1:0"
    [ -s "$dir/gateway$i.addr" ] && listen="$(cat "$dir/gateway$i.addr")"
    rm -f "$dir/gateway$i.addr.new"
    CAIRN_ROOT_ACCESS_KEY="$(cut -d' ' -f1 "$dir/root-credentials")" \
    CAIRN_ROOT_SECRET_KEY="$(cut -d' ' -f2 "$dir/root-credentials")" \
    nohup "$bin/cairn-gateway" --listen "$listen" --nodes "$(node_addrs "$dir")" \
        --cluster-secret-file "$dir/cluster-secret" --admin-token-file "$dir/admin-token" \
        --addr-file "$dir/gateway$i.addr.new" ${CAIRN_GATEWAY_FLAGS:-} >>"$dir/gateway$i.log" 2>&1 &
    echo $! >"$dir/gateway$i.pid"
    wait_file "$dir/gateway$i.addr.new"
    mv "$dir/gateway$i.addr.new" "$dir/gateway$i.addr"
    # Before the first layout there is nothing to be ready for: live is all.
    if [ -e "$dir/cluster.env" ]; then
        wait_http "http://$(cat "$dir/gateway$i.addr")/_cairn/health/ready"
    else
        wait_http "http://$(cat "$dir/gateway$i.addr")/_cairn/health/live"
    fi
}

kill_pid_file() { # FILE SIGNAL
    [ -f "$1" ] || return 0
    local pid
    pid="$(cat "$1")"
    kill "-$2" "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$1"
}

cli() { # DIR ARGS...
    local dir="$1"; shift
    # shellcheck disable=SC1091
    (set -a; . "$dir/cluster.env"; "$(cat "$dir/bin-dir")/cairn" "$@")
}

wait_healthy() { # DIR
    local dir="$1" deadline=$((SECONDS + START_TIMEOUT_S)) s
    while true; do
        s="$(cli "$dir" status --json 2>/dev/null || true)"
        if [ -n "$s" ] && ! grep -q '"up": false' <<<"$s" && grep -q '"version"' <<<"$s"; then return 0; fi
        [ $SECONDS -lt $deadline ] || die "cluster not healthy after ${START_TIMEOUT_S}s"
        sleep 0.2
    done
}

write_env() { # DIR GATEWAYS
    local dir="$1" n="$2" endpoints="" i
    for i in $(seq 1 "$n"); do endpoints="${endpoints:+$endpoints,}http://$(cat "$dir/gateway$i.addr")"; done
    cat >"$dir/cluster.env" <<ENV
S3_ENDPOINT=http://$(cat "$dir/gateway1.addr")
S3_ENDPOINTS=$endpoints
AWS_ACCESS_KEY_ID=$(cut -d' ' -f1 "$dir/root-credentials")
AWS_SECRET_ACCESS_KEY=$(cut -d' ' -f2 "$dir/root-credentials")
AWS_REGION=us-east-1
CAIRN_ADMIN_ENDPOINT=http://$(cat "$dir/gateway1.addr")
CAIRN_ADMIN_TOKEN=$(cat "$dir/admin-token")
ENV
}

cmd="${1:-}"; dir="${2:-}"
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: $0 up|add-node|remove-node|kill-node|start-node|kill-gateway|start-gateway|status|down DIR [...]"
case "$cmd" in
up)
    nodes="${3:-6}"; gateways="${4:-1}"
    mkdir -p "$dir"; dir="$(cd "$dir" && pwd)"
    [ -e "$dir/cluster.env" ] && die "$dir already holds a cluster (down it, or use start-node/start-gateway)"
    bin_dir >"$dir/bin-dir"
    random_hex 32 >"$dir/cluster-secret"; random_hex 24 >"$dir/admin-token"
    echo "GK$(random_hex 9 | tr a-f A-F) $(random_hex 24)" >"$dir/root-credentials"
    chmod 600 "$dir/cluster-secret" "$dir/admin-token" "$dir/root-credentials"
    if [ -n "${CAIRN_DOWN_OUT_AFTER:-}" ]; then echo "$CAIRN_DOWN_OUT_AFTER" >"$dir/down-out-after"; fi
    for i in $(seq 1 "$nodes"); do start_node "$dir" "$i"; done
    for i in $(seq 1 "$gateways"); do start_gateway "$dir" "$i"; done
    write_env "$dir" "$gateways"
    i=0
    for id in $(cli "$dir" layout show --json | grep -o '"id": "[0-9a-f]\{16\}"' | grep -o '[0-9a-f]\{16\}' | sort -u); do
        i=$((i + 1))
        cli "$dir" layout assign "$id" --zone "zone$i" --capacity 1 >/dev/null
    done
    # shellcheck disable=SC2086
    cli "$dir" layout apply ${CAIRN_APPLY_FLAGS:-}
    wait_healthy "$dir"
    # Every gateway serves S3 requests before `up` returns.
    for i in $(seq 1 "$gateways"); do wait_http "http://$(cat "$dir/gateway$i.addr")/_cairn/health/ready"; done
    echo "cluster up: $(grep S3_ENDPOINT= "$dir/cluster.env"); environment in $dir/cluster.env"
    ;;
add-node)
    i=1
    while [ -e "$dir/node$i" ]; do i=$((i + 1)); done
    start_node "$dir" "$i"
    [ -n "${3:-}" ] && echo "$3" >"$dir/node$i.zone"
    id="$(node_id "$dir" "$i")"
    echo "node $i started (not in the layout yet): cairn layout assign $id --zone ${3:-ZONE}; cairn layout apply" >&2
    echo "$id"
    ;;
remove-node)
    i="${3:?node number}"
    id="$(node_id "$dir" "$i")"
    cli "$dir" layout remove "$id" >/dev/null
    cli "$dir" layout apply
    deadline=$((SECONDS + REMOVE_TIMEOUT_S))
    while cli "$dir" node list --json | grep -q "\"$id\""; do
        [ $SECONDS -lt $deadline ] || die "node $i ($id) still in the layout after ${REMOVE_TIMEOUT_S}s"
        sleep 1
    done
    kill_pid_file "$dir/node$i.pid" TERM
    echo "node $i ($id) drained and stopped"
    ;;
kill-node) kill_pid_file "$dir/node${3:?node number}.pid" KILL ;;
start-node) start_node "$dir" "${3:?node number}" ;;
kill-gateway) kill_pid_file "$dir/gateway${3:?gateway number}.pid" KILL ;;
start-gateway) start_gateway "$dir" "${3:?gateway number}" ;;
status) cli "$dir" status ;;
down)
    for f in "$dir"/gateway*.pid "$dir"/node*.pid; do [ -e "$f" ] && kill_pid_file "$f" TERM; done
    rm -f "$dir/cluster.env"
    echo "cluster in $dir stopped (data kept)"
    ;;
*) die "unknown command $cmd" ;;
esac
