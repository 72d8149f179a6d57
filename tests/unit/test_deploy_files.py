"""deploy/: the compose file, the Dockerfile and the Kubernetes manifests, checked for
structure here since no Docker engine or cluster runs on these machines; the manifests
are validated by kubeconform against the Kubernetes JSON schemas, offline."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.prom_helpers import DEPLOY, PROMETHEUS_DIR, REPO, run, tool

pytestmark = pytest.mark.unit

K8S = DEPLOY / "k8s"
MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
KUBERNETES_VERSION = "1.33.0"
NON_ROOT_UID = 10001


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose["services"]
    return services


# --- compose -----------------------------------------------------------------------------


def test_compose_services_and_images(compose: dict[str, Any]) -> None:
    s = _services(compose)
    assert set(s) == {"kafka", "topics", "worker", "gateway", "api", "cli", "prometheus",
                      "grafana"}  # fmt: skip
    assert s["kafka"]["image"].startswith("apache/kafka:")
    assert s["prometheus"]["image"].startswith("prom/prometheus:")
    assert s["grafana"]["image"].startswith("grafana/grafana:")
    for name in ("topics", "worker", "gateway", "api", "cli"):
        assert s[name]["image"] == "tangxia-engine:latest", name
        assert s[name]["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        assert s[name]["environment"]["ENGINE_KAFKA_BOOTSTRAP"] == "kafka:9092"
    for image in (svc["image"] for svc in s.values()):
        assert not image.endswith(":latest") or image.startswith("tangxia-engine")


def test_compose_kafka_is_kraft(compose: dict[str, Any]) -> None:
    kafka = _services(compose)["kafka"]
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert not any("ZOOKEEPER" in key for key in env)
    assert "kafka-data:/var/lib/kafka/data" in kafka["volumes"]


def test_compose_workers_gateway_api(compose: dict[str, Any]) -> None:
    s = _services(compose)
    worker = s["worker"]
    assert worker["command"] == ["worker"]
    replicas = worker["deploy"]["replicas"]
    assert replicas == 2
    assert replicas <= int(worker["environment"]["ENGINE_PARTITIONS"])
    assert "ports" not in worker  # two replicas cannot share a host port
    assert worker["expose"] == ["9101"]
    gateway = s["gateway"]
    assert gateway["command"][:3] == ["gateway", "--device", "/dev/ttyUSB0"]
    assert any(d.endswith(":/dev/ttyUSB0") for d in gateway["devices"])
    assert "dialout" in gateway["group_add"]
    assert gateway["expose"] == ["9102"]
    api = s["api"]
    assert api["profiles"] == ["api"]  # placeholder until `engine api` exists
    assert "8080:8080" in api["ports"]
    assert s["topics"]["command"] == ["topics", "ensure"]
    for name in ("worker", "gateway", "api"):
        assert s[name]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert s["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_compose_health_checks(compose: dict[str, Any]) -> None:
    s = _services(compose)
    ports = {"worker": "9101", "gateway": "9102", "api": "8080", "prometheus": "9090",
             "grafana": "3000"}  # fmt: skip
    for name, port in ports.items():
        test = " ".join(s[name]["healthcheck"]["test"])
        assert f"127.0.0.1:{port}/" in test, name
    assert "kafka-broker-api-versions.sh" in " ".join(s["kafka"]["healthcheck"]["test"])


def test_compose_volumes_and_provisioning(compose: dict[str, Any]) -> None:
    s = _services(compose)
    named = set(compose["volumes"])
    for name, svc in s.items():
        for volume in svc.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source}"
            else:
                assert source in named, f"{name}: {source}"
            assert target.startswith("/")
    assert "./prometheus:/etc/prometheus:ro" in s["prometheus"]["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in s["prometheus"]["command"]
    grafana = s["grafana"]["volumes"]
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in grafana
    assert "./grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana
    assert "gateway-state:/srv/engine/state" in s["gateway"]["volumes"]


def test_compose_has_no_default_secrets_and_binds_dashboards_to_loopback(
    compose: dict[str, Any],
) -> None:
    s = _services(compose)
    assert s["prometheus"]["ports"] == ["127.0.0.1:9090:9090"]
    assert s["grafana"]["ports"] == ["127.0.0.1:3000:3000"]
    assert "--web.enable-lifecycle" not in s["prometheus"]["command"]
    grafana = s["grafana"]["environment"]
    assert "GF_SECURITY_ADMIN_PASSWORD" not in grafana  # never a value, only a file
    assert grafana["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"
    assert compose["secrets"]["grafana_admin_password"]["file"].startswith("./secrets/")
    gateway = s["gateway"]["environment"]
    assert gateway["ENGINE_RADIO_REPLY_KEY_FILE"] == "/run/secrets/radio_reply_key"
    assert gateway["ENGINE_DATA_DIR"] == "/srv/engine/state"  # the sent log on its volume
    text = (DEPLOY / "compose.yaml").read_text()
    assert ":-admin}" not in text and "CHANGE-ME" not in text
    assert "deploy/secrets/" in (REPO / ".gitignore").read_text()


def test_prometheus_scrapes_what_compose_runs(compose: dict[str, Any]) -> None:
    s = _services(compose)
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    for job in config["scrape_configs"]:
        if job["job_name"] == "prometheus":
            continue
        for sd in job.get("dns_sd_configs", []):
            for host in sd["names"]:
                assert str(sd["port"]) in s[host]["expose"]
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.split(":")
                exposed = s[host].get("expose", []) + [
                    p.split(":")[-1] for p in s[host].get("ports", [])
                ]
                assert port in exposed, target


# --- Dockerfile --------------------------------------------------------------------------


def _dockerfile() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_multistage_slim_non_root() -> None:
    lines = _dockerfile()
    froms = [rest for word, rest in lines if word == "FROM"]
    assert len(froms) == 2
    assert all(re.match(r"python:\$\{PYTHON_VERSION\}-slim", f) for f in froms)
    assert [f.split(" AS ")[-1] for f in froms] == ["build", "runtime"]
    last_from = max(i for i, (w, _) in enumerate(lines) if w == "FROM")
    final = lines[last_from:]
    users = [rest for word, rest in final if word == "USER"]
    assert users == [f"{NON_ROOT_UID}:{NON_ROOT_UID}"]
    assert ("COPY", "--from=build /opt/engine /opt/engine") in final
    assert not any(w == "RUN" and "pip install" in r for w, r in final)  # built, not here
    assert ("ENTRYPOINT", '["engine"]') in final
    exposed = " ".join(rest for word, rest in final if word == "EXPOSE").split()
    assert exposed == ["9101", "9102", "8080"]


def test_dockerfile_copies_exist_and_pass_the_dockerignore() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    allowed = [p[1:].rstrip("/") for p in ignore if p.startswith("!")]
    for word, rest in _dockerfile():
        if word != "COPY" or "--from=" in rest:
            continue
        sources = [a for a in rest.split() if not a.startswith("--")][:-1]
        for src in sources:
            assert (REPO / src).exists(), src
            assert any(src == a or src.startswith(a + "/") for a in allowed), src


# --- Kubernetes --------------------------------------------------------------------------


def _docs() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in MANIFESTS:
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def _one(kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in _docs() if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in MANIFESTS)
    assert {d["metadata"].get("namespace", "tangxia-engine") for d in _docs()} == {"tangxia-engine"}


def test_worker_replicas_within_partitions_and_ready_on_kafka() -> None:
    config = _one("ConfigMap", "engine-config")["data"]
    worker = _one("Deployment", "engine-worker")
    assert 1 <= worker["spec"]["replicas"] <= int(config["ENGINE_PARTITIONS"])
    (container,) = worker["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["worker"]
    probe = " ".join(container["readinessProbe"]["exec"]["command"])
    assert "engine.kafka.connection import probe" in probe
    assert worker["spec"]["template"]["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true", "prometheus.io/port": "9101",
        "prometheus.io/path": "/metrics",
    }  # fmt: skip


def test_gateway_pinned_to_the_serial_node() -> None:
    gateway = _one("Deployment", "engine-gateway")
    spec = gateway["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    pod = spec["template"]["spec"]
    assert pod["nodeSelector"] == {"tangxia.engine/radio-modem": "ttyUSB0"}
    (container,) = pod["containers"]
    assert "/dev/ttyUSB0" in container["args"]
    # only its device (a device plugin's resource), not privileged, not root, read-only
    assert container["resources"]["limits"]["smarter-devices/ttyUSB0"] == 1
    assert not any("hostPath" in v and v["name"] == "modem" for v in pod["volumes"])
    sc = container["securityContext"]
    assert sc["privileged"] is False and sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/srv/engine/state", "/tmp"} <= mounts  # the only writable places
    annotations = spec["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "9102"


def test_api_service_with_scrape_annotations() -> None:
    service = _one("Service", "engine-api")
    assert service["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert service["metadata"]["annotations"]["prometheus.io/port"] == "8080"
    assert service["spec"]["ports"][0]["port"] == 8080
    api = _one("Deployment", "engine-api")
    assert service["spec"]["selector"] == api["spec"]["selector"]["matchLabels"]
    assert api["spec"]["replicas"] == 0  # placeholder until `engine api` exists


def test_no_secret_is_deployed_and_each_role_has_its_own_principal() -> None:
    """Secrets are made out of band: none in the kustomization, no default password;
    the example shows one Kafka principal per role."""
    assert not [d for d in _docs() if d["kind"] == "Secret"]
    for path in [*MANIFESTS, K8S / "kustomization.yaml"]:
        text = path.read_text()
        assert "CHANGE-ME" not in text and "PASSWORD:" not in text, path
    examples = list(yaml.safe_load_all((K8S / "examples" / "secrets.example.yaml").read_text()))
    users = {d["metadata"]["name"]: d["stringData"] for d in examples}
    assert {users[f"engine-kafka-{r}"]["ENGINE_KAFKA_SASL_USERNAME"] for r in
            ("worker", "gateway", "api")} == {"worker", "gateway", "api"}  # fmt: skip
    assert all(not v.get("ENGINE_KAFKA_SASL_PASSWORD") for v in users.values())


def test_config_and_sasl_secret_reach_every_container() -> None:
    config = _one("ConfigMap", "engine-config")["data"]
    assert config["ENGINE_KAFKA_SECURITY_PROTOCOL"].startswith("SASL")
    assert not any("PASSWORD" in key for key in config)
    for doc in _docs():
        if doc["kind"] != "Deployment":
            continue
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsUser"] == NON_ROOT_UID
        role = doc["metadata"]["name"].removeprefix("engine-")
        for container in pod["containers"]:
            refs = {next(iter(r.values()))["name"] for r in container["envFrom"]}
            radio = {"engine-radio"} if role == "gateway" else set()
            assert refs == {"engine-config", f"engine-kafka-{role}", *radio}, role
            assert container["image"].startswith("tangxia-engine:")
            assert container["securityContext"].get("privileged") is not True


# --- kubeconform, offline ----------------------------------------------------------------


def _standalone_schemas(into: Path, kinds: set[tuple[str, str]]) -> str:
    """kubeconform's schema layout from the schemas the ``kubernetes-validate`` wheel
    ships (PyPI; GitHub is not reachable here): each kind's schema with the shared
    definitions inlined, so ``$ref`` resolves without the network."""
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or spec.origin is None:
        pytest.fail("kubernetes-validate is not installed: pip install kubernetes-validate",
                    pytrace=False)  # fmt: skip
    root = Path(spec.origin).parent / "kubernetes-json-schema"
    src = root / f"v{KUBERNETES_VERSION}-local-strict"
    assert src.is_dir(), f"kubernetes-validate has no schemas for {KUBERNETES_VERSION}"
    definitions = json.loads((src / "_definitions.json").read_text())["$defs"]
    out = into / f"v{KUBERNETES_VERSION}-standalone-strict"
    out.mkdir(parents=True)
    for kind, api_version in kinds:
        group, _, version = api_version.rpartition("/")
        suffix = f"-{group.split('.')[0]}-{version}" if group else f"-{version}"
        name = f"{kind.lower()}{suffix}.json"
        text = (src / name).read_text().replace('"/api/_definitions.json#/$defs/', '"#/$defs/')
        schema = json.loads(text)
        schema["$defs"] = definitions
        (out / name).write_text(json.dumps(schema))
    return (
        str(into)
        + "/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/"
        + ("{{ .ResourceKind }}{{ .KindSuffix }}.json")
    )


def _kubeconform(files: list[Path], schemas: Path) -> tuple[int, str]:
    kinds = set()
    for path in files:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                kinds.add((doc["kind"], doc["apiVersion"]))
    location = _standalone_schemas(schemas, kinds)
    binary = tool("kubeconform", "go install github.com/yannh/kubeconform/cmd/kubeconform@v0.8.0")
    return run(binary, "-strict", "-summary", "-kubernetes-version", KUBERNETES_VERSION,
               "-schema-location", location, *map(str, files))  # fmt: skip


def test_kubeconform_validates_the_manifests(tmp_path: Path) -> None:
    code, out = _kubeconform(MANIFESTS, tmp_path / "schemas")
    assert code == 0, out
    count = len(_docs())
    assert f"Valid: {count}, Invalid: 0, Errors: 0, Skipped: 0" in out, out


def test_kubeconform_rejects_a_broken_manifest(tmp_path: Path) -> None:
    """The schemas really apply (a typo in a probe, a string replica count)."""
    text = (K8S / "worker.yaml").read_text()
    broken = text.replace("replicas: 2", 'replicas: "two"').replace(
        "readinessProbe:", "readynessProbe:"
    )
    assert broken != text
    path = tmp_path / "worker.yaml"
    path.write_text(broken)
    code, out = _kubeconform([path], tmp_path / "schemas")
    assert code != 0
    assert "Invalid: 1" in out
    assert "readynessProbe" in out or "replicas" in out
