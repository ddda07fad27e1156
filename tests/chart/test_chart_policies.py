"""The Helm chart charts/portier: the policies it ships and their overrides, the README's
signed-images example, and portier judging its own Deployment."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

import chartlib
import pki
from chartlib import (
    ALL_ON, KUBE_VERSION, NAMESPACE, arg_value, check_custom_object, container, one, pod_spec,
    render_objects,
)

# ------------------------------------------------------------------------------ policies

def _policy_files(objs: list[dict[str, Any]]) -> dict[str, Any]:
    cm = one(objs, "ConfigMap")
    assert cm["metadata"]["name"].endswith("-policies")
    return {k: yaml.safe_load(v) for k, v in cm["data"].items()}


def test_policies_configmap_holds_the_default_set(default_objs: list[dict[str, Any]]) -> None:
    files = _policy_files(default_objs)
    defaults = chartlib.chart_default_policies()
    assert defaults, "values.policies must not be empty"
    assert files == {
        **{f"{name}.yaml": policy for name, policy in defaults.items()},
        "psa-compatible.yaml": chartlib.psa_compatible_preset(),
    }
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


def test_the_psa_compatible_preset_is_on_in_audit_mode_and_follows_its_values() -> None:
    """The default set carries presets/psa-compatible.yaml as it is (audit mode: compared
    beside PSA, nothing denied); its mode, defaults and exemptions are values, and it can be
    switched off or collide with a policy of the same name only loudly."""
    preset = chartlib.psa_compatible_preset()
    assert preset["spec"]["mode"] == "audit"
    assert preset["spec"]["params"]["level"] == "namespace"

    objs = render_objects({"psaCompatible": {
        "mode": "enforce",
        "defaults": {"enforce": "baseline", "enforce-version": "v1.30", "warn": "restricted"},
        "exemptions": {"usernames": ["system:serviceaccount:ci:deployer"],
                       "runtimeClasses": ["kata"], "namespaces": ["kube-system", "ops"]},
    }})
    policy = _policy_files(objs)["psa-compatible.yaml"]
    assert policy["metadata"]["name"] == "pod-security"
    assert policy["spec"]["mode"] == "enforce"
    assert policy["spec"]["params"] == {
        "level": "namespace",
        # Values maps merge with the chart's defaults, as Helm merges every map.
        "defaults": {"enforce": "baseline", "enforce-version": "v1.30", "warn": "restricted",
                     "warn-version": "latest", "audit": "privileged", "audit-version": "latest"},
        "exemptions": {"usernames": ["system:serviceaccount:ci:deployer"],
                       "runtimeClasses": ["kata"], "namespaces": ["kube-system", "ops"]},
    }

    off = _policy_files(render_objects({"psaCompatible": {"enabled": False}}))
    assert "psa-compatible.yaml" not in off

    twin = {"apiVersion": "portier.dev/v1", "kind": "Policy", "metadata": {"name": "pod-security"},
            "spec": {"check": "privileged"}}
    with pytest.raises(Exception, match="pod-security"):
        render_objects({"extraPolicies": [twin]})
    with pytest.raises(Exception, match="psaCompatible"):
        render_objects({"policies": {"mine": twin}})
    for bad in ({"mode": "deny"}, {"defaults": {"enforce": "strict"}},
                {"defaults": {"enforce-version": "1.30"}}, {"exemptions": {"users": ["x"]}}):
        with pytest.raises(Exception):
            render_objects({"psaCompatible": bad})


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


def test_admission_policies_ship_as_one_file_portier_loads(tmp_path: Any) -> None:
    policy = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
              "metadata": {"name": "no-load-balancers"},
              "spec": {"matchConstraints": {"resourceRules": [{
                  "apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                  "resources": ["services"]}]},
                  "validations": [{"expression": "object.spec.?type.orValue('') != 'LoadBalancer'",
                                   "message": "no LoadBalancer Services"}]}}
    binding = {"apiVersion": "admissionregistration.k8s.io/v1",
               "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": "no-load-balancers"},
               "spec": {"policyName": "no-load-balancers", "validationActions": ["Deny"]}}
    config_map = one(render_objects({"admissionPolicies": [policy, binding]}), "ConfigMap")
    documents = list(yaml.safe_load_all(config_map["data"]["admission-policies.yaml"]))
    assert documents == [policy, binding]
    # portier loads the rendered directory and judges a Service with it.
    policies = tmp_path / "policies"
    policies.mkdir()
    for name, text in config_map["data"].items():
        (policies / name).write_text(text)
    service = tmp_path / "service.yaml"
    service.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Service",
                                       "metadata": {"name": "edge", "namespace": "shop"},
                                       "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}))
    cmd = [os.environ["PORTIER_BIN"], "check", "--policies", str(policies), "-f", str(service)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Service/shop/edge" in proc.stdout and "no LoadBalancer Services" in proc.stdout, proc.stdout


def test_readme_cel_example_renders_and_routes_services() -> None:
    values = chartlib.readme_values("cel-values.yaml")
    objs = render_objects(values)
    validating = next(c for c in objs if c["kind"] == "ValidatingWebhookConfiguration")
    assert values["webhook"]["extraRules"][0] in validating["webhooks"][0]["rules"]
    text = one(objs, "ConfigMap")["data"]["admission-policies.yaml"]
    assert [d["kind"] for d in yaml.safe_load_all(text)] == [
        "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]
