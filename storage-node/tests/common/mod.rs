//! What the storage node's tests share: nodes in this process on real or
//! simulated disks, a small layout, object commands.
#![allow(dead_code)]

use cairn::codec::ErasureProfile;
use cairn::command::{Command, Condition};
use cairn::layout::{Layout, NodeInfo};
use cairn::record::{BucketId, GroupId, ObjectData, ObjectEntry, VersionId, keys};
use cairn_node::config::NodeConfig;
use cairn_node::disk::MemoryDisk;
use cairn_node::server::{self, Node};
use cairn_node::table::ReadBarrier;
use cairn_node::table::client::MetaClient;
use std::sync::Arc;
use std::time::Duration;

pub const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

/// A node running in this process, serving on loopback.
pub struct TestNode {
    pub node: Arc<Node>,
    pub addr: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// Its data directory (Raft snapshots; shards and RocksDB too unless
    /// it runs on a [`MemoryDisk`]).
    pub dir: Arc<tempfile::TempDir>,
}

fn config(dir: &std::path::Path, fsync: bool) -> NodeConfig {
    NodeConfig {
        data_dir: dir.to_path_buf(),
        cluster_secret: SECRET.into(),
        fsync,
        read_barrier: ReadBarrier::Lease,
        down_out_after: cairn_node::config::DEFAULT_DOWN_OUT_AFTER,
        gc_grace: cairn_node::config::DEFAULT_GC_GRACE,
        lifecycle_day: cairn_node::config::DEFAULT_LIFECYCLE_DAY,
    }
}

async fn serve(node: Arc<Node>, listen: &str, dir: Arc<tempfile::TempDir>) -> TestNode {
    let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server::run(node.clone(), listener, async {
        let _ = rx.await;
    }));
    TestNode {
        node,
        addr,
        stop: Some(tx),
        dir,
    }
}

/// A node on RocksDB and files in a fresh directory.
pub async fn start_node() -> TestNode {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let node = Node::open(&config(dir.path(), true), None).await.unwrap();
    serve(node, "127.0.0.1:0", dir).await
}

/// A node on `disk`, listening on `listen`; shard files synced only when
/// `fsync`.
pub async fn start_on(
    disk: &MemoryDisk,
    dir: Arc<tempfile::TempDir>,
    listen: &str,
    fsync: bool,
) -> TestNode {
    let node = Node::open_on(
        &config(dir.path(), fsync),
        disk.disk(),
        cairn_node::net::Network::tcp(),
        None,
    )
    .await
    .unwrap();
    serve(node, listen, dir).await
}

impl TestNode {
    /// Stop serving and stop every group: the node is gone.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.node.tables.shutdown().await;
    }
}

pub fn layout(nodes: &[TestNode], data_groups: u32) -> Layout {
    let mut l = Layout {
        version: 1,
        profile: ErasureProfile {
            data_shards: 2,
            parity_shards: 1,
        },
        partition_bits: 0,
        groups: Vec::new(),
        nodes: nodes
            .iter()
            .enumerate()
            .map(|(i, n)| NodeInfo {
                id: n.node.id,
                addr: n.addr.clone(),
                zone: format!("z{i}"),
                capacity: 1,
            })
            .collect(),
        placement: Vec::new(),
        out: Default::default(),
        leaving: Default::default(),
        placement_version: 0,
        history: Vec::new(),
    };
    l.plan_placement(None).unwrap();
    l.assign_groups(data_groups).unwrap();
    l
}

pub fn entry(etag: &str) -> ObjectEntry {
    ObjectEntry {
        version: VersionId(rand::random()),
        size: 1,
        etag: etag.into(),
        last_modified_ms: 1,
        content_type: None,
        headers: vec![],
        user_metadata: vec![],
        checksum: None,
        part_sizes: vec![],
        data: ObjectData::Inline(vec![b'x']),
        seq: 0,
        null_version: true,
        owner: "test".into(),
        noncurrent_since_ms: None,
        tags: vec![],
        retention: None,
        legal_hold: false,
        grants: vec![],
    }
}

pub fn put(bucket: BucketId, key: &str, etag: &str, condition: Option<Condition>) -> Command {
    Command::PutObject {
        bucket,
        key: key.into(),
        entry: entry(etag),
        condition,
    }
}

pub async fn etag_of(meta: &MetaClient, bucket: BucketId, key: &str) -> Option<String> {
    let group = meta.bucket_group(bucket).unwrap();
    meta.get::<ObjectEntry>(group, &keys::object(bucket, key))
        .await
        .unwrap()
        .map(|e| e.etag)
}

pub async fn wait_for_map(nodes: &[TestNode], version: u64) {
    for _ in 0..200 {
        if nodes
            .iter()
            .all(|n| n.node.tables.map().is_some_and(|m| m.version >= version))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the cluster map did not reach every node");
}

/// The index of the node that leads `group`, waiting (up to 10 s) for an
/// election to finish: right after a start or a stop there may be none.
pub async fn leader_of(nodes: &[TestNode], group: GroupId) -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let leader = nodes.iter().position(|n| {
            n.node
                .tables
                .group(group)
                .is_some_and(|g| g.raft.metrics().borrow().state == openraft::ServerState::Leader)
        });
        match leader {
            Some(i) => return i,
            None if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            None => panic!("group {group:?} elected no leader within 10 s"),
        }
    }
}

/// The Raft handle of `group` on its leader (waiting for one, as
/// [`leader_of`]).
pub async fn leader_raft(nodes: &[TestNode], group: GroupId) -> cairn_node::table::Raft {
    nodes[leader_of(nodes, group).await]
        .node
        .tables
        .group(group)
        .expect("the leader hosts the group")
        .raft
        .clone()
}
