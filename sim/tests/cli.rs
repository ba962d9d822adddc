//! The `aci-sim` command as a user runs it: no Redis, a report, an exit status.

use aci_sim::scenario::Scenario;
use std::process::Command;

fn aci_sim(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_aci-sim"))
        .args(args)
        .env_remove("SIM_SEED")
        .output()
        .expect("run aci-sim");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn run_prints_a_report_and_writes_csv_and_svg() {
    let dir = std::env::temp_dir().join(format!("aci-sim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (csv, svg) = (dir.join("t.csv"), dir.join("t.svg"));
    let (code, stdout, stderr) = aci_sim(&[
        "run",
        "--scenario",
        "burst",
        "--duration",
        "90s",
        "--instances",
        "3",
        "--seed",
        "4",
        "--csv",
        csv.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("scenario burst  seed 4  instances 3"),
        "{stdout}"
    );
    assert!(stdout.contains("invariant violations: 0"), "{stdout}");
    let csv = std::fs::read_to_string(csv).unwrap();
    assert!(csv
        .starts_with("t,offered_write_rate,measured_write_rate,strategy_0,strategy_1,strategy_2"));
    assert!(csv.lines().count() > 80);
    assert!(std::fs::read_to_string(svg).unwrap().starts_with("<svg"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_long_run_says_how_far_it_is_even_without_a_terminal() {
    // A 1.5 h simulated run was 25 s of silence in a log: the bar draws
    // only on a terminal. Here stderr is a pipe.
    let (code, stdout, stderr) = aci_sim(&["run", "--scenario", "ramp", "--duration", "1h"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let wall: f64 = stdout
        .split("wall ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|w| w.parse().ok())
        .expect("the report gives the wall time");
    // Progress is promised for runs over a second; a machine fast enough to
    // finish sooner has nothing to show.
    if wall > 1.5 {
        assert!(
            stderr.contains("aci-sim: ramp") && stderr.contains("% simulated after"),
            "{wall} s of silence: {stderr:?}"
        );
    }
}

#[test]
fn list_says_what_each_scenario_does() {
    let (code, stdout, _) = aci_sim(&["list"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("ramp               0 → 200 writes/s → 0 in three equal phases"),
        "{stdout}"
    );
    assert!(stdout.contains("cluster "), "{stdout}");
    assert_eq!(stdout.lines().count(), Scenario::ALL.len(), "{stdout}");
}

#[test]
fn the_chart_has_thresholds_a_legend_and_a_down_row() {
    let dir = std::env::temp_dir().join(format!("aci-sim-chart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (csv, svg) = (dir.join("c.csv"), dir.join("c.svg"));
    let (code, stdout, stderr) = aci_sim(&[
        "run",
        "--scenario",
        "controller-crash",
        "--duration",
        "120s",
        "--instances",
        "3",
        "--csv",
        csv.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(std::fs::read_to_string(csv).unwrap().contains(",down"));
    let svg = std::fs::read_to_string(svg).unwrap();
    // Each text of the chart is a line of its own.
    let texts: Vec<&str> = svg.lines().map(str::trim).collect();
    for label in [
        "high_threshold: eager above (50 w/s)",
        "low_threshold: ttl below (10 w/s)",
        "instance 0",
        "instance 2",
        "down",
        "120.0",
    ] {
        assert!(texts.contains(&label), "no {label:?} in the chart");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn compare_prints_the_side_by_side_table() {
    let (code, stdout, _) = aci_sim(&[
        "compare",
        "--scenario",
        "steady-low",
        "--duration",
        "60s",
        "--writes",
        "30",
    ]);
    assert_eq!(code, 0);
    for policy in [
        "always-ttl",
        "always-batched",
        "always-eager",
        "adaptive (table)",
        "bounded 1s",
        "bounded 500ms",
        "budget 25 msg/s",
        "budget 100 msg/s",
    ] {
        assert!(stdout.contains(&format!("| {policy} |")), "{stdout}");
    }
    assert!(stdout.contains("dominated by"), "{stdout}");
    // A setting of one's own joins the table.
    let (code, stdout, _) = aci_sim(&[
        "compare",
        "--scenario",
        "steady-low",
        "--duration",
        "30s",
        "--max-staleness",
        "300ms",
    ]);
    assert_eq!(code, 0);
    assert!(stdout.contains("| bounded 300ms |"), "{stdout}");
}

#[test]
fn tune_recommends_a_configuration_with_its_figures() {
    let (code, stdout, stderr) = aci_sim(&[
        "tune",
        "--writes",
        "200",
        "--reads",
        "2000",
        "--instances",
        "5",
        "--duration",
        "60s",
        "--max-staleness",
        "1s",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(".max_staleness(Duration::from_millis(1000))"),
        "{stdout}"
    );
    assert!(
        stdout.contains("settles on batched, each instance flushing every 900ms"),
        "{stdout}"
    );
    assert!(stdout.contains("the bound held"), "{stdout}");
    assert!(stdout.contains("| bounded 1s (recommended) |"), "{stdout}");
    assert!(stdout.contains("| adaptive (table) |"), "{stdout}");

    let (code, stdout, _) = aci_sim(&[
        "tune",
        "--writes",
        "5",
        "--reads",
        "100",
        "--duration",
        "30s",
        "--budget",
        "20",
    ]);
    assert_eq!(code, 0);
    assert!(stdout.contains(".message_budget(20.0)"), "{stdout}");
    assert!(stdout.contains("settles on eager"), "{stdout}");
    assert!(stdout.contains("within the budget"), "{stdout}");

    // An objective is required, one only, and it must be possible.
    let (code, _, stderr) = aci_sim(&["tune", "--writes", "5", "--reads", "100"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--max-staleness"), "{stderr}");
    let (code, _, stderr) = aci_sim(&[
        "tune",
        "--writes",
        "5",
        "--reads",
        "1",
        "--budget",
        "5",
        "--max-staleness",
        "1s",
    ]);
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = aci_sim(&[
        "tune",
        "--writes",
        "5",
        "--reads",
        "1",
        "--max-staleness",
        "50ms",
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("max_staleness"), "{stderr}");
    let (code, _, stderr) = aci_sim(&["tune", "--writes", "5", "--reads", "1", "--budget", "0"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("not a budget"), "{stderr}");
}

#[test]
fn bad_arguments_are_refused_with_a_clear_message() {
    let (code, _, stderr) = aci_sim(&["run", "--scenario", "nope"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown scenario"), "{stderr}");
    let (code, _, stderr) = aci_sim(&["run", "--scenario", "ramp", "--writes=-5"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("--writes must be a non-negative"),
        "{stderr}"
    );
    let (code, _, stderr) = aci_sim(&["run", "--scenario", "ramp", "--duration", "10x"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown unit"), "{stderr}");
}

#[test]
fn link_faults_come_from_the_command_line() {
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "--scenario",
            "steady-low",
            "--writes",
            "100",
            "--duration",
            "60s",
            "--instances",
            "3",
        ];
        args.extend_from_slice(extra);
        aci_sim(&args)
    };
    let (code, clean, _) = run(&[]);
    assert_eq!(code, 0, "{clean}");
    assert!(clean.contains("(lost 0)"), "{clean}");
    let (code, lossy, stderr) = run(&[
        "--loss",
        "0.1",
        "--duplication",
        "0.05",
        "--latency-min",
        "500us",
        "--latency-mean-extra",
        "2ms",
        "--latency-max",
        "30ms",
    ]);
    assert_eq!(code, 0, "{lossy}{stderr}");
    assert!(!lossy.contains("(lost 0)"), "messages were lost: {lossy}");
    assert!(lossy.contains("invariant violations: 0"), "{lossy}");

    for (bad, says) in [
        (&["--loss", "1.5"][..], "--loss must be a probability"),
        (
            &["--duplication=-0.1"][..],
            "--duplication must be a probability",
        ),
        (
            &["--latency-min", "40ms", "--latency-max", "5ms"][..],
            "is above --latency-max",
        ),
        (&["--latency-max", "fast"][..], "not a duration"),
    ] {
        let (code, _, stderr) = run(bad);
        assert_eq!(code, 2, "{bad:?}");
        assert!(stderr.contains(says), "{bad:?}: {stderr}");
    }
}

#[test]
fn an_output_path_in_a_missing_directory_is_refused_before_the_run() {
    // Issue 12, finding 9: it failed only after the whole run.
    let missing =
        std::env::temp_dir().join(format!("aci-sim-missing-{}/x/t.svg", std::process::id()));
    let started = std::time::Instant::now();
    let (code, stdout, stderr) = aci_sim(&[
        "run",
        "--scenario",
        "ramp",
        "--duration",
        "1h",
        "--svg",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(stdout.is_empty(), "it ran: {stdout}");
    println!("refused after {:?}", started.elapsed());
}

#[test]
fn a_huge_fleet_is_refused_at_once() {
    // Issue 12, finding 9: accepted, then 8+ minutes of silence and 4.8 GB.
    let started = std::time::Instant::now();
    let (code, _, stderr) = aci_sim(&[
        "run",
        "--scenario",
        "ramp",
        "--instances",
        "10000",
        "--duration",
        "10s",
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("square of the fleet"), "{stderr}");
    println!("refused after {:?}", started.elapsed());
}

#[test]
fn the_square_of_the_fleet_counts_in_the_cost_of_a_run() {
    // Every instance's report reaches every instance each interval: a large
    // fleet costs that many events even with no workload to speak of.
    let (code, _, stderr) = aci_sim(&[
        "run",
        "--scenario",
        "steady-low",
        "--instances",
        "10000",
        "--duration",
        "2h",
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("events"), "{stderr}");
}
