"""Shared helpers of the chart tests: render the chart, parse and validate objects,
and build the generated files (deploy/portier.yaml, the default policies in values.yaml).

Rendering uses Helm's own Go library (PyPI helm-python-sdk, Helm v4), so templates,
values.schema.json and lint behave as `helm install` / `helm lint` do. `lookup`
returns nothing in an offline render (as in `helm template`).
"""

from __future__ import annotations

import base64
import copy
import json
import re
import shlex
from pathlib import Path
from typing import Any, Iterable

import helm_python as helm
import kubernetes_validate
import yaml

import pki

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "portier"
VALUES_FILE = CHART / "values.yaml"
POLICIES_DIR = REPO / "policies"
DEPLOY_FILE = REPO / "deploy" / "portier.yaml"

# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and is validated against.
KUBE_VERSION = "1.32.0"
RELEASE = "portier"
NAMESPACE = "portier"

# deploy/ is rendered with the chart defaults except TLS from cert-manager: a chart-generated
# CA and key committed to the repository would be the same (public) key for every user, with a
# fixed expiry date. See deploy/README.md.
DEPLOY_VALUES: dict[str, Any] = {"certManager": {"enabled": True}}

# Kinds that are not built into Kubernetes (their CRDs come with cert-manager or the
# Prometheus Operator), so kubernetes-validate has no schema for them.
CUSTOM_KINDS = {
    ("cert-manager.io/v1", "Issuer"),
    ("cert-manager.io/v1", "Certificate"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
}


def render(values: dict[str, Any] | None = None, *, name: str = RELEASE,
           namespace: str = NAMESPACE) -> dict[str, str]:
    """Render the chart as `helm install` would: {template path: rendered text}."""
    with helm.Chart.load(CHART) as chart:
        return chart.render(copy.deepcopy(values or {}), name=name, namespace=namespace,
                            is_install=True)


def objects(rendered: dict[str, str]) -> list[dict[str, Any]]:
    """Every Kubernetes object of a render, in template-path order (NOTES.txt skipped)."""
    out: list[dict[str, Any]] = []
    for path in sorted(rendered):
        if not path.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(rendered[path]):
            if doc is not None:
                out.append(doc)
    return out


def render_objects(values: dict[str, Any] | None = None, **kw: Any) -> list[dict[str, Any]]:
    return objects(render(values, **kw))


def notes(rendered: dict[str, str]) -> str:
    return next(text for path, text in rendered.items() if path.endswith("NOTES.txt"))


def by_kind(objs: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o.get("kind") == kind]


def one(objs: Iterable[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(objs, kind)
    assert len(found) == 1, f"expected exactly one {kind}, found {len(found)}"
    return found[0]


def validate(obj: dict[str, Any], kube_version: str = KUBE_VERSION) -> None:
    """Validate a built-in object against the Kubernetes OpenAPI schema of kube_version with
    kubernetes-validate in strict mode (unknown or misspelled fields fail)."""
    kubernetes_validate.validate(obj, kube_version, strict=True)


# ------------------------------------------------------------ what the render tests share
# (test_chart_*.py; their fixtures are in conftest.py)

# A client CA for the mutual TLS values (PEM, as a user would paste it into mtls.clientCA).
CLIENT_CA_PEM = pki.make_ca("portier-test-client-ca").cert_pem.decode()

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


def container_port(objs: list[dict[str, Any]], name: str) -> int:
    (port,) = [p for p in container(objs)["ports"] if p["name"] == name]
    assert port["protocol"] == "TCP"
    return int(port["containerPort"])


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


CHART_README = CHART / "README.md"


def readme_block(containing: str) -> str:
    """The one fenced code block of the chart's README (outside lists) that contains
    `containing`, without the fences: README examples are tested as written."""
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```$", CHART_README.read_text(), re.M | re.S)
    found = [b for b in blocks if containing in b]
    assert len(found) == 1, f"expected one README code block with {containing!r}, found {len(found)}"
    return found[0]


def readme_values(name: str) -> dict[str, Any]:
    """The values file `name` shown in the chart's README (a code block whose first line is
    `# name`), parsed as `helm install -f` parses it."""
    text = readme_block(f"# {name}\n")
    assert text.startswith(f"# {name}\n"), f"{name}: the name must be the block's first line"
    return helm.values_from_yaml(text)


SIGNED_IMAGES_VALUES = "signed-images-values.yaml"


def signed_images_example(public_key_pem: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The README's signed-images example: its values, and the Secrets its kubectl commands
    create when cosign.pub holds `public_key_pem`."""
    script = readme_block("create secret docker-registry")
    return (readme_values(SIGNED_IMAGES_VALUES),
            kubectl_created_secrets(script, {"cosign.pub": public_key_pem}))


def kubectl_created_secrets(script: str, files: dict[str, bytes],
                            namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    """The Secrets that the `kubectl create secret generic NAME --from-file=FILE` and
    `kubectl create secret docker-registry NAME --docker-server=... --docker-username=...
    --docker-password=...` commands of a shell snippet would create, with the content kubectl
    gives them; `files` holds the contents of the --from-file files."""
    out = []
    for line in script.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words[:3] != ["kubectl", "-n", namespace] or words[3:5] != ["create", "secret"]:
            continue
        kind, name, *flags = words[5:]
        opts = dict(f.removeprefix("--").split("=", 1) for f in flags)
        if kind == "generic":
            data = {opts["from-file"]: files[opts["from-file"]]}
            secret_type = "Opaque"
        elif kind == "docker-registry":
            user, password = opts["docker-username"], opts["docker-password"]
            auth = base64.b64encode(f"{user}:{password}".encode()).decode()
            config = {"auths": {opts["docker-server"]: {"username": user, "password": password,
                                                        "auth": auth}}}
            data = {".dockerconfigjson": json.dumps(config).encode()}
            secret_type = "kubernetes.io/dockerconfigjson"
        else:  # pragma: no cover
            raise AssertionError(f"unknown secret kind in: {line}")
        out.append({"apiVersion": "v1", "kind": "Secret", "type": secret_type,
                    "metadata": {"name": name, "namespace": namespace},
                    "data": {k: base64.b64encode(v).decode() for k, v in data.items()}})
    return out


def write_rendered_deployment(path: Path | str, values: dict[str, Any] | None = None) -> Path:
    """Write the chart's rendered Deployment (default values unless given) to `path` as one
    YAML document and return the path. For `portier check --policies policies -f PATH`:
    portier's own Deployment must pass portier's own policies."""
    deployment = one(render_objects(values), "Deployment")
    path = Path(path)
    path.write_text(yaml.safe_dump(deployment, sort_keys=False))
    return path


# --------------------------------------------------------------------------------------------
# Generated file 1: deploy/portier.yaml

# Apply order for `kubectl apply -f`: namespace and identities first, webhooks last (the
# webhook configurations only take effect once everything they call exists).
_KIND_ORDER = [
    "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
    "Issuer", "Certificate", "Secret", "ConfigMap", "Service", "Deployment",
    "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy", "ServiceMonitor",
    "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
]

_DEPLOY_HEADER = """\
# portier: plain manifests for `kubectl apply -f deploy/portier.yaml` (no Helm needed).
#
# GENERATED from charts/portier with the default values and certManager.enabled=true,
# release "{release}", namespace "{namespace}". Do not edit: change the chart, then run
#   bash tests/chart/run.sh --update
# (the chart tests fail while this file and the chart disagree).
#
# Needs cert-manager in the cluster (it issues the serving certificate and fills in the
# webhooks' caBundle). Kubernetes >= 1.32. See deploy/README.md.
"""


def _namespace_object(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": namespace,
            "labels": {
                "app.kubernetes.io/part-of": "portier",
                # portier's own namespace runs under the restricted Pod Security Standard.
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
            },
        },
    }


def deploy_objects() -> list[dict[str, Any]]:
    objs = render_objects(DEPLOY_VALUES)
    for obj in objs:
        assert obj["kind"] in _KIND_ORDER, f"add {obj['kind']} to _KIND_ORDER"
    objs.sort(key=lambda o: (_KIND_ORDER.index(o["kind"]), o["metadata"]["name"]))
    return [_namespace_object(NAMESPACE), *objs]


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the policy files in the ConfigMap) as readable literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def deploy_manifest() -> str:
    """The expected content of deploy/portier.yaml."""
    docs = [yaml.dump(o, Dumper=_Dumper, sort_keys=False, width=1000) for o in deploy_objects()]
    return _DEPLOY_HEADER.format(release=RELEASE, namespace=NAMESPACE) + "---\n" + "---\n".join(docs)


# --------------------------------------------------------------------------------------------
# Generated file 2: the default `policies:` block of charts/portier/values.yaml, from policies/

BEGIN_MARK = "  # BEGIN default policies"
END_MARK = "  # END default policies"


def repo_policies() -> dict[str, Any] | None:
    """The policies shipped in the repository's policies/ directory, keyed by metadata.name,
    read as the binary reads the directory (*.yaml / *.yml, dot-entries skipped). None when
    the directory has no policy file."""
    if not POLICIES_DIR.is_dir():
        return None
    files = sorted(p for p in POLICIES_DIR.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix in (".yaml", ".yml"))
    if not files:
        return None
    out: dict[str, Any] = {}
    for path in files:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is None:
                continue
            name = doc["metadata"]["name"]
            assert name not in out, f"{path}: policy {name!r} defined twice in policies/"
            out[name] = doc
    return out


def repo_policy_comments() -> dict[str, list[str]]:
    """The comment lines heading each policy file, by the name of the file's first policy."""
    out: dict[str, list[str]] = {}
    if not POLICIES_DIR.is_dir():
        return out
    for path in sorted(POLICIES_DIR.iterdir()):
        if not path.is_file() or path.name.startswith(".") or path.suffix not in (".yaml", ".yml"):
            continue
        lines = path.read_text().splitlines()
        head = []
        for line in lines:
            if line.startswith("#"):
                head.append(line)
            elif line.strip() and line.strip() != "---":
                break
        first = next((d for d in yaml.safe_load_all(path.read_text()) if d), None)
        if first and head:
            out[first["metadata"]["name"]] = head
    return out


def psa_compatible_preset() -> dict[str, Any]:
    """presets/psa-compatible.yaml, which the chart's defaults render as they are."""
    return yaml.safe_load((REPO / "presets" / "psa-compatible.yaml").read_text())


def chart_default_policies() -> dict[str, Any]:
    with helm.Chart.load(CHART) as chart:
        return chart.values.get("policies") or {}


def values_with_policies(policies: dict[str, Any]) -> str:
    """values.yaml with its generated policies block replaced by `policies`."""
    text = VALUES_FILE.read_text()
    start = text.index(BEGIN_MARK)
    start = text.index("\n", start) + 1
    end = text.index(END_MARK)
    comments = repo_policy_comments()
    block = ""
    for name in sorted(policies):
        body = yaml.safe_dump(policies[name], sort_keys=False, default_flow_style=False, width=1000)
        block += "".join(f"  {line}\n" for line in comments.get(name, []))
        block += f"  {name}:\n" + "".join(f"    {line}\n" if line else "\n"
                                           for line in body.splitlines())
    return text[:start] + block + text[end:]
