//! Healing without an operator: a node lost with its disk is marked out
//! after the grace, its shards are rebuilt on the nodes that take its slots,
//! its metadata groups get other voters, and `repair status` says 0
//! degraded only when that is true (two more nodes are then killed and
//! everything must still read back).

use cairn_tests::{Cluster, Options, digest, get_bytes, pattern, put_bytes, seed};
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Longest wait for the cluster to return to full redundancy.
const HEAL_TIMEOUT: Duration = Duration::from_secs(300);

async fn repair_status(cluster: &Cluster) -> Value {
    cluster
        .admin_get("/_cairn/admin/v1/repair")
        .await
        .unwrap_or(Value::Null)
}

/// Poll until `repair status` says verified with 0 degraded chunks.
async fn wait_verified(cluster: &Cluster, what: &str) -> Value {
    let deadline = Instant::now() + HEAL_TIMEOUT;
    loop {
        let s = repair_status(cluster).await;
        if s["state"] == "verified" && s["degraded_chunks"].as_u64() == Some(0) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not verified in time: {s}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A size from the environment (bytes), or the default.
fn env_bytes(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `HEAL_OBJECT_MAX_BYTES` and `HEAL_CHUNK_BYTES` scale the data for a
/// measurement (docs/PERFORMANCE.md); the defaults keep the test quick.
#[tokio::test]
async fn a_lost_node_is_marked_out_and_rebuilt_then_two_more_can_die() {
    let seed = seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let max_object = env_bytes("HEAL_OBJECT_MAX_BYTES", 1 << 20);
    let mut opts = Options::nodes(7);
    opts.profile = Some((4, 2));
    opts.chunk_size_bytes = env_bytes("HEAL_CHUNK_BYTES", 256 << 10);
    opts.down_out_after_s = Some(20);
    let mut cluster = Cluster::start_with(opts).await.expect("cluster starts");
    let s3 = cluster.s3();
    s3.create_bucket().bucket("heal").send().await.unwrap();
    let mut objects = Vec::new();
    let mut total = 0usize;
    for i in 0..40 {
        let len = rng.random_range(1..max_object);
        let body = pattern(seed ^ i, len);
        total += len;
        objects.push((format!("obj-{i}"), digest(&body)));
        put_bytes(&s3, "heal", &format!("obj-{i}"), body).await;
    }
    let before = wait_verified(&cluster, "before the loss").await;
    let done_before = before["bytes_done"].as_u64().unwrap_or(0);

    // Lose one node with its disk.
    let lost = rng.random_range(0..7);
    cluster.kill_node(lost);
    std::fs::remove_dir_all(cluster.node_data_dir(lost)).unwrap();
    let t0 = Instant::now();
    eprintln!("node {lost} killed and its data deleted ({total} bytes of objects stored)");
    // Until the grace is over the node is only down: repair status must
    // not claim full redundancy.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let early = repair_status(&cluster).await;
    assert!(
        early["degraded_chunks"].as_u64().unwrap_or(1) > 0,
        "a dead owner's chunks are short: {early}"
    );
    // Marked out by the cluster once the grace is over.
    let out_at = loop {
        let layout = cluster.admin_get("/_cairn/admin/v1/layout").await.unwrap();
        if layout["current"]["out"]
            .as_object()
            .is_some_and(|o| !o.is_empty())
        {
            break t0.elapsed();
        }
        assert!(t0.elapsed() < HEAL_TIMEOUT, "never marked out: {layout}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let healed = wait_verified(&cluster, "after the loss").await;
    let took = t0.elapsed();
    let done = healed["bytes_done"].as_u64().unwrap_or(0) - done_before;
    let repair_s = (took - out_at).as_secs_f64();
    eprintln!(
        "marked out {:.1} s after the loss (grace 20 s); full redundancy, verified, {:.1} s after \
         the loss: {done} shard bytes rebuilt in {repair_s:.1} s ({:.2} MB/s from out to verified)",
        out_at.as_secs_f64(),
        took.as_secs_f64(),
        done as f64 / repair_s.max(0.001) / 1e6,
    );

    // Two more nodes die: everything still reads back.
    let others: Vec<usize> = (0..7).filter(|i| *i != lost).collect();
    kill_two_and_read_all(&mut cluster, &mut rng, others, "heal", &objects).await;
}

/// Kill two of `candidates` (seeded), then read every object back intact.
async fn kill_two_and_read_all(
    cluster: &mut Cluster,
    rng: &mut rand::rngs::StdRng,
    mut candidates: Vec<usize>,
    bucket: &str,
    objects: &[(String, String)],
) {
    for _ in 0..2 {
        let i = candidates.remove(rng.random_range(0..candidates.len()));
        eprintln!("killing node {i}");
        cluster.kill_node(i);
    }
    let s3 = cluster.s3();
    for (key, want) in objects {
        assert_eq!(
            &digest(&get_bytes(&s3, bucket, key).await),
            want,
            "{key} reads back intact"
        );
    }
}

/// Read every object in a loop until told to stop; (good, bad) reads.
fn spawn_reader(
    s3: aws_sdk_s3::Client,
    bucket: &'static str,
    objects: Vec<(String, String)>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<(u64, Vec<String>)> {
    tokio::spawn(async move {
        let (mut good, mut bad) = (0u64, Vec::new());
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            for (key, want) in &objects {
                let got = match s3.get_object().bucket(bucket).key(key).send().await {
                    Ok(o) => o.body.collect().await.map(|b| b.into_bytes().to_vec()),
                    Err(e) => {
                        bad.push(format!("{key}: {e:?}"));
                        continue;
                    }
                };
                match got {
                    Ok(bytes) if digest(&bytes) == *want => good += 1,
                    Ok(_) => bad.push(format!("{key}: wrong bytes")),
                    Err(e) => bad.push(format!("{key}: body {e}")),
                }
            }
        }
        (good, bad)
    })
}

/// Stop a reader; assert it saw no failed or wrong read; its good reads.
async fn stop_reader(
    stop: &std::sync::atomic::AtomicBool,
    reader: tokio::task::JoinHandle<(u64, Vec<String>)>,
) -> u64 {
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (good, bad) = reader.await.unwrap();
    assert!(
        bad.is_empty(),
        "{} failed or wrong reads: {:?}",
        bad.len(),
        &bad[..bad.len().min(5)]
    );
    good
}

async fn fill(cluster: &Cluster, bucket: &str, seed: u64, n: u64) -> Vec<(String, String)> {
    let s3 = cluster.s3();
    s3.create_bucket().bucket(bucket).send().await.unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut objects = Vec::new();
    for i in 0..n {
        let len = rng.random_range(1..(1usize << 20));
        let body = pattern(seed ^ i, len);
        objects.push((format!("obj-{i}"), digest(&body)));
        put_bytes(&s3, bucket, &format!("obj-{i}"), body).await;
    }
    objects
}

/// Shards each node holds, by node id.
async fn shards_by_node(cluster: &Cluster) -> std::collections::BTreeMap<String, u64> {
    cluster
        .node_stats()
        .await
        .unwrap()
        .iter()
        .filter_map(|n| Some((n["id"].as_str()?.to_owned(), n["stats"]["shards"].as_u64()?)))
        .collect()
}

/// Sum of a counter over every node's repair report.
fn moved_and_rebuilt(status: &Value) -> u64 {
    status["nodes"]
        .as_array()
        .map(|nodes| {
            nodes
                .iter()
                .map(|n| {
                    n[1]["shards_moved"].as_u64().unwrap_or(0)
                        + n[1]["shards_rebuilt"].as_u64().unwrap_or(0)
                })
                .sum()
        })
        .unwrap_or(0)
}

async fn wait_migrated(cluster: &Cluster, what: &str) -> Value {
    let deadline = Instant::now() + HEAL_TIMEOUT;
    loop {
        let s = wait_verified(cluster, what).await;
        if s["migrating"] == false {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: migration not complete: {s}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn two_nodes_join_while_clients_read_and_only_their_share_moves() {
    let seed = seed();
    let mut opts = Options::nodes(6);
    opts.profile = Some((4, 2));
    opts.chunk_size_bytes = 256 << 10;
    let mut cluster = Cluster::start_with(opts).await.expect("cluster starts");
    let objects = fill(&cluster, "grow", seed, 30).await;
    let before = wait_verified(&cluster, "before growing").await;
    let shards_before: u64 = shards_by_node(&cluster).await.values().sum();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = spawn_reader(cluster.s3(), "grow", objects.clone(), stop.clone());

    let mut added = Vec::new();
    for z in 7..=8 {
        let (_, id) = cluster.add_node().await.unwrap();
        // The new node makes itself known to the others; the gateway finds
        // it through them.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = cluster
                .admin_post(
                    "/_cairn/admin/v1/layout/assign",
                    serde_json::json!({"node_id": id, "zone": format!("z{z}"), "capacity": 1}),
                )
                .await;
            if r.is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {id} never discovered: {r:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        added.push(id);
    }
    let planned = cluster
        .admin_post("/_cairn/admin/v1/layout/apply", serde_json::json!({}))
        .await
        .unwrap();
    eprintln!(
        "planned: {} of {} partitions, {} shard slots move",
        planned["partitions_changed"], planned["partitions"], planned["shards_moved_slots"]
    );
    let after = wait_migrated(&cluster, "after growing").await;
    let good = stop_reader(&stop, reader).await;
    assert!(good > 0);
    eprintln!("{good} reads during the migration, none failed or wrong");

    // Old owners drop what moved once the new owners hold it.
    let deadline = Instant::now() + HEAL_TIMEOUT;
    let shards = loop {
        let shards = shards_by_node(&cluster).await;
        if shards.values().sum::<u64>() == shards_before {
            break shards;
        }
        assert!(
            Instant::now() < deadline,
            "misplaced shards never dropped: {shards:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let total: u64 = shards.values().sum();
    let mean = total as f64 / shards.len() as f64;
    for id in &added {
        let share = shards.get(id).copied().unwrap_or(0) as f64 / mean;
        eprintln!("new node {id}: {:.2} of the mean share", share);
        assert!(
            (0.7..=1.3).contains(&share),
            "{id}: {share:.2} of the mean share: {shards:?}"
        );
    }
    // The ideal: what the new nodes hold (each of their shards had to
    // arrive); their share of the capacity is checked above.
    let moved = moved_and_rebuilt(&after) - moved_and_rebuilt(&before);
    let ideal: u64 = added
        .iter()
        .map(|id| shards.get(id).copied().unwrap_or(0))
        .sum();
    eprintln!(
        "{moved} shards moved; the new nodes hold {ideal} ({:.2}x); capacity share of the \
         shards: {:.0} ({:.2}x); {shards_before} shards before and after",
        moved as f64 / ideal as f64,
        total as f64 * 2.0 / 8.0,
        moved as f64 / (total as f64 * 2.0 / 8.0)
    );
    assert!(
        moved as f64 <= 1.2 * ideal as f64,
        "moved {moved}, ideal {ideal}"
    );

    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    kill_two_and_read_all(&mut cluster, &mut rng, (0..8).collect(), "grow", &objects).await;
}

#[tokio::test]
async fn a_drained_node_can_be_stopped_when_done_and_two_more_can_die() {
    let seed = seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut opts = Options::nodes(7);
    opts.profile = Some((4, 2));
    opts.chunk_size_bytes = 256 << 10;
    let mut cluster = Cluster::start_with(opts).await.expect("cluster starts");
    let objects = fill(&cluster, "drain", seed, 30).await;
    wait_verified(&cluster, "before the drain").await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = spawn_reader(cluster.s3(), "drain", objects.clone(), stop.clone());

    let leaving = rng.random_range(0..7);
    let id = cluster.node_id(leaving).await.unwrap();
    cluster
        .admin_post(
            "/_cairn/admin/v1/layout/remove",
            serde_json::json!({"node_id": id}),
        )
        .await
        .unwrap();
    cluster
        .admin_post("/_cairn/admin/v1/layout/apply", serde_json::json!({}))
        .await
        .unwrap();
    // Done when the node is no longer in the layout.
    let deadline = Instant::now() + HEAL_TIMEOUT;
    loop {
        let nodes = cluster.admin_get("/_cairn/admin/v1/nodes").await.unwrap();
        if !nodes.to_string().contains(&id) {
            break;
        }
        assert!(Instant::now() < deadline, "node {id} never left: {nodes}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let good = stop_reader(&stop, reader).await;
    eprintln!("node {leaving} drained; {good} reads meanwhile, none failed or wrong");
    cluster.kill_node(leaving);
    let others: Vec<usize> = (0..7).filter(|i| *i != leaving).collect();
    kill_two_and_read_all(&mut cluster, &mut rng, others, "drain", &objects).await;
}

#[tokio::test]
async fn scrub_finds_and_repairs_rot_nobody_reads() {
    let seed = seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut opts = Options::nodes(6);
    opts.profile = Some((4, 2));
    opts.chunk_size_bytes = 256 << 10;
    let cluster = Cluster::start_with(opts).await.expect("cluster starts");
    let objects = fill(&cluster, "rot", seed, 30).await;
    wait_verified(&cluster, "before the rot").await;
    let mut nodes: Vec<usize> = (0..6).collect();
    let rotten: Vec<usize> = (0..2)
        .map(|_| nodes.remove(rng.random_range(0..nodes.len())))
        .collect();
    let mut flipped = 0;
    for &i in &rotten {
        for f in cluster.shard_files(i) {
            let mut bytes = std::fs::read(&f).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 0x40;
            std::fs::write(&f, &bytes).unwrap();
            flipped += 1;
        }
    }
    eprintln!("every shard on nodes {rotten:?} corrupted ({flipped} files)");
    let out = cluster.cli(&["scrub", "start", "--wait", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!(
        "scrub: {} checked, {} corrupt, {} repaired",
        status["shards_checked"], status["corrupt_found"], status["repaired"]
    );
    assert_eq!(status["corrupt_found"].as_u64(), Some(flipped), "{status}");
    assert_eq!(status["repaired"].as_u64(), Some(flipped), "{status}");
    // Two other nodes lose every shard file: only the repaired ones and
    // the remaining two nodes are left to read from.
    let gone: Vec<usize> = (0..2)
        .map(|_| nodes.remove(rng.random_range(0..nodes.len())))
        .collect();
    for &i in &gone {
        for f in cluster.shard_files(i) {
            std::fs::remove_file(f).unwrap();
        }
    }
    eprintln!("every shard file of nodes {gone:?} deleted");
    let s3 = cluster.s3();
    for (key, want) in &objects {
        assert_eq!(&digest(&get_bytes(&s3, "rot", key).await), want, "{key}");
    }
}
