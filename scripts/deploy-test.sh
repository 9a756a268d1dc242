#!/usr/bin/env bash
# The deployment artefacts, run or validated for real (part of scripts/test.sh):
#
# 1. Prerequisites, installed when missing: docker.io, docker-compose, debootstrap
#    (apt-get); helm-python-sdk, kubernetes-validate, yamllint (pip, in a cached venv);
#    the Node checkers and validators (npm ci, again whenever a package-lock.json is
#    newer than what is installed). dockerd is started when no daemon answers.
# 2. No image registry is reachable here, so the base image is made from Debian packages
#    (debootstrap --variant=minbase with redis-server and nginx-light; cached by name)
#    and tagged as every third-party image the Dockerfile and docker-compose.yml name
#    (debian:bookworm-slim, redis:7, nginx:1.27) unless such an image is already there.
# 3. The project image from the Dockerfile's `prebuilt` target with the debug binaries
#    scripts/test.sh has just built (DEPLOY_PROFILE_DIR=release for release ones).
# 4. docker-compose.yml: up; through the load balancer on 127.0.0.1 the seed 004 client,
#    the simple client and a socket whose gateway container is `docker kill`ed resuming
#    on the other with last_seq; Redis append-only on its volume; down -v.
# 5. The Helm chart (tests/deploy/chart_check.py): rendered with defaults and with each
#    option on, linted, every manifest validated, bad values rejected; then the rendered
#    gateway and worker containers run in Docker as the manifests say
#    (tests/deploy/run_manifests.py): probes, the KEDA backlog metric, a chat.
#
# Everything it starts (containers, networks, volumes, dockerd itself) is removed on
# exit, also on failure. Ports are published on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

profile_dir="${DEPLOY_PROFILE_DIR:-debug}"
base_image="chat-gateway-test/debian:bookworm"
image="chat-gateway:deploy-test"
project="chatgw-deploy-$$"
venv="${DEPLOY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/chat-gateway-deploy-venv}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

work="$(mktemp -d)"
dockerd_pid=""
compose_up=""
started=$(date +%s)
step() { echo "deploy-test [$(($(date +%s) - started)) s]: $*"; }

cleanup() {
  local status=$?
  set +e
  if [ "$status" -ne 0 ] && [ -n "$compose_up" ]; then
    compose ps
    compose logs --no-color --tail 30
  fi
  if [ -n "$compose_up" ]; then compose down -v --remove-orphans >/dev/null 2>&1; fi
  # run_manifests.py removes its own containers; this catches a crash of it.
  local left
  left="$(docker ps -aq --filter "label=chat-gateway-deploy-test=$project" 2>/dev/null)"
  [ -z "$left" ] || docker rm -f $left >/dev/null 2>&1
  left="$(docker network ls -q --filter "label=chat-gateway-deploy-test=$project" 2>/dev/null)"
  [ -z "$left" ] || docker network rm $left >/dev/null 2>&1
  if [ -n "$dockerd_pid" ]; then
    $sudo kill "$dockerd_pid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  [ "$status" -eq 0 ] || { echo "--- dockerd log (last 20 lines)" >&2; tail -n 20 "$work/dockerd.log" 2>/dev/null >&2; }
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

compose() {
  CHAT_GATEWAY_IMAGE="$image" LB_PORT="$lb_port" docker-compose -p "$project" "$@"
}

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

# ---- 1. prerequisites -------------------------------------------------------------
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v node >/dev/null || missing+=(nodejs npm)
command -v curl >/dev/null || missing+=(curl)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ! "$venv/bin/python" -c 'import helm_python, kubernetes_validate, yamllint, yaml, websockets, prometheus_client' 2>/dev/null; then
  step "installing helm-python-sdk, kubernetes-validate, yamllint, pyyaml, websockets, prometheus-client into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check helm-python-sdk kubernetes-validate yamllint pyyaml websockets prometheus-client
fi
export PATH="$venv/bin:$PATH"
for dir in tests/seeds tests/deploy; do
  # npm ci writes node_modules/.package-lock.json last: older than the lock file (or
  # missing) means the installed packages are not the locked ones.
  [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ] \
    || (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
done
for bin in gateway worker mock-llm; do
  [ -x "${CARGO_TARGET_DIR:-target}/$profile_dir/$bin" ] \
    || { echo "${CARGO_TARGET_DIR:-target}/$profile_dir/$bin missing: build the binaries first" >&2; exit 1; }
done

if ! docker info >/dev/null 2>&1; then
  step "starting dockerd"
  $sudo dockerd >"$work/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 1 120); do docker info >/dev/null 2>&1 && break; sleep 0.25; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not come up" >&2; exit 1; }
fi

# ---- 2. base image from Debian packages --------------------------------------------
if ! docker image inspect "$base_image" >/dev/null 2>&1; then
  mirror="$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
  [ -n "$mirror" ] || mirror="$(awk '$1 == "deb" { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)"
  [ -n "$mirror" ] || { echo "no Debian mirror found in apt's sources" >&2; exit 1; }
  step "debootstrap bookworm from $mirror"
  $sudo debootstrap --variant=minbase --include=ca-certificates,redis-server,nginx-light \
    bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -n 20 "$work/debootstrap.log" >&2; exit 1; }
  # What an image does not need: downloaded packages, apt lists, docs.
  $sudo rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/cache/apt/*.bin \
    "$work"/rootfs/var/lib/apt/lists/* "$work"/rootfs/usr/share/{doc,man,locale,info}/*
  $sudo tar -C "$work/rootfs" -c . | docker import - "$base_image" >/dev/null
  $sudo rm -rf "$work/rootfs"
fi
for stand_in in debian:bookworm-slim redis:7 nginx:1.27; do
  docker image inspect "$stand_in" >/dev/null 2>&1 || docker tag "$base_image" "$stand_in"
done

# ---- 3. the project image ----------------------------------------------------------
step "docker build --target prebuilt (PROFILE_DIR=$profile_dir)"
target_dir="${CARGO_TARGET_DIR:-target}"
if [ "$(realpath -m "$target_dir")" != "$(realpath -m target)" ]; then
  # The build context is the repository: bring the binaries into its target/.
  mkdir -p "target/$profile_dir"
  cp "$target_dir/$profile_dir"/{gateway,worker,mock-llm} "target/$profile_dir/"
fi
docker build -q --target prebuilt --build-arg PROFILE_DIR="$profile_dir" -t "$image" . \
  >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
size=$(docker image inspect -f '{{.Size}}' "$image")
base_size=$(docker image inspect -f '{{.Size}}' debian:bookworm-slim)
echo "deploy-test: image $image is $((size / 1000000)) MB ($(((size - base_size) / 1000000)) MB over its base, $((base_size / 1000000)) MB)"
user=$(docker image inspect -f '{{.Config.User}}' "$image")
[ "$user" = "65532:65532" ] || { echo "image user is '$user', not 65532:65532" >&2; exit 1; }
signal=$(docker image inspect -f '{{.Config.StopSignal}}' "$image")
[ "$signal" = "SIGTERM" ] || { echo "image stop signal is '$signal'" >&2; exit 1; }

# ---- 4. docker-compose.yml ---------------------------------------------------------
yamllint -s -c .yamllint.yml docker-compose.yml deploy/
lb_port="$(free_port)"
compose --profile observability config -q
CHAT_ENV_FILE=deploy/observability.env compose --profile observability config -q
step "docker-compose up (load balancer on 127.0.0.1:$lb_port)"
compose_up=1
compose up -d --no-build >"$work/compose-up.log" 2>&1 || { cat "$work/compose-up.log" >&2; exit 1; }
base="http://127.0.0.1:$lb_port"
for _ in $(seq 1 240); do
  curl -sf -o /dev/null "$base/health" && break
  sleep 0.25
done
curl -sf "$base/health" >/dev/null || { echo "the load balancer's /health did not answer" >&2; exit 1; }

step "seed 004 client through the load balancer"
node tests/seeds/run-streaming.js "$base" "What are your blood test hours?" "What about Saturday?" \
  2>"$work/streaming.err" >"$work/streaming.out" || { cat "$work/streaming.err" >&2; exit 1; }
python3 - "$work/streaming.out" <<'EOF'
import json, sys
result = json.loads(open(sys.argv[1]).read().removeprefix("RESULT "))
first, second = result["responses"]
assert first.startswith('Reply 1 to "What are your blood test hours?" after 0 earlier user and 0 assistant messages.'), first
assert second.startswith('Reply 2 to "What about Saturday?" after 1 earlier user and 1 assistant messages.'), second
events = [e["event"] for e in result["events"]]
assert "error" not in events and events.count("message") == 2 and events.count("ready") == 2, events
assert "".join(e["data"] for e in result["events"] if e["event"] == "chunk") == first + second
assert result["info"]["message_count"] == 4 and result["info_status_after_delete"] == 404, result["info"]
EOF

step "simple client through the load balancer"
node tests/seeds/run-simple.js "ws://127.0.0.1:$lb_port/ws/deploy-simple-$$" "Hello there" "And again" \
  2>"$work/simple.err" >"$work/simple.out" || { cat "$work/simple.err" >&2; exit 1; }
python3 - "$work/simple.out" <<'EOF'
import json, sys
result = json.loads(open(sys.argv[1]).read().removeprefix("RESULT "))
assert [f["type"] for f in result["frames"]] == ["typing", "assistant", "typing", "assistant"], result["frames"]
first, second = result["displayed"]
assert first.startswith('Reply 1 to "Hello there" after 0 earlier user'), first
assert second.startswith('Reply 2 to "And again" after 1 earlier user and 1 assistant messages.'), second
EOF

step "docker kill the socket's gateway; resume on the other with last_seq"
gateways=()
for service in gateway-1 gateway-2; do
  gateways+=("$(docker inspect -f '{{.Name}}' "$(compose ps -q "$service")" | tr -d /)")
done
node tests/deploy/kill-resume.js "$base" "${gateways[@]}"

redis_container="$(compose ps -q redis)"
[ "$(docker exec "$redis_container" redis-cli CONFIG GET appendonly | tail -n 1)" = "yes" ]
docker exec "$redis_container" test -d /data/appendonlydir
volume="${project}_redis-data"
docker volume inspect "$volume" >/dev/null
compose down -v --remove-orphans >/dev/null 2>&1
compose_up=""
if docker volume inspect "$volume" >/dev/null 2>&1; then echo "volume $volume left after down -v" >&2; exit 1; fi
step "compose: passed"

# ---- 5. the Helm chart -------------------------------------------------------------
step "helm chart: render, lint, validate"
python3 tests/deploy/chart_check.py --out "$work/chart" --image "$image"
step "helm chart: the rendered containers in Docker"
python3 tests/deploy/run_manifests.py --manifests "$work/chart/run.json" --label "chat-gateway-deploy-test=$project"
step "passed"
