//! The venv of third-party Python tools (`scripts/python-env.sh`), made once per run.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The venv's python, installing the tools on first use.
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/python-env.sh");
            let output = Command::new("bash")
                .arg(script)
                .stderr(Stdio::inherit())
                .output()
                .expect("bash runs scripts/python-env.sh");
            assert!(output.status.success(), "scripts/python-env.sh failed");
            PathBuf::from(String::from_utf8(output.stdout).expect("utf-8 path").trim())
        })
        .clone()
}

/// Runs `code` with `input` on stdin and `args`; returns stdout, panicking with
/// stderr when the script fails.
pub fn run(code: &str, args: &[&str], input: &str) -> String {
    let mut child = Command::new(python())
        .arg("-c")
        .arg(code)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let output = child.wait_with_output().expect("python finishes");
    assert!(
        output.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}
