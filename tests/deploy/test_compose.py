"""The Docker Compose lab (deploy/compose/compose.yaml), validated offline: no container
engine runs here, so nothing in it has been started by this suite.

- Debian's docker-compose (1.29) parses it with `docker-compose config`, which needs no
  engine, interpolates the environment and rejects unknown keys; a copy with one unknown key
  is shown to be rejected, so a typo cannot pass unnoticed.
- Every bind mount comes from the repository, read-only, and the shared assets (rules,
  Alertmanager configuration, dashboard) are mounted from their one place, never copied.
- The Compose Prometheus configuration passes promtool. Its rule_files are container paths,
  and promtool silently checks no rules when a glob matches nothing, so it is checked twice:
  as is with `--syntax-only` (promtool 2.42 has the flag), and as a copy whose rule_files
  point where compose.yaml mounts them from, so that the rule files themselves are loaded.
- Scrape targets are Compose services on their container ports; Grafana's provisioning
  points at the mounted dashboard; images are pinned; ports are published on loopback only.
- The webhook sink that stands behind alertmanager.yml's 127.0.0.1:5001 runs here for real.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from support.binaries import require
from support.ports import free_port
from support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
COMPOSE_DIR = REPO / "deploy" / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
PROMETHEUS_CONFIG = COMPOSE_DIR / "prometheus.yml"
GRAFANA_DATASOURCES = COMPOSE_DIR / "grafana" / "datasources"
GRAFANA_DASHBOARD_PROVIDERS = COMPOSE_DIR / "grafana" / "dashboards"
DOCKERFILE = REPO / "deploy" / "container" / "Dockerfile"
RULES_DIR = REPO / "deploy" / "prometheus" / "rules"
ALERTMANAGER_CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
WEBHOOK_LOG = REPO / "deploy" / "alertmanager" / "webhook_log.py"
DASHBOARD_DIR = REPO / "deploy" / "grafana"
DASHBOARD = DASHBOARD_DIR / "example-service.json"
KUBERNETES = REPO / "deploy" / "kubernetes"

REPLICAS = ("example-service-1", "example-service-2")
SERVICES = {*REPLICAS, "prometheus", "alertmanager", "alert-webhook", "pushgateway", "grafana"}
# The variables compose.yaml reads; cleared so that the caller's environment cannot change
# what the tests see, then set explicitly where a test is about them.
COMPOSE_VARIABLES = (
    "NUM",
    "DEMO_READINGS",
    "EXAMPLE_SERVICE_1_PORT",
    "EXAMPLE_SERVICE_2_PORT",
    "PROMETHEUS_PORT",
    "ALERTMANAGER_PORT",
    "PUSHGATEWAY_PORT",
    "GRAFANA_PORT",
)
# Where each service listens inside its container, which is what Prometheus must scrape.
CONTAINER_PORTS = {"example-service": 5565, "prometheus": 9090, "alertmanager": 9093}
CONTAINER_PORTS |= {"pushgateway": 9091, "grafana": 3000}
# A release's full version (v2.55.1, 11.4.0, 3.11.13-slim-bookworm), never a moving tag.
PINNED_TAG = re.compile(r"v?\d+\.\d+\.\d+(-[a-z0-9.]+)*")


@pytest.fixture(scope="session")
def docker_compose() -> str:
    return require("docker-compose", "docker-compose")


def compose_environment(**variables: str) -> dict[str, str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in COMPOSE_VARIABLES and not name.startswith(("COMPOSE_", "DOCKER_"))
    }
    return environment | variables


def run_config(
    docker_compose: str,
    compose_file: Path,
    project_directory: Path | None = None,
    **variables: str,
) -> subprocess.CompletedProcess[str]:
    command = [docker_compose]
    if project_directory is not None:
        command += ["--project-directory", str(project_directory)]
    command += ["-f", str(compose_file), "config"]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=compose_environment(**variables),
        cwd=REPO,
    )


def resolved_config(docker_compose: str, **variables: str) -> dict[str, Any]:
    """The file as docker-compose understands it: anchors merged, variables interpolated,
    relative paths made absolute."""
    result = run_config(docker_compose, COMPOSE_FILE, **variables)
    assert result.returncode == 0, f"docker-compose config:\n{result.stderr}"
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


@pytest.fixture(scope="session")
def compose(docker_compose: str) -> dict[str, Any]:
    return resolved_config(docker_compose)


def bind_mounts(service: dict[str, Any]) -> list[dict[str, Any]]:
    """A service's bind mounts in long form, whichever syntax the file used."""
    mounts = []
    for volume in service.get("volumes", []):
        mount = volume
        if isinstance(volume, str):
            source, target, *mode = volume.split(":")
            if not source.startswith("/"):
                continue  # a named volume
            read_only = bool(mode) and "ro" in mode[0].split(",")
            mount = {"type": "bind", "source": source, "target": target, "read_only": read_only}
        if mount["type"] == "bind":
            mounts.append(mount)
    return mounts


def mount_source(service: dict[str, Any], target: str) -> Path:
    """The host path compose mounts at target in the service's container."""
    for mount in bind_mounts(service):
        if mount["target"] == target:
            return Path(mount["source"])
    pytest.fail(f"nothing is mounted at {target}")


def host_path(service: dict[str, Any], container_path: str) -> Path:
    """Where a path inside the container comes from on the host, through its bind mounts."""
    inside = PurePosixPath(container_path)
    for mount in bind_mounts(service):
        target = PurePosixPath(mount["target"])
        if inside == target or target in inside.parents:
            return Path(mount["source"]) / inside.relative_to(target)
    pytest.fail(f"{container_path} is on no bind mount")


def published_ports(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(host ip, host port, container port) of each published port."""
    ports = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            ports.append((port.get("host_ip", ""), str(port["published"]), str(port["target"])))
            continue
        *host, container = str(port).removesuffix("/tcp").removesuffix("/udp").split(":")
        host_ip, host_port = host if len(host) == 2 else ("", host[0] if host else "")
        ports.append((host_ip, host_port, container))
    return ports


def dockerfile_base_image() -> str:
    """The runtime stage's base, with the Dockerfile's ARG defaults filled in."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    arguments = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, flags=re.MULTILINE))
    bases = re.findall(r"^FROM (\S+)", text, flags=re.MULTILINE)
    return re.sub(r"\$\{(\w+)\}", lambda m: arguments[m.group(1)], bases[-1])


def kubernetes_images() -> set[str]:
    images: set[str] = set()
    for path in KUBERNETES.rglob("*.yaml"):
        images.update(re.findall(r"^\s*image:\s*(\S+)\s*$", path.read_text(), flags=re.M))
    return images


# ---------------------------------------------------------------------------------------
# docker-compose accepts the file, and would not accept a mistake


def test_docker_compose_config_accepts_the_file(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == SERVICES


def mutations() -> list[tuple[str, list[str | int], str]]:
    """(case, path of the mapping to add a key to, key): places where a typo is plausible."""
    return [
        ("top level", [], "servics"),
        ("a replica", ["services", "example-service-1"], "replcias"),
        ("a healthcheck", ["services", "example-service-2", "healthcheck"], "intervall"),
        ("a bind mount", ["services", "prometheus", "volumes", 1], "readonly"),
        ("a build", ["services", "example-service-1", "build"], "dockerfil"),
    ]


@pytest.mark.parametrize(("case", "where", "key"), mutations(), ids=[m[0] for m in mutations()])
def test_docker_compose_config_rejects_an_unknown_key(
    docker_compose: str, tmp_path: Path, case: str, where: list[str | int], key: str
) -> None:
    original = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    # The copy lives outside the repository, so relative paths are resolved against the
    # compose file's own directory, as for the original.
    control = tmp_path / "control.yaml"
    control.write_text(yaml.safe_dump(original, sort_keys=False))
    accepted = run_config(docker_compose, control, project_directory=COMPOSE_DIR)
    assert accepted.returncode == 0, f"the unchanged copy should pass:\n{accepted.stderr}"

    mutated = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    mapping = mutated
    for step in where:
        mapping = mapping[step]
    assert isinstance(mapping, dict), f"{case}: {where} is not a mapping"
    mapping[key] = "x"
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(mutated, sort_keys=False))
    rejected = run_config(docker_compose, broken, project_directory=COMPOSE_DIR)
    assert rejected.returncode != 0, f"{case}: unknown key {key!r} accepted:\n{rejected.stdout}"
    assert key in rejected.stderr, f"{case}: rejected, but not for {key!r}:\n{rejected.stderr}"


# ---------------------------------------------------------------------------------------
# What is mounted, and from where


def test_every_bind_mount_is_a_read_only_path_of_the_repository(compose: dict[str, Any]) -> None:
    sources = set()
    for name, service in compose["services"].items():
        for mount in bind_mounts(service):
            source = Path(mount["source"])
            assert source.is_relative_to(REPO), f"{name}: {source} is outside the repository"
            assert source.exists(), f"{name}: {source} does not exist"
            assert mount.get("read_only") is True, f"{name}: {source} is mounted writable"
            sources.add(source)
    assert sources == {
        PROMETHEUS_CONFIG,
        RULES_DIR,
        ALERTMANAGER_CONFIG,
        GRAFANA_DATASOURCES,
        GRAFANA_DASHBOARD_PROVIDERS,
        DASHBOARD_DIR,
        WEBHOOK_LOG,
    }


def test_shared_assets_are_mounted_from_their_one_place(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert mount_source(services["prometheus"], "/etc/prometheus/rules") == RULES_DIR
    alertmanager = services["alertmanager"]
    assert mount_source(alertmanager, "/etc/alertmanager/alertmanager.yml") == ALERTMANAGER_CONFIG
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in alertmanager["command"]
    prometheus = services["prometheus"]
    assert mount_source(prometheus, "/etc/prometheus/prometheus.yml") == PROMETHEUS_CONFIG
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert DASHBOARD_DIR in {Path(m["source"]) for m in bind_mounts(services["grafana"])}

    # No copies under deploy/compose: none of its files repeats a shared asset's content.
    shared = {p.read_bytes(): p for p in [ALERTMANAGER_CONFIG, DASHBOARD, *RULES_DIR.glob("*")]}
    for path in COMPOSE_DIR.rglob("*"):
        if path.is_file():
            assert path.read_bytes() not in shared, f"{path} copies {shared[path.read_bytes()]}"


def test_the_replicas_are_built_from_the_repository_dockerfile(compose: dict[str, Any]) -> None:
    built = {name for name, service in compose["services"].items() if "build" in service}
    assert built == set(REPLICAS)
    for name in REPLICAS:
        build = compose["services"][name]["build"]
        assert Path(build["context"]) == REPO, "the Dockerfile's build context is the root"
        assert (Path(build["context"]) / build["dockerfile"]).resolve() == DOCKERFILE
    images = {compose["services"][name]["image"] for name in REPLICAS}
    assert len(images) == 1, f"both replicas run one image: {images}"
    assert images <= kubernetes_images(), "the tag the Kubernetes manifests run"


# ---------------------------------------------------------------------------------------
# The replicas


def test_replica_settings_come_from_the_environment(docker_compose: str) -> None:
    defaults = resolved_config(docker_compose)
    chosen = resolved_config(docker_compose, NUM="30", DEMO_READINGS="on")
    for name in REPLICAS:
        assert defaults["services"][name]["environment"]["NUM"] == "25"
        assert defaults["services"][name]["environment"]["DEMO_READINGS"] == "off"
        assert chosen["services"][name]["environment"]["NUM"] == "30"
        assert chosen["services"][name]["environment"]["DEMO_READINGS"] == "on"


def test_replica_healthcheck_asks_readyz_with_python(compose: dict[str, Any]) -> None:
    for name in REPLICAS:
        service = compose["services"][name]
        test = service["healthcheck"]["test"]
        # CMD form: no shell in the image is needed, and python is what the image has.
        assert test[:3] == ["CMD", "python", "-c"], test
        port = service["environment"]["PORT"]
        assert f"urlopen('http://127.0.0.1:{port}/readyz'" in test[3]
        assert "curl" not in " ".join(test) and "wget" not in " ".join(test)
        # The probe must also work as the image runs it: parse it as Python.
        compile(test[3], f"{name} healthcheck", "exec")
        # The drain (5 s) plus in-flight requests (10 s) fit before Compose's SIGKILL.
        assert service["stop_grace_period"] == "20s"


def test_replica_containers_are_hardened(compose: dict[str, Any]) -> None:
    for name in REPLICAS:
        service = compose["services"][name]
        assert service["user"] == "10001:10001", "the image's numeric user"
        assert [t.split(":")[0] for t in service["tmpfs"]] == ["/tmp"]
        assert service["cpus"] == 1.0, "the worker pool is sized from the CPU quota"
        assert "mem_limit" in service


# ---------------------------------------------------------------------------------------
# Every container


def test_every_container_is_non_root_with_a_read_only_root(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        uid = str(service.get("user", "")).split(":")[0]
        assert uid.isdigit() and int(uid) != 0, f"{name}: user {service.get('user')!r}"
        assert service.get("read_only") is True, f"{name}: writable root file system"
        assert service.get("cap_drop") == ["ALL"], f"{name}: capabilities kept"
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        assert not service.get("privileged"), name


def test_published_ports_are_on_loopback_only(compose: dict[str, Any]) -> None:
    published: dict[str, str] = {}
    for name, service in compose["services"].items():
        for host_ip, host_port, container_port in published_ports(service):
            assert host_ip == "127.0.0.1", f"{name}: {host_port} published beyond loopback"
            assert host_port not in published, f"{host_port}: {published.get(host_port)}, {name}"
            published[host_port] = name
            expected = CONTAINER_PORTS["example-service" if name in REPLICAS else name]
            assert container_port == str(expected), f"{name}: {container_port}"
    assert {published["5565"], published["5566"]} == set(REPLICAS)
    assert {published["9090"], published["9093"], published["9091"], published["3000"]} == {
        "prometheus",
        "alertmanager",
        "pushgateway",
        "grafana",
    }


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and PINNED_TAG.fullmatch(tag), f"{name}: {image}"
    services = compose["services"]
    # The monitoring images are the ones the Kubernetes manifests pin.
    for name in ("prometheus", "alertmanager"):
        assert services[name]["image"] in kubernetes_images(), services[name]["image"]
    # The sink runs on the image's own base rather than a third image.
    assert services["alert-webhook"]["image"] == dockerfile_base_image()


# ---------------------------------------------------------------------------------------
# Prometheus


def prometheus_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    return config


def run_promtool(promtool: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, "check", "config", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_promtool_accepts_the_config_syntax(promtool: str) -> None:
    result = run_promtool(promtool, "--syntax-only", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_config_with_the_mounted_rules(
    promtool: str, compose: dict[str, Any], tmp_path: Path
) -> None:
    """rule_files name container paths: map each through the bind mounts compose.yaml
    declares, which also proves that the mounts put the rule files where the config looks."""
    config = prometheus_config()
    prometheus = compose["services"]["prometheus"]
    config["rule_files"] = [str(host_path(prometheus, rf)) for rf in config["rule_files"]]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config, sort_keys=False))

    result = run_promtool(promtool, str(copy))
    assert result.returncode == 0, result.stdout + result.stderr
    rule_files = sorted(RULES_DIR.glob("*.yml"))
    assert rule_files
    assert f"SUCCESS: {len(rule_files)} rule files found" in result.stdout, result.stdout
    for rule_file in rule_files:
        assert f"Checking {rule_file}" in result.stdout, f"{rule_file.name} not checked"


def scrape_job(name: str) -> dict[str, Any]:
    (job,) = [j for j in prometheus_config()["scrape_configs"] if j["job_name"] == name]
    return job


def static_targets(job: dict[str, Any]) -> list[str]:
    return [target for group in job["static_configs"] for target in group["targets"]]


def test_scrape_targets_are_compose_services(compose: dict[str, Any]) -> None:
    jobs = {job["job_name"]: job for job in prometheus_config()["scrape_configs"]}
    assert set(jobs) == {"example-service", "pushgateway", "prometheus", "alertmanager"}
    for name, job in jobs.items():
        for target in static_targets(job):
            host, _, port = target.rpartition(":")
            if host == "localhost":
                assert name == "prometheus", f"{name}: localhost is Prometheus itself"
                continue
            assert host in compose["services"], f"{name}: {host} is no Compose service"
            expected = CONTAINER_PORTS["example-service" if host in REPLICAS else host]
            assert port == str(expected), f"{name}: {target}"
    assert sorted(h.split(":")[0] for h in static_targets(jobs["example-service"])) == sorted(
        REPLICAS
    )
    alertmanagers = prometheus_config()["alerting"]["alertmanagers"]
    assert [t for a in alertmanagers for t in static_targets(a)] == ["alertmanager:9093"]


def test_the_replicas_carry_a_node_label() -> None:
    """The rules aggregate host readings `by (job, node)`: without the label, the CPU
    temperature alert would group both replicas under an empty node."""
    job = scrape_job("example-service")
    for group in job["static_configs"]:
        assert group.get("labels", {}).get("node"), f"no node label on {group['targets']}"
    assert "by (job, node)" in (RULES_DIR / "example-service-alerts.yml").read_text()


def test_pushgateway_is_scraped_with_honor_labels() -> None:
    job = scrape_job("pushgateway")
    assert job.get("honor_labels") is True, "pushed job and instance labels must survive"


# ---------------------------------------------------------------------------------------
# Grafana


def provisioning(directory: Path) -> list[dict[str, Any]]:
    files = sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml"))
    assert files, f"no provisioning file in {directory}"
    return [yaml.safe_load(path.read_text(encoding="utf-8")) for path in files]


def test_grafana_provisioning_directories_are_mounted(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    provisioned = "/etc/grafana/provisioning"
    assert mount_source(grafana, f"{provisioned}/datasources") == GRAFANA_DATASOURCES
    assert mount_source(grafana, f"{provisioned}/dashboards") == GRAFANA_DASHBOARD_PROVIDERS


def test_grafana_datasource_is_the_compose_prometheus(compose: dict[str, Any]) -> None:
    (document,) = provisioning(GRAFANA_DATASOURCES)
    assert document["apiVersion"] == 1
    (datasource,) = document["datasources"]
    # The dashboard's ${datasource} variable lists datasources of its type, and picks the
    # default one.
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
    assert variable["type"] == "datasource"
    assert datasource["type"] == variable["query"] == "prometheus"
    assert datasource["isDefault"] is True
    url = urllib.parse.urlsplit(datasource["url"])
    assert url.hostname in compose["services"] and url.hostname == "prometheus"
    assert url.port == CONTAINER_PORTS["prometheus"]
    scrape_interval = prometheus_config()["global"]["scrape_interval"]
    assert datasource["jsonData"]["timeInterval"] == scrape_interval


def test_grafana_dashboard_provider_reads_the_mounted_dashboard(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    (document,) = provisioning(GRAFANA_DASHBOARD_PROVIDERS)
    assert document["apiVersion"] == 1
    (provider,) = document["providers"]
    assert provider["type"] == "file"
    path = provider["options"]["path"]
    assert host_path(grafana, path) == DASHBOARD_DIR, f"{path} is not deploy/grafana"
    assert (host_path(grafana, path) / DASHBOARD.name).is_file()
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert host_path(grafana, home) == DASHBOARD


# ---------------------------------------------------------------------------------------
# Alertmanager's webhook


def alertmanager_webhook_url() -> str:
    match = re.search(
        r"url:\s*&webhook_url\s+(\S+)", ALERTMANAGER_CONFIG.read_text(encoding="utf-8")
    )
    assert match, "alertmanager.yml has no &webhook_url anchor"
    return match.group(1)


def test_the_webhook_sink_answers_at_alertmanagers_webhook_url(compose: dict[str, Any]) -> None:
    """alertmanager.yml posts to a loopback URL; the sink shares Alertmanager's network
    namespace and listens there (its default address). The mounted script runs here on a
    free port: it must answer 200 and print each notification as one line."""
    url = urllib.parse.urlsplit(alertmanager_webhook_url())
    sink = compose["services"]["alert-webhook"]
    assert sink["network_mode"] == "service:alertmanager"
    assert url.hostname == "127.0.0.1", "only a loopback URL reaches a namespace-sharing sink"
    command = sink["command"]
    assert command[:2] == ["python", "-u"]
    assert mount_source(sink, command[2]) == WEBHOOK_LOG
    assert len(command) == 3, "the sink listens on its default address, the config's"
    assert f'else "{url.hostname}"' in WEBHOOK_LOG.read_text()
    assert f"else {url.port}" in WEBHOOK_LOG.read_text()

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-u", str(WEBHOOK_LOG), "127.0.0.1", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        notification = {"receiver": "default", "status": "firing", "alerts": [{"labels": {}}]}
        body = json.dumps(notification).encode()

        def post() -> int:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}{url.path}",
                data=body,
                headers={"content-type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                return int(response.status)

        assert wait_for(post, timeout=20, what="the webhook sink to answer") == 200
        assert process.stdout is not None
        line = process.stdout.readline()
        assert json.loads(line) == notification
        process.terminate()
        assert process.wait(timeout=10) == 0, "SIGTERM stops the sink cleanly"
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
