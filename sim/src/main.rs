//! `cairn-sim`: run seeded simulations of a whole cluster and report each
//! failing seed with the command that replays it.

use clap::Parser;

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
    /// Print each run's trace.
    #[arg(long)]
    trace: bool,
    /// Break the store on purpose (`ack-before-commit`, `gc-ignores-grace`)
    /// to see the checks catch it.
    #[arg(long = "break", value_name = "SWITCH")]
    sabotage: Option<String>,
}

fn main() {
    let args = Args::parse();
    if let Some(switch) = &args.sabotage {
        let flag = match switch.as_str() {
            "ack-before-commit" => &cairn_node::sabotage::ACK_BEFORE_COMMIT,
            "gc-ignores-grace" => &cairn_node::sabotage::GC_IGNORES_GRACE,
            other => {
                eprintln!("no such switch: {other}");
                std::process::exit(2);
            }
        };
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    cairn_node::logging::init("off");
    let started = std::time::Instant::now();
    let (mut failed, mut simulated, mut faults, mut operations) =
        (Vec::new(), std::time::Duration::ZERO, 0usize, 0usize);
    for seed in args.seed..args.seed + args.seeds {
        let mut opts = cairn_sim::Options::new(seed);
        opts.ops_per_client = args.ops;
        opts.faults = !args.no_faults;
        match cairn_sim::run(&opts) {
            Ok(report) => {
                if args.trace {
                    for line in &report.trace {
                        println!("{line}");
                    }
                }
                println!(
                    "seed {seed}: ok ({:.0} s simulated, {} faults, {} operations checked)",
                    report.simulated.as_secs_f64(),
                    report.faults,
                    report.operations
                );
                simulated += report.simulated;
                faults += report.faults;
                operations += report.operations;
            }
            Err(e) => {
                if args.trace {
                    for line in &e.trace {
                        println!("{line}");
                    }
                }
                println!("seed {seed}: FAILED: {}", e.message);
                println!("  replay: scripts/simulate.sh --seed {seed}");
                failed.push(seed);
            }
        }
    }
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
