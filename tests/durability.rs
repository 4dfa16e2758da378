//! Durability through failures: lost nodes, corrupted and deleted shard
//! files, restarts. Content is compared by hash, never by status alone.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use cairn_tests::{Cluster, digest, get_bytes as get, pattern, put_bytes as put};

async fn multipart(s3: &Client, bucket: &str, key: &str, parts: &[Vec<u8>]) {
    let up = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let mut done = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let n = i as i32 + 1;
        let out = s3
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(id)
            .part_number(n)
            .body(ByteStream::from(p.clone()))
            .send()
            .await
            .unwrap();
        done.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(out.e_tag().unwrap())
                .build(),
        );
    }
    s3.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .unwrap();
}

const SIZES: [usize; 5] = [0, 100, 40_000, 1 << 20, (2 << 20) + 777];

#[tokio::test]
async fn any_two_nodes_lost_everything_still_reads() {
    let seed = cairn_tests::seed();
    let mut cluster = Cluster::start(6).await;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("degraded").send().await.unwrap();
    for (i, size) in SIZES.iter().enumerate() {
        put(
            &s3,
            "degraded",
            &format!("obj{i}"),
            pattern(seed + i as u64, *size),
        )
        .await;
    }
    let parts = vec![pattern(seed + 100, 5 << 20), pattern(seed + 101, 3000)];
    multipart(&s3, "degraded", "mp", &parts).await;

    // Two nodes chosen by the seed.
    let a = (seed % 6) as usize;
    let b = (a + 1 + (seed / 6 % 5) as usize) % 6;
    eprintln!("killing nodes {a} and {b}");
    cluster.kill_node(a);
    cluster.kill_node(b);

    for (i, size) in SIZES.iter().enumerate() {
        let back = get(&s3, "degraded", &format!("obj{i}")).await;
        assert_eq!(
            digest(&back),
            digest(&pattern(seed + i as u64, *size)),
            "obj{i}"
        );
        let head = s3
            .head_object()
            .bucket("degraded")
            .key(format!("obj{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(head.content_length(), Some(*size as i64));
    }
    assert_eq!(
        digest(&get(&s3, "degraded", "mp").await),
        digest(&parts.concat())
    );
    let listed = s3
        .list_objects_v2()
        .bucket("degraded")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(SIZES.len() as i32 + 1));
    // Metadata writes still work: small (inline) objects and deletes.
    put(
        &s3,
        "degraded",
        "small-while-degraded",
        b"still writable".to_vec(),
    )
    .await;
    assert_eq!(
        get(&s3, "degraded", "small-while-degraded").await,
        b"still writable"
    );
    s3.delete_object()
        .bucket("degraded")
        .key("obj0")
        .send()
        .await
        .unwrap();
    assert!(
        s3.head_object()
            .bucket("degraded")
            .key("obj0")
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn one_node_lost_writes_succeed_and_read_back_after_it_returns() {
    let seed = cairn_tests::seed();
    let mut cluster = Cluster::start(6).await;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("writes").send().await.unwrap();
    put(&s3, "writes", "before", pattern(seed, 3 << 20)).await;
    let victim = (seed % 6) as usize;
    cluster.kill_node(victim);

    for (i, size) in SIZES.iter().enumerate() {
        put(
            &s3,
            "writes",
            &format!("during{i}"),
            pattern(seed + 10 + i as u64, *size),
        )
        .await;
    }
    let parts = vec![
        pattern(seed + 200, 5 << 20),
        pattern(seed + 201, 5 << 20),
        pattern(seed + 202, 10),
    ];
    multipart(&s3, "writes", "mp-during", &parts).await;
    s3.delete_object()
        .bucket("writes")
        .key("before")
        .send()
        .await
        .unwrap();

    let below: Vec<String> = cluster
        .shard_counts()
        .into_iter()
        .filter(|(_, n)| *n < 6)
        .map(|(c, _)| c)
        .collect();
    assert!(
        !below.is_empty(),
        "writes during the outage left chunks one shard short"
    );
    cluster.restart_node(victim).await.unwrap();
    cluster.wait_healthy().await.unwrap();
    // The shards the outage cost are rebuilt from the repair hints, without
    // any read asking for them.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let counts = cluster.shard_counts();
        let short: Vec<_> = below
            .iter()
            .filter(|c| counts.get(*c).copied().unwrap_or(0) < 6)
            .collect();
        if short.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still short after the node returned: {short:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for (i, size) in SIZES.iter().enumerate() {
        let back = get(&s3, "writes", &format!("during{i}")).await;
        assert_eq!(
            digest(&back),
            digest(&pattern(seed + 10 + i as u64, *size)),
            "during{i}"
        );
    }
    assert_eq!(
        digest(&get(&s3, "writes", "mp-during").await),
        digest(&parts.concat())
    );
    assert!(
        s3.head_object()
            .bucket("writes")
            .key("before")
            .send()
            .await
            .is_err(),
        "the delete holds after the node returns"
    );
    // And with a different node down now, the degraded writes still read.
    let other = (victim + 3) % 6;
    cluster.kill_node(other);
    for (i, size) in SIZES.iter().enumerate() {
        let back = get(&s3, "writes", &format!("during{i}")).await;
        assert_eq!(
            digest(&back),
            digest(&pattern(seed + 10 + i as u64, *size)),
            "during{i} with node {other} down"
        );
    }
}

#[tokio::test]
async fn a_hung_node_is_routed_around() {
    let seed = cairn_tests::seed();
    let mut cluster = Cluster::start(6).await;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("hung").send().await.unwrap();
    for (i, size) in SIZES.iter().enumerate() {
        put(
            &s3,
            "hung",
            &format!("obj{i}"),
            pattern(seed + i as u64, *size),
        )
        .await;
    }
    let victim = (seed % 6) as usize;
    eprintln!("pausing node {victim}");
    cluster.pause_node(victim);
    for (i, size) in SIZES.iter().enumerate() {
        let back = get(&s3, "hung", &format!("obj{i}")).await;
        assert_eq!(
            digest(&back),
            digest(&pattern(seed + i as u64, *size)),
            "obj{i}"
        );
    }
    put(&s3, "hung", "during", pattern(seed + 50, (2 << 20) + 5)).await;
    assert_eq!(
        digest(&get(&s3, "hung", "during").await),
        digest(&pattern(seed + 50, (2 << 20) + 5))
    );
    s3.delete_object()
        .bucket("hung")
        .key("obj1")
        .send()
        .await
        .unwrap();
    let listed = s3.list_objects_v2().bucket("hung").send().await.unwrap();
    assert_eq!(listed.key_count(), Some(SIZES.len() as i32));
    cluster.resume_node(victim);
    cluster.wait_healthy().await.unwrap();
    assert_eq!(
        digest(&get(&s3, "hung", "during").await),
        digest(&pattern(seed + 50, (2 << 20) + 5))
    );
}

#[tokio::test]
async fn corrupted_or_deleted_shards_are_never_served() {
    let cluster = Cluster::start(6).await;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("corrupt").send().await.unwrap();
    // Exactly one chunk (the harness uses 1 MiB chunks).
    let body = pattern(42, 1 << 20);
    put(&s3, "corrupt", "victim", body.clone()).await;
    let all: Vec<_> = (0..cluster.node_count())
        .flat_map(|i| cluster.shard_files(i).into_iter().map(move |p| (i, p)))
        .collect();
    assert_eq!(all.len(), 6, "one chunk, six shards");
    let find = |idx: &str| {
        all.iter()
            .find(|(_, p)| p.extension().is_some_and(|e| e == idx))
            .unwrap()
            .clone()
    };
    let original: Vec<Vec<u8>> = (0..6)
        .map(|i| std::fs::read(&find(&i.to_string()).1).unwrap())
        .collect();
    // Reads rewrite the shards they found missing or corrupt, in the
    // background; wait (bounded) until shard `i` is whole again.
    let repaired = |i: usize| {
        let path = find(&i.to_string()).1;
        let want = original[i].clone();
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while std::fs::read(&path).ok().as_ref() != Some(&want) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "shard {i} never repaired"
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    };

    // Flip one byte in the middle of data shard 0.
    let (corrupt_node, path) = find("0");
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(
        digest(&get(&s3, "corrupt", "victim").await),
        digest(&body),
        "reconstructed around a corrupt shard"
    );
    let stats = cluster.node_stats().await.unwrap();
    let corrupt_seen: u64 = stats
        .iter()
        .map(|n| n["stats"]["corrupt_shards_detected"].as_u64().unwrap_or(0))
        .sum();
    assert!(corrupt_seen >= 1, "corruption is counted: {stats:?}");
    let metrics = reqwest::get(format!(
        "http://{}/metrics",
        cluster.node_addr(corrupt_node)
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("cairn_node_corrupt_shards_detected") && !l.ends_with(" 0")),
        "{metrics}"
    );
    repaired(0).await;

    // Two data shards gone: still readable, ranges too, and both come back.
    std::fs::remove_file(find("1").1).unwrap();
    std::fs::remove_file(find("2").1).unwrap();
    assert_eq!(
        digest(&get(&s3, "corrupt", "victim").await),
        digest(&body),
        "reconstructed from parity"
    );
    let out = s3
        .get_object()
        .bucket("corrupt")
        .key("victim")
        .range("bytes=1000-2000")
        .send()
        .await
        .unwrap();
    assert_eq!(
        &out.body.collect().await.unwrap().into_bytes()[..],
        &body[1000..=2000]
    );
    repaired(1).await;
    repaired(2).await;

    // Three losses at once are beyond a 4+2 code: an error, never wrong bytes.
    for i in 3..6 {
        std::fs::remove_file(find(&i.to_string()).1).unwrap();
    }
    let e = s3.get_object().bucket("corrupt").key("victim").send().await;
    match e {
        Err(e) => assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(503)),
        Ok(out) => {
            let r = out.body.collect().await;
            assert!(
                r.is_err() || digest(&r.unwrap().into_bytes()) == digest(&body),
                "wrong bytes served"
            );
        }
    }
}

#[tokio::test]
async fn identical_content_is_stored_once() {
    let cluster = Cluster::start(6).await;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("dedup").send().await.unwrap();
    let body = pattern(5, 64 << 20);
    put(&s3, "dedup", "one", body.clone()).await;
    let shard_bytes = |stats: &Vec<serde_json::Value>| -> u64 {
        stats
            .iter()
            .map(|n| n["stats"]["shard_bytes"].as_u64().unwrap_or(0))
            .sum()
    };
    let after_one = shard_bytes(&cluster.node_stats().await.unwrap());
    put(&s3, "dedup", "two", body.clone()).await;
    let after_two = shard_bytes(&cluster.node_stats().await.unwrap());
    assert_eq!(after_one, after_two, "the second copy adds no shard bytes");
    // 64 MiB at 4+2 is 96 MiB of shards.
    assert_eq!(after_one, 96 << 20);
    assert_eq!(digest(&get(&s3, "dedup", "two").await), digest(&body));
}

#[tokio::test]
async fn two_gateways_read_each_others_writes() {
    let mut opts = cairn_tests::Options::nodes(6);
    opts.gateways = 2;
    let cluster = Cluster::start_with(opts).await.unwrap();
    let (a, b) = (cluster.s3_at(0), cluster.s3_at(1));
    a.create_bucket().bucket("across").send().await.unwrap();
    for i in 0..20u64 {
        let (w, r) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let key = format!("k{}", i % 3);
        let body = pattern(i, 1000 + i as usize * 5000);
        put(w, "across", &key, body.clone()).await;
        assert_eq!(
            digest(&get(r, "across", &key).await),
            digest(&body),
            "read-after-write across gateways, step {i}"
        );
        let listed = r.list_objects_v2().bucket("across").send().await.unwrap();
        assert!(listed.contents().iter().any(|o| o.key() == Some(&key)));
        if i % 5 == 4 {
            w.delete_object()
                .bucket("across")
                .key(&key)
                .send()
                .await
                .unwrap();
            assert!(
                r.head_object()
                    .bucket("across")
                    .key(&key)
                    .send()
                    .await
                    .is_err(),
                "delete visible across gateways"
            );
        }
    }
}
