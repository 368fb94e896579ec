"""The hooknorm config the chart renders, fed to the real binary's `check-config` with the pod's
volumes laid out as the kubelet would mount them; and what must agree between chart and config:
ports, probe paths, the shutdown budget, and where secrets may (never) appear."""

import pytest
from chart import check_config, ci_values, mount_pod, render, values_secrets


def test_hooknorm_accepts_the_rendered_config(values, existing_secrets, tmp_path):
    rendered = render(values)
    config = mount_pod(rendered, tmp_path, existing_secrets)
    result = check_config(rendered, config)
    assert result.returncode == 0, result.stderr
    sources = len(values.get("webhooks", {}).get("sources", []))
    assert result.stdout.strip() == f"config ok: {sources} sources"


def test_hooknorm_names_a_secret_the_pod_lacks(existing_secrets, tmp_path):
    # The same wiring with one Secret key missing: what the kubelet would refuse to mount, a
    # hand-written config would hit at start-up.
    rendered = render(ci_values("nats"))
    config = mount_pod(rendered, tmp_path, existing_secrets)
    (config.parents[1] / "secrets" / "sources" / "gigs" / "1").unlink()
    result = check_config(rendered, config)
    assert result.returncode != 0
    assert "sources[0].verification.secrets[1]" in result.stderr


def test_listeners_and_probes_agree_with_the_pod(values):
    rendered = render(values)
    server = rendered.config()["server"]
    ports = {p["name"]: p["containerPort"] for p in rendered.container()["ports"]}
    for name in ("grpc", "http", "ops"):
        # Every interface: the kubelet and the Service reach the pod on its own IP.
        assert server[f"{name}_listen"] == f"0.0.0.0:{ports[name]}"
    container = rendered.container()
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "ops"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "ops"}
    service_ports = {p["name"]: p for p in rendered.one("Service", rendered.workload()["metadata"]["name"])["spec"]["ports"]}
    for name, port in ports.items():
        assert service_ports[name]["targetPort"] == name


def test_termination_grace_outlasts_drain_and_shutdown_grace(values):
    rendered = render(values)
    server = rendered.config()["server"]
    grace = rendered.pod_spec()["terminationGracePeriodSeconds"]
    assert server["drain_seconds"] > 0
    assert grace > server["drain_seconds"] + server["shutdown_grace_seconds"]


def test_no_secret_value_in_any_configmap(values, existing_secrets):
    rendered = render(values)
    given = values_secrets(values)
    stubs = [v for data in existing_secrets.values() for v in data.values()]
    config_maps = "\n".join(v for c in rendered.of_kind("ConfigMap") for v in c["data"].values())
    for secret in given + stubs:
        assert secret not in config_maps
    # The values given literally are in the chart's Secret, which is where they belong.
    chart_secret = "\n".join(v for s in rendered.of_kind("Secret") for v in (s.get("stringData") or {}).values())
    for secret in given:
        assert secret in chart_secret


def test_every_secret_in_the_config_is_a_file_reference(values):
    config = render(values).config()
    references = []
    for source in config.get("sources", []):
        verification = source["verification"]
        for key in ("secrets", "tokens"):
            references.extend(verification.get(key, []))
        if "password" in verification:
            references.append(verification["password"])
    references.extend(k["key"] for k in config.get("auth", {}).get("keys", []) if "key" in k)
    nats = config["store"].get("nats", {})
    references.extend(nats[k] for k in ("password", "token", "nkey_seed", "credentials") if k in nats)
    assert references
    for reference in references:
        assert set(reference) == {"file"} and reference["file"].startswith("/etc/hooknorm/secrets/")


def test_existing_secrets_make_no_chart_secret():
    rendered = render(ci_values("existing-secrets"))
    assert not rendered.of_kind("Secret")


def test_telemetry_stays_out_of_the_config():
    assert "telemetry" not in render(ci_values("nats")).config()


def test_auth_none_is_written_explicitly():
    values = ci_values("embedded")
    values["apiKeys"] = {"none": True}
    rendered = render(values)
    assert rendered.config()["auth"] == "none"
    with pytest.raises(Exception, match="apiKeys.keys: give at least one key"):
        render({**values, "apiKeys": {"keys": []}})
