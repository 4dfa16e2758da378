#!/usr/bin/env bash
# rclone (Debian package) against a running cluster.
set -euo pipefail
BIG_BYTES="${BIG_BYTES:-1073741824}"
fail() { echo "rclone: FAILED: $*" >&2; exit 1; }
sum() { sha256sum "$1" | cut -d' ' -f1; }
export RCLONE_CONFIG_CAIRN_TYPE=s3 RCLONE_CONFIG_CAIRN_PROVIDER=Other \
    RCLONE_CONFIG_CAIRN_ENDPOINT="$S3_ENDPOINT" RCLONE_CONFIG_CAIRN_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" \
    RCLONE_CONFIG_CAIRN_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" RCLONE_CONFIG_CAIRN_REGION="$AWS_REGION" \
    RCLONE_CONFIG_CAIRN_FORCE_PATH_STYLE=true
rc() { rclone --config /dev/null --low-level-retries 1 --retries 1 "$@"; }
B=rclone-check
rc mkdir "cairn:$B"
d="$WORK/rclone"; mkdir -p "$d/up" "$d/down"
: >"$d/up/empty"
head -c 1 /dev/urandom >"$d/up/one"
head -c $((5 * 1024 * 1024 + 7)) /dev/urandom >"$d/up/five"
head -c $((300 * 1024 * 1024)) /dev/urandom >"$d/up/threehundred"   # multipart (> 200 MiB cutoff)
head -c "$BIG_BYTES" /dev/urandom >"$d/up/big"
rc copy "$d/up" "cairn:$B/files" --header-upload "X-Amz-Meta-Origin: rclone"
rc copy "cairn:$B/files" "$d/down"
for f in empty one five threehundred big; do
    [ "$(sum "$d/up/$f")" = "$(sum "$d/down/$f")" ] || fail "content of $f"
done
rc check "$d/up" "cairn:$B/files" --download >/dev/null 2>&1 || fail "rclone check --download"
rc copyto "cairn:$B/files/five" "cairn:$B/copy/five"
rc cat "cairn:$B/copy/five" >"$d/copy-five"
[ "$(sum "$d/up/five")" = "$(sum "$d/copy-five")" ] || fail "server-side copy"
n="$(rc lsf -R --files-only --s3-list-chunk 100 cairn:listing-2500 | wc -l)"
[ "$n" = 2500 ] || fail "listing 2,500 keys with pagination: $n"
top="$(rc lsf --dirs-only --s3-list-chunk 30 cairn:listing-2500 | tr '\n' ' ')"
[ "$top" = "d0/ d1/ d2/ d3/ d4/ " ] || fail "directories: $top"
n="$(rc lsf --s3-list-chunk 100 cairn:listing-2500/d4 | wc -l)"
[ "$n" = 480 ] || fail "prefix listing: $n"
rc purge "cairn:$B"
rc lsf "cairn:" | grep -q "^$B/$" && fail "purge"
rm -rf "$d"
echo "rclone: all checks passed"
