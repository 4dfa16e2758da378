//! Crash consistency: SIGKILL every process in the middle of a write load,
//! restart, and check that every acknowledged PUT reads back intact and that
//! no object is visible partially (an unacknowledged PUT is either absent or
//! whole). Seeded: `SEED=... cargo nextest run -p cairn-tests --test crash`.

use aws_sdk_s3::primitives::ByteStream;
use cairn_tests::{Cluster, digest, pattern};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Writers running at once.
const WRITERS: u64 = 6;
/// PUTs each writer attempts at most (the kill comes first).
const MAX_PUTS_PER_WRITER: u64 = 400;

fn size_for(seed: u64, writer: u64, i: u64) -> usize {
    // Inline, single-chunk and multi-chunk objects (1 MiB chunks).
    let x = (seed ^ (writer << 32) ^ i).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    match x % 4 {
        0 => (x % 10_000) as usize,
        1 => 20_000 + (x % 200_000) as usize,
        2 => (1 << 20) + (x % 100_000) as usize,
        _ => (2 << 20) + (x % 1_500_000) as usize,
    }
}

#[tokio::test]
async fn acknowledged_puts_survive_sigkill_of_every_process() {
    let seed = cairn_tests::seed();
    let mut cluster = Cluster::start(6).await;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("crash").send().await.unwrap();

    // key -> (expected digest, acknowledged?)
    let ledger: Arc<Mutex<BTreeMap<String, (String, bool)>>> = Arc::default();
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let (s3, ledger) = (s3.clone(), ledger.clone());
        writers.spawn(async move {
            for i in 0..MAX_PUTS_PER_WRITER {
                let key = format!("w{w}/{i:04}");
                let body = pattern(seed ^ (w << 40) ^ i, size_for(seed, w, i));
                ledger
                    .lock()
                    .unwrap()
                    .insert(key.clone(), (digest(&body), false));
                match s3
                    .put_object()
                    .bucket("crash")
                    .key(&key)
                    .body(ByteStream::from(body))
                    .send()
                    .await
                {
                    Ok(_) => ledger.lock().unwrap().get_mut(&key).unwrap().1 = true,
                    Err(_) => return,
                }
            }
        });
    }
    // Kill after a seeded number of acknowledged PUTs.
    let kill_after = 30 + (seed % 60) as usize;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let acked = ledger.lock().unwrap().values().filter(|v| v.1).count();
        if acked >= kill_after || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cluster.kill_all();
    while writers.join_next().await.is_some() {}
    let ledger = ledger.lock().unwrap().clone();
    let acked = ledger.values().filter(|v| v.1).count();
    eprintln!(
        "killed everything after {acked} acknowledged PUTs ({} attempted)",
        ledger.len()
    );
    assert!(acked >= kill_after, "the load ran");

    cluster.restart_all().await.unwrap();
    let s3 = cluster.s3();
    for (key, (expected, was_acked)) in &ledger {
        match s3.get_object().bucket("crash").key(key).send().await {
            Ok(out) => {
                let got = out.body.collect().await.unwrap().into_bytes();
                assert_eq!(
                    &digest(&got),
                    expected,
                    "{key} (acknowledged: {was_acked}) is visible but not intact"
                );
            }
            Err(e) => {
                assert!(!was_acked, "acknowledged {key} lost: {e:?}");
                assert_eq!(
                    e.raw_response().map(|r| r.status().as_u16()),
                    Some(404),
                    "{key}: {e:?}"
                );
            }
        }
    }
    // Every listed key is one that was written, and reads back whole.
    let listed = s3
        .list_objects_v2()
        .bucket("crash")
        .max_keys(1000)
        .send()
        .await
        .unwrap();
    for o in listed.contents() {
        let key = o.key().unwrap();
        assert!(ledger.contains_key(key), "{key} listed but never written");
    }
}
