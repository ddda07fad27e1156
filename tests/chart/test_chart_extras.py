"""The Helm chart charts/portier: the optional HPA, ServiceMonitor and Grafana dashboard, the
NOTES, and names that follow the release."""

from __future__ import annotations

import json

import helm_python as helm

import chartlib
from chartlib import (
    ALL_ON, all_webhooks, arg_value, by_kind, container, container_port, one, render,
    render_objects,
)

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
    # Every way a review can end unjudged (src/outcome.rs) is on a panel, not only "invalid".
    for outcome in ("denied", "invalid", "shed", "timed_out"):
        assert any(outcome in e for e in exprs), outcome


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
