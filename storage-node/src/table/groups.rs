//! The metadata groups one node hosts, and what it serves from them.
//!
//! [`Tables`] starts the groups the node has state for, creates and
//! initializes the groups the cluster map makes it a voter of, sends every
//! led group's heartbeats at once, proposes commands, serves linearizable
//! reads and the system group's change feed, and keeps the cluster map the
//! node knows (learned by applying the system group, or from a system voter).

use super::log::LogStore;
use super::machine::{Applied, Machine};
use super::network::{GroupNetwork, Transport};
use super::{HEARTBEAT_INTERVAL, PeerNode, Raft, ReadBarrier, raft_config};
use crate::client::NodeClient;
use crate::db::{Cf, Db};
use cairn::command::{Command, KvRead, Request, versions};
use cairn::id::NodeId;
use cairn::layout::{GroupInfo, Layout};
use cairn::record::{self, GroupId, ListEntry, ObjectEntry, Table, keys};
use cairn::rpc::{
    BootstrapReply, CommandReply, ListItem, MAX_META_BATCH, MAX_SCAN_LIMIT, Read, ReadReply,
    Refusal, SystemChanges,
};
use openraft::ServerState;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Longest a command waits to be committed and applied before the client
/// is told to retry (it may still commit; the retry then gets its outcome).
/// Below the client's idle-read timeout, so the client hears the refusal.
pub const COMMAND_TIMEOUT: Duration = Duration::from_millis(2500);
/// Longest a read waits for the leader to confirm its leadership.
pub const READ_TIMEOUT: Duration = Duration::from_millis(2500);
/// Longest a system-change watch waits for a change before answering.
pub const SYSTEM_WATCH_WAIT: Duration = Duration::from_millis(500);
/// Longest a cluster-map watch waits for a newer map before answering.
pub const MAP_WATCH_WAIT: Duration = Duration::from_secs(30);
/// Pause before asking a system voter for the cluster map again after a
/// failure.
pub const MAP_WATCH_RETRY: Duration = Duration::from_secs(1);
/// At cluster creation, how long a group's other voters give its first
/// voter to start it before they start it themselves.
pub const LATE_START: Duration = Duration::from_secs(3);
/// A leader that served no command or read of a group for this long stops
/// sending its heartbeats and tells its followers the group is quiet
/// (they stop their election timers for it while they hear from its node):
/// idle groups cost nothing but the node-level beats. The next command or
/// read wakes it (a read confirms the leader by a heartbeat round first).
pub const QUIESCE_AFTER: Duration = Duration::from_secs(2);
/// Most nodes waiting to be added that a node remembers.
pub const MAX_CANDIDATES: usize = 1024;
/// A node waiting to be added is forgotten when it has not said hello for
/// this long.
pub const CANDIDATE_TTL: Duration = Duration::from_secs(60);
/// Longest wait for a new voter to catch up, or for a voter change to
/// commit.
pub const VOTER_CHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// A change of a group's voters its leader owes the map.
struct OwedVoterChange {
    /// The voters now (of both halves, in a joint configuration).
    current: BTreeSet<u64>,
    /// The map's.
    want: BTreeSet<u64>,
    /// Whether the leader is one of `current`.
    leader_votes: bool,
}
/// How often a node tells every other node it is alive, with the groups it
/// leads that are quiet.
pub const NODE_BEAT_INTERVAL: Duration = Duration::from_millis(400);
/// A follower whose quiet group's leader node has not been heard from for
/// this long turns its elections for that group back on.
pub const NODE_SILENT_AFTER: Duration = super::ELECTION_TIMEOUT_MIN;

/// One hosted group.
pub struct Group {
    /// Its id.
    pub id: GroupId,
    /// Its Raft handle.
    pub raft: Raft,
    pub(crate) machine: Machine,
    applied: Arc<Applied>,
    // When this node last served a command or read of the group: a leader
    // quiet for longer than QUIESCE_AFTER stops its heartbeats.
    active: std::sync::Mutex<tokio::time::Instant>,
    // Follower side: the leader (node, term) that said the group is quiet,
    // while this node's elections for it are off.
    paused_by: std::sync::Mutex<Option<(u64, u64)>>,
}

impl Group {
    fn touch(&self) {
        *self.active.lock().expect("activity lock") = tokio::time::Instant::now();
    }

    fn quiet(&self) -> bool {
        self.active.lock().expect("activity lock").elapsed() > QUIESCE_AFTER
    }

    fn pause_elections(&self, leader: u64, term: u64) {
        let mut paused = self.paused_by.lock().expect("pause lock");
        if paused.is_none() {
            self.raft.runtime_config().elect(false);
        }
        *paused = Some((leader, term));
    }

    /// Elections on again: the leader spoke, or went silent.
    pub fn resume_elections(&self) {
        if self.paused_by.lock().expect("pause lock").take().is_some() {
            self.raft.runtime_config().elect(true);
        }
    }
}

/// The metadata groups of one node.
pub struct Tables {
    me: NodeId,
    db: Db,
    dir: PathBuf,
    client: NodeClient,
    transport: Arc<Transport>,
    syncer: Arc<super::log::WalSyncer>,
    config: Arc<openraft::Config>,
    barrier: ReadBarrier,
    groups: RwLock<BTreeMap<GroupId, Arc<Group>>>,
    map: tokio::sync::watch::Sender<Option<Arc<Layout>>>,
    // A map fetch started by a beat is in flight.
    fetching_map: std::sync::atomic::AtomicBool,
    /// Nodes not in the layout that said hello (`--join`): id -> (address,
    /// when), at most [`MAX_CANDIDATES`], forgotten after
    /// [`CANDIDATE_TTL`].
    pub candidates: std::sync::Mutex<BTreeMap<NodeId, (String, tokio::time::Instant)>>,
    // A voter change is in progress (see `reconcile_voters`).
    reconciling: std::sync::atomic::AtomicBool,
    /// Who is up, from the beats of the other nodes.
    pub liveness: crate::liveness::Detector,
    /// What this node's beats tell: (synced placement version, shard bytes,
    /// file system size); kept up to date by the node.
    pub beat_info: std::sync::Mutex<(u64, u64, u64)>,
    // Creating and starting groups, one at a time.
    lifecycle: tokio::sync::Mutex<()>,
    // System voters whose map is followed.
    followed: std::sync::Mutex<BTreeSet<String>>,
    // To the task that starts the map followers (a task of its own so that
    // adopting a map never waits on what adopting starts).
    learn: tokio::sync::mpsc::UnboundedSender<Learn>,
}

/// Map followers to start.
enum Learn {
    /// Long-poll this system voter for newer maps.
    Voter(String),
    /// Adopt every map this (system) group applies.
    System(Arc<Group>),
}

fn refused_unavailable(why: impl std::fmt::Display) -> Refusal {
    Refusal::Unavailable(why.to_string())
}

impl Tables {
    /// Open the groups this node has state for, and the map it knew.
    pub async fn open(
        me: NodeId,
        db: Db,
        data_dir: PathBuf,
        client: NodeClient,
        barrier: ReadBarrier,
    ) -> crate::Result<Arc<Self>> {
        let map: Option<Layout> = db
            .get(Cf::Node, b"layout")?
            .map(|v| record::decode("layout", &v))
            .transpose()?;
        let (learn, mut to_learn) = tokio::sync::mpsc::unbounded_channel();
        let tables = Arc::new(Self {
            me,
            transport: Transport::new(client.clone()),
            syncer: super::log::WalSyncer::start(&db),
            client,
            dir: data_dir.join("snapshots"),
            config: Arc::new(raft_config()),
            barrier,
            groups: RwLock::new(BTreeMap::new()),
            map: tokio::sync::watch::channel(map.map(Arc::new)).0,
            reconciling: std::sync::atomic::AtomicBool::new(false),
            fetching_map: std::sync::atomic::AtomicBool::new(false),
            candidates: std::sync::Mutex::new(BTreeMap::new()),
            liveness: crate::liveness::Detector::new(),
            beat_info: std::sync::Mutex::new((0, 0, 0)),
            lifecycle: tokio::sync::Mutex::new(()),
            followed: std::sync::Mutex::new(BTreeSet::new()),
            learn,
            db,
        });
        let weak = Arc::downgrade(&tables);
        tokio::spawn(async move {
            while let Some(l) = to_learn.recv().await {
                match l {
                    Learn::Voter(addr) => tokio::spawn(follow_map(weak.clone(), addr)),
                    Learn::System(g) => tokio::spawn(follow_system(weak.clone(), g)),
                };
            }
        });
        for g in super::store::hosted_groups(tables.db.as_ref()) {
            tables.ensure_group(g).await?;
        }
        if let Some(map) = tables.map() {
            tables.adopt(map.as_ref().clone()).await;
        }
        if let Some(pending) = tables.pending_bootstrap()? {
            tables.watch_system_voters(&pending);
        }
        tables.spawn_heartbeats();
        Ok(tables)
    }

    /// The node's id.
    pub fn node_id(&self) -> NodeId {
        self.me
    }

    /// The cluster map this node knows.
    pub fn map(&self) -> Option<Arc<Layout>> {
        self.map.borrow().clone()
    }

    /// A hosted group.
    pub fn group(&self, id: GroupId) -> Option<Arc<Group>> {
        self.groups.read().expect("groups lock").get(&id).cloned()
    }

    /// The Raft handle of a hosted group, for the transport's handler.
    pub fn raft(&self, id: GroupId) -> Option<Raft> {
        self.group(id).map(|g| g.raft.clone())
    }

    /// Every hosted group's state, by group id.
    pub fn statuses(&self) -> Vec<cairn::rpc::GroupStatus> {
        let groups = self.groups.read().expect("groups lock");
        let mut out: Vec<_> = groups
            .values()
            .map(|g| {
                let m = g.raft.metrics().borrow().clone();
                cairn::rpc::GroupStatus {
                    group: g.id,
                    leading: m.state == ServerState::Leader,
                    leader: m.current_leader.map(NodeId),
                    term: m.current_term,
                    applied: m.last_applied.map(|l| l.index).unwrap_or(0),
                }
            })
            .collect();
        out.sort_by_key(|s| s.group);
        out
    }

    /// `(hosted, led)` group counts.
    pub fn counts(&self) -> (u64, u64) {
        let groups = self.groups.read().expect("groups lock");
        let led = groups
            .values()
            .filter(|g| g.raft.metrics().borrow().state == ServerState::Leader)
            .count();
        (groups.len() as u64, led as u64)
    }

    /// Start (or find) the Raft instance of a group on this node.
    pub async fn ensure_group(self: &Arc<Self>, id: GroupId) -> crate::Result<Arc<Group>> {
        if let Some(g) = self.group(id) {
            return Ok(g);
        }
        let log = LogStore::new(self.db.clone(), id, self.syncer.clone());
        let machine = Machine::open(self.db.clone(), id, self.dir.join(format!("g{}", id.0)))
            .map_err(|e| crate::Error::Io(std::io::Error::other(e.to_string())))?;
        let applied = machine.applied();
        let network = GroupNetwork {
            group: id,
            transport: self.transport.clone(),
        };
        let raft = Raft::new(
            self.me.0,
            self.config.clone(),
            network,
            log,
            machine.clone(),
        )
        .await
        .map_err(|e| crate::Error::Io(std::io::Error::other(e.to_string())))?;
        let group = Arc::new(Group {
            id,
            raft,
            machine,
            applied,
            active: std::sync::Mutex::new(tokio::time::Instant::now()),
            paused_by: std::sync::Mutex::new(None),
        });
        let mut groups = self.groups.write().expect("groups lock");
        let group = groups.entry(id).or_insert(group).clone();
        drop(groups);
        tokio::spawn(report(id, group.raft.metrics()));
        if id.is_system() {
            let _ = self.learn.send(Learn::System(group.clone()));
        }
        Ok(group)
    }

    /// Start a group with its first voters (cluster creation). Harmless
    /// when the group already started: openraft refuses a second start.
    async fn initialize(&self, group: &Group, voters: &[NodeId], map: &Layout) {
        let members: BTreeMap<u64, PeerNode> = voters
            .iter()
            .map(|v| {
                let addr = map.node(*v).map(|n| n.addr.clone()).unwrap_or_default();
                (v.0, PeerNode { addr })
            })
            .collect();
        match group.raft.initialize(members).await {
            Ok(()) => tracing::info!(group = %group.id, "group started"),
            Err(e) => tracing::debug!(group = %group.id, error = %e, "group already started"),
        }
    }

    /// Take a newer cluster map: keep it, and host (and, at creation,
    /// start) the groups it makes this node a voter of.
    pub async fn adopt(self: &Arc<Self>, map: Layout) {
        let current = self.map().map(|m| m.version).unwrap_or(0);
        if map.version < current {
            return;
        }
        if map.version > current {
            if let Err(e) = self
                .db
                .put(Cf::Node, b"layout", &record::encode(&map), true)
            {
                tracing::error!(error = %e, "could not keep the cluster map");
                return;
            }
            tracing::info!(node = %self.me, version = map.version, "cluster map adopted");
            self.map.send_replace(Some(Arc::new(map.clone())));
        }
        let _guard = self.lifecycle.lock().await;
        for (g, info) in map.groups.iter().enumerate() {
            let id = GroupId(g as u32);
            if !info.voters.contains(&self.me) {
                continue;
            }
            let fresh = self.group(id).is_none();
            let group = match self.ensure_group(id).await {
                Ok(group) => group,
                Err(e) => {
                    tracing::error!(group = %id, error = %e, "could not start group");
                    continue;
                }
            };
            // Only the creation map starts groups here; voters added later
            // join through their group's leader. The first voter starts
            // it; the others only if it has not reached them after a while
            // (it may be down), so the first election is not split.
            if fresh && info.epoch == 0 && map.version == 1 {
                if info.voters.first() == Some(&self.me) {
                    self.initialize(&group, &info.voters, &map).await;
                } else {
                    let (me, voters, map) =
                        (Arc::downgrade(self), info.voters.clone(), map.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep(LATE_START).await;
                        let Some(t) = me.upgrade() else { return };
                        if let Some(g) = t.group(id)
                            && !g.raft.is_initialized().await.unwrap_or(true)
                        {
                            t.initialize(&g, &voters, &map).await;
                        }
                    });
                }
            }
        }
        drop(_guard);
        self.watch_system_voters(&map);
    }

    /// Whether this node leads `group` now.
    pub fn leads(&self, group: GroupId) -> bool {
        self.group(group)
            .is_some_and(|g| g.raft.metrics().borrow().state == ServerState::Leader)
    }

    /// The data groups this node leads now.
    pub fn led_groups(&self) -> Vec<GroupId> {
        let Some(map) = self.map() else {
            return Vec::new();
        };
        (1..=map.metadata_groups())
            .map(GroupId)
            .filter(|g| self.leads(*g))
            .collect()
    }

    /// The voter change this node owes `group` as its leader: `None` when
    /// it does not lead it, or when its voters are the map's `info.voters`
    /// and no change is half made (a joint configuration: openraft makes a
    /// change in two steps driven by the caller, so a call cut short by its
    /// timeout between them left the group joint for good; found by
    /// simulation seeds 26 and 826).
    fn owed_voter_change(&self, group: GroupId, info: &GroupInfo) -> Option<OwedVoterChange> {
        let m = self.group(group)?.raft.metrics().borrow().clone();
        if m.state != ServerState::Leader {
            return None;
        }
        let membership = m.membership_config.membership();
        let joint = membership.get_joint_config().len() > 1;
        let current: BTreeSet<u64> = membership.voter_ids().collect();
        let want: BTreeSet<u64> = info.voters.iter().map(|v| v.0).collect();
        if current == want && !joint {
            return None;
        }
        tracing::debug!(%group, ?current, ?want, joint, "voters not yet the map's");
        Some(OwedVoterChange {
            leader_votes: current.contains(&m.id),
            current,
            want,
        })
    }

    /// Groups this node leads whose voters are not yet those `map` names
    /// (a change in progress counts): until it is 0 on every node, a
    /// group may still count a lost node among its voters, so the cluster
    /// is not back to full redundancy (`repair status` says so).
    pub fn voter_changes_pending(&self, map: &Layout) -> u64 {
        map.groups
            .iter()
            .enumerate()
            .filter(|(g, info)| self.owed_voter_change(GroupId(*g as u32), info).is_some())
            .count() as u64
    }

    /// For every group this node leads whose voters differ from the map's,
    /// change them: the new voters join as learners, catch up, then one
    /// joint-consensus change makes the map's set the voters (a group left
    /// joint by a change cut short is finished the same way). One change at
    /// a time per node; the next round of housekeeping does the next.
    pub async fn reconcile_voters(self: &Arc<Self>, map: &Layout) {
        if self
            .reconciling
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return;
        }
        for (g, info) in map.groups.iter().enumerate() {
            let id = GroupId(g as u32);
            // A leader that is no longer a voter (it committed a change
            // that removed it, and has not stepped down yet) leaves the
            // next change to a leader among the voters: openraft panics
            // when such a leader proposes a membership (found by
            // simulation seed 147).
            let Some(OwedVoterChange {
                current,
                want,
                leader_votes: true,
            }) = self.owed_voter_change(id, info)
            else {
                continue;
            };
            let (me, map, id) = (self.clone(), map.clone(), id);
            tokio::spawn(async move {
                let g = me.group(id).expect("hosted");
                for v in want.difference(&current) {
                    let addr = map
                        .node(NodeId(*v))
                        .map(|n| n.addr.clone())
                        .unwrap_or_default();
                    match tokio::time::timeout(
                        VOTER_CHANGE_TIMEOUT,
                        g.raft.add_learner(*v, PeerNode { addr }, true),
                    )
                    .await
                    {
                        Ok(Ok(_)) => {}
                        outcome => {
                            tracing::warn!(group = %id, voter = %NodeId(*v), ?outcome, "new voter did not catch up; retried");
                            me.reconciling
                                .store(false, std::sync::atomic::Ordering::Release);
                            return;
                        }
                    }
                }
                g.touch();
                match tokio::time::timeout(
                    VOTER_CHANGE_TIMEOUT,
                    g.raft.change_membership(want.clone(), false),
                )
                .await
                {
                    Ok(Ok(_)) => tracing::info!(group = %id, voters = ?want, "voters changed"),
                    outcome => {
                        tracing::warn!(group = %id, ?outcome, "voter change failed; retried")
                    }
                }
                me.reconciling
                    .store(false, std::sync::atomic::Ordering::Release);
            });
            return;
        }
        self.reconciling
            .store(false, std::sync::atomic::Ordering::Release);
    }

    fn pending_bootstrap(&self) -> crate::Result<Option<Layout>> {
        Ok(self
            .db
            .get(Cf::Node, b"bootstrap")?
            .map(|v| record::decode("layout", &v))
            .transpose()?)
    }

    /// Take part in creating a cluster whose first map is `layout`.
    pub async fn bootstrap(self: &Arc<Self>, layout: Layout) -> crate::Result<BootstrapReply> {
        if let Some(map) = self.map() {
            return Ok(BootstrapReply::AlreadyCreated(Some(map.as_ref().clone())));
        }
        if layout.version != 1 || layout.validate().is_err() {
            return Err(crate::Error::BadRequest("not a valid first layout".into()));
        }
        {
            let _guard = self.lifecycle.lock().await;
            match self.pending_bootstrap()? {
                Some(p) if p != layout => return Ok(BootstrapReply::Conflict),
                Some(_) => {}
                None => {
                    self.db
                        .put(Cf::Node, b"bootstrap", &record::encode(&layout), true)?;
                }
            }
        }
        let system = layout.groups[0].voters.clone();
        if system.contains(&self.me) {
            let group = self.ensure_group(GroupId::SYSTEM).await?;
            self.initialize(&group, &system, &layout).await;
        }
        self.watch_system_voters(&layout);
        Ok(BootstrapReply::Accepted)
    }

    /// Ask the system group's voters for newer maps, unless this node is
    /// one of them (it applies the map itself).
    fn watch_system_voters(&self, map: &Layout) {
        let Some(system) = map.groups.first() else {
            return;
        };
        if system.voters.contains(&self.me) {
            return;
        }
        let mut followed = self.followed.lock().expect("followed lock");
        for v in &system.voters {
            if let Some(addr) = map.node(*v).map(|n| n.addr.clone())
                && followed.insert(addr.clone())
            {
                let _ = self.learn.send(Learn::Voter(addr));
            }
        }
    }

    /// Every [`HEARTBEAT_INTERVAL`], send the heartbeats of every active
    /// group this node leads, together (the transport coalesces them per
    /// peer); every [`NODE_BEAT_INTERVAL`], tell the other nodes this node
    /// lives and which of its groups are quiet; turn elections back on for
    /// quiet groups whose leader node went silent.
    fn spawn_heartbeats(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_beat = tokio::time::Instant::now();
            loop {
                tick.tick().await;
                let Some(tables) = me.upgrade() else { return };
                let groups: Vec<Arc<Group>> = tables
                    .groups
                    .read()
                    .expect("groups lock")
                    .values()
                    .cloned()
                    .collect();
                let mut quiet = Vec::new();
                let mut active = Vec::new();
                for g in &groups {
                    let m = g.raft.metrics().borrow().clone();
                    if m.state == ServerState::Leader {
                        if g.quiet() {
                            quiet.push((g.id, m.current_term));
                        } else {
                            active.push(g.raft.clone());
                        }
                    } else {
                        // Copied out: `resume_elections` takes the lock again.
                        let paused = *g.paused_by.lock().expect("pause lock");
                        if let Some((leader, _)) = paused
                            && tables.silent(leader)
                        {
                            g.resume_elections();
                        }
                    }
                }
                for raft in active {
                    let _ = raft.trigger().heartbeat().await;
                }
                if last_beat.elapsed() >= NODE_BEAT_INTERVAL {
                    last_beat = tokio::time::Instant::now();
                    tables.send_beats(quiet);
                }
            }
        });
    }

    fn silent(&self, node: u64) -> bool {
        self.liveness.silence(NodeId(node)) > NODE_SILENT_AFTER
    }

    /// Tell every other node of the map that this one lives, and which of
    /// the groups it leads are quiet.
    fn send_beats(&self, quiet: Vec<(GroupId, u64)>) {
        let Some(map) = self.map() else { return };
        let (synced, used_bytes, total_bytes) = *self.beat_info.lock().expect("beat info lock");
        let beat = cairn::rpc::NodeBeat {
            from: self.me,
            addr: map
                .node(self.me)
                .map(|n| n.addr.clone())
                .unwrap_or_default(),
            quiet,
            synced,
            used_bytes,
            total_bytes,
            map_version: map.version,
        };
        let body = record::encode(&beat);
        for n in map.nodes.iter().filter(|n| n.id != self.me) {
            let (client, addr, body) = (self.client.clone(), n.addr.clone(), body.clone());
            tokio::spawn(async move {
                let _ = client.rpc_node_beat(&addr, body).await;
            });
        }
    }

    /// A beat from another node: its quiet groups stop their elections
    /// here (while its beats go on); groups it no longer calls quiet, or
    /// leads no more, start them again.
    pub fn on_beat(self: &Arc<Self>, beat: cairn::rpc::NodeBeat) {
        let from = beat.from.0;
        self.liveness.heard(&beat);
        // Behind the sender: fetch its map (one fetch at a time).
        let mine = self.map().map(|m| m.version).unwrap_or(0);
        if beat.map_version > mine
            && let Some(addr) = Some(beat.addr.clone()).filter(|a| !a.is_empty())
            && !self
                .fetching_map
                .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            let me = self.clone();
            tokio::spawn(async move {
                if let Ok(Some(map)) = me.client.rpc_get_layout(&addr).await
                    && map.validate().is_ok()
                {
                    me.adopt(map).await;
                }
                me.fetching_map
                    .store(false, std::sync::atomic::Ordering::Release);
            });
        }
        let quiet: BTreeMap<GroupId, u64> = beat.quiet.into_iter().collect();
        let groups: Vec<Arc<Group>> = self
            .groups
            .read()
            .expect("groups lock")
            .values()
            .cloned()
            .collect();
        for g in groups {
            let m = g.raft.metrics().borrow().clone();
            let led_by_sender = m.current_leader == Some(from);
            match quiet.get(&g.id) {
                Some(term) if led_by_sender && *term == m.current_term => {
                    g.pause_elections(from, *term);
                }
                _ => {
                    let paused = *g.paused_by.lock().expect("pause lock");
                    if paused.is_some_and(|(leader, _)| leader == from) {
                        g.resume_elections();
                    }
                }
            }
        }
    }

    /// Propose a command to a group this node leads.
    pub async fn command(&self, group: GroupId, mut request: Request) -> CommandReply {
        if let Err(r) = self.check_group(group, &request.command) {
            return CommandReply::Refused(r);
        }
        request.command.clamp_clock(cairn::clock::now_ms());
        let Some(g) = self.group(group) else {
            return CommandReply::Refused(refused_unavailable(format!(
                "this node does not host {group}"
            )));
        };
        g.touch();
        if crate::sabotage::on(&crate::sabotage::ACK_BEFORE_COMMIT) && !group.is_system() {
            let raft = g.raft.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(COMMAND_TIMEOUT, raft.client_write(request)).await;
            });
            return CommandReply::Done(cairn::command::Outcome::Ok);
        }
        match tokio::time::timeout(COMMAND_TIMEOUT, g.raft.client_write(request)).await {
            Ok(Ok(resp)) => CommandReply::Done(resp.data),
            Ok(Err(e)) => CommandReply::Refused(match e.forward_to_leader::<PeerNode>() {
                Some(f) => Refusal::NotLeader(f.leader_id.map(NodeId)),
                None => refused_unavailable(e),
            }),
            Err(_) => CommandReply::Refused(refused_unavailable(format!(
                "{group}: not committed within {COMMAND_TIMEOUT:?}"
            ))),
        }
    }

    /// System commands go to the system group, data commands to the group
    /// of their bucket.
    fn check_group(&self, group: GroupId, command: &Command) -> Result<(), Refusal> {
        if command.is_system() {
            return if group.is_system() {
                Ok(())
            } else {
                Err(refused_unavailable(
                    "system commands go to the system group",
                ))
            };
        }
        let map = self
            .map()
            .ok_or_else(|| refused_unavailable("no cluster map yet"))?;
        let groups = map.metadata_groups();
        // Commands that name no partition (drop bookkeeping) concern the
        // records of the group they are sent to.
        let Some(keys) = command.partition_keys() else {
            return Ok(());
        };
        for pk in &keys {
            let owner = cairn::layout::data_group_of(pk, groups);
            if owner != group {
                return Err(refused_unavailable(format!(
                    "{pk} belongs to {owner}, not {group}"
                )));
            }
        }
        Ok(())
    }

    /// Make sure this node leads `group` and its state machine holds every
    /// write acknowledged before now.
    async fn read_barrier(&self, g: &Group) -> Result<(), Refusal> {
        let m = g.raft.metrics().borrow().clone();
        if m.state != ServerState::Leader {
            return Err(Refusal::NotLeader(m.current_leader.map(NodeId)));
        }
        if self.barrier == ReadBarrier::Lease {
            let membership = m.membership_config.membership();
            let joint = membership.get_joint_config().len() > 1;
            let voters: BTreeSet<u64> = membership.voter_ids().collect();
            // An entry of this term applied: everything committed before
            // this leader (its blank entry's predecessors) is applied too.
            let term_applied = m
                .last_applied
                .is_some_and(|l| l.leader_id.term == m.vote.leader_id.term);
            if !joint
                && term_applied
                && m.vote.is_committed()
                && self.transport.has_lease(g.id, self.me.0, m.vote, &voters)
            {
                return Ok(());
            }
        }
        match tokio::time::timeout(READ_TIMEOUT, g.raft.ensure_linearizable()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(match e.forward_to_leader::<PeerNode>() {
                Some(f) => Refusal::NotLeader(f.leader_id.map(NodeId)),
                None => refused_unavailable(e),
            }),
            Err(_) => Err(refused_unavailable(format!(
                "{}: leadership not confirmed within {READ_TIMEOUT:?}",
                g.id
            ))),
        }
    }

    /// A linearizable read of a group this node leads.
    pub async fn read(&self, group: GroupId, read: Read) -> ReadReply {
        let Some(g) = self.group(group) else {
            return ReadReply::Refused(refused_unavailable(format!(
                "this node does not host {group}"
            )));
        };
        g.touch();
        if let Err(r) = self.read_barrier(&g).await {
            return ReadReply::Refused(r);
        }
        let view = g.machine.view();
        let work = move || read_view(&view, read);
        match crate::blocking::spawn(work).await {
            Ok(reply) => reply,
            Err(e) => ReadReply::Refused(refused_unavailable(e)),
        }
    }

    /// The system records changed after `after`, confirmed by the leader.
    pub async fn system_changes(&self, after: u64) -> SystemChanges {
        let Some(g) = self.group(GroupId::SYSTEM) else {
            return SystemChanges::Refused(refused_unavailable("not a system voter"));
        };
        if let Err(r) = self.read_barrier(&g).await {
            return SystemChanges::Refused(r);
        }
        let mut index = g.applied.index.subscribe();
        let _ = tokio::time::timeout(SYSTEM_WATCH_WAIT, index.wait_for(|i| *i > after)).await;
        if let Err(r) = self.read_barrier(&g).await {
            return SystemChanges::Refused(r);
        }
        let now = *g.applied.index.borrow();
        match g.applied.changes_after(after) {
            Some(keys) => SystemChanges::Changes {
                index: now.max(after),
                keys,
            },
            None => SystemChanges::Reset { index: now },
        }
    }

    /// The map once its version is past `after`, or the current one after
    /// [`MAP_WATCH_WAIT`].
    pub async fn watch_map(&self, after: u64) -> Option<Layout> {
        let mut rx = self.map.subscribe();
        let _ = tokio::time::timeout(
            MAP_WATCH_WAIT,
            rx.wait_for(|m| m.as_ref().is_some_and(|m| m.version > after)),
        )
        .await;
        self.map().map(|m| m.as_ref().clone())
    }

    /// Stop every group (process shutdown, or a test's restart).
    pub async fn shutdown(&self) {
        let groups: Vec<Arc<Group>> =
            std::mem::take(&mut *self.groups.write().expect("groups lock"))
                .into_values()
                .collect();
        for g in groups {
            let _ = g.raft.shutdown().await;
        }
    }
}

/// Log what matters of a group's life: this node becoming or ceasing to be
/// its leader (INFO), the group stopping on an error (ERROR).
async fn report(
    group: GroupId,
    mut metrics: tokio::sync::watch::Receiver<openraft::RaftMetrics<u64, PeerNode>>,
) {
    let mut leading = false;
    loop {
        let (now_leading, term, failed) = {
            let m = metrics.borrow_and_update();
            (
                m.state == ServerState::Leader,
                m.current_term,
                m.running_state.as_ref().err().map(|e| e.to_string()),
            )
        };
        if let Some(e) = failed {
            tracing::error!(%group, error = %e, "metadata group stopped");
            return;
        }
        if now_leading != leading {
            leading = now_leading;
            if leading {
                tracing::info!(%group, term, "leading group");
            } else {
                tracing::info!(%group, term, "no longer leading group");
            }
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// On a system voter: adopt every cluster map the system group applies.
async fn follow_system(tables: std::sync::Weak<Tables>, group: Arc<Group>) {
    let mut applied = group.applied.index.subscribe();
    let view = group.machine.view();
    loop {
        let map: Option<Layout> = view
            .get(&keys::cluster_map())
            .and_then(|v| record::decode("cluster map", &v).ok());
        let Some(t) = tables.upgrade() else { return };
        if let Some(map) = map
            && Some(map.version) > t.map().map(|m| m.version)
        {
            t.adopt(map).await;
        }
        drop(t);
        if applied.changed().await.is_err() {
            return;
        }
    }
}

/// Long-poll one system voter for newer cluster maps.
async fn follow_map(tables: std::sync::Weak<Tables>, addr: String) {
    loop {
        let Some(t) = tables.upgrade() else { return };
        let after = t.map().map(|m| m.version).unwrap_or(0);
        let client = t.client.clone();
        drop(t);
        match client.rpc_watch_map(&addr, after).await {
            Ok(Some(map)) if map.version > after => {
                let Some(t) = tables.upgrade() else { return };
                t.adopt(map).await;
            }
            Ok(_) => {}
            Err(_) => tokio::time::sleep(MAP_WATCH_RETRY).await,
        }
    }
}

/// Serve one read from committed state.
fn read_view(view: &super::store::GroupView, read: Read) -> ReadReply {
    match read {
        Read::Get(keys) => {
            if keys.len() > MAX_META_BATCH {
                return ReadReply::Refused(refused_unavailable("too many keys"));
            }
            ReadReply::Values(keys.iter().map(|k| view.get(k)).collect())
        }
        Read::Scan {
            table,
            partition_key,
            prefix,
            start_after,
            limit,
        } => {
            let limit = limit.clamp(1, MAX_SCAN_LIMIT) as usize;
            let mut entries = view.scan(
                table,
                &partition_key,
                &prefix,
                start_after.as_deref(),
                limit + 1,
            );
            let truncated = entries.len() > limit;
            entries.truncate(limit);
            ReadReply::Entries(entries, truncated)
        }
        Read::Known(chunks) => {
            if chunks.len() > MAX_META_BATCH {
                return ReadReply::Refused(refused_unavailable("too many chunks"));
            }
            ReadReply::Flags(
                chunks
                    .iter()
                    .map(|c| {
                        view.get(&cairn::record::keys::chunk_state(c)).is_some()
                            || !view.scan(Table::Refs, &c.to_hex(), "", None, 1).is_empty()
                    })
                    .collect(),
            )
        }
        Read::ListObjects {
            bucket,
            prefix,
            delimiter,
            start_after,
            limit,
        } => {
            let limit = limit.clamp(1, MAX_SCAN_LIMIT) as usize;
            let delimiter = delimiter.filter(|d| !d.is_empty());
            let pk = bucket.to_hex();
            let mut items = Vec::new();
            let mut truncated = false;
            let mut after = start_after;
            loop {
                let mut skip_to: Option<String> = None;
                view.each(
                    Table::Objects,
                    &pk,
                    &prefix,
                    after.as_deref(),
                    |key, value| {
                        if items.len() == limit {
                            truncated = true;
                            return false;
                        }
                        if let Some(d) = &delimiter
                            && let Some(pos) = key[prefix.len()..].find(d.as_str())
                        {
                            let common = key[..prefix.len() + pos + d.len()].to_owned();
                            skip_to = Some(format!("{common}{}", char::MAX));
                            items.push(ListItem::Prefix(common));
                            return false;
                        }
                        match record::decode::<ObjectEntry>("object entry", value) {
                            Ok(e) => {
                                items.push(ListItem::Object(ListEntry::of(key.to_owned(), &e)))
                            }
                            Err(e) => tracing::error!(key, error = %e, "unreadable object entry"),
                        }
                        true
                    },
                );
                match skip_to {
                    Some(s) if !truncated => after = Some(s),
                    _ => break,
                }
            }
            ReadReply::Listing(items, truncated)
        }
        Read::Version {
            bucket,
            key,
            version,
        } => match versions::lookup(view, bucket, &key, version) {
            Ok(v) => ReadReply::Version(v),
            Err(o) => ReadReply::Refused(refused_unavailable(format!("{o:?}"))),
        },
        Read::ListVersions {
            bucket,
            prefix,
            delimiter,
            from,
            limit,
        } => {
            let limit = limit.clamp(1, MAX_SCAN_LIMIT) as usize;
            match versions::list(view, bucket, &prefix, delimiter.as_deref(), from, limit) {
                Ok((items, truncated)) => ReadReply::Versions(items, truncated),
                Err(o) => ReadReply::Refused(refused_unavailable(format!("{o:?}"))),
            }
        }
    }
}

impl std::fmt::Debug for Tables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tables").field("node", &self.me).finish()
    }
}
