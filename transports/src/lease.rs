//! The controller lease, as the stores keep it: one key whose value is
//! `"{term}:{holder}"` and expires unless renewed, and a term counter at the
//! same key plus `":term"` that only grows.
//!
//! The Redis transports run each operation as one Lua script (atomic on the
//! server); in-process stores ([`MemoryTransport`](crate::MemoryTransport),
//! the simulator's Redis) run [`lease_step`] under their lock. The semantics
//! are those of `aci_core::LeaseOp`.

use aci_core::{LeaseOp, MAX_TERM};

/// Who holds a lease after a lease operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseState {
    /// `holder` holds it, in `term`.
    Held {
        /// The holder's term (≥ 1).
        term: u64,
        /// The holder's instance id.
        holder: String,
    },
    /// Nobody holds it.
    Vacant,
}

/// What a lease operation writes to the store (see [`lease_step`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseWrite {
    /// Nothing.
    Keep,
    /// Push the live lease's expiry to now + ttl.
    Extend,
    /// Store the lease for the caller in this term, expiring at now + ttl
    /// (the counter was already advanced to it).
    Grant(u64),
    /// Remove the lease.
    Delete,
}

/// One lease operation of `holder` on an in-process store: from the live
/// lease (`None` when there is none, it expired, or its value is not one of
/// ours) and the term counter, what to write and what to answer. The Lua
/// scripts do the same on Redis; [`MemoryTransport`](crate::MemoryTransport)
/// and the simulator's Redis apply this. A release answers
/// [`LeaseState::Vacant`] (nobody reads it).
///
/// Terms stay in `1..=MAX_TERM`: a counter at or beyond the bound (written
/// by hand, or by a version that let forged terms raise it) is repaired by
/// the next grant, which is then `min_term + 1`.
///
/// ```
/// use aci_core::{LeaseOp, MAX_TERM};
/// use aci_transports::lease::{lease_step, LeaseState, LeaseWrite};
/// let mut counter = 4;
/// let (write, answer) = lease_step(None, &mut counter, "a", LeaseOp::Acquire { min_term: 0 });
/// assert_eq!((write, counter), (LeaseWrite::Grant(5), 5));
/// assert_eq!(answer, LeaseState::Held { term: 5, holder: "a".into() });
/// // Someone else's live lease is only reported.
/// let (write, _) = lease_step(Some((5, "a")), &mut counter, "b", LeaseOp::Acquire { min_term: 0 });
/// assert_eq!(write, LeaseWrite::Keep);
/// ```
pub fn lease_step(
    live: Option<(u64, &str)>,
    counter: &mut u64,
    holder: &str,
    op: LeaseOp,
) -> (LeaseWrite, LeaseState) {
    let held = |(term, current): (u64, &str)| LeaseState::Held {
        term,
        holder: current.to_owned(),
    };
    match (op, live) {
        (LeaseOp::Acquire { .. }, Some((term, current))) => {
            let write = if current == holder {
                LeaseWrite::Extend
            } else {
                LeaseWrite::Keep
            };
            (write, held((term, current)))
        }
        (LeaseOp::Acquire { min_term }, None) => {
            let floor = min_term.min(MAX_TERM - 1);
            let current = if *counter >= MAX_TERM { 0 } else { *counter };
            *counter = current.max(floor) + 1;
            (LeaseWrite::Grant(*counter), held((*counter, holder)))
        }
        (LeaseOp::Query, Some(live)) => (LeaseWrite::Keep, held(live)),
        (LeaseOp::Renew { term }, Some((live_term, current))) => {
            let write = if live_term == term && current == holder {
                LeaseWrite::Extend
            } else {
                LeaseWrite::Keep
            };
            (write, held((live_term, current)))
        }
        (LeaseOp::Release { term }, Some((live_term, current)))
            if live_term == term && current == holder =>
        {
            (LeaseWrite::Delete, LeaseState::Vacant)
        }
        _ => (LeaseWrite::Keep, LeaseState::Vacant),
    }
}

/// The key of the term counter of the lease at `key`.
pub(crate) fn term_key(key: &str) -> String {
    format!("{key}:term")
}

/// A lease's stored value.
pub(crate) fn lease_value(term: u64, holder: &str) -> String {
    format!("{term}:{holder}")
}

/// Reads a stored value back; `None` if it is not one of ours.
pub(crate) fn parse_value(value: &str) -> Option<(u64, &str)> {
    let (term, holder) = value.split_once(':')?;
    if !term.bytes().all(|b| b.is_ascii_digit()) {
        return None; // as the scripts read it: digits only, no sign
    }
    let term = term.parse().ok().filter(|t| (1..=MAX_TERM).contains(t))?;
    Some((term, holder))
}

/// Milliseconds for `PX`/`PEXPIRE`: at least 1.
#[cfg(feature = "redis")]
pub(crate) fn millis(ttl: std::time::Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Lua scripts, run with `EVAL` (sent each time: a lease operation happens
/// once per controller interval, and nothing needs re-loading after a
/// server restart). Each returns `{term, holder}`, `{0, ""}` for vacant.
#[cfg(feature = "redis")]
pub(crate) mod scripts {
    use aci_core::MAX_TERM;

    /// Reads the lease at `KEYS[1]` into `term`, `holder` (a value that is not
    /// ours, its term outside `1..=MAX_TERM` included, counts as vacant and
    /// is removed). `MAX` is set by the caller.
    const READ: &str = r#"
local current = redis.call('GET', KEYS[1])
local term, holder = nil, nil
if current then
  local sep = string.find(current, ':', 1, true)
  if sep then
    local digits = string.sub(current, 1, sep - 1)
    if string.match(digits, '^%d+$') then term = tonumber(digits) end
    holder = string.sub(current, sep + 1)
  end
  if not term or term < 1 or term > MAX then
    redis.call('DEL', KEYS[1])
    term = nil
  end
end
"#;

    /// The bound on terms, as Lua source (exact in a Lua number, a double).
    fn max() -> String {
        format!("local MAX = {MAX_TERM}\n")
    }

    /// KEYS: lease, term counter. ARGV: holder, ttl ms, min term. A counter
    /// that is not a number in `0..MAX` is repaired (the grant is then the
    /// floor + 1), so no stored value can stop every later grant.
    pub(crate) fn acquire() -> String {
        format!(
            "{}{READ}{}",
            max(),
            r#"
if term then
  if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
  return {term, holder}
end
local floor = math.min(tonumber(ARGV[3]) or 0, MAX - 1)
local stored = redis.call('GET', KEYS[2])
local counter = 0
if stored and string.match(stored, '^%d+$') then counter = tonumber(stored) end
if counter >= MAX then counter = 0 end
term = math.max(counter, floor) + 1
redis.call('SET', KEYS[2], string.format('%d', term))
redis.call('SET', KEYS[1], string.format('%d:%s', term, ARGV[1]), 'NX', 'PX', ARGV[2])
return {term, ARGV[1]}
"#
        )
    }

    /// KEYS: lease. Answers who holds it; changes nothing but removing a
    /// value that is not ours.
    pub(crate) fn query() -> String {
        format!(
            "{}{READ}{}",
            max(),
            "\nif not term then return {0, ''} end\nreturn {term, holder}\n"
        )
    }

    /// KEYS: lease. ARGV: holder, ttl ms, term.
    pub(crate) fn renew() -> String {
        format!(
            "{}{READ}{}",
            max(),
            r#"
if not term then return {0, ''} end
if holder == ARGV[1] and term == tonumber(ARGV[3]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return {term, holder}
"#
        )
    }

    /// KEYS: lease. ARGV: the value we hold (`term:holder`).
    pub(crate) const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

    /// The scripts' `{term, holder}` answer.
    pub(crate) fn state(answer: (i64, String)) -> super::LeaseState {
        match u64::try_from(answer.0) {
            Ok(term) if (1..=MAX_TERM).contains(&term) => super::LeaseState::Held {
                term,
                holder: answer.1,
            },
            _ => super::LeaseState::Vacant,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_foreign_ones_are_refused() {
        let v = lease_value(12, "node:7");
        assert_eq!(v, "12:node:7");
        assert_eq!(parse_value(&v), Some((12, "node:7")));
        assert_eq!(parse_value("0:x"), None);
        assert_eq!(parse_value("x:y"), None);
        assert_eq!(parse_value("plain"), None);
        assert_eq!(parse_value("9007199254740992:x"), None, "beyond MAX_TERM");
        assert_eq!(parse_value("+3:x"), None);
        assert_eq!(term_key("aci:lease"), "aci:lease:term");
    }
}

#[cfg(test)]
mod step_tests {
    use super::*;

    #[test]
    fn a_counter_at_or_beyond_the_bound_is_repaired_by_the_next_grant() {
        for broken in [MAX_TERM, MAX_TERM + 1, u64::MAX] {
            let mut counter = broken;
            let (write, _) = lease_step(None, &mut counter, "a", LeaseOp::Acquire { min_term: 7 });
            assert_eq!(write, LeaseWrite::Grant(8), "counter {broken}");
        }
        // A floor beyond the bound is clamped: the grant stays in range.
        let mut counter = 0;
        let (write, _) = lease_step(
            None,
            &mut counter,
            "a",
            LeaseOp::Acquire { min_term: u64::MAX },
        );
        assert_eq!(write, LeaseWrite::Grant(MAX_TERM));
    }

    #[test]
    fn a_query_changes_nothing() {
        let mut counter = 4;
        let (write, answer) = lease_step(Some((4, "b")), &mut counter, "a", LeaseOp::Query);
        assert_eq!((write, counter), (LeaseWrite::Keep, 4));
        assert_eq!(
            answer,
            LeaseState::Held {
                term: 4,
                holder: "b".into()
            }
        );
        let (write, answer) = lease_step(None, &mut counter, "a", LeaseOp::Query);
        assert_eq!((write, answer), (LeaseWrite::Keep, LeaseState::Vacant));
    }
}
