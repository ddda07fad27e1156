"""The Helm chart charts/portier: strict lint, the values schema, and rendered objects that are
valid Kubernetes."""

from __future__ import annotations

import json
import re
from typing import Any

import helm_python as helm
import kubernetes_validate.utils
import pytest

import chartlib
from chartlib import (
    CLIENT_CA_PEM, KUBE_VERSION, NAMESPACE, SCENARIOS, check_custom_object, one, render,
)

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
    "extra rule without resources": {"webhook": {"extraRules": [
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"]}]}},
    "extra rule with PATCH": {"webhook": {"extraRules": [
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["PATCH"], "resources": ["services"]}]}},
    "extra rule typo": {"webhook": {"extraRules": [
        {"apiGroup": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["services"]}]}},
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
        render({"policies": none, "psaCompatible": {"enabled": False}})


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
