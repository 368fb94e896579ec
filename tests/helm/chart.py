"""Rendering the chart with the real Helm engine (helm-python-sdk embeds Helm's Go SDK), and a
kubelet of sorts: lay out a rendered pod's config and secret volumes in a directory so the real
`hooknorm check-config` can load what the pod would.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import helm_python as helm
import jsonschema
import kubernetes_validate
import referencing
import yaml
from kubernetes_validate.utils import schema_contents

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
# Which binary the suites run ($HOOKNORM_BIN, else the debug build) is the client suites' rule.
sys.path.insert(0, str(REPO / "tests" / "python"))
from hooknorm_server import binary  # noqa: E402

CHART = REPO / "helm" / "hooknorm"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
RELEASE = "hn"
NAMESPACE = "hooks"
# The Kubernetes version manifests are validated against: the newest kubernetes-validate knows.
KUBE_VERSION = "1.37.0"
CONFIG_FILE = "hooknorm.toml"


def load_values(path: Path) -> dict:
    with open(path) as f:
        return yaml.safe_load(f) or {}


def ci_values(name: str) -> dict:
    """helm/hooknorm/ci/<name>-values.yaml, freshly read (tests may change it)."""
    return load_values(CHART / "ci" / f"{name}-values.yaml")


@dataclass
class Rendered:
    """One release's manifests: the parsed objects, and NOTES.txt as text."""

    objects: List[dict]
    notes: str
    values: dict = field(default_factory=dict)

    def of_kind(self, kind: str) -> List[dict]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, name: Optional[str] = None) -> dict:
        found = [o for o in self.of_kind(kind) if name is None or o["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
        return found[0]

    def workload(self) -> dict:
        found = self.of_kind("StatefulSet") + self.of_kind("Deployment")
        assert len(found) == 1, f"expected one workload, got {[o['kind'] for o in found]}"
        return found[0]

    def pod_spec(self) -> dict:
        return self.workload()["spec"]["template"]["spec"]

    def container(self) -> dict:
        (container,) = self.pod_spec()["containers"]
        return container

    def config_text(self) -> str:
        return self.one("ConfigMap", fullname())["data"][CONFIG_FILE]

    def config(self) -> dict:
        return tomllib.loads(self.config_text())


def fullname() -> str:
    return f"{RELEASE}-hooknorm"


def render(values: dict, chart_dir: Path = CHART) -> Rendered:
    """Renders as `helm template` would (schema validation included); raises helm's errors."""
    with helm.Chart.load(chart_dir) as chart:
        manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE)
    objects: List[dict] = []
    notes = ""
    for template, text in sorted(manifests.items()):
        if template.endswith("NOTES.txt"):
            notes = text
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return Rendered(objects=objects, notes=notes, values=values)


def secret_data(secret: dict) -> Dict[str, str]:
    """A Secret's contents as the pod would see them (stringData, as the chart writes it)."""
    assert "data" not in secret, "the chart writes stringData only"
    return dict(secret.get("stringData") or {})


def mount_pod(rendered: Rendered, root: Path, existing: Dict[str, Dict[str, str]]) -> Path:
    """Writes every mounted volume of the pod under `root` (a mount path /x becomes root/x), with
    the chart's own Secret and ConfigMap from the render and `existing` Secrets by name; returns
    the config file, its absolute paths moved under `root` likewise."""
    secrets = {s["metadata"]["name"]: secret_data(s) for s in rendered.of_kind("Secret")}
    for name, data in existing.items():
        assert name not in secrets, f"the chart made Secret {name} that should exist already"
        secrets[name] = data
    config_maps = {c["metadata"]["name"]: c["data"] for c in rendered.of_kind("ConfigMap")}
    volumes = {v["name"]: v for v in rendered.pod_spec()["volumes"]}
    # The StatefulSet's claim is a volume too.
    for claim in rendered.workload()["spec"].get("volumeClaimTemplates", []):
        volumes[claim["metadata"]["name"]] = {"name": claim["metadata"]["name"], "claim": True}
    mounts = rendered.container()["volumeMounts"]
    for mount in mounts:
        volume = volumes[mount["name"]]
        target = root / mount["mountPath"].lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        if "configMap" in volume:
            for key, value in config_maps[volume["configMap"]["name"]].items():
                (target / key).write_text(value)
        elif "secret" in volume:
            for key, value in secrets[volume["secret"]["secretName"]].items():
                (target / key).write_text(value)
        elif "projected" in volume:
            for source in volume["projected"]["sources"]:
                data = secrets[source["secret"]["name"]]
                for item in source["secret"]["items"]:
                    path = target / item["path"]
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(data[item["key"]])
        else:
            assert "emptyDir" in volume or volume.get("claim"), f"unexpected volume {volume}"
    args = rendered.container()["args"]
    config_path = args[args.index("--config") + 1]
    config = root / config_path.lstrip("/")
    text = config.read_text()
    # One pass, longest first: a path is moved once, even where `root` itself lies under a mount.
    paths = sorted({m["mountPath"] for m in mounts}, key=len, reverse=True)
    pattern = re.compile('"(' + "|".join(re.escape(p) for p in paths) + ")(?=[/\"])")
    config.write_text(pattern.sub(lambda match: f'"{root}{match.group(1)}', text))
    return config


def check_config(rendered: Rendered, config: Path) -> subprocess.CompletedProcess:
    """`hooknorm check-config` on `config`, with the container's env and no HOOKNORM_* override."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKNORM_")}
    for entry in rendered.container().get("env", []):
        env[entry["name"]] = entry["value"]
    return subprocess.run(
        [binary(), "check-config", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def values_secrets(values: dict) -> List[str]:
    """Every secret a values file gives literally (secretValues, secretValue), wherever it is."""
    found: List[str] = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "secretValues":
                    found.extend(value)
                elif key == "secretValue" and value:
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(values)
    return found


def validate(manifest: dict) -> None:
    """Validates against the Kubernetes schemas (strict: unknown fields fail). The kinds they do not
    know (custom resources such as ServiceMonitor) get what they share with every object checked:
    `metadata` as an ObjectMeta and a `spec.selector` as a LabelSelector."""
    try:
        kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True)
        return
    except kubernetes_validate.SchemaNotFoundError:
        pass
    directory = f"kubernetes-json-schema/v{KUBE_VERSION}-local-strict"
    definitions = referencing.Resource.from_contents(schema_contents(f"{directory}/_definitions.json", KUBE_VERSION))
    for schema_file, part in [
        ("objectmeta-meta-v1.json", manifest["metadata"]),
        ("labelselector-meta-v1.json", manifest.get("spec", {}).get("selector")),
    ]:
        if part is not None:
            schema = schema_contents(f"{directory}/{schema_file}", KUBE_VERSION)
            registry = definitions @ (referencing.Resource.from_contents(schema) @ referencing.Registry())
            jsonschema.Draft202012Validator(schema, registry=registry).validate(part)
