//! The client of the metadata groups, for gateways and node workers alike:
//! it finds a group's leader (remembering it), proposes commands with a
//! request id that makes retries safe, and reads through the leader.

use crate::client::NodeClient;
use crate::error::{Error, Result};
use cairn::command::versions::{VersionItem, VersionsFrom};
use cairn::command::{Command, Outcome, Request};
use cairn::id::NodeId;
use cairn::layout::Layout;
use cairn::record::{
    self, BucketId, GroupId, MetaKey, RequestId, Table, VersionRecord, VersionRef,
};
use cairn::rpc::{
    CommandReply, CommandRequest, ListItem, MAX_SCAN_LIMIT, Read, ReadReply, ReadRequest, Refusal,
    SystemChanges,
};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Longest a command or read keeps looking for a leader (covers an
/// election after a leader died, about 2 s, with room to spare) before the
/// caller is told the metadata is unavailable.
pub const META_DEADLINE: Duration = Duration::from_secs(8);
/// First pause after a whole round of voters refused; doubles each round.
pub const RETRY_PAUSE_MIN: Duration = Duration::from_millis(25);
/// Longest pause between rounds.
pub const RETRY_PAUSE_MAX: Duration = Duration::from_millis(400);

/// Where the client gets the cluster map from.
pub trait MapSource: Send + Sync {
    /// The newest cluster map known.
    fn map(&self) -> Option<Arc<Layout>>;
}

impl MapSource for super::groups::Tables {
    fn map(&self) -> Option<Arc<Layout>> {
        super::groups::Tables::map(self)
    }
}

/// A node's tables as a map source, held weakly (by the node's own
/// workers, which must not keep the tables alive).
pub struct WeakTables(pub std::sync::Weak<super::groups::Tables>);

impl MapSource for WeakTables {
    fn map(&self) -> Option<Arc<Layout>> {
        self.0.upgrade()?.map()
    }
}

/// The metadata client.
pub struct MetaClient {
    client: NodeClient,
    source: Arc<dyn MapSource>,
    leaders: Mutex<BTreeMap<GroupId, NodeId>>,
}

enum Attempt<T> {
    Done(T),
    Refused(Refusal),
    Failed(String),
}

impl MetaClient {
    /// A client reaching nodes with `client`, finding them in `source`'s map.
    pub fn new(client: NodeClient, source: Arc<dyn MapSource>) -> Self {
        Self {
            client,
            source,
            leaders: Mutex::new(BTreeMap::new()),
        }
    }

    /// The cluster map, or `Unavailable`.
    pub fn map(&self) -> Result<Arc<Layout>> {
        self.source
            .map()
            .ok_or_else(|| Error::Unavailable("the cluster has no layout yet".into()))
    }

    /// The data group of a bucket's records.
    pub fn bucket_group(&self, bucket: BucketId) -> Result<GroupId> {
        let map = self.map()?;
        Ok(cairn::layout::data_group_of(
            &bucket.to_hex(),
            map.metadata_groups(),
        ))
    }

    /// Try the group's leader (or, not knowing it, each voter) until one
    /// serves the request or [`META_DEADLINE`] passes.
    async fn until_served<T, F, Fut>(&self, group: GroupId, mut send: F) -> Result<T>
    where
        F: FnMut(String) -> Fut,
        Fut: std::future::Future<Output = Attempt<T>>,
    {
        let deadline = Instant::now() + META_DEADLINE;
        let mut pause = RETRY_PAUSE_MIN;
        let mut last;
        let (mut next_voter, mut failures) = (0usize, 0usize);
        loop {
            let map = self.map()?;
            let voters = &map
                .groups
                .get(group.0 as usize)
                .ok_or_else(|| Error::Unavailable(format!("no group {group} in the cluster map")))?
                .voters;
            let hint = self
                .leaders
                .lock()
                .expect("leaders lock")
                .get(&group)
                .copied();
            let target = hint.unwrap_or_else(|| {
                next_voter += 1;
                voters[(next_voter - 1) % voters.len()]
            });
            let outcome = match map.node(target) {
                Some(n) => send(n.addr.clone()).await,
                None => Attempt::Failed(format!("node {target} is not in the cluster map")),
            };
            let (hint_next, why) = match outcome {
                Attempt::Done(v) => {
                    self.leaders
                        .lock()
                        .expect("leaders lock")
                        .insert(group, target);
                    return Ok(v);
                }
                // Follow the hint at once; a hint pointing back and forth
                // still counts as a failure below.
                Attempt::Refused(Refusal::NotLeader(Some(leader))) if leader != target => (
                    Some(leader),
                    format!("{target} is not the leader of {group}"),
                ),
                Attempt::Refused(r) => (None, format!("{target}: {r:?}")),
                Attempt::Failed(e) => (None, format!("{target}: {e}")),
            };
            last = why;
            {
                let mut leaders = self.leaders.lock().expect("leaders lock");
                match hint_next {
                    Some(l) => leaders.insert(group, l),
                    None => leaders.remove(&group),
                };
            }
            failures += 1;
            if Instant::now() >= deadline {
                return Err(Error::Unavailable(format!("{group}: {last}")));
            }
            // After every round of the voters, wait a little longer: an
            // election takes a second or two.
            if failures % voters.len() == 0 {
                tokio::time::sleep(pause.min(deadline - Instant::now())).await;
                pause = (pause * 2).min(RETRY_PAUSE_MAX);
            }
        }
    }

    /// Propose `command` to `group`; the outcome apply decided.
    pub async fn command(&self, group: GroupId, command: Command) -> Result<Outcome> {
        let request = Request {
            id: RequestId(crate::random::random()),
            command,
        };
        let body = record::encode(&CommandRequest { group, request });
        self.until_served(group, |addr| {
            let body = body.clone();
            async move {
                match self.client.rpc_meta_command(&addr, body).await {
                    Ok(CommandReply::Done(o)) => Attempt::Done(o),
                    Ok(CommandReply::Refused(r)) => Attempt::Refused(r),
                    Err(e) => Attempt::Failed(e.to_string()),
                }
            }
        })
        .await
    }

    /// Propose a system command.
    pub async fn system_command(&self, command: Command) -> Result<Outcome> {
        self.command(GroupId::SYSTEM, command).await
    }

    /// A linearizable read of `group`.
    pub async fn read(&self, group: GroupId, read: Read) -> Result<ReadReply> {
        let body = record::encode(&ReadRequest { group, read });
        self.until_served(group, |addr| {
            let body = body.clone();
            async move {
                match self.client.rpc_meta_read(&addr, body).await {
                    Ok(ReadReply::Refused(r)) => Attempt::Refused(r),
                    Ok(reply) => Attempt::Done(reply),
                    Err(e) => Attempt::Failed(e.to_string()),
                }
            }
        })
        .await
    }

    /// Point reads of `group`, in order.
    pub async fn get_many(
        &self,
        group: GroupId,
        keys: Vec<MetaKey>,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let n = keys.len();
        match self.read(group, Read::Get(keys)).await? {
            ReadReply::Values(v) if v.len() == n => Ok(v),
            other => Err(unexpected(other)),
        }
    }

    /// One record of `group`, decoded.
    pub async fn get<T: DeserializeOwned>(
        &self,
        group: GroupId,
        key: &MetaKey,
    ) -> Result<Option<T>> {
        let mut v = self.get_many(group, vec![key.clone()]).await?;
        match v.pop().flatten() {
            Some(bytes) => Ok(Some(record::decode(key.table.name(), &bytes)?)),
            None => Ok(None),
        }
    }

    /// A page of an ordered scan of `group`: `(sort key, value)` and
    /// whether records were left.
    pub async fn scan(
        &self,
        group: GroupId,
        table: Table,
        partition_key: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<(String, Vec<u8>)>, bool)> {
        let read = Read::Scan {
            table,
            partition_key: partition_key.to_owned(),
            prefix: prefix.to_owned(),
            start_after: start_after.map(str::to_owned),
            limit: limit.clamp(1, MAX_SCAN_LIMIT),
        };
        match self.read(group, read).await? {
            ReadReply::Entries(e, truncated) => Ok((e, truncated)),
            other => Err(unexpected(other)),
        }
    }

    /// Every record of a partition key whose sort key starts with `prefix`,
    /// after `start_after`, decoded, in order: at most `limit`, and whether
    /// more were left.
    pub async fn scan_all<T: DeserializeOwned>(
        &self,
        group: GroupId,
        table: Table,
        partition_key: &str,
        prefix: &str,
        start_after: Option<String>,
        limit: usize,
    ) -> Result<(Vec<(String, T)>, bool)> {
        let mut out = Vec::new();
        let mut cursor = start_after;
        loop {
            let (page, more) = self
                .scan(
                    group,
                    table,
                    partition_key,
                    prefix,
                    cursor.as_deref(),
                    MAX_SCAN_LIMIT,
                )
                .await?;
            for (key, bytes) in page {
                if out.len() == limit {
                    return Ok((out, true));
                }
                cursor = Some(key.clone());
                out.push((key, record::decode(table.name(), &bytes)?));
            }
            if !more {
                return Ok((out, false));
            }
        }
    }

    /// A page of a bucket listing, rolled up by `delimiter` on the node.
    pub async fn list_objects(
        &self,
        bucket: BucketId,
        prefix: &str,
        delimiter: Option<&str>,
        start_after: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<ListItem>, bool)> {
        let group = self.bucket_group(bucket)?;
        let read = Read::ListObjects {
            bucket,
            prefix: prefix.to_owned(),
            delimiter: delimiter.map(str::to_owned),
            start_after: start_after.map(str::to_owned),
            limit: limit.clamp(1, MAX_SCAN_LIMIT),
        };
        match self.read(group, read).await? {
            ReadReply::Listing(items, truncated) => Ok((items, truncated)),
            other => Err(unexpected(other)),
        }
    }

    /// One version of a key (its latest with `version: None`), and
    /// whether it is the latest.
    pub async fn version(
        &self,
        bucket: BucketId,
        key: &str,
        version: Option<VersionRef>,
    ) -> Result<Option<(VersionRecord, bool)>> {
        let group = self.bucket_group(bucket)?;
        let read = Read::Version {
            bucket,
            key: key.to_owned(),
            version,
        };
        match self.read(group, read).await? {
            ReadReply::Version(v) => Ok(v),
            other => Err(unexpected(other)),
        }
    }

    /// One page of a bucket's versions (at most `limit`).
    pub async fn list_versions(
        &self,
        bucket: BucketId,
        prefix: &str,
        delimiter: Option<&str>,
        from: Option<VersionsFrom>,
        limit: u32,
    ) -> Result<(Vec<VersionItem>, bool)> {
        let group = self.bucket_group(bucket)?;
        let read = Read::ListVersions {
            bucket,
            prefix: prefix.to_owned(),
            delimiter: delimiter.map(str::to_owned),
            from,
            limit: limit.clamp(1, MAX_SCAN_LIMIT),
        };
        match self.read(group, read).await? {
            ReadReply::Versions(items, truncated) => Ok((items, truncated)),
            other => Err(unexpected(other)),
        }
    }

    /// The system records changed after `after` (one long poll of the
    /// system group's leader).
    pub async fn system_changes(&self, after: u64) -> Result<SystemChanges> {
        self.until_served(GroupId::SYSTEM, |addr| async move {
            match self.client.rpc_system_changes(&addr, after).await {
                Ok(SystemChanges::Refused(r)) => Attempt::Refused(r),
                Ok(c) => Attempt::Done(c),
                Err(e) => Attempt::Failed(e.to_string()),
            }
        })
        .await
    }
}

fn unexpected(reply: ReadReply) -> Error {
    Error::Unavailable(format!("unexpected answer to a metadata read: {reply:?}"))
}

/// A fixed cluster map (cluster creation, tests).
pub struct FixedMap(pub Arc<Layout>);

impl MapSource for FixedMap {
    fn map(&self) -> Option<Arc<Layout>> {
        Some(self.0.clone())
    }
}

/// Create a cluster whose first map is `layout` (version 1, groups
/// assigned): every node of it must accept the same first map, the system
/// group starts on its voters, and the map is committed as its first
/// record. Fails when a node already belongs to a cluster or accepted
/// another first map (two creations at once: at most one can win every
/// node).
pub async fn create_cluster(client: &NodeClient, layout: Layout) -> Result<()> {
    use cairn::rpc::BootstrapReply;
    assert_eq!(layout.version, 1, "a cluster starts at version 1");
    let answers = futures::future::join_all(
        layout
            .nodes
            .iter()
            .map(|n| client.rpc_bootstrap(&n.addr, &layout)),
    )
    .await;
    for (n, a) in layout.nodes.iter().zip(answers) {
        match a? {
            BootstrapReply::Accepted => {}
            BootstrapReply::AlreadyCreated(_) => {
                return Err(Error::BadRequest(format!(
                    "node {} already belongs to a cluster",
                    n.id
                )));
            }
            BootstrapReply::Conflict => {
                return Err(Error::BadRequest(format!(
                    "node {} is being made part of another cluster",
                    n.id
                )));
            }
        }
    }
    let meta = MetaClient::new(client.clone(), Arc::new(FixedMap(Arc::new(layout.clone()))));
    match meta
        .system_command(Command::SetClusterMap {
            expected: 0,
            layout,
        })
        .await?
    {
        Outcome::Ok => Ok(()),
        other => Err(Error::BadRequest(format!(
            "the first cluster map was refused: {other:?}"
        ))),
    }
}
