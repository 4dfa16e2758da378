#!/usr/bin/env bash
# Run whole Cairn clusters in simulation, one seeded fault schedule per seed,
# and print each failing seed with the command that replays it.
#
#   scripts/simulate.sh --seeds N [--seed FIRST]   N consecutive seeds
#   scripts/simulate.sh --seed S [--trace]         replay one seed
#
# Other options are passed to cairn-sim (`--ops`, `--trace`, `--no-faults`,
# `--break SWITCH`, `--jobs N`: seeds at once, each in a process of its own;
# one per core unless given).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cairn/target}"

args=("$@")
seeds_given=false
jobs_given=false
for a in "$@"; do
    [[ "$a" == --seeds ]] && seeds_given=true
    [[ "$a" == --jobs ]] && jobs_given=true
done
# A lone --seed replays that one seed.
if ! $seeds_given; then
    args+=(--seeds 1)
fi
if ! $jobs_given; then
    args+=(--jobs "$(nproc)")
fi
cargo build --quiet --locked -p cairn-sim --bin cairn-sim
exec "$CARGO_TARGET_DIR/debug/cairn-sim" "${args[@]}"
