"""deploy/: the compose file, the Dockerfile and the Kubernetes manifests, checked for
structure here since no Docker engine or cluster runs on these machines; the manifests
are validated by kubeconform against the Kubernetes JSON schemas, offline."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.broker.compose import SECRET_FILES
from engine.config import load_settings
from tests.prom_helpers import DEPLOY, PROMETHEUS_DIR, REPO, run, tool

pytestmark = pytest.mark.unit

K8S = DEPLOY / "k8s"
MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
KUBERNETES_VERSION = "1.33.0"
NON_ROOT_UID = 10001
COMPOSE_SPEC = "github.com/compose-spec/compose-go/v2/cmd@v2.16.2"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose["services"]
    return services


# --- compose -----------------------------------------------------------------------------

ENGINE_SERVICES = {  # service -> its Kafka principal
    "kafka-setup": "admin", "topics": "admin", "worker": "worker", "gateway": "gateway",
    "api": "api", "cli": "api",
}  # fmt: skip


def _secret_targets(service: dict[str, Any]) -> dict[str, str]:
    """A service's secrets: source -> path in the container."""
    out = {}
    for entry in service.get("secrets", []):
        if isinstance(entry, str):
            entry = {"source": entry}
        target = entry.get("target", entry["source"])
        out[entry["source"]] = target if target.startswith("/") else f"/run/secrets/{target}"
    return out


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the documented one-time step makes: `engine broker secure-files`."""
    out = tmp_path_factory.mktemp("deploy") / "secrets"
    proc = subprocess.run(
        [str(REPO / ".venv" / "bin" / "engine"), "broker", "secure-files", "--out", str(out)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return out


def test_compose_services_and_images(compose: dict[str, Any]) -> None:
    s = _services(compose)
    assert set(s) == {"kafka", "kafka-setup", "topics", "worker", "gateway", "api", "cli",
                      "prometheus", "grafana"}  # fmt: skip
    assert s["kafka"]["image"].startswith("apache/kafka:")
    assert s["prometheus"]["image"].startswith("prom/prometheus:")
    assert s["grafana"]["image"].startswith("grafana/grafana:")
    for name in ENGINE_SERVICES:
        assert s[name]["image"] == "tangxia-engine:latest", name
        assert s[name]["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        assert s[name]["environment"]["ENGINE_KAFKA_BOOTSTRAP"] == "kafka:9092"
    for image in (svc["image"] for svc in s.values()):
        assert not image.endswith(":latest") or image.startswith("tangxia-engine")


def test_compose_kafka_runs_its_generated_secured_configuration(
    compose: dict[str, Any], made: Path
) -> None:
    """No KAFKA_* configuration of the image (no PLAINTEXT listener, no password in the
    environment): the start script and the server.properties secure-files made."""
    kafka = _services(compose)["kafka"]
    assert not any(key.startswith("KAFKA_") for key in kafka.get("environment", {}))
    assert kafka["command"] == ["/bin/sh", "/opt/engine/compose-start.sh"]
    assert "./kafka/compose-start.sh:/opt/engine/compose-start.sh:ro" in kafka["volumes"]
    assert "kafka-data:/var/lib/kafka/data" in kafka["volumes"]
    mounted = _secret_targets(kafka)
    assert set(mounted) == {"kafka_server_properties", "kafka_scram_users",
                            "kafka_broker_pem", "kafka_ca", "kafka_admin_client"}  # fmt: skip
    assert kafka["ports"] == ["127.0.0.1:29092:29092"]
    script = (DEPLOY / "kafka" / "compose-start.sh").read_text()
    assert "${ENGINE_SECRETS_DIR:-/run/secrets}" in script
    assert "$secrets/kafka_server_properties" in script and "kafka_scram_users" in script
    health = " ".join(kafka["healthcheck"]["test"])
    assert f"--command-config {mounted['kafka_admin_client']}" in health

    props = dict(
        line.split("=", 1)
        for line in (made / "kafka-server.properties").read_text().splitlines()
        if line and not line.startswith("#")
    )
    # clients: SASL_SSL only; the controller on the container's loopback
    protocols = dict(x.split(":") for x in props["listener.security.protocol.map"].split(","))
    assert protocols == {"CONTROLLER": "SASL_PLAINTEXT", "SASL_SSL": "SASL_SSL",
                         "HOST": "SASL_SSL"}  # fmt: skip
    assert props["listeners"] == "SASL_SSL://:9092,HOST://:29092,CONTROLLER://127.0.0.1:9093"
    assert props["advertised.listeners"] == "SASL_SSL://kafka:9092,HOST://localhost:29092"
    assert "PLAINTEXT://" not in props["listeners"] + props["advertised.listeners"]
    for listener in ("sasl_ssl", "host"):
        assert props[f"listener.name.{listener}.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["authorizer.class.name"].endswith(".StandardAuthorizer")
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:admin;User:controller"
    # every file it names is one the kafka service mounts; its storage is the volume
    assert props["ssl.keystore.location"] == mounted["kafka_broker_pem"]
    assert props["ssl.truststore.location"] == mounted["kafka_ca"]
    assert props["log.dirs"] == "/var/lib/kafka/data"
    users = (made / "kafka-scram-users").read_text().split()
    names = [u.split("name=")[1].split(",")[0] for u in users]
    assert names == ["admin", "worker", "gateway", "api", "viewer"]
    assert all(u.startswith("SCRAM-SHA-512=[name=") for u in users)


def test_compose_every_engine_service_is_its_own_principal(
    compose: dict[str, Any], made: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each service's ENGINE_* settings and its mounted kafka-<principal>.toml give
    settings for its principal over SASL_SSL, with that principal's own password."""
    s = _services(compose)
    for name, principal in ENGINE_SERVICES.items():
        svc = s[name]
        assert svc["entrypoint"] == ["engine", "--config", "/run/secrets/kafka-client.toml"]
        env = svc["environment"]
        assert not any("PASSWORD" in key for key in env), name
        assert env["ENGINE_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env["ENGINE_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert env["ENGINE_KAFKA_SASL_USERNAME"] == principal, name
        mounted = _secret_targets(svc)
        assert mounted[f"kafka_{principal}"] == "/run/secrets/kafka-client.toml", name
        assert env["ENGINE_KAFKA_CA_FILE"] == mounted["kafka_ca"]
        others = {f"kafka_{p}" for p in ENGINE_SERVICES.values()} - {f"kafka_{principal}"}
        assert not others & set(mounted), f"{name} mounts another principal's password"
        # what the process would load: the service's environment over its file
        for key in [k for k in os.environ if k.startswith("ENGINE_")]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, str(value))
        monkeypatch.setenv("ENGINE_KAFKA_CA_FILE", str(made / "kafka-ca.pem"))
        settings = load_settings(made / f"kafka-{principal}.toml")
        assert settings.kafka_bootstrap == "kafka:9092"
        assert settings.kafka_sasl_username == principal
        assert settings.kafka_sasl_password is not None
        password = (made / "kafka" / "secrets" / f"{principal}.password").read_text().strip()
        assert settings.kafka_sasl_password.get_secret_value() == password


def test_compose_secrets_are_the_files_secure_files_makes(
    compose: dict[str, Any], made: Path
) -> None:
    declared = {name: spec["file"] for name, spec in compose["secrets"].items()}
    used = {src for svc in _services(compose).values() for src in _secret_targets(svc)}
    assert used == set(declared)  # every secret used is declared, and none idles
    assert declared.pop("api_tokens") == "./secrets/api-tokens.json"  # engine token create
    for_the_host = "kafka_viewer"  # made too, mounted by no service
    assert declared == {k: f"./secrets/{v}" for k, v in SECRET_FILES.items() if k != for_the_host}
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    for name in SECRET_FILES.values():
        assert stat.S_IMODE((made / name).stat().st_mode) == 0o444, name
    # every random secret is its own: no two files share a password or a key
    passwords = [(made / "kafka" / "secrets" / f"{p}.password").read_text() for p in
                 ("admin", "controller", "worker", "gateway", "api", "viewer")]  # fmt: skip
    passwords += [(made / n).read_text() for n in ("grafana-admin-password", "radio-reply-key")]
    assert len(set(passwords)) == len(passwords)
    assert all(len(p.strip()) >= 32 for p in passwords)


def test_secure_files_keeps_what_exists(made: Path) -> None:
    """A second run must not change a password the broker's storage was formatted with."""
    before = {p: p.read_bytes() for p in made.rglob("*") if p.is_file()}
    proc = subprocess.run(
        [str(REPO / ".venv" / "bin" / "engine"), "broker", "secure-files", "--out", str(made)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "made" not in proc.stdout and "kept       kafka/" in proc.stdout
    assert {p: p.read_bytes() for p in made.rglob("*") if p.is_file()} == before


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
    assert s["kafka-setup"]["command"] == ["broker", "acls"]
    assert s["topics"]["command"] == ["topics", "ensure"]
    for name in ("worker", "gateway", "api"):
        assert s[name]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    setup = s["topics"]["depends_on"]["kafka-setup"]["condition"]
    assert setup == "service_completed_successfully"  # the ACLs before anyone connects
    assert s["kafka-setup"]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_compose_api_runs_the_real_api(compose: dict[str, Any]) -> None:
    api = _services(compose)["api"]
    assert api["command"] == ["api", "--host", "0.0.0.0", "--port", "8080"]
    assert "profiles" not in api  # runs with `up`, no longer a placeholder
    assert api["ports"] == ["127.0.0.1:8080:8080"] and api["expose"] == ["8080"]
    assert "/readyz" in " ".join(api["healthcheck"]["test"])
    tokens = api["environment"]["ENGINE_API_TOKENS_FILE"]
    assert _secret_targets(api)["api_tokens"] == tokens == "/run/secrets/api-tokens.json"
    # non-root (the image's USER), read-only root filesystem, nothing more to gain
    assert "user" not in api and api["read_only"] is True
    assert set(api["tmpfs"]) == {"/tmp", "/srv/engine/state"}
    assert api["cap_drop"] == ["ALL"] and "no-new-privileges:true" in api["security_opt"]


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


def test_compose_has_no_default_secrets_and_binds_to_loopback(
    compose: dict[str, Any],
) -> None:
    s = _services(compose)
    assert s["prometheus"]["ports"] == ["127.0.0.1:9090:9090"]
    assert s["grafana"]["ports"] == ["127.0.0.1:3000:3000"]
    for name, svc in s.items():  # nothing published beyond the host's loopback
        assert all(p.startswith("127.0.0.1:") for p in svc.get("ports", [])), name
    assert "--web.enable-lifecycle" not in s["prometheus"]["command"]
    grafana = s["grafana"]["environment"]
    assert "GF_SECURITY_ADMIN_PASSWORD" not in grafana  # never a value, only a file
    assert grafana["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"
    gateway = s["gateway"]["environment"]
    assert gateway["ENGINE_RADIO_REPLY_KEY_FILE"] == "/run/secrets/radio_reply_key"
    assert gateway["ENGINE_DATA_DIR"] == "/srv/engine/state"  # the sent log on its volume
    for spec in compose["secrets"].values():
        assert spec["file"].startswith("./secrets/")  # made by the one-time step
    text = (DEPLOY / "compose.yaml").read_text()
    assert ":-admin}" not in text and "CHANGE-ME" not in text
    assert not re.search(r"(?i)password[ \t]*[:=][ \t]*\S", text)  # no password value anywhere
    assert "PLAINTEXT" not in text.replace("SASL_PLAINTEXT", "")
    assert "deploy/secrets/" in (REPO / ".gitignore").read_text()


def test_prometheus_scrapes_what_compose_runs(compose: dict[str, Any]) -> None:
    s = _services(compose)
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    jobs = set()
    for job in config["scrape_configs"]:
        if job["job_name"] == "prometheus":
            continue
        jobs.add(job["job_name"])
        assert job.get("metrics_path", "/metrics") == "/metrics"
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
    assert jobs == {"worker", "gateway", "api"}


# --- compose, loaded as Docker Compose v2 loads it ------------------------------------------


def _compose_spec(*args: str) -> tuple[int, str]:
    binary = tool("compose-spec", f"make sysdeps (go install {COMPOSE_SPEC}, as compose-spec)")
    env_free = {k: v for k, v in os.environ.items() if not k.startswith("ENGINE_")}
    proc = subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=120, check=False,
        cwd=DEPLOY, env=env_free,
    )  # fmt: skip
    return proc.returncode, proc.stdout + proc.stderr


def test_compose_spec_loads_the_compose_file() -> None:
    """compose-go, the loader of `docker compose config`: schema, interpolation, paths."""
    code, out = _compose_spec("-format", "json", "compose.yaml")
    assert code == 0, out
    model = json.loads(out)
    services = model["services"]
    assert set(services) == set(_services(yaml.safe_load((DEPLOY / "compose.yaml").read_text())))
    api = services["api"]
    assert api["command"] == ["api", "--host", "0.0.0.0", "--port", "8080"]
    assert api["read_only"] is True
    published = [(p["host_ip"], p["published"]) for s in services.values()
                 for p in s.get("ports", [])]  # fmt: skip
    assert sorted(published) == [("127.0.0.1", "29092"), ("127.0.0.1", "3000"),
                                 ("127.0.0.1", "8080"), ("127.0.0.1", "9090")]  # fmt: skip
    kafka_secrets = {s["source"]: s["target"] for s in services["kafka"]["secrets"]}
    assert kafka_secrets["kafka_server_properties"] == "/run/secrets/kafka_server_properties"
    assert model["secrets"]["kafka_ca"]["file"] == str(DEPLOY / "secrets" / "kafka-ca.pem")
    assert services["gateway"]["devices"][0]["source"] == "/dev/ttyUSB0"


def test_compose_spec_rejects_a_broken_compose_file(tmp_path: Path) -> None:
    """The loader really validates (a misspelt key, a non-boolean)."""
    text = (DEPLOY / "compose.yaml").read_text()
    for good, bad in (("    tmpfs:", "    tmpfss:"), ("read_only: true", "read_only: maybe")):
        broken = tmp_path / "deploy" / "compose.yaml"
        broken.parent.mkdir(exist_ok=True)
        broken.write_text(text.replace(good, bad, 1))
        binary = tool("compose-spec", "make sysdeps")
        proc = subprocess.run([binary, str(broken)], capture_output=True, text=True,
                              timeout=120, check=False)  # fmt: skip
        assert proc.returncode != 0, bad
        assert bad.split(":")[0].strip() in proc.stdout + proc.stderr


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


def test_api_runs_the_real_api_probed_non_root_read_only() -> None:
    api = _one("Deployment", "engine-api")
    assert api["spec"]["replicas"] >= 1
    pod = api["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == ["api", "--host", "0.0.0.0", "--port", "8080"]
    assert container["ports"] == [{"name": "http", "containerPort": 8080}]
    ready, live = container["readinessProbe"]["httpGet"], container["livenessProbe"]["httpGet"]
    assert (ready["path"], ready["port"]) == ("/readyz", "http")
    assert (live["path"], live["port"]) == ("/healthz", "http")
    assert pod["securityContext"]["runAsNonRoot"] is True
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    refs = {next(iter(r.values()))["name"] for r in container["envFrom"]}
    assert "engine-kafka-api" in refs  # principal `api`
    # the token store: a file from its Secret, where ENGINE_API_TOKENS_FILE points
    (tokens_file,) = [e["value"] for e in container["env"] if e["name"] == "ENGINE_API_TOKENS_FILE"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    (name,) = [n for n, m in mounts.items() if tokens_file.startswith(m["mountPath"] + "/")]
    assert mounts[name]["readOnly"] is True
    assert volumes[name]["secret"]["secretName"] == "engine-api-tokens"
    assert "optional" not in volumes[name]["secret"]  # no token store, no API
    examples = list(yaml.safe_load_all((K8S / "examples" / "secrets.example.yaml").read_text()))
    (example,) = [d for d in examples if d["metadata"]["name"] == "engine-api-tokens"]
    assert tokens_file.rsplit("/", 1)[1] in example["stringData"]
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    assert writable == {"/tmp", "/srv/engine/state"}


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
