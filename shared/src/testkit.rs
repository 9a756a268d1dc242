//! Test support: a private `redis-server` on a free loopback port.
//!
//! Every test that needs Redis gets its own server (or its own key prefix on a shared
//! one), so tests run in parallel and may kill or restart their server. The machine's
//! own Redis on 6379 is never used.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` child process, killed on drop.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// `--tls-*` arguments: then `port` is the TLS port and plain TCP is off.
    tls: Vec<String>,
}

/// A throwaway CA, a server certificate it signed (for `127.0.0.1` and `localhost`)
/// and a client certificate it signed, made with the `openssl` CLI in a temp dir
/// (removed on drop).
pub struct TlsFiles {
    dir: PathBuf,
}

impl TlsFiles {
    pub fn generate() -> Self {
        let dir = std::env::temp_dir().join(format!("chat-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir for TLS files");
        let files = Self { dir };
        let key = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        files.openssl(
            &[
                &["req", "-x509"],
                &key[..],
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.crt",
                    "-days",
                    "2",
                    "-subj",
                    &format!("/CN=chat test CA {}", uuid::Uuid::new_v4()),
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
            ]
            .concat(),
        );
        files.sign(
            "server",
            &[
                "subjectAltName=IP:127.0.0.1,DNS:localhost",
                "extendedKeyUsage=serverAuth",
            ],
        );
        files.sign("client", &["extendedKeyUsage=clientAuth"]);
        files
    }

    /// `<name>.key` and `<name>.crt` signed by the CA with the given v3 extensions.
    fn sign(&self, name: &str, extensions: &[&str]) {
        let key = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let (key_file, csr, crt, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        std::fs::write(self.dir.join(&ext), extensions.join("\n")).expect("extensions file");
        self.openssl(
            &[
                &["req"],
                &key[..],
                &[
                    "-keyout",
                    &key_file,
                    "-out",
                    &csr,
                    "-subj",
                    &format!("/CN={name}"),
                ],
            ]
            .concat(),
        );
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &crt,
        ]);
    }

    fn openssl(&self, args: &[&str]) {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .expect("openssl on PATH (apt-get install openssl)");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    pub fn ca(&self) -> PathBuf {
        self.path("ca.crt")
    }

    pub fn client_cert(&self) -> PathBuf {
        self.path("client.crt")
    }

    pub fn client_key(&self) -> PathBuf {
        self.path("client.key")
    }

    /// `redis-server` arguments serving TLS with the server certificate; with
    /// `auth_clients` a client must present a certificate the CA signed.
    fn server_args(&self, auth_clients: bool) -> Vec<String> {
        let path = |f: &str| self.path(f).display().to_string();
        vec![
            "--tls-cert-file".into(),
            path("server.crt"),
            "--tls-key-file".into(),
            path("server.key"),
            "--tls-ca-cert-file".into(),
            path("ca.crt"),
            // Cluster nodes connect to each other with this one.
            "--tls-client-cert-file".into(),
            path("client.crt"),
            "--tls-client-key-file".into(),
            path("client.key"),
            "--tls-auth-clients".into(),
            if auth_clients { "yes" } else { "no" }.into(),
        ]
    }

    /// `redis-cli` arguments connecting with TLS (and the client certificate).
    fn cli_args(&self) -> Vec<String> {
        let path = |f: &str| self.path(f).display().to_string();
        vec![
            "--tls".into(),
            "--cacert".into(),
            path("ca.crt"),
            "--cert".into(),
            path("client.crt"),
            "--key".into(),
            path("client.key"),
        ]
    }
}

impl Drop for TlsFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A free loopback port (bound then released; collisions are retried by callers).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl RedisServer {
    /// Starts a server with no persistence.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server with extra `redis-server` arguments (e.g. `["--appendonly", "yes"]`).
    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_inner(Vec::new(), extra)
    }

    /// Starts a server that speaks only TLS (`--port 0 --tls-port P`) with `tls`'s
    /// server certificate; with `auth_clients` it requires a client certificate.
    pub fn start_tls(tls: &TlsFiles, auth_clients: bool) -> Self {
        Self::start_inner(tls.server_args(auth_clients), &[])
    }

    fn start_inner(tls: Vec<String>, extra: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("chat-redis-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir for redis");
        let mut server = Self {
            port: free_port(),
            dir,
            child: None,
            tls,
        };
        // A port picked free can be taken before redis-server binds it (another test's
        // server, an outgoing connection): then the server exits and another port is tried.
        for _ in 0..5 {
            if server.spawn(extra) {
                return server;
            }
            server.port = free_port();
        }
        panic!("redis-server did not start on any of 5 ports");
    }

    /// Spawns the server on `self.port`; false when it exited without listening.
    fn spawn(&mut self, extra: &[&str]) -> bool {
        let port = self.port.to_string();
        let mut args: Vec<&str> = if self.tls.is_empty() {
            vec!["--port", &port]
        } else {
            vec!["--port", "0", "--tls-port", &port]
        };
        args.extend(self.tls.iter().map(String::as_str));
        args.extend(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        args.extend_from_slice(extra);
        let mut child = Command::new("redis-server")
            .args(&args)
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH (apt-get install redis-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                // Something listens; make sure it is ours and not a server that got there first.
                std::thread::sleep(Duration::from_millis(20));
                if let Ok(Some(_)) = child.try_wait() {
                    return false;
                }
                self.child = Some(child);
                return true;
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:P`, `rediss://` when it speaks TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_empty() {
            "redis"
        } else {
            "rediss"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and directory.
    pub fn restart(&mut self, extra: &[&str]) {
        self.kill();
        assert!(
            self.spawn(extra),
            "redis-server did not restart on port {}",
            self.port
        );
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A unique key prefix for one test.
pub fn unique_prefix(name: &str) -> String {
    format!(
        "t-{name}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// A Redis Cluster of private `redis-server`s on loopback (`--cluster-enabled yes`,
/// joined with `redis-cli --cluster create`): `masters` masters owning equal slot
/// ranges, each with `replicas` replicas. Killed on drop.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    /// `redis-cli` arguments for TLS nodes (empty for plain TCP).
    cli_tls: Vec<String>,
    /// Kills the nodes of the process-wide cluster when the test process is gone.
    watchdog: Option<Child>,
}

/// Cluster settings for fast failover in tests: a master unreachable for a second is
/// replaced by its replica.
const CLUSTER_ARGS: [&str; 6] = [
    "--cluster-enabled",
    "yes",
    "--cluster-config-file",
    "nodes.conf",
    "--cluster-node-timeout",
    "1000",
];

impl RedisCluster {
    pub fn start(masters: usize, replicas: usize) -> Self {
        Self::start_inner(masters, replicas, None)
    }

    /// A cluster whose nodes speak only TLS, to clients and to each other
    /// (`--tls-cluster yes --tls-replication yes`), with `tls`'s server certificate.
    pub fn start_tls(masters: usize, replicas: usize, tls: &TlsFiles) -> Self {
        Self::start_inner(masters, replicas, Some(tls))
    }

    fn start_inner(masters: usize, replicas: usize, tls: Option<&TlsFiles>) -> Self {
        let server_tls: Vec<String> = tls
            .map(|t| t.server_args(false))
            .into_iter()
            .flatten()
            .chain(
                ["--tls-cluster", "yes", "--tls-replication", "yes"]
                    .into_iter()
                    .filter(|_| tls.is_some())
                    .map(str::to_owned),
            )
            .collect();
        let cli_tls = tls.map(TlsFiles::cli_args).unwrap_or_default();
        let nodes: Vec<RedisServer> = (0..masters * (1 + replicas))
            .map(|_| RedisServer::start_inner(server_tls.clone(), &CLUSTER_ARGS))
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let output = Command::new("redis-cli")
            .args(&cli_tls)
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli on PATH (apt-get install redis-tools)");
        assert!(
            output.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        let cluster = Self {
            nodes,
            cli_tls,
            watchdog: None,
        };
        for node in &cluster.nodes {
            cluster.wait_until(Duration::from_secs(20), || {
                cli(&cluster.cli_tls, node.port(), &["CLUSTER", "INFO"])
                    .contains("cluster_state:ok")
            });
        }
        // Replicas must have synced, or a failover test could promote an empty one.
        for node in &cluster.nodes {
            cluster.wait_until(Duration::from_secs(20), || {
                let info = cli(&cluster.cli_tls, node.port(), &["INFO", "replication"]);
                !info.contains("role:slave") || info.contains("master_link_status:up")
            });
        }
        cluster
    }

    /// A process-wide 3-master cluster for suites that share one (each test under its
    /// own key prefix). Its servers outlive the test that started it and are killed by
    /// a watchdog when the test process exits (statics are never dropped).
    pub fn shared() -> &'static RedisCluster {
        static SHARED: std::sync::OnceLock<RedisCluster> = std::sync::OnceLock::new();
        SHARED.get_or_init(|| {
            let mut cluster = RedisCluster::start(3, 0);
            let pids: Vec<String> = cluster
                .nodes
                .iter()
                .filter_map(|n| n.child.as_ref().map(|c| c.id().to_string()))
                .collect();
            let watchdog = format!(
                "while kill -0 {} 2>/dev/null; do sleep 1; done; kill -9 {}",
                std::process::id(),
                pids.join(" ")
            );
            let watchdog = Command::new("sh")
                .args(["-c", &watchdog])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("sh for the cluster's watchdog");
            cluster.watchdog = Some(watchdog);
            cluster
        })
    }

    /// `redis-cluster://` (`rediss-cluster://` for TLS) with every node.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let scheme = if self.cli_tls.is_empty() {
            "redis-cluster"
        } else {
            "rediss-cluster"
        };
        format!("{scheme}://{}", nodes.join(","))
    }

    /// The ports of the nodes still running.
    pub fn live_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(RedisServer::port)
            .collect()
    }

    /// The port of the live master serving `key`'s slot.
    pub fn master_of(&self, key: &str) -> u16 {
        let slot = crate::keys::key_slot(key);
        let live = self
            .nodes
            .iter()
            .find(|n| n.child.is_some())
            .expect("a live node");
        // CLUSTER SHARDS would be simpler; CLUSTER SLOTS is in every 7.x.
        let out = cli(&self.cli_tls, live.port(), &["CLUSTER", "SLOTS"]);
        let lines: Vec<&str> = out.lines().collect();
        // redis-cli prints each range as: start, end, then host, port, id per node
        // (the master first), with blank-free plain lines.
        let mut i = 0;
        while i + 4 < lines.len() {
            let (start, end) = (lines[i].parse::<u16>(), lines[i + 1].parse::<u16>());
            if let (Ok(start), Ok(end)) = (start, end)
                && (start..=end).contains(&slot)
                && let Ok(port) = lines[i + 3].parse::<u16>()
            {
                return port;
            }
            i += 1;
        }
        panic!("no master for slot {slot} in {out}");
    }

    /// Kills the node on `port` at once (SIGKILL).
    pub fn kill(&mut self, port: u16) {
        if let Some(node) = self.nodes.iter_mut().find(|n| n.port() == port) {
            node.kill();
        }
    }

    /// Waits until every live node reports the cluster ok with `key`'s slot served
    /// by a live master (after a failover).
    pub fn wait_for_failover(&self, key: &str) {
        self.wait_until(Duration::from_secs(30), || {
            let master = self.master_of(key);
            self.nodes
                .iter()
                .any(|n| n.port() == master && n.child.is_some())
                && self.nodes.iter().filter(|n| n.child.is_some()).all(|n| {
                    cli(&self.cli_tls, n.port(), &["CLUSTER", "INFO"]).contains("cluster_state:ok")
                })
        });
    }

    fn wait_until(&self, limit: Duration, mut ok: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while !ok() {
            assert!(Instant::now() < deadline, "the cluster did not settle");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Runs `redis-cli [tls...] -p port args...` and returns its output.
fn cli(tls: &[String], port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(tls)
        .args(["-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli on PATH");
    String::from_utf8_lossy(&output.stdout).into_owned()
}
