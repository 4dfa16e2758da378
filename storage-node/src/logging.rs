//! Process-wide logging, shared by the node and gateway binaries: `tracing`
//! lines on stderr, coloured only when stderr is a terminal (log files and
//! pipes get plain text), filtered by `RUST_LOG` or the binary's default.

use std::io::IsTerminal;

/// The default filter of a node. openraft reports every unreachable peer
/// and refused vote at ERROR (a peer restarting, a group not started there
/// yet); the metadata layer logs what matters of its groups itself
/// (leadership changes, a group that stopped), so openraft's own lines are
/// off unless asked for (`RUST_LOG=info,openraft=info`).
pub const NODE_DEFAULT_FILTER: &str = "info,openraft=off";

/// Install the subscriber. `default_filter` applies when `RUST_LOG` is unset.
pub fn init(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}
