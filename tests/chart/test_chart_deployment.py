"""The Helm chart charts/portier: the Deployment's safety (availability, security context,
resources, the binary's listeners and flags, shutdown, volumes, scheduling) and the TLS key's
file mode."""

from __future__ import annotations

import re
from typing import Any

import helm_python as helm
import pytest

import chartlib
from chartlib import (
    ALL_ON, all_webhooks, arg_value, by_kind, container, container_port, one, pod_spec, render,
    render_objects,
)

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
