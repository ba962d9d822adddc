//! What the fleet does: write and read rates over time, and which keys.

use crate::rng::SimRng;

/// A rate (operations per second, fleet-wide) as a function of time.
#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    /// The same rate throughout.
    Constant(f64),
    /// `before` until `at` seconds, `after` from then on.
    Step {
        /// Rate before the step.
        before: f64,
        /// Rate after the step.
        after: f64,
        /// When the step happens (seconds).
        at: f64,
    },
    /// 0 → `peak` over `up` seconds, `peak` for `hold`, back to 0 over `down`.
    Ramp {
        /// The top rate.
        peak: f64,
        /// Seconds rising.
        up: f64,
        /// Seconds at the top.
        hold: f64,
        /// Seconds falling.
        down: f64,
    },
    /// `mean + amplitude · sin(2πt / period)`.
    Sine {
        /// The mean rate.
        mean: f64,
        /// The swing either side of the mean.
        amplitude: f64,
        /// Seconds per cycle.
        period: f64,
    },
    /// `base`, with `burst` for `length` seconds every `every` seconds.
    Bursts {
        /// The rate between bursts.
        base: f64,
        /// The rate during a burst.
        burst: f64,
        /// Seconds from one burst's start to the next.
        every: f64,
        /// Seconds a burst lasts.
        length: f64,
    },
}

impl Shape {
    /// Operations expected over the first `duration` seconds (the rate
    /// integrated, sampled a thousand times: an estimate).
    pub fn expected(&self, duration: f64) -> f64 {
        const SAMPLES: u32 = 1000;
        let step = duration / f64::from(SAMPLES);
        (0..SAMPLES)
            .map(|i| self.rate((f64::from(i) + 0.5) * step) * step)
            .sum()
    }

    /// The rate at `t` seconds (never negative).
    pub fn rate(&self, t: f64) -> f64 {
        let r = match *self {
            Shape::Constant(r) => r,
            Shape::Step { before, after, at } => {
                if t < at {
                    before
                } else {
                    after
                }
            }
            Shape::Ramp {
                peak,
                up,
                hold,
                down,
            } => {
                if t < up {
                    peak * t / up
                } else if t < up + hold {
                    peak
                } else if t < up + hold + down {
                    peak * (1.0 - (t - up - hold) / down)
                } else {
                    0.0
                }
            }
            Shape::Sine {
                mean,
                amplitude,
                period,
            } => mean + amplitude * (t * std::f64::consts::TAU / period).sin(),
            Shape::Bursts {
                base,
                burst,
                every,
                length,
            } => {
                if t % every < length {
                    burst
                } else {
                    base
                }
            }
        };
        r.max(0.0)
    }

    /// The highest rate the shape reaches.
    pub fn peak(&self) -> f64 {
        match *self {
            Shape::Constant(r) => r,
            Shape::Step { before, after, .. } => before.max(after),
            Shape::Ramp { peak, .. } => peak,
            Shape::Sine {
                mean, amplitude, ..
            } => mean + amplitude.abs(),
            Shape::Bursts { base, burst, .. } => base.max(burst),
        }
        .max(0.0)
    }

    /// Where the offered rate crosses into another row of the original's
    /// table (`> high` eager, `< low` ttl, else batched), sampled every
    /// 100 ms over `duration` seconds.
    pub fn crossings(&self, low: f64, high: f64, duration: f64) -> Vec<Crossing> {
        let table = |r: f64| {
            if r > high {
                aci_core::Strategy::Eager
            } else if r < low {
                aci_core::Strategy::Ttl
            } else {
                aci_core::Strategy::Batched
            }
        };
        let steps = (duration * 10.0) as u64;
        let mut current = table(self.rate(0.0));
        let mut out = Vec::new();
        for i in 1..=steps {
            let t = i as f64 / 10.0;
            let wanted = table(self.rate(t));
            if wanted != current {
                out.push(Crossing {
                    at: t,
                    from: current,
                    to: wanted,
                });
                current = wanted;
            }
        }
        out
    }
}

/// The offered write rate moving into another row of the strategy table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Crossing {
    /// Seconds since the start.
    pub at: f64,
    /// The strategy the rate called for before.
    pub from: aci_core::Strategy,
    /// The strategy it calls for now.
    pub to: aci_core::Strategy,
}

impl Crossing {
    /// Whether the rate rose (towards eager).
    pub fn rose(&self) -> bool {
        self.to.index() > self.from.index()
    }

    /// The thresholds crossed, by configuration name: a rate entering or
    /// leaving eager crosses `high_threshold`, one entering or leaving ttl
    /// `low_threshold` (a jump between the two crosses both).
    pub fn thresholds(&self) -> Vec<&'static str> {
        use aci_core::Strategy::{Eager, Ttl};
        let touches = |s| self.from == s || self.to == s;
        let mut crossed = Vec::new();
        if touches(Eager) {
            crossed.push("high_threshold");
        }
        if touches(Ttl) {
            crossed.push("low_threshold");
        }
        crossed
    }
}

/// Which instances do the writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writers {
    /// Every instance, evenly.
    All,
    /// Only instance 0 (the controller).
    Controller,
    /// Every instance but the controller.
    Followers,
}

/// Key popularity: Walker's alias table, so a draw is O(1) whatever the count.
#[derive(Clone, Debug)]
pub struct Keys {
    /// Probability of keeping column `i` rather than taking its alias.
    keep: Vec<f64>,
    alias: Vec<u32>,
}

impl Keys {
    /// `count` keys, equally popular.
    pub fn uniform(count: usize) -> Self {
        Self::zipf(count, 0.0)
    }

    /// `count` keys, the `i`-th with weight `1 / (i+1)^s`.
    pub fn zipf(count: usize, s: f64) -> Self {
        let n = count.max(1);
        let weights: Vec<f64> = (0..n).map(|i| 1.0 / ((i + 1) as f64).powf(s)).collect();
        let total: f64 = weights.iter().sum();
        let mut scaled: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
        let mut alias = vec![0u32; n];
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|&i| scaled[i] < 1.0);
        while let (Some(&l), Some(&g)) = (small.last(), large.last()) {
            small.pop();
            alias[l] = g as u32;
            scaled[g] -= 1.0 - scaled[l];
            if scaled[g] < 1.0 {
                large.pop();
                small.push(g);
            }
        }
        // What is left is 1 up to rounding.
        for i in small.into_iter().chain(large) {
            scaled[i] = 1.0;
        }
        Keys {
            keep: scaled,
            alias,
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keep.len()
    }

    /// Whether there are no keys (never: at least one is made).
    pub fn is_empty(&self) -> bool {
        self.keep.is_empty()
    }

    /// A key index drawn by popularity.
    pub fn pick(&self, rng: &mut SimRng) -> usize {
        let column = rng.below(self.keep.len() as u64) as usize;
        if rng.unit() < self.keep[column] {
            column
        } else {
            self.alias[column] as usize
        }
    }
}

/// The fleet's traffic.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Writes per second, fleet-wide.
    pub writes: Shape,
    /// Reads per second, fleet-wide.
    pub reads: Shape,
    /// Which instances write.
    pub writers: Writers,
    /// Which keys.
    pub keys: Keys,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let ramp = Shape::Ramp {
            peak: 200.0,
            up: 10.0,
            hold: 10.0,
            down: 10.0,
        };
        assert_eq!(ramp.rate(5.0), 100.0);
        assert_eq!(ramp.rate(15.0), 200.0);
        assert_eq!(ramp.rate(25.0), 100.0);
        assert_eq!(ramp.rate(40.0), 0.0);
        let bursts = Shape::Bursts {
            base: 1.0,
            burst: 100.0,
            every: 10.0,
            length: 2.0,
        };
        assert_eq!(bursts.rate(11.0), 100.0);
        assert_eq!(bursts.rate(13.0), 1.0);
    }

    #[test]
    fn zipf_prefers_low_indices() {
        let keys = Keys::zipf(1000, 1.1);
        let mut rng = SimRng::new(3);
        let low = (0..10_000).filter(|_| keys.pick(&mut rng) < 10).count();
        assert!(low > 3_000, "{low}");
        let uniform = Keys::uniform(1000);
        let low = (0..10_000).filter(|_| uniform.pick(&mut rng) < 10).count();
        assert!(low < 300, "{low}");
    }
}
