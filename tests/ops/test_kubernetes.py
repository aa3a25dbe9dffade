"""deploy/kubernetes: valid Kubernetes objects whose pieces agree with each other and with ``mlgate server``.

No cluster here, so each manifest is validated offline against the Kubernetes OpenAPI schemas that the
kubernetes-validate package ships (strict: an unknown or misspelt field is an error, as ``kubectl apply
--validate=strict`` would say), for the newest schema version it has and an older one still in support;
then the objects are checked against each other (selectors, ports, names, the Secret's keys) and the
container's command line is parsed by mlgate's own option parser (tests/ops/test_deploy.py's helpers).
"""

from __future__ import annotations

import copy
import re
from urllib.parse import urlsplit

import pytest
import yaml
from kubernetes_validate import utils as kubernetes_schema

from tests.ops.test_deploy import DEPLOY, checked, compose, parsed

KUBERNETES = DEPLOY / "kubernetes"
VERSIONS = ("1.37.0", "1.31.0")  # the newest schemas shipped, and an older release still run by providers
SECRET_NAMES = {"MLGATE_SECRET_KEY", "MLGATE_ADMIN_PASSWORD", "MLGATE_METRICS_TOKEN", "PGPASSWORD",
                "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def manifests() -> dict[str, dict]:
    """Every object in deploy/kubernetes, by kind (kustomize's own file aside)."""
    found = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            assert document["kind"] not in found, f"two {document['kind']} objects"
            found[document["kind"]] = document | {"_file": path.name}
    return found


def strict_errors(obj: dict, version: str) -> str | None:
    """The schema's complaint about ``obj`` (None when it is valid)."""
    try:
        kubernetes_schema.validate({k: v for k, v in obj.items() if k != "_file"}, version, strict=True)
    except kubernetes_schema.ValidationError as exc:
        return str(exc)
    return None


def container(objects: dict) -> dict:
    containers = objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_is_a_valid_kubernetes_object(version: str):
    objects = manifests()
    assert set(objects) == {"ServiceAccount", "Deployment", "Service", "Ingress", "PodDisruptionBudget",
                            "HorizontalPodAutoscaler"}
    for kind, obj in objects.items():
        assert strict_errors(obj, version) is None, f"{obj['_file']} ({kind}): {strict_errors(obj, version)}"


def test_the_validation_fails_on_a_misspelt_field_and_a_wrong_type():
    deployment = manifests()["Deployment"]
    misspelt = copy.deepcopy(deployment)
    misspelt["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {"httpGet": {"path": "/health"}}
    assert "livenesProbe" in strict_errors(misspelt, VERSIONS[0])
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "3"
    assert strict_errors(wrong_type, VERSIONS[0]) is not None
    missing = copy.deepcopy(manifests()["Service"])
    del missing["spec"]["ports"][0]["port"]
    assert strict_errors(missing, VERSIONS[0]) is not None


def test_kustomization_applies_every_manifest_but_the_optional_autoscaler():
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    files = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files - {"hpa.yaml"}
    assert "hpa.yaml" in (KUBERNETES / "kustomization.yaml").read_text()  # named, commented out


def test_the_container_runs_the_compose_files_server_with_probes_and_grace_period():
    objects = manifests()
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    main = container(objects)
    assert main["command"] == ["mlgate"]
    assert main["args"][0] == "server"
    options = checked(main["args"][1:])
    assert options.keys() == parsed(compose()["services"]["mlgate"]["command"][2:]).keys()
    assert urlsplit(options["artifacts_destination"]).scheme == "s3"
    assert options["redis_url"].startswith("redis://")  # shared limits, lockout and caches across pods
    assert urlsplit(options["backend_store_uri"]).password is None
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    assert ports == {"http": options["port"]}
    assert main["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert main["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert pod["terminationGracePeriodSeconds"] > options["shutdown_timeout"]
    assert objects["Deployment"]["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_secrets_come_only_from_the_secret_and_the_pod_runs_unprivileged():
    objects = manifests()
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    main = container(objects)
    from_secret = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in main["env"] if "valueFrom" in e}
    assert set(from_secret) == SECRET_NAMES
    for name, ref in from_secret.items():
        assert ref == {"name": "mlgate-secrets", "key": name}  # required: no "optional: true" fallback
    literal = {e["name"] for e in main["env"] if "value" in e}
    assert not literal & SECRET_NAMES
    assert not any(re.search(r"(?i)secret|password|token", a) for a in main["args"])
    assert "envFrom" not in main
    # The Dockerfile's fixed uid, no privileges, a read-only image with writable scratch space only.
    uid = re.search(r"useradd [^\n]*--uid (\d+)", (DEPLOY / "Dockerfile").read_text()).group(1)
    assert pod["securityContext"]["runAsUser"] == int(uid)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert main["securityContext"] == {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                                       "capabilities": {"drop": ["ALL"]}}
    assert {m["mountPath"] for m in main["volumeMounts"]} == {"/tmp", "/var/lib/mlgate"}
    assert {v["name"]: v for v in pod["volumes"]}.keys() == {m["name"] for m in main["volumeMounts"]}
    # No Kubernetes API token in the pods: mlgate calls no Kubernetes API.
    assert pod["serviceAccountName"] == objects["ServiceAccount"]["metadata"]["name"]
    assert objects["ServiceAccount"]["automountServiceAccountToken"] is False
    assert pod["automountServiceAccountToken"] is False


def test_service_ingress_budget_and_autoscaler_point_at_the_deployment():
    objects = manifests()
    deployment = objects["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = objects["Service"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    options = parsed(container(objects)["args"][1:])
    backend = objects["Ingress"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": service["metadata"]["name"], "port": {"name": service["spec"]["ports"][0]["name"]}}
    hosts = {r["host"] for r in objects["Ingress"]["spec"]["rules"]}
    assert hosts == set(options["allowed_hosts"].split(","))
    assert hosts == {h for t in objects["Ingress"]["spec"]["tls"] for h in t["hosts"]}
    assert objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert objects["PodDisruptionBudget"]["spec"]["maxUnavailable"] < deployment["spec"]["replicas"]
    target = objects["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert objects["HorizontalPodAutoscaler"]["spec"]["minReplicas"] >= deployment["spec"]["replicas"]
