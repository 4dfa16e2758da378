//! Metadata groups at the group level: real nodes (RocksDB, fsync, the
//! node RPC on loopback) in one process, driven through the metadata
//! client. A cluster is created, commands and reads go through leaders,
//! a leader is stopped, and a group changes its voters while writes go on.

mod common;

use cairn::command::{Condition, Outcome};
use cairn::id::NodeId;
use cairn::layout::NodeInfo;
use cairn::record::{BucketId, GroupId, keys};
use cairn_node::client::NodeClient;
use cairn_node::table::PeerNode;
use cairn_node::table::client::{FixedMap, MetaClient, create_cluster};
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_commit_read_and_survive_their_leader() {
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(start_node().await);
    }
    let map = layout(&nodes, 4);
    let client = NodeClient::new(SECRET);
    create_cluster(&client, map.clone()).await.unwrap();
    wait_for_map(&nodes, 1).await;
    // A second creation is refused.
    assert!(create_cluster(&client, map.clone()).await.is_err());

    let meta = MetaClient::new(client.clone(), Arc::new(FixedMap(Arc::new(map.clone()))));
    let bucket = BucketId([3; 16]);
    assert_eq!(
        meta.command(
            meta.bucket_group(bucket).unwrap(),
            put(bucket, "k", "a", Some(Condition::Absent))
        )
        .await
        .unwrap(),
        Outcome::Ok
    );
    assert_eq!(
        meta.command(
            meta.bucket_group(bucket).unwrap(),
            put(bucket, "k", "b", Some(Condition::Absent))
        )
        .await
        .unwrap(),
        Outcome::PreconditionFailed
    );
    assert_eq!(etag_of(&meta, bucket, "k").await.as_deref(), Some("a"));
    // A data command sent to the wrong group is refused, not applied.
    let wrong = GroupId(1 + meta.bucket_group(bucket).unwrap().0 % 4);
    assert!(
        meta.command(wrong, put(bucket, "k", "c", None))
            .await
            .is_err()
    );

    // Stop the leader of the bucket's group: writes and reads go on.
    let group = meta.bucket_group(bucket).unwrap();
    let leader = leader_of(&nodes, group).await;
    nodes[leader].stop().await;
    let started = std::time::Instant::now();
    assert_eq!(
        meta.command(
            group,
            put(bucket, "k", "d", Some(Condition::ETag("a".into())))
        )
        .await
        .unwrap(),
        Outcome::Ok
    );
    eprintln!(
        "write after the leader stopped took {:?}",
        started.elapsed()
    );
    assert_eq!(etag_of(&meta, bucket, "k").await.as_deref(), Some("d"));
    for n in &mut nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_changes_voters_while_writes_continue() {
    let mut nodes = Vec::new();
    for _ in 0..4 {
        nodes.push(start_node().await);
    }
    // The map holds the first three nodes; the fourth joins the group later.
    let map = layout(&nodes[..3], 1);
    let client = NodeClient::new(SECRET);
    create_cluster(&client, map.clone()).await.unwrap();
    wait_for_map(&nodes[..3], 1).await;
    let meta = Arc::new(MetaClient::new(
        client.clone(),
        Arc::new(FixedMap(Arc::new(map.clone()))),
    ));
    let bucket = BucketId([5; 16]);
    let group = GroupId(1);
    assert_eq!(meta.bucket_group(bucket).unwrap(), group);

    // A writer that keeps writing numbered keys and remembers what was acknowledged.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let progress = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writer = {
        let (meta, stop, progress) = (meta.clone(), stop.clone(), progress.clone());
        tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let key = format!("w{i:05}");
                if let Ok(Outcome::Ok) = meta.command(group, put(bucket, &key, "v", None)).await {
                    acked.push(key);
                    progress.store(acked.len(), std::sync::atomic::Ordering::Relaxed);
                }
                i += 1;
            }
            acked
        })
    };
    // Writes acknowledged before the change (counted, not timed: a busy
    // machine is slower, not wrong).
    wait_for_acks(&progress, 10).await;

    // Add node 4 as a learner, then replace node 1 with it (joint consensus).
    let (newcomer_id, newcomer_addr) = (nodes[3].node.id, nodes[3].addr.clone());
    let newcomer = &nodes[3];
    newcomer.node.tables.ensure_group(group).await.unwrap();
    let raft = leader_raft(&nodes, group).await;
    raft.add_learner(
        newcomer.node.id.0,
        PeerNode {
            addr: newcomer.addr.clone(),
        },
        true,
    )
    .await
    .unwrap();
    let old = map.groups[1].voters[0];
    let mut voters: BTreeSet<u64> = map.groups[1].voters.iter().map(|v| v.0).collect();
    voters.remove(&old.0);
    voters.insert(newcomer.node.id.0);
    let raft = leader_raft(&nodes, group).await;
    raft.change_membership(voters.clone(), false).await.unwrap();
    // And after it.
    let before = progress.load(std::sync::atomic::Ordering::Relaxed);
    wait_for_acks(&progress, before + 10).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked = writer.await.unwrap();
    assert!(acked.len() > 10, "writes went on: {}", acked.len());

    // The removed voter goes away; every acknowledged write is readable
    // through the new voters.
    let gone = nodes.iter().position(|n| n.node.id == old).unwrap();
    nodes[gone].stop().await;
    let mut new_map = map.clone();
    new_map.groups[1].voters = voters.iter().map(|v| NodeId(*v)).collect();
    new_map.nodes.push(NodeInfo {
        id: newcomer_id,
        addr: newcomer_addr,
        zone: "z9".into(),
        capacity: 1,
    });
    let meta = MetaClient::new(client, Arc::new(FixedMap(Arc::new(new_map))));
    let keys: Vec<_> = acked.iter().map(|k| keys::object(bucket, k)).collect();
    let mut found = BTreeMap::new();
    for chunk in keys.chunks(500) {
        let values = meta.get_many(group, chunk.to_vec()).await.unwrap();
        for (k, v) in chunk.iter().zip(values) {
            found.insert(k.sort_key.clone(), v.is_some());
        }
    }
    let missing: Vec<_> = found.iter().filter(|(_, ok)| !**ok).collect();
    assert!(missing.is_empty(), "acknowledged but missing: {missing:?}");
    for n in &mut nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_request_cannot_be_replayed_or_given_another_body() {
    let mut node = start_node().await;
    let http = reqwest::Client::new();
    let staged = cairn::rpc::StagedLayout::default();
    let body = cairn::record::encode(&staged);
    let (mut parts, ()) = http::Request::builder()
        .method(http::Method::PUT)
        .uri(format!("http://{}/v1/layout/staged", node.addr))
        .body(())
        .unwrap()
        .into_parts();
    cairn_node::auth::Signer::new(SECRET)
        .sign(&mut parts, &body)
        .unwrap();
    let request = |body: Vec<u8>| {
        reqwest::Request::try_from(http::Request::from_parts(parts.clone(), body)).unwrap()
    };
    let req = request(body.clone());
    let replay = request(body);
    let mut other = staged.clone();
    other.base_version = 99;
    let swapped = request(cairn::record::encode(&other));
    // The body swapped on the way: refused, and the genuine request still
    // goes through once.
    assert_eq!(http.execute(swapped).await.unwrap().status().as_u16(), 403);
    assert_eq!(http.execute(req).await.unwrap().status().as_u16(), 204);
    assert_eq!(http.execute(replay).await.unwrap().status().as_u16(), 403);
    node.stop().await;
}

/// Wait until the writer has `n` acknowledged writes (at most a minute).
async fn wait_for_acks(progress: &std::sync::atomic::AtomicUsize, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while progress.load(std::sync::atomic::Ordering::Relaxed) < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "writes stalled at {}",
            progress.load(std::sync::atomic::Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
