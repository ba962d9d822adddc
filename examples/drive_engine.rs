//! Drive three engines by hand through a load ramp, with no Redis: one
//! controller and two followers share an in-memory "channel", the controller's
//! writes ramp 0 -> 120 -> 0 writes/s, and every strategy switch and message
//! count is printed.
//!
//! Run with `cargo run --example drive_engine`.

use aci_cache::aci_core::{Config, Duration, Effect, Engine, Instant, Role};

/// Writes per second the controller makes at `t` seconds: up, plateau, down.
fn load(t: f64) -> f64 {
    match t {
        t if t < 30.0 => t * 4.0,
        t if t < 60.0 => 120.0,
        t if t < 90.0 => (90.0 - t) * 4.0,
        _ => 0.0,
    }
}

/// A published message waiting for delivery.
struct InFlight {
    channel: String,
    payload: Vec<u8>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut fleet: Vec<Engine> = ["controller", "follower-1", "follower-2"]
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let role = if i == 0 {
                Role::Controller
            } else {
                Role::Follower
            };
            Engine::new(Config::builder().role(role).build()?, id)
        })
        .collect::<Result<_, _>>()?;
    for engine in &mut fleet {
        engine.start(Instant::ZERO);
    }

    let step = Duration::from_millis(1);
    let end = Instant::from_secs(120);
    let mut now = Instant::ZERO;
    let mut owed = 0.0; // fractional writes carried between steps
    let mut sent = [0usize; 3];
    let mut wire: Vec<InFlight> = Vec::new();
    while now < end {
        let t = now.as_nanos() as f64 / 1e9;
        owed += load(t) * step.as_secs_f64();
        while owed >= 1.0 {
            owed -= 1.0;
            let key = format!("item:{}", (t * 1000.0) as u64 % 500);
            fleet[0].handle_write(now, &key)?;
            fleet[0].handle_write_acknowledged(now); // Redis acknowledged the SET
            collect(&mut fleet[0], 0, now, &mut wire, &mut sent);
        }
        for (i, engine) in fleet.iter_mut().enumerate() {
            if engine.poll_timeout().is_some_and(|d| d <= now) {
                engine.handle_timeout(now);
                collect(engine, i, now, &mut wire, &mut sent);
            }
        }
        // Deliver everything published this millisecond to every instance
        // (the sender ignores its own message, as Redis echoes it back).
        for message in wire.drain(..) {
            for engine in fleet.iter_mut() {
                let _ = engine.handle_message(now, &message.channel, &message.payload);
                // An effect borrows the engine: take what is needed first.
                let id = engine.instance_id().to_owned();
                while let Some(effect) = engine.poll_effect() {
                    report(&id, now, &effect);
                }
            }
        }
        now += step;
    }
    for (engine, sent) in fleet.iter().zip(sent) {
        let stats = engine.stats();
        println!(
            "{:<10} writes {:>5}  messages sent {:>5}  received {:>4}  switches {}  now {}",
            engine.instance_id(),
            stats.total_writes,
            sent,
            stats.messages_received,
            stats.total_switches,
            engine.strategy()
        );
    }
    Ok(())
}

/// Drains one engine's effects: publishes go on the wire, the rest is printed.
fn collect(
    engine: &mut Engine,
    index: usize,
    now: Instant,
    wire: &mut Vec<InFlight>,
    sent: &mut [usize; 3],
) {
    let id = engine.instance_id().to_owned();
    while let Some(effect) = engine.poll_effect() {
        if let Effect::Publish(p) = effect {
            sent[index] += 1;
            wire.push(InFlight {
                channel: p.channel.to_owned(),
                payload: p.payload.to_vec(),
            });
        } else {
            report(&id, now, &effect);
        }
    }
}

/// Prints what an instance's near cache and strategy go through.
fn report(id: &str, now: Instant, effect: &Effect<'_>) {
    match effect {
        Effect::Switched(s) => match s.write_rate {
            Some(rate) => println!(
                "{now}  {id:<10} {} -> {} ({rate:.1} writes/s)",
                s.from, s.to
            ),
            None => println!("{now}  {id:<10} {} -> {}", s.from, s.to),
        },
        Effect::InvalidateAll(why) => println!("{now}  {id:<10} drops its near cache ({why})"),
        _ => {}
    }
}
