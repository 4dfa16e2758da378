//! The simulated clients: concurrent S3 operations on a few keys, with
//! dedup-heavy contents, recorded as a history; and the end checks.

use crate::Trace;
use bytes::Bytes;
use cairn_tests::linearizability::{self, Event, Op, Outcome};
use http::Method;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// The bucket every client works in.
pub const BUCKET: &str = "sim";
/// Keys the clients contend on.
pub const KEYS: usize = 4;
/// Bytes that repeat across objects, so chunks are shared (dedup).
const BLOCK: usize = 64 << 10;
/// Distinct shared blocks.
const BLOCKS: u32 = 3;
/// The client id of the end checker in the history.
const CHECKER: usize = usize::MAX;
/// Attempts of one end-check read before the object counts as lost.
const END_READ_ATTEMPTS: usize = 60;
/// Pause between two attempts of an end check.
const END_RETRY: Duration = Duration::from_secs(1);
/// Pause between two operator actions, ms.
const OPERATOR_PAUSE_MS: std::ops::Range<u64> = 2_000..12_000;
/// Pause between two collector passes asked for while the clients work, ms.
const COLLECT_PAUSE_MS: std::ops::Range<u64> = 200..2_000;
/// How often the end check asks for a collector pass.
const GC_EVERY: Duration = Duration::from_secs(30);
/// Longest the end check waits for repair to report nothing degraded.
const REPAIR_WAIT: Duration = Duration::from_secs(900);

fn key(k: usize) -> String {
    format!("k{k}")
}

/// The bytes of value `v`: an 8-byte header naming it, the rest of its
/// first chunk its own, then shared blocks. Sizes span inline objects,
/// one chunk and several.
pub fn content(v: u32) -> Vec<u8> {
    let size = match v % 5 {
        0 => 16,
        1 => 3_000,
        2 => 20_000,
        3 => BLOCK + 5_000,
        _ => 3 * BLOCK + 1_000,
    };
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(b"CAIRN");
    out.extend_from_slice(&v.to_le_bytes()[..3]);
    let mut x = v.wrapping_mul(2_654_435_761) | 1;
    while out.len() < size.min(BLOCK) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.push(x as u8);
    }
    let mut j = 0u32;
    while out.len() < size {
        let block = (v.wrapping_mul(7) + j) % BLOCKS;
        let take = (size - out.len()).min(BLOCK);
        out.extend((0..take).map(|i| (i as u32).wrapping_mul(31).wrapping_add(block * 101) as u8));
        j += 1;
    }
    // The last, partial chunk is the value's own again, so a reader of a
    // value that is being replaced still needs an unshared chunk at the end.
    if size > BLOCK {
        let tail = size % BLOCK;
        let n = out.len();
        for (i, b) in out[n - tail..].iter_mut().enumerate() {
            *b ^= (v as usize + i) as u8 | 1;
        }
    }
    out
}

/// The value a body holds, if it is exactly one value's bytes.
fn value_of(body: &[u8]) -> Option<u32> {
    if body.len() < 8 || &body[..5] != b"CAIRN" {
        return None;
    }
    let mut id = [0u8; 4];
    id[..3].copy_from_slice(&body[5..8]);
    let v = u32::from_le_bytes(id);
    (content(v) == body).then_some(v)
}

fn etag(v: u32) -> String {
    use md5::Digest;
    format!("\"{}\"", hex::encode(md5::Md5::digest(content(v))))
}

#[derive(Default)]
struct Inner {
    /// No faults in this run.
    calm: bool,
    clock: u64,
    events: Vec<Vec<Event>>,
    /// Reads whose bytes were not any value's.
    corrupt: Vec<String>,
    /// Operations without a definite answer in a run without faults,
    /// where every request must get one.
    unanswered: Vec<String>,
}

/// The history of every client, per key, on one clock.
#[derive(Clone, Default)]
pub struct History(Rc<RefCell<Inner>>);

impl History {
    /// A history of a run without faults: every request must be answered.
    pub fn calm() -> Self {
        let h = Self::default();
        h.0.borrow_mut().calm = true;
        h
    }

    fn now(&self) -> u64 {
        let mut h = self.0.borrow_mut();
        h.clock += 1;
        h.clock
    }

    fn record(&self, k: usize, event: Event) {
        let mut h = self.0.borrow_mut();
        if h.events.len() < KEYS {
            h.events.resize(KEYS, Vec::new());
        }
        h.events[k].push(event);
    }

    /// Check every key's history; the number of operations checked.
    pub fn check(&self) -> Result<usize, String> {
        let h = self.0.borrow();
        if let Some(c) = h.corrupt.first() {
            return Err(format!("a read returned wrong bytes: {c}"));
        }
        if let Some(u) = h.unanswered.first() {
            return Err(format!(
                "without faults, a request got no definite answer: {u}"
            ));
        }
        let mut n = 0;
        for (k, events) in h.events.iter().enumerate() {
            linearizability::check(events).map_err(|e| format!("key {}: {e}", key(k)))?;
            n += events.len();
        }
        Ok(n)
    }
}

/// One operation against the gateway; its outcome as the checker sees it
/// (`None`: it never reached the gateway, so it is not in the history).
async fn perform(
    s3: &crate::s3::S3,
    history: &History,
    client: usize,
    k: usize,
    op: Op,
) -> Option<Outcome> {
    let path = format!("/{BUCKET}/{}", key(k));
    let answer = match op {
        Op::Get => s3.send(Method::GET, &path, &[], Bytes::new()).await,
        Op::Put(v) => s3.send(Method::PUT, &path, &[], content(v).into()).await,
        Op::PutIfAbsent(v) => {
            s3.send(
                Method::PUT,
                &path,
                &[("if-none-match", "*".into())],
                content(v).into(),
            )
            .await
        }
        Op::PutIfMatch { expected, value } => {
            s3.send(
                Method::PUT,
                &path,
                &[("if-match", etag(expected))],
                content(value).into(),
            )
            .await
        }
        Op::Delete => s3.send(Method::DELETE, &path, &[], Bytes::new()).await,
    };
    let a = match answer {
        Ok(a) => a,
        // Never sent: no connection, so no effect either.
        Err(e) if e.starts_with(crate::s3::NOT_SENT) => {
            if history.0.borrow().calm {
                history
                    .0
                    .borrow_mut()
                    .unanswered
                    .push(format!("client {client} {op:?} {path}: {e}"));
            }
            return None;
        }
        Err(e) => {
            return Some(unknown(
                history,
                format!("client {client} {op:?} {path}: {e}"),
            ));
        }
    };
    Some(match (op, a.status) {
        (Op::Get, 200) => match value_of(&a.body) {
            Some(v) => Outcome::Read(Some(v)),
            None => {
                history.0.borrow_mut().corrupt.push(format!(
                    "client {client} GET {path}: {} bytes",
                    a.body.len()
                ));
                Outcome::Unknown
            }
        },
        (Op::Get, 404) => Outcome::Read(None),
        (Op::Delete, 204 | 200) => Outcome::Done,
        (Op::Put(_) | Op::PutIfAbsent(_) | Op::PutIfMatch { .. }, 200) => Outcome::Done,
        (Op::PutIfAbsent(_) | Op::PutIfMatch { .. }, 412) => Outcome::PreconditionFailed,
        (Op::PutIfMatch { .. }, 404) => Outcome::NotFound,
        (_, status) => unknown(
            history,
            format!(
                "client {client} {op:?} {path}: {status} {}",
                String::from_utf8_lossy(&a.body)
            ),
        ),
    })
}

/// An operation whose outcome is unknown; noted when the run has no faults.
fn unknown(history: &History, what: String) -> Outcome {
    let mut h = history.0.borrow_mut();
    if h.calm {
        h.unanswered.push(what);
    }
    Outcome::Unknown
}

async fn client(
    c: usize,
    seed: u64,
    ops: usize,
    trace: Trace,
    history: History,
) -> Result<(), String> {
    let s3 = crate::s3();
    let mut rng = StdRng::seed_from_u64(seed ^ (c as u64).wrapping_mul(0x9e37_79b9));
    let mut written = 0u32;
    let mut last_seen: Vec<Option<u32>> = vec![None; KEYS];
    for _ in 0..ops {
        let k = rng.random_range(0..KEYS);
        written += 1;
        let v = (c as u32 + 1) * 100_000 + written;
        let op = match rng.random_range(0..10) {
            0..=2 => Op::Get,
            3 | 4 => Op::Put(v),
            5 | 6 => Op::PutIfAbsent(v),
            7 | 8 => match last_seen[k] {
                Some(expected) => Op::PutIfMatch { expected, value: v },
                None => Op::Put(v),
            },
            _ => Op::Delete,
        };
        let call = history.now();
        let Some(outcome) = perform(&s3, &history, c, k, op).await else {
            trace.push(format!("c{c} {} {op:?} -> not sent", key(k)));
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..200))).await;
            continue;
        };
        let ret = match outcome {
            Outcome::Unknown => u64::MAX,
            _ => history.now(),
        };
        match (op, outcome) {
            (Op::Get, Outcome::Read(v)) => last_seen[k] = v,
            (Op::Put(v) | Op::PutIfAbsent(v), Outcome::Done) => last_seen[k] = Some(v),
            (Op::PutIfMatch { value, .. }, Outcome::Done) => last_seen[k] = Some(value),
            _ => {}
        }
        trace.push(format!("c{c} {} {op:?} -> {outcome:?}", key(k)));
        history.record(
            k,
            Event {
                client: c,
                op,
                outcome,
                call,
                ret,
            },
        );
        // Some think time, so faults land between and inside operations.
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..200))).await;
    }
    Ok(())
}

/// Retry `f` until it gives an answer with a status below 500.
async fn definite(
    what: &str,
    mut f: impl AsyncFnMut() -> Result<crate::s3::Answer, String>,
) -> Result<crate::s3::Answer, String> {
    let mut last = String::new();
    for _ in 0..END_READ_ATTEMPTS {
        match f().await {
            Ok(a) if a.status < 500 => return Ok(a),
            Ok(a) => last = format!("{} {}", a.status, String::from_utf8_lossy(&a.body)),
            Err(e) => last = e,
        }
        tokio::time::sleep(END_RETRY).await;
    }
    Err(format!("{what}: no answer after healing: {last}"))
}

/// An operator who marks nodes out and back in while the clients work,
/// through the admin API, until `done`; every node is in when it returns.
async fn operator(
    seed: u64,
    nodes: &[cairn::id::NodeId],
    trace: &Trace,
    done: &std::cell::Cell<bool>,
) {
    let s3 = crate::s3();
    let admin = [("authorization", format!("Bearer {}", crate::ADMIN_TOKEN))];
    let mut rng = StdRng::seed_from_u64(seed ^ 0x0be7_a70e);
    let mut out: Option<cairn::id::NodeId> = None;
    loop {
        let pause = Duration::from_millis(rng.random_range(OPERATOR_PAUSE_MS));
        tokio::time::sleep(pause).await;
        let (node, action) = match out {
            Some(n) => (n, "in"),
            None if done.get() => return,
            None => (nodes[rng.random_range(0..nodes.len())], "out"),
        };
        let path = format!("/_cairn/admin/v1/nodes/{node}/{action}");
        let a = s3.send_unsigned(Method::POST, &path, &admin).await;
        let status = a.as_ref().map_or(0, |a| a.status);
        trace.push(format!("operator: {node} {action} -> {status}"));
        if status == 200 {
            out = (action == "out").then_some(node);
        }
    }
}

/// An operator who asks for collector passes while the clients work, so
/// collection races reads and writes.
async fn collector(seed: u64, done: &std::cell::Cell<bool>) {
    let s3 = crate::s3();
    let admin = [("authorization", format!("Bearer {}", crate::ADMIN_TOKEN))];
    let mut rng = StdRng::seed_from_u64(seed ^ 0xc011_ec70);
    while !done.get() {
        tokio::time::sleep(Duration::from_millis(rng.random_range(COLLECT_PAUSE_MS))).await;
        let _ = s3
            .send_unsigned(Method::POST, "/_cairn/admin/v1/gc/run", &admin)
            .await;
    }
}

/// Create the bucket, then run every client at once, and the operators.
pub async fn run(
    opts: &crate::Options,
    nodes: &[cairn::id::NodeId],
    trace: &Trace,
    history: &History,
) -> Result<(), String> {
    let s3 = crate::s3();
    let bucket = format!("/{BUCKET}");
    let a = definite("create bucket", async || {
        s3.send(Method::PUT, &bucket, &[], Bytes::new()).await
    })
    .await?;
    if a.status != 200 {
        return Err(format!("create bucket: {}", a.status));
    }
    trace.push("bucket created".into());
    let clients = (0..opts.clients).map(|c| {
        client(
            c,
            opts.seed,
            opts.ops_per_client,
            trace.clone(),
            history.clone(),
        )
    });
    let done = std::cell::Cell::new(false);
    let work = async {
        let results = futures::future::join_all(clients).await;
        done.set(true);
        results
    };
    let (results, (), ()) = futures::join!(
        work,
        operator(opts.seed, nodes, trace, &done),
        collector(opts.seed, &done)
    );
    for r in results {
        r?;
    }
    Ok(())
}

/// After healing: every key reads back as the history allows (recorded as
/// a last read of each), the listing names exactly the keys that exist,
/// and repair reports nothing degraded.
pub async fn check_end(trace: &Trace, history: &History) -> Result<(), String> {
    let s3 = crate::s3();
    let mut present = Vec::new();
    for k in 0..KEYS {
        let path = format!("/{BUCKET}/{}", key(k));
        let call = history.now();
        let a = definite(&format!("GET {path}"), async || {
            s3.send(Method::GET, &path, &[], Bytes::new()).await
        })
        .await?;
        let outcome = match a.status {
            200 => {
                let v = value_of(&a.body).ok_or_else(|| {
                    format!("GET {path} after healing: {} wrong bytes", a.body.len())
                })?;
                present.push(key(k));
                Outcome::Read(Some(v))
            }
            404 => Outcome::Read(None),
            s => return Err(format!("GET {path} after healing: {s}")),
        };
        let ret = history.now();
        trace.push(format!("end {} -> {outcome:?}", key(k)));
        history.record(
            k,
            Event {
                client: CHECKER,
                op: Op::Get,
                outcome,
                call,
                ret,
            },
        );
    }
    let bucket = format!("/{BUCKET}?list-type=2");
    let a = definite("LIST", async || {
        s3.send(Method::GET, &bucket, &[], Bytes::new()).await
    })
    .await?;
    let listing = String::from_utf8_lossy(&a.body);
    let mut listed: Vec<String> = listing
        .split("<Key>")
        .skip(1)
        .filter_map(|s| s.split("</Key>").next())
        .map(str::to_owned)
        .collect();
    listed.sort();
    if listed != present {
        return Err(format!(
            "the listing names {listed:?}, the objects are {present:?}"
        ));
    }
    wait_repaired(trace).await
}

/// Wait until the admin API reports every chunk whole.
async fn wait_repaired(trace: &Trace) -> Result<(), String> {
    let s3 = crate::s3();
    let started = tokio::time::Instant::now();
    let mut last = String::new();
    let admin = [("authorization", format!("Bearer {}", crate::ADMIN_TOKEN))];
    let mut collected = tokio::time::Instant::now();
    while started.elapsed() < REPAIR_WAIT {
        // Chunks that failed writes left short of shards count as degraded
        // until the collector removes them, past the grace: ask for passes.
        if collected.elapsed() >= GC_EVERY {
            let _ = s3
                .send_unsigned(Method::POST, "/_cairn/admin/v1/gc/run", &admin)
                .await;
            collected = tokio::time::Instant::now();
        }
        let a = s3
            .send_unsigned(Method::GET, "/_cairn/admin/v1/repair", &admin)
            .await;
        match a {
            Ok(a) if a.status == 200 => {
                let status: serde_json::Value =
                    serde_json::from_slice(&a.body).map_err(|e| e.to_string())?;
                if status["state"] == "verified" && status["degraded_chunks"] == 0 {
                    if let Ok(gc) = s3
                        .send_unsigned(Method::GET, "/_cairn/admin/v1/gc", &admin)
                        .await
                    {
                        let gc: serde_json::Value =
                            serde_json::from_slice(&gc.body).unwrap_or_default();
                        trace.push(format!(
                            "collected {} chunks, {} orphans",
                            gc["chunks_deleted"], gc["orphans_deleted"]
                        ));
                        if std::env::var_os("SIM_GC_DEBUG").is_some() {
                            trace.push(format!("gc: {gc}"));
                        }
                    }
                    trace.push(format!("repair verified after {:?}", started.elapsed()));
                    return Ok(());
                }
                last = format!(
                    "{} degraded, state {}, unrecoverable {}, unreachable {}; nodes: {}",
                    status["degraded_chunks"],
                    status["state"],
                    status["unrecoverable_chunks"],
                    status["unreachable"],
                    status["nodes"]
                );
            }
            Ok(a) => last = format!("{} {}", a.status, String::from_utf8_lossy(&a.body)),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Err(format!("repair did not finish after healing: {last}"))
}
