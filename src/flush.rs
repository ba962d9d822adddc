//! What a namespaced `flush` deletes: the keys under the cache's prefix,
//! except the election's lease and term counter.

use crate::error::{Error, Result};
use crate::settings::Settings;

/// The scan of one cache's keys.
pub(crate) struct Flush {
    prefix: String,
    lease: String,
    term: String,
}

impl Flush {
    /// Keys asked for per `SCAN` step (and so at most per `UNLINK`).
    pub(crate) const BATCH: usize = 500;

    /// The flush of the cache configured by `settings`; refused without a
    /// namespace (its prefix would be every key of the database).
    pub(crate) fn of(settings: &Settings) -> Result<Self> {
        let core = &settings.core;
        if core.namespace().is_none() || core.key_prefix().is_empty() {
            return Err(Error::FlushWithoutNamespace);
        }
        Ok(Flush {
            prefix: core.key_prefix().to_owned(),
            lease: core.lease_key().to_owned(),
            term: format!("{}:term", core.lease_key()),
        })
    }

    /// The stored-key prefix to scan.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The keys of a scan batch to delete: ours, the lease keys excepted.
    pub(crate) fn ours(&self, mut keys: Vec<String>) -> Vec<String> {
        keys.retain(|k| k.starts_with(&self.prefix) && *k != self.lease && *k != self.term);
        keys
    }

    /// The user keys of stored keys (all under the prefix, by `ours`).
    pub(crate) fn user_keys<'k>(&self, keys: &'k [String]) -> Vec<&'k str> {
        keys.iter()
            .map(|k| k.get(self.prefix.len()..).unwrap_or_default())
            .collect()
    }
}
