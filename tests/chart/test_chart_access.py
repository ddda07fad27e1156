"""The Helm chart charts/portier: who reaches portier and what portier may do: the Service,
RBAC, the audit's rules, flags and PolicyReport CRDs, and the NetworkPolicy."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest
import yaml

import chartlib
from chartlib import (
    ALL_ON, NAMESPACE, POD_CONTROLLERS, all_webhooks, arg_value, by_kind, container, one,
    pod_spec, render_objects,
)

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
    (("",), ("namespaces",)): ["get", "list", "watch"],
    (("apps",), ("deployments", "statefulsets", "daemonsets", "replicasets")): ["get", "list", "watch"],
    (("batch",), ("jobs", "cronjobs")): ["get", "list", "watch"],
}
REPORT_RULE = {(("wgpolicyk8s.io",), ("policyreports", "clusterpolicyreports")): ["create", "patch"]}


def test_rbac_is_exactly_what_the_audit_uses(default_objs: list[dict[str, Any]]) -> None:
    """get/list/watch on the judged kinds and on namespaces (audit -A lists them, serve's
    namespace cache watches them), and create/patch on policyreports (server-side apply)
    only when reports are on."""
    assert _rules(default_objs) == READ_RULES
    for values in ({"audit": {"interval": "10m", "policyReports": True}},
                   {"rbac": {"policyReports": True}}):
        assert _rules(render_objects(values)) == READ_RULES | REPORT_RULE, values
    for groups, resources in READ_RULES:
        assert set(resources) <= POD_CONTROLLERS.get(groups[0], set()) | {"namespaces"}


def test_rbac_extra_rules_grant_reading_what_cel_policies_select() -> None:
    """rbac.extraRules adds read rules for the kinds the audit lists for CEL policies; the
    schema refuses any verb but get, list and watch."""
    extra = [{"apiGroups": [""], "resources": ["services"], "verbs": ["list"]}]
    rules = _rules(render_objects({"rbac": {"extraRules": extra}}))
    assert rules == READ_RULES | {(("",), ("services",)): ["list"]}
    with pytest.raises(helm.HelmValuesError, match="values don't meet the specifications"):
        render_objects({"rbac": {"extraRules": [
            {"apiGroups": [""], "resources": ["services"], "verbs": ["delete"]}]}})


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
