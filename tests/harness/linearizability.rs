//! A linearizability checker for one S3 key seen as a register with
//! compare-and-set: Wing & Gong's search with Lowe's memoisation of
//! (operations linearized, register state).
//!
//! A history is the operations of concurrent clients on one key, each with
//! when it was called and when it returned (a clock shared by all clients)
//! and what it returned. An operation whose outcome is unknown (a timeout,
//! a 503, a broken connection) may have taken effect at any point after its
//! call, or never: it is given no return time and no observed result.
//!
//! Two reductions keep histories with many unknown outcomes tractable
//! without changing the answer: a value no operation ever observes (no
//! read returned it, no `If-Match` named it) behaves like any other such
//! value, so all of them are one; and of several unknown operations that
//! are then identical, the search only ever linearizes the earliest called
//! one not yet linearized (any linearization that uses a later twin can
//! use the earlier one at the same point instead).

use std::collections::{HashMap, HashSet};

/// The value a key holds: `None` when it has no object.
pub type Value = Option<u32>;

/// What a client asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// GET.
    Get,
    /// Unconditional PUT of a value.
    Put(u32),
    /// PUT with `If-None-Match: *`.
    PutIfAbsent(u32),
    /// PUT with `If-Match: <etag of value e>`.
    PutIfMatch {
        /// The value whose ETag was sent.
        expected: u32,
        /// The value written.
        value: u32,
    },
    /// DELETE.
    Delete,
}

/// What it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// GET: the value read (`None`: 404).
    Read(Value),
    /// A write or delete took effect (200/204).
    Done,
    /// 412.
    PreconditionFailed,
    /// 404 on a conditional write.
    NotFound,
    /// Unknown: the operation may or may not have taken effect.
    Unknown,
}

/// One operation of a history.
#[derive(Debug, Clone, Copy)]
pub struct Event {
    /// Who (for messages).
    pub client: usize,
    /// What.
    pub op: Op,
    /// What came back.
    pub outcome: Outcome,
    /// When it was called.
    pub call: u64,
    /// When it returned (`u64::MAX` when unknown).
    pub ret: u64,
}

/// The register's answer to `op` in state `s`: the next state and the
/// outcome it would give.
fn step(s: Value, op: Op) -> (Value, Outcome) {
    match op {
        Op::Get => (s, Outcome::Read(s)),
        Op::Put(v) => (Some(v), Outcome::Done),
        Op::PutIfAbsent(v) => match s {
            None => (Some(v), Outcome::Done),
            Some(_) => (s, Outcome::PreconditionFailed),
        },
        Op::PutIfMatch { expected, value } => match s {
            None => (s, Outcome::NotFound),
            Some(c) if c == expected => (Some(value), Outcome::Done),
            Some(_) => (s, Outcome::PreconditionFailed),
        },
        Op::Delete => (None, Outcome::Done),
    }
}

/// Most (linearized set, state) pairs searched before the checker gives up
/// and says so: operations of unknown outcome may each have happened at
/// any point after their call, and many of them at once make the search
/// exponential.
pub const MAX_STATES: usize = 1 << 21;

/// The one value standing for every value nothing observes.
const UNSEEN: u32 = u32::MAX;

/// `events` with every value that no operation observes replaced by
/// [`UNSEEN`].
fn merge_unseen(events: &mut [Event]) {
    let mut seen = HashSet::new();
    for e in events.iter() {
        if let Outcome::Read(Some(v)) = e.outcome {
            seen.insert(v);
        }
        if let Op::PutIfMatch { expected, .. } = e.op {
            seen.insert(expected);
        }
    }
    let merge = |v: u32| if seen.contains(&v) { v } else { UNSEEN };
    for e in events.iter_mut() {
        e.op = match e.op {
            Op::Put(v) => Op::Put(merge(v)),
            Op::PutIfAbsent(v) => Op::PutIfAbsent(merge(v)),
            Op::PutIfMatch { expected, value } => Op::PutIfMatch {
                expected,
                value: merge(value),
            },
            op => op,
        };
    }
}

/// For each operation of unknown outcome, the identical unknown operation
/// called just before it, if any: the search linearizes it only once that
/// one is.
fn earlier_twins(events: &[Event]) -> Vec<Option<usize>> {
    let mut order: Vec<usize> = (0..events.len())
        .filter(|&i| events[i].outcome == Outcome::Unknown)
        .collect();
    order.sort_by_key(|&i| (events[i].call, i));
    let mut last: HashMap<Op, usize> = HashMap::new();
    let mut twin = vec![None; events.len()];
    for i in order {
        twin[i] = last.insert(events[i].op, i);
    }
    twin
}

/// Whether `history` (one key, starting with no object) is linearizable.
/// `Err` carries a short explanation (also when the search passed
/// [`MAX_STATES`] without an answer: undecided, not a pass).
pub fn check(history: &[Event]) -> Result<(), String> {
    // Reads with an unknown outcome say nothing.
    let mut events: Vec<Event> = history
        .iter()
        .copied()
        .filter(|e| !(e.op == Op::Get && e.outcome == Outcome::Unknown))
        .collect();
    merge_unseen(&mut events);
    let twin = earlier_twins(&events);
    let n = events.len();
    let words = n.div_ceil(64);
    let is_done = |done: &[u64], i: usize| done[i / 64] & (1 << (i % 64)) != 0;
    let mut seen: HashSet<(Vec<u64>, Value)> = HashSet::new();
    // Depth-first search over (linearized set, state), iteratively.
    let mut stack: Vec<(Vec<u64>, Value)> = vec![(vec![0; words], None)];
    let mut deepest = 0usize;
    while let Some((done, state)) = stack.pop() {
        let left: Vec<usize> = (0..n).filter(|&i| !is_done(&done, i)).collect();
        // Every operation left has an unknown outcome: they may never have
        // happened.
        if left.iter().all(|&i| events[i].outcome == Outcome::Unknown) {
            return Ok(());
        }
        if seen.contains(&(done.clone(), state)) {
            continue;
        }
        if seen.len() >= MAX_STATES {
            let unknown = events
                .iter()
                .filter(|e| e.outcome == Outcome::Unknown)
                .count();
            return Err(format!(
                "undecided: {MAX_STATES} states searched for {n} operations, \
                 {unknown} of unknown outcome"
            ));
        }
        deepest = deepest.max(n - left.len());
        // Operations that may go next: called before every pending return.
        let earliest_return = left
            .iter()
            .map(|&i| events[i].ret)
            .min()
            .unwrap_or(u64::MAX);
        for &i in &left {
            let e = events[i];
            if e.call > earliest_return || twin[i].is_some_and(|t| !is_done(&done, t)) {
                continue;
            }
            let (next, outcome) = step(state, e.op);
            if e.outcome == Outcome::Unknown || e.outcome == outcome {
                let mut d = done.clone();
                d[i / 64] |= 1 << (i % 64);
                stack.push((d, next));
            }
        }
        seen.insert((done, state));
    }
    Err(format!(
        "no linearization of {n} operations (at most {deepest} could be ordered)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(client: usize, op: Op, outcome: Outcome, call: u64, ret: u64) -> Event {
        Event {
            client,
            op,
            outcome,
            call,
            ret,
        }
    }

    #[test]
    fn sequential_histories_check() {
        let h = [
            ev(0, Op::PutIfAbsent(1), Outcome::Done, 0, 1),
            ev(1, Op::PutIfAbsent(2), Outcome::PreconditionFailed, 2, 3),
            ev(0, Op::Get, Outcome::Read(Some(1)), 4, 5),
            ev(
                1,
                Op::PutIfMatch {
                    expected: 1,
                    value: 3,
                },
                Outcome::Done,
                6,
                7,
            ),
            ev(0, Op::Delete, Outcome::Done, 8, 9),
            ev(1, Op::Get, Outcome::Read(None), 10, 11),
        ];
        check(&h).unwrap();
    }

    #[test]
    fn two_winners_of_if_none_match_are_caught() {
        let h = [
            ev(0, Op::PutIfAbsent(1), Outcome::Done, 0, 10),
            ev(1, Op::PutIfAbsent(2), Outcome::Done, 1, 11),
        ];
        assert!(check(&h).is_err());
    }

    #[test]
    fn a_read_back_in_time_is_caught() {
        let h = [
            ev(0, Op::Put(1), Outcome::Done, 0, 1),
            ev(0, Op::Put(2), Outcome::Done, 2, 3),
            ev(1, Op::Get, Outcome::Read(Some(1)), 4, 5),
        ];
        assert!(check(&h).is_err());
    }

    #[test]
    fn an_unknown_write_may_or_may_not_have_happened() {
        let happened = [
            ev(0, Op::Put(1), Outcome::Unknown, 0, u64::MAX),
            ev(1, Op::Get, Outcome::Read(Some(1)), 5, 6),
        ];
        check(&happened).unwrap();
        let never = [
            ev(0, Op::Put(1), Outcome::Unknown, 0, u64::MAX),
            ev(1, Op::Get, Outcome::Read(None), 5, 6),
        ];
        check(&never).unwrap();
        // But not both one way and then the other.
        let both = [
            ev(0, Op::Put(1), Outcome::Unknown, 0, u64::MAX),
            ev(1, Op::Get, Outcome::Read(Some(1)), 5, 6),
            ev(1, Op::Get, Outcome::Read(None), 7, 8),
        ];
        assert!(check(&both).is_err());
    }

    #[test]
    fn concurrent_operations_may_go_in_either_order() {
        let h = [
            ev(0, Op::Put(1), Outcome::Done, 0, 10),
            ev(1, Op::Put(2), Outcome::Done, 1, 9),
            ev(2, Op::Get, Outcome::Read(Some(1)), 11, 12),
        ];
        check(&h).unwrap();
    }

    #[test]
    fn many_unknown_writes_are_decided() {
        // Forty writes of unknown outcome around a few definite operations:
        // 2^40 subsets without the reductions.
        let mut h = Vec::new();
        for i in 0..40u64 {
            h.push(ev(
                0,
                Op::Put(100 + i as u32),
                Outcome::Unknown,
                2 * i,
                u64::MAX,
            ));
            if i % 3 == 0 {
                h.push(ev(1, Op::Delete, Outcome::Unknown, 2 * i + 1, u64::MAX));
            }
        }
        h.push(ev(2, Op::Put(7), Outcome::Done, 100, 101));
        h.push(ev(2, Op::Get, Outcome::Read(Some(7)), 102, 103));
        h.push(ev(2, Op::Get, Outcome::Read(Some(139)), 104, 105));
        h.push(ev(
            2,
            Op::PutIfAbsent(8),
            Outcome::PreconditionFailed,
            106,
            107,
        ));
        check(&h).unwrap();
        // Value 139 was written once; after reading it, reading 7 again
        // is not possible.
        h.push(ev(2, Op::Get, Outcome::Read(Some(7)), 108, 109));
        let e = check(&h).unwrap_err();
        assert!(e.starts_with("no linearization"), "{e}");
    }
}
