//! The cluster test harness: real `cairn-node` and `cairn-gateway`
//! processes on `127.0.0.1` ports picked by the OS, in a temporary
//! directory, driven through the official `aws-sdk-s3` client.
//!
//! `Cluster::start(n)` builds an n-node cluster with a layout; `kill_node`,
//! `restart_node`, `kill_gateway`, `restart_gateway`, `corrupt_shard` and
//! `wait_healthy` break and mend it. Everything is killed on drop.
//!
//! The binaries are taken from the directory above the test executable
//! (`target/<profile>/`), or from `CAIRN_BIN_DIR`; `scripts/test.sh` builds
//! them first.

pub mod linearizability;

use anyhow::{Context, Result, bail};
use aws_credential_types::Credentials;
use aws_sdk_s3::Client;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a process gets to start serving.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the binaries are.
pub fn bin_dir() -> PathBuf {
    if let Ok(d) = std::env::var("CAIRN_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>
    exe.parent()
        .and_then(Path::parent)
        .expect("test executables live in target/<profile>/deps")
        .to_path_buf()
}

/// Path of one of the project's binaries.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} not found: build the binaries first (cargo build --bins), or set CAIRN_BIN_DIR",
        p.display()
    );
    p
}

/// Options of a test cluster.
#[derive(Debug, Clone)]
pub struct Options {
    /// Storage nodes.
    pub nodes: usize,
    /// Gateways.
    pub gateways: usize,
    /// Erasure profile (k, m); the default for the node count when absent.
    pub profile: Option<(u8, u8)>,
    /// Chunk size, bytes (smaller than the default keeps tests quick).
    pub chunk_size_bytes: usize,
    /// The gateways' limit on concurrent transfers (their default when None).
    pub max_concurrent_transfers: Option<usize>,
    /// Whether `start_with` applies a layout (else: `apply_layout` later).
    pub apply_layout: bool,
    /// The nodes' `--down-out-after`, seconds (their default when None).
    pub down_out_after_s: Option<u64>,
    /// The nodes' `--gc-grace`, seconds (their default when None).
    pub gc_grace_s: Option<u64>,
    /// Extra environment of the node processes.
    pub node_env: Vec<(String, String)>,
    /// Seconds a lifecycle "day" lasts, on nodes and gateways (a real day
    /// when None).
    pub lifecycle_day_s: Option<u64>,
}

impl Options {
    /// `nodes` nodes, one gateway, default profile, 1 MiB chunks.
    pub fn nodes(nodes: usize) -> Self {
        Self {
            nodes,
            gateways: 1,
            profile: None,
            chunk_size_bytes: 1 << 20,
            max_concurrent_transfers: None,
            apply_layout: true,
            down_out_after_s: None,
            gc_grace_s: None,
            node_env: Vec::new(),
            lifecycle_day_s: None,
        }
    }
}

struct Proc {
    child: Option<Child>,
    addr: String,
}

impl Proc {
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A running test cluster.
pub struct Cluster {
    /// The temporary directory holding everything (kept with `CAIRN_KEEP=1`).
    pub dir: tempfile::TempDir,
    opts: Options,
    nodes: Vec<Proc>,
    gateways: Vec<Proc>,
    // Each gateway's website endpoint.
    websites: Vec<String>,
    /// Admin token.
    pub admin_token: String,
    /// Root access key id.
    pub access_key: String,
    /// Root secret.
    pub secret_key: String,
    http: reqwest::Client,
    // Whether the layout was applied: from then on a restarted gateway is
    // waited for until it is ready, not just live.
    applied: bool,
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

async fn wait_http(url: &str, http: &reqwest::Client) -> Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(r) = http.get(url).timeout(Duration::from_secs(2)).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{url} did not come up within {START_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_file(path: &Path) -> Result<String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(s) = std::fs::read_to_string(path)
            && !s.trim().is_empty()
        {
            return Ok(s.trim().to_owned());
        }
        if Instant::now() > deadline {
            bail!("{} did not appear within {START_TIMEOUT:?}", path.display());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Cluster {
    /// Start `n` nodes and one gateway with the default profile.
    pub async fn start(n: usize) -> Self {
        Self::start_with(Options::nodes(n))
            .await
            .expect("cluster starts")
    }

    /// Start a cluster as `opts` says and (unless told not to) apply its
    /// layout; returns once every gateway is ready.
    pub async fn start_with(opts: Options) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("cairn-test-").tempdir()?;
        std::fs::write(dir.path().join("cluster-secret"), random_hex(32))?;
        let mut c = Cluster {
            dir,
            opts: opts.clone(),
            nodes: Vec::new(),
            gateways: Vec::new(),
            websites: Vec::new(),
            admin_token: random_hex(16),
            access_key: format!("GKROOT{}", random_hex(6)),
            secret_key: random_hex(20),
            http: reqwest::Client::new(),
            applied: false,
        };
        for i in 0..opts.nodes {
            c.nodes.push(Proc {
                child: None,
                addr: String::new(),
            });
            c.restart_node(i).await?;
        }
        for i in 0..opts.gateways {
            c.gateways.push(Proc {
                child: None,
                addr: "127.0.0.1:0".into(),
            });
            c.websites.push("127.0.0.1:0".into());
            c.restart_gateway(i).await?;
        }
        if opts.apply_layout {
            c.apply_layout().await?;
        }
        Ok(c)
    }

    /// Assign every node a zone of its own and apply the layout; returns
    /// once every gateway is ready.
    pub async fn apply_layout(&mut self) -> Result<()> {
        let c = self;
        let layout = c.admin_get("/_cairn/admin/v1/layout").await?;
        for (i, n) in layout["nodes"]
            .as_array()
            .context("nodes")?
            .iter()
            .enumerate()
        {
            let id = n["id"].as_str().context("every node answers")?;
            c.admin_post(
                "/_cairn/admin/v1/layout/assign",
                serde_json::json!({"node_id": id, "zone": format!("z{}", i + 1), "capacity": 1}),
            )
            .await?;
        }
        let profile = c.opts.profile.map(|(k, m)| serde_json::json!([k, m]));
        c.admin_post(
            "/_cairn/admin/v1/layout/apply",
            serde_json::json!({ "profile": profile }),
        )
        .await?;
        c.applied = true;
        c.wait_layout_everywhere().await
    }

    fn lifecycle_day_arg(&self) -> Option<String> {
        self.opts
            .lifecycle_day_s
            .map(|s| format!("--lifecycle-day-secs={s}"))
    }

    fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node{}", i + 1))
    }

    /// Start one more node (not in the layout); returns its index and id.
    pub async fn add_node(&mut self) -> Result<(usize, String)> {
        self.nodes.push(Proc {
            child: None,
            addr: String::new(),
        });
        let i = self.nodes.len() - 1;
        self.restart_node(i).await?;
        let identity = self.node_client().rpc_identity(&self.nodes[i].addr).await?;
        Ok((i, identity.node_id.to_string()))
    }

    /// The id of node `i` (it must be up).
    pub async fn node_id(&self, i: usize) -> Result<String> {
        let identity = self.node_client().rpc_identity(&self.nodes[i].addr).await?;
        Ok(identity.node_id.to_string())
    }

    /// The data directory of node `i`.
    pub fn node_data_dir(&self, i: usize) -> PathBuf {
        self.node_dir(i)
    }

    /// RPC address of node `i`.
    pub fn node_addr(&self, i: usize) -> &str {
        &self.nodes[i].addr
    }

    /// A node RPC client signing with the cluster secret.
    pub fn node_client(&self) -> cairn_node::client::NodeClient {
        let secret = std::fs::read_to_string(self.dir.path().join("cluster-secret"))
            .expect("the cluster secret file");
        cairn_node::client::NodeClient::new(secret.trim())
    }

    /// The metadata groups node `i` hosts, as it sees them.
    pub async fn group_statuses(&self, i: usize) -> Result<Vec<cairn::rpc::GroupStatus>> {
        Ok(self.node_client().rpc_groups(self.node_addr(i)).await?)
    }

    /// The node (index) leading the group that applied the most entries:
    /// under a write load to one bucket, that bucket's group.
    pub async fn leader_of_busiest_group(&self) -> Result<(usize, cairn::record::GroupId)> {
        let mut best: Option<(u64, usize, cairn::record::GroupId)> = None;
        for i in 0..self.nodes.len() {
            if self.nodes[i].child.is_none() {
                continue;
            }
            let Ok(statuses) = self.group_statuses(i).await else {
                continue;
            };
            for s in statuses
                .into_iter()
                .filter(|s| s.leading && !s.group.is_system())
            {
                if best.is_none_or(|(a, _, _)| s.applied > a) {
                    best = Some((s.applied, i, s.group));
                }
            }
        }
        best.map(|(_, i, g)| (i, g))
            .context("no node leads a data group")
    }

    /// An S3 client of gateway `i` with the root key that never retries.
    pub fn s3_once_at(&self, i: usize) -> Client {
        client_without_retries(&self.endpoint(i), &self.access_key, &self.secret_key)
    }

    /// Create an access key through the admin API: `(id, secret)`.
    pub async fn create_key(&self, name: &str) -> Result<(String, String)> {
        let k = self
            .admin_post("/_cairn/admin/v1/keys", serde_json::json!({ "name": name }))
            .await?;
        Ok((
            k["access_key_id"].as_str().context("id")?.to_owned(),
            k["secret_access_key"]
                .as_str()
                .context("secret")?
                .to_owned(),
        ))
    }

    /// Whether node `i` runs.
    pub fn node_running(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// `http://addr` of gateway `i`.
    pub fn endpoint(&self, i: usize) -> String {
        format!("http://{}", self.gateways[i].addr)
    }

    /// The website endpoint of gateway `i`.
    pub fn website_endpoint(&self, i: usize) -> String {
        format!("http://{}", self.websites[i])
    }

    /// SIGKILL node `i`.
    pub fn kill_node(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Freeze node `i` (SIGSTOP): it keeps its connections and its port,
    /// the kernel still accepts new ones, but it answers nothing — a hung
    /// node, or one cut off by a partition.
    pub fn pause_node(&mut self, i: usize) {
        self.signal_node(i, "-STOP");
    }

    /// Let a paused node run again (SIGCONT).
    pub fn resume_node(&mut self, i: usize) {
        self.signal_node(i, "-CONT");
    }

    fn signal_node(&self, i: usize, signal: &str) {
        let pid = self.nodes[i].child.as_ref().expect("node running").id();
        let ok = Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .expect("running kill")
            .success();
        assert!(ok, "kill {signal} {pid}");
    }

    /// (Re)start node `i` on its data and address; returns once it serves.
    pub async fn restart_node(&mut self, i: usize) -> Result<()> {
        self.nodes[i].kill();
        let dir = self.node_dir(i);
        std::fs::create_dir_all(&dir)?;
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(dir.with_extension("log"))?;
        let join: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, n)| *j != i && !n.addr.is_empty())
            .map(|(_, n)| n.addr.clone())
            .collect();
        let child = Command::new(bin("cairn-node"))
            .arg("--data")
            .arg(&dir)
            .args(if join.is_empty() {
                Vec::new()
            } else {
                vec!["--join".to_owned(), join.join(",")]
            })
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--cluster-secret-file")
            .arg(self.dir.path().join("cluster-secret"))
            .args(
                self.opts
                    .down_out_after_s
                    .map(|s| vec!["--down-out-after".to_owned(), s.to_string()])
                    .unwrap_or_default(),
            )
            .args(
                self.opts
                    .gc_grace_s
                    .map(|s| vec!["--gc-grace".to_owned(), s.to_string()])
                    .unwrap_or_default(),
            )
            .args(self.lifecycle_day_arg())
            .envs(self.opts.node_env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("spawning cairn-node")?;
        self.nodes[i].child = Some(child);
        let addr = wait_file(&dir.join("addr")).await?;
        wait_http(&format!("http://{addr}/health"), &self.http).await?;
        self.nodes[i].addr = addr;
        Ok(())
    }

    /// SIGKILL gateway `i`.
    pub fn kill_gateway(&mut self, i: usize) {
        self.gateways[i].kill();
    }

    /// (Re)start gateway `i` on its address; returns once it serves (once
    /// it is ready, when the layout was applied).
    pub async fn restart_gateway(&mut self, i: usize) -> Result<()> {
        self.gateways[i].kill();
        let addr_file = self.dir.path().join(format!("gateway{}.addr", i + 1));
        let _ = std::fs::remove_file(&addr_file);
        let website_file = self.dir.path().join(format!("gateway{}.website", i + 1));
        let _ = std::fs::remove_file(&website_file);
        std::fs::write(self.dir.path().join("admin-token"), &self.admin_token)?;
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("gateway{}.log", i + 1)))?;
        let nodes: Vec<&str> = self.nodes.iter().map(|n| n.addr.as_str()).collect();
        let child = Command::new(bin("cairn-gateway"))
            .arg("--listen")
            .arg(&self.gateways[i].addr)
            .arg("--nodes")
            .arg(nodes.join(","))
            .arg("--cluster-secret-file")
            .arg(self.dir.path().join("cluster-secret"))
            .arg("--admin-token-file")
            .arg(self.dir.path().join("admin-token"))
            .arg("--chunk-size-bytes")
            .arg(self.opts.chunk_size_bytes.to_string())
            .arg("--addr-file")
            .arg(&addr_file)
            .arg("--website-listen")
            .arg(&self.websites[i])
            .arg("--website-addr-file")
            .arg(&website_file)
            .args(
                self.opts
                    .max_concurrent_transfers
                    .map(|n| format!("--max-concurrent-transfers={n}")),
            )
            .args(self.lifecycle_day_arg())
            .env("CAIRN_ROOT_ACCESS_KEY", &self.access_key)
            .env("CAIRN_ROOT_SECRET_KEY", &self.secret_key)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("spawning cairn-gateway")?;
        self.gateways[i].child = Some(child);
        let addr = wait_file(&addr_file).await?;
        let probe = if self.applied { "ready" } else { "live" };
        wait_http(&format!("http://{addr}/_cairn/health/{probe}"), &self.http).await?;
        self.gateways[i].addr = addr;
        self.websites[i] = wait_file(&website_file).await?;
        Ok(())
    }

    /// SIGKILL every process of the cluster at once.
    pub fn kill_all(&mut self) {
        for g in &mut self.gateways {
            g.kill();
        }
        for n in &mut self.nodes {
            n.kill();
        }
    }

    /// Restart every node, then every gateway, on their data and addresses.
    pub async fn restart_all(&mut self) -> Result<()> {
        for i in 0..self.nodes.len() {
            self.restart_node(i).await?;
        }
        for i in 0..self.gateways.len() {
            self.restart_gateway(i).await?;
        }
        self.wait_layout_everywhere().await?;
        self.wait_healthy().await
    }

    /// Wait until every gateway is ready: it has the applied layout and
    /// reaches a majority of the nodes (`/_cairn/health/ready`).
    async fn wait_layout_everywhere(&self) -> Result<()> {
        for i in 0..self.gateways.len() {
            wait_http(
                &format!("{}/_cairn/health/ready", self.endpoint(i)),
                &self.http,
            )
            .await?;
        }
        Ok(())
    }

    /// Wait until every node answers and the gateway sees them all up.
    pub async fn wait_healthy(&self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let s = self.admin_get("/_cairn/admin/v1/status").await?;
            let nodes = s["nodes"].as_array().cloned().unwrap_or_default();
            if !nodes.is_empty() && nodes.iter().all(|n| n["up"] == true) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("cluster not healthy: {s}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// An S3 client of gateway 0 with the root key.
    pub fn s3(&self) -> Client {
        self.s3_at(0)
    }

    /// An S3 client of gateway `i` with the root key.
    pub fn s3_at(&self, i: usize) -> Client {
        client(&self.endpoint(i), &self.access_key, &self.secret_key)
    }

    /// GET on gateway 0's admin API.
    pub async fn admin_get(&self, path: &str) -> Result<Value> {
        self.admin_get_at(0, path).await
    }

    async fn admin_get_at(&self, i: usize, path: &str) -> Result<Value> {
        let r = self
            .http
            .get(format!("{}{path}", self.endpoint(i)))
            .bearer_auth(&self.admin_token)
            .send()
            .await?;
        let status = r.status();
        let text = r.text().await?;
        anyhow::ensure!(status.is_success(), "GET {path}: {status}: {text}");
        Ok(serde_json::from_str(&text)?)
    }

    /// POST JSON on gateway 0's admin API.
    pub async fn admin_post(&self, path: &str, body: Value) -> Result<Value> {
        let r = self
            .http
            .post(format!("{}{path}", self.endpoint(0)))
            .bearer_auth(&self.admin_token)
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let text = r.text().await?;
        anyhow::ensure!(status.is_success(), "POST {path}: {status}: {text}");
        Ok(if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        })
    }

    /// DELETE on gateway 0's admin API.
    pub async fn admin_delete(&self, path: &str) -> Result<()> {
        let r = self
            .http
            .delete(format!("{}{path}", self.endpoint(0)))
            .bearer_auth(&self.admin_token)
            .send()
            .await?;
        let status = r.status();
        anyhow::ensure!(
            status.is_success(),
            "DELETE {path}: {status}: {}",
            r.text().await?
        );
        Ok(())
    }

    /// Run the `cairn` CLI against gateway 0.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(bin("cairn"))
            .args(args)
            .env("CAIRN_ADMIN_ENDPOINT", self.endpoint(0))
            .env("CAIRN_ADMIN_TOKEN", &self.admin_token)
            .output()
            .expect("running cairn")
    }

    /// Every shard file stored on node `i`.
    pub fn shard_files(&self, i: usize) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let root = self.node_dir(i).join("shards");
        for sub in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            for f in std::fs::read_dir(sub.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = f.file_name().to_string_lossy().into_owned();
                if !name.starts_with('.') {
                    out.push(f.path());
                }
            }
        }
        out.sort();
        out
    }

    /// Shard files of the chunk with id `chunk_hex`, over all nodes.
    pub fn shard_files_of(&self, chunk_hex: &str) -> Vec<(usize, PathBuf)> {
        (0..self.nodes.len())
            .flat_map(|i| {
                self.shard_files(i)
                    .into_iter()
                    .filter(|p| {
                        p.file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with(chunk_hex))
                    })
                    .map(move |p| (i, p))
            })
            .collect()
    }

    /// How many shards each chunk has, over all nodes (chunk id hex -> count).
    pub fn shard_counts(&self) -> std::collections::BTreeMap<String, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for i in 0..self.nodes.len() {
            for p in self.shard_files(i) {
                if let Some(stem) = p.file_stem() {
                    *counts
                        .entry(stem.to_string_lossy().into_owned())
                        .or_insert(0) += 1;
                }
            }
        }
        counts
    }

    /// Bytes of every shard file on every node.
    pub fn shard_file_bytes(&self) -> u64 {
        (0..self.nodes.len())
            .flat_map(|i| self.shard_files(i))
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// One garbage collection pass on every node (`cairn gc run --wait`);
    /// the status after it.
    pub fn gc_pass(&self) -> Value {
        let out = self.cli(&["gc", "run", "--wait", "--json"]);
        assert!(
            out.status.success(),
            "gc run: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("gc status JSON")
    }

    /// Wait until no drop record is left (the references of deleted
    /// objects and parts are removed), at most `timeout`.
    pub async fn wait_drops_done(&self, timeout: std::time::Duration) -> Result<()> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let s = self.admin_get("/_cairn/admin/v1/gc").await?;
            if s["pending_drops"].as_u64() == Some(0) && s["unreachable"] == serde_json::json!([]) {
                return Ok(());
            }
            anyhow::ensure!(std::time::Instant::now() < deadline, "drops not done: {s}");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// Node `i`'s counters (`/v1/stats` via the admin status).
    pub async fn node_stats(&self) -> Result<Vec<Value>> {
        let s = self.admin_get("/_cairn/admin/v1/status").await?;
        Ok(s["nodes"].as_array().cloned().unwrap_or_default())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for g in &mut self.gateways {
            g.kill();
        }
        for n in &mut self.nodes {
            n.kill();
        }
        if std::env::var_os("CAIRN_KEEP").is_some() {
            let path =
                std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir")).keep();
            eprintln!("kept cluster directory {}", path.display());
        }
    }
}

/// An `aws-sdk-s3` client for `endpoint` (path style, plain HTTP).
pub fn client(endpoint: &str, access_key: &str, secret_key: &str) -> Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version_latest()
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(
            access_key,
            secret_key,
            None,
            None,
            "cairn-test",
        ))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    Client::from_conf(config)
}

/// An `aws-sdk-s3` client like [`client`] that never retries: every failed
/// request shows.
pub fn client_without_retries(endpoint: &str, access_key: &str, secret_key: &str) -> Client {
    let config = client(endpoint, access_key, secret_key)
        .config()
        .to_builder()
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}

/// PUT `body` under `bucket/key`, panicking on failure (test helper).
pub async fn put_bytes(s3: &Client, bucket: &str, key: &str, body: Vec<u8>) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(aws_sdk_s3::primitives::ByteStream::from(body))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT {bucket}/{key}: {e:?}"));
}

/// GET `bucket/key` whole, panicking on failure (test helper).
pub async fn get_bytes(s3: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {bucket}/{key}: {e:?}"));
    out.body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

/// Deterministic pseudo-random bytes (xorshift), so content can be
/// regenerated to compare without keeping it in memory.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// BLAKE3 of bytes, hex — for comparing content.
pub fn digest(data: &[u8]) -> String {
    blake3::hash(data).to_hex().to_string()
}

/// The seed of a randomised test: `SEED` from the environment, or a fresh
/// one; printed either way so a failure can be replayed.
pub fn seed() -> u64 {
    let seed = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("SEED={seed}");
    seed
}
