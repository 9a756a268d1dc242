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
        let dir = std::env::temp_dir().join(format!("chat-redis-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir for redis");
        let mut server = Self {
            port: free_port(),
            dir,
            child: None,
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
        let mut args = vec![
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ];
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

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
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
