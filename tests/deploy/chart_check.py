#!/usr/bin/env python3
"""The Helm chart, rendered and validated with no helm binary and no cluster.

    python3 tests/deploy/chart_check.py --out DIR --image REPOSITORY:TAG

Renders helm/chat-gateway with `helm-python-sdk` (Helm 4 as a library) with the
defaults and with each option on, lints it strictly, and checks every manifest:
yamllint; `kubernetes-validate --strict -k 1.30.0` for the built-in kinds; the KEDA
`ScaledObject` and the `ServiceMonitor` against their published models
(tests/deploy/validate-crds.mjs: their schemas, then their TypeScript types for
unknown fields), which must also refuse broken copies of them. Then what the chart promises: the trigger reads
the inbox backlog gauge the code serves (its name read from shared/src) from the gateway Service's /metrics; no
replica count fights an autoscaler; pods run non-root on a read-only root; grace
periods are longer than the drains; `checksum/config` changes exactly when the
configuration does; values.schema.json rejects bad values; a chart with no Redis
fails with one clear line. Writes each case's manifests to DIR/<case>/ and the case
that scripts/deploy-test.sh runs in Docker to DIR/run/.
"""

import argparse
import copy
import json
import pathlib
import re
import subprocess
import sys

import helm_python as helm
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "chat-gateway"
RELEASE, NAMESPACE = "chat", "chat-test"
CRD_KINDS = {"ScaledObject", "ServiceMonitor"}

AGENT = """name: Chart Agent
system_prompt: |
  You answer questions about the clinic.
tools:
  - name: clinic_hours
    type: knowledge_base
    description: Opening hours of the clinic.
    documents: ./kb
"""

PLACEMENT = {
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "chat", "effect": "NoSchedule"}],
    "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
        "weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                           "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "chat-gateway"}}}}]}},
}

# Each option on, one case at a time; "run" is what the Docker step starts.
CASES = {
    "defaults": {},
    "external-redis": {"redis": {"url": "rediss://:s3cret@redis.example.com:6380"}, "worker": {"keda": {"enabled": True}}},
    "existing-secrets": {
        "redis": {"existingSecret": "redis-credentials"},
        "llm": {"existingSecret": "llm-credentials"},
        "auth": {"existingSecret": "jwt-credentials", "audience": "chat", "issuer": "https://id.example.com"},
    },
    "secrets-in-values": {
        "redis": {"url": "redis://:pw@redis:6379"},
        "llm": {"baseUrl": "https://integrate.api.nvidia.com/v1", "model": "meta/llama-3.1-8b-instruct", "apiKey": "nvapi-test"},
        "auth": {"jwtSecret": "x" * 40},
    },
    "gateway-autoscaling": {"gateway": {"autoscaling": {"enabled": True}, "pdb": {"enabled": True, "minAvailable": 1}}},
    "no-pdb": {"gateway": {"pdb": {"enabled": False}}},
    "ingress": {"ingress": {"enabled": True, "className": "nginx",
                            "hosts": [{"host": "chat.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}],
                            "tls": [{"hosts": ["chat.example.com"], "secretName": "chat-tls"}]}},
    "keda": {"worker": {"keda": {"enabled": True, "minReplicaCount": 0, "maxReplicaCount": 20,
                                 "lagCount": 3, "activationLagCount": 1}}},
    "worker-cpu-hpa": {"worker": {"autoscaling": {"enabled": True}}},
    "agent": {"agent": AGENT, "agentDocuments": {"hours.md": "Blood tests: 7:00-10:00."},
              "env": {"MAX_MESSAGE_CHARS": 4000, "TRUSTED_PROXIES": "10.0.0.0/8"}},
    "service-monitor": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
    "placement-and-names": {
        "fullnameOverride": "prod-chat-gateway", "imagePullSecrets": [{"name": "registry"}], "logLevel": "debug",
        "gateway": {"publicUrl": "https://chat.example.com", "service": {"type": "NodePort"},
                    **PLACEMENT, "podAnnotations": {"example.com/team": "chat"}},
        "worker": {"preStopSleepSeconds": 3, **PLACEMENT, "podAnnotations": {"example.com/team": "chat"}},
    },
    "run": {"agent": AGENT, "agentDocuments": {"hours.md": "Blood tests: 7:00-10:00."},
            "llm": {"baseUrl": "http://mock-llm:8090/v1", "model": "mock-model"},
            "worker": {"keda": {"enabled": True, "lagCount": 2}},
            "serviceMonitor": {"enabled": True},
            "env": {"WORKER_CLAIM_LEASE_MS": 30000}},
}

# Each must be refused by values.schema.json.
BAD_VALUES = {
    "replica count as text": {"gateway": {"replicaCount": "two"}},
    "negative replicas": {"worker": {"replicaCount": -1}},
    "lagCount 0": {"worker": {"keda": {"lagCount": 0}}},
    "lagCount as text": {"worker": {"keda": {"lagCount": "five"}}},
    "unknown top-level value": {"replicas": 3},
    "unknown gateway value": {"gateway": {"replicas": 3}},
    "redis url not redis://": {"redis": {"url": "http://redis:6379"}},
    "image repository not a string": {"image": {"repository": 5}},
    "ingress hosts not a list": {"ingress": {"hosts": "chat.example.com"}},
    "bad pathType": {"ingress": {"hosts": [{"host": "a", "paths": [{"path": "/", "pathType": "Everything"}]}]}},
    "short jwt secret": {"auth": {"jwtSecret": "short"}},
    "port out of range": {"gateway": {"port": 70000}},
    "env name with a dash": {"env": {"MY-VAR": "1"}},
    "key prefix with a brace": {"keyPrefix": "chat{x}"},
    "pull policy unknown": {"image": {"pullPolicy": "Sometimes"}},
    "serviceMonitor interval": {"serviceMonitor": {"interval": "often"}},
}


def merge(base, extra):
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def check(condition, message):
    if not condition:
        raise SystemExit(f"chart check FAILED: {message}")


def run(command):
    """Runs a validator; its own output says what is wrong."""
    if subprocess.run(command).returncode != 0:
        raise SystemExit(f"chart check FAILED: {command[0]} rejected the rendered manifests (above)")


def render(chart, values):
    return chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)


def documents(rendered):
    """(template, manifest text, parsed object) of every non-empty manifest."""
    docs = []
    for template, text in sorted(rendered.items()):
        if template.endswith("NOTES.txt"):
            continue
        for part in re.split(r"^---\s*$", text, flags=re.M):
            obj = yaml.safe_load(part)
            if obj:
                docs.append((template, part.strip() + "\n", obj))
    return docs


def code_facts():
    """The inbox backlog gauge's name as the Rust code defines it (shared/src)."""
    metrics = (ROOT / "shared/src/metrics.rs").read_text()
    backlog = re.search(r'pub const INBOX_BACKLOG: &str = "([^"]+)"', metrics).group(1)
    return {"backlog_metric": backlog}


def by_kind(docs, kind, name_suffix=""):
    return [o for _, _, o in docs if o["kind"] == kind and o["metadata"]["name"].endswith(name_suffix)]


def one(docs, kind, name_suffix=""):
    found = by_kind(docs, kind, name_suffix)
    check(len(found) == 1, f"expected one {kind} *{name_suffix}, found {len(found)}")
    return found[0]


def check_case(case, docs, facts):
    kinds = sorted(o["kind"] for _, _, o in docs)
    for _, _, obj in docs:
        labels = obj["metadata"].get("labels", {})
        for label in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by"):
            check(label in labels, f"{case}: {obj['kind']} {obj['metadata']['name']} lacks label {label}")
    gateway = one(docs, "Deployment", "-gateway")
    worker = one(docs, "Deployment", "-worker")
    config = one(docs, "ConfigMap", "chat-gateway")["data"]
    for deployment, port_name, ready_path in ((gateway, "http", "/health"), (worker, "probes", "/readyz")):
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        sec = container["securityContext"]
        check(pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == 65532, f"{case}: pod not UID 65532")
        check(sec["readOnlyRootFilesystem"] and not sec["allowPrivilegeEscalation"] and sec["capabilities"]["drop"] == ["ALL"],
              f"{case}: {container['name']} securityContext")
        check(container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": port_name}, f"{case}: liveness probe")
        check(container["readinessProbe"]["httpGet"] == {"path": ready_path, "port": port_name}, f"{case}: readiness probe")
        check(re.fullmatch(r"[0-9a-f]{64}", deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]),
              f"{case}: checksum/config")
        drain_var = "SHUTDOWN_GRACE_SECS" if container["name"] == "gateway" else "WORKER_SHUTDOWN_GRACE_SECS"
        pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", ["", "0"])
        check(pod["terminationGracePeriodSeconds"] > int(config[drain_var]) + int(pre_stop[1]),
              f"{case}: {container['name']} grace period not longer than preStop + drain")
    check(int(gateway["spec"]["template"]["spec"]["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][1]) > 0,
          f"{case}: gateway preStop")

    keda = by_kind(docs, "ScaledObject")
    hpas = {o["metadata"]["name"] for o in by_kind(docs, "HorizontalPodAutoscaler")}
    worker_hpa = any(n.endswith("-worker") for n in hpas)
    if keda:
        (so,) = keda
        (trigger,) = so["spec"]["triggers"]
        meta = trigger["metadata"]
        check(trigger["type"] == "metrics-api" and meta["format"] == "prometheus", f"{case}: trigger type")
        check(meta["valueLocation"] == facts["backlog_metric"],
              f"{case}: trigger reads {meta['valueLocation']}, the code's gauge is {facts['backlog_metric']}")
        service = one(docs, "Service", "-chat-gateway")
        port = service["spec"]["ports"][0]["port"]
        want_url = f"http://{service['metadata']['name']}.{NAMESPACE}.svc:{port}/metrics"
        check(meta["url"] == want_url, f"{case}: trigger url {meta['url']}, the gateway Service is {want_url}")
        check("targetValue" in meta and "activationTargetValue" in meta, f"{case}: backlog trigger")
        check(so["spec"]["scaleTargetRef"]["name"] == worker["metadata"]["name"], f"{case}: scale target")
        check("replicas" not in worker["spec"], f"{case}: worker replicas fight KEDA")
        check(not worker_hpa, f"{case}: a worker HPA beside KEDA")
    if worker_hpa:
        check("replicas" not in worker["spec"], f"{case}: worker replicas fight the HPA")
    if any(n.endswith("-gateway") for n in hpas):
        check("replicas" not in gateway["spec"], f"{case}: gateway replicas fight the HPA")
    return kinds


def expect(case, docs, facts, values):
    """Per-case expectations beyond the common ones."""
    kinds = {o["kind"] for _, _, o in docs}
    secrets = by_kind(docs, "Secret")
    if case == "defaults":
        check(kinds == {"ConfigMap", "Secret", "Deployment", "Service", "PodDisruptionBudget"}, f"defaults: kinds {kinds}")
        check(len(by_kind(docs, "Deployment", "-redis")) == 1, "defaults: bundled Redis")
        check(secrets[0]["stringData"]["redis-url"] == f"redis://{RELEASE}-chat-gateway-redis:6379", "defaults: redis url")
    if case == "external-redis":
        check(not by_kind(docs, "Deployment", "-redis"), "external-redis: bundled Redis still rendered")
        data = secrets[0]["stringData"]
        check(data["redis-url"] == "rediss://:s3cret@redis.example.com:6380", f"external-redis: {data}")
    if case == "existing-secrets":
        check(not secrets, "existing-secrets: the chart made a Secret")
        env = {e["name"]: e for e in one(docs, "Deployment", "-gateway")["spec"]["template"]["spec"]["containers"][0]["env"]}
        check(env["REDIS_URL"]["valueFrom"]["secretKeyRef"]["name"] == "redis-credentials", "existing-secrets: REDIS_URL")
        check(env["OPENAI_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "llm-credentials", "existing-secrets: key")
        check(env["JWT_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == "jwt-credentials", "existing-secrets: JWT")
        config = one(docs, "ConfigMap", "chat-gateway")["data"]
        check(config["JWT_AUDIENCE"] == "chat" and config["JWT_ISSUER"] == "https://id.example.com", "existing-secrets: aud/iss")
    if case == "secrets-in-values":
        data = secrets[0]["stringData"]
        check(data["openai-api-key"] == "nvapi-test" and data["jwt-secret"] == "x" * 40, "secrets-in-values: secret keys")
        check(not any("nvapi-test" in text for _, text, o in docs if o["kind"] != "Secret"), "secrets-in-values: key outside the Secret")
    if case == "ingress":
        ing = one(docs, "Ingress")
        check(ing["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "3600", "ingress: timeouts")
        check(ing["spec"]["ingressClassName"] == "nginx", "ingress: className")
    if case == "keda" or case == "run":
        check("ScaledObject" in kinds, f"{case}: no ScaledObject")
    if case == "worker-cpu-hpa":
        check(len(by_kind(docs, "HorizontalPodAutoscaler", "-worker")) == 1, "worker-cpu-hpa: no worker HPA")
    if case == "gateway-autoscaling":
        check(len(by_kind(docs, "HorizontalPodAutoscaler", "-gateway")) == 1, "gateway-autoscaling: no HPA")
    if case == "no-pdb":
        check("PodDisruptionBudget" not in kinds, "no-pdb: PDB rendered")
    if case in ("agent", "run"):
        agent = one(docs, "ConfigMap", "-agent")
        check(agent["data"]["agent.yaml"] == AGENT and "kb-hours.md" in agent["data"], f"{case}: agent ConfigMap")
        for name in ("-gateway", "-worker"):
            pod = one(docs, "Deployment", name)["spec"]["template"]["spec"]
            env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
            mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
            check(env["AGENT_FILE"] == mounts["agent"]["mountPath"] + "/agent.yaml" and mounts["agent"]["readOnly"], f"{case}: agent mount")
            if case == "agent":
                check(env["MAX_MESSAGE_CHARS"] == "4000", "agent: env value")
    if case == "placement-and-names":
        names = {o["metadata"]["name"] for _, _, o in docs}
        check(all(n.startswith("prod-chat-gateway") for n in names), f"{case}: fullnameOverride not used: {names}")
        check(one(docs, "Service", "-gateway")["spec"]["type"] == "NodePort", f"{case}: service type")
        config = one(docs, "ConfigMap", "chat-gateway")["data"]
        check(config["PUBLIC_URL"] == "https://chat.example.com" and config["RUST_LOG"] == "debug", f"{case}: {config}")
        for name, component in (("-gateway", "gateway"), ("-worker", "worker")):
            template = one(docs, "Deployment", name)["spec"]["template"]
            pod = template["spec"]
            check(pod["imagePullSecrets"] == [{"name": "registry"}], f"{case}: {name} imagePullSecrets")
            check(all(pod[key] == value for key, value in PLACEMENT.items()), f"{case}: {name} placement {pod}")
            check(template["metadata"]["annotations"]["example.com/team"] == "chat", f"{case}: {name} podAnnotations")
        worker_stop = one(docs, "Deployment", "-worker")["spec"]["template"]["spec"]["containers"][0]["lifecycle"]["preStop"]
        check(worker_stop["exec"]["command"] == ["/bin/sleep", "3"], f"{case}: worker preStop {worker_stop}")
    if case == "service-monitor":
        monitors = by_kind(docs, "ServiceMonitor")
        check(len(monitors) == 2 and all(m["spec"]["endpoints"][0]["path"] == "/metrics" for m in monitors), "service-monitor")
        check(all(m["metadata"]["labels"]["release"] == "prometheus" for m in monitors), "service-monitor: labels")


# Broken copies of the rendered custom resources, each of which the KEDA and Prometheus
# Operator models must refuse: proof that validate-crds.mjs checks what it says.
BAD_CRDS = {
    "ScaledObject targetValue as a number": ("keda", lambda o: o["spec"]["triggers"][0]["metadata"].update(targetValue=3)),
    "ScaledObject minReplicaCount as text": ("keda", lambda o: o["spec"].update(minReplicaCount="zero")),
    "ScaledObject trigger without type": ("keda", lambda o: o["spec"]["triggers"][0].pop("type")),
    "ScaledObject without scaleTargetRef": ("keda", lambda o: o["spec"].pop("scaleTargetRef")),
    "ScaledObject misspelt field minReplicas": ("keda", lambda o: o["spec"].update(minReplicas=1)),
    "ScaledObject misspelt trigger field metaData": ("keda", lambda o: o["spec"]["triggers"][0].update(metaData={})),
    "ServiceMonitor endpoints not a list": ("service-monitor", lambda o: o["spec"].update(endpoints=o["spec"]["endpoints"][0])),
    "ServiceMonitor misspelt endpoint field paths": ("service-monitor", lambda o: o["spec"]["endpoints"][0].update(paths="/metrics")),
}


def validate_crds(crds, bad_dir, rendered_dir):
    """validate-crds.mjs, in one run (its TypeScript pass is the slow part), on the
    rendered custom resources and on every BAD_CRDS mutation of them: it must exit 1
    and name exactly the broken files (it reports each invalid file)."""
    bad_dir.mkdir(parents=True, exist_ok=True)
    bad = {}
    for n, (what, (case, mutate)) in enumerate(BAD_CRDS.items()):
        kind = "scaledobject" if what.startswith("ScaledObject") else "servicemonitor"
        source = sorted((rendered_dir / case).glob(f"*-{kind}-*.yaml"))[0]
        obj = yaml.safe_load(source.read_text())
        mutate(obj)
        path = bad_dir / f"{n:02d}-{kind}.yaml"
        path.write_text(yaml.safe_dump(obj))
        bad[str(path)] = what
    done = subprocess.run(["node", str(ROOT / "tests/deploy/validate-crds.mjs"), *crds, *bad], capture_output=True, text=True)
    reported = {line.split(":", 1)[0] for line in done.stderr.splitlines()}
    rendered_refused = sorted(reported & set(crds))
    if rendered_refused:
        print(done.stderr, file=sys.stderr)
        raise SystemExit(f"chart check FAILED: validate-crds.mjs refused rendered manifests {rendered_refused} (above)")
    check(done.returncode == 1, f"validate-crds.mjs exited {done.returncode} on broken objects: {done.stderr.strip()}")
    accepted = [what for path, what in bad.items() if path not in reported]
    check(not accepted, f"validate-crds.mjs accepted {accepted}: {done.stderr.strip()}")
    return len(bad)


def leaf_keys(values, prefix=""):
    """Dotted names of every value in values.yaml (maps that are values themselves stop)."""
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and not name.endswith(("resources", "annotations", "image", "service", "pdb")):
            yield from leaf_keys(value, name + ".")
        else:
            yield name


def checksum_of(chart, values):
    docs = documents(render(chart, values))
    return [o["spec"]["template"]["metadata"]["annotations"]["checksum/config"] for _, _, o in docs if o["kind"] == "Deployment"
            and not o["metadata"]["name"].endswith("-redis")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=pathlib.Path)
    parser.add_argument("--image", required=True, help="REPOSITORY:TAG the run case renders (the image just built)")
    args = parser.parse_args()
    repository, tag = args.image.rsplit(":", 1)
    CASES["run"]["image"] = {"repository": repository, "tag": tag, "pullPolicy": "Never"}
    facts = code_facts()
    helm.disable_logging()  # the library logs every `fail` it renders; the checks say what matters
    chart = helm.Chart.load(str(CHART))
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())

    readme = (CHART / "README.md").read_text()
    undocumented = [k for k in leaf_keys(defaults) if f"`{k}" not in readme and f"`{k.rsplit('.', 1)[-1]}`" not in readme]
    check(not undocumented, f"values missing from helm/chat-gateway/README.md: {undocumented}")

    lint = helm.lint(str(CHART), strict=True, kube_version="1.30.0")
    check(not lint["errors"] and not [m for m in lint["messages"] if m["severity"] > 1], f"helm lint --strict: {lint}")

    standard, crds = [], []
    for case, values in CASES.items():
        lint = helm.lint(str(CHART), values, strict=True, kube_version="1.30.0")
        check(not lint["errors"] and not [m for m in lint["messages"] if m["severity"] > 1], f"{case}: helm lint --strict: {lint}")
        rendered = render(chart, values)
        docs = documents(rendered)
        out = args.out / case
        out.mkdir(parents=True, exist_ok=True)
        for n, (template, text, obj) in enumerate(docs):
            path = out / f"{n:02d}-{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"
            path.write_text(text)
            (crds if obj["kind"] in CRD_KINDS else standard).append(str(path))
        kinds = check_case(case, docs, facts)
        expect(case, docs, facts, values)
        notes = rendered["chat-gateway/templates/NOTES.txt"]
        check(f"release {RELEASE} in namespace {NAMESPACE}" in notes, f"{case}: NOTES.txt: {notes}")
        if case == "defaults":
            check(f"port-forward service/{RELEASE}-chat-gateway 8002:80" in notes and "bundled" in notes, f"NOTES.txt: {notes}")
        if case == "keda":
            check(f"scaled by KEDA on the gateway's {facts['backlog_metric']}" in notes,
                  f"keda: NOTES.txt: {notes}")
        print(f"chart[{case}]: {len(docs)} manifests: {', '.join(kinds)}")
        if case == "run":
            (args.out / "run.json").write_text(json.dumps([o for _, _, o in docs], indent=1))

    run(["yamllint", "-s", "-c", str(ROOT / ".yamllint.yml"), *standard, *crds])
    run(["kubernetes-validate", "--strict", "--quiet", "-k", "1.30.0", *standard])
    refused = validate_crds(crds, args.out / "bad-crds", args.out)
    print(f"chart: {len(standard)} manifests valid for Kubernetes 1.30 (strict), {len(crds)} KEDA/Prometheus Operator objects"
          f" valid; validate-crds.mjs refused all {refused} broken copies of the rendered ScaledObject and ServiceMonitor")

    base = checksum_of(chart, CASES["run"])
    check(base == checksum_of(chart, CASES["run"]), "checksum/config is not stable")
    for change in ({"llm": {"model": "other"}}, {"agent": AGENT + "max_tool_rounds: 2\n"}, {"llm": {"apiKey": "sk-new"}}):
        changed = checksum_of(chart, merge(CASES["run"], change))
        check(all(a != b for a, b in zip(base, changed)), f"checksum/config did not change with {change}")
    check(checksum_of(chart, merge(CASES["run"], {"gateway": {"replicaCount": 5}})) == base,
          "checksum/config changed with a value that is no configuration")
    print("chart: checksum/config changes with the settings, the Secret and the agent file, and only then")

    for what, values in BAD_VALUES.items():
        try:
            chart.validate_schema(merge(defaults, values))
        except helm.HelmValuesError:
            pass
        else:
            raise SystemExit(f"chart check FAILED: values.schema.json accepted {what}: {values}")
        try:
            render(chart, values)
        except helm.HelmValuesError:
            continue
        raise SystemExit(f"chart check FAILED: render accepted {what}: {values}")
    try:
        render(chart, {"redis": {"bundled": {"enabled": False}}})
    except helm.HelmRenderError as error:
        check("set redis.url, redis.existingSecret or redis.bundled.enabled=true" in str(error), f"no-Redis error: {error}")
    else:
        raise SystemExit("chart check FAILED: a chart with no Redis rendered")
    try:
        render(chart, {"auth": {"issuer": "https://id.example.com"}})
    except helm.HelmRenderError as error:
        check("auth.audience and auth.issuer need auth.jwtSecret" in str(error), f"issuer without key: {error}")
    else:
        raise SystemExit("chart check FAILED: auth.issuer without a key rendered")
    print(f"chart: values.schema.json rejected all {len(BAD_VALUES)} bad values; no Redis, or an issuer with no key,"
          " fails with one line")


if __name__ == "__main__":
    sys.exit(main())
