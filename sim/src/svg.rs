//! The timeline drawn as SVG: write rate against the thresholds on top,
//! each instance's strategy below (a crashed instance in the "down" row).

use plotters::prelude::*;

use crate::config::SimConfig;
use crate::observe::{Observations, Sample};

/// At most this many instances are named in the legend (a fleet of hundreds
/// would bury the chart); the rest are drawn all the same.
const NAMED_INSTANCES: usize = 12;

/// The row of a strategy, or of a crashed instance.
fn row(sample: &Sample, instance: usize) -> f64 {
    match sample.strategies.get(instance).copied().flatten() {
        Some(strategy) => strategy.index() as f64,
        None => -1.0,
    }
}

/// A strategy held from one sample to the next, then changed: drawn as a
/// step (a switch is an instant, not a slope).
fn steps(points: impl Iterator<Item = (f64, f64)>) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (t, y) in points {
        if let Some(&(_, before)) = out.last() {
            if before != y {
                out.push((t, before));
            }
        }
        out.push((t, y));
    }
    out
}

/// Draws the run's timeline to `path`.
pub fn draw(
    obs: &Observations,
    config: &SimConfig,
    title: &str,
    path: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (1100, 680)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(360);
    let end = obs.samples.last().map_or(1.0, |s| s.t).max(1.0);
    let (low, high) = (config.cache.low_threshold, config.cache.high_threshold);
    let peak = obs
        .samples
        .iter()
        .map(|s| s.offered_write_rate.max(s.measured_write_rate))
        .fold(high, f64::max);

    let mut rates = ChartBuilder::on(&top)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        // Room for the last tick label of the time axis.
        .margin_right(40)
        .x_label_area_size(30)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..end, 0.0..peak * 1.1)?;
    rates
        .configure_mesh()
        .y_desc("writes/s")
        .x_desc("seconds")
        .draw()?;
    rates
        .draw_series(LineSeries::new(
            obs.samples.iter().map(|s| (s.t, s.offered_write_rate)),
            &BLUE,
        ))?
        .label("offered")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    rates
        .draw_series(LineSeries::new(
            obs.samples.iter().map(|s| (s.t, s.measured_write_rate)),
            &RED,
        ))?
        .label("measured by the controller")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    for (name, value, color) in [
        ("high_threshold: eager above", high, MAGENTA),
        ("low_threshold: ttl below", low, GREEN),
    ] {
        rates
            .draw_series(DashedLineSeries::new(
                [(0.0, value), (end, value)],
                6,
                4,
                color.stroke_width(1),
            ))?
            .label(format!("{name} ({value} w/s)"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    rates
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;

    let n = obs.samples.first().map_or(1, |s| s.strategies.len()).max(1);
    let mut strategies = ChartBuilder::on(&bottom)
        .margin(10)
        .margin_right(40)
        .x_label_area_size(30)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..end, -1.5..2.5)?;
    strategies
        .configure_mesh()
        .y_desc("strategy")
        .x_desc("seconds")
        .y_labels(4)
        .y_label_formatter(&|y: &f64| match y.round() as i64 {
            -1 => "down".into(),
            0 => "ttl".into(),
            1 => "batched".into(),
            2 => "eager".into(),
            _ => String::new(),
        })
        .draw()?;
    for i in 0..n {
        // Instances side by side within a row, so all of them show.
        let offset = (i as f64 / n as f64 - 0.5) * 0.3;
        let color = Palette99::pick(i).to_rgba();
        let line = steps(obs.samples.iter().map(|s| (s.t, row(s, i) + offset)));
        let series = strategies.draw_series(LineSeries::new(line, color))?;
        if i < NAMED_INSTANCES {
            series
                .label(format!("instance {i}"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        } else if i == NAMED_INSTANCES {
            series
                .label(format!("… {} more", n - NAMED_INSTANCES))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
    }
    strategies
        .configure_series_labels()
        .position(SeriesLabelPosition::MiddleRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_switch_is_drawn_as_a_step() {
        let line = steps([(0.0, 0.0), (1.0, 0.0), (2.0, 2.0), (3.0, -1.0)].into_iter());
        assert_eq!(
            line,
            [
                (0.0, 0.0),
                (1.0, 0.0),
                (2.0, 0.0),
                (2.0, 2.0),
                (3.0, 2.0),
                (3.0, -1.0)
            ]
        );
    }
}
