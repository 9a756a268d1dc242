//! The processes a benchmark runs: its own `redis-server`, `mock-llm`, gateways,
//! workers and the echo baseline, all on 127.0.0.1, each stopped when dropped
//! (SIGTERM, then SIGKILL after a grace period).

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A child process, stopped on drop.
pub struct Proc {
    pub name: String,
    child: Child,
}

impl Proc {
    /// Starts `command` with its output sent to `log` (stdout piped when `pipe_stdout`).
    pub fn spawn(
        name: &str,
        mut command: Command,
        log: &Path,
        pipe_stdout: bool,
    ) -> anyhow::Result<Self> {
        let file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        command
            .stdin(Stdio::null())
            .stderr(file.try_clone()?)
            .stdout(if pipe_stdout {
                Stdio::piped()
            } else {
                file.into()
            });
        let child = command
            .spawn()
            .with_context(|| format!("starting {name} ({command:?})"))?;
        Ok(Self {
            name: name.to_owned(),
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads stdout lines until one starts with `prefix`; returns the rest of it.
    pub fn read_line_after(&mut self, prefix: &str) -> anyhow::Result<String> {
        let stdout = self.child.stdout.take().context("stdout was not piped")?;
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let line = line?;
            if let Some(rest) = line.strip_prefix(prefix) {
                // Keep draining in the background so the child never blocks on a full pipe.
                std::thread::spawn(move || for _ in lines {});
                return Ok(rest.trim().to_owned());
            }
        }
        bail!("{} exited before printing {prefix:?}", self.name)
    }

    /// Stops the process: SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(3));
    }
}

/// A free loopback port (the kernel's pick; released before use, a harmless race).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until something accepts connections on `port`.
pub fn wait_port(port: u16, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("nothing listens on 127.0.0.1:{port} after {within:?}")
}

/// The benchmark's own Redis: loopback only, no persistence.
pub struct Redis {
    pub port: u16,
    _proc: Proc,
}

impl Redis {
    pub fn start(logs: &Path) -> anyhow::Result<Self> {
        let port = free_port()?;
        let mut command = Command::new("redis-server");
        command.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--maxclients",
            "20000",
        ]);
        let proc = Proc::spawn("redis-server", command, &logs.join("redis.log"), false)?;
        wait_port(port, Duration::from_secs(10))?;
        Ok(Self { port, _proc: proc })
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self._proc.pid()
    }

    /// `redis-cli -p PORT args...`; its stdout.
    pub fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .context("running redis-cli")?;
        anyhow::ensure!(output.status.success(), "redis-cli {args:?} failed");
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// A Redis Cluster of `masters` loopback masters (no replicas, no persistence), joined
/// by `redis-cli --cluster create`, for figure 13.
pub struct RedisClusterProcs {
    ports: Vec<u16>,
    procs: Vec<Proc>,
}

impl RedisClusterProcs {
    pub fn start(logs: &Path, masters: usize) -> anyhow::Result<Self> {
        let mut ports = Vec::new();
        let mut procs = Vec::new();
        for _ in 0..masters {
            let port = free_port()?;
            let conf = logs.join(format!("cluster-nodes-{port}.conf"));
            let _ = std::fs::remove_file(&conf);
            let mut command = Command::new("redis-server");
            command.args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--maxclients",
                "20000",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &conf.display().to_string(),
            ]);
            let log = logs.join(format!("redis-cluster-{port}.log"));
            procs.push(Proc::spawn("redis-server", command, &log, false)?);
            wait_port(port, Duration::from_secs(10))?;
            ports.push(port);
        }
        let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let output = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .arg("--cluster-yes")
            .stdin(Stdio::null())
            .output()
            .context("running redis-cli --cluster create")?;
        anyhow::ensure!(output.status.success(), "redis-cli --cluster create failed");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        for port in &ports {
            loop {
                let info = Command::new("redis-cli")
                    .args(["-p", &port.to_string(), "CLUSTER", "INFO"])
                    .output()
                    .context("running redis-cli")?;
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    break;
                }
                anyhow::ensure!(
                    std::time::Instant::now() < deadline,
                    "the benchmark's cluster did not settle"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(Self { ports, procs })
    }

    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis-cluster://{}", nodes.join(","))
    }

    pub fn pids(&self) -> Vec<u32> {
        self.procs.iter().map(Proc::pid).collect()
    }
}

/// Where the binaries are, and where logs go.
#[derive(Debug, Clone)]
pub struct Bins {
    pub dir: PathBuf,
    pub logs: PathBuf,
}

impl Bins {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Checks that every binary the benchmark runs exists.
    pub fn check(&self) -> anyhow::Result<()> {
        for name in ["gateway", "worker", "mock-llm", "echo-baseline"] {
            let path = self.path(name);
            anyhow::ensure!(
                path.exists(),
                "{} is missing: build with `cargo build --release --bins`",
                path.display()
            );
        }
        Ok(())
    }

    /// `mock-llm` on a free port with `args`; returns it and its base URL.
    pub fn mock(&self, tag: &str, args: &[&str]) -> anyhow::Result<(Proc, String)> {
        let mut command = Command::new(self.path("mock-llm"));
        command
            .args(["--port", "0"])
            .args(args)
            .env("RUST_LOG", "warn");
        let mut proc = Proc::spawn(tag, command, &self.logs.join(format!("{tag}.log")), true)?;
        let url = proc.read_line_after("mock-llm listening on")?;
        Ok((proc, url))
    }

    /// `echo-baseline` on a free port; returns it and its base URL.
    pub fn echo(&self, tag: &str) -> anyhow::Result<(Proc, String)> {
        let mut command = Command::new(self.path("echo-baseline"));
        command.args(["--port", "0", "--buffer-bytes", "4096"]);
        let mut proc = Proc::spawn(tag, command, &self.logs.join(format!("{tag}.log")), true)?;
        let url = proc.read_line_after("echo-baseline listening on")?;
        Ok((proc, url))
    }

    /// A gateway with `env`; returns it and its base URL once `/livez` answers.
    pub fn gateway(&self, tag: &str, env: &[(String, String)]) -> anyhow::Result<(Proc, String)> {
        let port = free_port()?;
        let mut command = Command::new(self.path("gateway"));
        command
            // A stack names its store; none is embedded mode, whatever this shell has.
            .env_remove("REDIS_URL")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("CHAT_SERVICE_HOST", "127.0.0.1")
            .env("CHAT_SERVICE_PORT", port.to_string());
        let proc = Proc::spawn(tag, command, &self.logs.join(format!("{tag}.log")), false)?;
        wait_port(port, Duration::from_secs(20))
            .with_context(|| format!("{tag} did not start; see its log"))?;
        Ok((proc, format!("http://127.0.0.1:{port}")))
    }

    /// A worker with `env`.
    pub fn worker(&self, tag: &str, env: &[(String, String)]) -> anyhow::Result<Proc> {
        let mut command = Command::new(self.path("worker"));
        command
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("WORKER_HTTP_HOST", "127.0.0.1")
            .env("WORKER_HTTP_PORT", "0")
            .env("WORKER_ID", tag);
        Proc::spawn(tag, command, &self.logs.join(format!("{tag}.log")), false)
    }

    /// Whether this gateway build verifies JWTs (its `--help` lists `JWT_SECRET`).
    pub fn gateway_has_auth(&self) -> bool {
        Command::new(self.path("gateway"))
            .arg("--help")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("JWT_SECRET"))
            .unwrap_or(false)
    }
}

/// The soft limit on open files of this process (`/proc/self/limits`).
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_open_files_limit_is_read() {
        assert!(super::open_files_limit().unwrap_or(1) > 0);
    }
}
