#!/usr/bin/env bash
# The benchmark: builds the release binaries, then `loadtest bench` starts its own
# redis-server, mock-llm, gateways, workers and the bare echo on 127.0.0.1, measures
# every figure of BENCHMARKS.md as a ratio against a baseline taken in the same run
# (alternating, median of 3), prints them and rewrites the generated section of
# BENCHMARKS.md. Takes about 10 minutes after the build on a 2-core machine.
#
# Extra arguments go to `loadtest bench` (see `loadtest bench --help`), e.g.
#   bash scripts/bench.sh --only 1,6 --repeat 5
# Nothing here touches a Redis on 6379 or any address but loopback; every process
# it starts is stopped when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in redis-server redis-benchmark redis-cli; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install redis-server)" >&2; exit 1; }
done

cargo build --release --locked --bins -p gateway -p worker -p loadtest

# 20 000 idle sessions need a descriptor each in the load generator and in the gateway
# (or the echo), plus spares; where the hard limit is lower the benchmark uses fewer.
hard="$(ulimit -Hn)"
want=30000
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then want="$hard"; fi
ulimit -n "$want" || true

bin="${CARGO_TARGET_DIR:-target}/release"
exec "$bin/loadtest" bench --bin-dir "$bin" --write BENCHMARKS.md \
  --invoked-as "bash scripts/bench.sh${*:+ $*}" "$@"
