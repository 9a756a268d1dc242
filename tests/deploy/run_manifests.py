#!/usr/bin/env python3
"""The chart's rendered containers, run in Docker exactly as the manifests say.

    python3 tests/deploy/run_manifests.py --manifests DIR/run.json --label KEY=VALUE

Takes the objects chart_check.py rendered for its "run" case and starts each
Deployment's container the way a kubelet would: the manifest's image and command,
`envFrom` and `env` resolved from the rendered ConfigMap and Secret, the pod's user,
a read-only root filesystem, dropped capabilities and no privilege escalation,
emptyDirs as tmpfs and the agent ConfigMap as read-only files at its mountPath, on one
Docker network where each Service name resolves (network aliases). Then:

1. the bundled Redis and the gateway start; every probe of the manifests answers as
   the kubelet expects (httpGet 2xx/3xx, exec exit 0, tcpSocket connects); the agent
   file is mounted and named in /health, its tool in /status;
2. the KEDA metric: with no worker running (KEDA's zero replicas), the gauge the
   metrics-api trigger reads (its valueLocation in the gateway's /metrics, parsed as
   Prometheus text, through the Service's port its url names) rises by one with each
   waiting session; the worker starts (scale from zero), it returns to 0 and every
   waiting session is answered;
3. the seed 004 client chats through the gateway; the agent file's knowledge-base
   tool answers from the mounted document; what each ServiceMonitor would
   scrape (/metrics through the Service's port) parses as Prometheus text;
4. termination as the kubelet does it: the preStop hook, then SIGTERM with the rest of
   terminationGracePeriodSeconds: both drain and exit 0 in time.

Every container and the network carry --label and are removed at the end.
"""

import argparse
import contextlib
import json
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

ROOT = pathlib.Path(__file__).resolve().parents[2]
WAITING_SESSIONS = 6


def docker(*args, check=True):
    done = subprocess.run(["docker", *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise SystemExit(f"docker {' '.join(args[:3])} ... failed: {done.stderr.strip()}")
    return done.stdout.strip()


def fail(message):
    raise SystemExit(f"run_manifests FAILED: {message}")


def wait_for(what, predicate, timeout=30.0, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class Cluster:
    """The rendered objects, and the containers started from them."""

    def __init__(self, objects, label):
        self.objects = objects
        self.label = label
        self.network = f"chat-deploy-{label.split('=', 1)[1]}"
        self.files = pathlib.Path(tempfile.mkdtemp(prefix="chart-run-"))
        self.files.chmod(0o755)
        self.containers = {}

    def find(self, kind, suffix=""):
        found = [o for o in self.objects if o["kind"] == kind and o["metadata"]["name"].endswith(suffix)]
        if len(found) != 1:
            fail(f"expected one {kind} *{suffix}, found {len(found)}")
        return found[0]

    def config_map(self, name):
        return next(o for o in self.objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == name)["data"]

    def secret(self, name):
        found = [o for o in self.objects if o["kind"] == "Secret" and o["metadata"]["name"] == name]
        return found[0].get("stringData", {}) if found else None

    def env_of(self, container):
        """envFrom, then env (later entries win, as in Kubernetes)."""
        env = {}
        for source in container.get("envFrom", []):
            env.update(self.config_map(source["configMapRef"]["name"]))
        for entry in container.get("env", []):
            if "value" in entry:
                env[entry["name"]] = entry["value"]
                continue
            ref = entry["valueFrom"]
            if "secretKeyRef" in ref:
                key_ref, data = ref["secretKeyRef"], self.secret(ref["secretKeyRef"]["name"])
            else:
                key_ref, data = ref["configMapKeyRef"], self.config_map(ref["configMapKeyRef"]["name"])
            if data is None or key_ref["key"] not in data:
                if key_ref.get("optional"):
                    continue
                fail(f"{entry['name']}: {key_ref['name']}/{key_ref['key']} does not exist")
            env[entry["name"]] = data[key_ref["key"]]
        return env

    def volume_args(self, pod, container):
        args = []
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            if "emptyDir" in volume:
                uid = pod["securityContext"].get("fsGroup", pod["securityContext"].get("runAsUser", 0))
                args += ["--tmpfs", f"{mount['mountPath']}:uid={uid},gid={uid},mode=0770"]
            elif "configMap" in volume:
                data = self.config_map(volume["configMap"]["name"])
                items = volume["configMap"].get("items") or [{"key": k, "path": k} for k in data]
                root = self.files / volume["configMap"]["name"]
                for item in items:
                    path = root / item["path"]
                    path.parent.mkdir(parents=True, exist_ok=True)
                    for parent in [path.parent, *path.parent.parents]:
                        if parent == self.files.parent:
                            break
                        parent.chmod(0o755)
                    path.write_text(data[item["key"]])
                    path.chmod(0o644)
                args += ["-v", f"{root}:{mount['mountPath']}:ro"]
            else:
                fail(f"volume {mount['name']}: only emptyDir and configMap are run here")
        return args

    def start(self, deployment_suffix, aliases=()):
        deployment = self.find("Deployment", deployment_suffix)
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        sec, pod_sec = container.get("securityContext", {}), pod.get("securityContext", {})
        user = sec.get("runAsUser", pod_sec.get("runAsUser"))
        group = sec.get("runAsGroup", pod_sec.get("runAsGroup", user))
        name = f"{self.network}-{container['name']}"
        args = ["run", "-d", "--name", name, "--label", self.label, "--network", self.network,
                "--network-alias", container["name"]]
        for alias in aliases:
            args += ["--network-alias", alias]
        if user is not None:
            args += ["--user", f"{user}:{group}"]
        if sec.get("readOnlyRootFilesystem"):
            args.append("--read-only")
        if "ALL" in sec.get("capabilities", {}).get("drop", []):
            args += ["--cap-drop", "ALL"]
        if sec.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        for key, value in self.env_of(container).items():
            args += ["-e", f"{key}={value}"]
        for port in container.get("ports", []):
            args += ["-p", f"127.0.0.1::{port['containerPort']}"]
        args += self.volume_args(pod, container)
        command = container.get("command") or []
        if command:
            args += ["--entrypoint", command[0]]
        args.append(container["image"])
        args += command[1:] + container.get("args", [])
        docker(*args)
        self.containers[container["name"]] = name
        return Started(self, name, container, pod)

    def close(self):
        for name in self.containers.values():
            docker("rm", "-f", name, check=False)
        docker("network", "rm", self.network, check=False)
        subprocess.run(["rm", "-rf", str(self.files)])


class Started:
    """A running container and what its manifest says about it."""

    def __init__(self, cluster, name, container, pod):
        self.cluster, self.name, self.container, self.pod = cluster, name, container, pod

    def host_port(self, port):
        if isinstance(port, str):
            port = next(p["containerPort"] for p in self.container["ports"] if p["name"] == port)
        return int(docker("port", self.name, f"{port}/tcp").splitlines()[0].rsplit(":", 1)[1])

    def probe(self, kind):
        """One probe as the kubelet runs it: True when it succeeds."""
        spec = self.container[kind]
        if "httpGet" in spec:
            url = f"http://127.0.0.1:{self.host_port(spec['httpGet']['port'])}{spec['httpGet']['path']}"
            try:
                with urllib.request.urlopen(url, timeout=spec.get("timeoutSeconds", 1)) as answer:
                    return 200 <= answer.status < 400
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                return False
        if "exec" in spec:
            return subprocess.run(["docker", "exec", self.name, *spec["exec"]["command"]], capture_output=True).returncode == 0
        if "tcpSocket" in spec:
            try:
                socket.create_connection(("127.0.0.1", self.host_port(spec["tcpSocket"]["port"])), timeout=1).close()
                return True
            except OSError:
                return False
        fail(f"{kind}: unknown probe {spec}")

    def wait_probes(self):
        """startupProbe first (as the kubelet), then liveness and readiness."""
        kinds = [k for k in ("startupProbe", "livenessProbe", "readinessProbe") if k in self.container]
        for kind in kinds:
            spec = self.container[kind]
            budget = spec.get("periodSeconds", 10) * spec.get("failureThreshold", 3)
            wait_for(f"{self.container['name']} {kind}", lambda: self.probe(kind) or self.exited(), timeout=max(budget, 5))
            if self.exited():
                fail(f"{self.name} exited: {docker('logs', '--tail', '30', self.name, check=False)}")
        return kinds

    def exited(self):
        return docker("inspect", "-f", "{{.State.Running}}", self.name) != "true"

    def stop_gracefully(self):
        """Pod termination as the kubelet does it: the preStop hook, then SIGTERM, then
        SIGKILL when the grace period (counted from the start) runs out."""
        grace = self.pod["terminationGracePeriodSeconds"]
        started = time.monotonic()
        pre_stop = self.container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command")
        if pre_stop:
            hook = subprocess.run(["docker", "exec", self.name, *pre_stop], capture_output=True, text=True, timeout=grace)
            if hook.returncode != 0:
                fail(f"{self.name}: preStop {pre_stop} failed: {hook.stderr.strip()}")
        left = max(1, int(grace - (time.monotonic() - started)))
        docker("stop", "-t", str(left), self.name)
        took = time.monotonic() - started
        code = int(docker("inspect", "-f", "{{.State.ExitCode}}", self.name))
        if code != 0:
            fail(f"{self.name} exited {code} on SIGTERM: {docker('logs', '--tail', '20', self.name, check=False)}")
        return took, grace, pre_stop


def backlog(gateway, trigger):
    """The figure KEDA's metrics-api trigger reads: the gauge named valueLocation in the
    Prometheus text the gateway serves at the trigger url's path."""
    path = urllib.parse.urlsplit(trigger["url"]).path
    text = urllib.request.urlopen(f"http://127.0.0.1:{gateway.host_port('http')}{path}", timeout=5).read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == trigger["valueLocation"] and not sample.labels:
                return int(sample.value)
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifests", required=True, type=pathlib.Path)
    parser.add_argument("--label", required=True)
    args = parser.parse_args()
    cluster = Cluster(json.loads(args.manifests.read_text()), args.label)
    docker("network", "create", "--label", args.label, cluster.network)
    try:
        run(cluster)
    except BaseException:
        for name in cluster.containers.values():
            print(f"--- {name} (last 30 log lines)", file=sys.stderr)
            print(docker("logs", "--tail", "30", name, check=False), file=sys.stderr)
        raise
    finally:
        cluster.close()


def run(cluster):
    config = cluster.find("ConfigMap", "chat-gateway")["data"]
    gateway_image = cluster.find("Deployment", "-gateway")["spec"]["template"]["spec"]["containers"][0]["image"]
    redis_service = cluster.find("Service", "-redis")["metadata"]["name"]
    scaled = cluster.find("ScaledObject")
    trigger = scaled["spec"]["triggers"][0]["metadata"]

    redis = cluster.start("-redis", aliases=[redis_service])
    print(f"chart run: redis probes {redis.wait_probes()} answered")
    # The LLM the run case points at (llm.baseUrl http://mock-llm:8090/v1): not part of the chart.
    docker("run", "-d", "--name", f"{cluster.network}-mock-llm", "--label", cluster.label, "--network", cluster.network,
           "--network-alias", "mock-llm", "--read-only", "--user", "65532:65532", "--entrypoint", "/usr/local/bin/mock-llm",
           gateway_image, "--host", "0.0.0.0", "--port", "8090", "--token-delay-ms", "5")
    cluster.containers["mock-llm"] = f"{cluster.network}-mock-llm"

    gateway = cluster.start("-gateway")
    print(f"chart run: gateway probes {gateway.wait_probes()} answered (user {docker('exec', gateway.name, 'id', '-u')}, read-only root)")
    if subprocess.run(["docker", "exec", gateway.name, "touch", "/x"], capture_output=True).returncode == 0:
        fail("the gateway's root filesystem is writable")
    agent_path = next(e["value"] for e in gateway.container["env"] if e["name"] == "AGENT_FILE")
    agent_config = cluster.config_map(cluster.find("ConfigMap", "-agent")["metadata"]["name"])
    if docker("exec", gateway.name, "cat", agent_path) != agent_config["agent.yaml"].rstrip("\n"):
        fail("the mounted agent file differs from the ConfigMap")
    kb = docker("exec", gateway.name, "cat", str(pathlib.Path(agent_path).parent / "kb/hours.md"))
    if kb != agent_config["kb-hours.md"].rstrip("\n"):
        fail("the mounted knowledge-base document differs from the ConfigMap")
    health = json.load(urllib.request.urlopen(f"http://127.0.0.1:{gateway.host_port('http')}/health"))
    if health["agent"] != "Chart Agent":
        fail(f"/health names agent {health['agent']!r}, not the mounted agent file's")
    print(f"chart run: agent file mounted read-only at {agent_path}; /health agent {health['agent']!r}")

    # 2. The KEDA metric, before any worker ever ran.
    service = cluster.find("Service", "-chat-gateway")
    host = urllib.parse.urlsplit(trigger["url"])
    if not host.hostname.startswith(service["metadata"]["name"] + ".") or host.port != service["spec"]["ports"][0]["port"]:
        fail(f"trigger url {trigger['url']} is not the gateway Service {service['metadata']['name']}")
    first = backlog(gateway, trigger)
    if first is None:
        fail(f"no {trigger['valueLocation']} on the gateway's {host.path} before the first worker: KEDA could not scale from zero")
    lags = [first]
    sockets, stack = [], contextlib.ExitStack()
    ws_base = f"ws://127.0.0.1:{gateway.host_port('http')}"
    for n in range(1, WAITING_SESSIONS + 1):
        sock = stack.enter_context(connect(f"{ws_base}/ws/keda-{n}-{time.time_ns()}", open_timeout=10))
        sock.send(json.dumps({"message": f"waiting question {n}"}))
        sockets.append(sock)
        lags.append(wait_for(f"backlog {n}", lambda: backlog(gateway, trigger) == n and n))
    wanted = -(-lags[-1] // int(trigger["targetValue"]))
    print(f"chart run: {trigger['valueLocation']} with no worker, one session more each time: {lags}"
          f" (KEDA: active above {trigger['activationTargetValue']}, wants {wanted} workers at targetValue {trigger['targetValue']})")

    worker = cluster.start("-worker")
    print(f"chart run: worker probes {worker.wait_probes()} answered")
    for n, sock in enumerate(sockets, 1):
        frames = []
        while not any(f.get("type") == "assistant" for f in frames):
            frames.append(json.loads(sock.recv(timeout=30)))
        answer = next(f["message"] for f in frames if f["type"] == "assistant")
        if not answer.startswith(f'Reply 1 to "waiting question {n}"'):
            fail(f"session {n} got {answer!r}")
    stack.close()
    wait_for("backlog back to 0", lambda: backlog(gateway, trigger) == 0, timeout=30)
    print(f"chart run: the worker answered all {WAITING_SESSIONS} waiting sessions; {trigger['valueLocation']} back to 0")

    # 3. A chat through the rendered containers, with the seed's own client.
    base = f"http://127.0.0.1:{gateway.host_port('http')}"
    chat = subprocess.run(["node", str(ROOT / "tests/seeds/run-streaming.js"), base, "What are your blood test hours?",
                           "What about Saturday?"], capture_output=True, text=True, timeout=120)
    if chat.returncode != 0:
        fail(f"seed 004 client: {chat.stderr[-2000:]}")
    result = json.loads(chat.stdout.removeprefix("RESULT "))
    first, second = result["responses"]
    if not (first.startswith('Reply 1 to "What are your blood test hours?"')
            and second.startswith('Reply 2 to "What about Saturday?" after 1 earlier user and 1 assistant messages.')):
        fail(f"seed 004 client got {result['responses']}")
    print("chart run: the seed 004 client chatted through the rendered gateway and worker")

    # 3a. The agent file's knowledge-base tool over the mounted document: the mock LLM
    # calls the tool a [mock:tool=NAME] directive names, then quotes its result.
    status = json.load(urllib.request.urlopen(f"{base}/status"))
    tools = [t["name"] for t in status.get("agent", {}).get("tools", [])]
    if tools != ["clinic_hours"]:
        fail(f"/status lists tools {tools}, not the agent file's")
    request = urllib.request.Request(f"{base}/api/create-session", data=b"{}", method="POST",
                                     headers={"content-type": "application/json"})
    session = json.load(urllib.request.urlopen(request))["session_id"]
    with connect(f"{ws_base}/ws/{session}", open_timeout=10) as sock:
        sock.send(json.dumps({"message": "[mock:tool=clinic_hours] When are blood tests?"}))
        events = []
        while not (events and events[-1].get("status") == "ready" and any(e["type"] == "complete" for e in events)):
            events.append(json.loads(sock.recv(timeout=30)))
    called = [e["function_name"] for e in events if e["type"] == "function_called"]
    answer = next(e["full_response"] for e in events if e["type"] == "complete")
    if called != ["clinic_hours"] or agent_config["kb-hours.md"].strip() not in answer:
        fail(f"knowledge-base tool: called {called}, answer {answer!r}")
    print(f"chart run: the agent's knowledge_base tool answered from the mounted kb/hours.md: {answer[:60]!r}...")

    # 3b. What each ServiceMonitor scrapes: Service port -> container port -> path.
    started_by_component = {"gateway": gateway, "worker": worker}
    for monitor in [o for o in cluster.objects if o["kind"] == "ServiceMonitor"]:
        selector = monitor["spec"]["selector"]["matchLabels"]
        (service,) = [o for o in cluster.objects if o["kind"] == "Service"
                      and selector.items() <= o["metadata"]["labels"].items()]
        for endpoint in monitor["spec"]["endpoints"]:
            (port,) = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
            target = started_by_component[service["spec"]["selector"]["app.kubernetes.io/component"]]
            url = f"http://127.0.0.1:{target.host_port(port['targetPort'])}{endpoint['path']}"
            text = urllib.request.urlopen(url, timeout=5).read().decode()
            families = [f.name for f in text_string_to_metric_families(text) if f.name.startswith("chat_")]
            if not families:
                fail(f"{monitor['metadata']['name']}: {url} has no chat_ metrics")
            print(f"chart run: {monitor['metadata']['name']} scrapes {endpoint['path']} on Service port "
                  f"{port['name']}: {len(families)} chat_ families parsed by prometheus_client")

    # 4. SIGTERM within the pods' grace periods.
    for started in (gateway, worker):
        took, grace, pre_stop = started.stop_gracefully()
        hook = f"preStop {' '.join(pre_stop)}, then " if pre_stop else ""
        print(f"chart run: {started.container['name']} stopped ({hook}SIGTERM) in {took:.1f} s of its {grace} s grace period, exit 0")


if __name__ == "__main__":
    sys.exit(main())
