"""deploy/: the plain manifests for users without Helm, rendered from the chart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

import chartlib


def test_deploy_manifest_is_in_sync_with_the_chart() -> None:
    assert chartlib.DEPLOY_FILE.exists(), "run: bash tests/chart/run.sh --update"
    have = chartlib.DEPLOY_FILE.read_text()
    want = chartlib.deploy_manifest()
    assert have == want, (
        "deploy/portier.yaml is out of date with charts/portier: run bash tests/chart/run.sh --update")


def test_deploy_manifest_is_valid_for_kubectl_apply() -> None:
    docs = [d for d in yaml.safe_load_all(chartlib.DEPLOY_FILE.read_text()) if d]
    kinds = [d["kind"] for d in docs]
    assert kinds[0] == "Namespace"
    assert kinds[-2:] == ["ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"]
    assert "Secret" not in kinds, "no private key in the repository"
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) not in chartlib.CUSTOM_KINDS:
            chartlib.validate(doc)
        if doc["kind"] != "Namespace" and "namespace" in doc["metadata"]:
            assert doc["metadata"]["namespace"] == chartlib.NAMESPACE
    ns = docs[0]
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc in docs:
        if doc["kind"].endswith("WebhookConfiguration"):
            assert doc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == \
                f"{chartlib.NAMESPACE}/portier-serving"


def test_kubernetes_validate_cli_strict(tmp_path: Path) -> None:
    """The command-line validator, as a user would run it, on the built-in objects of deploy/
    (it only warns on the cert-manager kinds, which it has no schema for)."""
    docs = [d for d in yaml.safe_load_all(chartlib.DEPLOY_FILE.read_text()) if d
            and (d["apiVersion"], d["kind"]) not in chartlib.CUSTOM_KINDS]
    path = tmp_path / "builtin.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    exe = Path(sys.executable).with_name("kubernetes-validate")
    proc = subprocess.run([str(exe), "--strict", "--quiet", "-k", chartlib.KUBE_VERSION, str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ERROR" not in proc.stdout + proc.stderr
