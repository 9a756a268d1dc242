//! Real processes for the fault suite: `redis-server`, `mock-llm`, `gateway` and
//! `worker` binaries on loopback, each killed when its handle drops.

use shared::testkit::{RedisCluster, RedisServer, TlsFiles, free_port};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A binary of this workspace (built on demand when `cargo test` did not build it).
pub fn binary(name: &str, package: &str) -> PathBuf {
    let gateway = PathBuf::from(env!("CARGO_BIN_EXE_gateway"));
    if name == "gateway" {
        return gateway;
    }
    let path = gateway.with_file_name(name);
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", package, "--bin", name])
            .status()
            .expect("cargo build runs");
        assert!(status.success(), "building {name}");
    }
    path
}

/// A child process, SIGKILLed on drop.
pub struct Proc {
    child: Option<Child>,
    /// A worker's consumer name in the `workers` group.
    pub worker_id: Option<String>,
    /// Where its output (its log) goes.
    log: PathBuf,
}

/// Numbers log files apart: the suite's tests run at once in one process.
static SPAWNED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Proc {
    fn spawn(name: &str, mut command: Command) -> Self {
        let n = SPAWNED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log =
            std::env::temp_dir().join(format!("faults-{}-{n}-{name}.log", std::process::id()));
        let file = std::fs::File::create(&log).expect("log file");
        let child = command
            .stdin(Stdio::null())
            // Logs go to stdout, panics to stderr: both are the log.
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Self {
            child: Some(child),
            worker_id: None,
            log,
        }
    }

    /// What the process has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, at once.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for the exit (up to `within`).
    pub fn terminate(&mut self, within: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        // Kept when a test fails, to read what the process said.
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// The HTTP status of a GET, or `None` when nothing answers.
pub fn http_status(url: &str) -> Option<u16> {
    reqwest::status(url)
}

pub fn wait_http(url: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let ok = reqwest::blocking_get_ok(url);
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "{url} did not come up");
        std::thread::sleep(Duration::from_millis(25));
    }
}

mod reqwest {
    /// A tiny blocking GET over std, enough for readiness probes.
    pub fn blocking_get_ok(url: &str) -> bool {
        status(url) == Some(200)
    }

    pub fn status(url: &str) -> Option<u16> {
        use std::io::{Read, Write};
        let rest = url.trim_start_matches("http://");
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let mut stream = std::net::TcpStream::connect(host).ok()?;
        let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
        let request = format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).ok()?;
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response.get(9..12)?.parse().ok()
    }
}

/// Where the processes keep their state.
pub enum Store {
    Single(RedisServer),
    /// A Redis Cluster (`REDIS_URL=redis-cluster://...`).
    Cluster(RedisCluster),
}

/// The whole system as processes.
pub struct Cluster {
    pub store: Store,
    /// Held so the mock lives as long as the cluster.
    _mock: Proc,
    pub mock_url: String,
    pub prefix: String,
    pub gateways: Vec<(Proc, u16)>,
    pub workers: Vec<Proc>,
    worker_env: Vec<(String, String)>,
    /// Set for every process started from now on (after the defaults).
    env: Vec<(String, String)>,
    /// The CA and certificates of a TLS store, kept while the processes read them.
    _tls: Option<TlsFiles>,
}

/// Answer length and speed of the mock LLM in the fault suite.
pub const TOKENS: usize = 40;
pub const TOKEN_DELAY_MS: u64 = 15;

impl Cluster {
    pub fn start(gateways: usize, workers: usize, redis_args: &[&str]) -> Self {
        Self::start_on(
            Store::Single(RedisServer::start_with(redis_args)),
            gateways,
            workers,
        )
    }

    /// The same processes on a Redis Cluster of `masters` masters with `replicas`
    /// replicas each.
    #[allow(dead_code)]
    pub fn start_on_redis_cluster(
        gateways: usize,
        workers: usize,
        masters: usize,
        replicas: usize,
    ) -> Self {
        let store = Store::Cluster(RedisCluster::start(masters, replicas));
        Self::start_on(store, gateways, workers)
    }

    /// The same processes on a TLS Redis Cluster (`rediss-cluster://`, nodes talking
    /// TLS to each other too) of `masters` masters, trusted through `REDIS_TLS_CA_FILE`.
    #[allow(dead_code)]
    pub fn start_on_tls_redis_cluster(gateways: usize, workers: usize, masters: usize) -> Self {
        let tls = TlsFiles::generate();
        let store = Store::Cluster(RedisCluster::start_tls(masters, 0, &tls));
        let env = vec![(
            "REDIS_TLS_CA_FILE".to_owned(),
            tls.ca().display().to_string(),
        )];
        Self::start_with(store, gateways, workers, env, Some(tls))
    }

    fn start_on(store: Store, gateways: usize, workers: usize) -> Self {
        Self::start_with(store, gateways, workers, Vec::new(), None)
    }

    fn start_with(
        store: Store,
        gateways: usize,
        workers: usize,
        env: Vec<(String, String)>,
        tls: Option<TlsFiles>,
    ) -> Self {
        let mock_port = free_port();
        let mut mock = Command::new(binary("mock-llm", "loadtest"));
        mock.args([
            "--port",
            &mock_port.to_string(),
            "--tokens",
            &TOKENS.to_string(),
            "--token-delay-ms",
            &TOKEN_DELAY_MS.to_string(),
        ]);
        let mock = Proc::spawn("mock-llm", mock);
        let mock_url = format!("http://127.0.0.1:{mock_port}");
        wait_http(&format!("{mock_url}/health"), Duration::from_secs(10));
        let prefix = shared::testkit::unique_prefix("faults");
        let worker_env = vec![
            ("WORKER_CLAIM_LEASE_MS".to_owned(), "1500".to_owned()),
            ("WORKER_MAX_TRIES".to_owned(), "20".to_owned()),
            ("WORKER_SHUTDOWN_GRACE_SECS".to_owned(), "5".to_owned()),
        ];
        let mut cluster = Self {
            store,
            _mock: mock,
            mock_url,
            prefix,
            gateways: Vec::new(),
            workers: Vec::new(),
            worker_env,
            env,
            _tls: tls,
        };
        for _ in 0..gateways {
            let port = free_port();
            let gateway = cluster.spawn_gateway(port);
            cluster.gateways.push((gateway, port));
        }
        for i in 0..workers {
            let worker = cluster.spawn_worker(i);
            cluster.workers.push(worker);
        }
        cluster
    }

    pub fn redis_url(&self) -> String {
        match &self.store {
            Store::Single(server) => server.url(),
            Store::Cluster(cluster) => cluster.url(),
        }
    }

    /// The single Redis (the suites that restart it run on one).
    pub fn redis(&mut self) -> &mut RedisServer {
        match &mut self.store {
            Store::Single(server) => server,
            Store::Cluster(_) => panic!("this cluster runs on a Redis Cluster"),
        }
    }

    /// The Redis Cluster, when the processes run on one.
    #[allow(dead_code)]
    pub fn redis_cluster(&mut self) -> &mut RedisCluster {
        match &mut self.store {
            Store::Cluster(cluster) => cluster,
            Store::Single(_) => panic!("this cluster runs on one Redis"),
        }
    }

    /// The ports of the live Redis nodes (any node: `redis-cli -c` follows redirects).
    fn redis_ports(&self) -> Vec<u16> {
        match &self.store {
            Store::Single(server) => vec![server.port()],
            Store::Cluster(cluster) => cluster.live_ports(),
        }
    }

    fn common_env(&self, command: &mut Command) {
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("REDIS_URL", self.redis_url())
            .env("KEY_PREFIX", &self.prefix)
            .env("OPENAI_BASE_URL", format!("{}/v1", self.mock_url))
            .env("LLM_MODEL", "mock-model")
            .env("RUST_LOG", "warn")
            .env("WS_MESSAGES_PER_MINUTE", "100000")
            .env("WS_MESSAGE_BURST", "100000")
            .env("MESSAGES_PER_MINUTE_PER_ADDRESS", "0")
            .env("MESSAGES_PER_MINUTE_PER_USER", "0")
            .env("REDIS_COMMAND_TIMEOUT_MS", "2000");
        for (key, value) in &self.env {
            command.env(key, value);
        }
    }

    /// Sets a variable for every process (gateway or worker) started from now on
    /// (used by the observe suite).
    #[allow(dead_code)]
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
    }

    /// Starts a gateway on `port` and waits until it serves.
    pub fn spawn_gateway(&self, port: u16) -> Proc {
        let mut command = Command::new(binary("gateway", "gateway"));
        self.common_env(&mut command);
        command
            .env("CHAT_SERVICE_HOST", "127.0.0.1")
            .env("CHAT_SERVICE_PORT", port.to_string())
            .env("SHUTDOWN_GRACE_SECS", "5");
        let proc = Proc::spawn(&format!("gateway-{port}"), command);
        wait_http(
            &format!("http://127.0.0.1:{port}/livez"),
            Duration::from_secs(15),
        );
        proc
    }

    pub fn spawn_worker(&self, index: usize) -> Proc {
        self.spawn_worker_on(index, 0)
    }

    /// A worker whose probe port (`/livez`, `/readyz`) is `probe_port` (0 = any).
    pub fn spawn_worker_on(&self, index: usize, probe_port: u16) -> Proc {
        let mut command = Command::new(binary("worker", "worker"));
        self.common_env(&mut command);
        let worker_id = format!("faults-worker-{index}-{}", free_port());
        command
            .env("WORKER_HTTP_HOST", "127.0.0.1")
            .env("WORKER_HTTP_PORT", probe_port.to_string())
            .env("WORKER_ID", &worker_id);
        // Every other worker on a multi-threaded runtime, so the suite's kills and
        // outages meet both kinds (`WORKER_THREADS`, 1 by default).
        if index % 2 == 1 {
            command.env("WORKER_THREADS", "3");
        }
        for (key, value) in &self.worker_env {
            command.env(key, value);
        }
        let mut proc = Proc::spawn(&format!("worker-{index}"), command);
        proc.worker_id = Some(worker_id);
        proc
    }

    /// Sets a variable for the workers started from now on.
    pub fn set_worker_env(&mut self, key: &str, value: &str) {
        self.worker_env.retain(|(k, _)| k != key);
        self.worker_env.push((key.to_owned(), value.to_owned()));
    }

    /// Reads this cluster's Redis directly (for audits), without its lock.
    pub fn inspector(&self) -> Inspector {
        Inspector {
            ports: self.redis_ports(),
            keys: shared::keys::Keys::new(&self.prefix, shared::keys::DEFAULT_PARTITIONS),
        }
    }

    pub fn gateway_urls(&self) -> Vec<String> {
        self.gateways
            .iter()
            .map(|(_, port)| format!("127.0.0.1:{port}"))
            .collect()
    }

    /// Runs a `redis-cli` command against this cluster's Redis.
    pub fn redis_cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-c", "-p", &self.redis_ports()[0].to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

/// Direct reads of the cluster's Redis: what is still waiting, and what a worker holds.
#[derive(Clone)]
pub struct Inspector {
    ports: Vec<u16>,
    keys: shared::keys::Keys,
}

impl Inspector {
    /// Runs `redis-cli -c` on the first node that answers (a cluster's node may be down).
    fn cli(&self, args: &[&str]) -> Vec<String> {
        for port in &self.ports {
            let output = Command::new("redis-cli")
                .args(["-c", "-p", &port.to_string()])
                .args(args)
                .output()
                .expect("redis-cli runs");
            let stdout = String::from_utf8_lossy(&output.stdout);
            if output.status.success() && !stdout.starts_with("Could not connect") {
                return stdout.lines().map(str::to_owned).collect();
            }
        }
        panic!("no Redis node answers {args:?}");
    }

    /// The ids of the session's messages still waiting for an answer (its pending
    /// list: what the inbox entry of the session stands for).
    pub fn waiting(&self, session_id: &str) -> Vec<String> {
        let id = shared::ids::SessionId::parse(session_id).expect("session id");
        self.cli(&["LRANGE", &self.keys.pending(&id), "0", "-1"])
            .iter()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter_map(|message| message["id"].as_str().map(str::to_owned))
            .collect()
    }

    /// The sessions whose inbox entries `consumer` holds (delivered, unacknowledged),
    /// over every partition's inbox.
    pub fn held_by(&self, consumer: &str) -> Vec<String> {
        let group = shared::keys::WORKER_GROUP;
        let mut held = Vec::new();
        for partition in self.keys.partitions() {
            let inbox = self.keys.inbox(partition);
            // XPENDING's extended form: id, consumer, idle ms, deliveries per entry.
            let pending = self.cli(&["XPENDING", &inbox, group, "-", "+", "1000", consumer]);
            held.extend(
                pending
                    .chunks(4)
                    .filter_map(|entry| entry.first())
                    .flat_map(|entry_id| {
                        let fields = self.cli(&["XRANGE", &inbox, entry_id, entry_id]);
                        let at = fields.iter().position(|f| f == "session");
                        at.and_then(|at| fields.get(at + 1).cloned())
                    }),
            );
        }
        held
    }
}
