//! Cairn in simulation: a whole cluster (storage nodes and a gateway) as
//! `turmoil` hosts in one thread, over a simulated network and simulated
//! disks, driven by a seeded workload and a seeded fault schedule, and
//! checked at the end. See `docs/design/simulation.md`.
//!
//! One seed is one run: [`run`] builds the cluster, creates it, runs the
//! clients while faults are injected between simulation steps, heals
//! everything, and checks the history and the end state.

pub mod net;
pub mod s3;
mod workload;

use cairn::clock::Clock;
use cairn::codec::ErasureProfile;
use cairn::layout::{Layout, NodeInfo};
use cairn_node::client::NodeClient;
use cairn_node::config::NodeConfig;
use cairn_node::disk::MemoryDisk;
use cairn_node::server::Node;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// Log (`RUST_LOG`, off by default) on stderr, each line stamped with
/// the simulated time in microseconds instead of the real time, so the
/// logs of two runs of a seed compare line for line.
pub fn log_to_stderr() {
    struct Simulated;
    impl tracing_subscriber::fmt::time::FormatTime for Simulated {
        fn format_time(
            &self,
            w: &mut tracing_subscriber::fmt::format::Writer<'_>,
        ) -> std::fmt::Result {
            match turmoil::sim_elapsed() {
                Some(t) => write!(w, "{:>12}", t.as_micros()),
                None => write!(w, "{:>12}", "-"),
            }
        }
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_timer(Simulated)
        .init();
}

/// Storage nodes in the simulated cluster: one more than a chunk's
/// shards, so a node can be marked out.
pub const NODES: usize = 6;
/// Erasure profile: any two shards of a chunk may be lost.
pub const PROFILE: ErasureProfile = ErasureProfile {
    data_shards: 3,
    parity_shards: 2,
};
/// Metadata groups (fewer than production's default: the simulation runs
/// every group of every node on one thread).
pub const METADATA_GROUPS: u32 = 4;
/// The port every node serves its RPC on.
pub const NODE_PORT: u16 = 7000;
/// The port the gateway serves S3 on.
pub const GATEWAY_PORT: u16 = 9000;
/// The gateway's host name.
pub const GATEWAY: &str = "gw";
/// The cluster secret of simulated clusters.
pub const SECRET: &str = "simulated-cluster-secret-0123456789abcdef";
const ADMIN_TOKEN: &str = "simulated-admin-token";
const ACCESS_KEY: &str = "simroot";
const SECRET_KEY: &str = "simulated-root-secret";
const REGION: &str = "us-east-1";
/// Longest a seed may run, in simulated time, before it counts as hung.
pub const MAX_SIMULATED: Duration = Duration::from_secs(1800);
/// The garbage collector's grace period in simulation: short, so chunks
/// left by writes that failed are collected within a run.
pub const GC_GRACE: Duration = Duration::from_secs(60);
/// How long a node is down before the cluster marks it out, in
/// simulation: shorter than most crashes here, so outs and ins happen.
pub const DOWN_OUT_AFTER: Duration = Duration::from_secs(3);
/// Segments a simulated connection (and a listener's backlog) holds
/// before turmoil gives up: far more than the workload ever has in flight.
pub const TCP_SEGMENTS: usize = 1 << 16;
/// When every simulation starts, as time since the Unix epoch: fixed, so
/// wall-clock values (and their rounding) are the same in every run.
pub const EPOCH: Duration = Duration::from_secs(1_780_000_000);
/// One simulation step.
pub const TICK: Duration = Duration::from_millis(2);

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The seed of the workload and of the fault schedule.
    pub seed: u64,
    /// Concurrent S3 clients.
    pub clients: usize,
    /// Operations each client issues.
    pub ops_per_client: usize,
    /// Whether to inject faults.
    pub faults: bool,
}

impl Options {
    /// The defaults for `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            clients: 3,
            ops_per_client: 60,
            faults: true,
        }
    }
}

/// What a passing run did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Simulated time the run took.
    pub simulated: Duration,
    /// Faults injected.
    pub faults: usize,
    /// Operations whose outcome was checked.
    pub operations: usize,
    /// Every fault and every operation with its outcome, in order.
    pub trace: Vec<String>,
}

/// The host name of node `i`.
pub fn node_host(i: usize) -> String {
    format!("n{}", i + 1)
}

fn node_addr(i: usize) -> String {
    format!("{}:{NODE_PORT}", node_host(i))
}

/// The trace of a run, shared by the driver and the simulated clients
/// (all on one thread).
#[derive(Clone, Default)]
pub(crate) struct Trace(Rc<RefCell<Vec<String>>>);

impl Trace {
    /// Add a line, stamped with the simulated time (ms) when there is one.
    pub(crate) fn push(&self, line: String) {
        let line = match turmoil::sim_elapsed() {
            Some(t) => format!("{:>9} {line}", t.as_millis()),
            None => line,
        };
        if std::env::var_os("SIM_TRACE_LIVE").is_some() {
            eprintln!("{line}");
        }
        self.0.borrow_mut().push(line);
    }
}

fn node_config(dir: &std::path::Path) -> NodeConfig {
    NodeConfig {
        data_dir: dir.to_path_buf(),
        cluster_secret: SECRET.into(),
        fsync: true,
        read_barrier: cairn_node::table::ReadBarrier::Lease,
        down_out_after: DOWN_OUT_AFTER,
        gc_grace: GC_GRACE,
        lifecycle_day: cairn_node::config::DEFAULT_LIFECYCLE_DAY,
    }
}

async fn run_node(disk: MemoryDisk, dir: std::path::PathBuf) -> turmoil::Result {
    let node = Node::open_on(&node_config(&dir), disk.disk(), net::network(), None).await?;
    let listener = net::Listener::bind(NODE_PORT).await?;
    cairn_node::server::run(node, listener, std::future::pending()).await?;
    Ok(())
}

fn gateway_config() -> cairn_gateway::config::GatewayConfig {
    cairn_gateway::config::GatewayConfig {
        seed_nodes: (0..NODES).map(node_addr).collect(),
        cluster_secret: SECRET.into(),
        admin_token: ADMIN_TOKEN.into(),
        root_access_key: ACCESS_KEY.into(),
        root_secret_key: SECRET_KEY.into(),
        region: REGION.into(),
        domains: Vec::new(),
        chunk_size_bytes: 64 << 10,
        inline_threshold_bytes: 4 << 10,
        max_concurrent_transfers: 64,
        lifecycle_day: cairn_node::config::DEFAULT_LIFECYCLE_DAY,
    }
}

async fn run_gateway() -> turmoil::Result {
    let gw = cairn_gateway::Gateway::new_on(gateway_config(), net::network(), None).await?;
    let listener = net::Listener::bind(GATEWAY_PORT).await?;
    cairn_gateway::run(gw, listener, std::future::pending()).await?;
    Ok(())
}

/// The S3 endpoint of the simulated gateway, as the root user.
pub(crate) fn s3() -> s3::S3 {
    s3::S3 {
        endpoint: format!("{GATEWAY}:{GATEWAY_PORT}"),
        access_key: ACCESS_KEY.into(),
        secret_key: SECRET_KEY.into(),
        region: REGION.into(),
    }
}

/// Create the cluster once every node answers: the first map, over all
/// nodes, as the admin API's first apply makes it.
async fn create_cluster(trace: &Trace) -> Result<Vec<cairn::id::NodeId>, String> {
    let client = NodeClient::on(SECRET, &net::network());
    let mut nodes = Vec::new();
    for i in 0..NODES {
        let id = loop {
            match client.rpc_identity(&node_addr(i)).await {
                Ok(identity) => break identity.node_id,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        nodes.push(NodeInfo {
            id,
            addr: node_addr(i),
            zone: format!("z{i}"),
            capacity: 1,
        });
    }
    let layout = Layout::first(nodes, PROFILE, METADATA_GROUPS).map_err(|e| e.to_string())?;
    let ids = layout.nodes.iter().map(|n| n.id).collect();
    cairn_node::table::client::create_cluster(&client, layout)
        .await
        .map_err(|e| format!("creating the cluster: {e}"))?;
    trace.push("cluster created".into());
    Ok(ids)
}

/// Every host a fault may hit: the nodes, the gateway, the clients.
fn hosts() -> Vec<String> {
    let mut h: Vec<String> = (0..NODES).map(node_host).collect();
    h.push(GATEWAY.into());
    h.push(CLIENTS.into());
    h
}

/// The host the workload runs on.
const CLIENTS: &str = "clients";
/// Steps between two faults, at least and at most.
const FAULT_GAP: std::ops::Range<u64> = 100..1500;
/// Largest clock jump, either way, ms (within the node RPC's allowed skew:
/// every host jumps together).
const MAX_CLOCK_JUMP_MS: i64 = 30_000;
/// Steps a fault lasts, at least and at most.
const FAULT_LENGTH: std::ops::Range<u64> = 50..2500;

/// What is broken now, and when it mends.
enum Broken {
    /// A node or the gateway crashed; restarted at the step.
    Host(String, u64),
    /// The wall clock of every host jumped by this many ms; back at the step.
    Clock(i64, u64),
    /// A link cut (both ways, or `from` -> `to` only) or held (messages
    /// delayed until released); whole again at the step.
    Link {
        a: String,
        b: String,
        kind: Link,
        until: u64,
    },
}

#[derive(Debug, Clone, Copy)]
enum Link {
    Cut,
    CutOneWay,
    Held,
}

/// The seeded fault schedule.
struct Faults {
    rng: StdRng,
    next: u64,
    broken: Vec<Broken>,
    injected: usize,
    corrupted: usize,
}

impl Faults {
    fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let next = rng.random_range(FAULT_GAP);
        Self {
            rng,
            next,
            broken: Vec::new(),
            injected: 0,
            corrupted: 0,
        }
    }

    fn nodes_down(&self) -> usize {
        self.broken
            .iter()
            .filter(|b| matches!(b, Broken::Host(h, _) if h.starts_with('n')))
            .count()
    }

    /// Mend what is due, and maybe break something.
    fn tick(&mut self, sim: &mut turmoil::Sim<'_>, step: u64, disks: &[MemoryDisk], trace: &Trace) {
        let (due, kept): (Vec<Broken>, Vec<Broken>) = std::mem::take(&mut self.broken)
            .into_iter()
            .partition(|b| match b {
                Broken::Host(_, until) | Broken::Clock(_, until) | Broken::Link { until, .. } => {
                    *until <= step
                }
            });
        self.broken = kept;
        for b in due {
            Self::mend(sim, step, b, trace);
        }
        if step < self.next {
            return;
        }
        self.next = step + self.rng.random_range(FAULT_GAP);
        let until = step + self.rng.random_range(FAULT_LENGTH);
        let nodes_down = self.nodes_down();
        let rng = &mut self.rng;
        match rng.random_range(0..12) {
            // A node crashes, or loses power (its unsynced writes gone).
            0..=4 => {
                let i = rng.random_range(0..NODES);
                let host = node_host(i);
                let busy = self
                    .broken
                    .iter()
                    .any(|b| matches!(b, Broken::Host(h, _) if *h == host));
                if busy || nodes_down >= PROFILE.parity_shards as usize {
                    return;
                }
                sim.crash(host.as_str());
                if rng.random_bool(0.5) {
                    let mut cut = StdRng::seed_from_u64(rng.random());
                    disks[i].power_loss(|n| cut.random_range(0..=n));
                    trace.push(format!("step {step}: {host} loses power"));
                } else {
                    trace.push(format!("step {step}: {host} crashes"));
                }
                self.broken.push(Broken::Host(host, until));
            }
            // The gateway crashes (its requests in flight are cut off).
            5 => {
                if self
                    .broken
                    .iter()
                    .any(|b| matches!(b, Broken::Host(h, _) if h == GATEWAY))
                {
                    return;
                }
                sim.crash(GATEWAY);
                trace.push(format!("step {step}: the gateway crashes"));
                self.broken.push(Broken::Host(GATEWAY.into(), until));
            }
            // A stored shard rots: one byte of it flips. At most
            // `parity_shards` per run, so no chunk loses more than its
            // parity to corruption (crashes and power losses lose no
            // acknowledged shard).
            11 => {
                if self.corrupted >= PROFILE.parity_shards as usize {
                    return;
                }
                let i = rng.random_range(0..NODES);
                let shards: Vec<_> = disks[i]
                    .files
                    .paths()
                    .into_iter()
                    .filter(|p| p.components().any(|c| c.as_os_str() == "shards"))
                    .collect();
                if shards.is_empty() {
                    return;
                }
                let path = &shards[rng.random_range(0..shards.len())];
                let at = rng.random::<u64>() as usize;
                let flipped = disks[i].files.tamper(path, |data| {
                    if !data.is_empty() {
                        let n = data.len();
                        data[at % n] ^= 0x20;
                    }
                });
                if flipped.is_err() {
                    return;
                }
                trace.push(format!(
                    "step {step}: a shard on {} rots ({})",
                    node_host(i),
                    path.file_name().map_or("?".into(), |n| n.to_string_lossy())
                ));
                self.corrupted += 1;
            }
            // The wall clock jumps, forward or back.
            10 => {
                if self.broken.iter().any(|b| matches!(b, Broken::Clock(..))) {
                    return;
                }
                let jump = rng.random_range(-MAX_CLOCK_JUMP_MS..=MAX_CLOCK_JUMP_MS);
                CLOCK_OFFSET_MS.fetch_add(jump, std::sync::atomic::Ordering::Relaxed);
                trace.push(format!("step {step}: clocks jump {jump} ms"));
                self.broken.push(Broken::Clock(jump, until));
            }
            // A link between two hosts is cut, one way or both, or held.
            _ => {
                let hosts = hosts();
                let a = hosts[rng.random_range(0..hosts.len())].clone();
                let b = hosts[rng.random_range(0..hosts.len())].clone();
                if a == b {
                    return;
                }
                let kind = match rng.random_range(0..3) {
                    0 => Link::Cut,
                    1 => Link::CutOneWay,
                    _ => Link::Held,
                };
                match kind {
                    Link::Cut => sim.partition(a.as_str(), b.as_str()),
                    Link::CutOneWay => sim.partition_oneway(a.as_str(), b.as_str()),
                    Link::Held => sim.hold(a.as_str(), b.as_str()),
                }
                trace.push(format!("step {step}: link {a} -> {b} {kind:?}"));
                self.broken.push(Broken::Link { a, b, kind, until });
            }
        }
        self.injected += 1;
    }

    fn mend(sim: &mut turmoil::Sim<'_>, step: u64, b: Broken, trace: &Trace) {
        match b {
            Broken::Host(host, _) => {
                sim.bounce(host.as_str());
                trace.push(format!("step {step}: {host} restarts"));
            }
            Broken::Clock(jump, _) => {
                CLOCK_OFFSET_MS.fetch_sub(jump, std::sync::atomic::Ordering::Relaxed);
                trace.push(format!("step {step}: clocks jump back {jump} ms"));
            }
            Broken::Link { a, b, kind, .. } => {
                match kind {
                    Link::Cut => sim.repair(a.as_str(), b.as_str()),
                    Link::CutOneWay => sim.repair_oneway(a.as_str(), b.as_str()),
                    Link::Held => sim.release(a.as_str(), b.as_str()),
                }
                trace.push(format!("step {step}: link {a} -> {b} whole"));
            }
        }
    }

    /// Mend everything.
    fn heal(&mut self, sim: &mut turmoil::Sim<'_>, step: u64, trace: &Trace) {
        for b in std::mem::take(&mut self.broken) {
            Self::mend(sim, step, b, trace);
        }
    }
}

/// What a node's shard index lists is on its disk, whole, whatever power
/// losses came between (checked on the disk itself, once the run is over).
fn check_disk(host: &str, disk: &MemoryDisk, dir: &std::path::Path) -> Result<(), String> {
    let disk = disk.disk();
    let store = cairn_node::shard_store::FileShardStore::open(dir, disk.kv, disk.files, true)
        .map_err(|e| format!("{host}: opening its shards: {e}"))?;
    let unbacked = store
        .unbacked()
        .map_err(|e| format!("{host}: reading its shards: {e}"))?;
    match unbacked.first() {
        None => Ok(()),
        Some((chunk, index)) => Err(format!(
            "{host} lists {} shards whose files are gone or torn (the first: shard {index} \
             of chunk {})",
            unbacked.len(),
            &chunk.to_hex()[..16]
        )),
    }
}

/// A failed run: why, and its trace up to then.
#[derive(Debug, Clone)]
pub struct Failed {
    /// What went wrong, with when.
    pub message: String,
    /// The trace up to the failure.
    pub trace: Vec<String>,
}

/// One seeded run; its report, or what went wrong.
pub fn run(opts: &Options) -> Result<Report, Failed> {
    let trace = Trace::default();
    run_traced(opts, &trace).map_err(|message| Failed {
        message,
        trace: trace.0.borrow().clone(),
    })
}

/// Panics of any task during the run (the production code's assertions,
/// and those of the libraries it uses): a task that panics is a bug even
/// when the cluster survives it, so the run fails.
static PANICS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Record every panic from now on (the default report still prints), and
/// forget those of an earlier run.
fn watch_panics() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let at = info
                .location()
                .map_or(String::new(), |l| format!(" at {}:{}", l.file(), l.line()));
            let what = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let mut p = PANICS.lock().unwrap_or_else(|e| e.into_inner());
            if p.len() < MAX_PANICS_KEPT {
                p.push(format!("{what}{at}"));
            }
            drop(p);
            default(info);
        }));
    });
    PANICS.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// Panic messages kept per run.
const MAX_PANICS_KEPT: usize = 16;

/// How far the simulated wall clock is off now (a clock-jump fault), ms.
static CLOCK_OFFSET_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// The wall clock of simulated hosts: the simulation's time since its
/// epoch, plus the offset of a clock jump in force. Outside a host (the
/// driver between steps), the system clock.
fn simulated_now_ms() -> u64 {
    match turmoil::since_epoch() {
        Some(t) => (t.as_millis() as i64
            + CLOCK_OFFSET_MS.load(std::sync::atomic::Ordering::Relaxed))
        .max(0) as u64,
        None => cairn::clock::SystemClock.now_ms(),
    }
}

thread_local! {
    /// The random source of every simulated host (one thread runs them all).
    static RANDOM: RefCell<StdRng> = RefCell::new(StdRng::seed_from_u64(0));
}

fn simulated_random(buf: &mut [u8]) {
    RANDOM.with(|r| r.borrow_mut().fill_bytes(buf));
}

fn run_traced(opts: &Options, trace: &Trace) -> Result<Report, String> {
    let seed = opts.seed;
    RANDOM.with(|r| *r.borrow_mut() = StdRng::seed_from_u64(seed ^ 0x5eed));
    cairn_node::random::install(simulated_random);
    cairn::clock::install(simulated_now_ms);
    cairn_node::blocking::run_inline();
    cairn_node::buggify::enable();
    CLOCK_OFFSET_MS.store(0, std::sync::atomic::Ordering::Relaxed);
    watch_panics();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .epoch(std::time::UNIX_EPOCH + EPOCH)
        .tick_duration(TICK)
        .simulation_duration(MAX_SIMULATED)
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(4))
        .tcp_capacity(TCP_SEGMENTS)
        .build();

    let disks: Vec<MemoryDisk> = (0..NODES).map(|_| MemoryDisk::new()).collect();
    let dirs: Vec<tempfile::TempDir> = (0..NODES)
        .map(|_| tempfile::tempdir().map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    for (i, disk) in disks.iter().enumerate() {
        let disk = disk.clone();
        let dir = dirs[i].path().to_path_buf();
        sim.host(node_host(i), move || run_node(disk.clone(), dir.clone()));
    }
    sim.host(GATEWAY, run_gateway);

    let history = if opts.faults {
        workload::History::default()
    } else {
        workload::History::calm()
    };
    {
        let (trace, history, opts) = (trace.clone(), history.clone(), opts.clone());
        sim.client(CLIENTS, async move {
            let nodes = create_cluster(&trace).await?;
            workload::run(&opts, &nodes, &trace, &history).await?;
            Ok(())
        });
    }

    // Faults, between steps: at most `parity_shards` nodes down at once;
    // links cut or held on top of that.
    let mut faults = Faults::new(rng.random());
    let mut step = 0u64;
    let fail = |e: String, step: u64| format!("{e} (at {:?} simulated)", TICK * step as u32);
    loop {
        let done = sim.step().map_err(|e| fail(e.to_string(), step))?;
        step += 1;
        if done {
            break;
        }
        if opts.faults {
            faults.tick(&mut sim, step, &disks, trace);
        }
    }

    // Heal: every host back, every link whole, then check the end state.
    faults.heal(&mut sim, step, trace);
    {
        let (trace, history) = (trace.clone(), history.clone());
        sim.client("checker", async move {
            workload::check_end(&trace, &history).await?;
            Ok(())
        });
    }
    loop {
        let done = sim.step().map_err(|e| fail(e.to_string(), step))?;
        step += 1;
        if done {
            break;
        }
    }
    if let Some(p) = PANICS.lock().expect("panics lock").first() {
        return Err(fail(format!("a task panicked: {p}"), step));
    }
    let operations = history.check().map_err(|e| fail(e, step))?;
    for (i, disk) in disks.iter().enumerate() {
        check_disk(&node_host(i), disk, dirs[i].path()).map_err(|e| fail(e, step))?;
    }
    let trace = trace.0.borrow().clone();
    Ok(Report {
        seed,
        simulated: TICK * step as u32,
        faults: faults.injected,
        operations,
        trace,
    })
}
