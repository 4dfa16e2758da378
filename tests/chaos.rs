//! Seeded chaos: kills, restarts, outs, ins, additions and drains, one at a
//! time, under a writer and a verifying reader; after every step the
//! cluster must return to full redundancy and every acknowledged object
//! must read back intact. `SEED=` replays a schedule; `CHAOS_STEPS=` sets
//! its length.

use cairn_tests::{Cluster, Options, digest, pattern, seed};
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest wait for full redundancy after a step.
const STEP_TIMEOUT: Duration = Duration::from_secs(240);
/// The nodes' down-out grace in this test, seconds.
const GRACE_S: u64 = 10;

type Acked = Arc<Mutex<BTreeMap<String, String>>>;

/// Apply the staged layout, again when the cluster changed its map
/// meanwhile (409 LayoutConflict).
async fn apply(cluster: &Cluster) {
    for _ in 0..10 {
        match cluster
            .admin_post("/_cairn/admin/v1/layout/apply", serde_json::json!({}))
            .await
        {
            Ok(_) => return,
            Err(e) if e.to_string().contains("LayoutConflict") => {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => panic!("apply: {e}"),
        }
    }
    panic!("apply kept conflicting");
}

async fn wait_settled(cluster: &Cluster, step: &str) {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let s = cluster
            .admin_get("/_cairn/admin/v1/repair")
            .await
            .unwrap_or(Value::Null);
        if s["state"] == "verified" && s["degraded_chunks"] == 0 && s["migrating"] == false {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{step}: not settled in time: {s}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn check_all(cluster: &Cluster, acked: &Acked, step: &str) {
    let s3 = cluster.s3();
    let objects: Vec<(String, String)> = acked
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (key, want) in &objects {
        let got = s3.get_object().bucket("chaos").key(key).send().await;
        let bytes = match got {
            Ok(o) => o.body.collect().await.unwrap().into_bytes(),
            Err(e) => panic!("{step}: {key} unreadable: {e:?}"),
        };
        assert_eq!(&digest(&bytes), want, "{step}: {key} intact");
    }
    eprintln!(
        "{step}: {} acknowledged objects read back intact",
        objects.len()
    );
}

#[tokio::test]
async fn a_seeded_schedule_of_faults_and_operations_loses_nothing() {
    let seed = seed();
    let steps: usize = std::env::var("CHAOS_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut opts = Options::nodes(7);
    opts.profile = Some((4, 2));
    opts.chunk_size_bytes = 128 << 10;
    opts.down_out_after_s = Some(GRACE_S);
    let mut cluster = Cluster::start_with(opts).await.expect("cluster starts");
    cluster
        .s3()
        .create_bucket()
        .bucket("chaos")
        .send()
        .await
        .unwrap();

    // The load: a writer recording what was acknowledged, a reader checking
    // what it reads against it.
    let acked: Acked = Arc::new(Mutex::new(BTreeMap::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let wrong = Arc::new(Mutex::new(Vec::<String>::new()));
    let writer = {
        let (s3, acked, stop) = (cluster.s3(), acked.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let len = (seed.wrapping_add(i) % 400_000 + 1) as usize;
                let body = pattern(seed ^ (i << 20), len);
                let key = format!("w-{i}");
                let r = s3
                    .put_object()
                    .bucket("chaos")
                    .key(&key)
                    .body(body.clone().into())
                    .send()
                    .await;
                if r.is_ok() {
                    acked.lock().unwrap().insert(key, digest(&body));
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let reader = {
        let (s3, acked, stop, wrong) = (cluster.s3(), acked.clone(), stop.clone(), wrong.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let sample: Vec<(String, String)> = acked
                    .lock()
                    .unwrap()
                    .iter()
                    .rev()
                    .take(20)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                for (key, want) in sample {
                    // A read may fail while a node is down; it must never
                    // return other bytes.
                    if let Ok(o) = s3.get_object().bucket("chaos").key(&key).send().await
                        && let Ok(b) = o.body.collect().await
                        && digest(&b.into_bytes()) != want
                    {
                        wrong.lock().unwrap().push(key);
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Nodes by harness index; which are in the layout, which are running.
    let mut in_layout: Vec<usize> = (0..7).collect();
    let mut out_by_operator: Vec<usize> = Vec::new();
    for step in 0..steps {
        let action = rng.random_range(0..6);
        let label = match action {
            5 => {
                // Kill one node and restart it on its data before the grace.
                let i = in_layout[rng.random_range(0..in_layout.len())];
                cluster.kill_node(i);
                tokio::time::sleep(Duration::from_secs(3)).await;
                cluster.restart_node(i).await.unwrap();
                format!("step {step}: kill node {i}, restart it 3 s later")
            }
            0 if in_layout.len() > 6 => {
                // Kill one node; it is marked out after the grace and
                // rebuilt elsewhere.
                let i = in_layout[rng.random_range(0..in_layout.len())];
                cluster.kill_node(i);
                in_layout.retain(|n| *n != i);
                format!("step {step}: kill node {i} (out after {GRACE_S} s)")
            }
            1 if !out_by_operator.is_empty() => {
                let i = out_by_operator.remove(0);
                let id = cluster.node_id(i).await.unwrap();
                cluster
                    .admin_post(&format!("/_cairn/admin/v1/nodes/{id}/in"), Value::Null)
                    .await
                    .unwrap_or_else(|e| panic!("node {i} in: {e}"));
                in_layout.push(i);
                format!("step {step}: node {i} in")
            }
            1 | 2 if in_layout.len() > 6 => {
                let i = in_layout[rng.random_range(0..in_layout.len())];
                let id = cluster.node_id(i).await.unwrap();
                if let Err(e) = cluster
                    .admin_post(&format!("/_cairn/admin/v1/nodes/{id}/out"), Value::Null)
                    .await
                {
                    let l = cluster.admin_get("/_cairn/admin/v1/layout").await.unwrap();
                    let c = &l["current"];
                    panic!(
                        "node {i} out: {e}; map {} nodes {} out {} leaving {} history {}",
                        c["version"],
                        c["nodes"],
                        c["out"],
                        c["leaving"],
                        c["history"].as_array().map(|h| h.len()).unwrap_or(0)
                    );
                }
                in_layout.retain(|n| *n != i);
                out_by_operator.push(i);
                format!("step {step}: node {i} out")
            }
            3 if in_layout.len() > 6 => {
                let i = in_layout[rng.random_range(0..in_layout.len())];
                let id = cluster.node_id(i).await.unwrap();
                cluster
                    .admin_post(
                        "/_cairn/admin/v1/layout/remove",
                        serde_json::json!({ "node_id": id }),
                    )
                    .await
                    .unwrap();
                apply(&cluster).await;
                in_layout.retain(|n| *n != i);
                format!("step {step}: drain node {i}")
            }
            _ => {
                let (i, id) = cluster.add_node().await.unwrap();
                let deadline = Instant::now() + Duration::from_secs(30);
                while cluster
                    .admin_post(
                        "/_cairn/admin/v1/layout/assign",
                        serde_json::json!({"node_id": id, "zone": format!("z{}", i + 1), "capacity": 1}),
                    )
                    .await
                    .is_err()
                {
                    assert!(Instant::now() < deadline, "node {id} never discovered");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                apply(&cluster).await;
                in_layout.push(i);
                format!("step {step}: add node {i}")
            }
        };
        eprintln!("{label}");
        tokio::time::sleep(Duration::from_secs(1)).await;
        wait_settled(&cluster, &label).await;
        check_all(&cluster, &acked, &label).await;
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    reader.await.unwrap();
    let wrong = wrong.lock().unwrap().clone();
    assert!(wrong.is_empty(), "wrong bytes served: {wrong:?}");
    check_all(&cluster, &acked, "end").await;
}
