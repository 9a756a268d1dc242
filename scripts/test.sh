#!/usr/bin/env bash
# Every check CI runs, from a fresh Debian/Ubuntu machine with Rust (>= 1.85):
# installs what is missing (redis-server, openssl, Node.js, Chromium, the Node test clients,
# Python venv and llmock),
# then runs fmt, clippy and the whole test suite, then the deployment checks
# (scripts/deploy-test.sh installs Docker, debootstrap and its own tools when missing).
# Tests start their own redis-server on free loopback ports; nothing on 6379 is used
# or touched.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
# The TLS tests make a throwaway CA and certificates with the openssl CLI.
command -v openssl >/dev/null || missing+=(openssl)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
[ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] || missing+=(chromium)
# Python with venv, for the third-party OpenAI-compatible server below.
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3 python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# llmock (PyPI), a third-party OpenAI-compatible server the worker is tested against
# (gateway/tests/api/llm_compat.rs finds it through LLMOCK_BIN or PATH, and fails
# without it). Installed once into a venv under target/.
if ! command -v llmock >/dev/null; then
  tools="$PWD/target/pytools"
  if [ ! -x "$tools/bin/llmock" ]; then
    python3 -m venv "$tools"
    "$tools/bin/pip" install -q --disable-pip-version-check llmock==0.2.2
  fi
  export LLMOCK_BIN="$tools/bin/llmock"
fi

# The observability tests' third-party tools (Prometheus text parser, OpenAPI
# validator, schemathesis, OTLP protobuf types): a venv under target/, made once.
bash scripts/python-env.sh >/dev/null

for dir in tests/seeds tests/browser tests/asyncapi; do
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
done

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The fault suite runs the real binaries (gateway, worker, mock-llm): build them all.
cargo build --workspace --bins --locked
# --show-output prints the fault suite's figures (faults[...]: ... lost 0 ...).
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked -- --show-output 2>&1 | tee "$log"
# The TypeScript client: types, lint, build, then its Node tests against the binaries
# just built (target/debug, or under CARGO_TARGET_DIR) and a redis-server of their own
# on a free loopback port.
export CHAT_BIN_DIR="${CHAT_BIN_DIR:-$(realpath "${CARGO_TARGET_DIR:-target}")/debug}"
(cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error && npm run check)
bash scripts/loadtest-smoke.sh  # the load tester against the real binaries (a few sessions, --strict)
bash scripts/deploy-test.sh     # Docker image, docker-compose.yml and the Helm chart, run for real
# One closing line for the whole run (cargo's own last line is the doc-tests').
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
