//! The load run's settings: one clap struct, so the binary, the benchmark driver and
//! tests build a run the same way (the benchmark records each run as the
//! `loadtest ...` command line that reproduces it).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, ValueEnum};

/// What each session does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// REST create, socket (stream protocol), M messages; every event checked.
    Stream,
    /// The simple client: socket on a fresh id, `{message, user_id, session_id}`,
    /// `typing` then one `assistant`.
    Simple,
    /// REST create, socket, hold it open until `--duration` ends; nothing sent.
    Idle,
    /// Send M messages back to back, then a ping: the pong proves every message before
    /// it was accepted (stored and queued). Run it with no worker attached.
    Accept,
    /// Against `echo-baseline`: keep `--window` frames in flight per socket.
    Echo,
    /// Against `echo-baseline`: hold sockets open, like `idle`.
    EchoIdle,
    /// Straight to an OpenAI-compatible server (`--url` is its `/v1` base):
    /// streamed chat completions, time to first content delta.
    Llm,
}

impl Mode {
    /// The name as typed on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Stream => "stream",
            Mode::Simple => "simple",
            Mode::Idle => "idle",
            Mode::Accept => "accept",
            Mode::Echo => "echo",
            Mode::EchoIdle => "echo-idle",
            Mode::Llm => "llm",
        }
    }

    /// Modes that only hold sockets open.
    pub fn is_idle(self) -> bool {
        matches!(self, Mode::Idle | Mode::EchoIdle)
    }
}

/// One load run.
#[derive(Debug, Clone, Args)]
pub struct RunSettings {
    /// Gateway base URL(s), comma-separated or repeated; sessions go round-robin.
    #[arg(
        long = "url",
        env = "LOADTEST_URL",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8002"
    )]
    pub urls: Vec<String>,

    /// What each session does.
    #[arg(long, value_enum, default_value_t = Mode::Stream)]
    pub mode: Mode,

    /// Sessions (sockets) to open.
    #[arg(long, default_value_t = 10)]
    pub sessions: usize,

    /// Sessions opened per second; 0 opens them all at once (at most
    /// `--connect-concurrency` handshakes in flight).
    #[arg(long, default_value_t = 0.0)]
    pub ramp: f64,

    /// Handshakes (REST create + socket) in flight at once.
    #[arg(long, default_value_t = 128)]
    pub connect_concurrency: usize,

    /// Messages per session; 0 = keep sending until `--duration` ends.
    #[arg(long, default_value_t = 5)]
    pub messages: u64,

    /// Open loop: messages per second per session, sent on schedule whatever the
    /// answers do. Unset: closed loop, the next message after the previous answer.
    #[arg(long)]
    pub rate: Option<f64>,

    /// Closed loop: pause after each answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub think_ms: u64,

    /// Closed loop: the sessions' first messages go out spread over this many
    /// milliseconds (golden-ratio steps) instead of all at once when the load starts,
    /// so independent users are not measured as one burst that then repeats in
    /// lockstep. About one send period (think time + an answer) spreads them evenly.
    #[arg(long, default_value_t = 0)]
    pub stagger_ms: u64,

    /// Seconds after which no new message is sent (idle modes: how long sockets are
    /// held). Messages in flight still finish.
    #[arg(long)]
    pub duration: Option<f64>,

    /// Seconds at the start of the message phase left out of the window rates and
    /// CPU samples.
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,

    /// Text of each message (`[mock:...]` directives steer `mock-llm`).
    #[arg(long, default_value = "Hello from loadtest")]
    pub text: String,

    /// Seconds a message may take to get its outcome before it counts as timed out.
    #[arg(long, default_value_t = 30.0)]
    pub message_timeout: f64,

    /// Echo mode: frames in flight per socket.
    #[arg(long, default_value_t = 1)]
    pub window: usize,

    /// Echo mode: bytes per frame (about a chunk event's size).
    #[arg(long, default_value_t = 160)]
    pub frame_bytes: usize,

    /// A ready JWT for every session (`Authorization: Bearer` on REST, `?token=` on
    /// the socket).
    #[arg(long, env = "LOADTEST_TOKEN", conflicts_with = "jwt_secret")]
    pub token: Option<String>,

    /// Sign an HS256 token per session with this secret, for user `loadtest-<n>`.
    #[arg(long, env = "LOADTEST_JWT_SECRET")]
    pub jwt_secret: Option<String>,

    /// Claim that names the user in signed tokens.
    #[arg(long, default_value = "sub")]
    pub jwt_claim: String,

    /// Lifetime of signed tokens, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub jwt_ttl_secs: u64,

    /// A plain Redis subscriber on every session's channel (`redis://host:port`, one
    /// Redis): each chunk's socket arrival is compared with its arrival there (added
    /// latency).
    #[arg(long)]
    pub tap_redis: Option<String>,

    /// Key prefix of the gateway (`KEY_PREFIX`), to name the channels for `--tap-redis`.
    #[arg(long, default_value = "chat")]
    pub key_prefix: String,

    /// The gateway's `STORE_PARTITIONS`, to name the channels for `--tap-redis`.
    #[arg(long, default_value_t = shared::keys::DEFAULT_PARTITIONS)]
    pub store_partitions: u16,

    /// Sample RSS, CPU and wake-ups of a process, `NAME=PID` (repeatable): before connecting,
    /// at the start and the end of the measured window.
    #[arg(long = "pid", value_parser = parse_pid)]
    pub pids: Vec<(String, u32)>,

    /// Write the JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// Write the self-contained HTML report here.
    #[arg(long)]
    pub html: Option<PathBuf>,

    /// No progress bar (it is also hidden when stderr is not a terminal).
    #[arg(long)]
    pub no_progress: bool,

    /// No table on stdout.
    #[arg(long)]
    pub quiet: bool,

    /// Exit with status 1 unless every message completed and no event was lost,
    /// duplicated, reordered, out of order or mismatched.
    #[arg(long)]
    pub strict: bool,

    /// Stream mode: this many more sockets on every session, opened after its own,
    /// that only read (each checks `seq` and counts the chunks it gets): one
    /// conversation on many screens.
    #[arg(long, default_value_t = 0)]
    pub watchers: usize,

    /// Read buffer of each client socket, in bytes.
    #[arg(long, default_value_t = 4096)]
    pub ws_buffer_bytes: usize,
}

/// Parses the run settings alone, e.g. `RunSettings::parse_from(["--sessions", "5"])`.
#[derive(Debug, Parser)]
#[command(name = "loadtest", no_binary_name = true)]
struct Standalone {
    #[command(flatten)]
    run: RunSettings,
}

impl RunSettings {
    /// Settings from command-line style arguments (no program name).
    pub fn try_from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Standalone::try_parse_from(args).map(|s| s.run)
    }

    /// Checks what clap cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.urls.is_empty(), "--url: at least one URL");
        anyhow::ensure!(self.sessions > 0, "--sessions must be at least 1");
        anyhow::ensure!(self.window > 0, "--window must be at least 1");
        anyhow::ensure!(
            self.rate.is_none_or(|r| r > 0.0 && r.is_finite()),
            "--rate must be positive"
        );
        anyhow::ensure!(
            self.stagger_ms == 0 || self.rate.is_none(),
            "--stagger-ms is for closed loop; --rate spreads open-loop sends itself"
        );
        anyhow::ensure!(
            self.ramp >= 0.0 && self.ramp.is_finite(),
            "--ramp must be 0 or positive"
        );
        anyhow::ensure!(
            self.message_timeout > 0.0,
            "--message-timeout must be positive"
        );
        if self.mode.is_idle() {
            anyhow::ensure!(
                self.duration.is_some(),
                "--duration is required in idle modes"
            );
        } else {
            anyhow::ensure!(
                self.messages > 0 || self.duration.is_some(),
                "--messages 0 needs --duration"
            );
        }
        anyhow::ensure!(
            self.watchers == 0 || self.mode == Mode::Stream,
            "--watchers needs --mode stream"
        );
        if self.mode == Mode::Accept {
            anyhow::ensure!(self.messages > 0, "accept mode needs --messages > 0");
        }
        Ok(())
    }

    /// The URL session `index` uses.
    pub fn url_for(&self, index: usize) -> &str {
        self.urls[index % self.urls.len()].trim_end_matches('/')
    }

    /// When session `index` sends its first message, after the load starts: in open
    /// loop spread over one period, in closed loop over `--stagger-ms` (golden-ratio
    /// steps either way), so sessions do not all fire at once.
    pub fn first_send_phase(&self, index: usize) -> Duration {
        let fraction = (index as f64 * 0.618_033_988_75).fract();
        match self.rate {
            Some(rate) => Duration::from_secs_f64(fraction / rate),
            None => Duration::from_secs_f64(fraction * self.stagger_ms as f64 / 1000.0),
        }
    }
}

fn parse_pid(raw: &str) -> Result<(String, u32), String> {
    let (name, pid) = raw
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=PID, got {raw:?}"))?;
    let pid = pid.parse().map_err(|_| format!("bad pid in {raw:?}"))?;
    Ok((name.to_owned(), pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_a_small_closed_loop_stream_run() {
        let s = RunSettings::try_from_args(Vec::<String>::new()).unwrap();
        assert_eq!(s.mode, Mode::Stream);
        assert_eq!(s.sessions, 10);
        assert_eq!(s.messages, 5);
        assert!(s.rate.is_none());
        s.validate().unwrap();
    }

    #[test]
    fn urls_and_pids_parse() {
        let s = RunSettings::try_from_args([
            "--url",
            "http://a:1,http://b:2/",
            "--pid",
            "gateway=42",
            "--mode",
            "echo-idle",
            "--duration",
            "3",
        ])
        .unwrap();
        assert_eq!(s.url_for(0), "http://a:1");
        assert_eq!(s.url_for(1), "http://b:2");
        assert_eq!(s.url_for(2), "http://a:1");
        assert_eq!(s.pids, vec![("gateway".to_owned(), 42)]);
        assert!(s.mode.is_idle());
        s.validate().unwrap();
        assert!(RunSettings::try_from_args(["--pid", "nopid"]).is_err());
    }

    #[test]
    fn nonsense_is_refused() {
        let idle = RunSettings::try_from_args(["--mode", "idle"]).unwrap();
        assert!(idle.validate().is_err(), "idle needs a duration");
        let endless = RunSettings::try_from_args(["--messages", "0"]).unwrap();
        assert!(endless.validate().is_err());
        let both = RunSettings::try_from_args(["--token", "t", "--jwt-secret", "s"]);
        assert!(both.is_err());
        let staggered_open_loop =
            RunSettings::try_from_args(["--rate", "1", "--stagger-ms", "500"]).unwrap();
        assert!(staggered_open_loop.validate().is_err());
    }

    #[test]
    fn first_sends_are_spread_over_the_stagger_or_the_period() {
        let phases = |args: &[&str]| -> Vec<Duration> {
            let s = RunSettings::try_from_args(args).unwrap();
            s.validate().unwrap();
            (0..100).map(|i| s.first_send_phase(i)).collect()
        };
        assert!(
            phases(&[]).iter().all(Duration::is_zero),
            "closed loop: all at once"
        );
        for (args, span) in [
            (&["--stagger-ms", "1250"][..], Duration::from_millis(1250)),
            (&["--rate", "2"][..], Duration::from_millis(500)),
        ] {
            let mut phases = phases(args);
            assert!(
                phases.iter().all(|p| *p < span),
                "{args:?}: within {span:?}"
            );
            phases.sort();
            // Spread, not bunched: no gap between neighbours exceeds 1/20 of the span
            // for 100 sessions (golden-ratio steps stay within ~2.6 × span / n).
            let widest = phases.windows(2).map(|w| w[1] - w[0]).max().unwrap();
            assert!(widest < span / 20, "{args:?}: widest gap {widest:?}");
            assert!(
                phases[99] - phases[0] > span * 9 / 10,
                "{args:?}: covers the span"
            );
        }
    }
}
