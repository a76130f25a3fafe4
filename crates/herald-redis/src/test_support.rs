//! Real Redis topologies on free loopback ports for tests, every process stopped by pid on
//! drop: `RedisServer` (plain, or TLS-only with a password), `TestCa` (a CA and the
//! certificates it signs, made with rcgen) and `SentinelSet` (a master, a replica and three
//! sentinels).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A free port for a Redis Cluster node: at most 55535, with its cluster bus port (+10000)
/// free too (redis-server refuses a higher port).
fn cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port <= 55535 && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
    }
}

fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "herald-{what}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spawn(program: &str, args: &[String]) -> Child {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {program} ({e}); install it: sudo apt-get install -y redis-server")
        })
}

/// A test certificate authority, its PEM at `ca`, and the certificates it signed.
pub struct TestCa {
    pub dir: PathBuf,
    /// The CA certificate (PEM).
    pub ca: PathBuf,
    /// A server certificate for 127.0.0.1 and localhost, and its key.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// A client certificate (for mutual TLS), and its key.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl TestCa {
    pub fn new() -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let dir = temp_dir("ca");
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "herald test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("the CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("a certificate file");
            path
        };
        let ca = write("ca.pem", &ca_cert.pem());
        let signed = |names: Vec<String>| {
            let key = KeyPair::generate().expect("a key");
            let params = CertificateParams::new(names).expect("params");
            let cert = params
                .signed_by(&key, &issuer)
                .expect("a signed certificate");
            (cert.pem(), key.serialize_pem())
        };
        let (cert, key) = signed(vec!["127.0.0.1".into(), "localhost".into()]);
        let (server_cert, server_key) = (write("server.pem", &cert), write("server-key.pem", &key));
        let (cert, key) = signed(vec!["herald-node".into()]);
        let (client_cert, client_key) = (write("client.pem", &cert), write("client-key.pem", &key));
        TestCa {
            dir,
            ca,
            server_cert,
            server_key,
            client_cert,
            client_key,
        }
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How a `RedisServer` is set up beyond a port.
#[derive(Clone, Default)]
pub struct RedisOptions {
    /// `requirepass` (and `masterauth`, for a replica).
    pub password: Option<String>,
    /// TLS only (`--port 0 --tls-port …`), with these certificates; clients need no certificate
    /// unless `client_certs`.
    pub tls: Option<TlsFiles>,
    pub client_certs: bool,
    /// `--replicaof 127.0.0.1 PORT`.
    pub replica_of: Option<u16>,
    /// More arguments for `redis-server`.
    pub extra: Vec<String>,
}

/// The CA and server certificate a TLS `RedisServer` uses.
#[derive(Clone)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    pub fn of(ca: &TestCa) -> TlsFiles {
        TlsFiles {
            ca: ca.ca.clone(),
            cert: ca.server_cert.clone(),
            key: ca.server_key.clone(),
        }
    }
}

pub struct RedisServer {
    pub port: u16,
    pub options: RedisOptions,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a fresh, empty, non-persistent server. Panics with the install command when
    /// `redis-server` is missing.
    pub fn start() -> RedisServer {
        RedisServer::start_with(RedisOptions::default())
    }

    pub fn start_with(options: RedisOptions) -> RedisServer {
        let cluster = options.extra.iter().any(|a| a == "--cluster-enabled");
        let mut server = RedisServer {
            port: if cluster { cluster_port() } else { free_port() },
            options,
            child: None,
        };
        server.restart();
        server
    }

    /// `redis://` or `rediss://`, with the password.
    pub fn url(&self) -> String {
        let scheme = if self.options.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        match &self.options.password {
            Some(pw) => format!("{scheme}://:{pw}@127.0.0.1:{}/", self.port),
            None => format!("{scheme}://127.0.0.1:{}/", self.port),
        }
    }

    /// Starts (again) on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        let port = self.port.to_string();
        let mut args: Vec<String> = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            .map(String::from)
            .to_vec();
        match &self.options.tls {
            None => args.extend(["--port".into(), port]),
            Some(t) => {
                let auth = if self.options.client_certs {
                    "yes"
                } else {
                    "no"
                };
                args.extend(["--port".into(), "0".into(), "--tls-port".into(), port]);
                for (flag, path) in [
                    ("--tls-ca-cert-file", &t.ca),
                    ("--tls-cert-file", &t.cert),
                    ("--tls-key-file", &t.key),
                ] {
                    args.extend([flag.into(), path.display().to_string()]);
                }
                args.extend(["--tls-auth-clients".into(), auth.into()]);
                // Replication between TLS servers is TLS too.
                args.extend(["--tls-replication".into(), "yes".into()]);
            }
        }
        if let Some(pw) = &self.options.password {
            args.extend(["--requirepass".into(), pw.clone()]);
            args.extend(["--masterauth".into(), pw.clone()]);
        }
        if let Some(master) = self.options.replica_of {
            args.extend(["--replicaof".into(), "127.0.0.1".into(), master.to_string()]);
        }
        args.extend(self.options.extra.iter().cloned());
        self.child = Some(spawn("redis-server", &args));
        wait_for_port(self.port, "redis-server");
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs `redis-cli` against this server and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(t) = &self.options.tls {
            cmd.arg("--tls").arg("--cacert").arg(&t.ca);
        }
        if let Some(pw) = &self.options.password {
            cmd.args(["--no-auth-warning", "-a", pw]);
        }
        let out = cmd.args(args).output().expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One `redis-server --sentinel`, its config file in its own directory (sentinels rewrite it).
pub struct Sentinel {
    pub port: u16,
    /// `requirepass` of the sentinel itself.
    password: Option<String>,
    tls: Option<TlsFiles>,
    dir: PathBuf,
    child: Option<Child>,
}

impl Sentinel {
    fn start(
        master_name: &str,
        master_port: u16,
        password: Option<&str>,
        options: &SentinelOptions,
    ) -> Sentinel {
        let own_password = options.sentinel_password.as_deref();
        let port = free_port();
        let dir = temp_dir("sentinel");
        let listen = match &options.tls {
            None => format!("port {port}\n"),
            // TLS only, to clients, other sentinels and the data nodes.
            Some(t) => format!(
                "port 0\ntls-port {port}\ntls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\ntls-auth-clients no\ntls-replication yes\n",
                t.cert.display(),
                t.key.display(),
                t.ca.display()
            ),
        };
        let mut conf = format!(
            "{listen}bind 127.0.0.1\ndir {}\n\
             sentinel monitor {master_name} 127.0.0.1 {master_port} 2\n\
             sentinel down-after-milliseconds {master_name} 1000\n\
             sentinel failover-timeout {master_name} 4000\n\
             sentinel parallel-syncs {master_name} 1\n",
            dir.display()
        );
        if let Some(pw) = password {
            conf.push_str(&format!("sentinel auth-pass {master_name} {pw}\n"));
        }
        if let Some(pw) = own_password {
            // Clients and the other sentinels need it.
            conf.push_str(&format!("requirepass {pw}\nsentinel sentinel-pass {pw}\n"));
        }
        let path = dir.join("sentinel.conf");
        std::fs::write(&path, conf).expect("sentinel.conf");
        let child = spawn(
            "redis-server",
            &[path.display().to_string(), "--sentinel".into()],
        );
        wait_for_port(port, "redis-server --sentinel");
        Sentinel {
            port,
            password: own_password.map(str::to_owned),
            tls: options.tls.clone(),
            dir,
            child: Some(child),
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(t) = &self.tls {
            cmd.arg("--tls").arg("--cacert").arg(&t.ca);
        }
        if let Some(pw) = &self.password {
            cmd.args(["--no-auth-warning", "-a", pw]);
        }
        let out = cmd.args(args).output().expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How a `SentinelSet` is set up.
#[derive(Clone, Default)]
pub struct SentinelOptions {
    /// The sentinels require this password (`requirepass`) too.
    pub sentinel_password: Option<String>,
    /// TLS only, everywhere: clients, replication, sentinels.
    pub tls: Option<TlsFiles>,
}

/// A master and a replica (with a password) watched by three sentinels (quorum 2, a master
/// silent for one second is down). Starts only once the replica is in sync and every
/// sentinel knows the replica and the other sentinels, so a failover can happen.
pub struct SentinelSet {
    pub name: String,
    pub password: String,
    pub options: SentinelOptions,
    pub master: RedisServer,
    pub replica: RedisServer,
    pub sentinels: Vec<Sentinel>,
}

impl SentinelSet {
    pub fn start() -> SentinelSet {
        SentinelSet::start_with(SentinelOptions::default())
    }

    pub fn start_with(options: SentinelOptions) -> SentinelSet {
        let name = "herald-test".to_owned();
        let password = format!("pw{:08x}", rand::random::<u32>());
        let data = RedisOptions {
            password: Some(password.clone()),
            tls: options.tls.clone(),
            ..RedisOptions::default()
        };
        let master = RedisServer::start_with(data.clone());
        let replica = RedisServer::start_with(RedisOptions {
            replica_of: Some(master.port),
            ..data
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        while !replica
            .cli(&["INFO", "replication"])
            .contains("master_link_status:up")
        {
            assert!(Instant::now() < deadline, "the replica never synced");
            std::thread::sleep(Duration::from_millis(50));
        }
        let sentinels: Vec<Sentinel> = (0..3)
            .map(|_| Sentinel::start(&name, master.port, Some(&password), &options))
            .collect();
        let set = SentinelSet {
            name,
            password,
            options,
            master,
            replica,
            sentinels,
        };
        set.wait_until_watched();
        set
    }

    /// Until every live sentinel sees a replica and two other sentinels.
    pub fn wait_until_watched(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for s in self.sentinels.iter().filter(|s| s.child.is_some()) {
            loop {
                let replicas = s.cli(&["SENTINEL", "REPLICAS", &self.name]);
                let peers = s.cli(&["SENTINEL", "SENTINELS", &self.name]);
                let known = replicas.contains("ip") && peers.matches("runid").count() >= 2;
                if known {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "sentinel {} never saw the replica and its peers",
                    s.port
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// `redis+sentinel://:PASSWORD@127.0.0.1:S1,…/herald-test` (`rediss+sentinel` with TLS).
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        let query = self
            .options
            .sentinel_password
            .as_ref()
            .map(|pw| format!("?sentinel_password={pw}"))
            .unwrap_or_default();
        let scheme = if self.options.tls.is_some() {
            "rediss+sentinel"
        } else {
            "redis+sentinel"
        };
        format!(
            "{scheme}://:{}@{}/{}{query}",
            self.password,
            hosts.join(","),
            self.name
        )
    }

    /// `SENTINEL FAILOVER`: the sentinels promote the replica although the master is fine
    /// (the old master stays up and becomes a replica).
    pub fn failover(&self) {
        let s = self
            .sentinels
            .iter()
            .find(|s| s.child.is_some())
            .expect("a live sentinel");
        let out = s.cli(&["SENTINEL", "FAILOVER", &self.name]);
        assert!(out.contains("OK"), "SENTINEL FAILOVER: {out}");
    }

    /// The port the live sentinels name as master now.
    pub fn master_port(&self) -> Option<u16> {
        let s = self.sentinels.iter().find(|s| s.child.is_some())?;
        let out = s.cli(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", &self.name]);
        out.lines().nth(1)?.trim().parse().ok()
    }
}

/// Where a path is, for a TOML string.
pub fn toml_path(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

/// A Redis Cluster of three masters and three replicas (`--cluster-enabled yes` ×6, then
/// `redis-cli --cluster create … --cluster-replicas 1`), ready once every node reports the
/// cluster ok and every replica is in sync. A node silent for 2 s is failed over.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    /// TLS only (clients, the cluster bus, replication), with these certificates.
    pub tls: Option<TlsFiles>,
    dir: PathBuf,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        RedisCluster::start_with(None)
    }

    pub fn start_with(tls: Option<TlsFiles>) -> RedisCluster {
        let dir = temp_dir("cluster");
        let mut nodes = Vec::new();
        for i in 0..6 {
            let node_dir = dir.join(format!("n{i}"));
            std::fs::create_dir_all(&node_dir).expect("a node directory");
            let conf = node_dir.join("nodes.conf");
            let mut extra: Vec<String> = Vec::new();
            if tls.is_some() {
                extra.extend(["--tls-cluster".into(), "yes".into()]);
            }
            nodes.push(RedisServer::start_with(RedisOptions {
                tls: tls.clone(),
                extra: [
                    "--cluster-enabled".into(),
                    "yes".into(),
                    "--cluster-config-file".into(),
                    conf.display().to_string(),
                    "--cluster-node-timeout".into(),
                    "2000".into(),
                    "--dir".into(),
                    node_dir.display().to_string(),
                ]
                .into_iter()
                .chain(extra)
                .collect(),
                ..RedisOptions::default()
            }));
        }
        let mut create = Command::new("redis-cli");
        if let Some(t) = &tls {
            create.arg("--tls").arg("--cacert").arg(&t.ca);
        }
        create.arg("--cluster").arg("create");
        for n in &nodes {
            create.arg(format!("127.0.0.1:{}", n.port));
        }
        let out = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = RedisCluster { nodes, tls, dir };
        cluster.wait_until_healthy();
        cluster
    }

    /// Until every live node says `cluster_state:ok` and every live replica is in sync.
    pub fn wait_until_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        for n in self.nodes.iter().filter(|n| n.child.is_some()) {
            loop {
                let info = n.cli(&["CLUSTER", "INFO"]);
                let repl = n.cli(&["INFO", "replication"]);
                let synced = repl.contains("role:master") || repl.contains("master_link_status:up");
                if info.contains("cluster_state:ok") && synced {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "cluster node {} never became healthy:\n{info}\n{repl}",
                    n.port
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// `redis+cluster://127.0.0.1:P1,…` naming every node as a seed.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let scheme = if self.tls.is_some() {
            "rediss+cluster"
        } else {
            "redis+cluster"
        };
        format!("{scheme}://{}", hosts.join(","))
    }

    /// The node that is master of `slot` now.
    pub fn master_of(&self, slot: u16) -> Option<&RedisServer> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .find(|n| n.cli(&["INFO", "replication"]).contains("role:master") && owns(n, slot))
    }

    /// The slot a key or channel hashes to.
    pub fn slot(&self, key: &str) -> u16 {
        let n = self
            .nodes
            .iter()
            .find(|n| n.child.is_some())
            .expect("a live node");
        n.cli(&["CLUSTER", "KEYSLOT", key])
            .trim()
            .parse()
            .expect("a slot number")
    }
}

impl RedisCluster {
    /// The node's cluster id.
    pub fn id_of(&self, n: &RedisServer) -> String {
        n.cli(&["CLUSTER", "MYID"]).trim().to_owned()
    }

    /// How many slots `n` serves as master.
    pub fn slot_count(&self, n: &RedisServer) -> usize {
        let nodes = n.cli(&["CLUSTER", "NODES"]);
        let Some(me) = nodes.lines().find(|l| l.contains("myself")) else {
            return 0;
        };
        me.split_whitespace()
            .skip(8)
            .filter_map(|r| {
                let (a, b) = r.split_once('-').unwrap_or((r, r));
                Some(b.parse::<usize>().ok()? - a.parse::<usize>().ok()? + 1)
            })
            .sum()
    }

    pub fn node(&self, port: u16) -> &RedisServer {
        self.nodes
            .iter()
            .find(|n| n.port == port)
            .expect("a node on that port")
    }

    pub fn is_master(&self, n: &RedisServer) -> bool {
        n.child.is_some() && n.cli(&["INFO", "replication"]).contains("role:master")
    }

    pub fn node_mut(&mut self, port: u16) -> &mut RedisServer {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a node on that port")
    }
}

/// `redis-cli --cluster reshard`: moves `slots` slots (keys included) from the node whose id is
/// `from_id` to the node on `to_port`. A free function, so a test can run it on a blocking
/// thread while it publishes.
pub fn reshard(to_port: u16, from_id: &str, slots: usize) {
    let to_id = Command::new("redis-cli")
        .args(["-p", &to_port.to_string(), "CLUSTER", "MYID"])
        .output()
        .expect("redis-cli runs");
    let to_id = String::from_utf8_lossy(&to_id.stdout).trim().to_owned();
    let out = Command::new("redis-cli")
        .args(["--cluster", "reshard", &format!("127.0.0.1:{to_port}")])
        .args(["--cluster-from", from_id, "--cluster-to", &to_id])
        .args(["--cluster-slots", &slots.to_string(), "--cluster-yes"])
        .output()
        .expect("redis-cli runs");
    assert!(
        out.status.success(),
        "redis-cli --cluster reshard failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether `n` serves `slot` as master (its own line of CLUSTER NODES lists the range).
fn owns(n: &RedisServer, slot: u16) -> bool {
    let nodes = n.cli(&["CLUSTER", "NODES"]);
    let Some(me) = nodes.lines().find(|l| l.contains("myself")) else {
        return false;
    };
    me.split_whitespace().skip(8).any(|range| {
        let (a, b) = range.split_once('-').unwrap_or((range, range));
        match (a.parse::<u16>(), b.parse::<u16>()) {
            (Ok(a), Ok(b)) => (a..=b).contains(&slot),
            _ => false,
        }
    })
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
