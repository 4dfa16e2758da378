//! Whole clusters in simulation: consecutive seeds pass, and a seed
//! replays exactly.
//!
//! `SIM_SEEDS=n` runs `n` seeds (default 4) from `SEED` (default 0);
//! `scripts/simulate.sh` runs many more.

/// The first seed: `SEED`, or a fixed one. The simulation is
/// deterministic, so a fixed range that passed passes again until the code
/// changes; `scripts/simulate.sh` explores new ranges.
fn first_seed() -> u64 {
    match std::env::var("SEED") {
        Ok(s) => s.parse().expect("SEED is a number"),
        Err(_) => DEFAULT_FIRST_SEED,
    }
}

/// See [`first_seed`].
const DEFAULT_FIRST_SEED: u64 = 0;

/// Seeds that failed, kept so the fix is shown to hold. Each is a replay
/// command away: `scripts/simulate.sh --seed S --trace`.
const FAILED_SEEDS: &[u64] = &[
    // A power loss between a shard put's file and its index entry left a
    // file the store said it held (`contains` looked at the file) while
    // its listings did not name it: the repair worker queued the shard
    // every pass, found it "present" and never finished (18, 26, 506,
    // 508, 524). With the gateway down for long, a key had 26 operations of
    // unknown outcome and the checker's search never ended (40): requests
    // that could not connect are left out now, and the search is bounded.
    // An openraft panic: a leader that had removed itself from a group's
    // voters added itself back as a learner (147). The steward gave up on
    // every change when the first due (an in, refused: the history of
    // placements was full) was refused, so the retirement that would have
    // emptied the history was never made (826).
    18, 26, 40, 147, 506, 508, 524, 826,
];

#[test]
fn consecutive_seeds_pass() {
    let seeds: u64 = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let first = first_seed();
    let mut failed = Vec::new();
    for seed in first..first + seeds {
        match cairn_sim::run(&cairn_sim::Options::new(seed)) {
            Ok(r) => eprintln!(
                "seed {seed}: ok ({:.0} s simulated, {} faults, {} operations)",
                r.simulated.as_secs_f64(),
                r.faults,
                r.operations
            ),
            Err(e) => {
                eprintln!("seed {seed}: FAILED: {}", e.message);
                eprintln!("  replay: scripts/simulate.sh --seed {seed} --trace");
                failed.push(seed);
            }
        }
    }
    assert!(failed.is_empty(), "failing seeds: {failed:?}");
}

/// One seed's trace, run by the `cairn-sim` binary in a process of its
/// own, as a replay is.
fn trace_of(seed: u64) -> Vec<String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn-sim"))
        .args(["--seeds", "1", "--seed", &seed.to_string(), "--trace"])
        .output()
        .expect("cairn-sim runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        // The summary says how long the run took in real time.
        .filter(|l| !l.contains(" seeds from "))
        .map(str::to_owned)
        .collect()
}

#[test]
#[ignore = "tokio picks among ready select! branches with a per-runtime generator seeded \
            from the process's random state unless built with --cfg tokio_unstable (turmoil \
            seeds it then): two runs of a seed part now and then (docs/design/simulation.md)"]
fn a_seed_replays_byte_for_byte() {
    let seed = first_seed();
    let (once, again) = (trace_of(seed), trace_of(seed));
    assert!(once.len() > 50, "a trace with something in it: {once:?}");
    if let Some(i) = (0..once.len().max(again.len())).find(|&i| once.get(i) != again.get(i)) {
        panic!(
            "seed {seed}: the runs part at line {i}: {:?} / {:?}",
            once.get(i),
            again.get(i)
        );
    }
}

/// Seeds a broken build gets before the checks must have caught it.
const SEEDS_TO_CATCH: u64 = 4;

/// Run seeds (with faults, or without) until one fails; the failure.
fn first_failure_of(faults: bool) -> Option<String> {
    let first = first_seed();
    (first..first + SEEDS_TO_CATCH).find_map(|seed| {
        let mut opts = cairn_sim::Options::new(seed);
        opts.faults = faults;
        let failed = cairn_sim::run(&opts).err()?;
        eprintln!("seed {seed} caught it: {}", failed.message);
        Some(failed.message)
    })
}

/// Run seeds with faults until one fails; the failure.
fn first_failure() -> Option<String> {
    first_failure_of(true)
}

#[test]
fn acknowledging_before_commit_is_caught() {
    cairn_node::sabotage::ACK_BEFORE_COMMIT.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(
        first_failure().is_some(),
        "a leader answering before commit went unnoticed for {SEEDS_TO_CATCH} seeds"
    );
}

#[test]
fn skipping_the_shard_fsync_is_caught() {
    cairn_node::sabotage::SKIP_SHARD_FSYNC.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(
        first_failure().is_some(),
        "shards written without fsync went unnoticed for {SEEDS_TO_CATCH} seeds"
    );
}

#[test]
fn gc_ignoring_the_grace_is_caught() {
    cairn_node::sabotage::GC_IGNORES_GRACE.store(true, std::sync::atomic::Ordering::Relaxed);
    // Without faults every request must be answered; a GET whose object
    // was replaced while it streamed (a chunk read stalls at a fault point)
    // fails when the collector deletes the old chunks under it.
    assert!(
        first_failure_of(false).is_some(),
        "a collector ignoring the grace went unnoticed for {SEEDS_TO_CATCH} seeds"
    );
}

#[test]
fn seeds_that_failed_pass() {
    for &seed in FAILED_SEEDS {
        if let Err(e) = cairn_sim::run(&cairn_sim::Options::new(seed)) {
            panic!("seed {seed} still fails: {}", e.message);
        }
    }
}
