"""The Helm chart charts/portier: the webhook configurations, the serving TLS (generated or
from cert-manager) and mutual TLS with the API server."""

from __future__ import annotations

import base64
import copy
import datetime
import shutil
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

import chartlib
import pki
from chartlib import (
    ALL_ON, CLIENT_CA_PEM, NAMESPACE, POD_CONTROLLERS, all_webhooks, arg_value, by_kind,
    container, one, pod_spec, render, render_objects, webhook_configs,
)

ALWAYS_EXCLUDED = {"kube-system", "kube-node-lease", "kube-public"}


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
            if rule["resources"] == ["namespaces"]:
                continue
            assert rule["scope"] == "Namespaced" and rule["apiVersions"] == ["v1"]
            assert "DELETE" not in rule["operations"] and "*" not in rule["operations"]
            for group in rule["apiGroups"]:
                covered.setdefault(group, set()).update(rule["resources"])
        for group, resources in POD_CONTROLLERS.items():
            assert resources <= covered.get(group, set()), (cfg["kind"], group)
    validating = one(default_objs, "ValidatingWebhookConfiguration")["webhooks"][0]
    for subresource in ("pods/ephemeralcontainers", "pods/resize"):
        assert any(subresource in r["resources"] for r in validating["rules"]), subresource


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


def test_namespace_writes_go_to_validate_only_and_never_for_the_protected_namespaces(
        default_objs: list[dict[str, Any]]) -> None:
    """pod-security with level: namespace judges Namespace CREATE and UPDATE as Pod Security
    admission does; a Namespace's namespaceSelector reads its own labels, so kube-system and
    the release namespace (kubernetes.io/metadata.name NotIn) are never sent."""
    validating = one(default_objs, "ValidatingWebhookConfiguration")["webhooks"][0]
    namespace_rules = [r for r in validating["rules"] if "namespaces" in r["resources"]]
    assert namespace_rules == [{"apiGroups": [""], "apiVersions": ["v1"],
                                "operations": ["CREATE", "UPDATE"],
                                "resources": ["namespaces"], "scope": "Cluster"}]
    excluded = [e for e in validating["namespaceSelector"]["matchExpressions"]
                if e["key"] == "kubernetes.io/metadata.name"]
    assert excluded and excluded[0]["operator"] == "NotIn"
    assert {"kube-system", chartlib.NAMESPACE} <= set(excluded[0]["values"])
    mutating = one(default_objs, "MutatingWebhookConfiguration")["webhooks"][0]
    assert not [r for r in mutating["rules"] if "namespaces" in r["resources"]]


def test_extra_rules_route_more_kinds_to_validate_only() -> None:
    services = {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                "resources": ["services"], "scope": "Namespaced"}
    default = {c["kind"]: c["webhooks"][0]["rules"] for c in webhook_configs(render_objects())}
    routed = {c["kind"]: c["webhooks"][0]["rules"]
              for c in webhook_configs(render_objects({"webhook": {"extraRules": [services]}}))}
    assert routed["ValidatingWebhookConfiguration"] == default["ValidatingWebhookConfiguration"] + [services]
    # CEL policies validate: the mutating webhook is not called for them.
    assert routed["MutatingWebhookConfiguration"] == default["MutatingWebhookConfiguration"]
