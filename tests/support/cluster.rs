//! A Redis Cluster of our own: three masters and three replicas, each a
//! `redis-server --cluster-enabled yes` on a free loopback port, joined with
//! `redis-cli --cluster create`. Every node is a [`RedisServer`], so the
//! watchdog and `kill` / `pause` / `restart` work on nodes as on a server.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::RedisServer;

/// How long a node may be silent before the cluster fails it over: short,
/// so a failover test takes seconds.
pub const NODE_TIMEOUT_MS: u64 = 1_000;

/// Six nodes joined into one cluster, 3 masters with a replica each.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    /// The password every node requires (`requirepass`), if any.
    password: Option<String>,
}

impl RedisCluster {
    /// Starts six nodes, creates the cluster and waits until every node
    /// reports `cluster_state:ok` and knows every slot.
    pub fn start() -> RedisCluster {
        Self::start_with_password(None)
    }

    /// [`RedisCluster::start`] with every node requiring `password`
    /// (`requirepass`, and `masterauth` for the replicas).
    pub fn start_with_password(password: Option<&str>) -> RedisCluster {
        // Clusters of parallel tests start one at a time, and a failed
        // `--cluster create` (a port taken between our pick and the
        // server's bind) starts over on new ports.
        static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = STARTING.lock().unwrap_or_else(|e| e.into_inner());
        let mut last_error = String::new();
        for _ in 0..3 {
            match Self::try_start(password) {
                Ok(cluster) => return cluster,
                Err(e) => last_error = e,
            }
        }
        panic!("{last_error}")
    }

    fn try_start(password: Option<&str>) -> Result<RedisCluster, String> {
        let secured: Vec<&str> = match password {
            Some(pw) => vec!["--requirepass", pw, "--masterauth", pw],
            None => Vec::new(),
        };
        let auth = password.map(|pw| format!(":{pw}"));
        let cluster = unique();
        let nodes: Vec<RedisServer> = (0..6)
            .map(|i| {
                // Each node in a directory of its own: a replica writes the
                // master's snapshot there as `dump.rdb`, which any node
                // started later in the same place would load.
                let dir = super::private_dir().join(format!("cluster-{cluster}-node-{i}"));
                let _ = std::fs::create_dir_all(&dir);
                let conf = dir.join("nodes.conf");
                // The bus port named, not port + 10000: that may be taken,
                // or beyond 65535.
                let bus = super::another_free_port().to_string();
                let (conf, dir) = (conf.to_string_lossy(), dir.to_string_lossy());
                let timeout = NODE_TIMEOUT_MS.to_string();
                let mut args = vec![
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus,
                    "--cluster-config-file",
                    &conf,
                    "--dir",
                    &dir,
                    "--cluster-node-timeout",
                    &timeout,
                    // A replica promoted by a test answers at once.
                    "--cluster-replica-validity-factor",
                    "0",
                    "--cluster-require-full-coverage",
                    "no",
                    // Replicas sync at once rather than after the 5 s a
                    // diskless sync waits by default for company.
                    "--repl-diskless-sync-delay",
                    "0",
                ];
                args.extend(&secured);
                RedisServer::start_with(&args, auth.as_deref())
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .args(
                password
                    .map(|pw| ["-a", pw, "--no-auth-warning"])
                    .into_iter()
                    .flatten(),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("redis-cli must be installed beside redis-server");
        if !created.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed: {}{}",
                String::from_utf8_lossy(&created.stdout),
                String::from_utf8_lossy(&created.stderr)
            ));
        }
        let cluster = RedisCluster {
            nodes,
            password: password.map(str::to_owned),
        };
        cluster.wait_until_ok(Duration::from_secs(20));
        cluster.wait_until_replicas_synced(Duration::from_secs(20));
        Ok(cluster)
    }

    /// The seed URLs of every node, with the password when there is one.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| self.url_of(n.port)).collect()
    }

    /// The URL of the node on `port`, with the password when there is one.
    pub fn url_of(&self, port: u16) -> String {
        match &self.password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{port}"),
            None => format!("redis://127.0.0.1:{port}"),
        }
    }

    fn node_conn(&self, port: u16) -> redis::Connection {
        redis::Client::open(self.url_of(port))
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
            .expect("connect to a cluster node")
    }

    /// Waits until every live node says the cluster is ok and agrees on
    /// who owns every slot.
    pub fn wait_until_ok(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if self.all_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "the cluster did not become ok");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every replica's link to its master is up: before that a
    /// failover promotes a replica without the data.
    pub fn wait_until_replicas_synced(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let synced = self.nodes.iter().all(|node| {
                let Ok(mut conn) = redis::Client::open(self.url_of(node.port))
                    .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
                else {
                    return true; // a killed node
                };
                let info: String = redis::cmd("INFO")
                    .arg("replication")
                    .query(&mut conn)
                    .unwrap_or_default();
                !info.contains("role:slave") || info.contains("master_link_status:up")
            });
            if synced {
                return;
            }
            assert!(Instant::now() < deadline, "the replicas did not sync");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn all_ok(&self) -> bool {
        let mut views = Vec::new();
        for node in &self.nodes {
            let Ok(client) = redis::Client::open(self.url_of(node.port)) else {
                return false;
            };
            let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(200))
            else {
                continue; // a killed node
            };
            let info: String = match redis::cmd("CLUSTER").arg("INFO").query(&mut conn) {
                Ok(info) => info,
                Err(_) => return false,
            };
            if !info.contains("cluster_state:ok") {
                return false;
            }
            match masters_of(&mut conn) {
                Some(view) => views.push(view),
                None => return false,
            }
        }
        views.windows(2).all(|w| w[0] == w[1])
    }

    /// The port of the master that owns `slot`, as node 0 (or the first
    /// live node) sees it.
    pub fn master_of_slot(&self, slot: u16) -> u16 {
        for node in &self.nodes {
            let Ok(mut conn) = redis::Client::open(self.url_of(node.port))
                .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
            else {
                continue;
            };
            if let Some(view) = masters_of(&mut conn) {
                if let Some((_, _, port)) = view
                    .iter()
                    .find(|(start, end, _)| (*start..=*end).contains(&slot))
                {
                    return *port;
                }
            }
        }
        panic!("no live node knows who owns slot {slot}")
    }

    /// The `CLIENT LIST` lines of the node on `port` whose client is
    /// called `name`.
    pub fn clients_named(&self, port: u16, name: &str) -> Vec<String> {
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query(&mut self.node_conn(port))
            .expect("CLIENT LIST");
        let field = format!(" name={name} ");
        list.lines()
            .filter(|line| line.contains(&field))
            .map(str::to_owned)
            .collect()
    }

    /// The node listening on `port`.
    pub fn node(&mut self, port: u16) -> &mut RedisServer {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a node of this cluster")
    }
}

impl RedisCluster {
    /// Moves `slot` from its master to the master on port `to`, keys and
    /// all, as `redis-cli --cluster reshard` does: `SETSLOT IMPORTING` /
    /// `MIGRATING`, `MIGRATE` in batches, then `SETSLOT NODE` on every
    /// master. Clients see `ASK` during the move and `MOVED` after it.
    pub fn migrate_slot(&self, slot: u16, to: u16) {
        let from = self.master_of_slot(slot);
        assert_ne!(from, to, "slot {slot} is already on {to}");
        let conn = |port: u16| self.node_conn(port);
        let id = |port: u16| -> String {
            redis::cmd("CLUSTER")
                .arg("MYID")
                .query(&mut conn(port))
                .expect("CLUSTER MYID")
        };
        let (from_id, to_id) = (id(from), id(to));
        let (mut source, mut target) = (conn(from), conn(to));
        let setslot = |c: &mut redis::Connection, how: &str, node: &str| {
            redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg(how)
                .arg(node)
                .query::<()>(c)
                .expect("CLUSTER SETSLOT");
        };
        setslot(&mut target, "IMPORTING", &from_id);
        setslot(&mut source, "MIGRATING", &to_id);
        loop {
            let keys: Vec<String> = redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(100)
                .query(&mut source)
                .expect("CLUSTER GETKEYSINSLOT");
            if keys.is_empty() {
                break;
            }
            redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(to)
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(&keys)
                .query::<()>(&mut source)
                .expect("MIGRATE");
        }
        setslot(&mut target, "NODE", &to_id);
        setslot(&mut source, "NODE", &to_id);
        for node in &self.nodes {
            if let Ok(mut c) = redis::Client::open(self.url_of(node.port))
                .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(500)))
            {
                let _ = redis::cmd("CLUSTER")
                    .arg("SETSLOT")
                    .arg(slot)
                    .arg("NODE")
                    .arg(&to_id)
                    .query::<()>(&mut c);
            }
        }
    }

    /// The port of a replica of the master on `master`.
    pub fn replica_of(&self, master: u16) -> u16 {
        let id: String = redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut self.node_conn(master))
            .expect("CLUSTER MYID");
        for node in &self.nodes {
            let Ok(mut conn) = redis::Client::open(self.url_of(node.port))
                .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
            else {
                continue;
            };
            let replication: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut conn)
                .unwrap_or_default();
            let myself: String = redis::cmd("CLUSTER")
                .arg("NODES")
                .query(&mut conn)
                .unwrap_or_default();
            let is_replica_of_master = myself
                .lines()
                .any(|l| l.contains("myself") && l.contains("slave") && l.contains(&id));
            if replication.contains("role:slave") && is_replica_of_master {
                return node.port;
            }
        }
        panic!("no replica of {master}")
    }

    /// `CLUSTER FAILOVER` on the replica at `replica`, then waits until it
    /// is master and the cluster agrees.
    pub fn failover_to(&self, replica: u16) {
        // A manual failover that does not complete within Redis's own
        // 5 s (a loaded machine) is abandoned by Redis: ask again.
        let deadline = Instant::now() + Duration::from_secs(40);
        let mut asked: Option<Instant> = None;
        loop {
            if asked.is_none_or(|at| at.elapsed() > Duration::from_secs(6)) {
                let _ = redis::cmd("CLUSTER")
                    .arg("FAILOVER")
                    .query::<()>(&mut self.node_conn(replica));
                asked = Some(Instant::now());
            }
            let role: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut self.node_conn(replica))
                .unwrap_or_default();
            if role.contains("role:master") && self.all_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "the failover did not finish");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The ports of the masters, sorted.
    pub fn masters(&self) -> Vec<u16> {
        for node in &self.nodes {
            let Ok(mut conn) = redis::Client::open(self.url_of(node.port))
                .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
            else {
                continue;
            };
            if let Some(view) = masters_of(&mut conn) {
                let mut ports: Vec<u16> = view.into_iter().map(|(_, _, port)| port).collect();
                ports.sort_unstable();
                ports.dedup();
                return ports;
            }
        }
        panic!("no live node knows the masters")
    }
}

/// `(first slot, last slot, master port)` for every slot range, sorted.
fn masters_of(conn: &mut redis::Connection) -> Option<Vec<(u16, u16, u16)>> {
    let slots: Vec<redis::Value> = redis::cmd("CLUSTER").arg("SLOTS").query(conn).ok()?;
    let mut view = Vec::new();
    for range in slots {
        let redis::Value::Array(parts) = range else {
            return None;
        };
        let start: u16 = redis::from_redis_value(parts.first()?.clone()).ok()?;
        let end: u16 = redis::from_redis_value(parts.get(1)?.clone()).ok()?;
        let redis::Value::Array(master) = parts.get(2)?.clone() else {
            return None;
        };
        let port: u16 = redis::from_redis_value(master.get(1)?.clone()).ok()?;
        view.push((start, end, port));
    }
    view.sort_unstable();
    let covered: u32 = view.iter().map(|(s, e, _)| u32::from(e - s) + 1).sum();
    (covered == 16_384).then_some(view)
}

/// A number no other cluster of this process used.
fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::SeqCst)
}

/// The cluster slot of a key or channel.
#[allow(unused_imports)] // Not every test binary that includes the harness looks slots up.
pub use aci_cache::aci_core::naming::slot_of;
