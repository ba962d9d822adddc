//! `aci watch` against a small fleet on a redis-server of its own: what it
//! prints, that Ctrl-C ends it cleanly, and that it never publishes.

use std::io::Read as _;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aci_cache::{AdaptiveCache, Strategy};

struct Server(Child, u16);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn redis_server() -> Option<Server> {
    if std::env::var("REDIS_URL").is_ok() {
        return None; // only a server of our own: the test counts its commands
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is installed (apt-get install redis-server)");
    let server = Server(child, port);
    let url = format!("redis://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if redis::Client::open(url.as_str())
            .and_then(|c| c.get_connection())
            .is_ok()
        {
            return Some(server);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("redis-server did not come up on {port}");
}

fn publishes(admin: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query(admin).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_publish:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn watch_shows_the_fleet_and_ends_on_ctrl_c() {
    let Some(server) = redis_server() else {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED watch_shows_the_fleet_and_ends_on_ctrl_c: REDIS_URL is set"
        );
        return;
    };
    let url = format!("redis://127.0.0.1:{}", server.1);
    let member = |id: &str| {
        AdaptiveCache::builder()
            .namespace("shop")
            .instance_id(id)
            .controller_interval(Duration::from_millis(200))
            .connect(&url)
            .unwrap()
    };
    let (a, b) = (member("web-a"), member("web-b"));
    let fleet = [&a, &b];
    let deadline = Instant::now() + Duration::from_secs(5);
    while fleet.iter().filter(|c| c.stats().is_controller).count() != 1 {
        assert!(Instant::now() < deadline, "no controller elected");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (boss, other) = if a.stats().is_controller {
        (&a, &b)
    } else {
        (&b, &a)
    };

    let mut watch = Command::new(env!("CARGO_BIN_EXE_aci"))
        .args([
            "watch",
            "--url",
            &url,
            "--namespace",
            "shop",
            "--every-ms",
            "300",
        ])
        .env_remove("REDIS_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500)); // subscribed by then
    let mut admin = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let published_before = publishes(&mut admin);
    boss.force_strategy(Some(Strategy::Eager)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..20 {
        other.set(&format!("item:{i}"), "x").unwrap();
    }
    let _: i64 = redis::cmd("PUBLISH")
        .arg("aci:shop:invalidation")
        .arg("not a message")
        .query(&mut admin)
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    let published = publishes(&mut admin) - published_before;

    let status = Command::new("kill")
        .args(["-INT", &watch.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = watch.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "aci watch did not end on SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    watch
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(exit.success(), "{exit:?}: {out}");

    let last = out.trim_end().rsplit("\n\n").next().unwrap();
    let term = boss.stats().term;
    assert!(
        last.contains(&format!(
            "controller {}, term {term}, strategy eager",
            boss.instance_id()
        )),
        "{last}"
    );
    assert!(
        last.contains(other.instance_id()),
        "the follower's rate report: {last}"
    );
    assert!(last.contains("rejected 1"), "{last}");
    let total: u64 = last
        .split(" in all)")
        .next()
        .and_then(|s| s.rsplit("; ").next())
        .and_then(|n| n.parse().ok())
        .expect("invalidations in all");
    assert!(total >= 20, "every eager write was heard: {last}");
    // Everything published meanwhile came from the fleet and the test.
    let fleet_sent: u64 = fleet
        .iter()
        .map(|c| c.stats().invalidations_sent + c.stats().decisions_sent)
        .sum();
    assert!(published >= 21, "{published}");
    assert!(
        published <= fleet_sent + 1 + 40,
        "{published} publishes: more than the fleet's {fleet_sent}, the test's 1 and rate reports"
    );
}
