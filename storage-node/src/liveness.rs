//! Failure detection: who is up, from the beats every node sends every
//! other node of the map (`NODE_BEAT_INTERVAL`), judged by a phi-accrual
//! detector (Hayashibara et al., "The φ Accrual Failure Detector", 2004; the
//! form Akka and Cassandra use).
//!
//! Beats over the node RPC rather than a gossip protocol: every node already
//! beats every other one for the quiet Raft groups, a cluster has tens of
//! nodes rather than thousands, and the cluster map (decided by Raft) is the
//! membership; gossip would add a second membership to keep consistent and
//! nothing a direct beat does not already tell. Phi rather than a fixed
//! timeout: it adapts to how regular each peer's beats have been, so a
//! loaded machine's jitter is not mistaken for a death.

use cairn::id::NodeId;
use cairn::rpc::{Liveness, NodeBeat, PeerView};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Phi above which a peer is suspect.
pub const SUSPECT_PHI: f64 = 1.0;
/// Phi above which a peer is down.
pub const DOWN_PHI: f64 = 8.0;
/// Peers never heard whose first mention is remembered.
pub const MAX_EXPECTED: usize = 4096;
/// Inter-arrival samples kept per peer.
pub const WINDOW: usize = 100;
/// Smallest standard deviation assumed (beats on an idle loopback are too
/// regular to learn a useful one from).
pub const MIN_STD_DEV: Duration = Duration::from_millis(200);
/// Silence allowed on top of the mean interval before suspicion grows (a
/// garbage-collection-free process still pauses for fsync storms and
/// scheduler stalls).
pub const ACCEPTABLE_PAUSE: Duration = Duration::from_secs(1);

struct Peer {
    // Since when beats have come without a gap longer than the acceptable
    // pause.
    run_start: Instant,
    last: Instant,
    last_wall_ms: u64,
    intervals: VecDeque<f64>,
    beat: NodeBeat,
}

/// What this node knows of every peer's beats.
pub struct Detector {
    started: Instant,
    started_wall_ms: u64,
    peers: Mutex<BTreeMap<NodeId, Peer>>,
    // Peers never heard: when this detector was first asked about them (a
    // node just added to the layout is not down for the time before it).
    expected: Mutex<BTreeMap<NodeId, (Instant, u64)>>,
}

impl Default for Detector {
    fn default() -> Self {
        Self::new()
    }
}

/// Milliseconds since the epoch now (the process clock).
pub fn now_ms() -> u64 {
    cairn::clock::now_ms()
}

/// Phi of a silence of `elapsed_ms` after beats `mean_ms` apart with
/// standard deviation `std_ms` (logistic approximation of the normal CDF).
pub fn phi(elapsed_ms: f64, mean_ms: f64, std_ms: f64) -> f64 {
    let y = (elapsed_ms - mean_ms) / std_ms;
    let e = (-y * (1.5976 + 0.070566 * y * y)).exp();
    let p = if elapsed_ms > mean_ms {
        e / (1.0 + e)
    } else {
        1.0 - 1.0 / (1.0 + e)
    };
    -p.max(f64::MIN_POSITIVE).log10()
}

impl Detector {
    /// A detector that has heard nobody yet.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            started_wall_ms: now_ms(),
            peers: Mutex::new(BTreeMap::new()),
            expected: Mutex::new(BTreeMap::new()),
        }
    }

    /// When the silence of a peer never heard began: the first time it was
    /// asked about (at most [`MAX_EXPECTED`] remembered).
    fn expected_since(&self, node: NodeId) -> (Instant, u64) {
        let mut e = self.expected.lock().expect("expected lock");
        if e.len() >= MAX_EXPECTED && !e.contains_key(&node) {
            return (self.started, self.started_wall_ms);
        }
        *e.entry(node).or_insert((Instant::now(), now_ms()))
    }

    /// A beat arrived.
    pub fn heard(&self, beat: &NodeBeat) {
        let now = Instant::now();
        let mut peers = self.peers.lock().expect("peers lock");
        match peers.get_mut(&beat.from) {
            Some(p) => {
                let gap = now.duration_since(p.last).as_secs_f64() * 1000.0;
                if now.duration_since(p.last) > ACCEPTABLE_PAUSE * 2 {
                    p.run_start = now;
                }
                p.intervals.push_back(gap);
                if p.intervals.len() > WINDOW {
                    p.intervals.pop_front();
                }
                p.last = now;
                p.last_wall_ms = now_ms();
                p.beat = beat.clone();
            }
            None => {
                peers.insert(
                    beat.from,
                    Peer {
                        run_start: now,
                        last: now,
                        last_wall_ms: now_ms(),
                        intervals: VecDeque::new(),
                        beat: beat.clone(),
                    },
                );
            }
        }
    }

    /// Time since the last beat of `node` (or since this detector started,
    /// when it never heard it).
    pub fn silence(&self, node: NodeId) -> Duration {
        let last = self
            .peers
            .lock()
            .expect("peers lock")
            .get(&node)
            .map(|p| p.last);
        match last {
            Some(t) => t.elapsed(),
            None => self.expected_since(node).0.elapsed(),
        }
    }

    /// How long `node` has beaten without a gap (zero when never heard).
    pub fn heard_for(&self, node: NodeId) -> Duration {
        let peers = self.peers.lock().expect("peers lock");
        peers
            .get(&node)
            .map(|p| p.run_start.elapsed())
            .unwrap_or_default()
    }

    fn phi_of(&self, p: Option<&Peer>, never_heard_since: Instant) -> f64 {
        let interval = crate::table::groups::NODE_BEAT_INTERVAL.as_secs_f64() * 1000.0;
        let (elapsed, mean, std) = match p {
            Some(p) => {
                let n = p.intervals.len().max(1) as f64;
                let mean = if p.intervals.is_empty() {
                    interval
                } else {
                    p.intervals.iter().sum::<f64>() / n
                };
                let var = p.intervals.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
                (p.last.elapsed().as_secs_f64() * 1000.0, mean, var.sqrt())
            }
            None => (
                never_heard_since.elapsed().as_secs_f64() * 1000.0,
                interval,
                0.0,
            ),
        };
        let min_std = MIN_STD_DEV.as_secs_f64() * 1000.0;
        phi(
            elapsed,
            mean + ACCEPTABLE_PAUSE.as_secs_f64() * 1000.0,
            std.max(min_std),
        )
    }

    /// How `node` looks from here.
    pub fn view(&self, node: NodeId) -> PeerView {
        let heard = self.peers.lock().expect("peers lock").contains_key(&node);
        let (since, since_wall_ms) = if heard {
            (self.started, self.started_wall_ms)
        } else {
            self.expected_since(node)
        };
        let peers = self.peers.lock().expect("peers lock");
        let p = peers.get(&node);
        let phi = self.phi_of(p, since);
        let liveness = if phi >= DOWN_PHI {
            Liveness::Down {
                since_ms: p.map(|p| p.last_wall_ms).unwrap_or(since_wall_ms),
            }
        } else if phi >= SUSPECT_PHI {
            Liveness::Suspect
        } else {
            Liveness::Up
        };
        PeerView {
            node,
            liveness,
            phi,
            synced: p.map(|p| p.beat.synced).unwrap_or(0),
            used_bytes: p.map(|p| p.beat.used_bytes).unwrap_or(0),
            total_bytes: p.map(|p| p.beat.total_bytes).unwrap_or(0),
        }
    }

    /// Whether `node` is down as seen from here.
    pub fn is_down(&self, node: NodeId) -> bool {
        matches!(self.view(node).liveness, Liveness::Down { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phi_grows_with_silence() {
        let a = phi(500.0, 1400.0, 200.0);
        let b = phi(1500.0, 1400.0, 200.0);
        let c = phi(2600.0, 1400.0, 200.0);
        assert!(a < 0.1 && a < b && b < c, "{a} {b} {c}");
        assert!(b < SUSPECT_PHI, "one interval late is not suspect: {b}");
        assert!(c > DOWN_PHI, "six deviations late is down: {c}");
    }

    #[test]
    fn a_peer_never_heard_turns_down_after_the_pause() {
        let d = Detector::new();
        let n = NodeId(7);
        assert_eq!(d.view(n).liveness, Liveness::Up);
        d.heard(&NodeBeat {
            from: n,
            addr: String::new(),
            quiet: Vec::new(),
            synced: 3,
            used_bytes: 10,
            total_bytes: 100,
            map_version: 1,
        });
        let v = d.view(n);
        assert_eq!((v.liveness, v.synced, v.used_bytes), (Liveness::Up, 3, 10));
    }
}
