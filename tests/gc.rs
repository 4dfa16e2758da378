//! Space comes back: the chunks of deleted and overwritten objects, aborted
//! uploads, parts left out of a Complete, parts that raced an Abort and
//! PUTs that failed their checksum are deleted after the grace period; a
//! chunk a live object uses never is, even while PUTs of the same content
//! race deletions and collector passes. Usage figures are the counters the
//! writes keep, and quotas hold exactly at their limit.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use cairn_tests::{Cluster, Options, get_bytes, pattern, put_bytes, seed};
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

const CHUNK: usize = 1 << 20;
const MIB: usize = 1 << 20;

/// The chunk ids (hex) of `data` cut into `CHUNK`-byte chunks.
fn chunk_ids(data: &[u8]) -> Vec<String> {
    data.chunks(CHUNK)
        .map(|c| blake3::hash(c).to_hex().to_string())
        .collect()
}

fn options(grace_s: u64) -> Options {
    let mut opts = Options::nodes(6);
    opts.profile = Some((4, 2));
    opts.chunk_size_bytes = CHUNK;
    opts.gc_grace_s = Some(grace_s);
    opts
}

/// Upload `data` as a multipart upload in `part`-byte parts; returns the
/// upload id and the completed parts (nothing is completed).
async fn upload_parts(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    data: &[u8],
    part: usize,
) -> (String, Vec<CompletedPart>) {
    let up = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap().to_owned();
    let mut parts = Vec::new();
    for (i, p) in data.chunks(part).enumerate() {
        let n = i as i32 + 1;
        let r = s3
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(p.to_vec()))
            .send()
            .await
            .unwrap();
        parts.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(r.e_tag().unwrap())
                .build(),
        );
    }
    (id, parts)
}

async fn complete(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    id: &str,
    parts: Vec<CompletedPart>,
) -> Result<(), String> {
    s3.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("{:?}", e.into_service_error()))
}

/// `cairn status --json` without its layout and nodes (for messages).
fn status(cluster: &Cluster) -> Value {
    let out = cluster.cli(&["status", "--json"]);
    assert!(out.status.success());
    let mut s: Value = serde_json::from_slice(&out.stdout).unwrap();
    s["layout"] = Value::Null;
    s["nodes"] = Value::Null;
    s
}

fn bucket_info(cluster: &Cluster, bucket: &str) -> Value {
    let out = cluster.cli(&["bucket", "info", bucket, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Bytes a body of `len` bytes takes in shards with 4+2 and `CHUNK`-byte
/// chunks.
fn stored(len: usize) -> u64 {
    (0..len)
        .step_by(CHUNK)
        .map(|at| ((len - at).min(CHUNK).div_ceil(4) * 6) as u64)
        .sum()
}

async fn put_status(s3: &aws_sdk_s3::Client, key: &str, len: usize) -> Result<(), (u16, String)> {
    s3.put_object()
        .bucket("quota")
        .key(key)
        .body(ByteStream::from(pattern(len as u64, len)))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            let status = e.raw_response().map_or(0, |r| r.status().as_u16());
            (status, format!("{e:?}"))
        })
}

/// `GC_TOTAL_BYTES` scales the data written (default 1 GiB).
#[tokio::test]
async fn deleted_data_of_every_kind_is_reclaimed_and_usage_is_exact() {
    let total: usize = std::env::var("GC_TOTAL_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 30);
    let grace = 3;
    let cluster = Cluster::start_with(options(grace))
        .await
        .expect("cluster starts");
    let empty = cluster.shard_file_bytes();
    let s3 = cluster.s3();
    s3.create_bucket().bucket("space").send().await.unwrap();
    // Kept objects and their sizes, as the test wrote them.
    let mut live: BTreeMap<String, usize> = BTreeMap::new();
    // Shard bytes of each live object's own chunks (copies share theirs).
    let mut own: BTreeMap<String, u64> = BTreeMap::new();
    let mut written = 0usize;
    let mut n = 0u64;
    let object = 8 * MIB;
    let mut next = |len: usize| {
        n += 1;
        pattern(n, len)
    };
    // A fifth each: single PUTs, their overwrites, completed multipart
    // uploads (one part left out), aborted uploads; plus copies.
    let share = total / 5;
    for i in 0..(share / object).max(1) {
        let key = format!("single/{i}");
        put_bytes(&s3, "space", &key, next(object)).await;
        written += object;
        live.insert(key, object);
    }
    for i in 0..(share / object).max(1) {
        let key = format!("single/{i}");
        put_bytes(&s3, "space", &key, next(object + 123)).await;
        written += object + 123;
        own.insert(key.clone(), stored(object + 123));
        live.insert(key, object + 123);
    }
    for i in 0..(share / (4 * object)).max(1) {
        let key = format!("multi/{i}");
        let data = next(4 * object);
        let (id, mut parts) = upload_parts(&s3, "space", &key, &data, object).await;
        parts.remove(1);
        complete(&s3, "space", &key, &id, parts).await.unwrap();
        written += 4 * object;
        own.insert(key.clone(), 3 * stored(object));
        live.insert(key, 3 * object);
    }
    for i in 0..(share / (4 * object)).max(1) {
        let key = format!("aborted/{i}");
        let data = next(4 * object);
        let (id, _) = upload_parts(&s3, "space", &key, &data, object).await;
        s3.abort_multipart_upload()
            .bucket("space")
            .key(&key)
            .upload_id(&id)
            .send()
            .await
            .unwrap();
        written += 4 * object;
    }
    let rest = total.saturating_sub(written) / object;
    for i in 0..rest {
        let key = format!("more/{i}");
        put_bytes(&s3, "space", &key, next(object)).await;
        own.insert(key.clone(), stored(object));
        live.insert(key, object);
    }
    for i in 0..4 {
        let key = format!("copy/{i}");
        s3.copy_object()
            .bucket("space")
            .key(&key)
            .copy_source(format!("space/single/{i}"))
            .send()
            .await
            .unwrap();
        live.insert(key, live[&format!("single/{i}")]);
    }
    // An upload left in progress, counted as such.
    let (pending, _) = upload_parts(&s3, "space", "pending", &next(2 * MIB), MIB).await;

    // The figures are the counters, and equal what was written.
    let objects = live.len() as u64;
    let bytes: u64 = live.values().map(|&b| b as u64).sum();
    cluster
        .wait_drops_done(Duration::from_secs(60))
        .await
        .unwrap();
    let s = status(&cluster);
    assert_eq!(s["objects"].as_u64(), Some(objects), "{s}");
    assert_eq!(s["object_bytes"].as_u64(), Some(bytes), "{s}");
    assert_eq!(s["uploads"].as_u64(), Some(1), "{s}");
    assert_eq!(s["upload_bytes"].as_u64(), Some(2 * MIB as u64), "{s}");
    let info = bucket_info(&cluster, "space");
    assert_eq!(info["objects"].as_u64(), Some(objects), "{info}");
    assert_eq!(info["bytes"].as_u64(), Some(bytes), "{info}");
    assert_eq!(info["uploads"].as_u64(), Some(1), "{info}");
    assert_eq!(info["upload_bytes"].as_u64(), Some(2 * MIB as u64));
    // Stored: every chunk of the live objects once (copies share theirs),
    // and the pending upload's.
    let want_stored: u64 = own.values().sum::<u64>() + 2 * stored(MIB);
    assert_eq!(s["stored_bytes"].as_u64(), Some(want_stored), "{s}");
    // Nothing is lost from the books: what the disks hold is what is
    // referenced plus what waits for collection.
    let disks: u64 = cluster
        .node_stats()
        .await
        .unwrap()
        .iter()
        .map(|n| n["stats"]["shard_bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(
        s["stored_bytes"].as_u64().unwrap() + s["garbage_bytes"].as_u64().unwrap(),
        disks,
        "{s}"
    );
    let peak = cluster.shard_file_bytes();

    // Everything goes.
    s3.abort_multipart_upload()
        .bucket("space")
        .key("pending")
        .upload_id(&pending)
        .send()
        .await
        .unwrap();
    for key in live.keys() {
        s3.delete_object()
            .bucket("space")
            .key(key)
            .send()
            .await
            .unwrap();
    }
    cluster
        .wait_drops_done(Duration::from_secs(120))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(grace + 1)).await;
    let gc = cluster.gc_pass();
    let after = cluster.shard_file_bytes();
    let longest_pass_ms = gc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            n[1]["last_finished_ms"].as_u64().unwrap() - n[1]["last_started_ms"].as_u64().unwrap()
        })
        .max()
        .unwrap_or(0);
    println!(
        "shard bytes: empty {empty}, peak {peak}, after one pass {after}; {} chunks ({} bytes) deleted, longest node pass {longest_pass_ms} ms",
        gc["chunks_deleted"], gc["bytes_freed"]
    );
    assert!(
        after <= empty + peak / 20,
        "after the grace and one pass {after} shard bytes remain of {peak} (empty: {empty})"
    );
    let s = status(&cluster);
    assert_eq!(s["objects"].as_u64(), Some(0), "{s}");
    assert_eq!(s["object_bytes"].as_u64(), Some(0), "{s}");
    assert_eq!(s["stored_bytes"].as_u64(), Some(0), "{s}");
    assert_eq!(s["garbage_bytes"].as_u64(), Some(0), "{s}");
    assert_eq!(s["uploads"].as_u64(), Some(0), "{s}");
    // And the bucket can go: nothing of it is left behind.
    s3.delete_bucket().bucket("space").send().await.unwrap();
}

#[tokio::test]
async fn left_out_parts_parts_racing_an_abort_and_bad_puts_are_reclaimed() {
    let grace = 2;
    let cluster = Cluster::start_with(options(grace))
        .await
        .expect("cluster starts");
    let s3 = cluster.s3();
    s3.create_bucket().bucket("left").send().await.unwrap();
    let mut gone: Vec<String> = Vec::new();
    let mut kept: Vec<String> = Vec::new();

    // Parts left out of a Complete.
    let data = pattern(1, 15 * MIB);
    let (id, mut parts) = upload_parts(&s3, "left", "big", &data, 5 * MIB).await;
    let left_out = parts.remove(1);
    assert_eq!(left_out.part_number(), Some(2));
    complete(&s3, "left", "big", &id, parts).await.unwrap();
    gone.extend(chunk_ids(&data[5 * MIB..10 * MIB]));
    kept.extend(chunk_ids(&data[..5 * MIB]));
    kept.extend(chunk_ids(&data[10 * MIB..]));

    // Parts uploaded while the upload is aborted: whichever lands first,
    // nothing of them stays.
    let s3 = Arc::new(s3);
    for round in 0..4u64 {
        let key = format!("raced/{round}");
        let up = s3
            .create_multipart_upload()
            .bucket("left")
            .key(&key)
            .send()
            .await
            .unwrap();
        let id = up.upload_id().unwrap().to_owned();
        let mut uploads = Vec::new();
        for n in 1..=3u64 {
            let part = pattern(100 + round * 10 + n, 3 * MIB);
            gone.extend(chunk_ids(&part));
            let (s3, key, id) = (s3.clone(), key.clone(), id.clone());
            uploads.push(tokio::spawn(async move {
                s3.upload_part()
                    .bucket("left")
                    .key(&key)
                    .upload_id(&id)
                    .part_number(n as i32)
                    .body(ByteStream::from(part))
                    .send()
                    .await
                    .is_ok()
            }));
        }
        tokio::time::sleep(Duration::from_millis(20 * round)).await;
        s3.abort_multipart_upload()
            .bucket("left")
            .key(&key)
            .upload_id(&id)
            .send()
            .await
            .unwrap();
        for u in uploads {
            u.await.unwrap();
        }
    }

    // A PUT whose Content-MD5 does not match its body.
    let bad = pattern(7, 3 * MIB);
    let wrong = base64_md5(b"something else");
    let r = s3
        .put_object()
        .bucket("left")
        .key("bad")
        .content_md5(wrong)
        .body(ByteStream::from(bad.clone()))
        .send()
        .await;
    assert!(r.is_err(), "a wrong Content-MD5 is refused");
    gone.extend(chunk_ids(&bad));

    cluster
        .wait_drops_done(Duration::from_secs(60))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(grace + 1)).await;
    cluster.gc_pass();
    let counts = cluster.shard_counts();
    for c in &gone {
        assert!(
            !counts.contains_key(c),
            "chunk {c} of a dead part or PUT still has {:?} shards",
            counts.get(c)
        );
    }
    for c in &kept {
        assert_eq!(counts.get(c), Some(&6), "live chunk {c}");
    }
    let mut want = data[..5 * MIB].to_vec();
    want.extend_from_slice(&data[10 * MIB..]);
    assert_eq!(get_bytes(&s3, "left", "big").await, want);
    assert_eq!(bucket_info(&cluster, "left")["uploads"].as_u64(), Some(0));
}

fn base64_md5(data: &[u8]) -> String {
    use base64::Engine;
    use md5::Digest;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(data))
}

/// `SEED=` replays; `GC_RACE_ITERATIONS=` changes the length (default 1000).
#[tokio::test]
async fn puts_that_dedup_race_deletes_and_collection_without_losing_a_byte() {
    let seed = seed();
    let iterations: u64 = std::env::var("GC_RACE_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    // A grace of 2 s (longer than any of these GETs, which may have read
    // their manifest just before an overwrite or delete): chunks are
    // collected seconds after their last reference goes, while PUTs of the
    // same content keep coming; condemned chunks wait 100 ms before their
    // shards go, so PUTs of the same content meet chunks being deleted.
    let mut opts = options(2);
    opts.node_env
        .push(("CAIRN_GC_DELETE_DELAY_MS".into(), "100".into()));
    let cluster = Cluster::start_with(opts).await.expect("cluster starts");
    let s3 = Arc::new(cluster.s3());
    s3.create_bucket().bucket("race").send().await.unwrap();
    // Contents of 2.5 chunks, fewer than the keys: most PUTs dedup onto
    // the chunks of earlier PUTs of the same content under other keys, and
    // a content often loses its last key (its chunks are then collected).
    const CONTENTS: u64 = 16;
    let contents: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..CONTENTS)
            .map(|i| pattern(1000 + i, 5 * CHUNK / 2))
            .collect(),
    );
    const KEYS: u64 = 6;
    const WORKERS: u64 = 4;
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let (s3, contents) = (s3.clone(), contents.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ (w + 1));
            for _ in 0..iterations / WORKERS {
                let key = format!("k{}", rng.random_range(0..KEYS));
                let op = rng.random_range(0..10);
                if op < 3 {
                    // A read sees the content its metadata names, whole:
                    // a chunk deleted under a live object fails it.
                    let got = match s3.get_object().bucket("race").key(&key).send().await {
                        Ok(got) => got,
                        Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                            continue;
                        }
                        Err(e) => panic!("seed {seed}: GET {key}: {e:?}"),
                    };
                    let c: usize = got.metadata().unwrap()["content"].parse().unwrap();
                    let body = got.body.collect().await;
                    let body = body
                        .unwrap_or_else(|e| panic!("seed {seed}: {key} does not read back: {e:?}"))
                        .into_bytes();
                    assert!(
                        body == contents[c][..],
                        "seed {seed}: {key} read back wrong for content {c}"
                    );
                } else if op < 7 {
                    let c = rng.random_range(0..contents.len());
                    s3.put_object()
                        .bucket("race")
                        .key(&key)
                        .metadata("content", c.to_string())
                        .body(ByteStream::from(contents[c].clone()))
                        .send()
                        .await
                        .expect("PUT");
                } else {
                    s3.delete_object()
                        .bucket("race")
                        .key(&key)
                        .send()
                        .await
                        .expect("DELETE");
                }
            }
        }));
    }
    // Collector passes all along.
    let collecting = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let passes = {
        let (collecting, endpoint, token) = (
            collecting.clone(),
            cluster.endpoint(0),
            cluster.admin_token.clone(),
        );
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut n = 0u64;
            while collecting.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = http
                    .post(format!("{endpoint}/_cairn/admin/v1/gc/run"))
                    .bearer_auth(&token)
                    .send()
                    .await;
                n += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            n
        })
    };
    for t in tasks {
        t.await.expect("worker");
    }
    collecting.store(false, std::sync::atomic::Ordering::Relaxed);
    let passes = passes.await.unwrap();
    let during = cluster.admin_get("/_cairn/admin/v1/gc").await.unwrap();
    println!(
        "seed {seed}: {iterations} operations, {passes} collector passes asked for, {} chunks deleted meanwhile",
        during["chunks_deleted"]
    );
    // The collector did delete chunks under the racing PUTs (else the
    // race was not run).
    assert!(
        during["chunks_deleted"].as_u64() > Some(0),
        "seed {seed}: {during}"
    );

    // Every key that exists reads back byte-identical to its content.
    let mut live_contents = BTreeSet::new();
    for k in 0..KEYS {
        let key = format!("k{k}");
        let Ok(head) = s3.head_object().bucket("race").key(&key).send().await else {
            continue;
        };
        let c: usize = head.metadata().unwrap()["content"].parse().unwrap();
        let got = get_bytes(&s3, "race", &key).await;
        assert!(
            got == contents[c],
            "seed {seed}: {key} does not read back as content {c}"
        );
        live_contents.insert(c);
    }
    // After the last pass, the chunks of contents no key holds are gone,
    // and those of the others are whole.
    cluster
        .wait_drops_done(Duration::from_secs(60))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.gc_pass();
    let counts = cluster.shard_counts();
    for (c, data) in contents.iter().enumerate() {
        for id in chunk_ids(data) {
            if live_contents.contains(&c) {
                assert_eq!(counts.get(&id), Some(&6), "seed {seed}: live chunk {id}");
            } else {
                assert!(
                    !counts.contains_key(&id),
                    "seed {seed}: chunk {id} of deleted content {c} remains"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_quota_holds_exactly_at_its_limit() {
    let cluster = Cluster::start_with(options(3600))
        .await
        .expect("cluster starts");
    let s3 = cluster.s3();
    s3.create_bucket().bucket("quota").send().await.unwrap();
    let limit = 3 * MIB as u64;
    let out = cluster.cli(&[
        "bucket",
        "quota",
        "quota",
        "--max-bytes",
        &limit.to_string(),
        "--max-objects",
        "3",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 2 MiB, then exactly 1 MiB more: at the limit.
    assert_eq!(put_status(&s3, "a", 2 * MIB).await.err(), None);
    assert_eq!(put_status(&s3, "b", MIB).await.err(), None);
    // One byte more is refused, and changes nothing.
    let refused = put_status(&s3, "c", 1).await.expect_err("refused");
    assert_eq!(refused.0, 403, "{refused:?}");
    assert!(refused.1.contains("QuotaExceeded"), "{refused:?}");
    assert!(
        s3.head_object()
            .bucket("quota")
            .key("c")
            .send()
            .await
            .is_err()
    );
    // Shrinking an object is allowed; then a CompleteMultipartUpload that
    // would pass the limit is refused and the upload stays.
    assert_eq!(put_status(&s3, "b", MIB - 10).await.err(), None);
    let data = pattern(9, 5 * MIB + 11);
    let (id, parts) = upload_parts(&s3, "quota", "multi", &data, 5 * MIB).await;
    let err = complete(&s3, "quota", "multi", &id, parts.clone())
        .await
        .expect_err("past the quota");
    assert!(err.contains("QuotaExceeded"), "{err}");
    // Raise the limit to exactly what it needs: it completes.
    let needed = (2 * MIB + MIB - 10 + 5 * MIB + 11) as u64;
    let out = cluster.cli(&[
        "bucket",
        "quota",
        "quota",
        "--max-bytes",
        &needed.to_string(),
        "--max-objects",
        "3",
    ]);
    assert!(out.status.success());
    complete(&s3, "quota", "multi", &id, parts).await.unwrap();
    assert_eq!(get_bytes(&s3, "quota", "multi").await, data);
    // The object count: three objects are the limit.
    let info = bucket_info(&cluster, "quota");
    assert_eq!(info["objects"].as_u64(), Some(3), "{info}");
    assert_eq!(info["bytes"].as_u64(), Some(needed), "{info}");
    let out = cluster.cli(&["bucket", "quota", "quota", "--max-objects", "3"]);
    assert!(out.status.success());
    let refused = put_status(&s3, "d", 1)
        .await
        .expect_err("a fourth object is refused");
    assert_eq!(refused.0, 403, "{refused:?}");
}

/// The references of noncurrent versions are confirmed by the audit (a
/// version moved out of `Objects` before the audit saw it is committed
/// all the same), so collection never takes their chunks; removing the
/// versions by id gives their space back.
#[tokio::test]
async fn noncurrent_versions_keep_their_chunks_until_they_are_removed() {
    use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
    let grace = 2;
    let cluster = Cluster::start_with(options(grace)).await.unwrap();
    let s3 = cluster.s3();
    s3.create_bucket().bucket("versioned").send().await.unwrap();
    s3.put_bucket_versioning()
        .bucket("versioned")
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let bodies = [pattern(71, 3 * MIB + 5), pattern(72, 2 * MIB)];
    let mut ids = Vec::new();
    for body in &bodies {
        let out = s3
            .put_object()
            .bucket("versioned")
            .key("k")
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
        ids.push(out.version_id().unwrap().to_owned());
    }
    // Both versions noncurrent before the audit looks at their references.
    s3.delete_object()
        .bucket("versioned")
        .key("k")
        .send()
        .await
        .unwrap();
    tokio::time::sleep(cairn_node::gc::AUDIT_AFTER + Duration::from_secs(1)).await;
    cluster.gc_pass();
    tokio::time::sleep(Duration::from_secs(grace + 1)).await;
    cluster.gc_pass();
    for (body, id) in bodies.iter().zip(&ids) {
        let got = s3
            .get_object()
            .bucket("versioned")
            .key("k")
            .version_id(id)
            .send()
            .await
            .unwrap_or_else(|e| panic!("version {id} after collection: {e:?}"));
        let got = got.body.collect().await.unwrap().into_bytes();
        assert_eq!(blake3::hash(&got), blake3::hash(body), "version {id}");
    }
    for id in &ids {
        s3.delete_object()
            .bucket("versioned")
            .key("k")
            .version_id(id)
            .send()
            .await
            .unwrap();
    }
    cluster
        .wait_drops_done(Duration::from_secs(120))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(grace + 1)).await;
    cluster.gc_pass();
    for body in &bodies {
        for chunk in chunk_ids(body) {
            assert_eq!(
                cluster.shard_files_of(&chunk),
                vec![],
                "chunk {chunk} of a removed version"
            );
        }
    }
}
