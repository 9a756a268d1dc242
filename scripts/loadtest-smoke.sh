#!/usr/bin/env bash
# CI smoke run of the load tester against the real (debug) binaries, so the tool keeps
# working: a mock LLM, an embedded gateway, then Redis + gateway + worker processes,
# each driven by `loadtest --strict` with a few sessions for a few seconds. Fails if
# any message is lost, duplicated, reordered, mismatched or errors.
#
# Benchmarks are not this: see scripts/bench.sh. Everything here is on 127.0.0.1,
# bounded in count and time, and stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-target}"
bin="$target/debug"
out="artifacts/loadtest"
mkdir -p "$out"
cargo build --bins --locked --quiet

work="$(mktemp -d)"
pids=()
cleanup() {
  local status=$?
  [ "$status" -eq 0 ] || show_logs
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# A loopback port nobody listens on, below Linux's ephemeral range (32768+) so that no
# outgoing connection of the earlier tests can hold it (bash's /dev/tcp; the race with
# other programs is harmless here).
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
}

# Prints what the started processes logged, so a failed start says why.
show_logs() {
  for log in "$work"/*.log "$work"/*.err; do
    [ -s "$log" ] || continue
    echo "--- $(basename "$log") (last 40 lines)" >&2
    tail -n 40 "$log" >&2
  done
}

# Waits until something accepts connections on the port (30 s at most); gives up at
# once when the process that should listen ($2) has exited.
wait_port() {
  for _ in $(seq 1 600); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    if [ -n "${2:-}" ] && ! kill -0 "$2" 2>/dev/null; then
      echo "the process meant to listen on port $1 exited" >&2
      show_logs
      return 1
    fi
    sleep 0.05
  done
  echo "nothing listens on port $1 after 30 s" >&2
  show_logs
  return 1
}

# Starts redis-server on a free port (a second port if the first is taken meanwhile);
# sets redis_port.
start_redis() {
  for _ in 1 2 3; do
    redis_port="$(free_port)"
    redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
      --dir "$work" --logfile "$work/redis.log" &
    local pid=$!
    pids+=("$pid")
    if wait_port "$redis_port" "$pid"; then return 0; fi
  done
  return 1
}

# mock-llm prints its address once bound.
"$bin/mock-llm" --port 0 --tokens 12 --token-delay-ms 2 >"$work/mock.out" 2>"$work/mock.err" &
pids+=($!)
for _ in $(seq 1 200); do grep -q listening "$work/mock.out" 2>/dev/null && break; sleep 0.05; done
mock_url="$(sed -n 's/^mock-llm listening on //p' "$work/mock.out")"
[ -n "$mock_url" ] || { echo "mock-llm did not start" >&2; cat "$work/mock.err" >&2; exit 1; }

common_env=(RUST_LOG=warn CHAT_SERVICE_HOST=127.0.0.1 OPENAI_BASE_URL="$mock_url/v1" LLM_MODEL=mock-model)

echo "loadtest smoke: embedded gateway"
port="$(free_port)"
env "${common_env[@]}" CHAT_SERVICE_PORT="$port" "$bin/gateway" >"$work/gw1.log" 2>&1 &
pids+=($!)
wait_port "$port" $!
"$bin/loadtest" --url "http://127.0.0.1:$port" --sessions 5 --messages 3 --ramp 50 \
  --duration 20 --message-timeout 15 --strict --no-progress \
  --json "$out/smoke-embedded.json" --html "$out/smoke-embedded.html"
"$bin/loadtest" --url "http://127.0.0.1:$port" --mode simple --sessions 3 --messages 2 \
  --duration 20 --message-timeout 15 --strict --no-progress --json "$out/smoke-simple.json"

if command -v redis-server >/dev/null; then
  echo "loadtest smoke: Redis, gateway and worker processes"
  start_redis
  redis_env=(REDIS_URL="redis://127.0.0.1:$redis_port" KEY_PREFIX=smoke)
  port="$(free_port)"
  env "${common_env[@]}" "${redis_env[@]}" CHAT_SERVICE_PORT="$port" RUN_WORKER=false \
    "$bin/gateway" >"$work/gw2.log" 2>&1 &
  gateway_pid=$!
  pids+=("$gateway_pid")
  env "${common_env[@]}" "${redis_env[@]}" WORKER_HTTP_HOST=127.0.0.1 WORKER_HTTP_PORT=0 \
    "$bin/worker" >"$work/worker.log" 2>&1 &
  pids+=($!)
  wait_port "$port" "$gateway_pid"
  # Two read-only sockets more on every session (--watchers): each must get every
  # chunk its session's sender gets, in seq order.
  "$bin/loadtest" --url "http://127.0.0.1:$port" --sessions 5 --messages 3 --ramp 50 \
    --watchers 2 --duration 20 --message-timeout 15 --strict --no-progress \
    --json "$out/smoke-redis.json" --html "$out/smoke-redis.html"
  python3 - "$out/smoke-redis.json" <<'PY'
import json, sys
window = json.load(open(sys.argv[1]))["window"]
assert window["chunks"] > 0 and window["watched_chunks"] == 2 * window["chunks"], window
PY
else
  echo "loadtest smoke: redis-server not installed; Redis run skipped"
fi
echo "loadtest smoke: passed"
