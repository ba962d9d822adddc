//! Test support: a `redis-server` of our own on a free loopback port.
//!
//! Each test binary starts one shared server on first use (`shared()`);
//! fault tests start their own (`RedisServer::start()`) so they can kill and
//! restart it. `REDIS_URL` makes the tests use that server instead (fault
//! tests then skip). A watchdog shell kills every server we start if the
//! test process dies first, so nothing is left running.
#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses a different subset"
)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A redis-server child process on 127.0.0.1.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    extra: Vec<String>,
    auth: Option<String>,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers.
    pub fn start() -> RedisServer {
        Self::start_with(&[], None)
    }

    /// Starts a server with extra configuration (`["--requirepass", "x"]`);
    /// `auth` is the `user:password@` part of the URL that gets in.
    pub fn start_with(extra: &[&str], auth: Option<&str>) -> RedisServer {
        let port = free_port();
        let mut server = RedisServer {
            port,
            child: None,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            auth: auth.map(str::to_owned),
        };
        server.restart();
        server
    }

    /// The URL to connect to.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers,
    /// as in a silent network partition.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, which: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args([which, &child.id().to_string()])
                .status();
        }
    }

    /// Starts the server again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new(redis_server_binary())
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            // A directory of this process's own: a replica of a test
            // cluster writes `dump.rdb` where it runs, and a server started
            // later in the same directory would load it.
            .args(["--dir", &private_dir().to_string_lossy()])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "redis-server must be installed (apt-get install redis-server) or REDIS_URL set",
            );
        watchdog(child.id());
        self.child = Some(child);
        let url = match &self.auth {
            Some(auth) => format!("redis://{auth}@127.0.0.1:{}", self.port),
            None => self.url(),
        };
        wait_until_up(&url);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// This process's directory for server files, created on first use.
pub fn private_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("aci-tests-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

fn redis_server_binary() -> String {
    std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned())
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

/// Picks a free loopback port (for a second listener such as `--tls-port`).
pub fn another_free_port() -> u16 {
    free_port()
}

/// Kills `pid` once this test process is gone.
fn watchdog(pid: u32) {
    let me = std::process::id();
    let script =
        format!("while kill -0 {me} 2>/dev/null; do sleep 0.5; done; kill -9 {pid} 2>/dev/null");
    let _ = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

fn wait_until_up(url: &str) {
    let client = redis::Client::open(url).expect("valid url");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(200)) {
            if redis::cmd("PING").query::<String>(&mut conn).is_ok() {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "redis-server at {url} did not come up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

enum Shared {
    Ours(RedisServer),
    External(String),
}

/// The URL of this binary's shared server (`REDIS_URL`, or one we start).
pub fn shared_url() -> String {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    match SHARED.get_or_init(|| match std::env::var("REDIS_URL") {
        Ok(url) => Shared::External(url),
        Err(_) => Shared::Ours(RedisServer::start()),
    }) {
        Shared::Ours(server) => server.url(),
        Shared::External(url) => url.clone(),
    }
}

/// Whether the tests may start and kill servers of their own.
pub fn can_kill_servers() -> bool {
    std::env::var("REDIS_URL").is_err()
}

/// True (and says so where CI reads it) when `REDIS_URL` points at a server
/// the tests must not kill, restart or reconfigure: the calling test skips.
pub fn skip_without_own_servers(test: &str) -> bool {
    if can_kill_servers() {
        return false;
    }
    skip(
        test,
        "REDIS_URL is set; this test needs a redis-server of its own",
    );
    true
}

/// Reports a skipped test on the process's stderr directly: the test
/// harness captures `println!`/`eprintln!` of passing tests, not this.
pub fn skip(test: &str, why: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// A namespace no other test uses, so tests sharing a server stay apart.
pub fn unique_namespace(name: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    format!("{name}-{}-{n}", std::process::id())
}

/// A plain connection, for checking Redis behind the caches' backs.
pub fn raw(url: &str) -> redis::Connection {
    redis::Client::open(url)
        .expect("valid url")
        .get_connection_with_timeout(Duration::from_secs(2))
        .expect("connect")
}

/// Polls `check` every millisecond until it holds or `within` passes; how long it took.
pub fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if check() {
            return Some(start.elapsed());
        }
        if start.elapsed() > within {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
pub mod cluster;
