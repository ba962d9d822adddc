//! The timeline drawn as SVG: write rate on top, each instance's strategy below.

use plotters::prelude::*;

use crate::observe::Observations;

/// Draws the run's timeline to `path`.
pub fn draw(
    obs: &Observations,
    title: &str,
    path: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (1000, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(360);
    let end = obs.samples.last().map_or(1.0, |s| s.t).max(1.0);
    let peak = obs
        .samples
        .iter()
        .map(|s| s.offered_write_rate.max(s.measured_write_rate))
        .fold(1.0, f64::max);

    let mut rates = ChartBuilder::on(&top)
        .caption(title, ("sans-serif", 20))
        .margin(10)
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
    rates
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;

    let n = obs.samples.first().map_or(1, |s| s.strategies.len()).max(1);
    let mut strategies = ChartBuilder::on(&bottom)
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..end, -0.5..2.5)?;
    strategies
        .configure_mesh()
        .y_desc("strategy")
        .y_labels(3)
        .y_label_formatter(&|y: &f64| match y.round() as i64 {
            0 => "ttl".into(),
            1 => "batched".into(),
            2 => "eager".into(),
            _ => String::new(),
        })
        .draw()?;
    for i in 0..n {
        let offset = (i as f64 / n as f64 - 0.5) * 0.3;
        let color = Palette99::pick(i).to_rgba();
        strategies.draw_series(LineSeries::new(
            obs.samples.iter().filter_map(|s| {
                s.strategies
                    .get(i)
                    .copied()
                    .flatten()
                    .map(|st| (s.t, st.index() as f64 + offset))
            }),
            color,
        ))?;
    }
    root.present()?;
    Ok(())
}
