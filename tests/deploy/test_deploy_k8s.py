"""Kustomize base and overlays: every rendered object validates against the Kubernetes schemas (offline,
kubernetes-validate) or a hand-checked CRD schema, references resolve, and the gateway configuration
each overlay ships loads with the gateway's own loader."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from otlp_gateway.config import load_config
from tests.deploy.crd_schemas import COLLECTOR_CONFIG, CUSTOM_RESOURCES
from tests.deploy.support import (
    K8S,
    OVERLAYS,
    container,
    load_yaml,
    objects,
    one,
    pod_spec,
    render,
)

# Oldest schema kubernetes-validate ships (the runbook asks for 1.22+; autoscaling/v2 and policy/v1 are
# GA from 1.23 and 1.21) and the newest.
KUBERNETES_VERSIONS = ("1.25", kubernetes_validate.latest_version())
RENDERED = ("base", *(f"overlays/{name}" for name in OVERLAYS), "monitoring")
WORKLOAD_KINDS = ("Deployment", "Job")
SECRET_KEYS = {"jwt-secret", "database-url"}


def _workloads(docs) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in WORKLOAD_KINDS]


def _gateway_workload(docs) -> dict[str, Any]:
    (found,) = [d for d in objects(docs, "Deployment")
                if any(c["name"] == "gateway" for c in pod_spec(d)["containers"])]
    return found


def _labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def validate_object(obj: dict[str, Any]) -> None:
    key = (obj["apiVersion"], obj["kind"])
    if key in CUSTOM_RESOURCES:
        jsonschema.validate(obj, CUSTOM_RESOURCES[key])
        return
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)


# ------------------------------------------------------------------------------------ schemas
@pytest.mark.parametrize("directory", RENDERED)
def test_every_rendered_object_validates(directory: str):
    docs = render(directory)
    assert docs
    for obj in docs:
        try:
            validate_object(obj)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"k8s/{directory}: {obj['kind']}/{obj['metadata']['name']} at {path}: {exc.message}")


def test_the_validator_rejects_an_unknown_field():
    """Strict validation can fail: a typo in a Deployment must be caught."""
    deployment = copy.deepcopy(_gateway_workload(render("base")))
    pod_spec(deployment)["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/readyz", "port": 8080}}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_object(deployment)
    monitor = copy.deepcopy(one(render("base"), "ServiceMonitor", "driftlock-api"))
    monitor["spec"]["endpoints"][0]["intervall"] = "15s"
    with pytest.raises(jsonschema.ValidationError):
        validate_object(monitor)


def test_secret_template_has_the_runbook_keys_and_is_never_rendered():
    template = load_yaml(K8S / "base" / "secret.template.yaml")
    validate_object(template)
    assert template["metadata"]["name"] == "driftlock-secrets"
    assert set(template["stringData"]) == SECRET_KEYS
    for directory in RENDERED:
        assert not objects(render(directory), "Secret"), f"k8s/{directory} must not render a Secret"


# ----------------------------------------------------------------------------- references resolve
@pytest.mark.parametrize("overlay", ["base", *(f"overlays/{n}" for n in OVERLAYS)])
def test_references_between_objects_resolve(overlay: str):
    docs = render(overlay)
    config_maps = {d["metadata"]["name"] for d in objects(docs, "ConfigMap")}
    accounts = {d["metadata"]["name"] for d in objects(docs, "ServiceAccount")} | {"default"}
    pods = [(w, pod_spec(w)) for w in _workloads(docs)]
    for workload, spec in pods:
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        assert spec.get("serviceAccountName", "default") in accounts, where
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps, f"{where}: volume {volume['name']}"
        for c in spec.get("initContainers", []) + spec["containers"]:
            for source in c.get("envFrom", []):
                assert source["configMapRef"]["name"] in config_maps, where
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == "driftlock-secrets" and ref["key"] in SECRET_KEYS, (where, env)
            mounts = {m["name"] for m in c.get("volumeMounts", [])}
            assert mounts <= {v["name"] for v in spec.get("volumes", [])}, (where, c["name"])
    # Services select pods and target ports those pods declare.
    for service in objects(docs, "Service"):
        selected = [s for w, s in pods if _labels_match(service["spec"]["selector"],
                                                         w["spec"]["template"]["metadata"]["labels"])]
        assert selected, f"Service {service['metadata']['name']} selects no pod"
        container_ports = [p for s in selected for c in s["containers"] for p in c.get("ports", [])]
        declared = {p.get("name") for p in container_ports} | {p["containerPort"] for p in container_ports}
        for port in service["spec"]["ports"]:
            assert port.get("targetPort", port["port"]) in declared, (service["metadata"]["name"], port)
    for monitor in objects(docs, "ServiceMonitor"):
        services = [s for s in objects(docs, "Service")
                    if _labels_match(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])]
        assert services, "ServiceMonitor selects no Service"
        for endpoint in monitor["spec"]["endpoints"]:
            assert any(endpoint["port"] == p["name"] for s in services for p in s["spec"]["ports"])
            job = services[0]["metadata"]["labels"][monitor["spec"]["jobLabel"]]
            assert job == "driftlock-api", "the runbook's up{job=\"driftlock-api\"} alert needs this job"
    for budget in objects(docs, "PodDisruptionBudget"):
        assert any(_labels_match(budget["spec"]["selector"]["matchLabels"],
                                 w["spec"]["template"]["metadata"]["labels"]) for w, _ in pods)
    for hpa in objects(docs, "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        one(docs, target["kind"], target["name"])


@pytest.mark.parametrize("overlay", ["base", *(f"overlays/{n}" for n in OVERLAYS)])
def test_every_pod_runs_non_root_with_resources(overlay: str):
    for workload in _workloads(render(overlay)):
        spec = pod_spec(workload)
        where = f"{overlay}: {workload['kind']}/{workload['metadata']['name']}"
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["runAsUser"] != 0, where
        for c in spec.get("initContainers", []) + spec["containers"]:
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, (where, c["name"])
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"], (where, c["name"])
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]), (where, c["name"])
            assert {"cpu", "memory"} <= set(c["resources"]["limits"]), (where, c["name"])


# ------------------------------------------------------------------------------------ the gateway pod
def _gateway_config(docs, workload: dict[str, Any], extra_env: dict[str, str] | None = None):
    """Load the gateway.yaml the pod mounts, with the environment the pod gets, like the container does."""
    gateway = container(workload, "gateway")
    args = gateway["args"]
    assert args[0] in ("serve", "migrate") and args[1] == "--config", args
    config_path = args[2]
    mount = next(m for m in gateway["volumeMounts"] if config_path.startswith(m["mountPath"] + "/"))
    volume = next(v for v in pod_spec(workload)["volumes"] if v["name"] == mount["name"])
    config_map = one(docs, "ConfigMap", volume["configMap"]["name"])
    env: dict[str, str] = {}
    for source in gateway.get("envFrom", []):
        env.update(one(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
    env.update({e["name"]: e["value"] for e in gateway.get("env", []) if "value" in e})
    env["JWT_SECRET"] = "x" * 32  # from driftlock-secrets in a cluster
    env.update(extra_env or {})
    text = config_map["data"][config_path.rsplit("/", 1)[1]]
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "gateway.yaml"
        path.write_text(text, encoding="utf-8")
        return load_config(path, env=env), env


@pytest.mark.parametrize("overlay", ["base", *(f"overlays/{n}" for n in OVERLAYS)])
def test_gateway_pod_probes_scrape_annotations_and_config(overlay: str):
    docs = render(overlay)
    workload = _gateway_workload(docs)
    spec = pod_spec(workload)
    gateway = container(workload, "gateway")
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert gateway["startupProbe"]["httpGet"]["path"] == "/healthz"
    annotations = workload["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    ports = {p["name"]: p["containerPort"] for p in gateway["ports"]}
    assert ports == {"otlp-grpc": 4317, "otlp-http": 4318, "http-api": 8080}
    assert int(annotations["prometheus.io/port"]) == ports["http-api"]

    config, env = _gateway_config(docs, workload)
    assert config.api.listen.endswith(":8080")
    assert config.receiver.grpc_listen.endswith(":4317") and config.receiver.http_listen.endswith(":4318")
    assert config.store.max_open_conns == int(env["DB_MAX_OPEN_CONNS"])
    assert config.store.conn_max_lifetime_seconds == 3600
    assert config.api.rate_limit.rps == float(env["GLOBAL_RATE_LIMIT_RPS"])
    # Spools and SQLite go to the writable data volume; numba's cache to its own volume.
    mounts = {m["mountPath"]: m["name"] for m in gateway["volumeMounts"]}
    assert mounts[config.data_dir] == "data"
    assert mounts[env["NUMBA_CACHE_DIR"]] == "numba-cache"
    assert gateway["securityContext"]["readOnlyRootFilesystem"] is True
    # The drain fits in the grace period, after the preStop delay.
    pre_stop = int(gateway["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert config.shutdown_grace_seconds + pre_stop < spec["terminationGracePeriodSeconds"]
    # The init container fills the numba cache volume from the image.
    (init,) = spec["initContainers"]
    assert init["image"] == gateway["image"] and init["volumeMounts"][0]["name"] == "numba-cache"


# ---------------------------------------------------------------------------------------- overlays
def test_standalone_scales_migrates_and_load_balances():
    docs = render("overlays/standalone")
    gateway = one(docs, "Deployment", "driftlock-api")
    assert gateway["spec"]["replicas"] == 3
    hpa = one(docs, "HorizontalPodAutoscaler", "driftlock-api")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 10)
    targets = {m["resource"]["name"]: m["resource"]["target"]["averageUtilization"] for m in hpa["metrics"]}
    assert targets == {"cpu": 70, "memory": 80}

    config, _ = _gateway_config(docs, gateway)
    assert config.store.migrate_on_start is False, "replicas must leave migrations to the Job"
    job = one(docs, "Job", "driftlock-migrate")
    migrate = pod_spec(job)["containers"][0]
    assert migrate["args"][0] == "migrate" and migrate["image"] == container(gateway, "gateway")["image"]
    assert any(e["name"] == "DATABASE_URL" and "optional" not in e["valueFrom"]["secretKeyRef"]
               for e in migrate["env"])

    headless = one(docs, "Service", "driftlock-api-headless")
    assert headless["spec"]["clusterIP"] == "None"
    collector = yaml.safe_load(one(docs, "ConfigMap", next(
        v["configMap"]["name"] for v in pod_spec(one(docs, "Deployment", "otel-loadbalancer"))["volumes"]
    ))["data"]["collector.yaml"])
    jsonschema.validate(collector, COLLECTOR_CONFIG)
    _check_pipelines(collector)
    balancer = collector["exporters"]["loadbalancing"]
    assert balancer["routing_key"] == "service"
    namespace = headless["metadata"]["namespace"]
    assert balancer["resolver"]["dns"]["hostname"] == f"driftlock-api-headless.{namespace}.svc.cluster.local"
    assert int(balancer["resolver"]["dns"]["port"]) == headless["spec"]["ports"][0]["port"]
    for pipeline in collector["service"]["pipelines"].values():
        assert pipeline["exporters"] == ["loadbalancing"]
    assert set(collector["service"]["pipelines"]) == {"traces", "metrics", "logs"}


def test_scaleout_resolves_the_gateways_through_the_kubernetes_api():
    """The k8s resolver: the collector watches the headless Service's endpoints with its own ServiceAccount,
    whose Role grants exactly read access to Endpoints and EndpointSlices; the gateways lease streams."""
    docs = render("overlays/scaleout")
    headless = one(docs, "Service", "driftlock-api-headless")
    namespace = headless["metadata"]["namespace"]
    balancer_pod = pod_spec(one(docs, "Deployment", "otel-loadbalancer"))
    collector = yaml.safe_load(one(docs, "ConfigMap", next(
        v["configMap"]["name"] for v in balancer_pod["volumes"]))["data"]["collector.yaml"])
    jsonschema.validate(collector, COLLECTOR_CONFIG)
    _check_pipelines(collector)
    balancer = collector["exporters"]["loadbalancing"]
    assert balancer["routing_key"] == "service"
    assert set(balancer["resolver"]) == {"k8s"}, "one resolver only"
    assert balancer["resolver"]["k8s"]["service"] == f"driftlock-api-headless.{namespace}"
    assert balancer["resolver"]["k8s"]["ports"] == [p["port"] for p in headless["spec"]["ports"]
                                                    if p["name"] == "otlp-grpc"]
    assert set(collector["service"]["pipelines"]) == {"traces", "metrics", "logs"}
    for pipeline in collector["service"]["pipelines"].values():
        assert pipeline["exporters"] == ["loadbalancing"]

    account = balancer_pod["serviceAccountName"]
    assert balancer_pod["automountServiceAccountToken"] is True, "the resolver needs the API token"
    one(docs, "ServiceAccount", account)
    (binding,) = [b for b in objects(docs, "RoleBinding")
                  if any(s["kind"] == "ServiceAccount" and s["name"] == account for s in b["subjects"])]
    assert all(s.get("namespace", namespace) == namespace for s in binding["subjects"])
    role = one(docs, binding["roleRef"]["kind"], binding["roleRef"]["name"])
    granted = {(group, resource): set(rule["verbs"]) for rule in role["rules"]
               for group in rule["apiGroups"] for resource in rule["resources"]}
    assert granted == {("", "endpoints"): {"get", "list", "watch"},
                       ("discovery.k8s.io", "endpointslices"): {"get", "list", "watch"}}
    # the gateways keep their own identity without API access; they lease streams in Postgres
    gateway = one(docs, "Deployment", "driftlock-api")
    assert pod_spec(gateway)["automountServiceAccountToken"] is False
    config, _ = _gateway_config(docs, gateway)
    assert config.detection.ownership.active("postgres")
    assert config.store.migrate_on_start is False


def test_sidecar_puts_the_gateway_beside_the_application_on_loopback():
    docs = render("overlays/sidecar")
    workload = one(docs, "Deployment", "example-app")
    names = [c["name"] for c in pod_spec(workload)["containers"]]
    assert names == ["app", "gateway"]
    app_env = {e["name"]: e.get("value") for e in container(workload, "app")["env"]}
    assert app_env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://localhost:4317"
    config, _ = _gateway_config(docs, workload)
    assert config.receiver.grpc_listen == "127.0.0.1:4317"
    assert config.receiver.http_listen == "127.0.0.1:4318"
    assert config.exporter.endpoint and config.exporter.endpoint.startswith("grpc://")
    # Only the API/metrics port is published; the application's pod has no gateway network policy.
    (service,) = objects(docs, "Service")
    assert [p["port"] for p in service["spec"]["ports"]] == [80]
    assert not objects(docs, "NetworkPolicy") and not objects(docs, "PodDisruptionBudget")


def test_operator_sidecar_is_injected_and_forwards_to_the_gateway_service():
    docs = render("overlays/sidecar-operator")
    (collector,) = objects(docs, "OpenTelemetryCollector")
    assert collector["spec"]["mode"] == "sidecar"
    app = one(docs, "Deployment", "example-app")
    annotations = app["spec"]["template"]["metadata"]["annotations"]
    assert annotations["sidecar.opentelemetry.io/inject"] == collector["metadata"]["name"]
    config = collector["spec"]["config"]
    _check_pipelines(config)
    endpoint = config["exporters"]["otlp"]["endpoint"]
    host, port = endpoint.rsplit(":", 1)
    service = one(docs, "Service", "driftlock-api")
    assert host == f"driftlock-api.{service['metadata']['namespace']}.svc.cluster.local"
    assert int(port) in {p["port"] for p in service["spec"]["ports"]} and int(port) == 4317
    app_env = {e["name"]: e.get("value") for e in container(app, "app")["env"]}
    assert app_env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://localhost:4317"


def _check_pipelines(config: dict[str, Any]) -> None:
    """Every component a pipeline names is defined (the collector refuses to start otherwise)."""
    for name, pipeline in config["service"]["pipelines"].items():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in config.get(kind, {}), f"pipeline {name}: {kind} {component} undefined"
    for extension in config["service"].get("extensions", []):
        assert extension in config.get("extensions", {})
