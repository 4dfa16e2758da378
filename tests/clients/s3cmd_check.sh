#!/usr/bin/env bash
# s3cmd (Debian package) against a running cluster.
set -euo pipefail
BIG_BYTES="${BIG_BYTES:-1073741824}"
fail() { echo "s3cmd: FAILED: $*" >&2; exit 1; }
sum() { sha256sum "$1" | cut -d' ' -f1; }
hostport="${S3_ENDPOINT#http://}"
cfg="$WORK/s3cmd.cfg"
cat >"$cfg" <<CFG
[default]
access_key = $AWS_ACCESS_KEY_ID
secret_key = $AWS_SECRET_ACCESS_KEY
host_base = $hostport
host_bucket = $hostport
use_https = False
signature_v2 = False
bucket_location = $AWS_REGION
CFG
s3c() { s3cmd -c "$cfg" --no-progress "$@"; }
B=s3cmd-check
s3c mb "s3://$B" >/dev/null
d="$WORK/s3cmd"; mkdir -p "$d/up" "$d/down"
: >"$d/up/empty"
head -c 1 /dev/urandom >"$d/up/one"
head -c $((5 * 1024 * 1024 + 7)) /dev/urandom >"$d/up/five"
head -c $((40 * 1024 * 1024)) /dev/urandom >"$d/up/forty"   # multipart (> 15 MiB chunks)
head -c "$BIG_BYTES" /dev/urandom >"$d/up/big"
for f in empty one five forty big; do
    s3c put --add-header "x-amz-meta-origin:s3cmd" "$d/up/$f" "s3://$B/files/$f" >/dev/null
    s3c get "s3://$B/files/$f" "$d/down/$f" >/dev/null
    [ "$(sum "$d/up/$f")" = "$(sum "$d/down/$f")" ] || fail "content of $f"
done
info="$(s3c info "s3://$B/files/forty")"
grep -qi "origin" <<<"$info" || fail "metadata: $info"
s3c cp "s3://$B/files/five" "s3://$B/copy/five" >/dev/null
s3c get "s3://$B/copy/five" "$d/copy-five" >/dev/null
[ "$(sum "$d/up/five")" = "$(sum "$d/copy-five")" ] || fail "copy content"
n="$(s3c ls -r s3://listing-2500 | wc -l)"
[ "$n" = 2500 ] || fail "listing 2,500 keys: $n"
dirs="$(s3c ls s3://listing-2500/ | grep -c DIR)"
[ "$dirs" = 5 ] || fail "common prefixes: $dirs"
s3c del --recursive --force "s3://$B" >/dev/null
s3c rb "s3://$B" >/dev/null
rm -rf "$d"
echo "s3cmd: all checks passed"
