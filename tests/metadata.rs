//! Metadata on consensus, from the outside: conditional writes that are safe
//! as locks, CreateBucket with one winner, linearizable histories while
//! nodes are killed, leader failover time, and how soon a deleted key or
//! bucket stops working on another gateway.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use cairn_tests::linearizability::{self, Event, Op, Outcome};
use cairn_tests::{Cluster, Options, client_without_retries, digest, seed};
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn status<E>(e: &aws_sdk_s3::error::SdkError<E>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

fn md5_hex(body: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(body))
}

async fn put_if_absent(s3: &Client, bucket: &str, key: &str, body: Vec<u8>) -> Option<u16> {
    match s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .if_none_match("*")
        .body(ByteStream::from(body))
        .send()
        .await
    {
        Ok(_) => Some(200),
        Err(e) => status(&e),
    }
}

#[tokio::test]
async fn if_none_match_has_one_winner_per_key_across_gateways() {
    let mut opts = Options::nodes(6);
    opts.gateways = 2;
    let cluster = Cluster::start_with(opts).await.unwrap();
    let s3 = [cluster.s3_once_at(0), cluster.s3_once_at(1)];
    s3[0].create_bucket().bucket("locks").send().await.unwrap();
    let s3 = Arc::new(s3);
    let mut tasks = Vec::new();
    for c in 0..16usize {
        let s3 = s3.clone();
        tasks.push(tokio::spawn(async move {
            let mut won = Vec::new();
            for k in 0..50 {
                let body = format!("client {c} owns lock {k}").into_bytes();
                match put_if_absent(&s3[c % 2], "locks", &format!("lock-{k}"), body).await {
                    Some(200) => won.push(k),
                    Some(412) => {}
                    other => panic!("client {c}, lock {k}: unexpected answer {other:?}"),
                }
            }
            (c, won)
        }));
    }
    let mut winners: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for t in tasks {
        let (c, won) = t.await.unwrap();
        for k in won {
            winners.entry(k).or_default().push(c);
        }
    }
    for k in 0..50 {
        let w = winners.get(&k).cloned().unwrap_or_default();
        assert_eq!(w.len(), 1, "lock {k}: winners {w:?}");
        let stored = cairn_tests::get_bytes(&s3[k % 2], "locks", &format!("lock-{k}")).await;
        assert_eq!(
            stored,
            format!("client {} owns lock {k}", w[0]).into_bytes(),
            "lock {k}: the stored bytes are the winner's"
        );
    }
}

/// The counter object: the count and the tags of every increment in it.
fn parse_counter(body: &[u8]) -> (u64, Vec<String>) {
    let text = String::from_utf8_lossy(body);
    let mut lines = text.lines();
    let n = lines.next().and_then(|l| l.parse().ok()).unwrap_or(0);
    (n, lines.map(str::to_owned).collect())
}

#[tokio::test]
async fn if_match_increments_lose_nothing_while_a_node_restarts() {
    let mut opts = Options::nodes(6);
    opts.gateways = 2;
    let mut cluster = Cluster::start_with(opts).await.unwrap();
    let s3 = [cluster.s3_once_at(0), cluster.s3_once_at(1)];
    s3[0].create_bucket().bucket("count").send().await.unwrap();
    cairn_tests::put_bytes(&s3[0], "count", "n", b"0\n".to_vec()).await;
    let s3 = Arc::new(s3);
    let mut tasks = Vec::new();
    for c in 0..8usize {
        let s3 = s3.clone();
        tasks.push(tokio::spawn(async move {
            let s3 = &s3[c % 2];
            let mut retries = 0u32;
            for i in 0..25 {
                let tag = format!("c{c}-{i}");
                loop {
                    let Ok(got) = s3.get_object().bucket("count").key("n").send().await else {
                        retries += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    let body = got.body.collect().await.unwrap().into_bytes().to_vec();
                    let (n, mut tags) = parse_counter(&body);
                    // An earlier attempt whose answer was lost may have
                    // counted already: its tag says so.
                    if tags.contains(&tag) {
                        break;
                    }
                    tags.push(tag.clone());
                    let next = format!("{}\n{}", n + 1, tags.join("\n")).into_bytes();
                    match s3
                        .put_object()
                        .bucket("count")
                        .key("n")
                        .if_match(md5_hex(&body))
                        .body(ByteStream::from(next))
                        .send()
                        .await
                    {
                        Ok(_) => break,
                        Err(e) if status(&e) == Some(412) => retries += 1,
                        Err(_) => {
                            retries += 1;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }
            retries
        }));
    }
    // Kill a storage node in the middle of it, and bring it back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.kill_node(2);
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.restart_node(2).await.unwrap();
    let mut retries = 0;
    for t in tasks {
        retries += t.await.unwrap();
    }
    let body = cairn_tests::get_bytes(&s3[0], "count", "n").await;
    let (n, tags) = parse_counter(&body);
    eprintln!("final count {n}, {retries} retries (412s and failures)");
    assert_eq!(n, 200, "every acknowledged increment counted once");
    let unique: std::collections::BTreeSet<_> = tags.iter().collect();
    assert_eq!(unique.len(), 200);
}

#[tokio::test]
async fn create_bucket_has_one_owner_and_the_loser_gets_no_access() {
    let cluster = Cluster::start(6).await;
    let endpoint = cluster.endpoint(0);
    let (a, a_secret) = cluster.create_key("a").await.unwrap();
    let (b, b_secret) = cluster.create_key("b").await.unwrap();
    let clients = Arc::new([
        client_without_retries(&endpoint, &a, &a_secret),
        client_without_retries(&endpoint, &b, &b_secret),
    ]);
    for round in 0..50 {
        let name = format!("race-{round}");
        let both = [0, 1].map(|i| {
            let (clients, name) = (clients.clone(), name.clone());
            tokio::spawn(async move {
                match clients[i].create_bucket().bucket(&name).send().await {
                    Ok(_) => Ok(()),
                    Err(e) => Err((status(&e), e.into_service_error().code().map(str::to_owned))),
                }
            })
        });
        let [ra, rb] = both;
        let results = [ra.await.unwrap(), rb.await.unwrap()];
        let winners: Vec<usize> = (0..2).filter(|&i| results[i].is_ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        let loser = 1 - winners[0];
        assert_eq!(
            results[loser].clone().unwrap_err(),
            (Some(409), Some("BucketAlreadyExists".to_owned())),
            "round {round}"
        );
        // The loser can neither see nor write the winner's bucket.
        let head = clients[loser].head_bucket().bucket(&name).send().await;
        assert_eq!(
            head.err().and_then(|e| status(&e)),
            Some(403),
            "round {round}"
        );
        let put = clients[loser]
            .put_object()
            .bucket(&name)
            .key("k")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await;
        assert_eq!(
            put.err().and_then(|e| status(&e)),
            Some(403),
            "round {round}"
        );
    }
}

/// One client's operation on one of the keys, recorded.
async fn run_op(s3: &Client, key: &str, op: Op, start: Instant) -> Event {
    let call = start.elapsed().as_micros() as u64;
    let body = |v: u32| ByteStream::from(format!("value {v}").into_bytes());
    let etag = |v: u32| md5_hex(format!("value {v}").as_bytes());
    let outcome = match op {
        Op::Get => match s3.get_object().bucket("lin").key(key).send().await {
            Ok(out) => match out.body.collect().await {
                Ok(b) => {
                    let text = String::from_utf8_lossy(&b.into_bytes()).into_owned();
                    Outcome::Read(text.strip_prefix("value ").and_then(|v| v.parse().ok()))
                }
                Err(_) => Outcome::Unknown,
            },
            Err(e) if status(&e) == Some(404) => Outcome::Read(None),
            Err(_) => Outcome::Unknown,
        },
        Op::Delete => match s3.delete_object().bucket("lin").key(key).send().await {
            Ok(_) => Outcome::Done,
            Err(_) => Outcome::Unknown,
        },
        Op::Put(v) | Op::PutIfAbsent(v) | Op::PutIfMatch { value: v, .. } => {
            let mut req = s3.put_object().bucket("lin").key(key).body(body(v));
            req = match op {
                Op::PutIfAbsent(_) => req.if_none_match("*"),
                Op::PutIfMatch { expected, .. } => req.if_match(etag(expected)),
                _ => req,
            };
            match req.send().await {
                Ok(_) => Outcome::Done,
                Err(e) => match status(&e) {
                    Some(412) => Outcome::PreconditionFailed,
                    Some(404) => Outcome::NotFound,
                    _ => Outcome::Unknown,
                },
            }
        }
    };
    let ret = if outcome == Outcome::Unknown {
        u64::MAX
    } else {
        start.elapsed().as_micros() as u64
    };
    Event {
        client: 0,
        op,
        outcome,
        call,
        ret,
    }
}

#[tokio::test]
async fn histories_stay_linearizable_while_nodes_are_killed() {
    let seed = seed();
    let mut opts = Options::nodes(6);
    opts.gateways = 2;
    let mut cluster = Cluster::start_with(opts).await.unwrap();
    let s3 = Arc::new([cluster.s3_once_at(0), cluster.s3_once_at(1)]);
    s3[0].create_bucket().bucket("lin").send().await.unwrap();
    const KEYS: usize = 6;
    const CLIENTS: usize = 8;
    const OPS_PER_CLIENT: usize = 150;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let s3 = s3.clone();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed.wrapping_add(c as u64));
        tasks.push(tokio::spawn(async move {
            let mut events = Vec::new();
            for i in 0..OPS_PER_CLIENT {
                let key = rng.random_range(0..KEYS);
                let value = (c * 1000 + i) as u32;
                // An If-Match names a value this client wrote before on the
                // key, or one it read.
                let op = match rng.random_range(0..10) {
                    0..=2 => Op::Get,
                    3..=4 => Op::Put(value),
                    5..=6 => Op::PutIfAbsent(value),
                    7..=8 => Op::PutIfMatch {
                        expected: last_seen(&events, key).unwrap_or(value),
                        value,
                    },
                    _ => Op::Delete,
                };
                let mut e = run_op(&s3[(c + i) % 2], &format!("k{key}"), op, start).await;
                e.client = c;
                events.push((key, e));
            }
            events
        }));
    }
    // Faults: kill a random node now and then, bring it back later; never
    // more than one down at once.
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut kills = 0;
    while !tasks.iter().all(|t| t.is_finished()) {
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..1200))).await;
        let victim = rng.random_range(0..cluster.node_count());
        cluster.kill_node(victim);
        kills += 1;
        tokio::time::sleep(Duration::from_millis(rng.random_range(500..2500))).await;
        cluster.restart_node(victim).await.unwrap();
    }
    let mut by_key: BTreeMap<usize, Vec<Event>> = BTreeMap::new();
    for t in tasks {
        for (key, e) in t.await.unwrap() {
            by_key.entry(key).or_default().push(e);
        }
    }
    let unknown = by_key
        .values()
        .flatten()
        .filter(|e| e.outcome == Outcome::Unknown)
        .count();
    eprintln!(
        "{} operations on {KEYS} keys, {kills} nodes killed, {unknown} outcomes unknown",
        CLIENTS * OPS_PER_CLIENT
    );
    for (key, history) in &by_key {
        if let Err(e) = linearizability::check(history) {
            panic!("key k{key} (SEED={seed}): {e}\n{history:#?}");
        }
    }
}

/// The value a client last wrote or read on `key`.
fn last_seen(events: &[(usize, Event)], key: usize) -> Option<u32> {
    events.iter().rev().find_map(|(k, e)| {
        if *k != key {
            return None;
        }
        match (e.op, e.outcome) {
            (_, Outcome::Read(v)) => v,
            (Op::Put(v) | Op::PutIfAbsent(v) | Op::PutIfMatch { value: v, .. }, Outcome::Done) => {
                Some(v)
            }
            _ => None,
        }
    })
}

#[tokio::test]
async fn a_killed_leader_is_replaced_within_seconds() {
    let mut cluster = Cluster::start(6).await;
    let s3 = cluster.s3_once_at(0);
    s3.create_bucket().bucket("failover").send().await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut writers = Vec::new();
    for w in 0..4 {
        let (s3, stop) = (s3.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let r = s3
                    .put_object()
                    .bucket("failover")
                    .key(format!("w{w}/{i}"))
                    .body(ByteStream::from(vec![b'x'; 1024]))
                    .send()
                    .await;
                if r.is_ok() {
                    acked.push(start.elapsed());
                }
                i += 1;
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (leader, group) = cluster.leader_of_busiest_group().await.unwrap();
    let killed_at = start.elapsed();
    cluster.kill_node(leader);
    tokio::time::sleep(Duration::from_secs(8)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked: Vec<Duration> = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    acked.sort();
    let gap = acked
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    let after_kill = acked.iter().filter(|t| **t > killed_at).count();
    eprintln!(
        "killed the leader of {group} (node {leader}) at {killed_at:?}; {} PUTs acknowledged, \
         {after_kill} after; longest gap between acknowledged PUTs: {gap:?}",
        acked.len()
    );
    assert!(after_kill > 0, "writes resumed");
    assert!(gap <= Duration::from_secs(5), "longest gap {gap:?}");
}

#[tokio::test]
async fn a_deleted_key_or_bucket_stops_working_on_every_gateway_within_a_second() {
    let mut opts = Options::nodes(6);
    opts.gateways = 2;
    let cluster = Cluster::start_with(opts).await.unwrap();
    let (id, secret) = cluster.create_key("short-lived").await.unwrap();
    let root = cluster.s3_once_at(0);
    root.create_bucket().bucket("shared").send().await.unwrap();
    cluster
        .admin_post(
            "/_cairn/admin/v1/buckets/shared/allow",
            serde_json::json!({ "access_key_id": id }),
        )
        .await
        .unwrap();
    // The other gateway uses (and caches) the key.
    let other = client_without_retries(&cluster.endpoint(1), &id, &secret);
    let use_it = || async {
        other
            .put_object()
            .bucket("shared")
            .key("k")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while use_it().await.is_err() {
        assert!(Instant::now() < deadline, "the new key never worked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster
        .admin_delete(&format!("/_cairn/admin/v1/keys/{id}"))
        .await
        .unwrap();
    let deleted = Instant::now();
    let refused_after = loop {
        match use_it().await {
            Err(e) if status(&e) == Some(403) => break deleted.elapsed(),
            _ => {}
        }
        assert!(
            deleted.elapsed() < Duration::from_secs(5),
            "the deleted key still works"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    eprintln!("deleted key refused by the other gateway after {refused_after:?}");
    // The bound is one second, plus the polling of this test.
    assert!(
        refused_after <= Duration::from_millis(1100),
        "{refused_after:?}"
    );

    // A deleted bucket: gone on the other gateway as soon, and a bucket
    // created again under its name is empty.
    let root_other = cluster.s3_once_at(1);
    root.delete_object()
        .bucket("shared")
        .key("k")
        .send()
        .await
        .unwrap();
    assert!(
        root_other
            .head_bucket()
            .bucket("shared")
            .send()
            .await
            .is_ok()
    );
    root.delete_bucket().bucket("shared").send().await.unwrap();
    let deleted = Instant::now();
    let gone_after = loop {
        match root_other.head_bucket().bucket("shared").send().await {
            Err(e) if status(&e) == Some(404) => break deleted.elapsed(),
            _ => {}
        }
        assert!(
            deleted.elapsed() < Duration::from_secs(5),
            "the deleted bucket still answers"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    eprintln!("deleted bucket gone on the other gateway after {gone_after:?}");
    assert!(gone_after <= Duration::from_millis(1100), "{gone_after:?}");
}

#[tokio::test]
async fn a_recreated_bucket_starts_empty_and_sixteen_writers_on_one_key_see_no_5xx() {
    let cluster = Cluster::start(6).await;
    let s3 = cluster.s3_once_at(0);
    s3.create_bucket().bucket("again").send().await.unwrap();
    let upload = s3
        .create_multipart_upload()
        .bucket("again")
        .key("pending")
        .send()
        .await
        .unwrap();
    // Not empty: an upload in progress keeps the bucket.
    let e = s3.delete_bucket().bucket("again").send().await.unwrap_err();
    assert_eq!(e.into_service_error().code(), Some("BucketNotEmpty"));
    s3.abort_multipart_upload()
        .bucket("again")
        .key("pending")
        .upload_id(upload.upload_id().unwrap())
        .send()
        .await
        .unwrap();
    cairn_tests::put_bytes(&s3, "again", "old", b"old".to_vec()).await;
    s3.delete_object()
        .bucket("again")
        .key("old")
        .send()
        .await
        .unwrap();
    s3.delete_bucket().bucket("again").send().await.unwrap();
    s3.create_bucket().bucket("again").send().await.unwrap();
    let listed = s3.list_objects_v2().bucket("again").send().await.unwrap();
    assert_eq!(listed.key_count(), Some(0));
    let uploads = s3
        .list_multipart_uploads()
        .bucket("again")
        .send()
        .await
        .unwrap();
    assert!(
        uploads.uploads().is_empty(),
        "the old bucket's uploads are not inherited"
    );

    let s3 = Arc::new(s3);
    let mut tasks = Vec::new();
    for w in 0..16 {
        let s3 = s3.clone();
        tasks.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            for i in 0..20 {
                let body = format!("writer {w} round {i}");
                if let Err(e) = s3
                    .put_object()
                    .bucket("again")
                    .key("contended")
                    .body(ByteStream::from(body.into_bytes()))
                    .send()
                    .await
                {
                    failures.push(format!(
                        "{:?} {:?}",
                        status(&e),
                        e.into_service_error().code()
                    ));
                }
            }
            failures
        }));
    }
    let mut failures = Vec::new();
    for t in tasks {
        failures.extend(t.await.unwrap());
    }
    assert!(
        failures.is_empty(),
        "{} failed PUTs: {failures:?}",
        failures.len()
    );
    let last = cairn_tests::get_bytes(&s3, "again", "contended").await;
    assert!(
        String::from_utf8_lossy(&last).starts_with("writer "),
        "{}",
        digest(&last)
    );
}

#[tokio::test]
async fn of_two_concurrent_layout_changes_one_wins_and_the_other_is_told() {
    let cluster = Cluster::start(6).await;
    let layout = cluster.admin_get("/_cairn/admin/v1/layout").await.unwrap();
    let node = layout["current"]["nodes"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let version = layout["current"]["version"].as_u64().unwrap();
    // Stage a change (a new zone name: it moves nothing), then apply it
    // from two clients at once.
    cluster
        .admin_post(
            "/_cairn/admin/v1/layout/assign",
            serde_json::json!({"node_id": node, "zone": "elsewhere", "capacity": 1}),
        )
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let apply = || {
        let (http, url, token) = (
            http.clone(),
            format!("{}/_cairn/admin/v1/layout/apply", cluster.endpoint(0)),
            cluster.admin_token.clone(),
        );
        tokio::spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(token)
                .json(&serde_json::json!({ "force": true }))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    let (a, b) = (apply(), apply());
    let results = [a.await.unwrap(), b.await.unwrap()];
    let won: Vec<_> = results.iter().filter(|(s, _)| *s == 200).collect();
    let lost: Vec<_> = results.iter().filter(|(s, _)| *s == 409).collect();
    assert_eq!((won.len(), lost.len()), (1, 1), "{results:?}");
    assert!(lost[0].1.contains("LayoutConflict"), "{}", lost[0].1);
    let after = cluster.admin_get("/_cairn/admin/v1/layout").await.unwrap();
    assert_eq!(after["current"]["version"].as_u64(), Some(version + 1));
}

#[tokio::test]
async fn conditional_complete_and_copy_are_decided_when_they_commit() {
    let cluster = Cluster::start(6).await;
    let s3 = cluster.s3_once_at(0);
    s3.create_bucket().bucket("cond").send().await.unwrap();
    cairn_tests::put_bytes(&s3, "cond", "taken", b"first".to_vec()).await;
    cairn_tests::put_bytes(&s3, "cond", "source", b"copy me".to_vec()).await;
    // CompleteMultipartUpload with If-None-Match: * on a key that exists.
    let up = s3
        .create_multipart_upload()
        .bucket("cond")
        .key("taken")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap().to_owned();
    let part = s3
        .upload_part()
        .bucket("cond")
        .key("taken")
        .upload_id(&id)
        .part_number(1)
        .body(ByteStream::from_static(b"second"))
        .send()
        .await
        .unwrap();
    let parts = aws_sdk_s3::types::CompletedMultipartUpload::builder()
        .parts(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(1)
                .e_tag(part.e_tag().unwrap())
                .build(),
        )
        .build();
    let e = s3
        .complete_multipart_upload()
        .bucket("cond")
        .key("taken")
        .upload_id(&id)
        .if_none_match("*")
        .multipart_upload(parts.clone())
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), Some(412));
    assert_eq!(cairn_tests::get_bytes(&s3, "cond", "taken").await, b"first");
    // The upload is still there: completing it onto a free key works.
    s3.complete_multipart_upload()
        .bucket("cond")
        .key("taken")
        .upload_id(&id)
        .if_match(md5_hex(b"first"))
        .multipart_upload(parts)
        .send()
        .await
        .unwrap();
    assert_eq!(
        cairn_tests::get_bytes(&s3, "cond", "taken").await,
        b"second"
    );
    // CopyObject with If-None-Match: * onto an existing key.
    let e = s3
        .copy_object()
        .bucket("cond")
        .key("taken")
        .copy_source("cond/source")
        .customize()
        .mutate_request(|r| {
            r.headers_mut().insert("if-none-match", "*");
        })
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), Some(412));
    assert_eq!(
        cairn_tests::get_bytes(&s3, "cond", "taken").await,
        b"second"
    );
}
