"""boto3 against a running Cairn cluster, with boto3's default settings
(flexible checksums on). Checks content by SHA-256, not status codes.

Environment: S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_REGION, WORK (a scratch directory), BIG_BYTES (size of the big object).
"""
import concurrent.futures
import hashlib
import os
import sys

import boto3
from boto3.s3.transfer import TransferConfig

ENDPOINT = os.environ["S3_ENDPOINT"]
WORK = os.environ["WORK"]
BIG = int(os.environ.get("BIG_BYTES", str(1 << 30)))
BUCKET = "boto3-check"
LIST_BUCKET = "listing-2500"

s3 = boto3.client("s3", endpoint_url=ENDPOINT)


def sha(b):
    return hashlib.sha256(b).hexdigest()


def file_sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check(cond, what):
    if not cond:
        print(f"boto3: FAILED: {what}", file=sys.stderr)
        sys.exit(1)


s3.create_bucket(Bucket=BUCKET)

# Sizes across the inline threshold, chunks, and the multipart threshold.
for size in [0, 1, 16 << 10, (5 << 20) + 1, 20 << 20]:
    data = os.urandom(size)
    s3.put_object(Bucket=BUCKET, Key=f"sizes/{size}", Body=data,
                  ContentType="application/x-check", Metadata={"origin": "boto3", "size": str(size)})
    got = s3.get_object(Bucket=BUCKET, Key=f"sizes/{size}")
    check(sha(got["Body"].read()) == sha(data), f"content of {size} bytes")
    check(got["Metadata"] == {"origin": "boto3", "size": str(size)}, f"metadata of {size}: {got['Metadata']}")
    check(got["ContentType"] == "application/x-check", "content type")

# The big object: multipart upload (above the 8 MiB threshold) and download,
# compared by hash; GET with checksum mode on must not fail validation.
big = os.path.join(WORK, "boto3-big.bin")
with open(big, "wb") as f:
    left = BIG
    while left:
        n = min(left, 8 << 20)
        f.write(os.urandom(n))
        left -= n
config = TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=16 << 20, max_concurrency=4)
s3.upload_file(big, BUCKET, "big.bin", ExtraArgs={"Metadata": {"kind": "big"}}, Config=config)
head = s3.head_object(Bucket=BUCKET, Key="big.bin")
check(head["ContentLength"] == BIG, "big size")
check(head["Metadata"].get("kind") == "big", "big metadata")
check(head["ETag"].strip('"').endswith(f"-{-(-BIG // (16 << 20))}"), f"multipart ETag {head['ETag']}")
back = os.path.join(WORK, "boto3-big.back")
s3.download_file(BUCKET, "big.bin", back, Config=config)
check(file_sha(back) == file_sha(big), "big content")
resp = s3.get_object(Bucket=BUCKET, Key="big.bin", ChecksumMode="ENABLED", Range="bytes=0-1048575")
check(len(resp["Body"].read()) == 1 << 20, "range of big")
# A multipart object read whole with checksum validation (default settings).
small_mp = os.urandom((8 << 20) + 12345)
path = os.path.join(WORK, "boto3-mp.bin")
with open(path, "wb") as f:
    f.write(small_mp)
s3.upload_file(path, BUCKET, "mp.bin", Config=TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20))
got = s3.get_object(Bucket=BUCKET, Key="mp.bin", ChecksumMode="ENABLED")
check(sha(got["Body"].read()) == sha(small_mp), "multipart object content with checksum mode")
os.remove(big)
os.remove(back)

# Copy and delete.
s3.copy_object(Bucket=BUCKET, Key="copy.bin", CopySource={"Bucket": BUCKET, "Key": "sizes/20971520"})
orig = s3.get_object(Bucket=BUCKET, Key="sizes/20971520")["Body"].read()
check(sha(s3.get_object(Bucket=BUCKET, Key="copy.bin")["Body"].read()) == sha(orig), "copy content")
s3.delete_object(Bucket=BUCKET, Key="copy.bin")
try:
    s3.head_object(Bucket=BUCKET, Key="copy.bin")
    check(False, "deleted object still there")
except s3.exceptions.ClientError as e:
    check(e.response["Error"]["Code"] in ("404", "NoSuchKey"), f"deleted: {e}")

# 2,500 keys for every client to list (created here, shared).
s3.create_bucket(Bucket=LIST_BUCKET)
keys = [f"d{d}/f{i:04d}" for d in range(5) for i in range(480)] + [f"top{i:03d}" for i in range(100)]
check(len(keys) == 2500, "2,500 keys")
with concurrent.futures.ThreadPoolExecutor(16) as pool:
    list(pool.map(lambda k: s3.put_object(Bucket=LIST_BUCKET, Key=k, Body=k.encode()), keys))
seen = []
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=LIST_BUCKET, PaginationConfig={"PageSize": 300}):
    seen += [o["Key"] for o in page.get("Contents", [])]
check(seen == sorted(keys), f"flat listing: {len(seen)} keys")
prefixes, top = [], []
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=LIST_BUCKET, Delimiter="/", PaginationConfig={"PageSize": 40}):
    prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    top += [o["Key"] for o in page.get("Contents", [])]
check(prefixes == [f"d{d}/" for d in range(5)], f"common prefixes {prefixes}")
check(len(top) == 100, f"top-level keys {len(top)}")
d3 = []
for page in s3.get_paginator("list_objects").paginate(Bucket=LIST_BUCKET, Prefix="d3/", PaginationConfig={"PageSize": 100}):
    d3 += [o["Key"] for o in page.get("Contents", [])]
check(len(d3) == 480, f"v1 listing under a prefix: {len(d3)}")

# A request signed with Date and no X-Amz-Date, as botocore signs when a
# Date header is set (SigV4 takes either).
import email.utils


def with_date(params, **kwargs):
    params["headers"]["Date"] = email.utils.formatdate(usegmt=True)


s3.meta.events.register("before-call.s3.PutObject", with_date)
s3.put_object(Bucket=BUCKET, Key="dated", Body=b"signed with Date")
s3.meta.events.unregister("before-call.s3.PutObject", with_date)
check(s3.get_object(Bucket=BUCKET, Key="dated")["Body"].read() == b"signed with Date", "PUT signed with Date")

# Batch delete.
s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": f"sizes/{s}"} for s in [0, 1]]})
left = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="sizes/").get("Contents", [])]
check("sizes/0" not in left and "sizes/1" not in left, "batch delete")
# Versioning, paged with the paginator, and tags.
VB = "boto3-versions"
s3.create_bucket(Bucket=VB)
s3.put_bucket_versioning(Bucket=VB, VersioningConfiguration={"Status": "Enabled"})
check(s3.get_bucket_versioning(Bucket=VB).get("Status") == "Enabled", "versioning enabled")
made = {}
for i in range(30):
    key = f"k{i % 7}"
    body = f"{key} version {i}".encode()
    vid = s3.put_object(Bucket=VB, Key=key, Body=body, Tagging=f"round={i}")["VersionId"]
    made[vid] = (key, body)
markers = set()
for k in ("k0", "k3"):
    markers.add(s3.delete_object(Bucket=VB, Key=k)["VersionId"])
listed, listed_markers = [], []
for page in s3.get_paginator("list_object_versions").paginate(Bucket=VB, PaginationConfig={"PageSize": 4}):
    listed += [(v["Key"], v["VersionId"], v["IsLatest"]) for v in page.get("Versions", [])]
    listed_markers += [m["VersionId"] for m in page.get("DeleteMarkers", [])]
check({v for _, v, _ in listed} == set(made), f"every version listed: {len(listed)} of {len(made)}")
check(set(listed_markers) == markers, "every delete marker listed")
check([k for k, _, _ in listed] == sorted(k for k, _, _ in listed), "versions in key order")
for vid, (key, body) in made.items():
    got = s3.get_object(Bucket=VB, Key=key, VersionId=vid)
    check(got["Body"].read() == body and got["VersionId"] == vid, f"version {vid} of {key}")
latest = {k for k, _, latest in listed if latest}
check(latest == {f"k{i}" for i in range(7)} - {"k0", "k3"}, f"latest versions: {latest}")
try:
    s3.get_object(Bucket=VB, Key="k0")
    check(False, "a key behind a delete marker was read")
except s3.exceptions.ClientError as e:
    check(e.response["Error"]["Code"] == "NoSuchKey", f"behind a marker: {e}")
tags = s3.get_object_tagging(Bucket=VB, Key="k1")["TagSet"]
check(tags == [{"Key": "round", "Value": "29"}], f"tags of the latest k1: {tags}")
# Lifecycle configuration, with a tag filter, read back as it was put.
rules = [{
    "ID": "tmp",
    "Status": "Enabled",
    "Filter": {"And": {"Prefix": "tmp/", "Tags": [{"Key": "kind", "Value": "scratch"}]}},
    "Expiration": {"Days": 1},
    "NoncurrentVersionExpiration": {"NoncurrentDays": 1, "NewerNoncurrentVersions": 2},
}]
s3.put_bucket_lifecycle_configuration(Bucket=VB, LifecycleConfiguration={"Rules": rules})
got = s3.get_bucket_lifecycle_configuration(Bucket=VB)["Rules"]
check(got == rules, f"lifecycle read back: {got}")

# A browser upload (POST Object) with boto3's presigned POST: the signed
# policy is enforced (lifetime, key, size) and the file lands whole.
import time
import urllib3

http = urllib3.PoolManager()
body = os.urandom(200_000)
import base64
digest_b64 = lambda b: base64.b64encode(hashlib.sha256(b).digest()).decode()
fields = {
    "success_action_status": "201",
    "x-amz-meta-origin": "browser",
    "x-amz-checksum-sha256": digest_b64(body),
}
post = s3.generate_presigned_post(
    Bucket=VB,
    Key="post/upload.bin",
    Fields=fields,
    Conditions=[{k: v} for k, v in fields.items()] + [["content-length-range", 1, 1 << 20]],
    ExpiresIn=60,
)
r = http.request("POST", post["url"], fields={**post["fields"], "file": ("upload.bin", body)})
check(r.status == 201 and b"<ETag>" in r.data, f"POST upload: {r.status} {r.data[:300]!r}")
got = s3.get_object(Bucket=VB, Key="post/upload.bin", ChecksumMode="ENABLED")
check(sha(got["Body"].read()) == sha(body), "content of the POST upload")
check(got["Metadata"] == {"origin": "browser"}, f"metadata of the POST upload: {got['Metadata']}")
check(got.get("ChecksumSHA256") == digest_b64(body), f"checksum of the POST upload: {got.get('ChecksumSHA256')}")
# A file that does not match the checksum field is refused.
wrong = s3.generate_presigned_post(
    Bucket=VB,
    Key="post/wrong.bin",
    Fields={"x-amz-checksum-sha256": digest_b64(b"something else")},
    Conditions=[{"x-amz-checksum-sha256": digest_b64(b"something else")}],
    ExpiresIn=60,
)
r = http.request("POST", wrong["url"], fields={**wrong["fields"], "file": ("w.bin", body)})
check(r.status == 400, f"POST with a wrong checksum: {r.status} {r.data[:300]!r}")
too_big = os.urandom((1 << 20) + 1)
r = http.request("POST", post["url"], fields={**post["fields"], "file": ("big.bin", too_big)})
check(r.status == 400, f"POST beyond the policy's size range: {r.status}")
other_key = {**post["fields"], "key": "post/elsewhere.bin", "file": ("x.bin", body)}
r = http.request("POST", post["url"], fields=other_key)
# 403 AccessDenied, as S3 answers a form that breaks its policy; nothing
# is written.
check(r.status == 403 and b"<Code>AccessDenied</Code>" in r.data, f"POST to a key the policy does not name: {r.status} {r.data[:300]!r}")
import json
forged = json.loads(base64.b64decode(post["fields"]["policy"]))
forged["conditions"] = [c for c in forged["conditions"] if not isinstance(c, list)]
forged_fields = {**post["fields"], "policy": base64.b64encode(json.dumps(forged).encode()).decode()}
r = http.request("POST", post["url"], fields={**forged_fields, "file": ("big.bin", too_big)})
check(r.status == 403, f"POST with a policy changed after signing: {r.status}")
got = s3.get_object(Bucket=VB, Key="post/upload.bin")["Body"].read()
check(sha(got) == sha(body), "a refused POST left the object as it was")
for key in ("post/elsewhere.bin", "post/wrong.bin"):
    try:
        s3.head_object(Bucket=VB, Key=key)
        check(False, f"a refused POST wrote {key}")
    except s3.exceptions.ClientError:
        pass
short = s3.generate_presigned_post(Bucket=VB, Key="post/late.bin", ExpiresIn=1)
time.sleep(2)
r = http.request("POST", short["url"], fields={**short["fields"], "file": ("late.bin", body)})
check(r.status == 403, f"POST with an expired policy: {r.status}")
try:
    s3.head_object(Bucket=VB, Key="post/late.bin")
    check(False, "a refused POST wrote its object")
except s3.exceptions.ClientError as e:
    check(e.response["Error"]["Code"] in ("404", "NoSuchKey"), f"after a refused POST: {e}")
print("boto3: all checks passed")
