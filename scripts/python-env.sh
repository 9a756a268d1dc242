#!/usr/bin/env bash
# The Python tools the observability tests run (a Prometheus text parser, an OpenAPI
# validator, schemathesis, the OTLP protobuf types, the oteltap OTLP receiver), in a
# private venv under target/.
# Idempotent and quiet: a venv that already has every package is reused at once.
# Prints the venv's python on stdout; the Rust tests call it through this script.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${CHAT_TEST_VENV:-$PWD/target/test-venv}"
packages=(prometheus-client openapi-spec-validator schemathesis opentelemetry-proto oteltap==1.0.0)
stamp="$venv/.installed-v2"
if [ ! -f "$stamp" ]; then
  exec 9>"$venv.lock" 2>/dev/null || { mkdir -p "$(dirname "$venv")"; exec 9>"$venv.lock"; }
  flock 9
  if [ ! -f "$stamp" ]; then
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
      sudo=""
      [ "$(id -u)" -eq 0 ] || sudo="sudo"
      $sudo apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3 python3-venv >&2
    fi
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check "${packages[@]}" >&2
    touch "$stamp"
  fi
fi
echo "$venv/bin/python"
