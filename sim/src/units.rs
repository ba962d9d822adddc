//! The command line's units: durations, latencies, budgets.

use aci_core::Duration;

/// A latency: like a duration, but also in µs, and zero is allowed.
pub fn parse_latency(text: &str) -> Result<Duration, String> {
    if let Some(micros) = text.strip_suffix("us").or_else(|| text.strip_suffix("µs")) {
        let value: f64 = micros
            .parse()
            .map_err(|_| format!("not a latency: {text:?} (try 200us, 1ms)"))?;
        if !(value >= 0.0 && value.is_finite()) {
            return Err("a latency cannot be negative".into());
        }
        return Ok(Duration::from_nanos((value * 1e3) as u64));
    }
    if text
        .trim_end_matches(|c: char| c.is_ascii_alphabetic())
        .parse()
        == Ok(0.0)
    {
        return Ok(Duration::ZERO);
    }
    parse_duration(text)
}

/// A message budget: messages per second, above zero.
pub fn parse_budget(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(b) if b.is_finite() && b > 0.0 => Ok(b),
        _ => Err(format!(
            "not a budget: {text:?} (messages per second, above zero)"
        )),
    }
}

/// A duration: `600s`, `250ms`, `10m`, `1h` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(text.len()),
    );
    let value: f64 = number
        .parse()
        .map_err(|_| format!("not a duration: {text:?} (try 600s, 10m, 1h)"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1e3,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("unknown unit {unit:?} (s, ms, m, h)")),
    };
    if !(seconds > 0.0 && seconds.is_finite()) {
        return Err("the duration must be positive".into());
    }
    // To the nanosecond: "0.3s" is 300 ms, not a hair under.
    Ok(Duration::from_nanos((seconds * 1e9).round() as u64))
}
