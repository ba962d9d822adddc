//! `aci watch --url redis://… --namespace …`: the fleet of a namespace,
//! live. It subscribes to the namespace's two channels and prints what it
//! hears every `--every`; it never publishes. Ctrl-C ends it (status 0).

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aci_cache::transports::{RedisTransport, Subscription, Transport};
use aci_watch::{Channel, Fleet};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "aci", version, about = "Watch an aci-cache fleet")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show a namespace's controller, term, strategy, write rates,
    /// invalidations and rejected messages, live. Never publishes.
    Watch {
        /// The Redis the fleet uses (`redis://[user:password@]host:port`).
        #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
        url: String,
        /// The fleet's namespace (none: the original's global channels).
        #[arg(long)]
        namespace: Option<String>,
        /// The fleet's channel prefix.
        #[arg(long, default_value = "aci")]
        prefix: String,
        /// How often to print, in milliseconds.
        #[arg(long, default_value_t = 1000)]
        every_ms: u64,
        /// How long to wait for Redis, in milliseconds.
        #[arg(long, default_value_t = 1000)]
        timeout_ms: u64,
    },
}

fn main() -> ExitCode {
    let Command::Watch {
        url,
        namespace,
        prefix,
        every_ms,
        timeout_ms,
    } = Cli::parse().command;
    let mut config = aci_core::Config::builder().channel_prefix(&prefix);
    if let Some(ns) = &namespace {
        config = config.namespace(ns);
    }
    let config = match config.build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("aci: {e}");
            return ExitCode::from(2);
        }
    };
    let (invalidation, strategy) = (config.invalidation_channel(), config.strategy_channel());
    let redis = match RedisTransport::open(url.as_str()) {
        Ok(t) => t.with_timeout(Duration::from_millis(timeout_ms.max(1))),
        Err(e) => {
            eprintln!("aci: {url}: {e}");
            return ExitCode::from(2);
        }
    };
    let mut subscription = match redis.subscribe(&[invalidation, strategy]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("aci: cannot subscribe to {invalidation} and {strategy}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let on_signal = Arc::clone(&stop);
    if let Err(e) = ctrlc::set_handler(move || on_signal.store(true, Ordering::SeqCst)) {
        eprintln!("aci: cannot catch Ctrl-C: {e}");
        return ExitCode::FAILURE;
    }
    println!(
        "watching {invalidation} and {strategy} on {} (Ctrl-C ends)",
        redacted(&url)
    );
    let started = Instant::now();
    let every = Duration::from_millis(every_ms.max(10));
    let mut next_print = started + every;
    let mut fleet = Fleet::new();
    while !stop.load(Ordering::SeqCst) {
        let wait = next_print
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(100));
        match subscription.recv(wait) {
            Ok(Some(message)) => {
                let channel = if message.channel == invalidation {
                    Channel::Invalidation
                } else {
                    Channel::Strategy
                };
                fleet.heard(channel, &message.payload, started.elapsed().as_secs_f64());
            }
            Ok(None) => {}
            Err(e) => {
                eprintln!("aci: the subscription ended: {e}");
                return ExitCode::FAILURE;
            }
        }
        if Instant::now() >= next_print {
            println!("\n{}", fleet.render(started.elapsed().as_secs_f64()));
            next_print += every;
        }
    }
    println!("\n{}", fleet.render(started.elapsed().as_secs_f64()));
    ExitCode::SUCCESS
}

/// The URL without its password, for printing.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}
