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

# Versioning, tags, Object Lock, CORS.
V=awscli-versions
aws s3api create-bucket --bucket "$V" --object-lock-enabled-for-bucket >/dev/null
st="$(aws s3api get-bucket-versioning --bucket "$V" --query Status --output text)"
[ "$st" = Enabled ] || fail "versioning of an Object Lock bucket: $st"
echo one >"$d/v1"; echo two >"$d/v2"
v1="$(aws s3api put-object --bucket "$V" --key k --body "$d/v1" --tagging 'a=1' --query VersionId --output text)"
v2="$(aws s3api put-object --bucket "$V" --key k --body "$d/v2" --query VersionId --output text)"
[ "$v1" != "$v2" ] || fail "version ids"
aws s3api get-object --bucket "$V" --key k --version-id "$v1" "$d/got-v1" >/dev/null
[ "$(sum "$d/v1")" = "$(sum "$d/got-v1")" ] || fail "content of the first version"
t="$(aws s3api get-object-tagging --bucket "$V" --key k --version-id "$v1" --query 'TagSet[0].Value' --output text)"
[ "$t" = 1 ] || fail "tags of the first version: $t"
aws s3api delete-object --bucket "$V" --key k >/dev/null
n="$(aws s3api list-object-versions --bucket "$V" --query 'length(Versions)' --output text)"
m="$(aws s3api list-object-versions --bucket "$V" --query 'length(DeleteMarkers)' --output text)"
[ "$n/$m" = 2/1 ] || fail "versions/markers listed: $n/$m"
until="$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)"
aws s3api put-object-retention --bucket "$V" --key k --version-id "$v2" \
    --retention "Mode=COMPLIANCE,RetainUntilDate=$until" >/dev/null
if aws s3api delete-object --bucket "$V" --key k --version-id "$v2" --bypass-governance-retention >/dev/null 2>&1; then
    fail "a COMPLIANCE version was deleted"
fi
mode="$(aws s3api get-object-retention --bucket "$V" --key k --version-id "$v2" --query Retention.Mode --output text)"
[ "$mode" = COMPLIANCE ] || fail "retention: $mode"
aws s3api put-bucket-cors --bucket "$V" --cors-configuration \
    '{"CORSRules":[{"AllowedOrigins":["https://app.example"],"AllowedMethods":["GET","PUT"],"AllowedHeaders":["*"],"MaxAgeSeconds":600}]}'
# A browser's preflight, with curl: allowed for the rule's origin only.
pre="$(curl -s -D - -o /dev/null -X OPTIONS "$S3_ENDPOINT/$V/k" -H 'Origin: https://app.example' \
    -H 'Access-Control-Request-Method: PUT' -H 'Access-Control-Request-Headers: content-type')"
grep -qi '^access-control-allow-origin: https://app.example' <<<"$pre" || fail "preflight: $pre"
grep -qi '^access-control-max-age: 600' <<<"$pre" || fail "preflight max age: $pre"
code="$(curl -s -o /dev/null -w '%{http_code}' -X OPTIONS "$S3_ENDPOINT/$V/k" -H 'Origin: https://evil.example' \
    -H 'Access-Control-Request-Method: PUT')"
[ "$code" = 403 ] || fail "preflight from another origin: $code"
# Lifecycle: a configuration read back, a refused one changing nothing.
aws s3api put-bucket-lifecycle-configuration --bucket "$V" --lifecycle-configuration \
    '{"Rules":[{"ID":"old","Status":"Enabled","Filter":{"Prefix":"logs/"},"Expiration":{"Days":30},"NoncurrentVersionExpiration":{"NoncurrentDays":7},"AbortIncompleteMultipartUpload":{"DaysAfterInitiation":2}}]}'
days="$(aws s3api get-bucket-lifecycle-configuration --bucket "$V" --query 'Rules[0].Expiration.Days' --output text)"
[ "$days" = 30 ] || fail "lifecycle read back: $days"
if aws s3api put-bucket-lifecycle-configuration --bucket "$V" --lifecycle-configuration \
    '{"Rules":[{"ID":"bad","Status":"Enabled","Filter":{"Prefix":""},"Expiration":{"Days":0}}]}' >/dev/null 2>&1; then
    fail "a lifecycle rule with 0 days was accepted"
fi
days="$(aws s3api get-bucket-lifecycle-configuration --bucket "$V" --query 'Rules[0].Expiration.Days' --output text)"
[ "$days" = 30 ] || fail "lifecycle after a refused change: $days"
aws s3api delete-bucket-lifecycle --bucket "$V"
if aws s3api get-bucket-lifecycle-configuration --bucket "$V" >/dev/null 2>&1; then
    fail "lifecycle after delete"
fi
# A bucket policy: public reads of one prefix, seen by an unsigned curl.
P=awscli-policy
aws s3 mb "s3://$P" >/dev/null
aws s3 cp "$d/v1" "s3://$P/public/one" >/dev/null
aws s3 cp "$d/v2" "s3://$P/private/two" >/dev/null
code="$(curl -s -o /dev/null -w '%{http_code}' "$S3_ENDPOINT/$P/public/one")"
[ "$code" = 403 ] || fail "anonymous GET without a policy: $code"
aws s3api put-bucket-policy --bucket "$P" --policy \
    "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"s3:GetObject\",\"Resource\":\"arn:aws:s3:::$P/public/*\"}]}"
pub="$(aws s3api get-bucket-policy-status --bucket "$P" --query PolicyStatus.IsPublic --output text)"
[ "$pub" = True ] || fail "policy status: $pub"
curl -s -f -o "$d/anon-one" "$S3_ENDPOINT/$P/public/one" || fail "anonymous GET allowed by the policy"
[ "$(sum "$d/v1")" = "$(sum "$d/anon-one")" ] || fail "content read anonymously"
code="$(curl -s -o /dev/null -w '%{http_code}' "$S3_ENDPOINT/$P/private/two")"
[ "$code" = 403 ] || fail "anonymous GET outside the policy: $code"
aws s3api put-public-access-block --bucket "$P" --public-access-block-configuration \
    BlockPublicAcls=false,IgnorePublicAcls=false,BlockPublicPolicy=false,RestrictPublicBuckets=true
code="$(curl -s -o /dev/null -w '%{http_code}' "$S3_ENDPOINT/$P/public/one")"
[ "$code" = 403 ] || fail "anonymous GET with RestrictPublicBuckets: $code"
aws s3api delete-bucket-policy --bucket "$P"
aws s3api delete-public-access-block --bucket "$P"
aws s3 rm --recursive "s3://$P/" >/dev/null
aws s3 rb "s3://$P" >/dev/null
rm -rf "$d"
echo "awscli: all checks passed"
