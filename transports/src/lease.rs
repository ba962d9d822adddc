//! The controller lease, as the stores keep it: one key whose value is
//! `"{term}:{holder}"` and expires unless renewed, and a term counter at the
//! same key plus `":term"` that only grows.
//!
//! The Redis transports run each operation as one Lua script (atomic on the
//! server); in-process stores ([`MemoryTransport`](crate::MemoryTransport),
//! the simulator's Redis) run [`lease_step`] under their lock. The semantics
//! are those of `aci_core::LeaseOp`.

use aci_core::LeaseOp;

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
/// ```
/// use aci_core::LeaseOp;
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
            *counter = counter.saturating_add(1).max(min_term.saturating_add(1));
            (LeaseWrite::Grant(*counter), held((*counter, holder)))
        }
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
    Some((term.parse().ok().filter(|t| *t > 0)?, holder))
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
    /// Reads the lease at `KEYS[1]` into `term`, `holder` (a value that is not
    /// ours counts as vacant and is removed).
    const READ: &str = r#"
local current = redis.call('GET', KEYS[1])
local term, holder = nil, nil
if current then
  local sep = string.find(current, ':', 1, true)
  if sep then
    term = tonumber(string.sub(current, 1, sep - 1))
    holder = string.sub(current, sep + 1)
  end
  if not term or term < 1 then
    redis.call('DEL', KEYS[1])
    term = nil
  end
end
"#;

    /// KEYS: lease, term counter. ARGV: holder, ttl ms, min term.
    pub(crate) fn acquire() -> String {
        format!(
            "{READ}{}",
            r#"
if term then
  if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
  return {term, holder}
end
term = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[3])
if term <= floor then
  term = floor + 1
  redis.call('SET', KEYS[2], string.format('%d', term))
end
redis.call('SET', KEYS[1], string.format('%d:%s', term, ARGV[1]), 'NX', 'PX', ARGV[2])
return {term, ARGV[1]}
"#
        )
    }

    /// KEYS: lease. ARGV: holder, ttl ms, term.
    pub(crate) fn renew() -> String {
        format!(
            "{READ}{}",
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
            Ok(term) if term > 0 => super::LeaseState::Held {
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
        assert_eq!(term_key("aci:lease"), "aci:lease:term");
    }
}
