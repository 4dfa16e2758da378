//! `cairn`: the operator CLI. Talks to a gateway's admin API
//! (`CAIRN_ADMIN_ENDPOINT`, authenticated with `CAIRN_ADMIN_TOKEN`).
//! Tables for people, `--json` for scripts.

use anyhow::{Context, bail};
use cairn::id::NodeId;
use cairn::rpc::admin::*;
use clap::{Parser, Subcommand};
use comfy_table::Table;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Time allowed for one admin request.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Parser)]
#[command(name = "cairn", version, about = "Operate a Cairn cluster")]
struct Cli {
    /// Admin endpoint of any gateway.
    #[arg(
        long,
        env = "CAIRN_ADMIN_ENDPOINT",
        default_value = "http://127.0.0.1:9000"
    )]
    endpoint: String,
    /// Admin token (every command but `layout simulate` needs it).
    #[arg(long, env = "CAIRN_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Nodes up/down, layout version, erasure profile, objects and bytes.
    Status,
    /// Show and change the cluster layout.
    #[command(subcommand)]
    Layout(LayoutCommand),
    /// Manage S3 access keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Manage buckets.
    #[command(subcommand)]
    Bucket(BucketCommand),
    /// Nodes: their state, and marking them out or in.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Repair and rebalance progress and limits.
    #[command(subcommand)]
    Repair(RepairCommand),
    /// Verify every shard on disk; corrupt ones are rebuilt.
    #[command(subcommand)]
    Scrub(ScrubCommand),
    /// Garbage collection: chunks no object uses any more.
    #[command(subcommand)]
    Gc(GcCommand),
}

#[derive(Subcommand)]
enum GcCommand {
    /// Chunks deleted, bytes freed, chunks waiting for the grace period.
    Status,
    /// Start a pass on every node now.
    Run {
        /// Return when every node has finished the pass.
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Subcommand)]
enum ScrubCommand {
    /// Start a pass on every node now (or resume a paused one).
    Start {
        /// Return when every node has finished the pass and every corrupt
        /// shard it found has been rebuilt.
        #[arg(long)]
        wait: bool,
    },
    /// Pause the passes.
    Pause,
    /// State, shards checked, corrupt found, repaired.
    Status,
}

#[derive(Subcommand)]
enum NodeCommand {
    /// Every node of the layout: up, suspect, down since, out, leaving;
    /// used and total capacity.
    List,
    /// Mark a node out now: its shards are rebuilt on the nodes that take
    /// its slots, its metadata groups get other voters.
    Out {
        /// Node id.
        node_id: NodeId,
    },
    /// Take a node back in: its slots return to it.
    In {
        /// Node id.
        node_id: NodeId,
    },
}

#[derive(Subcommand)]
enum RepairCommand {
    /// Degraded chunks by shards missing, misplaced shards, bytes to go,
    /// rate, time left.
    Status,
    /// Change the workers' limits on every node, at once and for good.
    Throttle {
        /// Bytes per second per node (0: unlimited).
        #[arg(long)]
        bytes_per_s: Option<u64>,
        /// Tasks at once per node.
        #[arg(long)]
        concurrency: Option<u32>,
        /// Pause the workers.
        #[arg(long, conflicts_with = "resume")]
        pause: bool,
        /// Resume them.
        #[arg(long)]
        resume: bool,
    },
}

#[derive(Subcommand)]
enum LayoutCommand {
    /// The current layout, staged changes, and the nodes in reach.
    Show,
    /// Stage a node with its zone and capacity.
    Assign {
        /// Node id (16 hex digits, see `layout show`).
        node_id: NodeId,
        /// Failure domain.
        #[arg(long, default_value = "default")]
        zone: String,
        /// Relative capacity weight.
        #[arg(long, default_value_t = 1)]
        capacity: u32,
    },
    /// Stage the removal of a node.
    Remove {
        /// Node id.
        node_id: NodeId,
    },
    /// Apply the staged changes as the next layout version.
    Apply {
        /// Erasure profile K+M (default: from the node count).
        #[arg(long)]
        profile: Option<String>,
        /// Print the planned movement (partitions, shards, bytes) and
        /// change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Data groups of the metadata (only when the cluster is created;
        /// fixed afterwards).
        #[arg(long)]
        metadata_groups: Option<u32>,
    },
    /// Plan a synthetic cluster and measure its placement: balance against
    /// capacity shares, movement when one node joins or leaves against the
    /// ideal, shards of a chunk per zone. Needs no cluster.
    Simulate {
        /// Nodes.
        #[arg(long)]
        nodes: usize,
        /// Zones (node i is in zone i mod Z).
        #[arg(long, default_value_t = 1)]
        zones: usize,
        /// Erasure profile K+M.
        #[arg(long, default_value = "4+2")]
        profile: String,
        /// Capacity weights, repeated over the nodes (e.g. 1,2,4).
        #[arg(long, value_delimiter = ',', default_value = "1")]
        capacities: Vec<u32>,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create a key; prints its secret once.
    Create {
        /// A name for people.
        name: String,
    },
    /// List keys.
    List,
    /// Delete a key.
    Delete {
        /// Access key id.
        access_key_id: String,
    },
}

#[derive(Subcommand)]
enum BucketCommand {
    /// List buckets.
    List,
    /// Create a bucket.
    Create {
        /// Name.
        name: String,
        /// Owning access key (the root key when absent).
        #[arg(long)]
        owner: Option<String>,
    },
    /// Delete an empty bucket.
    Delete {
        /// Name.
        name: String,
    },
    /// Objects, bytes, uploads in progress and quota of a bucket.
    Info {
        /// Name.
        name: String,
    },
    /// Set a bucket's quota (an absent limit is no limit): a PUT or
    /// CompleteMultipartUpload past it is refused with 403 QuotaExceeded.
    Quota {
        /// Name.
        name: String,
        /// Most bytes of objects.
        #[arg(long)]
        max_bytes: Option<u64>,
        /// Most objects.
        #[arg(long)]
        max_objects: Option<u64>,
    },
    /// Let another key read and write a bucket.
    Allow {
        /// Bucket.
        bucket: String,
        /// Access key id.
        access_key_id: String,
    },
}

struct Admin {
    http: reqwest::Client,
    endpoint: String,
    token: String,
}

impl Admin {
    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.endpoint.trim_end_matches('/'));
        if self.token.is_empty() {
            bail!("set CAIRN_ADMIN_TOKEN (or pass --token)");
        }
        let mut req = self
            .http
            .request(method, &url)
            .bearer_auth(&self.token)
            .timeout(REQUEST_TIMEOUT);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.with_context(|| format!("calling {url}"))?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            match serde_json::from_str::<AdminError>(&text) {
                Ok(e) => bail!("{} ({}): {}", e.code, status.as_u16(), e.message),
                Err(_) => bail!("{}: {text}", status),
            }
        }
        let text = if text.is_empty() { "null".into() } else { text };
        serde_json::from_str(&text).with_context(|| format!("decoding the answer of {path}"))
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn print_usage(u: &BucketUsage, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(u);
    }
    let limit =
        |l: Option<u64>, f: &dyn Fn(u64) -> String| l.map_or_else(|| "no limit".to_owned(), f);
    println!("bucket {} (owner {})", u.name, u.owner);
    println!(
        "objects: {} of {}",
        u.objects,
        limit(u.max_objects, &|n| n.to_string())
    );
    println!(
        "bytes: {} ({}) of {}",
        u.bytes,
        human_bytes(u.bytes),
        limit(u.max_bytes, &|n| format!("{n} ({})", human_bytes(n)))
    );
    println!(
        "uploads in progress: {}, {}",
        u.uploads,
        human_bytes(u.upload_bytes)
    );
    Ok(())
}

fn print_json(v: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn parse_profile(s: &str) -> anyhow::Result<(u8, u8)> {
    let (k, m) = s.split_once('+').context("profile is K+M, e.g. 4+2")?;
    Ok((k.trim().parse()?, m.trim().parse()?))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let admin = Admin {
        http: reqwest::Client::new(),
        endpoint: cli.endpoint.clone(),
        token: cli.token.clone().unwrap_or_default(),
    };
    let none: Option<&()> = None;
    use reqwest::Method;
    match cli.command {
        Command::Status => {
            let s: ClusterStatus = admin
                .call(Method::GET, "/_cairn/admin/v1/status", none)
                .await?;
            if cli.json {
                return print_json(&s);
            }
            match &s.layout {
                Some(l) => println!(
                    "layout version {}, erasure profile {}+{}, {} partitions",
                    l.version,
                    l.profile.data_shards,
                    l.profile.parity_shards,
                    1u32 << l.partition_bits
                ),
                None => println!("no layout applied yet"),
            }
            // States as the nodes' failure detectors see them (nodes of the
            // layout); nodes only in the gateway's seed list are up or
            // DOWN as the gateway reaches them.
            let states: Vec<NodeEntry> = if s.layout.is_some() {
                admin
                    .call(Method::GET, "/_cairn/admin/v1/nodes", none)
                    .await
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
            for n in &states {
                *counts.entry(n.state.as_str()).or_insert(0) += 1;
            }
            if states.is_empty() {
                let up = s.nodes.iter().filter(|n| n.up).count();
                println!("nodes: {up} up, {} down", s.nodes.len() - up);
            } else {
                let parts: Vec<String> = counts.iter().map(|(st, c)| format!("{c} {st}")).collect();
                println!("nodes in the layout: {}", parts.join(", "));
            }
            println!(
                "objects: {}, {} logical; {} stored (each chunk once, with parity); {} in shards on disk",
                s.objects,
                human_bytes(s.object_bytes),
                human_bytes(s.stored_bytes),
                human_bytes(s.shard_bytes)
            );
            if s.garbage_chunks > 0 {
                println!(
                    "garbage: {} chunks, {} waiting for collection",
                    s.garbage_chunks,
                    human_bytes(s.garbage_bytes)
                );
            }
            if s.uploads > 0 {
                println!(
                    "uploads in progress: {}, {}",
                    s.uploads,
                    human_bytes(s.upload_bytes)
                );
            }
            if s.groups_unread > 0 {
                println!(
                    "({} metadata groups did not answer: their objects are not counted)",
                    s.groups_unread
                );
            }
            let mut t = Table::new();
            t.set_header([
                "node",
                "address",
                "zone",
                "capacity",
                "state",
                "shards",
                "shard bytes",
                "corrupt seen",
            ]);
            for n in &s.nodes {
                t.add_row([
                    n.id.map(|i| i.to_string()).unwrap_or_else(|| "?".into()),
                    n.addr.clone(),
                    n.zone.clone().unwrap_or_else(|| "-".into()),
                    n.capacity
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "-".into()),
                    match (
                        n.id.and_then(|id| states.iter().find(|e| e.id == id)),
                        n.up,
                        n.in_layout,
                    ) {
                        (Some(e), _, _) => e.state.clone(),
                        (None, true, true) => "up".into(),
                        (None, true, false) => "up (not in layout)".into(),
                        (None, false, _) => "DOWN".into(),
                    },
                    n.stats
                        .as_ref()
                        .map(|s| s.shards.to_string())
                        .unwrap_or_else(|| "-".into()),
                    n.stats
                        .as_ref()
                        .map(|s| human_bytes(s.shard_bytes))
                        .unwrap_or_else(|| "-".into()),
                    n.stats
                        .as_ref()
                        .map(|s| s.corrupt_shards_detected.to_string())
                        .unwrap_or_else(|| "-".into()),
                ]);
            }
            println!("{t}");
        }
        Command::Layout(cmd) => match cmd {
            LayoutCommand::Show => {
                let v: Value = admin
                    .call(Method::GET, "/_cairn/admin/v1/layout", none)
                    .await?;
                if cli.json {
                    return print_json(&v);
                }
                match v.get("current").filter(|c| !c.is_null()) {
                    Some(c) => println!(
                        "layout version {} (profile {}+{})",
                        c["version"], c["profile"]["data_shards"], c["profile"]["parity_shards"]
                    ),
                    None => println!("no layout applied yet"),
                }
                let mut t = Table::new();
                t.set_header(["node", "address", "in layout", "zone", "capacity"]);
                let current_nodes = v["current"]["nodes"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                for n in v["nodes"].as_array().cloned().unwrap_or_default() {
                    let id = n["id"].as_str().unwrap_or("?").to_owned();
                    let c = current_nodes.iter().find(|c| c["id"].as_str() == Some(&id));
                    t.add_row([
                        id.clone(),
                        n["addr"].as_str().unwrap_or("").to_owned(),
                        if c.is_some() {
                            "yes".into()
                        } else {
                            "no".into()
                        },
                        c.map(|c| c["zone"].as_str().unwrap_or("").to_owned())
                            .unwrap_or_default(),
                        c.map(|c| c["capacity"].to_string()).unwrap_or_default(),
                    ]);
                }
                println!("{t}");
                let staged = &v["staged"];
                let assigns = staged["assign"].as_array().map(|a| a.len()).unwrap_or(0);
                let removes = staged["remove"].as_array().map(|a| a.len()).unwrap_or(0);
                if assigns + removes > 0 {
                    println!(
                        "staged: {assigns} assignment(s), {removes} removal(s); run `cairn layout apply`"
                    );
                    for a in staged["assign"].as_array().cloned().unwrap_or_default() {
                        println!(
                            "  assign {} zone={} capacity={}",
                            a["id"].as_str().unwrap_or("?"),
                            a["zone"],
                            a["capacity"]
                        );
                    }
                }
            }
            LayoutCommand::Assign {
                node_id,
                zone,
                capacity,
            } => {
                let v: Value = admin
                    .call(
                        Method::POST,
                        "/_cairn/admin/v1/layout/assign",
                        Some(&AssignRequest {
                            node_id,
                            zone,
                            capacity,
                        }),
                    )
                    .await?;
                if cli.json {
                    return print_json(&v);
                }
                println!("staged {node_id}; run `cairn layout apply` to make it take effect");
            }
            LayoutCommand::Remove { node_id } => {
                let v: Value = admin
                    .call(
                        Method::POST,
                        "/_cairn/admin/v1/layout/remove",
                        Some(&serde_json::json!({ "node_id": node_id })),
                    )
                    .await?;
                if cli.json {
                    return print_json(&v);
                }
                println!("staged the removal of {node_id}");
            }
            LayoutCommand::Simulate {
                nodes,
                zones,
                profile,
                capacities,
            } => {
                let (k, m) = parse_profile(&profile)?;
                let s = cairn::layout::simulate(nodes, zones, (k, m), &capacities)?;
                if cli.json {
                    print_json(&s)?;
                } else {
                    println!(
                        "{} nodes in {} zones, {}, {} partitions (planned in {} ms)",
                        s.nodes, s.zones, s.profile, s.partitions, s.plan_ms
                    );
                    println!(
                        "balance: node share / capacity share between {:.3} and {:.3}",
                        s.balance_min_ratio, s.balance_max_ratio
                    );
                    println!(
                        "movement: {:.3}x the ideal when a node joins, {} when one leaves",
                        s.movement_add_ratio,
                        s.movement_remove_ratio
                            .map(|r| format!("{r:.3}x"))
                            .unwrap_or_else(|| "none possible".into())
                    );
                    println!(
                        "at most {} shards of a chunk per zone",
                        s.max_shards_per_zone
                    );
                }
            }
            LayoutCommand::Apply {
                profile,
                dry_run,
                metadata_groups,
            } => {
                let profile = profile.as_deref().map(parse_profile).transpose()?;
                let v: Value = admin
                    .call(
                        Method::POST,
                        "/_cairn/admin/v1/layout/apply",
                        Some(&ApplyRequest {
                            profile,
                            dry_run,
                            metadata_groups,
                        }),
                    )
                    .await?;
                if cli.json {
                    return print_json(&v);
                }
                let l = &v["layout"];
                println!(
                    "{} layout version {} ({} nodes, profile {}+{})",
                    if dry_run { "would apply" } else { "applied" },
                    l["version"],
                    l["nodes"].as_array().map(|a| a.len()).unwrap_or(0),
                    l["profile"]["data_shards"],
                    l["profile"]["parity_shards"]
                );
                println!(
                    "moves {} of {} partitions, {} shard slots, about {}",
                    v["partitions_changed"],
                    v["partitions"],
                    v["shards_moved_slots"],
                    human_bytes(v["bytes_to_move"].as_u64().unwrap_or(0))
                );
            }
        },
        Command::Node(cmd) => match cmd {
            NodeCommand::List => {
                let nodes: Vec<NodeEntry> = admin
                    .call(Method::GET, "/_cairn/admin/v1/nodes", none)
                    .await?;
                if cli.json {
                    return print_json(&nodes);
                }
                let mut t = Table::new();
                t.set_header([
                    "node", "address", "zone", "capacity", "state", "used", "total", "voter of",
                ]);
                for n in &nodes {
                    let state = match (n.state.as_str(), n.down_since_ms) {
                        ("down", Some(ms)) | ("out", Some(ms)) => {
                            let ago = cairn::clock::now_ms().saturating_sub(ms) / 1000;
                            format!("{} (down {ago} s)", n.state)
                        }
                        _ => n.state.clone(),
                    };
                    t.add_row([
                        n.id.to_string(),
                        n.addr.clone(),
                        n.zone.clone(),
                        n.capacity.to_string(),
                        state,
                        human_bytes(n.used_bytes),
                        human_bytes(n.total_bytes),
                        format!("{} groups", n.voter_of),
                    ]);
                }
                println!("{t}");
            }
            NodeCommand::Out { node_id } | NodeCommand::In { node_id } => {
                let action = if matches!(cmd, NodeCommand::Out { .. }) {
                    "out"
                } else {
                    "in"
                };
                let v: Value = admin
                    .call(
                        Method::POST,
                        &format!("/_cairn/admin/v1/nodes/{node_id}/{action}"),
                        none,
                    )
                    .await?;
                if cli.json {
                    return print_json(&v);
                }
                println!(
                    "node {node_id} {action}: layout version {}, {} shard slots move",
                    v["layout"]["version"], v["shards_moved_slots"]
                );
            }
        },
        Command::Repair(cmd) => match cmd {
            RepairCommand::Status => {
                let s: RepairStatus = admin
                    .call(Method::GET, "/_cairn/admin/v1/repair", none)
                    .await?;
                if cli.json {
                    return print_json(&s);
                }
                println!(
                    "{}: {} degraded chunks, {} misplaced shards{}",
                    s.state,
                    s.degraded_chunks,
                    s.misplaced_shards,
                    if s.migrating { ", migrating" } else { "" }
                );
                for (missing, chunks) in &s.by_missing_shards {
                    println!("  {chunks} chunks missing {missing} shards");
                }
                println!(
                    "{} to go, {} done, {}/s, {}",
                    human_bytes(s.bytes_remaining),
                    human_bytes(s.bytes_done),
                    human_bytes(s.rate_bytes_per_s as u64),
                    s.eta_s
                        .map(|e| format!("about {e:.0} s left"))
                        .unwrap_or_else(|| "no estimate".into())
                );
                if s.voter_changes_pending > 0 {
                    println!(
                        "{} metadata groups changing voters",
                        s.voter_changes_pending
                    );
                }
                if !s.unreachable.is_empty() {
                    println!("unreachable owners: {:?}", s.unreachable);
                }
                if s.unrecoverable_chunks > 0 {
                    println!("UNRECOVERABLE chunks: {}", s.unrecoverable_chunks);
                }
            }
            RepairCommand::Throttle {
                bytes_per_s,
                concurrency,
                pause,
                resume,
            } => {
                let t = cairn::rpc::RepairThrottle {
                    max_bytes_per_s: bytes_per_s,
                    concurrency,
                    paused: if pause {
                        Some(true)
                    } else if resume {
                        Some(false)
                    } else {
                        None
                    },
                };
                let v: Value = admin
                    .call(Method::POST, "/_cairn/admin/v1/repair/throttle", Some(&t))
                    .await?;
                print_json(&v)?;
            }
        },
        Command::Gc(cmd) => {
            let s: GcStatus = match cmd {
                GcCommand::Status => admin.call(Method::GET, "/_cairn/admin/v1/gc", none).await?,
                GcCommand::Run { wait } => {
                    let mut s: GcStatus = admin
                        .call(Method::POST, "/_cairn/admin/v1/gc/run", none)
                        .await?;
                    // Each node answers with the pass that covers the
                    // request; done when every node has finished its own.
                    let targets: std::collections::BTreeMap<NodeId, u64> =
                        s.nodes.iter().map(|(id, r)| (*id, r.requested)).collect();
                    let finished = |s: &GcStatus| {
                        s.unreachable.is_empty()
                            && s.nodes
                                .iter()
                                .all(|(id, r)| r.passes >= targets.get(id).copied().unwrap_or(0))
                    };
                    while wait && !finished(&s) {
                        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                        s = admin.call(Method::GET, "/_cairn/admin/v1/gc", none).await?;
                    }
                    s
                }
            };
            if cli.json {
                return print_json(&s);
            }
            println!(
                "{}: grace {} s; {} chunks deleted ({} orphans), {} freed; {} chunks ({}) waiting for the grace; {} drop records pending",
                s.state,
                s.grace_s,
                s.chunks_deleted,
                s.orphans_deleted,
                human_bytes(s.bytes_freed),
                s.waiting_chunks,
                human_bytes(s.waiting_bytes),
                s.pending_drops
            );
            if !s.unreachable.is_empty() {
                println!("unreachable: {:?}", s.unreachable);
            }
        }
        Command::Scrub(cmd) => {
            let print = |s: &ScrubStatus| {
                println!(
                    "{}: {} shards checked, {} corrupt found, {} repaired, {} waiting for repair, {} passes done",
                    s.state,
                    s.shards_checked,
                    s.corrupt_found,
                    s.repaired,
                    s.waiting_repair,
                    s.passes
                );
                if !s.unreachable.is_empty() {
                    println!("unreachable: {:?}", s.unreachable);
                }
            };
            let s: ScrubStatus = match cmd {
                ScrubCommand::Status => {
                    admin
                        .call(Method::GET, "/_cairn/admin/v1/scrub", none)
                        .await?
                }
                ScrubCommand::Pause => {
                    admin
                        .call(Method::POST, "/_cairn/admin/v1/scrub/pause", none)
                        .await?
                }
                ScrubCommand::Start { wait } => {
                    let before: ScrubStatus = admin
                        .call(Method::GET, "/_cairn/admin/v1/scrub", none)
                        .await?;
                    let passes_before: std::collections::BTreeMap<NodeId, u64> =
                        before.nodes.iter().map(|(id, r)| (*id, r.passes)).collect();
                    let mut s: ScrubStatus = admin
                        .call(Method::POST, "/_cairn/admin/v1/scrub/start", none)
                        .await?;
                    let finished = |s: &ScrubStatus| {
                        s.unreachable.is_empty()
                            && s.waiting_repair == 0
                            && s.repaired >= s.corrupt_found
                            && s.nodes.iter().all(|(id, r)| {
                                r.passes > passes_before.get(id).copied().unwrap_or(0)
                            })
                    };
                    while wait && !finished(&s) {
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                        s = admin
                            .call(Method::GET, "/_cairn/admin/v1/scrub", none)
                            .await?;
                    }
                    s
                }
            };
            if cli.json {
                return print_json(&s);
            }
            print(&s);
        }
        Command::Key(cmd) => match cmd {
            KeyCommand::Create { name } => {
                let k: CreatedKey = admin
                    .call(
                        Method::POST,
                        "/_cairn/admin/v1/keys",
                        Some(&CreateKeyRequest { name }),
                    )
                    .await?;
                if cli.json {
                    return print_json(&k);
                }
                println!("access key id:     {}", k.access_key_id);
                println!("secret access key: {}", k.secret_access_key);
                println!("(the secret is shown only now)");
            }
            KeyCommand::List => {
                let keys: Vec<KeyInfo> = admin
                    .call(Method::GET, "/_cairn/admin/v1/keys", none)
                    .await?;
                if cli.json {
                    return print_json(&keys);
                }
                let mut t = Table::new();
                t.set_header(["access key id", "name", "created (ms since epoch)"]);
                for k in keys {
                    t.add_row([k.access_key_id, k.name, k.created_ms.to_string()]);
                }
                println!("{t}");
            }
            KeyCommand::Delete { access_key_id } => {
                let _: Value = admin
                    .call(
                        Method::DELETE,
                        &format!("/_cairn/admin/v1/keys/{access_key_id}"),
                        none,
                    )
                    .await?;
                if !cli.json {
                    println!("deleted key {access_key_id}");
                }
            }
        },
        Command::Bucket(cmd) => match cmd {
            BucketCommand::List => {
                let buckets: Vec<BucketInfo> = admin
                    .call(Method::GET, "/_cairn/admin/v1/buckets", none)
                    .await?;
                if cli.json {
                    return print_json(&buckets);
                }
                let mut t = Table::new();
                t.set_header(["bucket", "owner", "also allowed"]);
                for b in buckets {
                    t.add_row([b.name, b.owner, b.allowed_keys.join(", ")]);
                }
                println!("{t}");
            }
            BucketCommand::Create { name, owner } => {
                let _: Value = admin
                    .call(
                        Method::POST,
                        "/_cairn/admin/v1/buckets",
                        Some(&CreateBucketRequest {
                            name: name.clone(),
                            owner,
                        }),
                    )
                    .await?;
                if !cli.json {
                    println!("created bucket {name}");
                }
            }
            BucketCommand::Delete { name } => {
                let _: Value = admin
                    .call(
                        Method::DELETE,
                        &format!("/_cairn/admin/v1/buckets/{name}"),
                        none,
                    )
                    .await?;
                if !cli.json {
                    println!("deleted bucket {name}");
                }
            }
            BucketCommand::Info { name } => {
                let u: BucketUsage = admin
                    .call(
                        Method::GET,
                        &format!("/_cairn/admin/v1/buckets/{name}"),
                        none,
                    )
                    .await?;
                print_usage(&u, cli.json)?;
            }
            BucketCommand::Quota {
                name,
                max_bytes,
                max_objects,
            } => {
                let q = QuotaRequest {
                    max_bytes,
                    max_objects,
                };
                let u: BucketUsage = admin
                    .call(
                        Method::PUT,
                        &format!("/_cairn/admin/v1/buckets/{name}/quota"),
                        Some(&q),
                    )
                    .await?;
                print_usage(&u, cli.json)?;
            }
            BucketCommand::Allow {
                bucket,
                access_key_id,
            } => {
                let b: BucketInfo = admin
                    .call(
                        Method::POST,
                        &format!("/_cairn/admin/v1/buckets/{bucket}/allow"),
                        Some(&AllowRequest { access_key_id }),
                    )
                    .await?;
                if cli.json {
                    return print_json(&b);
                }
                println!(
                    "bucket {} now allows: {}",
                    b.name,
                    b.allowed_keys.join(", ")
                );
            }
        },
    }
    Ok(())
}
