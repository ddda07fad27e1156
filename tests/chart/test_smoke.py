"""Opt-in end-to-end check of the chart's wiring against a real portier binary: run `portier`
with the rendered Deployment's arguments, the rendered policies ConfigMap and the
chart-generated TLS Secret laid out as the kubelet mounts them, then call it over HTTPS as the
API server would (verifying the certificate against the caBundle, for the Service's DNS name).

    PORTIER_BIN=target/debug/portier bash tests/chart/run.sh

Skipped without PORTIER_BIN. Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

import chartlib
from chartlib import NAMESPACE, one

pytestmark = pytest.mark.skipif(not os.environ.get("PORTIER_BIN"),
                                reason="set PORTIER_BIN to a built portier binary to run")


def mount_like_kubelet(directory: Path, files: dict[str, bytes]) -> None:
    """Write files the way the kubelet projects a ConfigMap or Secret volume: the data in a
    timestamped dir, ..data -> that dir, and each key a symlink through ..data."""
    stamp = directory / "..2026_01_01_00_00_00.000000000"
    stamp.mkdir(parents=True)
    for name, data in files.items():
        (stamp / name).write_bytes(data)
    (directory / "..data").symlink_to(stamp.name)
    for name in files:
        (directory / name).symlink_to(f"..data/{name}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Webhook:
    def __init__(self, port: int, ca: bytes, server_name: str) -> None:
        self.port = port
        self.ctx = ssl.create_default_context(cadata=ca.decode())
        self.server_name = server_name

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        with self.ctx.wrap_socket(raw, server_hostname=self.server_name) as tls:
            conn = http.client.HTTPConnection(self.server_name, self.port, timeout=5)
            conn.sock = tls  # TLS verified for the Service's DNS name, as the API server does
            data = None if body is None else json.dumps(body)
            headers = {"Content-Type": "application/json"} if body is not None else {}
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()


@pytest.fixture(scope="module")
def webhook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webhook]:
    tmp = tmp_path_factory.mktemp("smoke")
    objs = chartlib.render_objects()
    cm = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-policies"))
    secret = one(objs, "Secret")
    mount_like_kubelet(tmp / "policies", {k: v.encode() for k, v in cm["data"].items()})
    mount_like_kubelet(tmp / "tls", {k: base64.b64decode(v) for k, v in secret["data"].items()})
    container = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    port = free_port()
    args = []
    for arg in container["args"]:
        arg = arg.replace(mounts["policies"], str(tmp / "policies")).replace(mounts["tls"], str(tmp / "tls"))
        args.append(f"127.0.0.1:{port}" if arg.startswith("0.0.0.0:") else arg)
    proc = subprocess.Popen([os.environ["PORTIER_BIN"], *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    svc = one(objs, "Service")["metadata"]["name"]
    hook = Webhook(port, base64.b64decode(secret["data"]["ca.crt"]), f"{svc}.{NAMESPACE}.svc")
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if hook.request("GET", "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline, "portier did not get ready"
            time.sleep(0.1)
        yield hook
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def review(pod_spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "0b0e0a4c-1a52-4d5e-9c55-5b6f6c2b1c01",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "default", "operation": "CREATE",
            "userInfo": {"username": "alice"},
            "object": {"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": "smoke", "namespace": "default"}, "spec": pod_spec},
        },
    }


def test_probes_answer_over_the_chart_tls(webhook: Webhook) -> None:
    assert webhook.request("GET", "/healthz")[0] == 200
    assert webhook.request("GET", "/readyz")[0] == 200
    status, body = webhook.request("GET", "/metrics")
    assert status == 200 and b"portier_policies_loaded" in body


def test_validate_denies_a_privileged_pod(webhook: Webhook) -> None:
    bad = {"containers": [{"name": "c", "image": "busybox",
                           "securityContext": {"privileged": True}}]}
    status, body = webhook.request("POST", "/validate", review(bad))
    assert status == 200, body
    response = json.loads(body)["response"]
    assert response["uid"] == "0b0e0a4c-1a52-4d5e-9c55-5b6f6c2b1c01"
    assert response["allowed"] is False


def test_portier_admits_its_own_pod(webhook: Webhook) -> None:
    spec = one(chartlib.render_objects(), "Deployment")["spec"]["template"]["spec"]
    status, body = webhook.request("POST", "/validate", review(spec))
    assert status == 200, body
    assert json.loads(body)["response"]["allowed"] is True, body


def test_mutate_never_denies(webhook: Webhook) -> None:
    bad = {"containers": [{"name": "c", "image": "busybox",
                           "securityContext": {"privileged": True}}]}
    status, body = webhook.request("POST", "/mutate", review(bad))
    assert status == 200, body
    assert json.loads(body)["response"]["allowed"] is True, body
