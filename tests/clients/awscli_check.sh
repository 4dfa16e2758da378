#!/usr/bin/env bash
# The AWS CLI (from PyPI, default settings) against a running cluster.
# Needs S3_ENDPOINT, AWS_* and WORK; BIG_BYTES sizes the big object.
set -euo pipefail
BIG_BYTES="${BIG_BYTES:-1073741824}"
aws() { command aws --endpoint-url "$S3_ENDPOINT" "$@"; }
fail() { echo "awscli: FAILED: $*" >&2; exit 1; }
sum() { sha256sum "$1" | cut -d' ' -f1; }
B=awscli-check
aws s3 mb "s3://$B" >/dev/null
d="$WORK/awscli"; mkdir -p "$d/up" "$d/down"
: >"$d/up/empty"
head -c 1 /dev/urandom >"$d/up/one"
head -c $((5 * 1024 * 1024 + 7)) /dev/urandom >"$d/up/five"
head -c $((20 * 1024 * 1024)) /dev/urandom >"$d/up/twenty"     # multipart (> 8 MiB)
head -c "$BIG_BYTES" /dev/urandom >"$d/up/big"
aws s3 cp --recursive "$d/up" "s3://$B/files/" --metadata origin=awscli >/dev/null
aws s3 cp --recursive "s3://$B/files/" "$d/down" >/dev/null
for f in empty one five twenty big; do
    [ "$(sum "$d/up/$f")" = "$(sum "$d/down/$f")" ] || fail "content of $f"
done
meta="$(aws s3api head-object --bucket "$B" --key files/twenty)"
grep -q '"origin": "awscli"' <<<"$meta" || fail "metadata: $meta"
grep -q '"ETag": "\\"[0-9a-f]*-[0-9]*\\""' <<<"$meta" || fail "multipart ETag: $meta"
aws s3 cp "s3://$B/files/five" "s3://$B/copy/five" >/dev/null
aws s3 cp "s3://$B/copy/five" "$d/copy-five" >/dev/null
[ "$(sum "$d/up/five")" = "$(sum "$d/copy-five")" ] || fail "copy content"
# Above the multipart threshold the CLI copies with UploadPartCopy.
aws s3 cp "s3://$B/files/twenty" "s3://$B/copy/twenty" >/dev/null
aws s3 cp "s3://$B/copy/twenty" "$d/copy-twenty" >/dev/null
[ "$(sum "$d/up/twenty")" = "$(sum "$d/copy-twenty")" ] || fail "multipart copy content"
n="$(aws s3api list-objects-v2 --bucket listing-2500 --page-size 200 --query 'Contents[].[Key]' --output text | wc -l)"
[ "$n" = 2500 ] || fail "listing 2,500 keys with pagination: $n"
p="$(aws s3api list-objects-v2 --bucket listing-2500 --delimiter / --page-size 50 --query 'CommonPrefixes[].[Prefix]' --output text | grep -v '^None$')"
[ "$(echo $p)" = "d0/ d1/ d2/ d3/ d4/" ] || fail "common prefixes: $p"
n="$(aws s3 ls s3://listing-2500/d2/ | wc -l)"
[ "$n" = 480 ] || fail "ls under a prefix: $n"
aws s3 rm --recursive "s3://$B/" >/dev/null
[ -z "$(aws s3 ls "s3://$B/" --recursive)" ] || fail "delete"
aws s3 rb "s3://$B" >/dev/null
rm -rf "$d"
echo "awscli: all checks passed"
