"""The chart rendered by the real Helm engine for each values file under helm/hooknorm/ci/: lint,
Kubernetes schemas, the mode rules, pod security, the Ingress, and the values schema."""

import copy
import json
import shutil
import subprocess
import sys

import helm_python as helm
import jsonschema
import pytest
from chart import CHART, CI_VALUES, KUBE_VERSION, REPO, ci_values, fullname, load_values, render, validate

def embedded():
    return ci_values("embedded")


def nats():
    return ci_values("nats")


def test_ci_values_cover_both_modes_and_every_option_the_tests_check():
    modes = {load_values(path).get("mode", "embedded") for path in CI_VALUES}
    assert modes == {"embedded", "nats"}
    assert len(CI_VALUES) >= 3


def test_lint_is_clean(values):
    report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems and not report["errors"], report


def test_every_manifest_validates_against_kubernetes(values):
    rendered = render(values)
    for manifest in rendered.objects:
        validate(manifest)
    assert len(rendered.objects) >= 5


def test_custom_resources_get_their_metadata_validated():
    monitor = render(nats()).one("ServiceMonitor")
    monitor["metadata"]["lables"] = {}
    with pytest.raises(jsonschema.ValidationError, match="lables"):
        validate(monitor)


def test_embedded_is_one_statefulset_replica_with_a_volume():
    rendered = render(embedded())
    workload = rendered.workload()
    assert workload["kind"] == "StatefulSet"
    assert workload["spec"]["replicas"] == 1
    (claim,) = workload["spec"]["volumeClaimTemplates"]
    mount = {m["name"]: m for m in rendered.container()["volumeMounts"]}[claim["metadata"]["name"]]
    assert rendered.config()["store"] == {"backend": "sqlite", "path": mount["mountPath"]}
    assert not rendered.of_kind("HorizontalPodAutoscaler") and not rendered.of_kind("PodDisruptionBudget")


@pytest.mark.parametrize("override", [{"replicaCount": 2}, {"autoscaling": {"enabled": True}}])
def test_embedded_refuses_more_than_one_replica(override):
    with pytest.raises(helm.HelmRenderError, match="embedded mode runs exactly 1 replica.*mode: nats"):
        render({**embedded(), **override})


def test_nats_is_a_deployment_with_three_replicas_and_a_pdb():
    values = {**nats(), "autoscaling": {"enabled": False}}
    del values["replicaCount"]
    rendered = render(values)
    workload = rendered.workload()
    assert workload["kind"] == "Deployment"
    assert workload["spec"]["replicas"] == 3
    assert rendered.one("PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    assert rendered.config()["store"]["backend"] == "nats"


def test_nats_spreads_replicas_across_nodes():
    rendered = render(nats())
    (spread,) = rendered.pod_spec()["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["labelSelector"]["matchLabels"] == rendered.workload()["spec"]["selector"]["matchLabels"]


def test_nats_with_autoscaling_leaves_replicas_to_the_hpa():
    rendered = render(nats())
    assert "replicas" not in rendered.workload()["spec"]
    hpa = rendered.one("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": fullname()}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 6)


def test_pod_security_settings(values):
    rendered = render(values)
    pod = rendered.pod_spec()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    container = rendered.container()["securityContext"]
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"]["drop"] == ["ALL"]
    assert "add" not in container["capabilities"]
    # Every path hooknorm writes is a volume, not the read-only root.
    mounts = {m["mountPath"] for m in rendered.container()["volumeMounts"] if not m.get("readOnly")}
    assert rendered.config()["store"]["path"] in mounts and "/tmp" in mounts


def test_ingress_routes_only_webhooks_to_the_http_port():
    rendered = render(nats())
    ingress = rendered.one("Ingress")
    assert ingress["spec"]["rules"]
    for rule in ingress["spec"]["rules"]:
        (path,) = rule["http"]["paths"]
        assert (path["path"], path["pathType"]) == ("/webhooks/", "Prefix")
        assert path["backend"] == {"service": {"name": fullname(), "port": {"name": "http"}}}
    service = rendered.one("Service", fullname())
    http = {p["name"]: p for p in service["spec"]["ports"]}["http"]
    assert http["targetPort"] == "http"


def test_no_ingress_unless_asked():
    assert not render(embedded()).of_kind("Ingress")


def test_service_names_its_ports_and_grpc_speaks_grpc(values):
    ports = {p["name"]: p for p in render(values).one("Service", fullname())["spec"]["ports"]}
    assert set(ports) == {"grpc", "http", "ops"}
    assert ports["grpc"]["appProtocol"] == "grpc"


def test_service_monitor_scrapes_the_ops_port():
    rendered = render(nats())
    monitor = rendered.one("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["selector"]["matchLabels"] == rendered.workload()["spec"]["selector"]["matchLabels"]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("ops", "/metrics")


def test_network_policy_admits_grpc_only_from_the_listed_peers():
    rendered = render(nats())
    rules = rendered.one("NetworkPolicy")["spec"]["ingress"]
    by_port = {rule["ports"][0]["port"]: rule for rule in rules}
    ports = nats().get("ports", {"grpc": 50051, "http": 8080, "ops": 8081})
    assert by_port[ports["grpc"]]["from"] == nats()["networkPolicy"]["grpcFrom"]
    assert "from" not in by_port[ports["http"]]


def test_telemetry_is_the_standard_otel_env():
    env = {e["name"]: e["value"] for e in render(nats()).container()["env"]}
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability:4317"
    assert env["OTEL_SERVICE_NAME"] == "hooknorm"
    assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert env["OTEL_TRACES_SAMPLER_ARG"] == "0.1"
    assert env["OTEL_RESOURCE_ATTRIBUTES"] == "deployment.environment=ci"


def test_a_config_change_rolls_the_pods():
    def checksum(values):
        return render(values).workload()["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    changed = copy.deepcopy(embedded())
    changed["config"] = {"log": {"level": "debug"}}
    assert checksum(embedded()) == checksum(copy.deepcopy(embedded()))
    assert checksum(embedded()) != checksum(changed)


def test_a_trial_secret_change_rolls_the_pods():
    def checksum(values):
        return render(values).workload()["spec"]["template"]["metadata"]["annotations"]["checksum/secret"]

    changed = copy.deepcopy(embedded())
    changed["apiKeys"]["keys"][0]["secretValue"] = "another-ci-api-key-0000"
    assert checksum(embedded()) != checksum(changed)


@pytest.mark.parametrize(
    "typo",
    [
        {"replicaCont": 2},
        {"config": {"http": {"max_concurency": 10}}},
        {"webhooks": {"sources": [{"name": "gigs", "provider": "gigs", "secretValue": ["x"]}]}},
        {"mode": "sqlite"},
    ],
    ids=["top-level", "config-key", "source-key", "mode"],
)
def test_the_values_schema_refuses_typos(typo):
    with pytest.raises(helm.HelmValuesError):
        render({**embedded(), **typo})


def test_termination_grace_must_exceed_drain_plus_shutdown_grace():
    with pytest.raises(helm.HelmRenderError, match="must exceed config.server.drain_seconds"):
        render({**embedded(), "terminationGracePeriodSeconds": 25})
    assert render({**embedded(), "terminationGracePeriodSeconds": 26}).pod_spec()["terminationGracePeriodSeconds"] == 26


def test_notes_give_each_source_its_webhook_url():
    notes = render(nats()).notes
    assert "https://webhooks.example.com/webhooks/gigs\n" in notes
    assert "https://webhooks.example.com/webhooks/abowire?token=<token>" in notes
    embedded_notes = render(embedded()).notes
    assert "/webhooks/mobile-manager?key=<token>" in embedded_notes
    assert "port-forward service/" + fullname() in embedded_notes


def test_dashboard_configmap_holds_the_dashboard_json(tmp_path):
    # The dashboard JSON is written apart from the chart's templates: use the chart's own when it
    # has one, else a stand-in, so this checks the wiring either way.
    chart = tmp_path / "hooknorm"
    shutil.copytree(CHART, chart)
    dashboard = chart / "dashboards" / "hooknorm.json"
    if not dashboard.exists():
        dashboard.parent.mkdir()
        dashboard.write_text(json.dumps({"title": "hooknorm", "panels": [{"id": 1, "type": "timeseries"}]}))
    values = {**embedded(), "dashboard": {"enabled": True}}
    config_map = render(values, chart_dir=chart).one("ConfigMap", f"{fullname()}-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["hooknorm.json"]) == json.loads(dashboard.read_text())
    validate(config_map)


def test_readme_values_table_is_the_schemas():
    script = REPO / "scripts" / "helm-values-table"
    result = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "source, message",
    [
        ({"name": "gigs", "provider": "gigs"}, "its scheme needs secrets"),
        ({"name": "gigs", "provider": "gigs", "secretKeys": ["gigs"]}, "name the Secret holding them in webhooks.existingSecret"),
        ({"name": "p", "provider": "abowire", "verification": {"scheme": "none"}, "secretValues": ["x"]}, "takes no secrets"),
        ({"name": "mm", "provider": "mobile_manager", "verification": {"scheme": "basic_auth", "username": "u"},
          "secretValues": ["a", "b"]}, "basic_auth takes one password"),
    ],
    ids=["no-secret", "no-existing-secret", "secret-for-none", "two-passwords"],
)
def test_a_source_must_get_its_secrets_from_a_secret(source, message):
    with pytest.raises(helm.HelmRenderError, match=message):
        render({**embedded(), "webhooks": {"sources": [source]}})


def test_the_shutdown_budget_cannot_be_unset():
    # Helm drops a key set to null; the grace period is computed from both.
    with pytest.raises(helm.HelmValuesError, match="shutdown_grace_seconds"):
        render({**embedded(), "config": {"server": {"shutdown_grace_seconds": None}}})
