"""The Helm chart charts/portier: lint, schema, rendered objects and their safety properties."""

from __future__ import annotations

import base64
import copy
import datetime
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate.utils
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

import chartlib
import pki
from chartlib import KUBE_VERSION, NAMESPACE, by_kind, one, render, render_objects

# A client CA for the mutual TLS values (PEM, as a user would paste it into mtls.clientCA).
CLIENT_CA_PEM = pki.make_ca("portier-test-client-ca").cert_pem.decode()

ALWAYS_EXCLUDED = {"kube-system", "kube-node-lease", "kube-public"}
POD_CONTROLLERS = {
    "": {"pods", "replicationcontrollers"},
    "apps": {"deployments", "statefulsets", "daemonsets", "replicasets"},
    "batch": {"jobs", "cronjobs"},
}

# Every optional feature switched on, with non-default names, to render every template.
ALL_ON: dict[str, Any] = {
    "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 9,
                    "targetMemoryUtilizationPercentage": 80},
    "networkPolicy": {"enabled": True, "webhookFrom": [{"ipBlock": {"cidr": "10.0.0.0/24"}}],
                      "metricsFrom": [{"namespaceSelector": {"matchLabels": {
                          "kubernetes.io/metadata.name": "monitoring"}}}]},
    "mtls": {"enabled": True, "clientCA": CLIENT_CA_PEM,
             "allowedSubjects": ["kube-apiserver-webhook-client", "kube-apiserver-*"]},
    "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "grafanaDashboard": {"enabled": True, "namespace": "monitoring"},
    "priorityClassName": "system-cluster-critical",
    "image": {"digest": "sha256:" + "a" * 64},
    "imagePullSecrets": [{"name": "regcred"}],
    "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "logFormat": "json",
    "extraArgs": ["--allow-empty"],
    "audit": {"interval": "10m", "policyReports": True, "installCRDs": True},
    "extraEnv": [{"name": "RUST_LOG", "value": "info"}],
    "extraVolumes": [{"name": "cosign-keys", "secret": {"secretName": "cosign-keys"}},
                     {"name": "scratch", "emptyDir": {"sizeLimit": "16Mi"}}],
    "extraVolumeMounts": [{"name": "cosign-keys", "mountPath": "/etc/portier/keys", "readOnly": True},
                          {"name": "scratch", "mountPath": "/tmp"}],
    "podAnnotations": {"example.com/a": "b"},
    "podLabels": {"team": "platform"},
    "service": {"annotations": {"example.com/s": "t"}},
    "webhook": {"excludeNamespaces": ["legacy"],
                "namespaceSelector": {"matchLabels": {"portier.dev/enforce": "true"}},
                "objectSelector": {"matchExpressions": [
                    {"key": "portier.dev/skip", "operator": "DoesNotExist"}]},
                "matchConditions": [{"name": "not-ci", "expression":
                                     "request.userInfo.username != 'system:serviceaccount:ci:bot'"}]},
    "extraPolicies": [{"apiVersion": "portier.dev/v1", "kind": "Policy",
                       "metadata": {"name": "team-limits"},
                       "spec": {"check": "resource-limits", "mode": "warn",
                                "match": {"namespaces": ["team-*"]}}}],
}

SCENARIOS = {
    "defaults": {},
    "cert-manager": {"certManager": {"enabled": True}},
    "cert-manager-issuer": {"certManager": {"enabled": True,
                                            "issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer",
                                                          "group": "cert-manager.io"}}},
    "mutation-off": {"webhook": {"mutating": {"enabled": False}}},
    "all-features": ALL_ON,
    "single-replica": {"replicaCount": 1},
    "mtls-existing-secret": {"mtls": {"enabled": True, "existingSecret": "apiserver-client-ca"},
                             "networkPolicy": {"enabled": True}},
}


@pytest.fixture(scope="module", params=sorted(SCENARIOS))
def scenario(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    values = SCENARIOS[request.param]
    return request.param, values, render_objects(values)


@pytest.fixture(scope="module")
def default_objs() -> list[dict[str, Any]]:
    return render_objects()


def webhook_configs(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return by_kind(objs, "ValidatingWebhookConfiguration") + by_kind(objs, "MutatingWebhookConfiguration")


def all_webhooks(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [wh for cfg in webhook_configs(objs) for wh in cfg["webhooks"]]


def pod_spec(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objs, "Deployment")["spec"]["template"]["spec"]


def container(objs: list[dict[str, Any]]) -> dict[str, Any]:
    containers = pod_spec(objs)["containers"]
    assert len(containers) == 1
    return containers[0]


def arg_value(args: list[str], flag: str) -> str:
    assert flag in args, f"{flag} missing from {args}"
    return args[args.index(flag) + 1]


# ---------------------------------------------------------------------------------- lint

@pytest.mark.parametrize("name", ["defaults", "cert-manager", "all-features"])
def test_lint_strict(name: str) -> None:
    report = helm.lint(chartlib.CHART, SCENARIOS[name], strict=True,
                       kube_version="v" + KUBE_VERSION, namespace=NAMESPACE)
    # Severity 1 is INFO (e.g. "icon is recommended"); strict lint fails on warnings too.
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems and not report["errors"], report


def test_chart_metadata() -> None:
    with helm.Chart.load(chartlib.CHART) as chart:
        meta = chart.metadata
        assert meta["apiVersion"] == "v2"
        assert meta["name"] == "portier"
        assert meta["kubeVersion"] == f">={KUBE_VERSION}-0"
        assert chart.schema is not None
        # helm create's value names.
        for key in ("replicaCount", "image", "imagePullSecrets", "nameOverride", "fullnameOverride",
                    "serviceAccount", "podAnnotations", "podLabels", "podSecurityContext",
                    "securityContext", "service", "resources", "livenessProbe", "readinessProbe",
                    "autoscaling", "nodeSelector", "tolerations", "affinity"):
            assert key in chart.values, key
        assert set(chart.values["image"]) >= {"repository", "tag", "pullPolicy"}


# ------------------------------------------------------------------------- schema: bad values

BAD_VALUES = {
    "replicaCount string": {"replicaCount": "two"},
    "replicaCount float": {"replicaCount": 1.5},
    "replicaCount zero": {"replicaCount": 0},
    "unknown top-level key (typo)": {"replicaCounts": 3},
    "pullPolicy": {"image": {"pullPolicy": "Sometimes"}},
    "failurePolicy": {"webhook": {"failurePolicy": "Maybe"}},
    "timeoutSeconds > 30": {"webhook": {"timeoutSeconds": 31}},
    "timeoutSeconds 0": {"webhook": {"timeoutSeconds": 0}},
    "excluded namespace not a DNS label": {"webhook": {"excludeNamespaces": ["Bad_Name"]}},
    "privileged container": {"securityContext": {"privileged": True}},
    "writable root filesystem": {"securityContext": {"readOnlyRootFilesystem": False}},
    "privilege escalation": {"securityContext": {"allowPrivilegeEscalation": True}},
    "added capability": {"securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}},
    "capabilities not dropped": {"securityContext": {"capabilities": {"drop": ["NET_RAW"]}}},
    "root pod": {"podSecurityContext": {"runAsNonRoot": False}},
    "runAsUser 0": {"podSecurityContext": {"runAsUser": 0}},
    "no memory limit": {"resources": {"limits": {"memory": None}}},
    "privileged webhook port": {"ports": {"webhook": 443}},
    "privileged metrics port": {"ports": {"metrics": 80}},
    "old single containerPort value": {"containerPort": 8443},
    "no fsGroup (the 0440 key would be unreadable)": {"podSecurityContext": {"fsGroup": None}},
    "fsGroup 0": {"podSecurityContext": {"fsGroup": 0}},
    "maxInFlight 0": {"maxInFlight": 0},
    "shutdownDelaySeconds negative": {"shutdownDelaySeconds": -1},
    "old networkPolicy.ingressFrom": {"networkPolicy": {"enabled": True, "ingressFrom": []}},
    "network peer typo": {"networkPolicy": {"webhookFrom": [{"ipblock": {"cidr": "10.0.0.0/8"}}]}},
    "network peer empty": {"networkPolicy": {"metricsFrom": [{}]}},
    "ipBlock without cidr": {"networkPolicy": {"webhookFrom": [{"ipBlock": {"except": ["10.0.0.1/32"]}}]}},
    "mtls enabled without a CA": {"mtls": {"enabled": True}},
    "mtls with two CAs": {"mtls": {"enabled": True, "clientCA": CLIENT_CA_PEM, "existingSecret": "ca"}},
    "mtls with a ConfigMap and a Secret": {"mtls": {"enabled": True, "existingConfigMap": "ca",
                                                    "existingSecret": "ca"}},
    "mtls CA not PEM": {"mtls": {"enabled": True, "clientCA": "MIIBszCCAVmgAwIBAgIU"}},
    "mtls CA a private key": {"mtls": {"enabled": True, "clientCA":
                                       "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n"}},
    "mtls CA with a private key": {"mtls": {"enabled": True, "clientCA": CLIENT_CA_PEM +
                                            "-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n"}},
    "mtls bad Secret name": {"mtls": {"enabled": True, "existingSecret": "Client_CA"}},
    "mtls empty subject": {"mtls": {"enabled": True, "existingSecret": "ca", "allowedSubjects": [""]}},
    "mtls subjects not a list": {"mtls": {"enabled": True, "existingSecret": "ca",
                                          "allowedSubjects": "kube-apiserver"}},
    "mtls unknown key": {"mtls": {"enabled": True, "existingSecret": "ca", "clientCn": ["x"]}},
    "mtls enabled not a boolean": {"mtls": {"enabled": "yes", "existingSecret": "ca"}},
    "policy without name": {"extraPolicies": [{"apiVersion": "portier.dev/v1", "kind": "Policy",
                                               "metadata": {}, "spec": {"check": "privileged"}}]},
    "policy bad mode": {"extraPolicies": [{"apiVersion": "portier.dev/v1", "kind": "Policy",
                                           "metadata": {"name": "x"},
                                           "spec": {"check": "privileged", "mode": "block"}}]},
    "policy wrong kind": {"policies": {"x": {"apiVersion": "v1", "kind": "ConfigMap",
                                             "metadata": {"name": "x"}, "spec": {"check": "a"}}}},
    "matchCondition without expression": {"webhook": {"matchConditions": [{"name": "x"}]}},
    "bad duration": {"certManager": {"duration": "90 days"}},
    "issuerRef without name": {"certManager": {"issuerRef": {"kind": "ClusterIssuer"}}},
    "bad digest": {"image": {"digest": "latest"}},
    "log format": {"logFormat": "xml"},
    "audit interval not a duration": {"audit": {"interval": "often"}},
    "audit unknown key": {"audit": {"interval": "10m", "reports": True}},
    "audit installCRDs not a boolean": {"audit": {"installCRDs": "yes"}},
    "extraVolumes not a list": {"extraVolumes": {"name": "keys", "emptyDir": {}}},
    "hostPath volume (not restricted)": {"extraVolumes": [{"name": "host", "hostPath": {"path": "/etc"}}]},
    "volume without a source": {"extraVolumes": [{"name": "keys"}]},
    "volume with two sources": {"extraVolumes": [{"name": "keys", "emptyDir": {},
                                                  "secret": {"secretName": "keys"}}]},
    "volume without a name": {"extraVolumes": [{"emptyDir": {}}]},
    "volume name not a DNS label": {"extraVolumes": [{"name": "Keys_1", "emptyDir": {}}]},
    "volume mount without mountPath": {"extraVolumeMounts": [{"name": "keys"}]},
    "volume mount relative path": {"extraVolumeMounts": [{"name": "keys", "mountPath": "etc/keys"}]},
    "volume mount typo": {"extraVolumeMounts": [{"name": "keys", "mountPath": "/k", "readonly": True}]},
    "volume mount Bidirectional (needs privileged)": {
        "extraVolumeMounts": [{"name": "keys", "mountPath": "/k", "mountPropagation": "Bidirectional"}]},
}


@pytest.mark.parametrize("values", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_bad_values_fail_on_the_schema(values: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmValuesError, match="values don't meet the specifications"):
        render(values)
    report = helm.lint(chartlib.CHART, values, strict=True, kube_version="v" + KUBE_VERSION)
    assert report["errors"], "helm lint must report the schema violation"


def test_duplicate_policy_names_fail() -> None:
    name = sorted(chartlib.chart_default_policies())[0]
    extra = {"apiVersion": "portier.dev/v1", "kind": "Policy", "metadata": {"name": name},
             "spec": {"check": "privileged"}}
    with pytest.raises(helm.HelmRenderError, match="already defined"):
        render({"extraPolicies": [extra]})


def test_an_empty_policy_set_fails() -> None:
    """An empty set would admit everything: refuse it at install."""
    none = {name: None for name in chartlib.chart_default_policies()}
    with pytest.raises(helm.HelmRenderError, match="no policies"):
        render({"policies": none})


# ---------------------------------------------------------- rendered objects are valid Kubernetes

def test_every_object_is_valid_kubernetes(scenario: tuple[str, dict[str, Any], list[dict[str, Any]]]) -> None:
    name, _, objs = scenario
    assert objs, name
    for obj in objs:
        key = (obj["apiVersion"], obj["kind"])
        if key in chartlib.CUSTOM_KINDS:
            check_custom_object(obj)
        else:
            chartlib.validate(obj)
        meta = obj["metadata"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", meta["name"]), meta["name"]
        if obj["kind"] not in {"ClusterRole", "ClusterRoleBinding", "ValidatingWebhookConfiguration",
                               "MutatingWebhookConfiguration", "CustomResourceDefinition"}:
            want_ns = "monitoring" if obj["kind"] == "ConfigMap" and meta["name"].endswith("-dashboard") \
                else NAMESPACE
            assert meta.get("namespace") == want_ns, f"{obj['kind']}/{meta['name']}"
        assert meta["labels"]["app.kubernetes.io/name"] == "portier"


def test_default_objects_are_valid_on_the_newest_kubernetes(default_objs: list[dict[str, Any]]) -> None:
    """No API the chart uses is gone in the newest Kubernetes kubernetes-validate knows."""
    newest = kubernetes_validate.utils.latest_version()
    assert newest >= "1.37"
    for obj in default_objs:
        chartlib.validate(obj, newest)


def test_validation_rejects_misspelled_fields(default_objs: list[dict[str, Any]]) -> None:
    """The validator in use does catch a typo (so the test above means something)."""
    deployment = json.loads(json.dumps(one(default_objs, "Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFileSystem"] = True
    with pytest.raises(Exception, match="readOnlyRootFileSystem"):
        chartlib.validate(deployment)


def check_custom_object(obj: dict[str, Any]) -> None:
    """Objects of CRD kinds (no schema in kubernetes-validate): the fields the chart uses,
    as cert-manager v1 and Prometheus Operator v1 define them."""
    spec = obj["spec"]
    if obj["kind"] == "Issuer":
        assert set(spec) in ({"selfSigned"}, {"ca"}), spec
        if "ca" in spec:
            assert set(spec["ca"]) == {"secretName"}
    elif obj["kind"] == "Certificate":
        allowed = {"secretName", "commonName", "dnsNames", "duration", "renewBefore", "isCA",
                   "privateKey", "usages", "issuerRef"}
        assert set(spec) <= allowed, set(spec) - allowed
        assert spec["secretName"] and spec["issuerRef"]["name"]
        assert set(spec["issuerRef"]) <= {"name", "kind", "group"}
        assert set(spec["privateKey"]) <= {"algorithm", "size", "encoding", "rotationPolicy"}
        assert spec["privateKey"]["algorithm"] in {"RSA", "ECDSA", "Ed25519"}
        assert spec["privateKey"].get("encoding", "PKCS1") in {"PKCS1", "PKCS8"}
        assert set(spec.get("usages", [])) <= {"server auth", "digital signature", "key encipherment",
                                                "cert sign", "crl sign"}
        for field in ("duration", "renewBefore"):
            if field in spec:
                assert re.fullmatch(r"([0-9]+(h|m|s))+", spec[field]), spec[field]
    elif obj["kind"] == "ServiceMonitor":
        assert set(spec) <= {"selector", "namespaceSelector", "endpoints", "jobLabel"}
        for ep in spec["endpoints"]:
            assert set(ep) <= {"port", "path", "scheme", "interval", "scrapeTimeout", "tlsConfig"}
            assert set(ep.get("tlsConfig", {})) <= {"serverName", "ca", "insecureSkipVerify"}
    else:  # pragma: no cover
        raise AssertionError(f"no check for {obj['kind']}")


# ------------------------------------------------------------------------ Deployment: safety

def test_deployment_defaults_are_highly_available(default_objs: list[dict[str, Any]]) -> None:
    deployment = one(default_objs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    rolling = deployment["spec"]["strategy"]["rollingUpdate"]
    assert rolling["maxUnavailable"] == 0
    spec = pod_spec(default_objs)
    selector = deployment["spec"]["selector"]["matchLabels"]
    anti = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert anti and anti[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert anti[0]["podAffinityTerm"]["labelSelector"]["matchLabels"] == selector
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in spec["affinity"]["podAntiAffinity"]
    spread = spec["topologySpreadConstraints"]
    assert spread and all(c["labelSelector"]["matchLabels"] == selector for c in spread)
    assert all(c["whenUnsatisfiable"] == "ScheduleAnyway" for c in spread)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()


def test_pdb(default_objs: list[dict[str, Any]]) -> None:
    pdb = one(default_objs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == one(default_objs, "Deployment")["spec"]["selector"]["matchLabels"]


def test_no_pdb_that_blocks_drains_with_one_replica() -> None:
    objs = render_objects({"replicaCount": 1})
    assert not by_kind(objs, "PodDisruptionBudget")
    assert "WARNING: fewer than 2 replicas" in chartlib.notes(render({"replicaCount": 1}))


def test_security_context_is_restricted(scenario: tuple[str, dict[str, Any], list[dict[str, Any]]]) -> None:
    _, _, objs = scenario
    spec = pod_spec(objs)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] > 0
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert not spec.get(key)
    sc = container(objs)["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc.get("privileged", False) is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert not sc["capabilities"].get("add")
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    for volume in spec["volumes"]:  # restricted: no hostPath etc.
        assert set(volume) - {"name"} <= {"configMap", "secret", "emptyDir", "projected"}


def test_user_values_add_to_but_cannot_weaken_the_security_context() -> None:
    objs = render_objects({"securityContext": {"runAsUser": 10001},
                           "podSecurityContext": {"fsGroup": 10001}})
    sc = container(objs)["securityContext"]
    assert sc["runAsUser"] == 10001 and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert pod_spec(objs)["securityContext"]["fsGroup"] == 10001


def test_resources_are_set(default_objs: list[dict[str, Any]]) -> None:
    resources = container(default_objs)["resources"]
    for kind in ("requests", "limits"):
        assert set(resources[kind]) >= {"cpu", "memory"}, resources


def container_port(objs: list[dict[str, Any]], name: str) -> int:
    (port,) = [p for p in container(objs)["ports"] if p["name"] == name]
    assert port["protocol"] == "TCP"
    return int(port["containerPort"])


def test_probes_and_args_follow_the_binary_contract(scenario: tuple[str, dict[str, Any], list[dict[str, Any]]]) -> None:
    """Two listeners: the webhook (HTTPS, --addr, port "webhook") and operations (plain HTTP,
    --metrics-addr, port "metrics"); the kubelet probes the operations listener over HTTP."""
    _, _, objs = scenario
    c = container(objs)
    assert "command" not in c  # the image's entrypoint is /portier
    args = c["args"]
    assert args[0] == "serve"
    assert {p["name"] for p in c["ports"]} == {"webhook", "metrics"}
    assert arg_value(args, "--addr") == f"0.0.0.0:{container_port(objs, 'webhook')}"
    assert arg_value(args, "--metrics-addr") == f"0.0.0.0:{container_port(objs, 'metrics')}"
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = c[probe]["httpGet"]
        assert get == {"path": path, "port": "metrics", "scheme": "HTTP"}, get
        assert c[probe]["timeoutSeconds"] >= 1
    assert all(isinstance(a, str) for a in args)


def test_default_args(default_objs: list[dict[str, Any]]) -> None:
    c = container(default_objs)
    assert c["image"] == "ghcr.io/portier-dev/portier:0.1.0"
    assert (container_port(default_objs, "webhook"), container_port(default_objs, "metrics")) == (8443, 9090)
    args = c["args"]
    assert arg_value(args, "--log-format") == "json"
    assert arg_value(args, "--max-in-flight") == "1024"
    assert arg_value(args, "--shutdown-delay") == "3s"
    # webhook.timeoutSeconds 3 -> portier answers 503 at 2.5 s, before the API server gives up.
    assert arg_value(args, "--request-timeout") == "2500ms"
    for flag in ("--client-ca", "--client-cn-allow", "--allow-world-readable-key", "--allow-empty"):
        assert flag not in args


@pytest.mark.parametrize("seconds,expected", [(1, "500ms"), (3, "2500ms"), (10, "9500ms"), (30, "29500ms")])
def test_request_timeout_follows_the_webhook_timeout(seconds: int, expected: str) -> None:
    objs = render_objects({"webhook": {"timeoutSeconds": seconds}})
    assert arg_value(container(objs)["args"], "--request-timeout") == expected
    for wh in all_webhooks(objs):
        assert wh["timeoutSeconds"] == seconds


def test_custom_ports_and_server_values() -> None:
    objs = render_objects({"ports": {"webhook": 10443, "metrics": 19090}, "logFormat": "text",
                           "maxInFlight": 64, "shutdownDelaySeconds": 0})
    args = container(objs)["args"]
    assert arg_value(args, "--addr") == "0.0.0.0:10443"
    assert arg_value(args, "--metrics-addr") == "0.0.0.0:19090"
    assert (arg_value(args, "--log-format"), arg_value(args, "--max-in-flight"),
            arg_value(args, "--shutdown-delay")) == ("text", "64", "0s")
    ports = {p["name"]: p for p in one(objs, "Service")["spec"]["ports"]}
    assert ports["webhook"]["port"] == 443 and ports["metrics"]["port"] == 19090


def test_the_two_listeners_need_two_ports() -> None:
    with pytest.raises(helm.HelmRenderError, match="ports.webhook and ports.metrics must differ"):
        render({"ports": {"webhook": 9090, "metrics": 9090}})


def test_termination_grace_covers_pre_stop_shutdown_delay_and_drain(
        scenario: tuple[str, dict[str, Any], list[dict[str, Any]]]) -> None:
    """SIGTERM comes after the preStop sleep; portier then reports not ready for
    --shutdown-delay and drains reviews in flight for up to 10 s: the grace period covers all."""
    _, _, objs = scenario
    spec = pod_spec(objs)
    pre_stop = spec["containers"][0].get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    delay = int(arg_value(spec["containers"][0]["args"], "--shutdown-delay").removesuffix("s"))
    assert spec["terminationGracePeriodSeconds"] >= pre_stop + delay + 10


@pytest.mark.parametrize("values", [
    {"terminationGracePeriodSeconds": 17},
    {"preStopSleepSeconds": 20},
    {"shutdownDelaySeconds": 20},
])
def test_too_short_a_grace_period_fails(values: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmRenderError, match="terminationGracePeriodSeconds .* must cover"):
        render(values)
    render({**values, "terminationGracePeriodSeconds": 60})


def test_policies_and_tls_are_whole_directory_mounts(default_objs: list[dict[str, Any]]) -> None:
    spec = pod_spec(default_objs)
    c = container(default_objs)
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    for m in c["volumeMounts"]:
        assert "subPath" not in m and "subPathExpr" not in m, "subPath mounts never update"
        assert m["readOnly"] is True
    args = c["args"]
    assert arg_value(args, "--policies") == mounts["policies"]["mountPath"]
    cm = one(default_objs, "ConfigMap")
    assert volumes["policies"]["configMap"]["name"] == cm["metadata"]["name"]
    assert arg_value(args, "--tls-cert") == mounts["tls"]["mountPath"] + "/tls.crt"
    assert arg_value(args, "--tls-key") == mounts["tls"]["mountPath"] + "/tls.key"
    assert volumes["tls"]["secret"]["secretName"] == one(default_objs, "Secret")["metadata"]["name"]
    # Hot reload, not restarts: no checksum annotation that would roll the pods on a policy edit.
    annotations = one(default_objs, "Deployment")["spec"]["template"]["metadata"].get("annotations", {})
    assert not any(k.startswith("checksum/") for k in annotations)


def _names(items: list[dict[str, Any]]) -> list[str]:
    return [i["name"] for i in items]


def test_no_extra_volumes_by_default(default_objs: list[dict[str, Any]]) -> None:
    assert _names(pod_spec(default_objs)["volumes"]) == ["policies", "tls"]
    assert _names(container(default_objs)["volumeMounts"]) == ["policies", "tls"]
    explicit = render_objects({"extraVolumes": [], "extraVolumeMounts": []})
    assert one(explicit, "Deployment") == one(default_objs, "Deployment")


def test_extra_volumes_and_mounts_are_rendered() -> None:
    """extraVolumes and extraVolumeMounts are added, as given, after the chart's own."""
    objs = render_objects(ALL_ON)
    volumes = pod_spec(objs)["volumes"]
    mounts = container(objs)["volumeMounts"]
    assert _names(volumes) == ["policies", "tls", "client-ca", "cosign-keys", "scratch"]
    assert volumes[3:] == ALL_ON["extraVolumes"]
    assert _names(mounts) == ["policies", "tls", "client-ca", "cosign-keys", "scratch"]
    assert mounts[3:] == ALL_ON["extraVolumeMounts"]
    chartlib.validate(one(objs, "Deployment"))


EXTRA_VOLUME_ERRORS = {
    "chart volume name": ({"extraVolumes": [{"name": "tls", "emptyDir": {}}]},
                          "the chart's own volume"),
    "duplicate volume": ({"extraVolumes": [{"name": "a", "emptyDir": {}}, {"name": "a", "emptyDir": {}}]},
                         "already in extraVolumes"),
    "mount of no volume": ({"extraVolumeMounts": [{"name": "keys", "mountPath": "/etc/portier/keys"}]},
                           'no volume named "keys" in extraVolumes'),
    "mount of a chart volume": ({"extraVolumeMounts": [{"name": "tls", "mountPath": "/tls"}]},
                                'no volume named "tls"'),
    "mount over the key": ({"extraVolumes": [{"name": "a", "emptyDir": {}}],
                            "extraVolumeMounts": [{"name": "a", "mountPath": "/etc/portier/tls/"}]},
                           "at, under or above /etc/portier/tls"),
    "mount inside the policies": ({"extraVolumes": [{"name": "a", "emptyDir": {}}],
                                   "extraVolumeMounts": [{"name": "a", "mountPath": "/etc/portier/policies/k"}]},
                                  "at, under or above /etc/portier/policies"),
    "mount above the chart's": ({"extraVolumes": [{"name": "a", "emptyDir": {}}],
                                 "extraVolumeMounts": [{"name": "a", "mountPath": "/etc/portier"}]},
                                "at, under or above /etc/portier/policies"),
    "mount over the client CA": ({"extraVolumes": [{"name": "a", "emptyDir": {}}],
                                  "extraVolumeMounts": [{"name": "a", "mountPath": "/etc/portier/client-ca"}]},
                                 "at, under or above /etc/portier/client-ca"),
    "two mounts at one path": ({"extraVolumes": [{"name": "a", "emptyDir": {}}, {"name": "b", "emptyDir": {}}],
                                "extraVolumeMounts": [{"name": "a", "mountPath": "/x"},
                                                      {"name": "b", "mountPath": "/x/"}]},
                               "already used by another extra mount"),
}


@pytest.mark.parametrize("values,message", EXTRA_VOLUME_ERRORS.values(), ids=EXTRA_VOLUME_ERRORS.keys())
def test_extra_volume_mistakes_fail(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmRenderError, match=re.escape(message)):
        render(values)


def test_priority_class_and_scheduling_values() -> None:
    objs = render_objects(ALL_ON)
    spec = pod_spec(objs)
    assert spec["priorityClassName"] == "system-cluster-critical"
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert spec["tolerations"][0]["key"] == "dedicated"
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    c = container(objs)
    assert c["image"] == "ghcr.io/portier-dev/portier@sha256:" + "a" * 64
    assert arg_value(c["args"], "--log-format") == "json"
    assert c["args"][-1] == "--allow-empty"
    custom = render_objects({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "Exists"}]}]}}}})
    assert set(pod_spec(custom)["affinity"]) == {"nodeAffinity"}  # a user affinity replaces the default


# ------------------------------------------------------------------ Service, RBAC, NetworkPolicy

def test_service_maps_443_to_the_webhook_port_and_exposes_metrics(default_objs: list[dict[str, Any]]) -> None:
    """443 -> the webhook port for the API server; the metrics port for the ServiceMonitor
    (which finds its targets through a named Service port)."""
    svc = one(default_objs, "Service")
    assert svc["spec"]["type"] == "ClusterIP"
    webhook, metrics = svc["spec"]["ports"]
    assert (webhook["name"], webhook["port"], webhook["targetPort"]) == ("webhook", 443, "webhook")
    assert (metrics["name"], metrics["port"], metrics["targetPort"]) == ("metrics", 9090, "metrics")
    assert svc["spec"]["selector"] == one(default_objs, "Deployment")["spec"]["selector"]["matchLabels"]
    names = {p["name"] for p in container(default_objs)["ports"]}
    assert {webhook["targetPort"], metrics["targetPort"]} <= names
    for wh in all_webhooks(default_objs):
        assert wh["clientConfig"]["service"]["port"] == webhook["port"]


def test_rbac_is_least_privilege(default_objs: list[dict[str, Any]]) -> None:
    sa = one(default_objs, "ServiceAccount")
    assert pod_spec(default_objs)["serviceAccountName"] == sa["metadata"]["name"]
    role = one(default_objs, "ClusterRole")
    binding = one(default_objs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                    "namespace": NAMESPACE}]
    writable = {"wgpolicyk8s.io"}
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
        assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])
        assert "secrets" not in rule["resources"], "portier never reads Secrets"
        if not set(rule["apiGroups"]) <= writable:
            assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule
    assert not by_kind(default_objs, "Role")
    # The removed rbac.imagePullSecrets (cluster-wide Secret reads for a feature portier
    # never had) is refused by the schema rather than silently ignored.
    with pytest.raises(helm.HelmValuesError, match="values don't meet the specifications"):
        render_objects({"rbac": {"imagePullSecrets": True}})
    assert not by_kind(render_objects({"rbac": {"create": False}}), "ClusterRole")


# ------------------------------------------------------------------------------- audit

def _rules(objs: list[dict[str, Any]]) -> dict[tuple[tuple[str, ...], tuple[str, ...]], list[str]]:
    return {(tuple(r["apiGroups"]), tuple(r["resources"])): r["verbs"]
            for r in one(objs, "ClusterRole")["rules"]}


READ_RULES = {
    (("",), ("pods", "replicationcontrollers")): ["get", "list", "watch"],
    (("",), ("namespaces",)): ["list"],
    (("apps",), ("deployments", "statefulsets", "daemonsets", "replicasets")): ["get", "list", "watch"],
    (("batch",), ("jobs", "cronjobs")): ["get", "list", "watch"],
}
REPORT_RULE = {(("wgpolicyk8s.io",), ("policyreports",)): ["create", "patch"]}


def test_rbac_is_exactly_what_the_audit_uses(default_objs: list[dict[str, Any]]) -> None:
    """get/list/watch on the judged kinds, list on namespaces (-A), and create/patch on
    policyreports (server-side apply) only when reports are on."""
    assert _rules(default_objs) == READ_RULES
    for values in ({"audit": {"interval": "10m", "policyReports": True}},
                   {"rbac": {"policyReports": True}}):
        assert _rules(render_objects(values)) == READ_RULES | REPORT_RULE, values
    for groups, resources in READ_RULES:
        assert set(resources) <= POD_CONTROLLERS.get(groups[0], set()) | {"namespaces"}


def test_audit_is_off_by_default_and_its_values_become_serve_flags(
        default_objs: list[dict[str, Any]]) -> None:
    args = container(default_objs)["args"]
    assert "--audit-interval" not in args and "--audit-report" not in args
    assert not by_kind(default_objs, "CustomResourceDefinition")
    args = container(render_objects({"audit": {"interval": "10m"}}))["args"]
    assert arg_value(args, "--audit-interval") == "10m"
    assert "--audit-report" not in args
    args = container(render_objects({"audit": {"interval": "1h", "policyReports": True}}))["args"]
    assert arg_value(args, "--audit-interval") == "1h"
    assert arg_value(args, "--audit-report") == "policyreport"


def test_policy_report_crds_only_when_asked_and_kept_on_uninstall() -> None:
    """The chart's copy of the CRDs is deploy/crds/policyreports.yaml. (That an existing CRD
    of another owner is left alone needs a cluster: lookup finds nothing in a render.)"""
    shipped_text = (chartlib.REPO / "deploy" / "crds" / "policyreports.yaml").read_text()
    assert (chartlib.CHART / "files" / "policyreports.yaml").read_text() == shipped_text
    shipped = [d for d in yaml.safe_load_all(shipped_text) if d]
    crds = by_kind(render_objects({"audit": {"installCRDs": True}}), "CustomResourceDefinition")
    assert [c["metadata"]["name"] for c in crds] == ["policyreports.wgpolicyk8s.io",
                                                     "clusterpolicyreports.wgpolicyk8s.io"]
    for crd, want in zip(crds, shipped):
        assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
        assert crd["metadata"]["labels"]["app.kubernetes.io/name"] == "portier"
        assert crd["spec"] == want["spec"]
        chartlib.validate(crd)


def _ingress_by_port(np: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for rule in np["spec"]["ingress"]:
        (port,) = rule["ports"]
        assert port["protocol"] == "TCP"
        out[port["port"]] = rule
    return out


def test_network_policy_defaults() -> None:
    """Only the webhook and metrics ports are open. Webhook: from anywhere (the API server's
    address is cluster-specific). Metrics: from pods of every namespace, not from outside."""
    objs = render_objects({"networkPolicy": {"enabled": True}})
    np = one(objs, "NetworkPolicy")
    assert np["spec"]["policyTypes"] == ["Ingress"]
    assert np["spec"]["podSelector"]["matchLabels"] == one(objs, "Deployment")["spec"]["selector"]["matchLabels"]
    rules = _ingress_by_port(np)
    assert set(rules) == {"webhook", "metrics"}
    assert set(rules) == {p["name"] for p in container(objs)["ports"]}
    assert "from" not in rules["webhook"]
    assert rules["metrics"]["from"] == [{"namespaceSelector": {}}]
    assert not by_kind(render_objects(), "NetworkPolicy")


def test_network_policy_peers_come_from_values() -> None:
    np = one(render_objects(ALL_ON), "NetworkPolicy")
    rules = _ingress_by_port(np)
    assert rules["webhook"]["from"] == ALL_ON["networkPolicy"]["webhookFrom"]
    assert rules["metrics"]["from"] == ALL_ON["networkPolicy"]["metricsFrom"]
    open_metrics = one(render_objects({"networkPolicy": {"enabled": True, "metricsFrom": []}}), "NetworkPolicy")
    assert "from" not in _ingress_by_port(open_metrics)["metrics"]


# ------------------------------------------------------------- TLS key file mode, fsGroup

def test_tls_secret_is_mounted_group_readable_only(scenario: tuple[str, dict[str, Any], list[dict[str, Any]]]) -> None:
    """portier refuses a world-readable private key; the Secret volume default (0644) is. The
    chart mounts it 0440, owned by the pod's fsGroup, which the non-root process belongs to."""
    _, _, objs = scenario
    spec = pod_spec(objs)
    (tls,) = [v for v in spec["volumes"] if v["name"] == "tls"]
    mode = tls["secret"]["defaultMode"]
    assert mode == 0o440, oct(mode)
    assert not mode & 0o007, "no access for other users"
    assert mode & 0o040, "readable by the group"
    assert spec["securityContext"]["fsGroup"] >= 1
    assert "--allow-world-readable-key" not in container(objs)["args"]


# ------------------------------------------------------------------------------ webhooks

def test_webhook_configurations_are_safe(scenario: tuple[str, dict[str, Any], list[dict[str, Any]]]) -> None:
    name, values, objs = scenario
    configs = webhook_configs(objs)
    mutating = values.get("webhook", {}).get("mutating", {}).get("enabled", True)
    assert [c["kind"] for c in configs] == ["ValidatingWebhookConfiguration"] + (
        ["MutatingWebhookConfiguration"] if mutating else [])
    svc = one(objs, "Service")
    cert_manager = values.get("certManager", {}).get("enabled", False)
    for cfg in configs:
        annotations = cfg["metadata"].get("annotations", {})
        for wh in cfg["webhooks"]:
            assert len(wh["name"].split(".")) >= 3, wh["name"]
            assert wh["admissionReviewVersions"] == ["v1"]
            assert wh["sideEffects"] == "None"
            assert wh["timeoutSeconds"] == 3
            assert wh["failurePolicy"] == "Fail"
            client = wh["clientConfig"]
            assert "url" not in client
            assert client["service"] == {
                "name": svc["metadata"]["name"], "namespace": NAMESPACE,
                "path": "/validate" if cfg["kind"].startswith("Validating") else "/mutate",
                "port": svc["spec"]["ports"][0]["port"]}
            if cert_manager:
                assert "caBundle" not in client
                cert = next(c for c in by_kind(objs, "Certificate")
                            if c["spec"]["secretName"] == one(objs, "Deployment")["spec"]["template"]
                            ["spec"]["volumes"][1]["secret"]["secretName"])
                assert annotations["cert-manager.io/inject-ca-from"] == f"{NAMESPACE}/{cert['metadata']['name']}"
            else:
                assert base64.b64decode(client["caBundle"]).startswith(b"-----BEGIN CERTIFICATE-----")
                assert "cert-manager.io/inject-ca-from" not in annotations
            # Never judged: the control plane's namespaces and portier's own.
            (expr,) = [e for e in wh["namespaceSelector"]["matchExpressions"]
                       if e["key"] == "kubernetes.io/metadata.name"]
            assert expr["operator"] == "NotIn"
            assert ALWAYS_EXCLUDED | {NAMESPACE} <= set(expr["values"])
            conditions = {c["name"]: c["expression"] for c in wh["matchConditions"]}
            assert conditions["exclude-kubelet-requests"] == \
                "!request.userInfo.username.startsWith('system:node:')"
            assert "deletionTimestamp" in conditions["exclude-objects-being-deleted"]
            assert len(conditions) == len(wh["matchConditions"]) <= 64


def test_webhook_rules_cover_pods_and_pod_controllers(default_objs: list[dict[str, Any]]) -> None:
    for cfg in webhook_configs(default_objs):
        covered: dict[str, set[str]] = {}
        for rule in cfg["webhooks"][0]["rules"]:
            assert rule["scope"] == "Namespaced" and rule["apiVersions"] == ["v1"]
            assert "DELETE" not in rule["operations"] and "*" not in rule["operations"]
            for group in rule["apiGroups"]:
                covered.setdefault(group, set()).update(rule["resources"])
        for group, resources in POD_CONTROLLERS.items():
            assert resources <= covered.get(group, set()), (cfg["kind"], group)
    validating = one(default_objs, "ValidatingWebhookConfiguration")["webhooks"][0]
    assert any("pods/ephemeralcontainers" in r["resources"] for r in validating["rules"])


def test_webhook_values() -> None:
    objs = render_objects({"webhook": {"failurePolicy": "Ignore", "timeoutSeconds": 5,
                                       "excludeNamespaces": ["legacy", "kube-system"],
                                       "mutating": {"failurePolicy": "Fail"}}},
                          namespace="security")
    validating, mutating = all_webhooks(objs)
    assert validating["failurePolicy"] == "Ignore" and mutating["failurePolicy"] == "Fail"
    assert validating["timeoutSeconds"] == 5
    (expr,) = validating["namespaceSelector"]["matchExpressions"]
    assert expr["values"] == ["kube-system", "kube-node-lease", "kube-public", "security", "legacy"]
    assert validating["clientConfig"]["service"]["namespace"] == "security"
    extra = render_objects(ALL_ON)
    for wh in all_webhooks(extra):
        assert wh["namespaceSelector"]["matchLabels"] == {"portier.dev/enforce": "true"}
        assert len(wh["namespaceSelector"]["matchExpressions"]) == 1
        assert [c["name"] for c in wh["matchConditions"]] == [
            "exclude-kubelet-requests", "exclude-objects-being-deleted", "not-ci"]
        assert wh["objectSelector"]["matchExpressions"][0]["key"] == "portier.dev/skip"


def test_mutation_can_be_switched_off() -> None:
    objs = render_objects({"webhook": {"mutating": {"enabled": False}}})
    assert by_kind(objs, "ValidatingWebhookConfiguration")
    assert not by_kind(objs, "MutatingWebhookConfiguration")


# ---------------------------------------------------------------------------------- TLS

def _pem(b64: str) -> bytes:
    return base64.b64decode(b64)


def test_generated_tls_is_a_working_ca_and_serving_cert(default_objs: list[dict[str, Any]]) -> None:
    secret = one(default_objs, "Secret")
    assert secret["type"] == "kubernetes.io/tls"
    ca = x509.load_pem_x509_certificate(_pem(secret["data"]["ca.crt"]))
    cert = x509.load_pem_x509_certificate(_pem(secret["data"]["tls.crt"]))
    key = serialization.load_pem_private_key(_pem(secret["data"]["tls.key"]), password=None)
    cert.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    svc = one(default_objs, "Service")["metadata"]["name"]
    assert f"{svc}.{NAMESPACE}.svc" in sans  # the name the API server dials
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert cert.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc) > datetime.timedelta(days=365 * 5)
    for wh in all_webhooks(default_objs):
        assert wh["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]


def test_generated_tls_is_kept_on_upgrade(tmp_path: Path) -> None:
    """On upgrade the chart reuses the TLS Secret of the installed release (lookup), so the
    caBundle does not change under running pods. An offline render's lookup finds nothing, so
    this renders a copy of the chart whose lookup call is replaced by a fixture Secret."""
    source = (chartlib.CHART / "templates" / "webhook.yaml").read_text()
    call = 'lookup "v1" "Secret" .Release.Namespace $secretName'
    assert call in source
    chart = tmp_path / "portier"
    shutil.copytree(chartlib.CHART, chart)
    (chart / "values.schema.json").unlink()  # the fixture travels in a value the schema forbids
    (chart / "templates" / "webhook.yaml").write_text(source.replace(call, ".Values.fakeExistingSecret"))
    existing = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                "metadata": {"name": "portier-tls", "namespace": NAMESPACE},
                "data": {"tls.crt": "Y3J0", "tls.key": "a2V5", "ca.crt": "Y2E="}}
    with helm.Chart.load(chart) as c:
        upgraded = chartlib.objects(c.render({"fakeExistingSecret": existing}, name="portier",
                                             namespace=NAMESPACE, is_upgrade=True))
        partial = copy.deepcopy(existing)
        del partial["data"]["ca.crt"]  # an incomplete Secret is replaced, not half-reused
        regenerated = chartlib.objects(c.render({"fakeExistingSecret": partial}, name="portier",
                                                namespace=NAMESPACE, is_upgrade=True))
    assert one(upgraded, "Secret")["data"] == existing["data"]
    for wh in all_webhooks(upgraded):
        assert wh["clientConfig"]["caBundle"] == "Y2E="
    fresh = one(regenerated, "Secret")["data"]
    assert fresh["ca.crt"] != "Y2E=" and _pem(fresh["ca.crt"]).startswith(b"-----BEGIN CERTIFICATE-----")
    for wh in all_webhooks(regenerated):
        assert wh["clientConfig"]["caBundle"] == fresh["ca.crt"]


def test_cert_manager_certificate(scenario: tuple[str, dict[str, Any], list[dict[str, Any]]]) -> None:
    name, values, objs = scenario
    if not values.get("certManager", {}).get("enabled"):
        assert not by_kind(objs, "Certificate") and not by_kind(objs, "Issuer")
        return
    assert not by_kind(objs, "Secret"), "cert-manager writes the TLS Secret"
    certs = {c["metadata"]["name"]: c for c in by_kind(objs, "Certificate")}
    issuers = {i["metadata"]["name"]: i for i in by_kind(objs, "Issuer")}
    tls_secret = pod_spec(objs)["volumes"][1]["secret"]["secretName"]
    (serving,) = [c for c in certs.values() if c["spec"]["secretName"] == tls_secret]
    svc = one(objs, "Service")["metadata"]["name"]
    assert f"{svc}.{NAMESPACE}.svc" in serving["spec"]["dnsNames"]
    assert serving["spec"]["privateKey"]["encoding"] == "PKCS8"
    ref = serving["spec"]["issuerRef"]
    if values["certManager"].get("issuerRef"):
        assert ref == values["certManager"]["issuerRef"] and not issuers
    else:
        # serving cert <- CA Issuer <- CA Certificate <- self-signed Issuer
        ca_issuer = issuers[ref["name"]]
        (ca_cert,) = [c for c in certs.values() if c["spec"]["secretName"] == ca_issuer["spec"]["ca"]["secretName"]]
        assert ca_cert["spec"]["isCA"] is True
        assert "selfSigned" in issuers[ca_cert["spec"]["issuerRef"]["name"]]["spec"]


# ------------------------------------------------------------------------ mutual TLS

def _client_ca_volume(objs: list[dict[str, Any]]) -> dict[str, Any]:
    c = container(objs)
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == "client-ca"]
    assert mount["readOnly"] is True and "subPath" not in mount
    assert arg_value(c["args"], "--client-ca") == mount["mountPath"] + "/ca.crt"
    (volume,) = [v for v in pod_spec(objs)["volumes"] if v["name"] == "client-ca"]
    return volume


def test_mtls_is_off_by_default(scenario: tuple[str, dict[str, Any], list[dict[str, Any]]]) -> None:
    """Without mtls.enabled: no --client-ca, no client CA volume or ConfigMap, whatever else
    is set (behaviour unchanged)."""
    _, values, objs = scenario
    if values.get("mtls", {}).get("enabled"):
        return
    for objs in (objs, render_objects({"mtls": {"enabled": False, "clientCA": CLIENT_CA_PEM,
                                                 "allowedSubjects": ["kube-apiserver"]}})):
        args = container(objs)["args"]
        assert "--client-ca" not in args and "--client-cn-allow" not in args
        assert not [v for v in pod_spec(objs)["volumes"] if v["name"] == "client-ca"]
        assert not [m for m in container(objs)["volumeMounts"] if m["name"] == "client-ca"]
        assert not [c for c in by_kind(objs, "ConfigMap") if c["metadata"]["name"].endswith("-client-ca")]
        annotations = one(objs, "Deployment")["spec"]["template"]["metadata"].get("annotations", {})
        assert "checksum/client-ca" not in annotations


def test_mtls_client_ca_may_be_a_commented_bundle() -> None:
    """A CA bundle as distributions ship them (comments between certificates) is accepted."""
    bundle = f"# Issuer: CN=portier-test-client-ca\n{CLIENT_CA_PEM}\n# Another\n{CLIENT_CA_PEM}"
    objs = render_objects({"mtls": {"enabled": True, "clientCA": bundle}})
    (cm,) = [c for c in by_kind(objs, "ConfigMap") if c["metadata"]["name"].endswith("-client-ca")]
    assert cm["data"]["ca.crt"].count("BEGIN CERTIFICATE") == 2


def test_mtls_with_an_inline_client_ca() -> None:
    objs = render_objects(ALL_ON)
    volume = _client_ca_volume(objs)
    (cm,) = [c for c in by_kind(objs, "ConfigMap") if c["metadata"]["name"] == volume["configMap"]["name"]]
    assert volume["configMap"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]
    assert cm["data"]["ca.crt"].strip() == CLIENT_CA_PEM.strip()
    x509.load_pem_x509_certificate(cm["data"]["ca.crt"].encode())
    args = container(objs)["args"]
    allowed = [args[i + 1] for i, a in enumerate(args) if a == "--client-cn-allow"]
    assert allowed == ALL_ON["mtls"]["allowedSubjects"]
    # A new inline CA rolls the pods (the binary also re-reads it, but only after the
    # kubelet's volume sync).
    annotations = one(objs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    other = pki.make_ca("another-client-ca").cert_pem.decode()
    rolled = render_objects({**ALL_ON, "mtls": {**ALL_ON["mtls"], "clientCA": other}})
    assert annotations["checksum/client-ca"] != \
        one(rolled, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/client-ca"]
    assert annotations["example.com/a"] == "b"  # podAnnotations kept


@pytest.mark.parametrize("source,kind", [("existingSecret", "secret"), ("existingConfigMap", "configMap")])
def test_mtls_with_an_existing_client_ca(source: str, kind: str) -> None:
    objs = render_objects({"mtls": {"enabled": True, source: "apiserver-client-ca"}})
    volume = _client_ca_volume(objs)
    ref = volume[kind]
    assert ref.get("secretName", ref.get("name")) == "apiserver-client-ca"
    # Only ca.crt is projected: a Secret may also hold a private key portier must not see.
    assert ref["items"] == [{"key": "ca.crt", "path": "ca.crt"}]
    assert "--client-cn-allow" not in container(objs)["args"]
    assert not [c for c in by_kind(objs, "ConfigMap") if c["metadata"]["name"].endswith("-client-ca")]
    for obj in objs:
        if (obj["apiVersion"], obj["kind"]) not in chartlib.CUSTOM_KINDS:
            chartlib.validate(obj)


def test_mtls_notes_name_the_kubeconfig_user() -> None:
    text = chartlib.notes(render({"mtls": {"enabled": True, "existingSecret": "ca"}}))
    assert "Mutual TLS is ON" in text and '"portier.portier.svc"' in text
    assert "--admission-control-config-file" in text
    other_port = chartlib.notes(render({"mtls": {"enabled": True, "existingSecret": "ca"},
                                        "service": {"port": 8443}}, namespace="sec"))
    assert '"portier.sec.svc:8443"' in other_port
    assert "Mutual TLS" not in chartlib.notes(render())


# ------------------------------------------------------------------------------ policies

def _policy_files(objs: list[dict[str, Any]]) -> dict[str, Any]:
    cm = one(objs, "ConfigMap")
    assert cm["metadata"]["name"].endswith("-policies")
    return {k: yaml.safe_load(v) for k, v in cm["data"].items()}


def test_policies_configmap_holds_the_default_set(default_objs: list[dict[str, Any]]) -> None:
    files = _policy_files(default_objs)
    defaults = chartlib.chart_default_policies()
    assert defaults, "values.policies must not be empty"
    assert files == {f"{name}.yaml": policy for name, policy in defaults.items()}
    for policy in files.values():
        assert policy["apiVersion"] == "portier.dev/v1" and policy["kind"] == "Policy"
        assert policy["spec"]["mode"] in {"enforce", "warn", "audit"}


def test_default_policies_match_the_repository_policies_dir() -> None:
    shipped = chartlib.repo_policies()
    if shipped is None:
        pytest.skip("policies/ has no policy files yet")
    assert chartlib.chart_default_policies() == shipped, \
        "values.yaml policies differ from policies/: run bash tests/chart/run.sh --update"


def test_policy_overrides_and_extra_policies() -> None:
    defaults = chartlib.chart_default_policies()
    first = sorted(defaults)[0]
    second = sorted(defaults)[-1]
    raw = "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {name: raw}\nspec: {check: privileged}\n"
    objs = render_objects({
        "policies": {first: {"spec": {"mode": "audit"}}, second: None, "raw": raw},
        "extraPolicies": ALL_ON["extraPolicies"],
    })
    files = _policy_files(objs)
    assert files[f"{first}.yaml"]["spec"]["mode"] == "audit"
    assert files[f"{first}.yaml"]["spec"]["check"] == defaults[first]["spec"]["check"]
    if second != first:
        assert f"{second}.yaml" not in files  # null drops a default
    assert files["raw.yaml"] == yaml.safe_load(raw)
    assert files["extra-team-limits.yaml"]["metadata"]["name"] == "team-limits"


# ------------------------------------------------------- signed images: the README's example

@pytest.fixture(scope="module")
def signed_example() -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """The README's signed-images values, their render, and the Secrets its kubectl commands
    create (with a real cosign public key)."""
    values, secrets = chartlib.signed_images_example(pki.cosign_public_key_pem())
    return values, render_objects(values), secrets


def _signed_images_policy(objs: list[dict[str, Any]]) -> dict[str, Any]:
    (policy,) = [p for p in _policy_files(objs).values() if p["spec"]["check"] == "signed-images"]
    return policy


def _mounted_secret_files(objs: list[dict[str, Any]], secrets: list[dict[str, Any]]) -> dict[str, bytes]:
    """{path in the container: content} of every file the pod's volumes of these Secrets
    project (all keys, or the `items` with their paths)."""
    by_name = {s["metadata"]["name"]: s for s in secrets}
    volumes = {v["name"]: v for v in pod_spec(objs)["volumes"]}
    out = {}
    for mount in container(objs)["volumeMounts"]:
        source = volumes[mount["name"]].get("secret", {})
        if source.get("secretName") not in by_name:
            continue
        assert "subPath" not in mount and mount.get("readOnly") is True, mount
        data = {k: base64.b64decode(v) for k, v in by_name[source["secretName"]]["data"].items()}
        items = source.get("items") or [{"key": k, "path": k} for k in data]
        for item in items:
            out[f"{mount['mountPath']}/{item['path']}"] = data[item["key"]]
    return out


def test_readme_signed_images_example_is_valid(signed_example: tuple[dict[str, Any], list[dict[str, Any]],
                                                                     list[dict[str, Any]]]) -> None:
    """The README's example passes the schema and strict lint, and renders (and its kubectl
    commands create) valid Kubernetes objects."""
    values, objs, secrets = signed_example
    report = helm.lint(chartlib.CHART, values, strict=True, kube_version="v" + KUBE_VERSION,
                       namespace=NAMESPACE)
    assert not [m for m in report["messages"] if m["severity"] >= 2] and not report["errors"], report
    for obj in objs + secrets:
        if (obj["apiVersion"], obj["kind"]) in chartlib.CUSTOM_KINDS:
            check_custom_object(obj)
        else:
            chartlib.validate(obj)
    assert [s["type"] for s in secrets] == ["Opaque", "kubernetes.io/dockerconfigjson"]
    assert set(secrets[1]["data"]) == {".dockerconfigjson"}


def test_readme_signed_images_example_is_wired(signed_example: tuple[dict[str, Any], list[dict[str, Any]],
                                                                     list[dict[str, Any]]]) -> None:
    """The files the policy names are where the Secrets are mounted; its timeout fits in the
    review's deadline."""
    _, objs, secrets = signed_example
    params = _signed_images_policy(objs)["spec"]["params"]
    files = _mounted_secret_files(objs, secrets)
    (rule,) = params["rules"]
    assert rule["keyFiles"] == ["/etc/portier/keys/cosign.pub"]
    assert files["/etc/portier/keys/cosign.pub"].startswith(b"-----BEGIN PUBLIC KEY-----")
    assert params["dockerConfig"] == "/etc/portier/registry/config.json"
    assert "registry.example.com" in json.loads(files[params["dockerConfig"]])["auths"]
    (registry,) = [v for v in pod_spec(objs)["volumes"] if v["name"] == "registry-credentials"]
    assert registry["secret"]["defaultMode"] == 0o440, "credentials: not readable by every user"
    # portier waits for signature checks until 90 % of its request timeout.
    request_ms = int(arg_value(container(objs)["args"], "--request-timeout").removesuffix("ms"))
    assert request_ms == 2500
    timeout = params.get("timeout", "2s")  # the check's default
    timeout_ms = int(timeout[:-2]) if timeout.endswith("ms") else float(timeout.removesuffix("s")) * 1000
    assert timeout_ms < request_ms * 0.9


@pytest.mark.skipif(not os.environ.get("PORTIER_BIN"),
                    reason="set PORTIER_BIN to a built portier binary to run")
def test_portier_loads_the_readme_signed_images_example(
        tmp_path: Path, signed_example: tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]) -> None:
    """`portier check` loads the rendered policy set, with the key and the docker config the
    README's Secrets hold written where the pod mounts them (under tmp_path: the paths in the
    policies are moved there), and judges portier's own Deployment; without the key file the
    set does not load (so the file is really read)."""
    values, objs, secrets = signed_example
    root = tmp_path / "root"
    for path, content in _mounted_secret_files(objs, secrets).items():
        local = root / path.lstrip("/")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(content)
    policies = tmp_path / "policies"
    policies.mkdir()
    mount_paths = [m["mountPath"] for m in container(objs)["volumeMounts"]]
    for name, text in one(objs, "ConfigMap")["data"].items():
        for mount_path in mount_paths:
            text = text.replace(mount_path + "/", f"{root}{mount_path}/")
        (policies / name).write_text(text)
    assert str(root) in (policies / "extra-signed-images.yaml").read_text()
    deployment = chartlib.write_rendered_deployment(tmp_path / "deployment.yaml", values)
    cmd = [os.environ["PORTIER_BIN"], "check", "--policies", str(policies), "-f", str(deployment)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (root / "etc/portier/keys/cosign.pub").unlink()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "keyFiles[0]: cannot read" in proc.stderr and "cosign.pub" in proc.stderr, proc.stderr


# ------------------------------------------------------- HPA, ServiceMonitor, dashboard, NOTES

def test_autoscaling() -> None:
    objs = render_objects(ALL_ON)
    hpa = one(objs, "HorizontalPodAutoscaler")
    deployment = one(objs, "Deployment")
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": deployment["metadata"]["name"]}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 9)
    cpu = next(m for m in hpa["spec"]["metrics"] if m["resource"]["name"] == "cpu")
    assert cpu["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    assert one(objs, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    assert not by_kind(render_objects(), "HorizontalPodAutoscaler")


def test_service_monitor_scrapes_the_metrics_port_over_http() -> None:
    """Prometheus has no client certificate: it scrapes the operations listener (plain HTTP),
    never the webhook port."""
    objs = render_objects(ALL_ON)
    sm = one(objs, "ServiceMonitor")
    svc = one(objs, "Service")
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    (ep,) = sm["spec"]["endpoints"]
    assert (ep["port"], ep["path"], ep["scheme"]) == ("metrics", "/metrics", "http")
    assert "tlsConfig" not in ep
    (port,) = [p for p in svc["spec"]["ports"] if p["name"] == ep["port"]]
    assert port["targetPort"] == "metrics"
    assert container_port(objs, "metrics") == int(arg_value(container(objs)["args"], "--metrics-addr").rsplit(":", 1)[1])


def test_grafana_dashboard() -> None:
    objs = render_objects(ALL_ON)
    (cm,) = [c for c in by_kind(objs, "ConfigMap") if c["metadata"]["name"].endswith("-dashboard")]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(cm["data"]["portier.json"])
    assert dashboard["title"] and dashboard["uid"]
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs and all("portier_" in e or "container_" in e or "kube_" in e for e in exprs)


def test_notes_explain_checking_audit_and_recovery() -> None:
    text = chartlib.notes(render())
    assert "rollout status deployment/portier" in text
    assert "--dry-run=server" in text
    assert "portier audit --policies DIR -A" in text
    assert "kubectl delete validatingwebhookconfiguration portier" in text
    assert "kubectl delete mutatingwebhookconfiguration portier" in text
    assert "mutatingwebhookconfiguration" not in chartlib.notes(render({"webhook": {"mutating": {"enabled": False}}}))
    assert "UNCHECKED" in chartlib.notes(render({"webhook": {"failurePolicy": "Ignore"}}))


def test_names_follow_the_release() -> None:
    objs = render_objects(name="gate")
    assert one(objs, "Deployment")["metadata"]["name"] == "gate-portier"
    for wh in all_webhooks(objs):
        assert wh["clientConfig"]["service"]["name"] == "gate-portier"
    short = render_objects({"fullnameOverride": "pt"})
    assert one(short, "Service")["metadata"]["name"] == "pt"


# --------------------------------------------------- portier judges its own Deployment (lead)

def test_rendered_deployment_file(tmp_path: Any) -> None:
    """write_rendered_deployment() gives one Deployment document, for
    `portier check --policies policies -f FILE` (portier must pass its own policies)."""
    path = chartlib.write_rendered_deployment(tmp_path / "deployment.yaml")
    (doc,) = list(yaml.safe_load_all(path.read_text()))
    assert doc["kind"] == "Deployment"
    chartlib.validate(doc)


@pytest.mark.skipif(not os.environ.get("PORTIER_BIN"),
                    reason="set PORTIER_BIN to a built portier binary to run")
def test_portier_passes_its_own_policies(tmp_path: Path) -> None:
    """portier's own Deployment, as the chart renders it, passes portier's default policies."""
    path = chartlib.write_rendered_deployment(tmp_path / "deployment.yaml")
    proc = subprocess.run([os.environ["PORTIER_BIN"], "check", "--policies", str(chartlib.POLICIES_DIR),
                           "-f", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(not os.environ.get("PORTIER_BIN"),
                    reason="set PORTIER_BIN to a built portier binary to run")
def test_portier_passes_its_own_policies_at_their_strictest(tmp_path: Path) -> None:
    """... also with the options the restricted Pod Security Standard asks for: no privilege
    escalation, no host ports."""
    policies = tmp_path / "policies"
    policies.mkdir()
    for path in sorted(chartlib.POLICIES_DIR.glob("*.y*ml")):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        for doc in docs:
            doc["spec"]["mode"] = "enforce"
            doc["spec"].pop("exclude", None)
            if doc["spec"]["check"] == "privileged":
                doc["spec"]["params"] = {"allowPrivilegeEscalation": False}
        (policies / path.name).write_text(yaml.safe_dump_all(docs, sort_keys=False))
    for values in ({}, ALL_ON):
        path = chartlib.write_rendered_deployment(tmp_path / "deployment.yaml", values)
        proc = subprocess.run([os.environ["PORTIER_BIN"], "check", "--policies", str(policies),
                               "-f", str(path)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
