//! `cairn-sim`: run seeded simulations of a whole cluster and report each
//! failing seed with the command that replays it.

use clap::Parser;
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Run Cairn clusters in deterministic simulation")]
struct Args {
    /// How many consecutive seeds to run.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// The first seed (alone, with `--seeds 1`, it replays that seed).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Operations per client.
    #[arg(long, default_value_t = cairn_sim::Options::new(0).ops_per_client)]
    ops: usize,
    /// Inject no faults (every request must then be answered).
    #[arg(long)]
    no_faults: bool,
    /// Print each run's trace (with `--jobs 1` only).
    #[arg(long)]
    trace: bool,
    /// Break the store on purpose (`ack-before-commit`, `gc-ignores-grace`,
    /// `skip-shard-fsync`) to see the checks catch it.
    #[arg(long = "break", value_name = "SWITCH")]
    sabotage: Option<String>,
    /// Seeds run at once, each in a process of its own (a run is one
    /// thread; one job per core is the most that helps).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=MAX_JOBS))]
    jobs: u64,
}

/// Most seeds run at once.
const MAX_JOBS: u64 = 64;
/// How often the parent looks for a finished child.
const CHILD_POLL: Duration = Duration::from_millis(20);

/// What one seed gave.
enum Seed {
    Passed {
        simulated: Duration,
        faults: usize,
        operations: usize,
    },
    Failed(String),
}

impl Seed {
    /// The line the run prints for `seed` (and that a parent reads back
    /// from a child).
    fn line(&self, seed: u64) -> String {
        match self {
            Self::Passed {
                simulated,
                faults,
                operations,
            } => format!(
                "seed {seed}: ok ({:.0} s simulated, {faults} faults, {operations} operations \
                 checked)",
                simulated.as_secs_f64()
            ),
            Self::Failed(why) => format!("seed {seed}: FAILED: {why}"),
        }
    }

    /// The reverse of [`Seed::line`].
    fn parse(seed: u64, out: &str) -> Self {
        let ok = format!("seed {seed}: ok (");
        let failed = format!("seed {seed}: FAILED: ");
        for line in out.lines() {
            if let Some(why) = line.strip_prefix(&failed) {
                return Self::Failed(why.to_owned());
            }
            if let Some(rest) = line.strip_prefix(&ok) {
                let n: Vec<f64> = rest
                    .split(", ")
                    .filter_map(|part| part.split(' ').next()?.parse().ok())
                    .collect();
                if let [simulated, faults, operations] = n[..] {
                    return Self::Passed {
                        simulated: Duration::from_secs_f64(simulated),
                        faults: faults as usize,
                        operations: operations as usize,
                    };
                }
            }
        }
        Self::Failed(format!("its process said nothing readable: {out:?}"))
    }
}

/// Run `seed` here.
fn run_here(args: &Args, seed: u64) -> Seed {
    let mut opts = cairn_sim::Options::new(seed);
    opts.ops_per_client = args.ops;
    opts.faults = !args.no_faults;
    let (seed_result, trace) = match cairn_sim::run(&opts) {
        Ok(r) => (
            Seed::Passed {
                simulated: r.simulated,
                faults: r.faults,
                operations: r.operations,
            },
            r.trace,
        ),
        Err(e) => (Seed::Failed(e.message), e.trace),
    };
    if args.trace {
        for line in &trace {
            println!("{line}");
        }
    }
    seed_result
}

/// Run the seeds `jobs` at a time, each in a child process; the results
/// in the order the seeds finished.
fn run_children(args: &Args, mut report: impl FnMut(u64, Seed)) {
    let exe = std::env::current_exe().expect("the running binary's path");
    let mut next = args.seed;
    let end = args.seed + args.seeds;
    let mut running: Vec<(u64, std::process::Child)> = Vec::new();
    while next < end || !running.is_empty() {
        while next < end && (running.len() as u64) < args.jobs {
            let mut cmd = std::process::Command::new(&exe);
            cmd.args(["--seeds", "1", "--seed", &next.to_string()])
                .args(["--ops", &args.ops.to_string()])
                .stdout(std::process::Stdio::piped());
            if args.no_faults {
                cmd.arg("--no-faults");
            }
            if let Some(s) = &args.sabotage {
                cmd.args(["--break", s]);
            }
            running.push((next, cmd.spawn().expect("a child process starts")));
            next += 1;
        }
        let finished = running
            .iter_mut()
            .position(|(_, child)| matches!(child.try_wait(), Ok(Some(_))));
        match finished {
            Some(i) => {
                let (seed, child) = running.swap_remove(i);
                let out = child.wait_with_output().expect("a child's output");
                report(
                    seed,
                    Seed::parse(seed, &String::from_utf8_lossy(&out.stdout)),
                );
            }
            None => std::thread::sleep(CHILD_POLL),
        }
    }
}

/// The kernel's random bytes, replaced in this binary by a fixed stream:
/// the standard library keys every `HashMap` from `getrandom`, and a
/// library dropping a map of connections closes them in the map's order,
/// which in a simulation decides the order of the packets and so the
/// latency each one draws (hyper's connection pool does this). Only this
/// binary defines the symbol; the cluster's own random numbers come from
/// the run's seed through `cairn_node::random` whatever this returns, and
/// nothing in a simulation needs secrecy.
#[unsafe(no_mangle)]
unsafe extern "C" fn getrandom(buf: *mut u8, len: usize, _flags: u32) -> isize {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0x005e_ed0f_ca1e);
    if buf.is_null() {
        return -1;
    }
    // SAFETY: the caller passes a buffer of `len` writable bytes.
    let out = unsafe { std::slice::from_raw_parts_mut(buf, len) };
    for chunk in out.chunks_mut(8) {
        // splitmix64
        let mut z = STATE.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
    }
    len as isize
}

/// `getentropy` (up to 256 bytes) from the same stream as [`getrandom`].
#[unsafe(no_mangle)]
unsafe extern "C" fn getentropy(buf: *mut u8, len: usize) -> i32 {
    if len > 256 {
        return -1;
    }
    // SAFETY: as for `getrandom`.
    if unsafe { getrandom(buf, len, 0) } < 0 {
        -1
    } else {
        0
    }
}

fn main() {
    let args = Args::parse();
    if let Some(switch) = &args.sabotage {
        let flag = match switch.as_str() {
            "ack-before-commit" => &cairn_node::sabotage::ACK_BEFORE_COMMIT,
            "gc-ignores-grace" => &cairn_node::sabotage::GC_IGNORES_GRACE,
            "skip-shard-fsync" => &cairn_node::sabotage::SKIP_SHARD_FSYNC,
            other => {
                eprintln!("no such switch: {other}");
                std::process::exit(2);
            }
        };
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    cairn_sim::log_to_stderr();
    let started = std::time::Instant::now();
    let (mut failed, mut simulated, mut faults, mut operations) =
        (Vec::new(), Duration::ZERO, 0usize, 0usize);
    let mut report = |seed: u64, result: Seed| {
        println!("{}", result.line(seed));
        match result {
            Seed::Passed {
                simulated: s,
                faults: f,
                operations: o,
            } => {
                simulated += s;
                faults += f;
                operations += o;
            }
            Seed::Failed(_) => {
                println!("  replay: scripts/simulate.sh --seed {seed} --trace");
                failed.push(seed);
            }
        }
    };
    if args.jobs > 1 && args.seeds > 1 {
        run_children(&args, &mut report);
    } else {
        for seed in args.seed..args.seed + args.seeds {
            report(seed, run_here(&args, seed));
        }
    }
    failed.sort_unstable();
    println!(
        "{} seeds from {}: {} passed, {} failed; {:.1} simulated hours, {faults} faults, \
         {operations} operations checked, {:.0} s",
        args.seeds,
        args.seed,
        args.seeds as usize - failed.len(),
        failed.len(),
        simulated.as_secs_f64() / 3600.0,
        started.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        println!("failing seeds: {failed:?}");
        std::process::exit(1);
    }
}
