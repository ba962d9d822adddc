//! The controller's table of the write rates other instances report, so it
//! decides on the fleet's rate rather than its own.
//!
//! Each follower reports its own windowed rate once per `controller_interval`
//! (so reports cost one message per instance per interval, whatever the
//! write rate). The controller keeps the latest report per sender in a fixed
//! table and sums those younger than two and a half intervals (one lost
//! report is tolerated whatever its phase): an instance that stops
//! reporting (crashed, partitioned, stopped) ages out of the sum.

use crate::engine::INSTANCE_ID_MAX_BYTES;
use crate::time::{Duration, Instant};
use crate::wire::JsonStr;

/// Most reporting instances the controller tracks; reports from further
/// senders are ignored and counted.
pub const MAX_PEERS: usize = 64;

#[derive(Clone, Debug)]
struct Peer {
    id: heapless::String<INSTANCE_ID_MAX_BYTES>,
    rate: f64,
    at: Instant,
}

/// Why a report was not recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NotRecorded {
    /// The table is full of live senders.
    TableFull,
    /// The sender's id is longer than any instance id may be.
    IdTooLong,
}

/// Latest report per sender, in fixed memory.
#[derive(Clone, Debug, Default)]
pub(crate) struct Peers {
    table: heapless::Vec<Peer, MAX_PEERS>,
}

impl Peers {
    /// Records `rate` from `source` at `now`, replacing its previous report.
    pub(crate) fn record(
        &mut self,
        source: JsonStr<'_>,
        rate: f64,
        now: Instant,
        max_age: Duration,
    ) -> Result<(), NotRecorded> {
        if let Some(peer) = self.table.iter_mut().find(|p| source.eq_str(&p.id)) {
            peer.rate = rate;
            peer.at = now;
            return Ok(());
        }
        let mut id = heapless::String::new();
        for c in source.chars() {
            id.push(c).map_err(|_| NotRecorded::IdTooLong)?;
        }
        if self.table.is_full() {
            self.prune(now, max_age);
        }
        self.table
            .push(Peer { id, rate, at: now })
            .map_err(|_| NotRecorded::TableFull)
    }

    /// The sum of the live reports at `now`, how many there are, and how
    /// many of them report writes. Reports older than `max_age` are dropped.
    pub(crate) fn sum(&mut self, now: Instant, max_age: Duration) -> (f64, usize, usize) {
        self.prune(now, max_age);
        let writing = self.table.iter().filter(|p| p.rate > 0.0).count();
        (
            self.table.iter().map(|p| p.rate).sum(),
            self.table.len(),
            writing,
        )
    }

    fn prune(&mut self, now: Instant, max_age: Duration) {
        self.table.retain(|p| now - p.at <= max_age);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> JsonStr<'_> {
        JsonStr::new(s, false)
    }

    const AGE: Duration = Duration::from_secs(6);

    #[test]
    fn sums_latest_report_per_sender_and_ages_out() {
        let mut p = Peers::default();
        p.record(id("a"), 10.0, Instant::from_secs(1), AGE).unwrap();
        p.record(id("b"), 5.0, Instant::from_secs(2), AGE).unwrap();
        p.record(id("a"), 20.0, Instant::from_secs(4), AGE).unwrap();
        assert_eq!(p.sum(Instant::from_secs(5), AGE), (25.0, 2, 2));
        // b's last report is 6 s old at t=8: still counted; at t=9 it is gone.
        assert_eq!(p.sum(Instant::from_secs(8), AGE), (25.0, 2, 2));
        assert_eq!(p.sum(Instant::from_secs(9), AGE), (20.0, 1, 1));
        assert_eq!(p.sum(Instant::from_secs(20), AGE), (0.0, 0, 0));
    }

    #[test]
    fn the_table_is_bounded() {
        let mut p = Peers::default();
        let names: [heapless::String<8>; MAX_PEERS + 1] = core::array::from_fn(|i| {
            let mut s = heapless::String::new();
            let _ = core::fmt::write(&mut s, format_args!("p{i}"));
            s
        });
        for (i, name) in names.iter().enumerate() {
            let result = p.record(id(name), 1.0, Instant::from_secs(1), AGE);
            assert_eq!(result.is_ok(), i < MAX_PEERS, "{name}");
        }
        // Once the old ones age out, a new sender fits.
        assert!(p
            .record(id("late"), 1.0, Instant::from_secs(60), AGE)
            .is_ok());
    }
}
