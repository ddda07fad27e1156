"""Opt-in end-to-end check of the chart's wiring against a real portier binary, laid out the way
the kubelet would run the rendered Deployment:

- every volume of the pod (the policies ConfigMap, the chart-generated TLS Secret, the client CA
  with mtls, the Secrets of extraVolumes) is written as the kubelet projects it: the data in a timestamped directory,
  ..data -> it, each key a symlink through ..data, with the file mode the chart declares
  (defaultMode) and, as the kubelet does for the pod's fsGroup, owned by that group with the
  group read bit added;
- portier runs with the container's arguments (listen addresses moved to 127.0.0.1) and, when
  the tests run as root, as the pod's runAsUser/runAsGroup with the fsGroup as supplementary
  group, like the container runtime;
- the kubelet's probes follow the rendered probe (port name -> container port, scheme), the
  ServiceMonitor scrape follows Service port -> targetPort, and reviews go over HTTPS verified
  against the caBundle for the Service's DNS name, as the API server does.

    PORTIER_BIN=target/debug/portier bash tests/chart/run.sh

Skipped without PORTIER_BIN. Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

import chartlib
import pki
from chartlib import NAMESPACE, by_kind, one

pytestmark = pytest.mark.skipif(not os.environ.get("PORTIER_BIN"),
                                reason="set PORTIER_BIN to a built portier binary to run")

AS_ROOT = os.geteuid() == 0
API_SERVER_CN = "kube-apiserver-webhook-client"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------- the kubelet's part

def mount_like_kubelet(directory: Path, files: dict[str, bytes], mode: int, fs_group: int | None) -> None:
    """Project `files` into `directory` as the kubelet's atomic writer does, with file `mode`;
    with an fsGroup, the kubelet then gives the files to that group and adds group read
    (pkg/volume SetVolumeOwnership: mode | 0440 on read-only volumes)."""
    stamp = directory / "..2026_01_01_00_00_00.000000000"
    stamp.mkdir(parents=True)
    for name, data in files.items():
        path = stamp / name
        path.write_bytes(data)
        file_mode = mode
        if fs_group is not None:
            file_mode |= 0o440
            if AS_ROOT:
                os.chown(path, 0, fs_group)
        path.chmod(file_mode)
    for d in (directory, stamp):
        d.chmod(0o755)
    (directory / "..data").symlink_to(stamp.name)
    for name in files:
        (directory / name).symlink_to(f"..data/{name}")


def volume_files(volume: dict[str, Any], objs: list[dict[str, Any]],
                 existing: dict[tuple[str, str], dict[str, Any]]) -> tuple[dict[str, bytes], int]:
    """The files a configMap or secret volume projects, and their mode."""
    if "configMap" in volume:
        src, kind = volume["configMap"], "ConfigMap"
        name = src["name"]
    else:
        src, kind = volume["secret"], "Secret"
        name = src["secretName"]
    obj = next((o for o in by_kind(objs, kind) if o["metadata"]["name"] == name), None) or existing[(kind, name)]
    if kind == "Secret":
        data = {k: base64.b64decode(v) for k, v in obj["data"].items()}
    else:
        data = {k: v.encode() for k, v in obj["data"].items()}
    if "items" in src:
        data = {item["path"]: data[item["key"]] for item in src["items"]}
    return data, src.get("defaultMode", 0o644)


class Pod:
    """portier running from a rendered Deployment, on local ports."""

    def __init__(self, objs: list[dict[str, Any]], workdir: Path, binary: str,
                 existing: dict[tuple[str, str], dict[str, Any]] | None = None,
                 tweak_volume: Callable[[str, dict[str, bytes], int, int | None], tuple[int, int | None]] | None = None) -> None:
        self.objs = objs
        self.workdir = workdir
        spec = one(objs, "Deployment")["spec"]["template"]["spec"]
        self.container = spec["containers"][0]
        psc = spec["securityContext"]
        self.fs_group = psc.get("fsGroup")
        mounts = {m["name"]: m["mountPath"] for m in self.container["volumeMounts"]}
        self.paths: dict[str, Path] = {}
        for volume in spec["volumes"]:
            files, mode = volume_files(volume, objs, existing or {})
            fs_group = self.fs_group
            if tweak_volume:
                mode, fs_group = tweak_volume(volume["name"], files, mode, fs_group)
            local = workdir / volume["name"]
            mount_like_kubelet(local, files, mode, fs_group)
            self.paths[mounts[volume["name"]]] = local
        # Container port -> local port, for every listen address in the arguments.
        self.ports: dict[int, int] = {}
        args = []
        for arg in self.container["args"]:
            for mount, local in self.paths.items():
                arg = arg.replace(mount, str(local))
            if arg.startswith("0.0.0.0:"):
                local_port = free_port()
                self.ports[int(arg.split(":")[1])] = local_port
                arg = f"127.0.0.1:{local_port}"
            args.append(arg)
        self.log = workdir / "portier.log"
        user: dict[str, Any] = {}
        if AS_ROOT:  # as the container runtime runs it: the pod's ids, fsGroup as extra group
            user = {"user": psc["runAsUser"], "group": psc["runAsGroup"],
                    "extra_groups": [self.fs_group] if self.fs_group is not None else []}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen([binary, *args], stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=workdir, **user)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def local_port(self, port: str | int) -> int:
        """A probe's or Service's port (a container port name or number) on this machine."""
        if isinstance(port, str):
            (p,) = [p for p in self.container["ports"] if p["name"] == port]
            port = p["containerPort"]
        return self.ports[int(port)]

    def http_get(self, port: str | int, path: str, scheme: str = "HTTP") -> tuple[int, bytes]:
        assert scheme.upper() == "HTTP", f"the kubelet/Prometheus would use {scheme}"
        conn = http.client.HTTPConnection("127.0.0.1", self.local_port(port), timeout=5)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def probe(self, name: str) -> tuple[int, bytes]:
        """The kubelet's httpGet probe, as rendered."""
        get = self.container[name]["httpGet"]
        return self.http_get(get["port"], get["path"], get["scheme"])

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.probe("readinessProbe")[0] == 200:
                    return
            except OSError:
                pass
            assert self.proc.poll() is None, self.output()
            assert time.monotonic() < deadline, "portier did not get ready:\n" + self.output()
            time.sleep(0.1)

    def wait_exit(self, timeout: float = 20) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError("portier kept running:\n" + self.output())

    def kill(self) -> None:
        """Stop without the graceful shutdown (test_sigterm_* covers that)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ------------------------------------------------------------------- the API server's part

class ApiServer:
    """Calls the webhook as the API server does: HTTPS to the Service's DNS name, the server
    certificate verified against the webhook configuration's caBundle; optionally presenting
    a client certificate."""

    def __init__(self, pod: Pod, client: pki.KeyPair | None = None) -> None:
        objs = pod.objs
        wh = one(objs, "ValidatingWebhookConfiguration")["webhooks"][0]["clientConfig"]
        svc = one(objs, "Service")
        self.server_name = f"{wh['service']['name']}.{wh['service']['namespace']}.svc"
        (port,) = [p for p in svc["spec"]["ports"] if p["port"] == wh["service"]["port"]]
        self.port = pod.local_port(port["targetPort"])
        ca = base64.b64decode(wh.get("caBundle") or one(objs, "Secret")["data"]["ca.crt"])
        self.ctx = ssl.create_default_context(cadata=ca.decode())
        if client is not None:
            cert, key = pod.workdir / f"client-{id(client)}.crt", pod.workdir / f"client-{id(client)}.key"
            cert.write_bytes(client.cert_pem)
            key.write_bytes(client.key_pem)
            self.ctx.load_cert_chain(cert, key)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        with self.ctx.wrap_socket(raw, server_hostname=self.server_name) as tls:
            conn = http.client.HTTPConnection(self.server_name, self.port, timeout=5)
            conn.sock = tls
            data = None if body is None else json.dumps(body)
            headers = {"Content-Type": "application/json"} if body is not None else {}
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()


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


PRIVILEGED = {"containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": True}}]}


# ------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def binary() -> Iterator[str]:
    """PORTIER_BIN, or a copy the pod's user can execute when it cannot reach that one."""
    path = os.environ["PORTIER_BIN"]
    psc = one(chartlib.render_objects(), "Deployment")["spec"]["template"]["spec"]["securityContext"]
    if not AS_ROOT or subprocess.run([path, "--version"], user=psc["runAsUser"], group=psc["runAsGroup"],
                                     capture_output=True).returncode == 0:
        yield path
        return
    copy_dir = Path(tempfile.mkdtemp(prefix="portier-bin-"))
    copy_dir.chmod(0o755)
    shutil.copy2(path, copy_dir / "portier")
    yield str(copy_dir / "portier")
    shutil.rmtree(copy_dir, ignore_errors=True)


@pytest.fixture
def workdir() -> Iterator[Path]:
    # Not under pytest's tmp_path: its parents are private to the test user, and portier may
    # run as the pod's user.
    path = Path(tempfile.mkdtemp(prefix="portier-smoke-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def pod(binary: str) -> Iterator[Pod]:
    workdir = Path(tempfile.mkdtemp(prefix="portier-smoke-"))
    workdir.chmod(0o755)
    p = Pod(chartlib.render_objects(), workdir, binary)
    try:
        p.wait_ready()
        yield p
    finally:
        p.kill()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def client_ca() -> pki.KeyPair:
    return pki.make_ca("portier-smoke-client-ca")


@pytest.fixture(scope="module")
def mtls_pod(binary: str, client_ca: pki.KeyPair) -> Iterator[Pod]:
    # A bundle as a user may paste it: comments, and another CA besides the API server's.
    bundle = (f"# portier-smoke-other-ca\n{pki.make_ca('portier-smoke-other-ca').cert_pem.decode()}"
              f"# portier-smoke-client-ca\n{client_ca.cert_pem.decode()}")
    values = {"mtls": {"enabled": True, "clientCA": bundle, "allowedSubjects": [API_SERVER_CN]}}
    workdir = Path(tempfile.mkdtemp(prefix="portier-smoke-mtls-"))
    workdir.chmod(0o755)
    p = Pod(chartlib.render_objects(values), workdir, binary)
    try:
        p.wait_ready()
        yield p
    finally:
        p.kill()
        shutil.rmtree(workdir, ignore_errors=True)


# ------------------------------------------------------------------ the default install

def test_the_key_is_mounted_as_the_chart_declares(pod: Pod) -> None:
    key = pod.paths["/etc/portier/tls"] / "tls.key"
    st = key.stat()  # through the ..data symlink, as portier reads it
    assert st.st_mode & 0o777 == 0o440
    if AS_ROOT:
        assert (st.st_uid, st.st_gid) == (0, pod.fs_group)
        status = Path(f"/proc/{pod.proc.pid}/status").read_text()
        uid = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1]
        assert int(uid) != 0 and int(uid) != st.st_uid, "portier reads the key through its group"


def test_probes_answer_on_the_metrics_port_over_http(pod: Pod) -> None:
    assert pod.probe("livenessProbe")[0] == 200
    assert pod.probe("readinessProbe")[0] == 200


def test_service_monitor_scrape(pod: Pod) -> None:
    objs = chartlib.render_objects({"serviceMonitor": {"enabled": True}})
    (ep,) = one(objs, "ServiceMonitor")["spec"]["endpoints"]
    (port,) = [p for p in one(objs, "Service")["spec"]["ports"] if p["name"] == ep["port"]]
    status, body = pod.http_get(port["targetPort"], ep["path"], ep["scheme"])
    assert status == 200
    for metric in (b"portier_policies_loaded", b"portier_tls_cert_expiry_timestamp_seconds",
                   b"portier_admission_requests_total"):
        assert metric in body


def test_webhook_port_serves_reviews_only(pod: Pod) -> None:
    api = ApiServer(pod)
    for path in ("/metrics", "/healthz", "/readyz"):
        assert api.request("GET", path)[0] == 404, path


def test_validate_denies_a_privileged_pod(pod: Pod) -> None:
    status, body = ApiServer(pod).request("POST", "/validate", review(PRIVILEGED))
    assert status == 200, body
    response = json.loads(body)["response"]
    assert response["uid"] == "0b0e0a4c-1a52-4d5e-9c55-5b6f6c2b1c01"
    assert response["allowed"] is False


def test_portier_admits_its_own_pod(pod: Pod) -> None:
    spec = one(pod.objs, "Deployment")["spec"]["template"]["spec"]
    status, body = ApiServer(pod).request("POST", "/validate", review(spec))
    assert status == 200, body
    assert json.loads(body)["response"]["allowed"] is True, body


def test_mutate_never_denies(pod: Pod) -> None:
    status, body = ApiServer(pod).request("POST", "/mutate", review(PRIVILEGED))
    assert status == 200, body
    assert json.loads(body)["response"]["allowed"] is True, body


def test_logs_are_json(pod: Pod) -> None:
    lines = [line for line in pod.output().splitlines() if line.strip()]
    assert lines, "portier logged nothing"
    for line in lines:
        assert isinstance(json.loads(line), dict), line


def test_sigterm_reports_not_ready_then_stops(binary: str, workdir: Path) -> None:
    """On SIGTERM (after the preStop sleep) portier fails its readiness probe for
    --shutdown-delay while still answering reviews, then stops within the grace period."""
    p = Pod(chartlib.render_objects(), workdir, binary)
    try:
        p.wait_ready()
        args = p.container["args"]
        delay = int(args[args.index("--shutdown-delay") + 1].removesuffix("s"))
        grace = one(p.objs, "Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        pre_stop = p.container["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert delay >= 1
        started = time.monotonic()
        p.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert p.probe("readinessProbe")[0] == 503
        assert p.probe("livenessProbe")[0] == 200, "not ready, but alive: no restart"
        status, body = ApiServer(p).request("POST", "/validate", review(PRIVILEGED))
        assert status == 200 and json.loads(body)["response"]["allowed"] is False
        assert p.proc.wait(timeout=grace - pre_stop) == 0, p.output()
        assert time.monotonic() - started >= delay
    finally:
        p.stop()


# ------------------------------------------------- why the chart sets defaultMode and fsGroup

def test_a_world_readable_key_is_refused(binary: str, workdir: Path) -> None:
    """With the Secret volume's default mode (0644) portier would not start."""
    def default_mode(name: str, files: dict[str, bytes], mode: int, fs_group: int | None) -> tuple[int, int | None]:
        return (0o644, fs_group) if name == "tls" else (mode, fs_group)

    p = Pod(chartlib.render_objects(), workdir, binary, tweak_volume=default_mode)
    assert p.wait_exit() != 0
    assert "readable by every user" in p.output()


@pytest.mark.skipif(not AS_ROOT, reason="needs root to run portier as the pod's user")
def test_without_fs_group_the_key_is_unreadable(binary: str, workdir: Path) -> None:
    """Mode 0440 owned by root: only the fsGroup makes the key readable to the non-root pod."""
    def no_fs_group(name: str, files: dict[str, bytes], mode: int, fs_group: int | None) -> tuple[int, int | None]:
        return mode, None

    objs = chartlib.render_objects()
    del one(objs, "Deployment")["spec"]["template"]["spec"]["securityContext"]["fsGroup"]
    p = Pod(objs, workdir, binary, tweak_volume=no_fs_group)
    assert p.wait_exit() != 0
    assert "ermission denied" in p.output()


# ------------------------------------------------------- signed images: the README's example

def test_readme_signed_images_example_serves(binary: str, workdir: Path) -> None:
    """The README's signed-images example, with its Secrets as its kubectl commands create them
    (a real cosign key) mounted as the kubelet would: portier reads the key and the docker
    config through the pod's mounts, loads the whole set and gets ready. The paths in the
    policies are moved to where Pod lays the mounts out (<workdir>/<volume name>)."""
    values, secrets = chartlib.signed_images_example(pki.cosign_public_key_pem())
    objs = chartlib.render_objects(values)
    mounts = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    data = next(c for c in by_kind(objs, "ConfigMap") if c["metadata"]["name"].endswith("-policies"))["data"]
    for key, text in data.items():
        for m in mounts:
            text = text.replace(m["mountPath"] + "/", f"{workdir / m['name']}/")
        data[key] = text
    assert str(workdir / "registry-credentials") + "/config.json" in data["extra-signed-images.yaml"]
    existing = {("Secret", s["metadata"]["name"]): s for s in secrets}
    p = Pod(objs, workdir, binary, existing=existing)
    try:
        p.wait_ready()
        status, body = p.http_get("metrics", "/metrics")
        assert status == 200
        assert f"portier_policies_loaded {len(data)}\n".encode() in body, body
        assert (workdir / "registry-credentials" / "config.json").stat().st_mode & 0o777 == 0o440
    finally:
        p.kill()


# ------------------------------------------------------------------------- mutual TLS

def test_mtls_probes_need_no_client_certificate(mtls_pod: Pod) -> None:
    assert mtls_pod.probe("readinessProbe")[0] == 200
    assert mtls_pod.probe("livenessProbe")[0] == 200
    assert mtls_pod.http_get("metrics", "/metrics")[0] == 200


def test_mtls_admits_the_api_server_certificate(mtls_pod: Pod, client_ca: pki.KeyPair) -> None:
    api = ApiServer(mtls_pod, pki.issue_client(client_ca, API_SERVER_CN))
    status, body = api.request("POST", "/validate", review(PRIVILEGED))
    assert status == 200, body
    assert json.loads(body)["response"]["allowed"] is False


def test_mtls_refuses_a_client_without_a_certificate(mtls_pod: Pod) -> None:
    with pytest.raises(OSError):
        ApiServer(mtls_pod).request("POST", "/validate", review(PRIVILEGED))


def test_mtls_refuses_a_certificate_of_another_ca(mtls_pod: Pod) -> None:
    stranger = pki.issue_client(pki.make_ca("some-other-ca"), API_SERVER_CN)
    with pytest.raises(OSError):
        ApiServer(mtls_pod, stranger).request("POST", "/validate", review(PRIVILEGED))


def test_mtls_refuses_a_subject_not_allowed(mtls_pod: Pod, client_ca: pki.KeyPair) -> None:
    with pytest.raises(OSError):
        ApiServer(mtls_pod, pki.issue_client(client_ca, "system:node:worker-1")).request(
            "POST", "/validate", review(PRIVILEGED))
    assert "not in --client-cn-allow" in mtls_pod.output()
