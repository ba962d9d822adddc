//! The controller lease, as the stores keep it: one key whose value is
//! `"{term}:{holder}"` and expires unless renewed, and a term counter at the
//! same key plus `":term"` that only grows.
//!
//! The Redis transports run each operation as one Lua script (atomic on the
//! server); [`MemoryTransport`](crate::MemoryTransport) does the same under a
//! lock. The semantics are those of `aci_core::LeaseOp`.

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
